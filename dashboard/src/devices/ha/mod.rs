//! Home Assistant MQTT discovery beside Homie 5: devices that announce themselves with
//! retained configs on `{prefix}/{component}/[{node_id}/]{object_id}/config` (prefix
//! `homeassistant` by default, a setting) join the same registry as Homie devices, under
//! ids `ha:{dev.ids[0]}`, with a Homie-shaped description, so the list, the page, the
//! charts and the controls work for both; each device is marked with its convention.
//!
//! # Layout
//!
//! - `template`: the value templates understood (`{{ value_json.x }}`, filters).
//! - `parse`: config topics, abbreviations, `~`, the config read into an
//!   [`entity::Entity`].
//! - `components`: each component's keys as Homie-shaped properties.
//! - `entity`: entities, their properties, availability, state decoding and command
//!   payloads.
//! - `store`: entities by config topic, grouped into devices; warnings for ignored
//!   configs.
//! - this file: the subscriptions (discovery, then every state and availability topic
//!   the configs name), commands (published to the command topic, settled when the
//!   state topic shows the value or after a timeout: HA devices send no MQTT 5
//!   replies), the device page's values and the warnings view.

pub mod components;
pub mod entity;
pub mod parse;
pub mod store;
pub mod template;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::SelectAll;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, PublishOptions, QoS};

use super::Registry;
use super::command::CommandState;
use crate::components::chart::Histories;
use crate::connection::Connection;
use crate::keyed::KeyedSignals;
use store::Store;

/// How long a command waits for its state topic to show the value asked for.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    /// The number of the last command sent to each `device/node/prop`: the timeout of
    /// an earlier command must not settle a later one that is pending.
    static LAST_COMMAND: std::cell::RefCell<std::collections::HashMap<String, u64>> =
        Default::default();
}

/// Records a new command to `key` and returns its number.
fn next_command(key: &str) -> u64 {
    LAST_COMMAND.with(|last| {
        let mut last = last.borrow_mut();
        let number = last.get(key).map_or(1, |n| n + 1);
        last.insert(key.to_owned(), number);
        number
    })
}

/// Whether command `number` is still the last one sent to `key`.
fn is_last_command(key: &str, number: u64) -> bool {
    LAST_COMMAND.with(|last| last.borrow().get(key) == Some(&number))
}

/// The convention a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// Homie 5.
    Homie,
    /// Home Assistant MQTT discovery.
    HomeAssistant,
}

impl Convention {
    /// The convention of the registry id `id`.
    pub fn of(id: &str) -> Self {
        if id.starts_with(store::ID_PREFIX) {
            Self::HomeAssistant
        } else {
            Self::Homie
        }
    }

    /// The mark shown beside a device.
    pub fn label(self) -> &'static str {
        match self {
            Self::Homie => "Homie",
            Self::HomeAssistant => "HA",
        }
    }

    /// Its full name, for titles.
    pub fn title(self) -> &'static str {
        match self {
            Self::Homie => "Homie 5 convention",
            Self::HomeAssistant => "Home Assistant MQTT discovery",
        }
    }
}

/// The registry's Home Assistant part: the store and the ignored configs.
#[derive(Debug, Clone, Copy)]
pub struct HaState {
    /// The discovered entities.
    store: StoredValue<Store>,
    /// Configs ignored (config topic, why), shown above the device list.
    pub warnings: RwSignal<Vec<(String, String)>>,
}

impl HaState {
    /// An empty one.
    pub fn new() -> Self {
        Self {
            store: StoredValue::new(Store::new()),
            warnings: RwSignal::new(Vec::new()),
        }
    }

    /// Forgets everything (a new connection).
    pub fn reset(self) {
        self.store.set_value(Store::new());
        self.warnings.set(Vec::new());
    }

    /// Model, manufacturer and software of device `id`.
    pub fn details(self, id: &str) -> Option<String> {
        self.store.with_value(|store| store.details(id))
    }
}

impl Default for HaState {
    fn default() -> Self {
        Self::new()
    }
}

/// Copies device `id`'s description and state from the store into its signals, or
/// drops it from the registry when its last entity is gone; either way the list's order
/// and counts follow ([`Registry::changed`], as for Homie's `$state` and `$description`,
/// and for the availability updates in [`watch`]).
fn refresh(registry: Registry, id: &str) {
    let (description, state) = registry
        .ha
        .store
        .with_value(|store| (store.description(id), store.state(id)));
    match description {
        Some(description) => {
            let device = registry.device(id);
            device.description.set(Some(Ok(description)));
            device.state.set(state);
        }
        None => registry.devices.update(|devices| {
            devices.remove(id);
        }),
    }
    registry.changed();
}

/// Subscribes to the discovery configs under `prefix`, then to every state and
/// availability topic they name, and feeds the registry until the connection ends.
pub async fn watch(client: Client, prefix: String, registry: Registry) {
    let mut streams = SelectAll::new();
    for filter in [
        format!("{prefix}/+/+/config"),
        format!("{prefix}/+/+/+/config"),
    ] {
        match client.subscribe(filter, QoS::AtLeastOnce).await {
            Ok(subscription) => streams.push(subscription),
            Err(error) => leptos::logging::warn!("subscribing to HA discovery failed: {error}"),
        }
    }
    let mut subscribed = HashSet::new();
    while let Some(message) = streams.next().await {
        let topic = message.topic();
        let touched = registry
            .ha
            .store
            .try_update_value(|store| store.handle_config(&prefix, topic, &message.payload))
            .flatten();
        if let Some(touched) = touched {
            for id in &touched {
                refresh(registry, id);
            }
            let (warnings, topics) = registry
                .ha
                .store
                .with_value(|store| (store.warnings(), store.topics()));
            registry.ha.warnings.set(warnings);
            for topic in topics {
                if subscribed.insert(topic.clone()) {
                    match client.subscribe(topic.clone(), QoS::AtLeastOnce).await {
                        Ok(subscription) => streams.push(subscription),
                        Err(error) => {
                            leptos::logging::warn!("subscribing to {topic} failed: {error}")
                        }
                    }
                }
            }
            continue;
        }
        let Some(changes) = registry
            .ha
            .store
            .try_update_value(|store| store.handle_message(topic, &message.payload))
        else {
            return;
        };
        let now = js_sys::Date::now();
        for id in &changes.availability {
            let state = registry.ha.store.with_value(|store| store.state(id));
            let device = registry.device(id);
            device.state.set(state);
            device.last_seen.set(Some(now));
            registry.changed();
        }
        for (id, path, value) in changes.values {
            registry.batch.add(
                |pending| {
                    let (seen, values) = pending.entry(id).or_default();
                    *seen = now;
                    values.push((path, value));
                },
                move |pending| registry.apply(pending),
            );
        }
    }
}

/// Whether registry id `id` is a Home Assistant device.
pub fn is_ha(id: &str) -> bool {
    Convention::of(id) == Convention::HomeAssistant
}

/// Sends `value` (Homie encoding) to `path` of HA device `device`: the config's command
/// topic and payload form, QoS 1, never retained. The command settles as ok when the
/// state topic shows the value (the control watches that), when it is sent for
/// entities without a state topic (buttons, cover moves), or times out.
pub fn send(device: &str, path: &str, value: String, state: RwSignal<CommandState>) {
    let connection = expect_context::<Connection>();
    let registry = expect_context::<Registry>();
    let Some(client) = connection.client.get_untracked() else {
        state.set(CommandState::Rejected("not connected".to_owned()));
        return;
    };
    let outgoing = registry
        .ha
        .store
        .with_value(|store| store.command(device, path, &value));
    let outgoing = match outgoing {
        Ok(outgoing) => outgoing,
        Err(why) => {
            state.set(CommandState::Rejected(why));
            return;
        }
    };
    state.set(CommandState::Pending);
    let key = format!("{device}/{path}");
    let number = next_command(&key);
    let settle = move |to: CommandState| {
        if !is_last_command(&key, number) {
            return;
        }
        state.try_update(|current| {
            if *current == CommandState::Pending {
                *current = to;
            }
        });
    };
    spawn_local(async move {
        let sent = client
            .publish(
                outgoing.topic,
                outgoing.payload,
                PublishOptions::new(QoS::AtLeastOnce),
            )
            .await;
        match sent {
            Err(error) => settle(CommandState::Rejected(error.to_string())),
            Ok(_) if !outgoing.confirmed_by_state => settle(CommandState::Ok),
            Ok(_) => set_timeout(move || settle(CommandState::TimedOut), COMMAND_TIMEOUT),
        }
    });
}

/// Feeds a device page's live values and chart histories from the registry's values of
/// HA device `source` (the registry subscribes to its state topics already): a value
/// that changed is set and, when numeric, added to its history.
pub fn follow(
    source: RwSignal<BTreeMap<String, String>>,
    values: KeyedSignals<Option<String>>,
    histories: Histories,
    limit: usize,
) {
    let shown = StoredValue::new(BTreeMap::<String, String>::new());
    Effect::new(move |_| {
        let now = js_sys::Date::now();
        source.with(|current| {
            for (path, value) in current {
                if shown.with_value(|shown| shown.get(path) == Some(value)) {
                    continue;
                }
                shown.update_value(|shown| {
                    shown.insert(path.clone(), value.clone());
                });
                if let Ok(number) = value.trim().parse::<f64>() {
                    histories.get(path).update(|h| h.push((now, number), limit));
                }
                values.get(path).set(Some(value.clone()));
            }
        });
    });
}

/// The convention mark of device `id`.
#[component]
pub fn ConventionBadge(
    /// The registry id.
    id: String,
) -> impl IntoView {
    let convention = Convention::of(&id);
    view! {
        <span
            class=format!("badge convention convention-{}", convention.label().to_lowercase())
            data-testid="device-convention"
            title=convention.title()
        >
            {convention.label()}
        </span>
    }
}

/// HA configs the dashboard ignored, and why: a count that opens into the list.
#[component]
pub fn DiscoveryWarnings() -> impl IntoView {
    let registry = expect_context::<Registry>();
    let warnings = registry.ha.warnings;
    view! {
        <Show when=move || warnings.with(|w| !w.is_empty())>
            <details class="warnings" data-testid="ha-warnings">
                <summary data-testid="ha-warnings-count">
                    {move || {
                        let n = warnings.with(Vec::len);
                        format!(
                            "{n} Home Assistant discovery config{} ignored",
                            if n == 1 { "" } else { "s" },
                        )
                    }}
                </summary>
                <ul>
                    {move || {
                        warnings
                            .get()
                            .into_iter()
                            .map(|(topic, why)| {
                                view! {
                                    <li data-testid="ha-warning">
                                        <code>{topic}</code>
                                        ": "
                                        {why}
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </details>
        </Show>
    }
}
