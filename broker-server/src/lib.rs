//! # broker-server
//!
//! The mqtt-web broker: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS and WebSocket, with
//! retained messages, persistent sessions, wills, shared subscriptions and `$SYS`
//! topics; one HTTP port serves MQTT over WebSocket, the dashboard, `/metrics`, health
//! and the admin API.
//!
//! ```text
//!  client ─TCP─► transport::tcp ─► connection task ──► Broker::publish ─► Router ─► Session mailboxes
//!                                   (ServerSession)    (retain, route,                 │
//!                                                       deliver, forward)              │
//!  client ◄──────────────────────── connection task ◄── mailbox (bounded) ◄────────────┘
//!
//!  client ─TLS─► transport::tls ────────────────────┐
//!  browser ─WS/WSS─► http (/mqtt) ─► transport::ws ─┴─► the same connection task
//! ```
//!
//! Calls go one way, down the data path: transport → connection → broker (route,
//! deliver) → session / mailbox. Storage, security and limits are leaves the layers
//! above consult; the broker's [`Backplane`] is where what lies beyond this node (a
//! cluster) plugs in.
//!
//! # Layout
//!
//! Down the data path:
//! - `transport`: listeners (TCP, TLS, WebSocket); hand byte streams to the
//!   connection task. `http`: the HTTP listener (`/mqtt`, dashboard, `/metrics`,
//!   health, admin API).
//! - `connection`: one task per client: the socket (reads held back by the client's
//!   budgets, writes with a timeout: `connection::io`) and its
//!   `protocol::session::ServerSession`; CONNECT, PUBLISH, SUBSCRIBE, acknowledgements.
//! - `broker`: the shared state. Publishing (retain, route, deliver into mailboxes,
//!   forward beyond the node), wills, session attach/takeover/end, and the
//!   [`Backplane`] seam with its single-node [`Local`].
//! - `router`: subscription trie, shared groups, retained messages (no IO).
//! - `session`: what outlives a connection: mailbox, subscriptions, detached state.
//!
//! Leaves, called from above and never calling up:
//! - `storage`: durable state (embedded redb by default): records operations, answers
//!   barriers, group commit, recovery.
//! - `security`: login (password file, JWT, certificate), topic access (ACL), and
//!   enhanced authentication (AUTH: the mechanism interface and registry, SCRAM);
//!   reloadable.
//! - `limits`: abuse limits as accounting: connections per IP, connection and publish
//!   rates, inbound bandwidth budgets; the counters of every limit reached.
//! - `message`: the shared message and per-subscriber delivery.
//! - [`config`]: the TOML configuration and its plain types, every limit a key with a
//!   documented default.
//!
//! Beside the path: `bridge` (this broker as a client of other brokers: `[[bridges]]`),
//! `history` (the bounded topic history served on `$history/query`),
//! `expiry` (will-delay and session-expiry timers), `clients` (the
//! connections open now), `sys` (`$SYS` topics), `metrics` (counters). `main.rs`:
//! parse the command line, load the config, init tracing, call [`run`].
//!
//! # Public interface
//!
//! [`start`] / [`run`] / [`RunningBroker`], [`Broker`], [`config`], the
//! enhanced-authentication interface ([`AuthMechanism`], …) and the [`Backplane`] seam.
//! Everything else is internal; what the binary's subcommands, the benchmarks, the
//! example and the integration tests need of it is re-exported from the hidden
//! `internals` module, which is not a stable interface.

mod bridge;
mod broker;
mod clients;
mod clock;
pub mod cluster;
pub mod config;
mod connection;
mod expiry;
mod history;
mod http;
mod limits;
mod message;
mod metrics;
mod router;
mod security;
mod session;
mod storage;
mod sys;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use broker::Broker;
pub use broker::backplane::{
    Backplane, Claim, Connecting, Handover, Interest, Local, Refused, Release,
};
pub use config::Config;
pub use security::enhanced::{AuthExchange, AuthMechanism, AuthRegistry, AuthStep};
pub use security::{Identity, SecurityError};
pub use transport::tls::{TlsError, TlsStore};

/// Not a stable interface: the internals that the binary's `passwd` and `store`
/// subcommands, the benchmarks, the `fill_store` example and the integration tests
/// reach into (the store's format for damaged-store tests, the router for its
/// benchmark, …). Gathered here so that the library's public surface stays the
/// items above.
#[doc(hidden)]
pub mod internals {
    /// [`crate::storage`]: opening a store, its operations and format.
    pub mod storage {
        pub use crate::storage::{
            Op, QueueEntry, SessionRecord, StoreStats, StoredRef, codec, embedded, open, sys_topics,
        };
    }
    /// [`crate::session`]: sessions as the router and the store see them.
    pub mod session {
        pub use crate::session::{Owner, QueueLimits, Session, StoredSubscription};
    }
    /// [`crate::router`]: the subscription trie (its benchmark).
    pub mod router {
        pub use crate::router::{Router, SubEntry};
    }
    /// [`crate::message`]: the shared message and one delivery of it.
    pub mod message {
        pub use crate::message::{Delivery, Message};
    }
    /// [`crate::security`]: access checks and the password file.
    pub mod security {
        pub use crate::security::{Access, Identity, Security, passwd};
    }
    /// [`crate::http`]: the axum app, without a socket.
    pub mod http {
        pub use crate::http::metrics::render;
        pub use crate::http::{HttpState, app};
    }
    /// [`crate::limits`]: the limits as counted.
    pub mod limits {
        pub use crate::limits::Limit;
    }
    /// [`crate::transport`]: the WebSocket message bound.
    pub mod transport {
        pub use crate::transport::ws::MAX_WS_MESSAGE;
    }
}

/// A running broker: its bound addresses and the handle to stop it.
#[derive(Debug)]
pub struct RunningBroker {
    /// The shared state (for tests and the admin API).
    pub broker: Arc<Broker>,
    /// The bound MQTT over TCP addresses, in configuration order (port 0 resolved).
    pub tcp_addrs: Vec<SocketAddr>,
    /// The bound MQTT over TLS addresses (`listeners.tls`).
    pub tls_addrs: Vec<SocketAddr>,
    /// The bound HTTP addresses (`http.listeners`).
    pub http_addrs: Vec<SocketAddr>,
    /// The bound HTTPS addresses (`http.tls_listeners`).
    pub https_addrs: Vec<SocketAddr>,
    /// The TLS configuration of every TLS listener, when there is one.
    pub tls: Option<Arc<transport::tls::TlsStore>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningBroker {
    /// Reads the TLS certificate, key and client CA again (what SIGHUP does): new
    /// connections use them, open ones are not touched. On error the old ones stay.
    pub fn reload_tls(&self) -> Result<(), transport::tls::TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Err(transport::tls::TlsError::MissingCertificate),
        }
    }

    /// Re-reads the password file, JWT keys and ACL file (what SIGHUP does): new
    /// logins use them, open connections stay and follow the new rules. On error the
    /// old ones stay.
    pub fn reload_security(&self) -> Result<(), security::SecurityError> {
        self.broker.security.reload()?;
        register_scram(&self.broker);
        Ok(())
    }

    /// A client connection served in this process without a socket: the client's end
    /// of an in-memory pipe (`tokio::io::duplex`, 64 KiB each way) whose other end the
    /// broker serves as it serves a TCP connection, from 127.0.0.1 on the listener
    /// named `in-process` (limits, authentication and ACLs apply; the per-address
    /// connection limit does not). For an application that embeds the broker, and for
    /// tests that need no port. Must be called within the broker's runtime.
    pub fn connect_in_process(&self) -> tokio::io::DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let meta = clients::ConnectionMeta {
            listener: Arc::from("in-process"),
            ..clients::ConnectionMeta::tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        tokio::spawn(connection::serve_with(self.broker.clone(), server, meta));
        client
    }

    /// Shuts down in a defined order:
    /// 1. stop accepting (listeners and timers end; a CONNECT that still arrives gets
    ///    0x88 Server unavailable),
    /// 2. kick every client (v5: DISCONNECT 0x8B Server shutting down),
    /// 3. wait for every connection task to end: each writes what it has queued and its
    ///    DISCONNECT, then stores its session ([`SHUTDOWN_GRACE`] at most: a client that
    ///    reads nothing is not waited for longer),
    /// 4. flush and close the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.broker.stopping.cancel();
        self.broker.clients.disconnect_all();
        while self.tasks.join_next().await.is_some() {}
        let connections = &self.broker.connections;
        connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = connections.len(),
                "connections still open after the shutdown grace period; closing the store without them"
            );
        }
        if let broker::backplane::Plane::Nats(plane) = &self.broker.backplane {
            plane.shutdown().await;
        }
        storage::recovery::close(self.broker).await;
    }
}

/// How long [`RunningBroker::shutdown`] waits for the connection tasks to end.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds every listener of `config` and starts serving. Returns once bound, so the
/// addresses are known (tests bind port 0).
pub async fn start(mut config: Config) -> anyhow::Result<RunningBroker> {
    config
        .cluster
        .validate()
        .map_err(|err| anyhow::anyhow!("[cluster]: {err}"))?;
    config
        .history
        .validate()
        .map_err(|err| anyhow::anyhow!("[history]: {err}"))?;
    // The security files and the store are read before any listener opens.
    let security = security::Security::load(&config.auth)
        .map_err(|err| anyhow::anyhow!("cannot load the [auth] settings: {err}"))?;
    // A cluster node joins its cluster before it serves anyone.
    let (plane, feeds) = match config.cluster.backend {
        cluster::config::ClusterBackend::None => (broker::backplane::Plane::Local, None),
        cluster::config::ClusterBackend::Nats => {
            let (plane, feeds) = cluster::plane::NatsPlane::connect(&config.cluster)
                .await
                .map_err(|err| anyhow::anyhow!("cannot join the cluster: {err:#}"))?;
            // A message must fit a NATS message to cross nodes: the servers' max_payload
            // (less room for the headers) bounds the Maximum Packet Size announced.
            let fits = plane.max_packet_size();
            if fits < config.limits.max_packet_size {
                tracing::info!(
                    configured = config.limits.max_packet_size,
                    announced = fits,
                    "limits.max_packet_size lowered to what NATS carries (max_payload)"
                );
                config.limits.max_packet_size = fits;
            }
            (
                broker::backplane::Plane::Nats(plane.clone()),
                Some((plane, feeds)),
            )
        }
    };
    let broker = storage::recovery::open(config, security, plane)?;
    if let Some((plane, feeds)) = feeds {
        broker.router.route_groups_elsewhere();
        plane.run(&broker, feeds);
    }
    register_scram(&broker);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut tcp_addrs = Vec::new();
    for addr in &broker.config.listeners.tcp {
        let listener = transport::bind(*addr)
            .map_err(|err| anyhow::anyhow!("cannot listen for MQTT on {addr}: {err}"))?;
        tcp_addrs.push(listener.local_addr()?);
        tasks.spawn(transport::tcp::accept_loop(
            broker.clone(),
            listener,
            shutdown_rx.clone(),
        ));
    }
    let (tls, tls_addrs, http_addrs, https_addrs) =
        start_tls_and_http(&broker, &shutdown_rx, &mut tasks).await?;
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
                    _ = ticker.tick() => {
                        broker.router.retained_mut().purge_expired(clock::now());
                        broker.history.sweep(history::now_ms());
                    }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    bridge::start_all(&broker, &shutdown_rx, &mut tasks).await;
    Ok(RunningBroker {
        broker,
        tcp_addrs,
        tls_addrs,
        http_addrs,
        https_addrs,
        tls,
        shutdown,
        tasks,
    })
}

/// The addresses [`start_tls_and_http`] bound, with the TLS store if any.
type Bound = (
    Option<Arc<transport::tls::TlsStore>>,
    Vec<SocketAddr>,
    Vec<SocketAddr>,
    Vec<SocketAddr>,
);

/// Binds the MQTT over TLS listeners and the HTTP(S) listeners, loading the TLS
/// configuration first if any of them needs it.
async fn start_tls_and_http(
    broker: &Arc<Broker>,
    shutdown_rx: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Bound> {
    let config = &broker.config;
    let tls = if config.listeners.tls.is_empty() && config.http.tls_listeners.is_empty() {
        None
    } else {
        let store = transport::tls::TlsStore::load(&config.tls)
            .map_err(|err| anyhow::anyhow!("cannot start the TLS listeners: {err}"))?;
        Some(Arc::new(store))
    };
    let bind = |addr: SocketAddr, what: &'static str| async move {
        transport::bind(addr)
            .map_err(|err| anyhow::anyhow!("cannot listen for {what} on {addr}: {err}"))
    };
    let mut tls_addrs = Vec::new();
    for &addr in &config.listeners.tls {
        let listener = bind(addr, "MQTT over TLS").await?;
        tls_addrs.push(listener.local_addr()?);
        let store = tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("TLS not loaded"))?;
        tasks.spawn(transport::tls::accept_loop(
            broker.clone(),
            listener,
            store,
            shutdown_rx.clone(),
        ));
    }
    let app = http::app(http::HttpState::new(broker.clone(), shutdown_rx.clone()));
    let mut http_addrs = Vec::new();
    let mut https_addrs = Vec::new();
    let plain = config.http.listeners.iter().map(|a| (*a, None));
    let secure = config.http.tls_listeners.iter().map(|a| (*a, tls.clone()));
    for (addr, store) in plain.chain(secure) {
        let listener = bind(addr, "HTTP").await?;
        let local = listener.local_addr()?;
        if store.is_some() {
            https_addrs.push(local);
        } else {
            http_addrs.push(local);
        }
        tasks.spawn(http::serve(
            broker.clone(),
            listener,
            store,
            app.clone(),
            shutdown_rx.clone(),
        ));
    }
    Ok((tls, tls_addrs, http_addrs, https_addrs))
}

/// Runs the broker until `shutdown` resolves (SIGINT/SIGTERM in `main`).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(config).await?;
    #[cfg(unix)]
    reload_on_sighup(running.broker.clone(), running.tls.clone());
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Offers SCRAM-SHA-256 once the password file has SCRAM credentials (the mechanism
/// follows reloads of the policy it reads).
fn register_scram(broker: &Broker) {
    if broker.security.has_scram() {
        broker
            .auth
            .register(Arc::new(broker.security.scram_mechanism()));
    }
}

/// Reloads the security policy (password file, JWT keys, ACL file) and the TLS
/// configuration on every SIGHUP, logging the outcome; open connections stay, and a
/// file that fails to load leaves the previous one in force. A SIGHUP must not end the
/// process, as its default action would: `systemctl reload` sends it.
#[cfg(unix)]
fn reload_on_sighup(broker: Arc<Broker>, tls: Option<Arc<transport::tls::TlsStore>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGHUP: users, keys, the ACL file and TLS certificates will not reload");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match broker.security.reload() {
                Ok(()) => {
                    register_scram(&broker);
                    tracing::info!("SIGHUP: users and keys reloaded, ACL too if configured");
                }
                Err(err) => {
                    tracing::error!(%err, "security reload failed; the previous users, keys and rules stay");
                }
            }
            match &tls {
                Some(tls) => {
                    if let Err(err) = tls.reload() {
                        tracing::error!(%err, "TLS reload failed; the previous certificate stays");
                    }
                }
                None => tracing::debug!("SIGHUP: no TLS listener"),
            }
        }
    });
}
