//! Reading Home Assistant MQTT discovery configs: the config topic
//! (`{prefix}/{component}/[{node_id}/]{object_id}/config`), the abbreviated keys
//! expanded (`stat_t` → `state_topic`, in `dev` and `avty` entries too), `~` replaced
//! by the base topic, and the config read into an [`Entity`] (its properties by
//! `components`). Pure code.

use serde_json::{Map, Value};

use super::components::{properties, property};
use super::entity::{
    AvailabilityMode, AvailabilityTopic, Component, Decode, DeviceInfo, Entity, HaProperty,
    StateSource,
};
use super::template::Template;

/// A config topic's levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTopic {
    /// The component level (`sensor`, `light`, ...), read or not.
    pub component: String,
    /// The optional node id level.
    pub node_id: Option<String>,
    /// The object id level.
    pub object_id: String,
}

/// Splits `{prefix}/{component}/[{node_id}/]{object_id}/config`; `None` for other topics.
pub fn config_topic(prefix: &str, topic: &str) -> Option<ConfigTopic> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let rest = rest.strip_suffix("/config")?;
    let levels: Vec<&str> = rest.split('/').collect();
    let (component, node_id, object_id) = match levels.as_slice() {
        [component, object_id] => (*component, None, *object_id),
        [component, node_id, object_id] => (*component, Some(*node_id), *object_id),
        _ => return None,
    };
    if component.is_empty() || object_id.is_empty() || node_id == Some("") {
        return None;
    }
    Some(ConfigTopic {
        component: component.to_owned(),
        node_id: node_id.map(str::to_owned),
        object_id: object_id.to_owned(),
    })
}

/// The abbreviations of discovery payloads' top-level keys (and availability entries'),
/// as Home Assistant documents them: the ones of the components the dashboard reads.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("avty", "availability"),
    ("avty_mode", "availability_mode"),
    ("avty_t", "availability_topic"),
    ("avty_tpl", "availability_template"),
    ("bri_cmd_t", "brightness_command_topic"),
    ("bri_cmd_tpl", "brightness_command_template"),
    ("bri_scl", "brightness_scale"),
    ("bri_stat_t", "brightness_state_topic"),
    ("bri_val_tpl", "brightness_value_template"),
    ("cmd_t", "command_topic"),
    ("clrm", "color_mode"),
    ("cmd_tpl", "command_template"),
    ("curr_temp_t", "current_temperature_topic"),
    ("curr_temp_tpl", "current_temperature_template"),
    ("dev", "device"),
    ("dev_cla", "device_class"),
    ("en", "enabled_by_default"),
    ("ent_cat", "entity_category"),
    ("ic", "icon"),
    ("json_attr_t", "json_attributes_topic"),
    ("json_attr_tpl", "json_attributes_template"),
    ("max_temp", "max_temp"),
    ("min_temp", "min_temp"),
    ("mode_cmd_t", "mode_command_topic"),
    ("mode_cmd_tpl", "mode_command_template"),
    ("mode_stat_t", "mode_state_topic"),
    ("mode_stat_tpl", "mode_state_template"),
    ("o", "origin"),
    ("obj_id", "object_id"),
    ("opt", "optimistic"),
    ("ops", "options"),
    ("pl_avail", "payload_available"),
    ("pl_not_avail", "payload_not_available"),
    ("pl_cls", "payload_close"),
    ("pl_off", "payload_off"),
    ("pl_on", "payload_on"),
    ("pl_open", "payload_open"),
    ("pl_prs", "payload_press"),
    ("pl_stop", "payload_stop"),
    ("pos_clsd", "position_closed"),
    ("pos_open", "position_open"),
    ("pos_t", "position_topic"),
    ("pos_tpl", "position_template"),
    ("set_pos_t", "set_position_topic"),
    ("set_pos_tpl", "set_position_template"),
    ("stat_cla", "state_class"),
    ("stat_off", "state_off"),
    ("stat_on", "state_on"),
    ("stat_t", "state_topic"),
    ("stat_val_tpl", "state_value_template"),
    ("sup_clrm", "supported_color_modes"),
    ("t", "topic"),
    ("temp_cmd_t", "temperature_command_topic"),
    ("temp_cmd_tpl", "temperature_command_template"),
    ("temp_stat_t", "temperature_state_topic"),
    ("temp_stat_tpl", "temperature_state_template"),
    ("temp_unit", "temperature_unit"),
    ("uniq_id", "unique_id"),
    ("unit_of_meas", "unit_of_measurement"),
    ("val_tpl", "value_template"),
];

/// The abbreviations of the `dev` object's keys.
const DEVICE_ABBREVIATIONS: &[(&str, &str)] = &[
    ("cns", "connections"),
    ("hw", "hw_version"),
    ("ids", "identifiers"),
    ("mdl", "model"),
    ("mf", "manufacturer"),
    ("sa", "suggested_area"),
    ("sw", "sw_version"),
];

fn expand_keys(object: Map<String, Value>, table: &[(&str, &str)]) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| {
            let full = table
                .iter()
                .find(|(short, _)| *short == key)
                .map_or(key, |(_, full)| (*full).to_owned());
            (full, value)
        })
        .collect()
}

/// Replaces a leading or trailing `~` of a topic by `base`.
fn with_base(topic: &str, base: Option<&str>) -> String {
    match base {
        Some(base) if topic.starts_with('~') => format!("{base}{}", &topic[1..]),
        Some(base) if topic.ends_with('~') => format!("{}{base}", &topic[..topic.len() - 1]),
        _ => topic.to_owned(),
    }
}

/// The config's JSON object with every abbreviation expanded and `~` substituted in
/// topics.
pub fn expand(payload: &[u8]) -> Result<Map<String, Value>, String> {
    let Value::Object(object) =
        serde_json::from_slice(payload).map_err(|error| format!("not JSON: {error}"))?
    else {
        return Err("not a JSON object".to_owned());
    };
    let mut object = expand_keys(object, ABBREVIATIONS);
    let base = object.get("~").and_then(Value::as_str).map(str::to_owned);
    for (key, value) in object.iter_mut() {
        if key.ends_with("_topic")
            && let Value::String(topic) = value
        {
            *topic = with_base(topic, base.as_deref());
        }
    }
    if let Some(Value::Object(device)) = object.remove("device") {
        object.insert(
            "device".to_owned(),
            Value::Object(expand_keys(device, DEVICE_ABBREVIATIONS)),
        );
    }
    if let Some(Value::Array(entries)) = object.get_mut("availability") {
        for entry in entries.iter_mut() {
            if let Value::Object(map) = entry {
                let mut expanded = expand_keys(std::mem::take(map), ABBREVIATIONS);
                if let Some(Value::String(topic)) = expanded.get_mut("topic") {
                    *topic = with_base(topic, base.as_deref());
                }
                *map = expanded;
            }
        }
    }
    Ok(object)
}

/// Typed reads of the expanded config.
pub(super) struct Config<'a>(pub(super) &'a Map<String, Value>);

impl Config<'_> {
    /// A string (numbers and booleans as their text: payloads are often numbers, and
    /// Zigbee2MQTT's binary sensors say `"payload_on": true`). Booleans read as Home
    /// Assistant reads them, `True`/`False`, which is also how a template renders a JSON
    /// boolean, so the two compare equal.
    pub(super) fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(true) => Some("True".to_owned()),
            Value::Bool(false) => Some("False".to_owned()),
            _ => None,
        }
    }

    pub(super) fn text_or(&self, key: &str, default: &str) -> String {
        self.text(key).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn number(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    pub(super) fn flag(&self, key: &str) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    pub(super) fn template(&self, key: &str) -> Result<Option<Template>, String> {
        self.text(key).map(|t| Template::parse(&t)).transpose()
    }

    pub(super) fn list(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Reads one config (the payload of `topic`, already split) into an [`Entity`], or
/// says why it is ignored.
pub fn entity(topic: &ConfigTopic, payload: &[u8]) -> Result<Entity, String> {
    let component = Component::parse(&topic.component)
        .ok_or_else(|| format!("component `{}` is not supported", topic.component))?;
    let map = expand(payload)?;
    let config = Config(&map);
    let device = device_info(&config, topic);
    let name = match map.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => device
            .name
            .clone()
            .unwrap_or_else(|| topic.object_id.clone()),
    };
    let (availability, availability_mode) = availability(&config)?;
    let mut properties = properties(component, &config, &topic.object_id, &name)?;
    let attributes_topic = config.text("json_attributes_topic");
    if let Some(topic_name) = &attributes_topic {
        properties.push(HaProperty {
            property: property(
                &topic.object_id,
                &name,
                ("attributes", &format!("{name} attributes")),
                "string",
                None,
                None,
                false,
            ),
            state: Some(StateSource {
                topic: topic_name.clone(),
                template: config.template("json_attributes_template")?,
                decode: Decode::Text,
            }),
            command: None,
        });
    }
    Ok(Entity {
        component,
        object_id: topic.object_id.clone(),
        name,
        device,
        availability,
        availability_mode,
        attributes_topic,
        properties,
    })
}

fn device_info(config: &Config<'_>, topic: &ConfigTopic) -> DeviceInfo {
    let device = match config.0.get("device") {
        Some(Value::Object(device)) => Some(Config(device)),
        _ => None,
    };
    let first_id = device.as_ref().and_then(|d| match d.0.get("identifiers") {
        Some(Value::Array(ids)) => ids.first().and_then(|id| match id {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }),
        _ => d.text("identifiers"),
    });
    let key = first_id
        .or_else(|| config.text("unique_id"))
        .unwrap_or_else(|| match &topic.node_id {
            Some(node) => format!("{node}_{}", topic.object_id),
            None => topic.object_id.clone(),
        });
    let read = |key: &str| device.as_ref().and_then(|d| d.text(key));
    DeviceInfo {
        key,
        name: read("name"),
        model: read("model"),
        manufacturer: read("manufacturer"),
        sw_version: read("sw_version"),
    }
}

fn availability(config: &Config<'_>) -> Result<(Vec<AvailabilityTopic>, AvailabilityMode), String> {
    let available = config.text_or("payload_available", "online");
    let not_available = config.text_or("payload_not_available", "offline");
    let mut topics = Vec::new();
    if let Some(topic) = config.text("availability_topic") {
        topics.push(AvailabilityTopic {
            topic,
            available: available.clone(),
            not_available: not_available.clone(),
            template: config.template("availability_template")?,
        });
    }
    if let Some(Value::Array(entries)) = config.0.get("availability") {
        for entry in entries {
            let Value::Object(entry) = entry else {
                return Err("an `availability` entry is not an object".to_owned());
            };
            let entry = Config(entry);
            let topic = entry
                .text("topic")
                .ok_or("an `availability` entry has no topic")?;
            topics.push(AvailabilityTopic {
                topic,
                available: entry.text_or("payload_available", &available),
                not_available: entry.text_or("payload_not_available", &not_available),
                template: entry.template("value_template")?,
            });
        }
    }
    let mode = match config.text("availability_mode").as_deref() {
        None | Some("latest") => AvailabilityMode::Latest,
        Some("all") => AvailabilityMode::All,
        Some("any") => AvailabilityMode::Any,
        Some(other) => return Err(format!("availability_mode `{other}` is unknown")),
    };
    Ok((topics, mode))
}
