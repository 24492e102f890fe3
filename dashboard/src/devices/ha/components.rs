//! The components' keys turned into Homie-shaped properties: which state topic and
//! template feed each, which command topic and payload form each control uses, per
//! component (sensor, binary_sensor, switch, light, number, select, button, climate,
//! cover). Pure code.

use serde_json::Value;

use super::entity::{CommandSink, Component, Decode, Encode, HaProperty, StateSource};
use super::parse::Config;
use super::template::Template;
use crate::devices::homie::Property;

/// A Homie property for an entity's part.
pub(super) fn property(
    node: &str,
    node_name: &str,
    (id, name): (&str, &str),
    datatype: &str,
    unit: Option<String>,
    format: Option<String>,
    settable: bool,
) -> Property {
    Property {
        node: node.to_owned(),
        node_name: node_name.to_owned(),
        id: id.to_owned(),
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        unit,
        format,
        settable,
        retained: true,
    }
}

/// The state source for `topic_key` with `template_key`.
pub(super) fn source(
    config: &Config<'_>,
    topic_key: &str,
    template_key: &str,
    decode: Decode,
) -> Result<Option<StateSource>, String> {
    let Some(topic) = config.text(topic_key) else {
        return Ok(None);
    };
    Ok(Some(StateSource {
        topic,
        template: config.template(template_key)?,
        decode,
    }))
}

/// The command sink on `topic_key`, its payload from `template_key` when the config
/// has a command template, else `encode`.
fn sink(
    config: &Config<'_>,
    topic_key: &str,
    template_key: &str,
    encode: Encode,
) -> Option<CommandSink> {
    let topic = config.text(topic_key)?;
    let encode = config.text(template_key).map_or(encode, Encode::Template);
    Some(CommandSink { topic, encode })
}

fn range(min: f64, max: f64) -> Option<String> {
    (min <= max).then(|| format!("{min}:{max}"))
}

/// The properties of one entity, by component.
pub(super) fn properties(
    component: Component,
    config: &Config<'_>,
    node: &str,
    name: &str,
) -> Result<Vec<HaProperty>, String> {
    let unit = config.text("unit_of_measurement");
    let on_off = |on_key: &str, off_key: &str, state_on: &str, state_off: &str| {
        let on = config.text_or(on_key, "ON");
        let off = config.text_or(off_key, "OFF");
        let decode = Decode::Bool {
            on: config.text(state_on).unwrap_or_else(|| on.clone()),
            off: config.text(state_off).unwrap_or_else(|| off.clone()),
        };
        (Encode::Bool { on, off }, decode)
    };
    let mut out = Vec::new();
    match component {
        Component::Sensor => {
            let numeric = unit.is_some() || config.text("state_class").is_some();
            let (datatype, decode) = if numeric {
                ("float", Decode::Number)
            } else {
                ("string", Decode::Text)
            };
            let state = source(config, "state_topic", "value_template", decode)?
                .ok_or("a sensor needs a state_topic")?;
            out.push(HaProperty {
                property: property(node, name, ("state", name), datatype, unit, None, false),
                state: Some(state),
                command: None,
            });
        }
        Component::BinarySensor => {
            let (_, decode) = on_off("payload_on", "payload_off", "payload_on", "payload_off");
            let state = source(config, "state_topic", "value_template", decode)?
                .ok_or("a binary_sensor needs a state_topic")?;
            out.push(HaProperty {
                property: property(node, name, ("state", name), "boolean", None, None, false),
                state: Some(state),
                command: None,
            });
        }
        Component::Switch => {
            let (encode, decode) = on_off("payload_on", "payload_off", "state_on", "state_off");
            let command = sink(config, "command_topic", "command_template", encode)
                .ok_or("a switch needs a command_topic")?;
            out.push(HaProperty {
                property: property(node, name, ("state", name), "boolean", None, None, true),
                state: source(config, "state_topic", "value_template", decode)?,
                command: Some(command),
            });
        }
        Component::Light => light(config, node, name, &mut out)?,
        Component::Number => {
            let min = config.number("min").unwrap_or(1.0);
            let max = config.number("max").unwrap_or(100.0);
            let step = config.number("step").unwrap_or(1.0);
            let datatype = if step.fract() == 0.0 {
                "integer"
            } else {
                "float"
            };
            let command = sink(config, "command_topic", "command_template", Encode::Text)
                .ok_or("a number needs a command_topic")?;
            out.push(HaProperty {
                property: property(
                    node,
                    name,
                    ("state", name),
                    datatype,
                    unit,
                    range(min, max),
                    true,
                ),
                state: source(config, "state_topic", "value_template", Decode::Number)?,
                command: Some(command),
            });
        }
        Component::Select => {
            let options = config.list("options");
            if options.is_empty() {
                return Err("a select needs options".to_owned());
            }
            let command = sink(config, "command_topic", "command_template", Encode::Text)
                .ok_or("a select needs a command_topic")?;
            out.push(HaProperty {
                property: property(
                    node,
                    name,
                    ("state", name),
                    "enum",
                    None,
                    Some(options.join(",")),
                    true,
                ),
                state: source(config, "state_topic", "value_template", Decode::Text)?,
                command: Some(command),
            });
        }
        Component::Button => {
            let press = config.text_or("payload_press", "PRESS");
            let command = sink(
                config,
                "command_topic",
                "command_template",
                Encode::Fixed(press),
            )
            .ok_or("a button needs a command_topic")?;
            out.push(HaProperty {
                property: property(
                    node,
                    name,
                    ("press", name),
                    "enum",
                    None,
                    Some("press".to_owned()),
                    true,
                ),
                state: None,
                command: Some(command),
            });
        }
        Component::Climate => climate(config, node, name, &mut out)?,
        Component::Cover => cover(config, node, name, &mut out)?,
    }
    Ok(out)
}

/// A light: on/off, and brightness when the config has it; the default schema (plain
/// payloads, brightness topics of its own) or the JSON schema (one JSON state and
/// command).
fn light(
    config: &Config<'_>,
    node: &str,
    name: &str,
    out: &mut Vec<HaProperty>,
) -> Result<(), String> {
    let command_topic = config
        .text("command_topic")
        .ok_or("a light needs a command_topic")?;
    let scale = config.number("brightness_scale").unwrap_or(255.0);
    let brightness_name = format!("{name} brightness");
    match config.text("schema").as_deref() {
        Some("json") => {
            let words = ("ON".to_owned(), "OFF".to_owned());
            let state = |field: &str, decode: Decode| {
                config.text("state_topic").map(|topic| StateSource {
                    topic,
                    template: Some(Template::json_field(field)),
                    decode,
                })
            };
            out.push(HaProperty {
                property: property(node, name, ("state", name), "boolean", None, None, true),
                state: state(
                    "state",
                    Decode::Bool {
                        on: words.0.clone(),
                        off: words.1.clone(),
                    },
                ),
                command: Some(CommandSink {
                    topic: command_topic.clone(),
                    encode: Encode::Json {
                        field: "state".to_owned(),
                        words: Some(words),
                        extra: Vec::new(),
                    },
                }),
            });
            let modes = config.list("supported_color_modes");
            let dimmable = config.flag("brightness") || modes.iter().any(|m| m != "onoff");
            if dimmable {
                out.push(HaProperty {
                    property: property(
                        node,
                        name,
                        ("brightness", &brightness_name),
                        "integer",
                        None,
                        range(0.0, scale),
                        true,
                    ),
                    state: state("brightness", Decode::Number),
                    command: Some(CommandSink {
                        topic: command_topic,
                        encode: Encode::Json {
                            field: "brightness".to_owned(),
                            words: None,
                            extra: vec![("state".to_owned(), "ON".to_owned())],
                        },
                    }),
                });
            }
        }
        None | Some("default" | "basic") => {
            let on = config.text_or("payload_on", "ON");
            let off = config.text_or("payload_off", "OFF");
            out.push(HaProperty {
                property: property(node, name, ("state", name), "boolean", None, None, true),
                state: source(
                    config,
                    "state_topic",
                    "state_value_template",
                    Decode::Bool {
                        on: on.clone(),
                        off: off.clone(),
                    },
                )?,
                command: Some(CommandSink {
                    topic: command_topic,
                    encode: Encode::Bool { on, off },
                }),
            });
            if let Some(command) = sink(
                config,
                "brightness_command_topic",
                "brightness_command_template",
                Encode::Text,
            ) {
                out.push(HaProperty {
                    property: property(
                        node,
                        name,
                        ("brightness", &brightness_name),
                        "integer",
                        None,
                        range(0.0, scale),
                        true,
                    ),
                    state: source(
                        config,
                        "brightness_state_topic",
                        "brightness_value_template",
                        Decode::Number,
                    )?,
                    command: Some(command),
                });
            }
        }
        Some(other) => return Err(format!("light schema `{other}` is not supported")),
    }
    Ok(())
}

/// A climate entity: current temperature, target temperature and mode.
fn climate(
    config: &Config<'_>,
    node: &str,
    name: &str,
    out: &mut Vec<HaProperty>,
) -> Result<(), String> {
    let unit = Some(match config.text("temperature_unit").as_deref() {
        Some("F") => "°F".to_owned(),
        _ => "°C".to_owned(),
    });
    if let Some(state) = source(
        config,
        "current_temperature_topic",
        "current_temperature_template",
        Decode::Number,
    )? {
        out.push(HaProperty {
            property: property(
                node,
                name,
                ("current", &format!("{name} temperature")),
                "float",
                unit.clone(),
                None,
                false,
            ),
            state: Some(state),
            command: None,
        });
    }
    let min = config.number("min_temp").unwrap_or(7.0);
    let max = config.number("max_temp").unwrap_or(35.0);
    if let Some(command) = sink(
        config,
        "temperature_command_topic",
        "temperature_command_template",
        Encode::Text,
    ) {
        out.push(HaProperty {
            property: property(
                node,
                name,
                ("target", &format!("{name} target")),
                "float",
                unit,
                range(min, max),
                true,
            ),
            state: source(
                config,
                "temperature_state_topic",
                "temperature_state_template",
                Decode::Number,
            )?,
            command: Some(command),
        });
    }
    let mut modes = config.list("modes");
    if modes.is_empty() {
        modes = ["auto", "off", "cool", "heat", "dry", "fan_only"]
            .map(str::to_owned)
            .to_vec();
    }
    let mode_state = source(
        config,
        "mode_state_topic",
        "mode_state_template",
        Decode::Text,
    )?;
    let mode_command = sink(
        config,
        "mode_command_topic",
        "mode_command_template",
        Encode::Text,
    );
    if mode_state.is_some() || mode_command.is_some() {
        out.push(HaProperty {
            property: property(
                node,
                name,
                ("mode", &format!("{name} mode")),
                "enum",
                None,
                Some(modes.join(",")),
                mode_command.is_some(),
            ),
            state: mode_state,
            command: mode_command,
        });
    }
    if out.is_empty() {
        return Err("a climate entity needs a temperature or mode topic".to_owned());
    }
    Ok(())
}

/// A cover: its state, open/close/stop, and position.
fn cover(
    config: &Config<'_>,
    node: &str,
    name: &str,
    out: &mut Vec<HaProperty>,
) -> Result<(), String> {
    if let Some(state) = source(config, "state_topic", "value_template", Decode::Text)? {
        out.push(HaProperty {
            property: property(node, name, ("state", name), "string", None, None, false),
            state: Some(state),
            command: None,
        });
    }
    if let Some(topic) = config.text("command_topic") {
        for (id, key, default) in [
            ("open", "payload_open", "OPEN"),
            ("close", "payload_close", "CLOSE"),
            ("stop", "payload_stop", "STOP"),
        ] {
            // `payload_stop: null` means the cover cannot stop.
            if config.0.get(key) == Some(&Value::Null) {
                continue;
            }
            out.push(HaProperty {
                property: property(
                    node,
                    name,
                    (id, &format!("{name} {id}")),
                    "enum",
                    None,
                    Some(id.to_owned()),
                    true,
                ),
                state: None,
                command: Some(CommandSink {
                    topic: topic.clone(),
                    encode: Encode::Fixed(config.text_or(key, default)),
                }),
            });
        }
    }
    let open = config.number("position_open").unwrap_or(100.0);
    let closed = config.number("position_closed").unwrap_or(0.0);
    let position = source(
        config,
        "position_topic",
        "position_template",
        Decode::Number,
    )?;
    let set_position = sink(
        config,
        "set_position_topic",
        "set_position_template",
        Encode::Text,
    );
    if position.is_some() || set_position.is_some() {
        out.push(HaProperty {
            property: property(
                node,
                name,
                ("position", &format!("{name} position")),
                "integer",
                Some("%".to_owned()),
                range(closed.min(open), closed.max(open)),
                set_position.is_some(),
            ),
            state: position,
            command: set_position,
        });
    }
    if out.is_empty() {
        return Err("a cover needs a state, command or position topic".to_owned());
    }
    Ok(())
}
