//! Runtime options: [`ConnectOptions`] (with [`ReconnectOptions`] and
//! [`OfflineQueueOptions`]), [`PublishOptions`] and [`SubscribeOptions`]. Every field
//! states its default.

use std::time::Duration;

use bytes::Bytes;
pub use protocol::client::{DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions};
use protocol::{
    ClientOptions, ProtocolVersion, QoS, RetainHandling, SubscriptionOptions, TopicName, Will,
    WillProperties,
};

use crate::tls::TlsOptions;

/// How [`Client::connect`](crate::Client::connect) reaches the broker and what it does
/// when the connection drops.
///
/// ```
/// use std::time::Duration;
/// use native_client::{ConnectOptions, QoS};
///
/// let options = ConnectOptions::new("mqtt://localhost:1883")
///     .client_id("sensor-17")
///     .keep_alive(Duration::from_secs(30))
///     .will("iot/5/sensor-17/$state", "lost", QoS::AtLeastOnce, true);
/// assert_eq!(options.session.client_id, "sensor-17");
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `mqtt://host[:port]`, `mqtts://`, `ws://`, `wss://` (see [`BrokerUrl`](crate::BrokerUrl)).
    /// Credentials in the URL are used when `session` has none.
    pub url: String,
    /// Everything CONNECT carries and how the session behaves: protocol version (default
    /// MQTT 5), client id, clean start, keep alive, will, credentials, session expiry,
    /// timeouts. See [`ClientOptions`] for each default.
    pub session: ClientOptions,
    /// TLS for `mqtts://` and `wss://`. Default: the system's trust store.
    pub tls: TlsOptions,
    /// Reconnecting after the connection drops. Default: on, see [`ReconnectOptions`].
    pub reconnect: ReconnectOptions,
    /// Publications made while disconnected. Default: see [`OfflineQueueOptions`].
    pub offline_queue: OfflineQueueOptions,
    /// Messages buffered per [`Subscription`](crate::Subscription) that its reader has
    /// not taken yet; more are dropped and reported with
    /// [`Event::MessagesDropped`](crate::Event::MessagesDropped). Default: 4096.
    pub subscription_capacity: usize,
    /// Events buffered per [`Client::events`](crate::Client::events) receiver before a
    /// slow receiver lags. Default: 256.
    pub event_capacity: usize,
    /// Topic on which [`Client::request`](crate::Client::request) asks for responses.
    /// Default: `None`, meaning `res/{client id}`.
    pub response_topic: Option<String>,
}

impl ConnectOptions {
    /// Options for `url` with every other field at its default (client id empty: an
    /// MQTT 5 server assigns one).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            session: ClientOptions::new(""),
            tls: TlsOptions::default(),
            reconnect: ReconnectOptions::default(),
            offline_queue: OfflineQueueOptions::default(),
            subscription_capacity: 4096,
            event_capacity: 256,
            response_topic: None,
        }
    }

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
    /// connection). With a non-zero value reconnects resume the session.
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

    /// Sets the TLS options.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
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
