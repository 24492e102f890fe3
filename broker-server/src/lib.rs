//! # broker-server
//!
//! The mqtt-web broker: MQTT 3.1, 3.1.1 and 5.0 over TCP (TLS and WebSocket arrive with
//! the HTTP issue), with retained messages, persistent sessions, wills, shared
//! subscriptions and `$SYS` topics.
//!
//! ```text
//!  client ─TCP─► transport::tcp ─► connection task ──► Broker::publish ─► Router ─► Session mailboxes
//!                                   (ServerSession)       (retain, route)              │
//!  client ◄──────────────────────── connection task ◄── mailbox (bounded) ◄────────────┘
//! ```
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, every limit a key with a documented default.
//! - [`transport`]: listeners; hand byte streams to the connection task.
//! - [`connection`]: one task per client: socket + `protocol::session::ServerSession`.
//! - [`broker`]: shared state: publishing, session attach/takeover/end.
//! - [`router`]: subscription trie, shared groups, retained messages (no IO).
//! - [`session`]: what outlives a connection: mailbox, subscriptions, stored state.
//! - [`auth`]: the enhanced-authentication (AUTH) interface and mechanism registry.
//! - [`expiry`]: will-delay and session-expiry timers.
//! - [`message`]: the shared message and per-subscriber delivery.
//! - [`sys`]: `$SYS` topics; [`metrics`]: counters.
//! - `main.rs`: parse the command line, load the config, init tracing, call [`run`].

pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod connection;
pub mod expiry;
pub mod message;
pub mod metrics;
pub mod router;
pub mod session;
pub mod sys;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use broker::Broker;
pub use config::Config;

/// A running broker: its bound addresses and the handle to stop it.
#[derive(Debug)]
pub struct RunningBroker {
    /// The shared state (for tests and the admin API).
    pub broker: Arc<Broker>,
    /// The bound MQTT over TCP addresses, in configuration order (port 0 resolved).
    pub tcp_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningBroker {
    /// Stops accepting, disconnects every client (v5: 0x8B Server shutting down) and
    /// waits for the listeners to stop.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Give connection tasks a moment to write their DISCONNECT.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Binds every listener of `config` and starts serving. Returns once bound, so the
/// addresses are known (tests bind port 0).
pub async fn start(config: Config) -> anyhow::Result<RunningBroker> {
    let broker = Arc::new(Broker::new(config));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut tcp_addrs = Vec::new();
    for addr in &broker.config.listeners.tcp {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen for MQTT on {addr}: {err}"))?;
        tcp_addrs.push(listener.local_addr()?);
        tasks.spawn(transport::tcp::accept_loop(
            broker.clone(),
            listener,
            shutdown_rx.clone(),
        ));
    }
    let interval = broker.config.sys.interval_secs;
    if interval > 0 {
        let broker = broker.clone();
        let mut shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            let mut sys = sys::SysPublisher::new(clock::now());
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(interval));
            loop {
                tokio::select! {
                    _ = ticker.tick() => sys.publish(&broker, clock::now()),
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    {
        let broker = broker.clone();
        let mut shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = ticker.tick() => { broker.router.retained_mut().purge_expired(clock::now()); }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    Ok(RunningBroker {
        broker,
        tcp_addrs,
        shutdown,
        tasks,
    })
}

/// Runs the broker until `shutdown` resolves (SIGINT/SIGTERM in `main`).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
