//! The node's NATS connection, made from `[cluster.nats]`.
//!
//! One connection carries everything: core publishes and subscriptions, JetStream and
//! key-value calls. It reconnects by itself (forever, with a capped backoff) and lists
//! every configured URL, so losing one NATS server moves the node to another. Whether it
//! is connected right now is [`Link::connected`] (`/metrics`, `$SYS`).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::{Client, ConnectOptions};

use super::config::ClusterConfig;

/// The longest pause between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Commands the NATS client queues before its writer takes them.
const CLIENT_CAPACITY: usize = 65_536;
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's connection to NATS.
#[derive(Debug, Clone)]
pub struct Link {
    /// The client (cheap to clone: a handle).
    pub client: Client,
}

impl Link {
    /// Connects as node `node` with the settings of `config`. Fails if no configured
    /// server answers within the connection timeout: a node must not start outside its
    /// cluster, it would serve sessions nobody else knows of.
    pub async fn connect(config: &ClusterConfig, node: &str) -> anyhow::Result<Self> {
        let nats = &config.nats;
        let mut options = match &nats.credentials_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .with_context(|| format!("cluster.nats.credentials_file {}", path.display()))?,
            None => ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&nats.user, &nats.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &nats.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &nats.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&nats.tls_cert, &nats.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let options = options
            .name(format!("broker-server {node}"))
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(Duration::from_millis(config.publish_timeout_ms)))
            .max_reconnects(None)
            // Commands queued for the connection: a burst of forwarded messages waits
            // here, and only a full queue refuses one (see `routing`).
            .client_capacity(CLIENT_CAPACITY)
            .reconnect_delay_callback(|attempts| {
                let millis = 50u64.saturating_mul(1 << attempts.min(6) as u64);
                Duration::from_millis(millis).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("cluster: NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("cluster: NATS disconnected, reconnecting")
                    }
                    other => tracing::debug!(event = %other, "cluster: NATS event"),
                }
            });
        let urls: Vec<async_nats::ServerAddr> = nats
            .urls
            .iter()
            .map(|url| {
                url.parse()
                    .with_context(|| format!("cluster.nats.urls: `{url}` is not a NATS URL"))
            })
            .collect::<anyhow::Result<_>>()?;
        let client = options
            .connect(urls)
            .await
            .with_context(|| format!("cannot reach NATS at {}", nats.urls.join(", ")))?;
        Ok(Self { client })
    }

    /// Whether the connection is up now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}
