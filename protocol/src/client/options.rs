//! Options both clients share: [`ConnectOptions`] (with [`ReconnectOptions`] and its
//! backoff, [`OfflineQueueOptions`] and its [`DropPolicy`]), [`PublishOptions`] and
//! [`SubscribeOptions`]. Every field states its default. What differs between the
//! clients (TLS, the browser's timer mode) is `ConnectOptions`' `transport` field, of
//! the client's own type.

use std::time::Duration;

use bytes::Bytes;

use crate::{
    ClientOptions, ProtocolVersion, PublishProps, QoS, RetainHandling, SubscriptionOptions,
    TopicName, Will, WillProperties,
};

/// How a client's `Client::connect` reaches the broker and what it does when the
/// connection drops. `T` is what the client's transport needs besides: `TlsOptions` in
/// `native-client`, the `TimerMode` in `web-client` (each client names this type
/// `ConnectOptions`, with `T` filled in).
///
/// ```
/// use std::time::Duration;
/// use protocol::QoS;
/// use protocol::client::{ConnectOptions, DropPolicy};
///
/// let options = ConnectOptions::<()>::new("wss://broker.example/mqtt")
///     .client_id("dashboard-7f3a")
///     .keep_alive(Duration::from_secs(30))
///     .session_expiry(3600)
///     .offline_queue(100, DropPolicy::DropOldest)
///     .will("dash/dashboard-7f3a/state", "gone", QoS::AtLeastOnce, true);
/// assert_eq!(options.session.client_id, "dashboard-7f3a");
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions<T> {
    /// The broker's URL, in the forms the client's transport takes (`mqtt://`,
    /// `mqtts://`, `ws://`, `wss://`; in the browser also a path on the page's host).
    pub url: String,
    /// Everything CONNECT carries and how the session behaves: protocol version (default
    /// MQTT 5), client id, clean start, keep alive, will, credentials, session expiry,
    /// timeouts. See [`ClientOptions`] for each default.
    pub session: ClientOptions,
    /// Reconnecting after the connection drops. Default: on, see [`ReconnectOptions`].
    pub reconnect: ReconnectOptions,
    /// Publications made while disconnected. Default: see [`OfflineQueueOptions`].
    pub offline_queue: OfflineQueueOptions,
    /// Messages buffered per local subscription that its reader has not taken yet;
    /// more are dropped and reported with
    /// [`Event::MessagesDropped`](super::Event::MessagesDropped). Default: 4096.
    pub subscription_capacity: usize,
    /// Events buffered per `Client::events` receiver; a reader that falls further
    /// behind loses events. Default: 256.
    pub event_capacity: usize,
    /// Topic on which `Client::request` asks for responses unless a request names its
    /// own. Default: `None`, meaning `res/{client id}`.
    pub response_topic: Option<String>,
    /// What the client's transport needs besides (see the type's docs). Default: its
    /// `Default`.
    pub transport: T,
}

impl<T: Default> ConnectOptions<T> {
    /// Options for `url` with every other field at its default (client id empty: an
    /// MQTT 5 server assigns one).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            session: ClientOptions::new(""),
            reconnect: ReconnectOptions::default(),
            offline_queue: OfflineQueueOptions::default(),
            subscription_capacity: 4096,
            event_capacity: 256,
            response_topic: None,
            transport: T::default(),
        }
    }
}

impl<T> ConnectOptions<T> {
    /// Sets the client identifier.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.session.client_id = client_id.into().into();
        self
    }

    /// Sets the protocol version (MQTT 3.1, 3.1.1 or 5.0).
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.session.version = version;
        self
    }

    /// Sets user name and password.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Bytes>) -> Self {
        self.session.username = Some(username.into().into());
        self.session.password = Some(password.into());
        self
    }

    /// Authenticates with a token (a JWT, an OAuth access token) in the password field,
    /// the convention of brokers that accept tokens. MQTT 3.1.1 allows a password only
    /// with a user name [MQTT-3.1.2-22], so an empty user name is sent there when none
    /// is set (see [`ConnectOptions::session_options`]).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.session.password = Some(Bytes::from(token.into()));
        self
    }

    /// Sets the keep alive (zero disables it).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.session.keep_alive = keep_alive;
        self
    }

    /// Sets Clean Start on the first connection.
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.session.clean_start = clean_start;
        self
    }

    /// Sets the MQTT 5 session expiry interval in seconds (0: the session ends with the
    /// connection). With a non-zero value reconnects resume the session: the broker
    /// keeps the subscriptions and queues messages for them while the client is away.
    pub fn session_expiry(mut self, seconds: u32) -> Self {
        self.session.session_expiry_interval = seconds;
        self
    }

    /// Sets the will message. Panics if `topic` is not a valid topic name; use
    /// [`ConnectOptions::will_message`] with a checked [`Will`] for topics from input.
    pub fn will(self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        let topic = TopicName::new(topic.to_owned())
            .unwrap_or_else(|err| panic!("will topic `{topic}`: {err}"));
        self.will_message(Will {
            topic,
            payload: payload.into(),
            qos,
            retain,
            properties: WillProperties::default(),
        })
    }

    /// Sets the will message.
    pub fn will_message(mut self, will: Will) -> Self {
        self.session.will = Some(will);
        self
    }

    /// Sets the reconnect behaviour.
    pub fn reconnect(mut self, reconnect: ReconnectOptions) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the offline queue.
    pub fn offline_queue(mut self, capacity: usize, policy: DropPolicy) -> Self {
        self.offline_queue = OfflineQueueOptions { capacity, policy };
        self
    }

    /// Sets what the client's transport needs besides.
    pub fn transport(mut self, transport: T) -> Self {
        self.transport = transport;
        self
    }

    /// The session options the client connects with: [`ConnectOptions::session`], with
    /// an empty user name added where MQTT 3.x would otherwise send a password alone
    /// [MQTT-3.1.2-22] (a token set with [`ConnectOptions::token`]).
    pub fn session_options(&self) -> ClientOptions {
        let mut session = self.session.clone();
        if !session.version.is_v5() && session.password.is_some() && session.username.is_none() {
            session.username = Some("".into());
        }
        session
    }

    /// The same options with another transport part.
    pub fn map_transport<U>(self, f: impl FnOnce(T) -> U) -> ConnectOptions<U> {
        ConnectOptions {
            url: self.url,
            session: self.session,
            reconnect: self.reconnect,
            offline_queue: self.offline_queue,
            subscription_capacity: self.subscription_capacity,
            event_capacity: self.event_capacity,
            response_topic: self.response_topic,
            transport: f(self.transport),
        }
    }
}

/// How one topic filter is subscribed: the MQTT subscription options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Maximum QoS, No Local, Retain As Published, Retain Handling (the last three are
    /// MQTT 5 only). Default: QoS 0, retained messages sent on subscribe.
    pub options: SubscriptionOptions,
}

impl SubscribeOptions {
    /// Options at `qos`, everything else at its default.
    pub fn new(qos: QoS) -> Self {
        Self {
            options: SubscriptionOptions::new(qos),
        }
    }

    /// Sets No Local (MQTT 5): do not receive our own publications.
    pub fn no_local(mut self, no_local: bool) -> Self {
        self.options.no_local = no_local;
        self
    }

    /// Sets Retain As Published (MQTT 5).
    pub fn retain_as_published(mut self, retain_as_published: bool) -> Self {
        self.options.retain_as_published = retain_as_published;
        self
    }

    /// Sets Retain Handling (MQTT 5).
    pub fn retain_handling(mut self, handling: RetainHandling) -> Self {
        self.options.retain_handling = handling;
        self
    }
}

impl From<QoS> for SubscribeOptions {
    fn from(qos: QoS) -> Self {
        Self::new(qos)
    }
}

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
