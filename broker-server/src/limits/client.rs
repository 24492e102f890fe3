//! One client's budgets: PUBLISH rate and inbound bytes (throttled by holding reads
//! back), bytes before CONNECT, and writes that must make progress.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{Limit, TokenBucket};
use crate::config::LimitsConfig;

/// What a PUBLISH did to the client's publish budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishVerdict {
    /// Within the rate.
    Allowed,
    /// Over the rate: this PUBLISH is the first of a throttled stretch.
    Throttled,
    /// Over the rate while already throttled: keep going.
    StillThrottled,
    /// More than a further burst beyond the allowance: disconnect with 0x96.
    Flood,
    /// After a flood: the PUBLISH packets decoded with it are dropped, not routed.
    Refused,
}

/// One client's rate budgets, shared by its connection task (which counts PUBLISH
/// packets) and its [`LimitedRead`] (which counts bytes and holds reads back).
#[derive(Debug, Clone, Default)]
pub struct ClientBudget {
    inner: Option<Arc<Mutex<Budgets>>>,
}

#[derive(Debug)]
struct Budgets {
    bytes: Option<TokenBucket>,
    publishes: Option<TokenBucket>,
    /// PUBLISH packets over the rate (found the bucket empty) since the bucket was last
    /// full, and how many of them make a flood (the burst).
    excess: u32,
    flood_excess: u32,
    /// Whether the current stretch of over-rate traffic was counted already.
    bytes_throttled: bool,
    publish_throttled: bool,
    /// A flood was reported: every later PUBLISH is refused.
    flooded: bool,
}

impl ClientBudget {
    /// The budgets `config` sets (none when both rates are 0).
    pub fn new(config: &LimitsConfig) -> Self {
        if config.max_publish_per_sec == 0 && config.max_inbound_bytes_per_sec == 0 {
            return Self::default();
        }
        let now = Instant::now();
        let burst = match config.publish_burst {
            0 => config.max_publish_per_sec,
            burst => burst,
        };
        let bytes_rate = config.max_inbound_bytes_per_sec as f64;
        let publish_rate = f64::from(config.max_publish_per_sec);
        Self {
            inner: Some(Arc::new(Mutex::new(Budgets {
                bytes: (config.max_inbound_bytes_per_sec > 0)
                    .then(|| TokenBucket::new(bytes_rate, bytes_rate, now)),
                publishes: (config.max_publish_per_sec > 0)
                    .then(|| TokenBucket::new(publish_rate, f64::from(burst), now)),
                excess: 0,
                flood_excess: burst.max(1),
                bytes_throttled: false,
                publish_throttled: false,
                flooded: false,
            }))),
        }
    }

    /// Counts one PUBLISH from the client.
    pub fn publish(&self) -> PublishVerdict {
        let Some(inner) = &self.inner else {
            return PublishVerdict::Allowed;
        };
        let mut budgets = inner.lock();
        let Budgets {
            publishes: Some(bucket),
            flood_excess,
            excess,
            flooded,
            publish_throttled,
            ..
        } = &mut *budgets
        else {
            return PublishVerdict::Allowed;
        };
        if *flooded {
            return PublishVerdict::Refused;
        }
        let now = Instant::now();
        // A full bucket: the client kept within the rate long enough to start afresh.
        if bucket.is_full(now) {
            *excess = 0;
        }
        if bucket.charge(1.0, now) >= 0.0 {
            return PublishVerdict::Allowed;
        }
        *excess += 1;
        if *excess > *flood_excess {
            *flooded = true;
            return PublishVerdict::Flood;
        }
        if std::mem::replace(publish_throttled, true) {
            PublishVerdict::StillThrottled
        } else {
            PublishVerdict::Throttled
        }
    }

    /// How long reading must wait, and whether a byte-rate throttle just began (to be
    /// counted once).
    fn read_wait(&self, now: Instant) -> (Duration, bool) {
        let Some(inner) = &self.inner else {
            return (Duration::ZERO, false);
        };
        let mut budgets = inner.lock();
        let bytes = budgets
            .bytes
            .as_mut()
            .map_or(Duration::ZERO, |b| b.wait(now));
        let publishes = budgets
            .publishes
            .as_mut()
            .map_or(Duration::ZERO, |b| b.wait(now));
        if publishes.is_zero() {
            budgets.publish_throttled = false;
        }
        let began = !bytes.is_zero() && !std::mem::replace(&mut budgets.bytes_throttled, true);
        if bytes.is_zero() {
            budgets.bytes_throttled = false;
        }
        (bytes.max(publishes), began)
    }

    /// Counts `n` bytes read.
    fn read(&self, n: usize, now: Instant) {
        if let Some(inner) = &self.inner
            && let Some(bucket) = &mut inner.lock().bytes
        {
            bucket.charge(n as f64, now);
        }
    }

    /// Largest read while a byte rate applies: one second's worth, so a throttled
    /// client is read in steps rather than in one large gulp followed by a long pause.
    fn read_size(&self, config_rate: u64) -> usize {
        if self.inner.is_some() && config_rate > 0 {
            usize::try_from(config_rate).unwrap_or(usize::MAX).max(1)
        } else {
            usize::MAX
        }
    }
}

/// A reader that holds reads back while the client is over its [`ClientBudget`]: the
/// socket is not read, so the kernel's buffer fills and TCP slows the client down.
/// Writes pass through unchanged, so a connection keeps one stream (no split, no lock).
#[derive(Debug)]
pub struct LimitedRead<R> {
    inner: R,
    budget: ClientBudget,
    max_read: usize,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where throttling is counted, and who is throttled.
    broker: Arc<crate::broker::Broker>,
    peer: SocketAddr,
}

impl<R> LimitedRead<R> {
    /// Wraps `inner` with the budgets of `broker`'s configuration; hits are counted in
    /// its metrics under `peer`.
    pub fn new(
        inner: R,
        budget: ClientBudget,
        broker: Arc<crate::broker::Broker>,
        peer: SocketAddr,
    ) -> Self {
        let max_read = budget.read_size(broker.config.limits.max_inbound_bytes_per_sec);
        Self {
            inner,
            budget,
            max_read,
            sleep: None,
            broker,
            peer,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LimitedRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.budget.inner.is_none() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            if let Some(sleep) = &mut this.sleep {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            let now = Instant::now();
            let (wait, began) = this.budget.read_wait(now);
            if began {
                let hits = &this.broker.metrics.limit_hits;
                hits.hit(Limit::InboundBandwidth, this.peer, "");
            }
            if wait.is_zero() {
                break;
            }
            this.sleep = Some(Box::pin(tokio::time::sleep_until(now + wait)));
        }
        let want = buf.remaining().min(this.max_read);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        this.budget.read(n, Instant::now());
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

/// Counts what a connection sends before its CONNECT is accepted, against
/// `limits.max_bytes_before_connect`: what a socket that never completes a CONNECT can
/// make the broker buffer is bounded by this rather than by `max_packet_size`.
#[derive(Debug, Default)]
pub struct BeforeConnect {
    received: usize,
}

impl BeforeConnect {
    /// Counts `n` bytes read before CONNECT was accepted; `false` (the hit counted) once
    /// they are over the limit and the connection is to be closed.
    pub fn take(&mut self, n: usize, broker: &crate::broker::Broker, peer: SocketAddr) -> bool {
        let limit = broker.config.limits.max_bytes_before_connect;
        self.received = self.received.saturating_add(n);
        if limit > 0 && self.received > limit {
            let hits = &broker.metrics.limit_hits;
            hits.hit(Limit::BytesBeforeConnect, peer, "");
            return false;
        }
        true
    }
}

/// Unsent bytes the kernel may hold for a client beyond those in flight
/// (`TCP_NOTSENT_LOWAT`, see [`bound_unsent`]): a write is woken once fewer than half
/// of them are left, so a reader taking 8 KiB per `write_timeout_secs` makes progress.
pub const UNSENT_LOWAT: u32 = 16 * 1024;

/// Bounds what a client's TCP socket holds unsent to [`UNSENT_LOWAT`], so that
/// [`write_all`]'s timeout sees a slow reader's progress.
///
/// Without it the kernel grows the send buffer to megabytes (on loopback as soon as a
/// burst goes out) and wakes a blocked writer only once a third of it has drained: a
/// subscriber reading a steady 50 KB/s behind a backlog then let no byte in for longer
/// than `write_timeout_secs` and was disconnected as if it had stopped reading. With
/// it, the writer is woken whenever the client took a few KiB; bytes already sent and
/// awaiting acknowledgement are not limited, so a fast link keeps its throughput. The
/// backlog stays in the session's queue instead, where `queue_drop_policy` bounds it.
/// Linux and Android only (elsewhere the option is not set).
pub fn bound_unsent(stream: &tokio::net::TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(UNSENT_LOWAT);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

/// Writes all of `buf` to `writer` and flushes it, as long as the client keeps taking
/// bytes: when one write makes no progress (not one byte accepted) for
/// `limits.write_timeout_secs` (a client that stopped reading, a half-open socket),
/// the hit is counted and an error returned, and the connection is to be closed.
/// Without it such a connection would sit in its write forever, deaf to keep alive,
/// takeover and shutdown. The time to write all of `buf` is not limited: a slow but
/// steady reader is served at its pace (its socket reports each step: [`bound_unsent`]).
pub async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &[u8],
    broker: &crate::broker::Broker,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(f: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
        let mut config = LimitsConfig::default();
        f(&mut config);
        config
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_over_the_rate_throttle_then_a_flood_disconnects() {
        let budget = ClientBudget::new(&config(|c| {
            c.max_publish_per_sec = 10;
            c.publish_burst = 5;
        }));
        let verdicts: Vec<_> = (0..11).map(|_| budget.publish()).collect();
        assert!(verdicts[..5].iter().all(|v| *v == PublishVerdict::Allowed));
        assert_eq!(verdicts[5], PublishVerdict::Throttled);
        assert!(
            verdicts[6..10]
                .iter()
                .all(|v| *v == PublishVerdict::StillThrottled)
        );
        assert_eq!(verdicts[10], PublishVerdict::Flood);
        assert_eq!(budget.publish(), PublishVerdict::Refused);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_over_its_byte_rate_is_held_back() {
        use tokio::io::AsyncReadExt as _;
        let mut config = crate::Config::default();
        config.limits.max_inbound_bytes_per_sec = 1000;
        let broker = Arc::new(crate::Broker::new(config));
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
