//! What a Home Assistant discovery config becomes in the dashboard: an [`Entity`] with
//! the device it belongs to, its availability, and one or more Homie-shaped properties
//! ([`HaProperty`]), each with where its value comes from (a state topic, a template, a
//! decoding to Homie's encoding) and where a command goes (a command topic and the
//! payload form the config declares). Pure code.

use serde_json::{Map, Value};

use super::template::Template;
use crate::devices::homie::Property;

/// The Home Assistant components the dashboard reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A read-only value.
    Sensor,
    /// A read-only on/off value.
    BinarySensor,
    /// An on/off switch.
    Switch,
    /// A light: on/off and brightness (default or JSON schema).
    Light,
    /// A settable number.
    Number,
    /// A choice among options.
    Select,
    /// A button: a command without a state.
    Button,
    /// A thermostat: target temperature and mode.
    Climate,
    /// A cover: open/close/stop and position.
    Cover,
}

impl Component {
    /// The component named by a config topic's level, if the dashboard reads it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "sensor" => Self::Sensor,
            "binary_sensor" => Self::BinarySensor,
            "switch" => Self::Switch,
            "light" => Self::Light,
            "number" => Self::Number,
            "select" => Self::Select,
            "button" => Self::Button,
            "climate" => Self::Climate,
            "cover" => Self::Cover,
            _ => return None,
        })
    }

    /// Where its entities come in a device's description: readings first (the list's
    /// key values and the chart's default are the first readings), then controls.
    pub fn rank(self) -> u8 {
        match self {
            Self::Sensor => 0,
            Self::BinarySensor => 1,
            Self::Climate => 2,
            Self::Cover => 3,
            Self::Light => 4,
            Self::Switch => 5,
            Self::Number => 6,
            Self::Select => 7,
            Self::Button => 8,
        }
    }

    /// Its name in topics and in the page.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sensor => "sensor",
            Self::BinarySensor => "binary_sensor",
            Self::Switch => "switch",
            Self::Light => "light",
            Self::Number => "number",
            Self::Select => "select",
            Self::Button => "button",
            Self::Climate => "climate",
            Self::Cover => "cover",
        }
    }
}

/// The device an entity belongs to (`dev`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceInfo {
    /// The grouping key: the first of `dev.ids`, else the entity's unique id or
    /// object id (an entity without a device is a device of its own).
    pub key: String,
    /// `dev.name`.
    pub name: Option<String>,
    /// `dev.mdl`.
    pub model: Option<String>,
    /// `dev.mf`.
    pub manufacturer: Option<String>,
    /// `dev.sw`.
    pub sw_version: Option<String>,
}

/// How the entity's availability is combined from its topics (`avty_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvailabilityMode {
    /// The last message on any of the topics decides (HA's default).
    #[default]
    Latest,
    /// Available when every topic says available.
    All,
    /// Available when any topic says available.
    Any,
}

/// One availability topic with its payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityTopic {
    /// The topic.
    pub topic: String,
    /// `pl_avail`, default `online`.
    pub available: String,
    /// `pl_not_avail`, default `offline`.
    pub not_available: String,
    /// `val_tpl`, applied to the payload first.
    pub template: Option<Template>,
}

impl AvailabilityTopic {
    /// What a payload on it says: `Some(true)` available, `Some(false)` not, `None`
    /// neither.
    pub fn read(&self, payload: &str) -> Option<bool> {
        let text = match &self.template {
            Some(template) => template.render(payload)?,
            None => payload.to_owned(),
        };
        if text == self.available {
            Some(true)
        } else if text == self.not_available {
            Some(false)
        } else {
            None
        }
    }
}

/// Combines what each availability topic last said, by `mode`; `latest` is the value
/// of the topic heard from last. `None`: nothing known yet.
pub fn combine(
    mode: AvailabilityMode,
    each: &[Option<bool>],
    latest: Option<bool>,
) -> Option<bool> {
    match mode {
        AvailabilityMode::Latest => latest,
        AvailabilityMode::All => {
            if each.contains(&Some(false)) {
                Some(false)
            } else if !each.is_empty() && each.iter().all(|a| *a == Some(true)) {
                Some(true)
            } else if each.iter().any(Option::is_some) {
                // HA: not all of them have said available yet.
                Some(false)
            } else {
                None
            }
        }
        AvailabilityMode::Any => {
            if each.contains(&Some(true)) {
                Some(true)
            } else if each.iter().any(Option::is_some) {
                Some(false)
            } else {
                None
            }
        }
    }
}

/// How a rendered state becomes the Homie encoding the views use.
#[derive(Debug, Clone, PartialEq)]
pub enum Decode {
    /// As it is.
    Text,
    /// `true` when it equals `on`, `false` when it equals `off`, else nothing.
    Bool {
        /// The "on" state.
        on: String,
        /// The "off" state.
        off: String,
    },
    /// A number as it is; anything else (`unknown`, `None`) is nothing.
    Number,
}

/// Where a property's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSource {
    /// The state topic.
    pub topic: String,
    /// The value template, if any.
    pub template: Option<Template>,
    /// The decoding to Homie's encoding.
    pub decode: Decode,
}

impl StateSource {
    /// The value a payload on the state topic gives, in Homie's encoding.
    pub fn read(&self, payload: &str) -> Option<String> {
        let text = match &self.template {
            Some(template) => template.render(payload)?,
            None => payload.to_owned(),
        };
        match &self.decode {
            Decode::Text => Some(text),
            Decode::Bool { on, off } => {
                let text = text.trim();
                if text == on {
                    Some("true".to_owned())
                } else if text == off {
                    Some("false".to_owned())
                } else {
                    None
                }
            }
            Decode::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .map(|_| text.trim().to_owned()),
        }
    }
}

/// How a command's value (Homie encoding, as the controls send it) becomes the payload
/// the config declares.
#[derive(Debug, Clone, PartialEq)]
pub enum Encode {
    /// As it is.
    Text,
    /// `true` → `on`, `false` → `off`.
    Bool {
        /// `payload_on`.
        on: String,
        /// `payload_off`.
        off: String,
    },
    /// A command template: `{{ value }}` replaced by the value.
    Template(String),
    /// A JSON object (a JSON-schema light): `field` set to the value (a number when it
    /// reads as one, `on`/`off` for booleans when given), plus fixed `extra` fields.
    Json {
        /// The field the value goes to.
        field: String,
        /// For booleans: the words for true and false.
        words: Option<(String, String)>,
        /// Fixed fields sent along (a brightness command also turns the light on).
        extra: Vec<(String, String)>,
    },
    /// Always the same payload (a button's `payload_press`, a cover's `open`).
    Fixed(String),
}

impl Encode {
    /// The payload for `value`, or why it cannot be sent.
    pub fn payload(&self, value: &str) -> Result<String, String> {
        Ok(match self {
            Self::Text => value.to_owned(),
            Self::Bool { on, off } => match value {
                "true" => on.clone(),
                "false" => off.clone(),
                other => return Err(format!("`{other}` is not true or false")),
            },
            Self::Template(template) => ["{{ value }}", "{{value}}"]
                .iter()
                .fold(template.clone(), |text, form| text.replace(form, value)),
            Self::Json {
                field,
                words,
                extra,
            } => {
                let mut object = Map::new();
                for (key, fixed) in extra {
                    object.insert(key.clone(), Value::String(fixed.clone()));
                }
                let json = match (words, value) {
                    (Some((on, _)), "true") => Value::String(on.clone()),
                    (Some((_, off)), "false") => Value::String(off.clone()),
                    _ => match serde_json::from_str::<serde_json::Number>(value.trim()) {
                        Ok(number) => Value::Number(number),
                        Err(_) => Value::String(value.to_owned()),
                    },
                };
                object.insert(field.clone(), json);
                Value::Object(object).to_string()
            }
            Self::Fixed(payload) => payload.clone(),
        })
    }
}

/// Where a property's commands go.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSink {
    /// The command topic.
    pub topic: String,
    /// The payload form.
    pub encode: Encode,
}

/// One property of an entity: Homie-shaped for the views, with its HA topics.
#[derive(Debug, Clone, PartialEq)]
pub struct HaProperty {
    /// What the list, the page, the chart and the controls read.
    pub property: Property,
    /// Where its value comes from; `None` for buttons and optimistic entities.
    pub state: Option<StateSource>,
    /// Where its commands go; `None` for read-only ones.
    pub command: Option<CommandSink>,
}

/// One discovered entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Its component.
    pub component: Component,
    /// The config topic's object id.
    pub object_id: String,
    /// Its name (the device's when the config names none).
    pub name: String,
    /// Its device.
    pub device: DeviceInfo,
    /// Its availability topics; empty: always available.
    pub availability: Vec<AvailabilityTopic>,
    /// How they combine.
    pub availability_mode: AvailabilityMode,
    /// `json_attr_t`: a topic of extra attributes (recorded, shown as a property).
    pub attributes_topic: Option<String>,
    /// Its properties.
    pub properties: Vec<HaProperty>,
}
