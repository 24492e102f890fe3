//! The HTTP listener: everything a browser or an operator needs, on one port.
//!
//! | path | what |
//! |---|---|
//! | `/mqtt` | MQTT over WebSocket ([`crate::transport::ws`]) |
//! | `/metrics` | Prometheus text format ([`metrics`]) |
//! | `/healthz` | 200 while the process runs |
//! | `/readyz` | 200 while serving, 503 once shutting down |
//! | `/api/...` | the admin API, bearer token ([`admin`], [`login`]); `/api/openapi.json` describes it |
//! | anything else | the dashboard ([`dashboard`]) |
//!
//! [`app`] builds the router from an [`HttpState`] and nothing else, so tests call it
//! with `tower::ServiceExt::oneshot` and no socket; [`serve`] runs it on a listener,
//! plain or TLS.
//!
//! # Layout
//!
//! - this module: [`HttpState`], [`PeerInfo`], [`app`], health;
//! - [`serve`]: accepting (TLS handshakes off the accept path) and graceful shutdown;
//! - [`origin`]: which web pages may open `/mqtt` (`http.allowed_origins`);
//! - [`metrics`], [`admin`], [`dashboard`]: the routes; [`login`]: operator sessions.

pub(crate) mod admin;
pub(crate) mod dashboard;
pub(crate) mod login;
pub(crate) mod metrics;
pub(crate) mod origin;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, extract::ws::rejection::WebSocketUpgradeRejection};
use bytestring::ByteString;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;

pub(crate) use serve::serve;

use crate::broker::Broker;
use crate::clients::{ListenerStats, Transport};
use crate::metrics::Counter;
use crate::transport::ws;

/// What every route shares.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// The broker the routes report on and `/mqtt` connects to.
    pub broker: Arc<Broker>,
    /// Turns `true` on shutdown: `/readyz` answers 503, WebSocket clients are
    /// disconnected like TCP ones.
    pub shutdown: watch::Receiver<bool>,
    /// Where the dashboard comes from.
    dashboard: Arc<dashboard::Dashboard>,
    /// `http.allowed_origins`, parsed (and explained in the log) once.
    pub origins: Arc<origin::AllowedOrigins>,
}

impl HttpState {
    /// The state for `broker`, with the dashboard its configuration names.
    pub fn new(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) -> Self {
        let dashboard = Arc::new(dashboard::Dashboard::from_config(&broker.config.http));
        let origins = Arc::new(origin::AllowedOrigins::from_config(
            &broker.config.http.allowed_origins,
        ));
        Self {
            broker,
            shutdown,
            dashboard,
            origins,
        }
    }
}

/// Who is on the other end of an HTTP connection (a request extension set by
/// [`serve`]; absent in `oneshot` tests).
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// Whether the connection is HTTPS.
    pub tls: bool,
    /// The client certificate's Common Name, with `tls.cert_cn_as_username`.
    pub cert_username: Option<ByteString>,
    /// The listener's figures.
    pub stats: Arc<ListenerStats>,
    /// The connection's place in the per-IP count (`crate::limits`), held as long as
    /// the HTTP connection or the WebSocket on it: held, never read (dropping it gives
    /// the place back).
    #[allow(dead_code)]
    pub admitted: Option<Arc<crate::limits::Admitted>>,
}

impl PeerInfo {
    fn unknown() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: false,
            cert_username: None,
            stats: Arc::new(ListenerStats {
                listener: Arc::from(""),
                transport: Transport::Ws,
                accepted: Counter::default(),
            }),
            admitted: None,
        }
    }
}

/// The whole HTTP application.
pub fn app(state: HttpState) -> Router {
    let compressed = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/api", admin::router(&state))
        .fallback(dashboard::handler)
        .layer(CompressionLayer::new());
    Router::new()
        .route("/mqtt", get(mqtt))
        .merge(compressed)
        .with_state(state)
}

async fn mqtt(
    State(state): State<HttpState>,
    peer: Option<Extension<ConnectInfo<PeerInfo>>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status();
            let body = format!(
                "/mqtt is MQTT over WebSocket: connect with a WebSocket client and the \
                 subprotocol \"mqtt\" ({})\n",
                rejection.body_text()
            );
            return (status, body).into_response();
        }
    };
    let peer = peer.map_or_else(PeerInfo::unknown, |Extension(ConnectInfo(peer))| peer);
    ws::upgrade(state, peer, &headers, upgrade)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ready\n".into_response()
    }
}
