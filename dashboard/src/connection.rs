//! The one MQTT connection of the dashboard (a `web_client::Client`), shared through
//! context, and its status indicator.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, Event, ReasonCode};

use crate::settings::Settings;

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Opening the WebSocket and waiting for CONNACK.
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// Dropped; `web-client` reconnects with backoff.
    Reconnecting,
    /// Ended (closed, or refused and not retried).
    Disconnected,
    /// The first connection failed: the text says why.
    Failed(String),
}

impl Status {
    /// The label and CSS class of the indicator.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Disconnected => "disconnected",
            Self::Failed(_) => "failed",
        }
    }
}

/// The shared connection: cheap to copy, provided as context by [`crate::App`].
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// What the indicator shows.
    pub status: RwSignal<Status>,
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
            client: RwSignal::new_local(None),
            attempt: StoredValue::new(0),
        }
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
        self.status.set(Status::Connecting);
        let current = move || self.attempt.try_get_value() == Some(attempt);
        let options = settings.connect_options();
        spawn_local(async move {
            let client = match Client::connect(options).await {
                Ok(client) => client,
                Err(error) => {
                    if current() {
                        self.status.set(Status::Failed(error.to_string()));
                    }
                    return;
                }
            };
            if !current() {
                let _ = client.disconnect(ReasonCode::Success).await;
                return;
            }
            let mut events = client.events();
            self.client.set(Some(client));
            self.status.set(Status::Connected);
            while let Some(event) = events.recv().await {
                if !current() {
                    break;
                }
                let status = match event {
                    Event::Connected { .. } => Status::Connected,
                    Event::Disconnected {
                        will_reconnect: true,
                        ..
                    }
                    | Event::Reconnecting { .. } => Status::Reconnecting,
                    Event::Disconnected { .. } => Status::Disconnected,
                    _ => continue,
                };
                self.status.set(status);
            }
        });
    }
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
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
            title=move || match status.get() {
                Status::Failed(why) => why,
                other => other.label().to_owned(),
            }
        >
            {move || status.with(Status::label)}
        </span>
    }
}
