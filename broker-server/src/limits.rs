//! Abuse limits: what one IP address or one client may cost the broker.
//!
//! ```text
//!  accept ──► Admission::admit(peer)   open sockets per IP: over → closed at once
//!               │                      connection rate (broker, per IP): over → the
//!               │                      CONNECT is answered CONNACK 0x9F and closed
//!               ▼
//!  connection task: LimitedRead(socket) ── ClientBudget: bytes/s and PUBLISH/s buckets
//!               │                           over → the socket is not read for a while
//!               │                           (TCP back-pressure); a PUBLISH flood → 0x96
//!  before CONNECT: connect timeout (from the accept), max_bytes_before_connect
//!  CONNECT: max_connections (0x97); SUBSCRIBE: subscriptions per client (SUBACK 0x97)
//!  every packet: max_packet_size (0x95, from the fixed header, before it is buffered)
//!  every write: write_timeout_secs (a client that stopped reading is disconnected)
//! ```
//!
//! # Choices
//!
//! - **Bandwidth is throttled, never punished**: a client over
//!   `limits.max_inbound_bytes_per_sec` is simply not read until its budget refills,
//!   what mosquitto and EMQX do. TCP flow control then slows the sender; nothing is lost.
//! - **Publish rate is throttled the same way, and sustained abuse is disconnected**:
//!   a client over `max_publish_per_sec` (after its `publish_burst`) is not read until
//!   its bucket refills, so a short excursion above the rate costs it only latency. A
//!   client that keeps going, sending more than a further burst of PUBLISH packets over
//!   the rate before its bucket is ever full again, is disconnected with 0x96 Message
//!   rate too high (3.x: the socket is closed), and the PUBLISH packets read with the
//!   one that tipped it over are dropped. (Throttling alone would hold it to the rate,
//!   but a client that never slows down is abusive, and its backlog sits in the
//!   broker's socket buffer.)
//! - **Open sockets per IP are refused before CONNECT**: the point of the limit is that
//!   one address cannot hold more sockets, so the socket is closed at once rather than
//!   kept open to read a CONNECT and answer it.
//! - **Connection rate refusals answer the CONNECT** with 0x9F Connection rate exceeded
//!   (3.x: return code 3, server unavailable), so a well-behaved client learns to back
//!   off; the socket still counts against the per-IP limit meanwhile, and has the
//!   connect timeout like any other.
//!
//! Every hit is counted per [`Limit`] (`/metrics`: `mqtt_limit_hits_total{limit}`) and
//! logged with `warn!` naming the peer (and client) and the limit's configuration key. A
//! stream of hits is logged at most once a second per limit (the counter has them all):
//! the log must not become the attack.
//!
//! The hot path stays cheap: with a limit off (0, the default) its check is one branch;
//! with it on, a client's buckets sit behind its own uncontended lock, and only the
//! accept of a new connection takes the broker-wide admission lock.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use parking_lot::Mutex;
use protocol::ReasonCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracing::warn;

use crate::config::LimitsConfig;
use crate::metrics::Counter;

/// One limit, as counted and logged. The label is the configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `limits.max_connections`: CONNACK 0x97 (3.x: server unavailable).
    MaxConnections,
    /// `limits.max_connections_per_ip`: the socket is closed before CONNECT.
    ConnectionsPerIp,
    /// `limits.max_connections_per_sec`: CONNACK 0x9F (3.x: server unavailable).
    ConnectionRate,
    /// `limits.max_connections_per_sec_per_ip`: CONNACK 0x9F.
    ConnectionRatePerIp,
    /// `limits.connect_timeout_secs`: no CONNECT (or no `/mqtt` request) in time.
    ConnectTimeout,
    /// `tls.handshake_timeout_secs`: no TLS handshake in time.
    TlsHandshakeTimeout,
    /// `limits.max_publish_per_sec`: the client is throttled.
    PublishRate,
    /// `limits.publish_burst`: a PUBLISH flood beyond the allowance, DISCONNECT 0x96.
    PublishFlood,
    /// `limits.max_inbound_bytes_per_sec`: the client is throttled.
    InboundBandwidth,
    /// `limits.max_subscriptions_per_client`: SUBACK 0x97 for the filter.
    Subscriptions,
    /// `limits.max_packet_size`: DISCONNECT (or CONNACK) 0x95 Packet too large.
    PacketSize,
    /// `limits.write_timeout_secs`: the client took nothing written to it in time.
    WriteTimeout,
    /// `limits.max_bytes_before_connect`: too much sent before CONNECT was accepted.
    BytesBeforeConnect,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: [Limit; 13] = [
        Limit::MaxConnections,
        Limit::ConnectionsPerIp,
        Limit::ConnectionRate,
        Limit::ConnectionRatePerIp,
        Limit::ConnectTimeout,
        Limit::TlsHandshakeTimeout,
        Limit::PublishRate,
        Limit::PublishFlood,
        Limit::InboundBandwidth,
        Limit::Subscriptions,
        Limit::PacketSize,
        Limit::WriteTimeout,
        Limit::BytesBeforeConnect,
    ];

    /// The configuration key: the `limit` label in `/metrics` and in the log.
    pub const fn key(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::ConnectionsPerIp => "max_connections_per_ip",
            Limit::ConnectionRate => "max_connections_per_sec",
            Limit::ConnectionRatePerIp => "max_connections_per_sec_per_ip",
            Limit::ConnectTimeout => "connect_timeout_secs",
            Limit::TlsHandshakeTimeout => "handshake_timeout_secs",
            Limit::PublishRate => "max_publish_per_sec",
            Limit::PublishFlood => "publish_burst",
            Limit::InboundBandwidth => "max_inbound_bytes_per_sec",
            Limit::Subscriptions => "max_subscriptions_per_client",
            Limit::PacketSize => "max_packet_size",
            Limit::WriteTimeout => "write_timeout_secs",
            Limit::BytesBeforeConnect => "max_bytes_before_connect",
        }
    }

    /// What the broker does about it, for the log line.
    const fn action(self) -> &'static str {
        match self {
            Limit::MaxConnections => "CONNECT refused (0x97 Quota exceeded)",
            Limit::ConnectionsPerIp => "connection closed before CONNECT",
            Limit::ConnectionRate | Limit::ConnectionRatePerIp => {
                "CONNECT refused (0x9F Connection rate exceeded)"
            }
            Limit::ConnectTimeout => "connection closed: nothing complete in time",
            Limit::TlsHandshakeTimeout => "connection closed: TLS handshake not done in time",
            Limit::PublishRate | Limit::InboundBandwidth => "client throttled",
            Limit::PublishFlood => "client disconnected (0x96 Message rate too high)",
            Limit::Subscriptions => "subscription refused (0x97 Quota exceeded)",
            Limit::PacketSize => "connection closed (0x95 Packet too large)",
            Limit::WriteTimeout => "connection closed: the client stopped reading",
            Limit::BytesBeforeConnect => "connection closed: too much sent before CONNECT",
        }
    }

    /// The reason code a refused CONNECT gets for this limit (3.x clients get the
    /// closest return code, "server unavailable").
    pub const fn connack_reason(self) -> ReasonCode {
        match self {
            Limit::ConnectionRate | Limit::ConnectionRatePerIp => {
                ReasonCode::ConnectionRateExceeded
            }
            _ => ReasonCode::QuotaExceeded,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Hits per [`Limit`] since start, and when each was last logged.
#[derive(Debug, Default)]
pub struct LimitHits {
    counts: [Counter; Limit::ALL.len()],
    /// Second (since the Unix epoch) of the last `warn!` per limit.
    last_logged: [AtomicU64; Limit::ALL.len()],
}

impl LimitHits {
    /// Hits of `limit` so far.
    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit as usize].get()
    }

    /// Counts a hit of `limit` by `peer` (and `client_id`, once known) and logs it,
    /// at most once a second per limit.
    pub fn hit(&self, limit: Limit, peer: SocketAddr, client_id: &str) {
        let count = &self.counts[limit as usize];
        count.inc();
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_logged[limit as usize].swap(second, Ordering::Relaxed) != second {
            warn!(%peer, client_id, limit = limit.key(), total = count.get(), "limit reached: {}", limit.action());
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up. Taking may run
/// into debt, which is paid back before the bucket lets anything through again.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, into debt if need be; returns what is left (negative: debt).
    pub fn charge(&mut self, n: f64, now: Instant) -> f64 {
        self.refill(now);
        self.tokens -= n;
        self.tokens
    }

    /// How long until the bucket is out of debt (zero when it is not in debt).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Whether the bucket has refilled completely (it then remembers nothing).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// Which connections may open: open sockets per IP and connection rates, checked at
/// accept time for every listener (TCP, TLS, HTTP).
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<AdmissionInner>,
}

#[derive(Debug)]
struct AdmissionInner {
    max_per_ip: usize,
    rate: u32,
    rate_per_ip: u32,
    /// The broker-wide connection rate bucket (`None`: unlimited).
    global: Mutex<Option<TokenBucket>>,
    ips: Mutex<IpTable>,
}

/// Per-IP state. Entries are kept while the IP has sockets open or its rate bucket is
/// not full again, so the table holds only addresses active lately.
#[derive(Debug, Default)]
struct IpTable {
    map: HashMap<IpAddr, IpState>,
    /// Prune idle entries when the table grows past this.
    prune_at: usize,
}

#[derive(Debug)]
struct IpState {
    open: usize,
    rate: Option<TokenBucket>,
}

/// A connection let in. Holds its place in the per-IP count until dropped.
#[derive(Debug)]
pub struct Admitted {
    slot: Option<IpSlot>,
    /// A rate limit the connection is over: its CONNECT is to be refused with
    /// [`Limit::connack_reason`].
    pub refusal: Option<Limit>,
}

#[derive(Debug)]
struct IpSlot {
    admission: Arc<AdmissionInner>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut table = self.admission.ips.lock();
        if let Some(state) = table.map.get_mut(&self.ip) {
            state.open = state.open.saturating_sub(1);
            if state.open == 0 && state.rate.as_mut().is_none_or(|b| b.is_full(now)) {
                table.map.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// The admission limits of `config`.
    pub fn new(config: &LimitsConfig) -> Self {
        let now = Instant::now();
        let rate = config.max_connections_per_sec;
        Self {
            inner: Arc::new(AdmissionInner {
                max_per_ip: config.max_connections_per_ip,
                rate,
                rate_per_ip: config.max_connections_per_sec_per_ip,
                global: Mutex::new(
                    (rate > 0).then(|| TokenBucket::new(f64::from(rate), f64::from(rate), now)),
                ),
                ips: Mutex::new(IpTable {
                    map: HashMap::new(),
                    prune_at: 1024,
                }),
            }),
        }
    }

    /// Decides on a connection just accepted from `peer`: `Err` with the limit when it
    /// is to be closed at once; the hit is counted and logged in `hits` either way.
    pub fn admit(&self, peer: SocketAddr, hits: &LimitHits) -> Result<Admitted, Limit> {
        let inner = &self.inner;
        if inner.max_per_ip == 0 && inner.rate == 0 && inner.rate_per_ip == 0 {
            return Ok(Admitted {
                slot: None,
                refusal: None,
            });
        }
        let now = Instant::now();
        let ip = peer.ip().to_canonical();
        let mut refusal = None;
        let mut slot = None;
        if inner.max_per_ip > 0 || inner.rate_per_ip > 0 {
            let mut table = inner.ips.lock();
            if table.map.len() >= table.prune_at {
                table.map.retain(|_, state| {
                    state.open > 0 || state.rate.as_mut().is_some_and(|b| !b.is_full(now))
                });
                table.prune_at = (table.map.len() * 2).max(1024);
            }
            let rate_per_ip = inner.rate_per_ip;
            let state = table.map.entry(ip).or_insert_with(|| IpState {
                open: 0,
                rate: (rate_per_ip > 0)
                    .then(|| TokenBucket::new(f64::from(rate_per_ip), f64::from(rate_per_ip), now)),
            });
            if inner.max_per_ip > 0 && state.open >= inner.max_per_ip {
                drop(table);
                hits.hit(Limit::ConnectionsPerIp, peer, "");
                return Err(Limit::ConnectionsPerIp);
            }
            if let Some(bucket) = &mut state.rate
                && !bucket.try_take(1.0, now)
            {
                refusal = Some(Limit::ConnectionRatePerIp);
            }
            state.open += 1;
            slot = Some(IpSlot {
                admission: inner.clone(),
                ip,
            });
        }
        if refusal.is_none()
            && let Some(bucket) = inner.global.lock().as_mut()
            && !bucket.try_take(1.0, now)
        {
            refusal = Some(Limit::ConnectionRate);
        }
        if let Some(limit) = refusal {
            hits.hit(limit, peer, "");
        }
        Ok(Admitted { slot, refusal })
    }

    /// IP addresses with state kept now (tests: the table stays bounded).
    pub fn tracked_ips(&self) -> usize {
        self.inner.ips.lock().map.len()
    }
}

impl Admitted {
    /// Whether the connection holds a place in the per-IP count.
    pub fn counted(&self) -> bool {
        self.slot.is_some()
    }
}

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

/// Writes all of `buf` to `writer` and flushes it, as long as the client keeps taking
/// bytes: when one write makes no progress for `limits.write_timeout_secs` (a client
/// that stopped reading, a half-open socket), the hit is counted and an error
/// returned, and the connection is to be closed. Without it such a connection would
/// sit in its write forever, deaf to keep alive, takeover and shutdown.
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

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn a_bucket_lets_a_burst_through_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, start);
        assert!((0..5).all(|_| bucket.try_take(1.0, start)));
        assert!(!bucket.try_take(1.0, start));
        assert!(bucket.try_take(1.0, start + Duration::from_millis(100)));
        assert!(!bucket.try_take(1.0, start + Duration::from_millis(100)));
        assert!(bucket.is_full(start + Duration::from_secs(10)));
    }

    #[test]
    fn debt_is_paid_back_before_anything_passes() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 100.0, start);
        assert_eq!(bucket.charge(300.0, start), -200.0);
        assert_eq!(bucket.wait(start), Duration::from_secs(2));
        assert_eq!(bucket.wait(start + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn open_sockets_per_ip_are_capped_and_freed_on_drop() {
        let admission = Admission::new(&config(|c| c.max_connections_per_ip = 2));
        let hits = LimitHits::default();
        let a = admission.admit(peer([10, 0, 0, 1], 1), &hits).unwrap();
        let b = admission.admit(peer([10, 0, 0, 1], 2), &hits).unwrap();
        assert!(a.counted() && b.refusal.is_none());
        assert_eq!(
            admission.admit(peer([10, 0, 0, 1], 3), &hits).unwrap_err(),
            Limit::ConnectionsPerIp
        );
        // Another address is not affected.
        let _other = admission.admit(peer([10, 0, 0, 2], 1), &hits).unwrap();
        drop(a);
        let _c = admission.admit(peer([10, 0, 0, 1], 4), &hits).unwrap();
        assert_eq!(hits.get(Limit::ConnectionsPerIp), 1);
        drop((b, _c, _other));
        assert_eq!(admission.tracked_ips(), 0, "idle addresses are forgotten");
    }

    #[test]
    fn connection_rates_refuse_with_0x9f() {
        let admission = Admission::new(&config(|c| {
            c.max_connections_per_sec_per_ip = 2;
            c.max_connections_per_sec = 3;
        }));
        let hits = LimitHits::default();
        let refusals: Vec<_> = [[1, 1, 1, 1]; 3]
            .into_iter()
            .chain([[2, 2, 2, 2]; 2])
            .map(|ip| admission.admit(peer(ip, 1), &hits).unwrap().refusal)
            .collect();
        assert_eq!(
            refusals,
            [
                None,
                None,
                Some(Limit::ConnectionRatePerIp),
                None,
                Some(Limit::ConnectionRate)
            ]
        );
        assert_eq!(
            Limit::ConnectionRate.connack_reason(),
            ReasonCode::ConnectionRateExceeded
        );
        assert_eq!(hits.get(Limit::ConnectionRatePerIp), 1);
        assert_eq!(hits.get(Limit::ConnectionRate), 1);
    }

    #[test]
    fn no_limits_means_no_state() {
        let admission = Admission::new(&LimitsConfig::default());
        let hits = LimitHits::default();
        let admitted = admission.admit(peer([1, 2, 3, 4], 5), &hits).unwrap();
        assert!(!admitted.counted() && admitted.refusal.is_none());
        assert_eq!(admission.tracked_ips(), 0);
        assert_eq!(
            ClientBudget::new(&LimitsConfig::default()).publish(),
            PublishVerdict::Allowed
        );
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
}
