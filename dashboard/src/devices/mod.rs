//! The devices view: discovery of Homie 5 devices (`{root}/5/+/$state`,
//! `{root}/5/+/$description` and their property values `{root}/5/+/+/+`), their list
//! with state, last seen, stale marking and key values, and a device's page ([`page`]).
//!
//! The collection is keyed signals: a map from device id to a [`Device`] whose fields are
//! signals of their own. Only a new device changes the map (and the keyed `<For>` adds one
//! row); a state or description change sets that device's signal and re-renders that row.
//! Property values, the bulk of the traffic, wait in a buffer and are applied once per
//! animation frame.

pub mod command;
pub mod ha;
pub mod homie;
pub mod list;
pub mod order;
pub mod page;

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, QoS};

use crate::components::FrameBatch;
use crate::connection::Connection;
use crate::settings::Settings;
use homie::{Description, DescriptionError, DeviceState};
pub use list::DeviceList;

/// One discovered device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id (topic level).
    pub id: String,
    /// Its last `$state`.
    pub state: RwSignal<DeviceState>,
    /// Its last `$description`, or why it could not be read.
    pub description: RwSignal<Option<Result<Description, DescriptionError>>>,
    /// When a message of it last arrived (milliseconds since the epoch).
    pub last_seen: RwSignal<Option<f64>>,
    /// Its last property values, by `node/prop`.
    pub values: RwSignal<BTreeMap<String, String>>,
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

/// Property values received since the last frame: device id → (time, `node/prop` →
/// value).
type Pending = HashMap<String, (f64, Vec<(String, String)>)>;

/// Every device seen since the connection started, by id. Provided as context.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    /// The devices by id.
    pub devices: RwSignal<BTreeMap<String, Device>>,
    /// Moves (at most once per animation frame) when a device is added or forgotten, or
    /// one's state or description changes: what the list's order and counts follow,
    /// instead of tracking every device's signals (thousands of them).
    pub revision: RwSignal<u64>,
    /// Changes since the last frame, for [`Self::revision`].
    changes: FrameBatch<()>,
    /// Property values received since the last frame.
    batch: FrameBatch<Pending>,
    /// Devices of an earlier connection, emptied, by id: a page that holds one (a
    /// device page opened by a link before the first connection) gets the same signals
    /// back when discovery finds the device again.
    parked: StoredValue<BTreeMap<String, Device>>,
    /// The reactive owner the registry was made under (the app's): a device's signals
    /// belong to it, not to whatever created the device first (a device page, which
    /// disposes its signals when it closes, or a discovery task).
    owner: StoredValue<Option<Owner>>,
    /// Home Assistant discovery: its entities and ignored configs (`ha`).
    pub ha: ha::HaState,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            devices: RwSignal::new(BTreeMap::new()),
            revision: RwSignal::new(0),
            changes: FrameBatch::new(),
            batch: FrameBatch::new(),
            parked: StoredValue::new(BTreeMap::new()),
            owner: StoredValue::new(Owner::current()),
            ha: ha::HaState::new(),
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
        let parked = self
            .parked
            .try_update_value(|parked| parked.remove(id))
            .flatten();
        let make = || Device {
            id: id.to_owned(),
            state: RwSignal::new(DeviceState::Unknown),
            description: RwSignal::new(None),
            last_seen: RwSignal::new(None),
            values: RwSignal::new(BTreeMap::new()),
        };
        let device = parked.unwrap_or_else(|| match self.owner.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
        });
        self.devices.update(|devices| {
            devices.insert(id.to_owned(), device.clone());
        });
        self.changed();
        device
    }

    /// Notes a change to the set of devices, a state or a description: the revision
    /// moves at the next animation frame (once, however many changes).
    pub fn changed(self) {
        self.changes
            .add(|_| {}, move |()| self.revision.update(|r| *r += 1));
    }

    /// Forgets every device (a new connection, perhaps to another broker or root): the
    /// list empties, and each device's signals are emptied and kept for [`Self::device`].
    pub fn reset(self) {
        let old = self.devices.try_update(std::mem::take).unwrap_or_default();
        for device in old.values() {
            device.state.set(DeviceState::Unknown);
            device.description.set(None);
            device.last_seen.set(None);
            device.values.set(BTreeMap::new());
        }
        self.parked.update_value(|parked| parked.extend(old));
        self.changed();
    }

    /// Applies one message of the discovery subscriptions: states and descriptions at
    /// once, property values at the next animation frame.
    pub fn handle(self, root: &str, topic: &str, payload: &[u8]) {
        let Some((id, rest)) = homie::split_device_topic(root, topic) else {
            return;
        };
        let now = js_sys::Date::now();
        match rest {
            "$state" => {
                let device = self.device(id);
                device.state.set(DeviceState::parse(payload));
                device.last_seen.set(Some(now));
                self.changed();
            }
            "$description" => {
                self.device(id)
                    .description
                    .set(Some(homie::parse_description(id, payload)));
                self.changed();
            }
            rest => {
                let Some(path) = homie::value_path(rest) else {
                    return;
                };
                let value = String::from_utf8_lossy(payload).into_owned();
                self.batch.add(
                    |pending| {
                        let (seen, values) = pending.entry(id.to_owned()).or_default();
                        *seen = now;
                        values.push((path.to_owned(), value));
                    },
                    move |pending| self.apply(pending),
                );
            }
        }
    }

    /// Applies the property values received since the last frame: one update per device.
    fn apply(self, pending: Pending) {
        for (id, (seen, values)) in pending {
            let device = self.device(&id);
            device.last_seen.set(Some(seen));
            device.values.update(|map| map.extend(values));
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
        let (root, prefix) = settings.with_untracked(|s| (s.root.clone(), s.ha_prefix.clone()));
        registry.reset();
        registry.ha.reset();
        spawn_local(ha::watch(client.clone(), prefix, registry));
        spawn_local(watch(client, root, registry));
    });
}

async fn watch(client: Client, root: String, registry: Registry) {
    let filters = [
        format!("{root}/5/+/$state"),
        format!("{root}/5/+/$description"),
        format!("{root}/5/+/+/+"),
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
