//! The devices view: discovery of Homie 5 devices (`{root}/5/+/$state` and
//! `{root}/5/+/$description`), their list, and a device's page ([`page`]).
//!
//! The collection is keyed signals: a map from device id to a [`Device`] whose fields are
//! signals of their own. Only a new device changes the map (and the keyed `<For>` adds one
//! row); a state or description change sets that device's signal and re-renders that row.

pub mod chart;
pub mod command;
pub mod homie;
pub mod page;

use std::collections::BTreeMap;

use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, QoS};

use crate::Page;
use crate::connection::Connection;
use crate::settings::Settings;
use homie::{Description, DescriptionError, DeviceState};

/// One discovered device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id (topic level).
    pub id: String,
    /// Its last `$state`.
    pub state: RwSignal<DeviceState>,
    /// Its last `$description`, or why it could not be read.
    pub description: RwSignal<Option<Result<Description, DescriptionError>>>,
}

impl Device {
    /// The name to show: the description's, else the id.
    pub fn name(&self) -> String {
        self.description.with(|d| match d {
            Some(Ok(description)) => description.name.clone(),
            _ => self.id.clone(),
        })
    }
}

/// Every device seen since the connection started, by id. Provided as context.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    /// The devices by id.
    pub devices: RwSignal<BTreeMap<String, Device>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            devices: RwSignal::new(BTreeMap::new()),
        }
    }

    /// The device `id`, added if it is new.
    pub fn device(self, id: &str) -> Device {
        if let Some(device) = self
            .devices
            .with_untracked(|devices| devices.get(id).cloned())
        {
            return device;
        }
        let device = Device {
            id: id.to_owned(),
            state: RwSignal::new(DeviceState::Unknown),
            description: RwSignal::new(None),
        };
        self.devices.update(|devices| {
            devices.insert(id.to_owned(), device.clone());
        });
        device
    }

    /// Applies one message of the discovery subscriptions.
    pub fn handle(self, root: &str, topic: &str, payload: &[u8]) {
        let Some((id, rest)) = homie::split_device_topic(root, topic) else {
            return;
        };
        match rest {
            "$state" => self.device(id).state.set(DeviceState::parse(payload)),
            "$description" => self
                .device(id)
                .description
                .set(Some(homie::parse_description(id, payload))),
            _ => {}
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Subscribes to every device's `$state` and `$description` on each new connection and
/// feeds the registry until the connection ends.
pub fn discover(connection: Connection, settings: RwSignal<Settings>, registry: Registry) {
    Effect::new(move |_| {
        let Some(client) = connection.client.get() else {
            return;
        };
        let root = settings.with_untracked(|s| s.root.clone());
        registry.devices.set(BTreeMap::new());
        spawn_local(watch(client, root, registry));
    });
}

async fn watch(client: Client, root: String, registry: Registry) {
    let filters = [
        format!("{root}/5/+/$state"),
        format!("{root}/5/+/$description"),
    ];
    let mut streams = Vec::new();
    for filter in filters {
        match client.subscribe(filter, QoS::AtLeastOnce).await {
            Ok(subscription) => streams.push(subscription),
            Err(error) => leptos::logging::warn!("subscribing to devices failed: {error}"),
        }
    }
    // Both streams end when this client ends (a reconnect with new settings).
    let mut messages = futures::stream::select_all(streams);
    while let Some(message) = messages.next().await {
        registry.handle(&root, message.topic(), &message.payload);
    }
}

/// The list of discovered devices.
#[component]
pub fn DeviceList() -> impl IntoView {
    let registry = expect_context::<Registry>();
    let page = expect_context::<RwSignal<Page>>();
    view! {
        <section class="devices card" data-testid="devices">
            <h2>"Devices"</h2>
            <Show
                when=move || registry.devices.with(|d| !d.is_empty())
                fallback=|| view! { <p data-testid="devices-empty">"No devices yet."</p> }
            >
                <ul class="device-list">
                    <For
                        each=move || registry.devices.get().into_values()
                        key=|device| device.id.clone()
                        let:device
                    >
                        <DeviceRow device=device page=page />
                    </For>
                </ul>
            </Show>
        </section>
    }
}

#[component]
fn DeviceRow(device: Device, page: RwSignal<Page>) -> impl IntoView {
    let id = device.id.clone();
    let state = device.state;
    let testid = format!("device-{id}");
    let name = {
        let device = device.clone();
        move || device.name()
    };
    let open = move |_| page.set(Page::Device(id.clone()));
    view! {
        <li class="device-row" data-testid=testid>
            <button class="link" data-testid="device-open" on:click=open>
                <span data-testid="device-name">{name}</span>
                <span class="device-id">{device.id.clone()}</span>
            </button>
            <span
                class=move || format!("badge state-{}", state.get().label())
                data-testid="device-state"
            >
                {move || state.get().label()}
            </span>
        </li>
    }
}
