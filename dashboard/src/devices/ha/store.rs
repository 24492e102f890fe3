//! Every discovered Home Assistant entity, grouped into devices by `dev.ids`: configs
//! in (added, replaced, or removed by an empty payload; malformed ones kept as
//! warnings), state and availability messages in, Homie-shaped devices out (a
//! [`Description`], values by `node/prop`, a [`DeviceState`]), and commands turned
//! into the topic and payload the config declares. Pure code: the registry
//! (`super`) feeds it and copies what changed into the signals.

use std::collections::{BTreeMap, BTreeSet};

use super::entity::{DeviceInfo, Entity, combine};
use super::parse;
use crate::devices::homie::{Description, DeviceState};

/// The registry id of HA devices starts with this: Homie ids (`[a-z0-9-]`) never
/// contain `:`, so the two conventions cannot collide.
pub const ID_PREFIX: &str = "ha:";

/// The registry id of the HA device `key` (its first `dev.ids`).
pub fn device_id(key: &str) -> String {
    format!("{ID_PREFIX}{key}")
}

/// A command ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The command topic.
    pub topic: String,
    /// The payload in the config's form.
    pub payload: String,
    /// Whether a state topic will show the result (else the command settles when sent).
    pub confirmed_by_state: bool,
}

/// What a state or availability message changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// New values: (device id, `node/prop`, value).
    pub values: Vec<(String, String, String)>,
    /// Devices whose availability may have changed.
    pub availability: BTreeSet<String>,
}

/// What each availability topic of an entity last said, and the last one heard.
#[derive(Debug, Clone, Default)]
struct Heard {
    each: Vec<Option<bool>>,
    latest: Option<bool>,
}

/// The discovered entities.
#[derive(Debug, Default)]
pub struct Store {
    /// By config topic.
    entities: BTreeMap<String, Entity>,
    /// What each entity's availability topics said, by config topic.
    heard: BTreeMap<String, Heard>,
    /// Configs ignored, by config topic: why.
    warnings: BTreeMap<String, String>,
    /// The config topics of the entities that read each state or availability topic,
    /// so a message visits only its readers (Zigbee2MQTT: one topic per device, read
    /// by its dozen entities; thousands of entities in all).
    readers: BTreeMap<String, BTreeSet<String>>,
}

/// Every state, attribute and availability topic `entity` reads.
fn topics_of(entity: &Entity) -> BTreeSet<String> {
    let states = entity
        .properties
        .iter()
        .filter_map(|p| p.state.as_ref().map(|s| s.topic.clone()));
    let availability = entity.availability.iter().map(|a| a.topic.clone());
    states.chain(availability).collect()
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a message on the discovery subscription (`{prefix}/…/config`). Returns
    /// the ids of the devices it changed (one that lost its last entity included), or
    /// `None` when the topic is no config topic.
    pub fn handle_config(
        &mut self,
        prefix: &str,
        topic: &str,
        payload: &[u8],
    ) -> Option<Vec<String>> {
        let config_topic = parse::config_topic(prefix, topic)?;
        let mut touched = Vec::new();
        if let Some(old) = self.entities.remove(topic) {
            touched.push(device_id(&old.device.key));
            for read in topics_of(&old) {
                if let Some(readers) = self.readers.get_mut(&read) {
                    readers.remove(topic);
                    if readers.is_empty() {
                        self.readers.remove(&read);
                    }
                }
            }
        }
        self.heard.remove(topic);
        self.warnings.remove(topic);
        if payload.is_empty() {
            return Some(touched);
        }
        match parse::entity(&config_topic, payload) {
            Ok(entity) => {
                touched.push(device_id(&entity.device.key));
                self.heard.insert(
                    topic.to_owned(),
                    Heard {
                        each: vec![None; entity.availability.len()],
                        latest: None,
                    },
                );
                for read in topics_of(&entity) {
                    self.readers
                        .entry(read)
                        .or_default()
                        .insert(topic.to_owned());
                }
                self.entities.insert(topic.to_owned(), entity);
            }
            Err(why) => {
                self.warnings.insert(topic.to_owned(), why);
            }
        }
        touched.dedup();
        Some(touched)
    }

    /// The configs ignored and why, by config topic.
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.warnings
            .iter()
            .map(|(topic, why)| (topic.clone(), why.clone()))
            .collect()
    }

    fn entities_of<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Entity)> + 'a {
        self.entities
            .iter()
            .filter(move |(_, entity)| device_id(&entity.device.key) == id)
    }

    /// Device `id`'s description: its name and every property of its entities; `None`
    /// when no entity is left.
    pub fn description(&self, id: &str) -> Option<Description> {
        let mut entities: Vec<&Entity> = self.entities_of(id).map(|(_, e)| e).collect();
        // Stable: within a component, config topic order.
        entities.sort_by_key(|e| e.component.rank());
        let first = entities.first()?;
        // The first `dev.name` any entity gives (Tasmota names it in some configs only).
        let name = entities
            .iter()
            .find_map(|e| e.device.name.clone())
            .unwrap_or_else(|| first.name.clone());
        let properties = entities
            .iter()
            .flat_map(|entity| entity.properties.iter().map(|p| p.property.clone()))
            .collect();
        Some(Description { name, properties })
    }

    /// Model, manufacturer and software version of device `id`, as one line.
    pub fn details(&self, id: &str) -> Option<String> {
        let devices: Vec<_> = self.entities_of(id).map(|(_, e)| &e.device).collect();
        let first = |read: fn(&DeviceInfo) -> Option<String>| devices.iter().find_map(|d| read(d));
        let parts: Vec<String> = [
            first(|d| d.manufacturer.clone()),
            first(|d| d.model.clone()),
            first(|d| d.sw_version.as_ref().map(|sw| format!("software {sw}"))),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" · "))
    }

    /// Device `id`'s state from its entities' availability: ready when one is available
    /// (or none declares availability), offline when those heard from say not
    /// available, unknown before anything is heard.
    pub fn state(&self, id: &str) -> DeviceState {
        let mut any_declared = false;
        let mut any_offline = false;
        for (topic, entity) in self.entities_of(id) {
            if entity.availability.is_empty() {
                continue;
            }
            any_declared = true;
            let heard = self.heard.get(topic).cloned().unwrap_or_default();
            match combine(entity.availability_mode, &heard.each, heard.latest) {
                Some(true) => return DeviceState::Ready,
                Some(false) => any_offline = true,
                None => {}
            }
        }
        if !any_declared {
            DeviceState::Ready
        } else if any_offline {
            DeviceState::Offline
        } else {
            DeviceState::Unknown
        }
    }

    /// Every state, attribute and availability topic the entities read.
    pub fn topics(&self) -> BTreeSet<String> {
        self.readers.keys().cloned().collect()
    }

    /// Applies a message on a state or availability topic.
    pub fn handle_message(&mut self, topic: &str, payload: &[u8]) -> Changes {
        let text = String::from_utf8_lossy(payload);
        let mut changes = Changes::default();
        let Some(readers) = self.readers.get(topic) else {
            return changes;
        };
        for config_topic in readers {
            let Some(entity) = self.entities.get(config_topic) else {
                continue;
            };
            let id = device_id(&entity.device.key);
            for property in &entity.properties {
                let Some(state) = property.state.as_ref().filter(|s| s.topic == topic) else {
                    continue;
                };
                if let Some(value) = state.read(&text) {
                    changes
                        .values
                        .push((id.clone(), property.property.path(), value));
                }
            }
            for (index, availability) in entity.availability.iter().enumerate() {
                if availability.topic != topic {
                    continue;
                }
                let said = availability.read(&text);
                if let Some(heard) = self.heard.get_mut(config_topic) {
                    if let Some(slot) = heard.each.get_mut(index) {
                        *slot = said;
                    }
                    if said.is_some() {
                        heard.latest = said;
                    }
                }
                changes.availability.insert(id.clone());
            }
        }
        changes
    }

    /// The command that sets `path` (`node/prop`) of device `id` to `value` (Homie
    /// encoding), or why there is none.
    pub fn command(&self, id: &str, path: &str, value: &str) -> Result<Outgoing, String> {
        let property = self
            .entities_of(id)
            .flat_map(|(_, entity)| entity.properties.iter())
            .find(|p| p.property.path() == path)
            .ok_or_else(|| format!("{path}: no such entity"))?;
        let sink = property
            .command
            .as_ref()
            .ok_or_else(|| format!("{path} takes no commands"))?;
        Ok(Outgoing {
            topic: sink.topic.clone(),
            payload: sink.encode.payload(value)?,
            confirmed_by_state: property.state.is_some(),
        })
    }
}
