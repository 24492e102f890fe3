//! Abuse limits: what one IP address or one client may cost the broker.
//!
//! ```text
//!  accept ──► Admission::admit(peer)   open sockets per IP: over → closed at once
//!               │                      connection rate (broker, per IP): over → the
//!               │                      CONNECT is answered CONNACK 0x9F and closed
//!               ▼
//!  connection task: reads ask ClientBudget: bytes/s and PUBLISH/s buckets
//!               │                           over → the socket is not read for a while
//!               │                           (TCP back-pressure); a PUBLISH flood → 0x96
//!  before CONNECT: connect timeout (from the accept), max_bytes_before_connect
//!  CONNECT: max_connections (0x97); password checks queue full (auth.password_queue,
//!           0x9F; `crate::security::pool`); SUBSCRIBE: subscriptions per client (0x97)
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
//! Not covered: an HTTP keep-alive connection that got its first response may trickle
//! its next request (hyper's header timeout needs a timer that `axum::serve` does not
//! set); the per-IP socket limit bounds how many such connections one address holds.
//!
//! # Layout
//!
//! - this module: [`Limit`], [`LimitHits`] (counters and the log), [`TokenBucket`];
//! - `admission`: [`Admission`], decided at accept time for every listener;
//! - `client`: one connection's budgets ([`ClientBudget`], [`BeforeConnect`]).
//!
//! This module only keeps accounts and gives verdicts; it does no IO. The connection
//! task's reader (`connection::io::LimitedRead`) asks [`ClientBudget`] how long to hold
//! a read back, and its writes (`connection::io::write_all`) apply
//! `limits.write_timeout_secs`; both count their hits in [`LimitHits`].
//!
//! The hot path stays cheap: with a limit off (0, the default) its check is one branch;
//! with it on, a client's buckets sit behind its own uncontended lock, and only the
//! accept of a new connection takes the broker-wide admission lock.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::ReasonCode;
use tokio::time::Instant;
use tracing::warn;

use crate::metrics::Counter;

mod admission;
mod client;

pub(crate) use admission::{Admission, Admitted};
pub(crate) use client::{BeforeConnect, ClientBudget, PublishVerdict};

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
    /// `limits.max_publish_per_sec`: the client is throttled (counted once per stretch
    /// of PUBLISH packets over the rate).
    PublishRate,
    /// `limits.publish_burst`: a PUBLISH flood beyond the allowance, DISCONNECT 0x96.
    PublishFlood,
    /// `limits.max_inbound_bytes_per_sec`: the client is throttled (counted each time
    /// its reads are held back).
    InboundBandwidth,
    /// `limits.max_subscriptions_per_client`: SUBACK 0x97 for the filter.
    Subscriptions,
    /// `limits.max_packet_size`: DISCONNECT (or CONNACK) 0x95 Packet too large.
    PacketSize,
    /// `limits.write_timeout_secs`: the client took nothing written to it in time.
    WriteTimeout,
    /// `limits.max_bytes_before_connect`: too much sent before CONNECT was accepted.
    BytesBeforeConnect,
    /// `auth.password_queue`: every password check worker busy and the queue full,
    /// CONNACK 0x9F (3.x: server unavailable) without checking the password.
    PasswordQueue,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: [Limit; 14] = [
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
        Limit::PasswordQueue,
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
            Limit::PasswordQueue => "password_queue",
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
            Limit::PasswordQueue => {
                "CONNECT refused (0x9F Connection rate exceeded): password checks busy"
            }
        }
    }

    /// The reason code a refused CONNECT gets for this limit (3.x clients get the
    /// closest return code, "server unavailable").
    pub const fn connack_reason(self) -> ReasonCode {
        match self {
            Limit::ConnectionRate | Limit::ConnectionRatePerIp | Limit::PasswordQueue => {
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
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
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
    pub(crate) fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, into debt if need be; returns what is left (negative: debt).
    pub(crate) fn charge(&mut self, n: f64, now: Instant) -> f64 {
        self.refill(now);
        self.tokens -= n;
        self.tokens
    }

    /// How long until the bucket is out of debt (zero when it is not in debt).
    pub(crate) fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Whether the bucket has refilled completely (it then remembers nothing).
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
