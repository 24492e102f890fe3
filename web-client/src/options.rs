//! Runtime options: [`ConnectOptions`], `protocol::client`'s options shared with
//! `native-client` with this client's transport part, [`TimerMode`]; and the other
//! options, re-exported from there. Code moves between the two clients unchanged but
//! for the transport part.

pub use protocol::client::{
    DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions, SubscribeOptions,
};

/// How [`Client::connect`](crate::Client::connect) reaches the broker and what it does
/// when the connection drops: `protocol`'s options (the same builder as
/// `native-client`'s) with the [`TimerMode`] as the transport part (default:
/// [`TimerMode::Worker`]). The URL is `ws://host[:port]/path` or `wss://…`; a URL
/// starting with `/` is taken relative to the page (`/mqtt` on an `https` page is
/// `wss://<page host>/mqtt`), which is how a web app deployed next to the broker finds
/// it.
///
/// ```
/// use std::time::Duration;
/// use web_client::{ConnectOptions, ConnectOptionsExt, DropPolicy, QoS, TimerMode};
///
/// let options = ConnectOptions::new("wss://broker.example/mqtt")
///     .client_id("dashboard-7f3a")
///     .keep_alive(Duration::from_secs(30))
///     .session_expiry(3600)
///     .offline_queue(100, DropPolicy::DropOldest)
///     .will("dash/dashboard-7f3a/state", "gone", QoS::AtLeastOnce, true)
///     .timer(TimerMode::MainThread);
/// assert_eq!(options.session.client_id, "dashboard-7f3a");
/// ```
pub type ConnectOptions = protocol::client::ConnectOptions<TimerMode>;

/// The builder method of this client's transport part of [`ConnectOptions`].
pub trait ConnectOptionsExt {
    /// Sets the timer mode.
    fn timer(self, timer: TimerMode) -> Self;
}

impl ConnectOptionsExt for ConnectOptions {
    fn timer(self, timer: TimerMode) -> Self {
        self.transport(timer)
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
