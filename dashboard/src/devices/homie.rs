//! The Homie 5 convention as the dashboard reads it (see `docs/ARCHITECTURE.md`, "Device
//! topic convention"): device states, `$description` documents and topic paths. Pure
//! functions, unit-tested natively.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A device's `$state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Starting up; its description and values may not be complete yet.
    Init,
    /// Operational.
    Ready,
    /// Cleanly disconnected.
    Disconnected,
    /// Asleep; commands wait until it wakes.
    Sleeping,
    /// Gone without a clean disconnection (its will).
    Lost,
    /// Not available (a Home Assistant device's availability topics say so).
    Offline,
    /// No `$state` seen yet, or a value outside the convention.
    Unknown,
}

impl DeviceState {
    /// Parses a `$state` payload; anything else is [`DeviceState::Unknown`].
    pub fn parse(payload: &[u8]) -> Self {
        match payload {
            b"init" => Self::Init,
            b"ready" => Self::Ready,
            b"disconnected" => Self::Disconnected,
            b"sleeping" => Self::Sleeping,
            b"lost" => Self::Lost,
            _ => Self::Unknown,
        }
    }

    /// The word shown to users, also used as the CSS class.
    pub fn label(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Ready => "ready",
            Self::Disconnected => "disconnected",
            Self::Sleeping => "sleeping",
            Self::Lost => "lost",
            Self::Offline => "offline",
            Self::Unknown => "unknown",
        }
    }
}

/// Why a `$description` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// Not the JSON document the convention describes.
    #[error("invalid $description of `{device}`: {reason}")]
    Invalid {
        /// The device id.
        device: String,
        /// serde_json's explanation.
        reason: String,
    },
}

/// A device's `$description`, flattened to what the views need.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The human name; the device id when the document has none.
    pub name: String,
    /// Every property of every node, ordered by node id then property id.
    pub properties: Vec<Property>,
}

/// One property of a `$description`.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Node id (topic level).
    pub node: String,
    /// Node name, for grouping.
    pub node_name: String,
    /// Property id (topic level).
    pub id: String,
    /// Human name; the id when absent.
    pub name: String,
    /// Homie datatype: `integer`, `float`, `boolean`, `string`, `enum`, ...
    pub datatype: String,
    /// Unit, e.g. `°C`.
    pub unit: Option<String>,
    /// Homie format: `min:max`, enum values, ...
    pub format: Option<String>,
    /// Whether `/set` commands are accepted. Homie default: `false`.
    pub settable: bool,
    /// Whether the value is retained. Homie default: `true`.
    pub retained: bool,
}

impl Property {
    /// `node/prop`: the key of its live value and the rest of its topic.
    pub fn path(&self) -> String {
        format!("{}/{}", self.node, self.id)
    }

    /// Whether the dashboard offers a switch for it.
    pub fn is_switch(&self) -> bool {
        self.settable && self.datatype == "boolean"
    }

    /// Whether its values can be charted (integer or float).
    pub fn is_numeric(&self) -> bool {
        matches!(self.datatype.as_str(), "integer" | "float")
    }

    /// The control the device page offers for it, from its datatype and format; `None`
    /// when it is not settable.
    pub fn control(&self) -> Option<Control> {
        if !self.settable {
            return None;
        }
        Some(match self.datatype.as_str() {
            "boolean" => Control::Switch,
            "integer" | "float" => {
                let integer = self.datatype == "integer";
                match self.format.as_deref().and_then(parse_range) {
                    Some((min, max)) => Control::Slider {
                        min,
                        max,
                        step: if integer {
                            1.0
                        } else {
                            ((max - min) / 100.0).max(0.01)
                        },
                    },
                    None => Control::Number { integer },
                }
            }
            "enum" => {
                let values: Vec<String> = self
                    .format
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
                match values.as_slice() {
                    [action] => Control::Action(action.clone()),
                    _ => Control::Enum(values),
                }
            }
            _ => Control::Text,
        })
    }
}

/// How a settable property is set from the device page.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// A boolean: a switch that sends the opposite of the live value.
    Switch,
    /// A number with a `min:max` format: a slider over that range (and a number input).
    Slider {
        /// The format's lower bound.
        min: f64,
        /// The format's upper bound.
        max: f64,
        /// 1 for integers, a hundredth of the range for floats.
        step: f64,
    },
    /// A number without a closed range: a number input.
    Number {
        /// Whether it is an integer.
        integer: bool,
    },
    /// An enum of several values: a select.
    Enum(Vec<String>),
    /// An enum of one value (`reboot`): a button that sends it.
    Action(String),
    /// Anything else (string, color, datetime, ...): a text input.
    Text,
}

/// A Homie `min:max` format with both bounds, `min <= max`.
pub fn parse_range(format: &str) -> Option<(f64, f64)> {
    let (min, max) = format.split_once(':')?;
    let (min, max) = (
        min.trim().parse::<f64>().ok()?,
        max.trim().parse::<f64>().ok()?,
    );
    (min.is_finite() && max.is_finite() && min <= max).then_some((min, max))
}

#[derive(Deserialize)]
struct RawDescription {
    name: Option<String>,
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
}

#[derive(Deserialize)]
struct RawNode {
    name: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, RawProperty>,
}

#[derive(Deserialize)]
struct RawProperty {
    name: Option<String>,
    datatype: String,
    unit: Option<String>,
    format: Option<String>,
    #[serde(default)]
    settable: bool,
    #[serde(default = "yes")]
    retained: bool,
}

fn yes() -> bool {
    true
}

/// Parses device `device`'s `$description` payload.
pub fn parse_description(device: &str, payload: &[u8]) -> Result<Description, DescriptionError> {
    let raw: RawDescription =
        serde_json::from_slice(payload).map_err(|error| DescriptionError::Invalid {
            device: device.to_owned(),
            reason: error.to_string(),
        })?;
    let properties = raw
        .nodes
        .into_iter()
        .flat_map(|(node, raw_node)| {
            let node_name = raw_node.name.unwrap_or_else(|| node.clone());
            raw_node
                .properties
                .into_iter()
                .map(move |(id, p)| Property {
                    node: node.clone(),
                    node_name: node_name.clone(),
                    name: p.name.unwrap_or_else(|| id.clone()),
                    id,
                    datatype: p.datatype,
                    unit: p.unit,
                    format: p.format,
                    settable: p.settable,
                    retained: p.retained,
                })
        })
        .collect();
    Ok(Description {
        name: raw.name.unwrap_or_else(|| device.to_owned()),
        properties,
    })
}

/// Splits `{root}/5/{dev}/{rest}` into `(dev, rest)`; `None` for other topics.
pub fn split_device_topic<'a>(root: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let tail = topic.strip_prefix(root)?.strip_prefix("/5/")?;
    let (device, rest) = tail.split_once('/')?;
    (!device.is_empty()).then_some((device, rest))
}

/// The `node/prop` of a property value topic's rest, or `None` for attributes (`$…`),
/// commands (`…/set`) and deeper topics (`…/$target`).
pub fn value_path(rest: &str) -> Option<&str> {
    let mut levels = rest.split('/');
    let (node, prop) = (levels.next()?, levels.next()?);
    let plain = |level: &str| !level.is_empty() && !level.starts_with('$');
    (levels.next().is_none() && plain(node) && plain(prop)).then_some(rest)
}

/// What a device answered to a command (`{"ok":true}` or `{"ok":false,"error":"…"}`):
/// `Ok(())` or the rejection's text.
pub fn parse_reply(payload: &[u8]) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Reply {
        ok: bool,
        error: Option<String>,
    }
    match serde_json::from_slice::<Reply>(payload) {
        Ok(Reply { ok: true, .. }) => Ok(()),
        Ok(Reply { error, .. }) => Err(error.unwrap_or_else(|| "rejected".to_owned())),
        Err(error) => Err(format!("unreadable reply: {error}")),
    }
}

/// Whether a property's published value is the one a command asked for: equal text, or
/// equal numbers (`20` and `20.0`). `None` on either side is never a match.
pub fn same_value(target: Option<&str>, value: Option<&str>) -> bool {
    let (Some(target), Some(value)) = (target, value) else {
        return false;
    };
    let (target, value) = (target.trim(), value.trim());
    target == value
        || matches!(
            (target.parse::<f64>(), value.parse::<f64>()),
            (Ok(a), Ok(b)) if a == b
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_value_matches_as_text_or_number() {
        assert!(same_value(Some("true"), Some("true")));
        assert!(same_value(Some("20"), Some("20.0")));
        assert!(same_value(Some(" 5"), Some("5")));
        assert!(!same_value(Some("20"), Some("21")));
        assert!(!same_value(Some("on"), Some("off")));
        assert!(!same_value(None, Some("1")));
        assert!(!same_value(Some("1"), None));
    }

    fn property(datatype: &str, format: Option<&str>, settable: bool) -> Property {
        Property {
            node: "n".into(),
            node_name: "N".into(),
            id: "p".into(),
            name: "P".into(),
            datatype: datatype.into(),
            unit: None,
            format: format.map(Into::into),
            settable,
            retained: true,
        }
    }

    #[test]
    fn the_control_follows_datatype_and_format() {
        assert_eq!(property("boolean", None, false).control(), None);
        assert_eq!(
            property("boolean", None, true).control(),
            Some(Control::Switch)
        );
        assert_eq!(
            property("integer", Some("0:100"), true).control(),
            Some(Control::Slider {
                min: 0.0,
                max: 100.0,
                step: 1.0
            })
        );
        assert_eq!(
            property("float", Some("5:35"), true).control(),
            Some(Control::Slider {
                min: 5.0,
                max: 35.0,
                step: 0.3
            })
        );
        // An open range is no slider.
        assert_eq!(
            property("float", Some("0:"), true).control(),
            Some(Control::Number { integer: false })
        );
        assert_eq!(
            property("enum", Some("low, mid,high"), true).control(),
            Some(Control::Enum(vec![
                "low".into(),
                "mid".into(),
                "high".into()
            ]))
        );
        assert_eq!(
            property("enum", Some("reboot"), true).control(),
            Some(Control::Action("reboot".into()))
        );
        assert_eq!(
            property("string", None, true).control(),
            Some(Control::Text)
        );
        assert!(property("float", None, false).is_numeric());
        assert!(!property("enum", None, false).is_numeric());
        assert_eq!(parse_range("3:1"), None);
        assert_eq!(parse_range("a:1"), None);
    }

    #[test]
    fn a_description_lists_every_property_with_homie_defaults() {
        let payload = br#"{"homie":"5.0","version":1,"name":"Kitchen","nodes":{
            "lamp":{"name":"Lamp","properties":{"switch":{"name":"Lamp on","datatype":"boolean","settable":true}}},
            "env":{"properties":{"temperature":{"datatype":"float","unit":"C"}}}}}"#;
        let description = parse_description("k1", payload).expect("valid");
        assert_eq!(description.name, "Kitchen");
        let paths: Vec<String> = description.properties.iter().map(Property::path).collect();
        assert_eq!(paths, ["env/temperature", "lamp/switch"]);
        let temperature = &description.properties[0];
        assert_eq!(temperature.name, "temperature");
        assert_eq!(temperature.node_name, "env");
        assert!(!temperature.settable && temperature.retained);
        assert!(description.properties[1].is_switch());
    }

    #[test]
    fn a_bad_description_names_the_device() {
        let error = parse_description("k1", b"{nope").expect_err("invalid");
        assert!(error.to_string().contains("`k1`"), "{error}");
    }

    #[test]
    fn topics_split_into_device_and_value_path() {
        assert_eq!(
            split_device_topic("iot", "iot/5/k1/env/temperature"),
            Some(("k1", "env/temperature"))
        );
        assert_eq!(split_device_topic("iot", "iot/4/k1/x"), None);
        assert_eq!(split_device_topic("iot", "iotx/5/k1/x"), None);
        assert_eq!(value_path("env/temperature"), Some("env/temperature"));
        assert_eq!(value_path("$state"), None);
        assert_eq!(value_path("lamp/switch/set"), None);
        assert_eq!(value_path("lamp/$target"), None);
    }

    #[test]
    fn replies_and_states_parse() {
        assert_eq!(parse_reply(br#"{"ok":true}"#), Ok(()));
        assert_eq!(
            parse_reply(br#"{"ok":false,"error":"out of range"}"#),
            Err("out of range".to_owned())
        );
        assert!(parse_reply(b"yes").is_err());
        assert_eq!(DeviceState::parse(b"lost"), DeviceState::Lost);
        assert_eq!(DeviceState::parse(b"weird"), DeviceState::Unknown);
    }
}
