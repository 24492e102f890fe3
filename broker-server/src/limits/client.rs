//! One client's budgets: PUBLISH rate and inbound bytes (throttled by holding reads
//! back) and bytes before CONNECT. Accounting only: the connection's reader
//! (`connection::io::LimitedRead`) asks these how long to hold a read back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Limit, LimitHits, TokenBucket};
use crate::config::LimitsConfig;

/// What a PUBLISH did to the client's publish budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishVerdict {
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
/// packets) and its reader, `connection::io::LimitedRead` (which counts bytes and holds
/// reads back).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientBudget {
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
    pub(crate) fn new(config: &LimitsConfig) -> Self {
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

    /// Whether any rate applies (else reads are never held back).
    pub(crate) fn is_limited(&self) -> bool {
        self.inner.is_some()
    }

    /// Counts one PUBLISH from the client.
    pub(crate) fn publish(&self) -> PublishVerdict {
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
    pub(crate) fn read_wait(&self, now: Instant) -> (Duration, bool) {
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
    pub(crate) fn read(&self, n: usize, now: Instant) {
        if let Some(inner) = &self.inner
            && let Some(bucket) = &mut inner.lock().bytes
        {
            bucket.charge(n as f64, now);
        }
    }

    /// Largest read while a byte rate applies: one second's worth, so a throttled
    /// client is read in steps rather than in one large gulp followed by a long pause.
    pub(crate) fn read_size(&self, config_rate: u64) -> usize {
        if self.inner.is_some() && config_rate > 0 {
            usize::try_from(config_rate).unwrap_or(usize::MAX).max(1)
        } else {
            usize::MAX
        }
    }
}

/// Counts what a connection sends before its CONNECT is accepted, against
/// `limits.max_bytes_before_connect`: what a socket that never completes a CONNECT can
/// make the broker buffer is bounded by this rather than by `max_packet_size`.
#[derive(Debug, Default)]
pub(crate) struct BeforeConnect {
    received: usize,
}

impl BeforeConnect {
    /// Counts `n` bytes read before CONNECT was accepted; `false` (the hit counted) once
    /// they are over the limit and the connection is to be closed.
    /// `limit` is `limits.max_bytes_before_connect` (0: none); the hit is counted in
    /// `hits`.
    pub(crate) fn take(
        &mut self,
        n: usize,
        limit: usize,
        hits: &LimitHits,
        peer: SocketAddr,
    ) -> bool {
        self.received = self.received.saturating_add(n);
        if limit > 0 && self.received > limit {
            hits.hit(Limit::BytesBeforeConnect, peer, "");
            return false;
        }
        true
    }
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
}
