//! Runtime options: [`ConnectOptions`] (with [`ReconnectOptions`],
//! [`OfflineQueueOptions`] and [`TimerMode`]), [`PublishOptions`] and
//! [`SubscribeOptions`]. Every field states its default. They mirror `native-client`'s
//! options, so code moves between the two clients unchanged.

use std::time::Duration;

use bytes::Bytes;
pub use protocol::client::{DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions};
use protocol::{
    ClientOptions, ProtocolVersion, QoS, RetainHandling, SubscriptionOptions, TopicName, Will,
    WillProperties,
};

/// How [`Client::connect`](crate::Client::connect) reaches the broker and what it does
/// when the connection drops.
///
/// ```
/// use std::time::Duration;
/// use web_client::{ConnectOptions, DropPolicy, QoS};
///
/// let options = ConnectOptions::new("wss://broker.example/mqtt")
///     .client_id("dashboard-7f3a")
///     .keep_alive(Duration::from_secs(30))
///     .session_expiry(3600)
///     .offline_queue(100, DropPolicy::DropOldest)
///     .will("dash/dashboard-7f3a/state", "gone", QoS::AtLeastOnce, true);
/// assert_eq!(options.session.client_id, "dashboard-7f3a");
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://host[:port]/path` or `wss://…`; a URL starting with `/` is taken relative to
    /// the page (`/mqtt` on an `https` page is `wss://<page host>/mqtt`), which is how a
    /// web app deployed next to the broker finds it.
    pub url: String,
    /// Everything CONNECT carries and how the session behaves: protocol version (default
    /// MQTT 5), client id, clean start, keep alive, will, credentials, session expiry,
    /// timeouts. See [`ClientOptions`] for each default.
    pub session: ClientOptions,
    /// Reconnecting after the connection drops. Default: on, see [`ReconnectOptions`].
    pub reconnect: ReconnectOptions,
    /// Publications made while disconnected. Default: see [`OfflineQueueOptions`].
    pub offline_queue: OfflineQueueOptions,
    /// Messages buffered per [`Subscription`](crate::Subscription) that its reader has
    /// not taken yet; more are dropped and reported with
    /// [`Event::MessagesDropped`](crate::Event::MessagesDropped). Default: 4096.
    pub subscription_capacity: usize,
    /// Events buffered per [`Client::events`](crate::Client::events) stream; a reader
    /// that falls further behind loses the oldest. Default: 256.
    pub event_capacity: usize,
    /// Topic on which [`Client::request`](crate::Client::request) asks for responses.
    /// Default: `None`, meaning `res/{client id}`.
    pub response_topic: Option<String>,
    /// Which clock drives keep alive, timeouts and reconnect backoff. Default:
    /// [`TimerMode::Worker`].
    pub timer: TimerMode,
}

impl ConnectOptions {
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
            timer: TimerMode::default(),
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

    /// Authenticates with a token (a JWT, an OAuth access token) in the password field,
    /// the convention of brokers that accept tokens. MQTT 3.1.1 allows a password only
    /// with a user name [MQTT-3.1.2-22], so an empty user name is sent there when none
    /// is set.
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
    /// keeps the subscriptions and queues messages for them while the page is offline.
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

    /// Sets the timer mode.
    pub fn timer(mut self, timer: TimerMode) -> Self {
        self.timer = timer;
        self
    }
}

/// Which clock drives the client's timer (keep alive, connect and ping timeouts,
/// reconnect backoff).
///
/// Browsers throttle `setTimeout` on the main thread of a hidden tab: to once a second,
/// and after some minutes hidden to once a minute ("intensive throttling" in Chromium).
/// A keep alive of 60 s then slips far enough for the broker to drop the connection
/// (it allows 1.5 times the keep alive, [MQTT-3.1.2-24]). Timers in a dedicated Web
/// Worker are not throttled that way, so the default runs them there and only posts a
/// message to the page when one fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerMode {
    /// A shared dedicated worker (started from a `blob:` URL, one per page) runs the
    /// timers. Falls back to [`TimerMode::MainThread`] where workers cannot be started
    /// (a Content Security Policy without `worker-src blob:`, or no `Worker` at all).
    #[default]
    Worker,
    /// `setTimeout` on the thread the client runs on.
    MainThread,
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
