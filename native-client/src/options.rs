//! Runtime options: [`ConnectOptions`], `protocol::client`'s options shared with
//! `web-client` with this client's transport part, [`TlsOptions`]; and the other
//! options, re-exported from there.

pub use protocol::client::{
    DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions, SubscribeOptions,
};

use crate::tls::TlsOptions;

/// How [`Client::connect`](crate::Client::connect) reaches the broker and what it does
/// when the connection drops: `protocol`'s options (the same builder as `web-client`'s)
/// with TLS for `mqtts://` and `wss://` as the transport part (default: the system's
/// trust store). The URL is `mqtt://host[:port]`, `mqtts://`, `ws://` or `wss://` (see
/// [`BrokerUrl`](crate::BrokerUrl)); credentials in the URL are used when `session`
/// has none.
///
/// ```
/// use std::time::Duration;
/// use native_client::{ConnectOptions, ConnectOptionsExt, QoS, TlsOptions};
///
/// let options = ConnectOptions::new("mqtts://localhost:8883")
///     .client_id("sensor-17")
///     .keep_alive(Duration::from_secs(30))
///     .will("iot/5/sensor-17/$state", "lost", QoS::AtLeastOnce, true)
///     .tls(TlsOptions::default().server_name("localhost"));
/// assert_eq!(options.session.client_id, "sensor-17");
/// ```
pub type ConnectOptions = protocol::client::ConnectOptions<TlsOptions>;

/// The builder method of this client's transport part of [`ConnectOptions`].
pub trait ConnectOptionsExt {
    /// Sets the TLS options.
    fn tls(self, tls: TlsOptions) -> Self;
}

impl ConnectOptionsExt for ConnectOptions {
    fn tls(self, tls: TlsOptions) -> Self {
        self.transport(tls)
    }
}
