//! The one MQTT connection of the dashboard (a `web_client::Client`), shared through
//! context; its status indicator; and the banner that says, in every view, when what
//! the page shows is not live and what to do about it.
//!
//! The first connection is retried with a growing delay while the broker cannot be
//! reached (it may be starting); a refusal (bad user name or password, not authorized)
//! is not retried, since only new settings can change it. Once connected, `web-client`
//! reconnects by itself after a drop.

use std::time::Duration;

use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, ConnectError, ConnectFailure, DisconnectReason, Event, ReasonCode};

use crate::Page;
use crate::settings::Settings;

/// The first retry's delay after a failed first connection; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest delay between two attempts at a first connection.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Opening the WebSocket and waiting for CONNACK.
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// Dropped; `web-client` reconnects with backoff. The text says why it dropped.
    Reconnecting(String),
    /// Ended and not retried (closed by the broker for good, or by the page).
    Disconnected(String),
    /// The broker could not be reached: the text says why; retried with backoff.
    Failed(String),
    /// The broker refused the connection (credentials, authorization): the text says
    /// why; not retried until the settings change.
    Refused(String),
}

impl Status {
    /// The label and CSS class of the indicator.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting(_) => "reconnecting",
            Self::Disconnected(_) => "disconnected",
            Self::Failed(_) => "failed",
            Self::Refused(_) => "refused",
        }
    }

    /// Why the connection is not up, if the status says.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Reconnecting(why)
            | Self::Disconnected(why)
            | Self::Failed(why)
            | Self::Refused(why) => Some(why),
            Self::Connecting | Self::Connected => None,
        }
    }
}

/// The shared connection: cheap to copy, provided as context by [`crate::App`].
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// What the indicator shows.
    pub status: RwSignal<Status>,
    /// When the page stopped being live (milliseconds since the epoch): set when a
    /// connection that was up goes down, `None` while connected and before the first
    /// connection. What views received before it is shown as stale, with this time.
    pub down_since: RwSignal<Option<f64>>,
    /// Whether a connection was ever up on this page: before, there is nothing stale to
    /// show, only "connecting".
    pub ever_connected: RwSignal<bool>,
    /// The connected client; `None` while connecting or after a failure. Views that
    /// subscribe track it, so they subscribe again on a new connection.
    pub client: RwSignal<Option<Client>, LocalStorage>,
    /// Bumped by every [`Connection::connect`], so a slow older attempt cannot overwrite
    /// a newer one.
    attempt: StoredValue<u64>,
}

impl Connection {
    /// A connection that has not started.
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Connecting),
            down_since: RwSignal::new(None),
            ever_connected: RwSignal::new(false),
            client: RwSignal::new_local(None),
            attempt: StoredValue::new(0),
        }
    }

    /// Whether what the page shows is live (tracked).
    pub fn is_live(self) -> bool {
        self.status.with(|s| *s == Status::Connected)
    }

    /// Sets the status, and with it when the page stopped being live.
    fn set_status(self, status: Status) {
        let live = status == Status::Connected;
        if live {
            self.down_since.set(None);
            self.ever_connected.set(true);
        } else if self.ever_connected.get_untracked() && self.down_since.get_untracked().is_none() {
            self.down_since.set(Some(js_sys::Date::now()));
        }
        self.status.set(status);
    }

    /// Ends the current connection, if any, and connects with `settings`.
    pub fn connect(self, settings: &Settings) {
        let attempt = self.attempt.with_value(|a| a + 1);
        self.attempt.set_value(attempt);
        if let Some(old) = self.client.get_untracked() {
            spawn_local(async move {
                let _ = old.disconnect(ReasonCode::Success).await;
            });
        }
        self.client.set(None);
        self.set_status(Status::Connecting);
        let current = move || self.attempt.try_get_value() == Some(attempt);
        let options = settings.connect_options();
        spawn_local(async move {
            let mut delay = FIRST_RETRY;
            let client = loop {
                match Client::connect(options.clone()).await {
                    Ok(client) => break client,
                    Err(_) if !current() => return,
                    Err(error) => {
                        let refused = error.reason_code().is_some();
                        let why = describe_connect_error(&error);
                        if refused {
                            self.set_status(Status::Refused(why));
                            return;
                        }
                        self.set_status(Status::Failed(why));
                        sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY);
                        if !current() {
                            return;
                        }
                    }
                }
            };
            if !current() {
                let _ = client.disconnect(ReasonCode::Success).await;
                return;
            }
            let mut events = client.events();
            self.client.set(Some(client));
            self.set_status(Status::Connected);
            while let Some(event) = events.recv().await {
                if !current() {
                    break;
                }
                let status = match event {
                    Event::Connected { .. } => Status::Connected,
                    Event::Disconnected {
                        reason,
                        will_reconnect: true,
                    } => Status::Reconnecting(describe_disconnect(&reason)),
                    Event::Disconnected {
                        reason: DisconnectReason::Refused(code),
                        will_reconnect: false,
                    } => Status::Refused(code.to_string()),
                    Event::Disconnected { reason, .. } => {
                        Status::Disconnected(describe_disconnect(&reason))
                    }
                    // The drop that led here already said why.
                    _ => continue,
                };
                self.set_status(status);
            }
        });
    }
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a first connection failed, in words for the banner: for a refusal, the broker's
/// reason code (and reason string) alone, since the banner says it refused.
fn describe_connect_error(error: &ConnectError) -> String {
    match error {
        ConnectError::Handshake(ConnectFailure::Refused {
            reason_code,
            reason_string,
        }) => match reason_string {
            Some(text) => format!("{reason_code}: {text}"),
            None => reason_code.to_string(),
        },
        // Browsers do not tell pages why a WebSocket failed.
        ConnectError::Transport(detail) if detail.trim().is_empty() => {
            "the WebSocket could not be opened".to_owned()
        }
        other => other.to_string(),
    }
}

/// Why a connection that was up dropped, in words for the banner.
fn describe_disconnect(reason: &DisconnectReason) -> String {
    reason.to_string()
}

/// Resolves after `duration` (a `setTimeout`).
async fn sleep(duration: Duration) {
    let (done, wait) = oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

/// `HH:MM:SS` in the browser's time zone, for "as of" texts.
pub fn clock_time(ms: f64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    format!(
        "{:02}:{:02}:{:02}",
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds()
    )
}

/// The connection status indicator in the header.
#[component]
pub fn StatusIndicator() -> impl IntoView {
    let connection = expect_context::<Connection>();
    let status = connection.status;
    view! {
        <span
            class=move || format!("status status-{}", status.with(Status::label))
            data-testid="connection-status"
            title=move || status.with(|s| s.reason().unwrap_or(s.label()).to_owned())
        >
            {move || status.with(Status::label)}
        </span>
    }
}

/// The banner under the header while the page is not live: what happened, why, since
/// when the data shown is old, and what to do. Hidden while connected.
#[component]
pub fn ConnectionBanner() -> impl IntoView {
    let connection = expect_context::<Connection>();
    let settings = expect_context::<RwSignal<Settings>>();
    let page = expect_context::<RwSignal<Page>>();
    let url = move || settings.with(|s| s.broker_url.trim().to_owned());
    let as_of = move || {
        connection
            .down_since
            .get()
            .map(|t| {
                format!(
                    " What the page shows was received before {} and is not live.",
                    clock_time(t)
                )
            })
            .unwrap_or_default()
    };
    let message = move || {
        let status = connection.status.get();
        let why = status.reason().unwrap_or_default().to_owned();
        match status {
            Status::Connected => String::new(),
            Status::Connecting => format!("Connecting to {}…", url()),
            Status::Reconnecting(_) => format!(
                "Connection to the broker lost ({why}). Reconnecting…{} If this lasts, check \
                 that the broker is running.",
                as_of()
            ),
            Status::Failed(_) => format!(
                "Cannot connect to {} ({why}). Retrying.{} Check that the broker is running \
                 and that the broker URL in Settings is right.",
                url(),
                as_of()
            ),
            Status::Refused(_) => format!(
                "The broker refused the connection: {why}.{} Check the user name and password \
                 (or token) in Settings.",
                as_of()
            ),
            Status::Disconnected(_) => format!(
                "Disconnected from the broker ({why}).{} Reconnect, or check Settings.",
                as_of()
            ),
        }
    };
    let severity = move || match connection.status.get() {
        Status::Connecting if !connection.ever_connected.get() => "banner info",
        _ => "banner bad",
    };
    let retry = move |_| connection.connect(&settings.get_untracked());
    let show_retry = move || {
        matches!(
            connection.status.get(),
            Status::Failed(_) | Status::Disconnected(_) | Status::Refused(_)
        )
    };
    view! {
        <Show when=move || !connection.is_live()>
            <div class=severity role="alert" data-testid="connection-banner">
                <span data-testid="connection-banner-text">{message}</span>
                <Show when=show_retry>
                    <button type="button" data-testid="banner-retry" on:click=retry>
                        "Retry now"
                    </button>
                </Show>
                <Show when=move || !matches!(page.get(), Page::Settings)>
                    <button
                        type="button"
                        data-testid="banner-settings"
                        on:click=move |_| page.set(Page::Settings)
                    >
                        "Settings"
                    </button>
                </Show>
            </div>
        </Show>
    }
}

/// In a view, while the page is not connected: says that `what` (e.g. "These values")
/// is not live and since when. Nothing while connected.
#[component]
pub fn NotLive(what: &'static str) -> impl IntoView {
    let connection = expect_context::<Connection>();
    let text = move || match connection.down_since.get() {
        Some(t) => format!(
            "Not live: {what} were received before {} and may be out of date.",
            clock_time(t)
        ),
        None => "Not live: not connected to the broker yet.".to_owned(),
    };
    view! {
        <Show when=move || !connection.is_live()>
            <p class="not-live" role="status" data-testid="not-live">{text}</p>
        </Show>
    }
}
