//! The admin API under `/api`: JSON, for operators and scripts, described by the
//! OpenAPI document at `/api/openapi.json` (public; everything else needs the token).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/stats` | broker figures |
//! | `GET /api/clients` | connected clients |
//! | `GET /api/clients/{client_id}` | one connected client |
//! | `POST /api/clients/{client_id}/disconnect` | close its connection (v5: DISCONNECT 0x98) |
//! | `GET /api/retained?filter=F&limit=N` | retained messages matching a topic filter |
//! | `DELETE /api/retained?filter=F` | delete them (from the store too; subscribers are not told) |
//! | `GET /api/bridges` | the bridges to other brokers: state, remote, counters |
//! | `POST /api/login` | a short-lived bearer token for the admin token or an admin user ([`super::login`]) |
//! | `POST /api/logout` | end that token |
//!
//! Every request but the OpenAPI document and the login needs `Authorization: Bearer
//! <token>`: `http.admin_token`, or a token from `POST /api/login` that has not expired.
//! Without an admin token or admin users (`http.admin_users`) the API is disabled and
//! answers 403 saying so; a missing, wrong or expired token gets 401. Errors are
//! `{"error": "..."}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::TopicFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::metrics::version_label;
use super::{HttpState, login};
use crate::clients::ClientEntry;
use crate::clock;
use crate::storage::Op;

/// The OpenAPI 3.1 document of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// Most retained messages one `GET /api/retained` returns unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;

pub(super) fn router(state: &HttpState) -> Router<HttpState> {
    let protected = Router::new()
        .route("/stats", get(stats))
        .route("/cluster", get(cluster))
        .route("/clients", get(list_clients))
        .route("/clients/{client_id}", get(get_client))
        .route("/clients/{client_id}/disconnect", post(disconnect))
        .route("/retained", get(list_retained).delete(delete_retained))
        .route("/bridges", get(list_bridges))
        .route("/logout", post(super::login::logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/login", post(super::login::login))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin API route") })
}

/// An error response: the status and `{"error": message}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn authorize(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if !login::admin_enabled(&state) {
        return login::disabled();
    }
    let token = state.broker.config.http.admin_token.as_deref();
    let user = login::bearer(request.headers()).and_then(|given| {
        if token.is_some_and(|t| !t.is_empty() && constant_time_eq(given.as_bytes(), t.as_bytes()))
        {
            Some("admin-token".to_owned())
        } else {
            state.broker.admin_sessions.user(given)
        }
    });
    if let Some(user) = user {
        // What an operator changed, and who: the audit trail of the admin API.
        if request.method() != axum::http::Method::GET {
            tracing::info!(%user, method = %request.method(), path = %request.uri().path(), "admin API");
        }
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "missing, wrong or expired token: send Authorization: Bearer <http.admin_token or \
         a token from POST /api/login>",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"broker-server admin\""),
    );
    response
}

/// Compares without returning early, so the time taken does not tell how much of a
/// guessed token was right.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn stats(State(state): State<HttpState>) -> Json<Value> {
    let broker = &state.broker;
    let m = &broker.metrics;
    let sessions = broker.sessions();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": clock::now().saturating_duration_since(broker.started_at).as_secs(),
        "clients_connected": m.clients_connected.get(),
        "sessions": sessions.len(),
        "sessions_online": sessions.iter().filter(|s| s.is_online()).count(),
        "subscriptions": broker.router.subscription_count(),
        "retained_messages": broker.router.retained().len(),
        "queued_messages": sessions.iter().map(|s| s.queue_len()).sum::<usize>(),
        "messages_received": m.messages_received.total(),
        "messages_sent": m.messages_sent.total(),
        "messages_dropped": m.messages_dropped.get(),
        "bytes_received": m.bytes_received.get(),
        "bytes_sent": m.bytes_sent.get(),
        "connections_total": m.connections_total.get(),
        "connections_refused": m.connections_refused.get(),
        "auth_failures": m.auth_failures.get(),
        "protocol_errors": m.protocol_errors.get(),
        "node": node_name(&state),
    }))
}

async fn cluster(State(state): State<HttpState>) -> Json<Value> {
    match &state.broker.backplane {
        crate::broker::backplane::Plane::Local => Json(json!({ "node": null, "nodes": [] })),
        crate::broker::backplane::Plane::Nats(plane) => {
            let nodes: Vec<Value> = plane
                .nodes()
                .iter()
                .map(|node| json!({ "name": node.name, "since": rfc3339(node.since) }))
                .collect();
            let figures: serde_json::Map<String, Value> = plane
                .figures()
                .into_iter()
                .map(|(name, _, _, _, value)| (name.to_owned(), json!(value)))
                .collect();
            Json(json!({
                "node": plane.node,
                "nats_connected": plane.link.connected(),
                "nodes": nodes,
                "figures": figures,
            }))
        }
    }
}

fn client_json(state: &HttpState, client: &ClientEntry) -> Value {
    let session = state.broker.session(&client.client_id);
    let mut subscriptions: Vec<Value> = session
        .as_ref()
        .map(|s| {
            s.subscriptions
                .lock()
                .iter()
                .map(|(filter, sub)| json!({ "filter": filter.as_str(), "qos": sub.options.qos as u8 }))
                .collect()
        })
        .unwrap_or_default();
    subscriptions.sort_by(|a, b| a["filter"].as_str().cmp(&b["filter"].as_str()));
    json!({
        "client_id": &*client.client_id,
        "username": client.username.as_deref(),
        "address": client.meta.peer.to_string(),
        "listener": &*client.meta.listener,
        "transport": client.meta.transport.as_str(),
        "protocol": version_label(client.version),
        "connected_since": rfc3339(client.connected_at),
        "subscriptions": subscriptions,
        "queue_depth": session.as_ref().map_or(0, |s| s.queue_len()),
        "inflight": client.inflight.load(std::sync::atomic::Ordering::Relaxed),
        "node": node_name(state),
    })
}

/// This node's name in a cluster; `None` on a single node.
fn node_name(state: &HttpState) -> Option<String> {
    match &state.broker.backplane {
        crate::broker::backplane::Plane::Nats(plane) => Some(plane.node.clone()),
        crate::broker::backplane::Plane::Local => None,
    }
}

async fn list_clients(State(state): State<HttpState>) -> Json<Value> {
    let clients: Vec<Value> = state
        .broker
        .clients
        .list()
        .iter()
        .map(|client| client_json(&state, client))
        .collect();
    Json(Value::Array(clients))
}

async fn get_client(State(state): State<HttpState>, Path(client_id): Path<String>) -> Response {
    match state.broker.clients.get(&client_id) {
        Some(client) => Json(client_json(&state, &client)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no client {client_id:?} is connected"),
        ),
    }
}

async fn disconnect(State(state): State<HttpState>, Path(client_id): Path<String>) -> Response {
    if state.broker.clients.disconnect(&client_id) {
        let body = Json(json!({ "disconnecting": client_id }));
        (StatusCode::ACCEPTED, body).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no client {client_id:?} is connected"),
        )
    }
}

/// `?filter=...&limit=...` of the retained-message routes.
#[derive(Debug, Deserialize)]
struct RetainedQuery {
    filter: Option<String>,
    limit: Option<usize>,
}

/// The filter of a retained-message query, or a 400 response saying what is wrong.
fn parse_filter(filter: &str) -> Result<TopicFilter, Box<Response>> {
    let message = match TopicFilter::new(filter.to_owned()) {
        Ok(parsed) if !parsed.is_shared() => return Ok(parsed),
        Ok(_) => "a shared subscription filter ($share/...) matches no retained message".into(),
        Err(err) => format!("filter {filter:?}: {err}"),
    };
    Err(Box::new(error(StatusCode::BAD_REQUEST, message)))
}

async fn list_retained(
    State(state): State<HttpState>,
    Query(query): Query<RetainedQuery>,
) -> Response {
    let filter = match parse_filter(query.filter.as_deref().unwrap_or("#")) {
        Ok(filter) => filter,
        Err(response) => return *response,
    };
    let now = clock::now();
    let store = state.broker.router.retained();
    let mut messages = store.matching(filter.filter(), now);
    messages.sort_by(|a, b| a.topic.cmp(&b.topic));
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let list: Vec<Value> = messages
        .iter()
        .take(limit)
        .map(|message| {
            json!({
                "topic": &*message.topic,
                "qos": message.qos as u8,
                "payload_size": message.payload.len(),
                "payload": std::str::from_utf8(&message.payload).ok(),
                "payload_base64": base64(&message.payload),
                "message_expiry_interval": message.remaining_expiry(now),
                "stored_at": store.stored_at(&message.topic).map(rfc3339),
            })
        })
        .collect();
    drop(store);
    Json(json!({ "total": messages.len(), "messages": list })).into_response()
}

async fn delete_retained(
    State(state): State<HttpState>,
    Query(query): Query<RetainedQuery>,
) -> Response {
    let Some(filter) = query.filter.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the filter parameter is required (filter=%23 deletes every retained message)",
        );
    };
    let filter = match parse_filter(filter) {
        Ok(filter) => filter,
        Err(response) => return *response,
    };
    let broker = &state.broker;
    let topics: Vec<_> = broker
        .router
        .retained()
        .matching(filter.filter(), clock::now())
        .into_iter()
        .map(|message| message.topic.clone())
        .collect();
    let mut deleted = 0;
    {
        // As `Broker::publish` does: the store is told under the lock, so its order of
        // retained changes is the router's.
        let mut retained = broker.router.retained_mut();
        for topic in &topics {
            if retained.remove(topic).is_some() {
                deleted += 1;
                if !topic.starts_with("$SYS/") {
                    broker.storage.submit(Op::Unretain(topic.clone()));
                }
            }
        }
    }
    // Answer once the deletions are durable.
    if deleted > 0 && broker.storage.is_durable() {
        match broker.storage.barrier().await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("deleted in memory, but the store failed: {err}"),
                );
            }
            Err(_) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "deleted in memory, but the store is closing",
                );
            }
        }
    }
    Json(json!({ "deleted": deleted })).into_response()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `2024-05-01T12:34:56Z` (UTC, whole seconds).
pub(super) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `GET /api/bridges`: each bridge's state, remote, counters and last error.
async fn list_bridges(State(state): State<HttpState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let bridges: Vec<Value> = state
        .broker
        .bridges
        .list()
        .iter()
        .map(|b| {
            json!({
                "name": b.config.name,
                "state": if b.connected.load(Relaxed) { "connected" } else { "disconnected" },
                "remote": b.remote.lock().clone(),
                "role": b.role.lock().0.as_str(),
                "holder": b.role.lock().1.clone(),
                "protocol": match b.config.protocol {
                    crate::config::BridgeProtocol::Mqttv311 => "mqttv311",
                    crate::config::BridgeProtocol::Mqttv5 => "mqttv5",
                },
                "topics": b.config.topics.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "connect_attempts": b.connect_attempts.load(Relaxed),
                "messages_in": b.messages_in.load(Relaxed),
                "messages_out": b.messages_out.load(Relaxed),
                "outbox": b.outbox.queue_len(),
                "dropped": b.dropped.load(Relaxed),
                "loops": b.loops.load(Relaxed),
                "last_error": b.last_error.lock().clone(),
            })
        })
        .collect();
    Json(json!({ "bridges": bridges })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_utc_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap year, 29 Feb
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0x00]), "/wA=");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn openapi_document_is_json_and_names_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        for path in [
            "/api/stats",
            "/api/cluster",
            "/api/clients",
            "/api/clients/{client_id}",
            "/api/clients/{client_id}/disconnect",
            "/api/retained",
            "/api/bridges",
            "/api/login",
            "/api/logout",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
    }
}
