//! Operator login for the admin API: `POST /api/login` exchanges a credential for a
//! short-lived bearer token, `POST /api/logout` ends it early.
//!
//! A credential is either the admin token itself (`{"token": "..."}`) or the user name
//! and password of a broker user listed in `http.admin_users`
//! (`{"username": "...", "password": "..."}`), checked exactly as a CONNECT's are
//! (password file or JWT, [`crate::security`]). The answer is
//! `{"token", "expires_in", "expires_at", "user"}`; the token is 32 random bytes in
//! hex, valid for `http.admin_session_secs` and kept only in this process's memory
//! (a restart logs every operator out). Browsers keep it in `sessionStorage` (the
//! dashboard), never the password.
//!
//! A refused login answers 401 after the broker's refusal delay
//! ([`crate::security::Security::refusal_delay`]), so guessing is as slow as over MQTT.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use web_time::Instant;

use super::HttpState;
use super::admin::{constant_time_eq, error, rfc3339};
use crate::clock;
use crate::security::LoginRequest;

/// Most sessions kept at once; the oldest is dropped to make room for a new one.
const MAX_SESSIONS: usize = 1024;

/// One operator session.
#[derive(Debug, Clone)]
struct Session {
    /// Who logged in: the user name, or `admin-token`.
    user: String,
    /// When the token stops being accepted (the broker's clock, so tests can advance it).
    expires: Instant,
}

/// The live operator sessions, by token. Owned by the broker, so every HTTP listener
/// (and every test's `HttpState`) shares them.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `user`, valid for `ttl`; returns its token.
    fn start(&self, user: String, ttl: Duration) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = clock::now();
        let mut sessions = self.by_token.lock();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
        {
            sessions.remove(&oldest);
        }
        let expires = now + ttl;
        sessions.insert(token.clone(), Session { user, expires });
        Some(token)
    }

    /// The user of `token` if it is a session that has not expired (an expired one is
    /// forgotten).
    pub(crate) fn user(&self, token: &str) -> Option<String> {
        let now = clock::now();
        let mut sessions = self.by_token.lock();
        match sessions.get(token) {
            Some(session) if session.expires > now => Some(session.user.clone()),
            Some(_) => {
                sessions.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`; whether there was one.
    fn end(&self, token: &str) -> bool {
        self.by_token.lock().remove(token).is_some()
    }
}

/// The body of `POST /api/login`.
#[derive(Debug, Deserialize)]
pub(super) struct LoginBody {
    /// The admin token (instead of a user name and password).
    token: Option<String>,
    /// A broker user listed in `http.admin_users`.
    username: Option<String>,
    /// That user's password (or a JWT, when JWT is configured).
    password: Option<String>,
}

/// `POST /api/login`.
pub(super) async fn login(
    State(state): State<HttpState>,
    body: Option<Json<LoginBody>>,
) -> Response {
    let started = clock::now();
    let broker = &state.broker;
    let http = &broker.config.http;
    if !admin_enabled(&state) {
        return disabled();
    }
    let user = match body.map(|Json(body)| body) {
        Some(LoginBody {
            token: Some(token), ..
        }) => http
            .admin_token
            .as_deref()
            .filter(|t| !t.is_empty() && constant_time_eq(token.as_bytes(), t.as_bytes()))
            .map(|_| "admin-token".to_owned()),
        Some(LoginBody {
            username: Some(username),
            password: Some(password),
            ..
        }) => check_user(&state, &username, &password).await,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "send {\"token\": ...} or {\"username\": ..., \"password\": ...}",
            );
        }
    };
    let Some(user) = user else {
        let deadline = started + broker.security.refusal_delay();
        tokio::time::sleep_until(clock::to_tokio(deadline)).await;
        broker.metrics.auth_failures.inc();
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong credentials: the admin token, or a user listed in http.admin_users with \
             its password",
        );
    };
    let ttl = Duration::from_secs(http.admin_session_secs.max(1));
    let Some(token) = broker.admin_sessions.start(user.clone(), ttl) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a token",
        );
    };
    Json(json!({
        "token": token,
        "expires_in": ttl.as_secs(),
        "expires_at": rfc3339(SystemTime::now() + ttl),
        "user": user,
    }))
    .into_response()
}

/// The user name if `username` is an admin user whose `password` the broker accepts.
async fn check_user(state: &HttpState, username: &str, password: &str) -> Option<String> {
    let broker = &state.broker;
    let listed = broker.config.http.admin_users.iter().any(|u| u == username);
    // Without authentication configured every login would pass: users can only log in
    // where the broker checks passwords.
    if !listed || !broker.config.auth.configured() {
        return None;
    }
    let request = LoginRequest {
        client_id: "",
        username: Some(username),
        password: Some(password.as_bytes()),
        bearer_token: None,
        cert_username: None,
        peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        authentication_method: None,
    };
    let identity = broker.security.login(&request).await.ok()?;
    (identity.username.as_deref() == Some(username)).then(|| username.to_owned())
}

/// `POST /api/logout`: ends the session whose token authorizes the request.
pub(super) async fn logout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let ended = bearer(&headers).is_some_and(|token| state.broker.admin_sessions.end(token));
    Json(json!({ "ended": ended })).into_response()
}

/// Whether the admin API can be used at all: an admin token or admin users configured.
pub(super) fn admin_enabled(state: &HttpState) -> bool {
    let http = &state.broker.config.http;
    http.admin_token.as_deref().is_some_and(|t| !t.is_empty()) || !http.admin_users.is_empty()
}

/// The 403 of a broker without an admin token or admin users.
pub(super) fn disabled() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "the admin API is disabled: set http.admin_token (or BROKER_HTTP__ADMIN_TOKEN) or \
         http.admin_users to enable it",
    )
}

/// The credentials of an `Authorization: Bearer ...` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim())
}
