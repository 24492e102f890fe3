//! Socket buffers that cost an idle connection nothing.
//!
//! A connection waiting for its next packet holds no receive buffer: a read lands in a
//! per-thread scratch buffer and only what arrived is copied into a buffer of that size,
//! which the protocol session takes over (decoded payloads share it, so the copy is the
//! only one). The session lets its buffer go once everything in it is decoded. One read
//! takes up to [`SCRATCH`] bytes, so a busy publisher needs few system calls.
//!
//! Reads go through [`LimitedRead`], which holds them back while the client is over its
//! byte or PUBLISH budget ([`crate::limits`] does the accounting); every write goes
//! through [`write_all`], which gives up on a client that takes nothing for
//! `limits.write_timeout_secs`.
//!
//! The write buffer is kept between bursts only while bursts fill a good part of it
//! ([`trim_write_buffer`]), so a connection that was busy once does not keep a large
//! buffer while it idles.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::broker::Broker;
use crate::limits::{ClientBudget, Limit};
use crate::message::Delivery;

/// Size of the per-thread read scratch buffer: the most one read takes.
pub(super) const SCRATCH: usize = 64 * 1024;

/// A write buffer up to this capacity is always kept between bursts.
const WRITE_KEEP: usize = 4 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
    static BATCH: RefCell<Vec<Delivery>> = const { RefCell::new(Vec::new()) };
}

/// Takes this thread's delivery batch vector (empty, with its capacity) for a moment;
/// give it back with [`give_batch`].
pub(super) fn take_batch() -> Vec<Delivery> {
    BATCH.with(|cell| cell.take())
}

/// Returns the vector [`take_batch`] lent, emptied, for the next connection.
pub(super) fn give_batch(mut batch: Vec<Delivery>) {
    batch.clear();
    BATCH.with(|cell| cell.replace(batch));
}

/// Reads what `reader` has (waiting until something arrives) into a new buffer of
/// exactly that size. An empty buffer means the peer closed the stream.
///
/// Nothing is held while waiting: the scratch buffer is borrowed only inside one poll,
/// and a poll that returns `Pending` has written nothing into it.
pub(super) async fn read_sized<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<BytesMut> {
    poll_fn(|cx| {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(scratch);
            match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(BytesMut::from(buf.filled()))),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

/// A reader that holds reads back while the client is over its [`ClientBudget`]: the
/// socket is not read, so the kernel's buffer fills and TCP slows the client down.
/// Writes pass through unchanged, so a connection keeps one stream (no split, no lock).
#[derive(Debug)]
pub(super) struct LimitedRead<R> {
    inner: R,
    /// The budget's state, only for a client that has one (boxed: most have none, and
    /// every byte here is held by every connection task).
    throttle: Option<Box<Throttle>>,
}

/// [`LimitedRead`]'s state for a client with a budget.
#[derive(Debug)]
struct Throttle {
    budget: ClientBudget,
    max_read: usize,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where throttling is counted, and who is throttled.
    broker: Arc<Broker>,
    peer: SocketAddr,
}

impl<R> LimitedRead<R> {
    /// Wraps `inner` with the budgets of `broker`'s configuration; hits are counted in
    /// its metrics under `peer`.
    pub(super) fn new(
        inner: R,
        budget: ClientBudget,
        broker: Arc<Broker>,
        peer: SocketAddr,
    ) -> Self {
        let throttle = budget.is_limited().then(|| {
            let max_read = budget.read_size(broker.config.limits.max_inbound_bytes_per_sec);
            Box::new(Throttle {
                budget,
                max_read,
                sleep: None,
                broker,
                peer,
            })
        });
        Self { inner, throttle }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LimitedRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(throttle) = this.throttle.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if let Some(sleep) = &mut throttle.sleep {
                ready!(sleep.as_mut().poll(cx));
                throttle.sleep = None;
            }
            let now = Instant::now();
            let (wait, began) = throttle.budget.read_wait(now);
            if began {
                let hits = &throttle.broker.metrics.limit_hits;
                hits.hit(Limit::InboundBandwidth, throttle.peer, "");
            }
            if wait.is_zero() {
                break;
            }
            throttle.sleep = Some(Box::pin(tokio::time::sleep_until(now + wait)));
        }
        let want = buf.remaining().min(throttle.max_read);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        throttle.budget.read(n, Instant::now());
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LimitedRead<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Writes all of `buf` to `writer` and flushes it, as long as the client keeps taking
/// bytes: when one write makes no progress (not one byte accepted) for
/// `limits.write_timeout_secs` (a client that stopped reading, a half-open socket),
/// the hit is counted and an error returned, and the connection is to be closed.
/// Without it such a connection would sit in its write forever, deaf to keep alive,
/// takeover and shutdown. The time to write all of `buf` is not limited: a slow but
/// steady reader is served at its pace (its socket reports each step: [`crate::transport::bound_unsent`]).
///
/// What the socket takes at once (the usual case) is written without a timer; only a
/// write that has to wait runs the timed part, boxed, so the connection task's future
/// has no room for its timer while it idles.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &[u8],
    broker: &Broker,
    peer: SocketAddr,
    client_id: &str,
) -> io::Result<()> {
    let mut written = 0;
    let done = poll_fn(|cx| {
        while written < buf.len() {
            match Pin::new(&mut *writer).poll_write(cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Ready(Ok(false)),
            }
        }
        match Pin::new(&mut *writer).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Ready(Ok(false)),
        }
    })
    .await?;
    if done {
        return Ok(());
    }
    let rest = &buf[written..];
    Box::pin(write_timed(writer, rest, broker, peer, client_id)).await
}

/// [`write_all`]'s part that waits: writes `buf`, then flushes, giving up when a step
/// makes no progress for `limits.write_timeout_secs`.
async fn write_timed<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &[u8],
    broker: &Broker,
    peer: SocketAddr,
    client_id: &str,
) -> io::Result<()> {
    let secs = broker.config.limits.write_timeout_secs;
    if secs == 0 {
        writer.write_all(buf).await?;
        return writer.flush().await;
    }
    let timeout = Duration::from_secs(secs);
    let stalled = || {
        broker
            .metrics
            .limit_hits
            .hit(Limit::WriteTimeout, peer, client_id);
        io::Error::new(io::ErrorKind::TimedOut, "write_timeout_secs")
    };
    let mut rest = buf;
    while !rest.is_empty() {
        match tokio::time::timeout(timeout, writer.write(rest)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => rest = &rest[n..],
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(stalled()),
        }
    }
    tokio::time::timeout(timeout, writer.flush())
        .await
        .map_err(|_| stalled())?
}

/// Longest [`drain`] lingers for the client's end of the stream.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Most bytes [`drain`] reads and discards.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Reads and discards what the client still sends, until it closes its side, fails,
/// or [`DRAIN_TIME`] or [`DRAIN_BYTES`] is reached; called after the broker ended the
/// connection (DISCONNECT or CONNACK with a reason code, then FIN).
///
/// Closing a socket with unread input makes the kernel answer with a reset instead of
/// a FIN, and so do the client's later writes; a client still sending (PUBRELs after
/// it exceeded Receive Maximum, a burst of PUBLISH) then sees its writes fail, and its
/// socket may drop the DISCONNECT it has not read yet, so it never learns why.
/// Draining lets it read the DISCONNECT and the end of the stream. mosquitto closes at
/// once; the spec only asks that the server close the connection after DISCONNECT
/// [MQTT-3.14.4-1], and a client that never stops sending costs at most these bounds.
pub(super) async fn drain<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut left = DRAIN_BYTES;
    let read_all = poll_fn(|cx| {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            loop {
                let mut buf = ReadBuf::new(scratch);
                match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                        left = left.saturating_sub(buf.filled().len());
                        if left == 0 {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
    });
    let _ = tokio::time::timeout(DRAIN_TIME, read_all).await;
}

/// After a burst of `written` bytes went out of `wbuf` (now cleared): drops its
/// capacity unless it is small or the burst used at least a quarter of it.
pub(super) fn trim_write_buffer(wbuf: &mut BytesMut, written: usize) {
    let capacity = wbuf.capacity();
    if capacity > WRITE_KEEP && written < capacity / 4 {
        *wbuf = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_takes_exactly_what_arrived_and_eof_is_empty() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"hello")
            .await
            .unwrap();
        let first = read_sized(&mut server).await.unwrap();
        assert_eq!(&first[..], b"hello");
        assert_eq!(first.capacity(), 5, "sized to the data, not to the scratch");
        drop(client);
        assert!(read_sized(&mut server).await.unwrap().is_empty());
    }

    #[test]
    fn a_large_write_buffer_goes_after_a_small_burst() {
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        trim_write_buffer(&mut wbuf, 60 * 1024);
        assert!(wbuf.capacity() >= 64 * 1024, "kept while bursts fill it");
        trim_write_buffer(&mut wbuf, 2);
        assert_eq!(wbuf.capacity(), 0, "let go after a small burst");
        let mut small = BytesMut::with_capacity(1024);
        trim_write_buffer(&mut small, 2);
        assert_eq!(small.capacity(), 1024, "small buffers are kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_over_its_byte_rate_is_held_back() {
        use tokio::io::AsyncReadExt as _;
        let mut config = crate::Config::default();
        config.limits.max_inbound_bytes_per_sec = 1000;
        let broker = Arc::new(Broker::new(config));
        let budget = ClientBudget::new(&broker.config.limits);
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut reader = LimitedRead::new(server, budget, broker.clone(), peer);
        client.write_all(&[7u8; 5000]).await.unwrap();
        let start = Instant::now();
        let mut buf = vec![0u8; 8192];
        let mut got = 0;
        while got < 5000 {
            let n = reader.read(&mut buf).await.unwrap();
            assert!(n <= 1000, "one second's worth per read at most");
            got += n;
            // On the (paused, virtual) clock: never more than the bucket and one read
            // ahead of the rate.
            let secs = start.elapsed().as_secs_f64();
            assert!(
                got as f64 <= 2000.0 + 1000.0 * secs,
                "{got} bytes by {secs} s"
            );
        }
        assert!(start.elapsed() >= Duration::from_secs(3));
        let hits = &broker.metrics.limit_hits;
        assert!(hits.get(Limit::InboundBandwidth) >= 1);
    }
}
