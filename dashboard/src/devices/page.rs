//! A device's page: every property of its `$description` with its live value
//! (`{root}/5/{dev}/#`), and a switch for settable booleans that sends `/set` through
//! `web-client`'s MQTT 5 request/response and shows pending → ok / rejected / timed out.

use std::collections::HashMap;
use std::time::Duration;

use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, Error, PublishOptions, QoS};

use super::Registry;
use super::homie::{self, Property};
use crate::Page;
use crate::connection::Connection;
use crate::settings::Settings;

/// How long a command waits for the device's reply before it counts as timed out.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Message Expiry of a `/set`: a command older than this must not be applied.
const COMMAND_EXPIRY_SECS: u32 = 30;

/// Where a command stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandState {
    /// No command sent yet.
    Idle,
    /// Sent; no reply yet.
    Pending,
    /// The device accepted it.
    Ok,
    /// The device (or the broker) refused it: why.
    Rejected(String),
    /// No reply within [`COMMAND_TIMEOUT`].
    TimedOut,
}

impl CommandState {
    fn label(&self) -> String {
        match self {
            Self::Idle => String::new(),
            Self::Pending => "pending".to_owned(),
            Self::Ok => "ok".to_owned(),
            Self::Rejected(why) => format!("rejected: {why}"),
            Self::TimedOut => "timed out".to_owned(),
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Self::Idle => "command",
            Self::Pending => "command pending",
            Self::Ok => "command ok",
            Self::Rejected(_) => "command rejected",
            Self::TimedOut => "command timed-out",
        }
    }
}

/// Live values of one device's properties, keyed by `node/prop`: one signal each, so
/// a value change re-renders one row.
#[derive(Debug, Clone, Copy)]
struct Values(StoredValue<HashMap<String, RwSignal<Option<String>>>>);

impl Values {
    fn get(self, path: &str) -> RwSignal<Option<String>> {
        if let Some(signal) = self.0.with_value(|values| values.get(path).copied()) {
            return signal;
        }
        let signal = RwSignal::new(None);
        self.0.update_value(|values| {
            values.insert(path.to_owned(), signal);
        });
        signal
    }
}

/// The page of device `id`.
#[component]
pub fn DevicePage(id: String) -> impl IntoView {
    let registry = expect_context::<Registry>();
    let connection = expect_context::<Connection>();
    let settings = expect_context::<RwSignal<Settings>>();
    let page = expect_context::<RwSignal<Page>>();
    let device = registry.device(&id);
    let values = Values(StoredValue::new(HashMap::new()));

    // Live values: subscribe on every new connection, stop when the page closes.
    {
        let id = id.clone();
        Effect::new(move |_| {
            let Some(client) = connection.client.get() else {
                return;
            };
            let root = settings.with_untracked(|s| s.root.clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let mut stop = Some(stop);
            on_cleanup(move || drop(stop.take()));
            let watch = watch(client, root, id.clone(), values);
            spawn_local(async move {
                futures::future::select(Box::pin(watch), stopped).await;
            });
        });
    }

    let title = {
        let device = device.clone();
        move || device.name()
    };
    let state = device.state;
    let description = device.description;
    let properties = {
        let id = id.clone();
        move || {
            description.get().map(|description| {
                description.map(|description| {
                    description
                        .properties
                        .into_iter()
                        .map(|property| {
                            view! { <PropertyRow device=id.clone() property values /> }
                        })
                        .collect_view()
                })
            })
        }
    };

    view! {
        <section class="device card" data-testid="device-page">
            <button class="link back" data-testid="back" on:click=move |_| page.set(Page::Devices)>
                "← Devices"
            </button>
            <h2>
                <span data-testid="device-title">{title}</span>
                " "
                <span
                    class=move || format!("badge state-{}", state.get().label())
                    data-testid="device-state"
                >
                    {move || state.get().label()}
                </span>
            </h2>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <p class="error" data-testid="device-error">
                        {move || {
                            errors
                                .get()
                                .into_iter()
                                .map(|(_, error)| error.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        }}
                    </p>
                }
            }>
                <table class="properties" data-testid="properties">
                    <thead>
                        <tr>
                            <th>"Node"</th>
                            <th>"Property"</th>
                            <th>"Value"</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>{properties}</tbody>
                </table>
            </ErrorBoundary>
        </section>
    }
}

async fn watch(client: Client, root: String, id: String, values: Values) {
    let mut subscription = match client
        .subscribe(format!("{root}/5/{id}/#"), QoS::AtLeastOnce)
        .await
    {
        Ok(subscription) => subscription,
        Err(error) => {
            leptos::logging::warn!("subscribing to {id} failed: {error}");
            return;
        }
    };
    while let Some(message) = subscription.recv().await {
        let Some((_, rest)) = homie::split_device_topic(&root, message.topic()) else {
            continue;
        };
        if let Some(path) = homie::value_path(rest) {
            let text = message.payload_str().map_or_else(
                || format!("({} bytes)", message.payload.len()),
                str::to_owned,
            );
            values.get(path).set(Some(text));
        }
    }
}

#[component]
fn PropertyRow(device: String, property: Property, values: Values) -> impl IntoView {
    let path = property.path();
    let value = values.get(&path);
    let testid = format!("property-{}-{}", property.node, property.id);
    let unit = property.unit.clone().unwrap_or_default();
    let shown = move || {
        value.get().map_or_else(
            || "—".to_owned(),
            |v| format!("{v} {unit}").trim_end().to_owned(),
        )
    };
    let control = property
        .is_switch()
        .then(|| view! { <Switch device path=path.clone() value /> });
    view! {
        <tr data-testid=testid>
            <td class="node">{property.node_name.clone()}</td>
            <td>
                {property.name.clone()}
                <span class="datatype">{property.datatype.clone()}</span>
            </td>
            <td class="value" data-testid="property-value">{shown}</td>
            <td>{control}</td>
        </tr>
    }
}

/// A switch for a settable boolean: sends the opposite of the live value.
#[component]
fn Switch(device: String, path: String, value: RwSignal<Option<String>>) -> impl IntoView {
    let connection = expect_context::<Connection>();
    let settings = expect_context::<RwSignal<Settings>>();
    let command = RwSignal::new(CommandState::Idle);
    let on = move || value.with(|v| v.as_deref() == Some("true"));
    let toggle = move |_| {
        let Some(client) = connection.client.get_untracked() else {
            command.set(CommandState::Rejected("not connected".to_owned()));
            return;
        };
        let (root, response_topic) =
            settings.with_untracked(|s| (s.root.clone(), s.response_topic(&device)));
        let topic = format!("{root}/5/{device}/{path}/set");
        let payload = if on() { "false" } else { "true" };
        command.set(CommandState::Pending);
        spawn_local(async move {
            let mut options = PublishOptions::new(QoS::AtLeastOnce);
            options.properties.message_expiry_interval = Some(COMMAND_EXPIRY_SECS);
            options.properties.response_topic = Some(response_topic.into());
            let outcome = client
                .request_with(topic, payload, options, COMMAND_TIMEOUT)
                .await;
            command.set(match outcome {
                Ok(reply) => match homie::parse_reply(&reply.payload) {
                    Ok(()) => CommandState::Ok,
                    Err(why) => CommandState::Rejected(why),
                },
                Err(Error::Timeout(_)) => CommandState::TimedOut,
                Err(error) => CommandState::Rejected(error.to_string()),
            });
        });
    };
    view! {
        <button
            class=move || if on() { "switch on" } else { "switch" }
            role="switch"
            aria-checked=move || on().to_string()
            data-testid="switch"
            disabled=move || command.with(|c| *c == CommandState::Pending)
            on:click=toggle
        >
            {move || if on() { "On" } else { "Off" }}
        </button>
        <span class=move || command.with(CommandState::class) data-testid="command-state">
            {move || command.with(CommandState::label)}
        </span>
    }
}
