//! Socket buffers that cost an idle connection nothing.
//!
//! A connection waiting for its next packet holds no receive buffer: a read lands in a
//! per-thread scratch buffer and only what arrived is copied into a buffer of that size,
//! which the protocol session takes over (decoded payloads share it, so the copy is the
//! only one). The session lets its buffer go once everything in it is decoded. One read
//! takes up to [`SCRATCH`] bytes, so a busy publisher needs few system calls.
//!
//! The write buffer is kept between bursts only while bursts fill a good part of it
//! ([`trim_write_buffer`]), so a connection that was busy once does not keep a large
//! buffer while it idles.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

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
}
