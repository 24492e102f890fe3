//! Options both clients share: [`ReconnectOptions`] (with its backoff),
//! [`OfflineQueueOptions`] and its [`DropPolicy`], and [`PublishOptions`]. Every field
//! states its default. Each client's `ConnectOptions` holds the first two; what differs
//! between the clients (TLS, the browser's timer mode) stays in the client.

use std::time::Duration;

use crate::{PublishProps, QoS};

/// Reconnecting with exponential backoff and jitter.
///
/// The n-th attempt after a drop waits `min(max_delay, initial_delay * 2^(n-1))`, of
/// which a random part up to `jitter` (a fraction) is taken off, so that a fleet of
/// clients cut off together (a broker restart) does not reconnect in lockstep. A
/// connection that reaches CONNACK resets the count. The first connection is not
/// retried: the client's `connect` reports its failure.
///
/// Sans-IO: [`ReconnectOptions::delay`] takes the attempt number and the random draw
/// as arguments; the adapter owns the clock and the random source.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectOptions {
    /// Whether to reconnect at all. Default: `true`.
    pub enabled: bool,
    /// Delay before the first attempt. Default: 500 ms.
    pub initial_delay: Duration,
    /// Longest delay. Default: 30 s.
    pub max_delay: Duration,
    /// Fraction of each delay that is random, from 0 (none) to 1 ("full jitter").
    /// Default: 0.5.
    pub jitter: f64,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl ReconnectOptions {
    /// Never reconnect: the client ends when its connection does.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Backoff between `initial` and `max`, with the default jitter.
    pub fn backoff(initial: Duration, max: Duration) -> Self {
        Self {
            initial_delay: initial,
            max_delay: max.max(initial),
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt` (1-based), `random` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter)
    }
}

/// What happens to a publication made while the client is disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineQueueOptions {
    /// How many publications (any QoS) wait for the next connection. Zero: none; every
    /// offline publication is handled by `policy` at once. Default: 1000.
    pub capacity: usize,
    /// What a full queue does. Default: [`DropPolicy::DropOldest`].
    pub policy: DropPolicy,
}

impl Default for OfflineQueueOptions {
    fn default() -> Self {
        Self {
            capacity: 1000,
            policy: DropPolicy::DropOldest,
        }
    }
}

/// What a full offline queue does with one more publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropPolicy {
    /// Discard the oldest queued publication to make room (fresh telemetry matters
    /// more than old). Its `publish` call fails with the client's `Error::Dropped`
    /// and [`Event::MessagesDropped`](super::Event::MessagesDropped) counts it.
    DropOldest,
    /// Discard the new publication: its `publish` call fails with
    /// the client's `Error::Dropped`, and the event counts it.
    DropNewest,
    /// Refuse the new publication: its `publish` call fails with
    /// the client's `Error::QueueFull`; no event (the caller knows).
    Reject,
}

/// How one message is published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Quality of service. Default: QoS 0.
    pub qos: QoS,
    /// Whether the broker keeps the message for future subscribers. Default: `false`.
    pub retain: bool,
    /// MQTT 5 properties (content type, response topic, correlation data, message
    /// expiry, user properties; ignored by MQTT 3.x). Default: none.
    pub properties: PublishProps,
}

impl PublishOptions {
    /// Options at `qos`, not retained, without properties.
    pub fn new(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }

    /// Sets retain.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the MQTT 5 properties.
    pub fn properties(mut self, properties: impl Into<PublishProps>) -> Self {
        self.properties = properties.into();
        self
    }
}

impl From<QoS> for PublishOptions {
    fn from(qos: QoS) -> Self {
        Self::new(qos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let options = ReconnectOptions {
            jitter: 0.0,
            ..ReconnectOptions::backoff(Duration::from_millis(100), Duration::from_secs(1))
        };
        let delays: Vec<_> = (1..=6).map(|n| options.delay(n, 0.9).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(options.delay(u32::MAX, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let options = ReconnectOptions::backoff(Duration::from_secs(8), Duration::from_secs(8));
        assert_eq!(options.delay(1, 0.0), Duration::from_secs(8));
        for random in [0.25, 0.5, 0.999, 1.0] {
            let delay = options.delay(1, random);
            assert!(delay >= Duration::from_secs(4) && delay <= Duration::from_secs(8));
        }
    }
}
