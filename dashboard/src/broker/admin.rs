//! The broker's admin API (`/api/...`, see `broker-server/src/http/openapi.json`) from
//! the browser, and the operator login in front of it.
//!
//! How the dashboard authenticates: the operator logs in on the broker page with the
//! admin token, or with the user name and password of a broker user listed in the
//! broker's `http.admin_users`; `POST /api/login` exchanges them for a short-lived
//! bearer token (`http.admin_session_secs`, default 15 min). Only that token is kept,
//! in `sessionStorage` (this tab, until it closes or the token expires); the password
//! or admin token typed is never stored. A 401 (the token expired or the broker
//! restarted) logs the operator out and shows the login again.
//!
//! The API is reached at the HTTP origin of the active profile's broker URL
//! (`ws://host:port/mqtt` → `http://host:port/api/...`): the broker that serves the
//! dashboard, or another one that allows the page's origin.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::settings::Settings;

/// The `sessionStorage` key of the login.
const STORAGE_KEY: &str = "mqtt-web.dashboard.admin-login";

/// A login: the bearer token and when it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    /// `Authorization: Bearer` of every request.
    pub token: String,
    /// When the broker stops accepting it (milliseconds since the epoch).
    pub expires_ms: f64,
    /// Who logged in (a user name, or `admin-token`).
    pub user: String,
    /// The API's base URL it was issued by (`http://host:port`).
    pub base: String,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401: wrong credentials, or the token expired.
    #[error("{0}")]
    Unauthorized(String),
    /// Another HTTP error, with the broker's message.
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    /// The request did not reach the broker, or its answer was not JSON.
    #[error("{0}")]
    Network(String),
}

/// The operator's session, provided as context by the broker page's parent
/// ([`crate::App`]): `None` while logged out.
#[derive(Debug, Clone, Copy)]
pub struct AdminSession {
    /// The current login.
    pub login: RwSignal<Option<Login>>,
}

impl AdminSession {
    /// The login kept in this tab's `sessionStorage`, if it has not expired.
    pub fn load() -> Self {
        let login = session_storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .and_then(|text| serde_json::from_str::<Login>(&text).ok())
            .filter(|login| login.expires_ms > now_ms());
        Self {
            login: RwSignal::new(login),
        }
    }

    /// Keeps `login` (in `sessionStorage` too), or forgets it.
    pub fn set(self, login: Option<Login>) {
        if let Some(storage) = session_storage() {
            match login.as_ref().and_then(|l| serde_json::to_string(l).ok()) {
                Some(text) => {
                    let _ = storage.set_item(STORAGE_KEY, &text);
                }
                None => {
                    let _ = storage.remove_item(STORAGE_KEY);
                }
            }
        }
        self.login.set(login);
    }

    /// Calls `method path` with the login's token; a 401 logs out.
    pub async fn call(self, method: &str, path: &str) -> Result<Value, ApiError> {
        let Some(login) = self.login.get_untracked() else {
            return Err(ApiError::Unauthorized("log in first".to_owned()));
        };
        let result = request(
            method,
            &format!("{}{path}", login.base),
            Some(&login.token),
            None,
        )
        .await;
        if let Err(ApiError::Unauthorized(_)) = &result {
            self.set(None);
        }
        result
    }

    /// Ends the login at the broker and here.
    pub fn logout(self) {
        let session = self;
        spawn_local(async move {
            let _ = session.call("POST", "/api/logout").await;
            session.set(None);
        });
    }
}

/// `http(s)://host:port` of a `ws(s)://host:port/...` broker URL; the page's origin
/// for a relative one.
pub fn api_base(broker_url: &str) -> String {
    let url = broker_url.trim();
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        ("https", rest)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        ("http", rest)
    } else {
        return String::new();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// The body of `POST /api/login`: the admin token alone when no user name is given.
pub fn login_body(username: &str, secret: &str) -> String {
    let body = if username.trim().is_empty() {
        serde_json::json!({ "token": secret })
    } else {
        serde_json::json!({ "username": username.trim(), "password": secret })
    };
    body.to_string()
}

/// `POST /api/login` at the broker of `settings`.
pub async fn login(settings: &Settings, username: &str, secret: &str) -> Result<Login, ApiError> {
    let base = api_base(&settings.broker_url);
    let body = login_body(username, secret);
    let answer = request("POST", &format!("{base}/api/login"), None, Some(&body)).await?;
    let token = answer["token"].as_str().unwrap_or_default().to_owned();
    if token.is_empty() {
        return Err(ApiError::Network(
            "the login answer has no token".to_owned(),
        ));
    }
    let secs = answer["expires_in"].as_f64().unwrap_or(0.0);
    Ok(Login {
        token,
        expires_ms: now_ms() + secs * 1000.0,
        user: answer["user"].as_str().unwrap_or_default().to_owned(),
        base,
    })
}

/// One `fetch`: JSON in and out, the broker's `{"error": ...}` as the message.
async fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Value, ApiError> {
    let window = web_sys::window().ok_or_else(|| ApiError::Network("no window".to_owned()))?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = js_sys::Object::new();
    let set = |name: &str, value: &str| {
        let _ = js_sys::Reflect::set(&headers, &name.into(), &value.into());
    };
    if let Some(token) = token {
        set("Authorization", &format!("Bearer {token}"));
    }
    if let Some(body) = body {
        set("Content-Type", "application/json");
        init.set_body(&JsValue::from_str(body));
    }
    init.set_headers(&headers);
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| {
            ApiError::Network(format!(
                "the broker's admin API cannot be reached ({})",
                js_text(&e)
            ))
        })?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|_| ApiError::Network("not a response".to_owned()))?;
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let status = response.status();
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let message = value["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| response.status_text());
    Err(match status {
        401 => ApiError::Unauthorized(message),
        _ => ApiError::Status(status, message),
    })
}

/// A JavaScript error's message.
fn js_text(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "network error".to_owned())
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

fn now_ms() -> f64 {
    if cfg!(target_arch = "wasm32") {
        js_sys::Date::now()
    } else {
        0.0
    }
}

/// The operator login form; on success the session holds the token.
#[component]
pub fn LoginForm() -> impl IntoView {
    let session = expect_context::<AdminSession>();
    let settings = expect_context::<RwSignal<Settings>>();
    let username = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let outcome = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        outcome.set("logging in…".to_owned());
        let settings = settings.get_untracked();
        let (user, pass) = (username.get_untracked(), secret.get_untracked());
        spawn_local(async move {
            match login(&settings, &user, &pass).await {
                Ok(login) => {
                    secret.set(String::new());
                    outcome.set(String::new());
                    session.set(Some(login));
                }
                Err(error) => outcome.set(format!("Login failed: {error}")),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="operator-login card" data-testid="operator-login" on:submit=submit>
            <h3>"Operator login"</h3>
            <p class="muted">
                "The clients and retained messages come from the broker's admin API. Log in \
                 with the admin token (leave the user name empty) or as a user the broker \
                 lists in http.admin_users. Only a short-lived token is kept, for this tab."
            </p>
            <label class="field">
                <span>"User name"</span>
                <input
                    type="text"
                    autocomplete="username"
                    data-testid="operator-username"
                    prop:value=move || username.get()
                    on:input=move |ev| username.set(event_target_value(&ev))
                />
            </label>
            <label class="field">
                <span>"Password or admin token"</span>
                <input
                    type="password"
                    autocomplete="current-password"
                    data-testid="operator-secret"
                    prop:value=move || secret.get()
                    on:input=move |ev| secret.set(event_target_value(&ev))
                />
            </label>
            <div class="actions">
                <button type="submit" data-testid="operator-login-submit" disabled=move || busy.get()>
                    "Log in"
                </button>
                <span class="error" role="status" data-testid="operator-login-outcome">{move || outcome.get()}</span>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_lives_at_the_brokers_http_origin() {
        assert_eq!(
            api_base("ws://127.0.0.1:8080/mqtt"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            api_base("wss://broker.example.com/mqtt"),
            "https://broker.example.com"
        );
        assert_eq!(api_base("/mqtt"), "");
    }

    #[test]
    fn login_sends_the_token_alone_without_a_user_name() {
        let token: Value = serde_json::from_str(&login_body(" ", "s3cret")).unwrap();
        assert_eq!(token, serde_json::json!({ "token": "s3cret" }));
        let user: Value = serde_json::from_str(&login_body("ops", "pw")).unwrap();
        assert_eq!(
            user,
            serde_json::json!({ "username": "ops", "password": "pw" })
        );
    }
}
