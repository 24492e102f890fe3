//! The broker under test, started in the test's runtime on an OS-chosen loopback port.

use std::net::SocketAddr;
use std::sync::Arc;

use broker_server::{Broker, Config, RunningBroker};

use crate::PATIENCE;

/// The configuration every end-to-end test starts from: loopback, port 0 (the OS picks
/// a free port, so tests run in parallel and never collide), no `$SYS` chatter.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.listeners.tcp = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    config.http.listeners = Vec::new();
    config.sys.interval_secs = 0;
    config.storage = broker_server::config::StorageConfig::memory();
    config
}

/// A broker running in this test's tokio runtime. Dropping it stops the listeners
/// (their tasks are aborted); [`TestBroker::stop`] shuts down gracefully.
#[derive(Debug)]
pub struct TestBroker {
    running: RunningBroker,
}

impl TestBroker {
    /// Starts a broker with [`test_config`].
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    /// Starts a broker with `config` (whose listeners should bind port 0).
    pub async fn with_config(config: Config) -> Self {
        let running = broker_server::start(config)
            .await
            .expect("the broker starts on a loopback port");
        Self { running }
    }

    /// The MQTT over TCP address (the first TCP listener).
    pub fn addr(&self) -> SocketAddr {
        self.running.tcp_addrs[0]
    }

    /// The host to give peers: the listener's IP as text.
    pub fn host(&self) -> String {
        self.addr().ip().to_string()
    }

    /// The port the OS picked, to give peers.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The broker's shared state, to wait on what a peer did.
    pub fn state(&self) -> &Arc<Broker> {
        &self.running.broker
    }

    /// Waits until no connection is attached to `client_id`'s session (or it has none):
    /// the broker has finished with that client's connection, will included.
    pub async fn wait_client_gone(&self, client_id: &str) {
        let gone = || {
            self.state()
                .session(client_id)
                .is_none_or(|session| !session.is_online())
        };
        tokio::time::timeout(PATIENCE, async {
            while !gone() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("client {client_id:?} still connected after {PATIENCE:?}"));
    }

    /// Shuts the broker down: v5 clients get DISCONNECT 0x8B, listeners stop.
    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}
