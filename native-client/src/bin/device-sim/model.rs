//! What a simulated device is: its Homie 5 nodes and properties, its `$description`,
//! its values with realistic drift, and the validation of `/set` commands.

use serde_json::{Map, Value, json};

/// A Homie 5 datatype used by the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Datatype {
    Float,
    Integer,
    Boolean,
    Enum,
}

impl Datatype {
    fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::Enum => "enum",
        }
    }
}

/// One property of the simulated device.
#[derive(Debug)]
pub(crate) struct Property {
    pub(crate) node: &'static str,
    pub(crate) id: &'static str,
    name: &'static str,
    datatype: Datatype,
    unit: Option<&'static str>,
    /// Homie format: `min:max` for numbers, comma-separated values for enums.
    format: Option<&'static str>,
    pub(crate) settable: bool,
    pub(crate) retained: bool,
}

// One row of the property table: every attribute positional keeps the table readable.
#[allow(clippy::too_many_arguments)]
const fn property(
    node: &'static str,
    id: &'static str,
    name: &'static str,
    datatype: Datatype,
    unit: Option<&'static str>,
    format: Option<&'static str>,
    settable: bool,
    retained: bool,
) -> Property {
    Property {
        node,
        id,
        name,
        datatype,
        unit,
        format,
        settable,
        retained,
    }
}

/// Every property, in `$description` order.
pub(crate) const PROPERTIES: &[Property] = &[
    property(
        "env",
        "temperature",
        "Temperature",
        Datatype::Float,
        Some("°C"),
        None,
        false,
        true,
    ),
    property(
        "env",
        "humidity",
        "Relative humidity",
        Datatype::Float,
        Some("%"),
        Some("0:100"),
        false,
        true,
    ),
    property(
        "meter",
        "power",
        "Power",
        Datatype::Float,
        Some("W"),
        Some("0:"),
        false,
        true,
    ),
    property(
        "lamp",
        "switch",
        "Lamp on",
        Datatype::Boolean,
        None,
        None,
        true,
        true,
    ),
    property(
        "lamp",
        "dimmer",
        "Brightness",
        Datatype::Integer,
        Some("%"),
        Some("0:100"),
        true,
        true,
    ),
    property(
        "thermostat",
        "setpoint",
        "Setpoint",
        Datatype::Float,
        Some("°C"),
        Some("5:35"),
        true,
        true,
    ),
    property(
        "system",
        "reboot",
        "Reboot",
        Datatype::Enum,
        None,
        Some("reboot"),
        true,
        false,
    ),
];

/// Node names for `$description`.
const NODES: &[(&str, &str, &str)] = &[
    ("env", "Environment", "sensor"),
    ("meter", "Power meter", "meter"),
    ("lamp", "Lamp", "light"),
    ("thermostat", "Thermostat", "thermostat"),
    ("system", "System", "system"),
];

/// The telemetry properties, published in turn at the device's rate.
pub(crate) const TELEMETRY: &[&str] = &["temperature", "humidity", "power"];

/// Looks up `node/prop`.
pub(crate) fn find(node: &str, id: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.node == node && p.id == id)
}

/// The `$description` document of device `name`.
pub(crate) fn description(name: &str) -> Value {
    let mut nodes = Map::new();
    for (node_id, node_name, node_type) in NODES {
        let mut properties = Map::new();
        for p in PROPERTIES.iter().filter(|p| p.node == *node_id) {
            let mut object = Map::new();
            object.insert("name".into(), p.name.into());
            object.insert("datatype".into(), p.datatype.name().into());
            if let Some(unit) = p.unit {
                object.insert("unit".into(), unit.into());
            }
            if let Some(format) = p.format {
                object.insert("format".into(), format.into());
            }
            object.insert("settable".into(), p.settable.into());
            object.insert("retained".into(), p.retained.into());
            properties.insert(p.id.into(), Value::Object(object));
        }
        nodes.insert(
            (*node_id).into(),
            json!({ "name": node_name, "type": node_type, "properties": properties }),
        );
    }
    json!({
        "homie": "5.0",
        "version": 1,
        "name": name,
        "type": "device-sim",
        "nodes": nodes,
    })
}

/// A value after a `/set` was validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Switch(bool),
    Dimmer(i64),
    Setpoint(f64),
    Reboot,
}

/// Validates a `/set` payload for `property` against its datatype and format.
pub(crate) fn parse_set(property: &Property, payload: &[u8]) -> Result<Command, String> {
    let path = format!("{}/{}", property.node, property.id);
    if !property.settable {
        return Err(format!("{path} is not settable"));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("{path}: the value is not UTF-8 text"))?
        .trim();
    match property.id {
        "switch" => match text {
            "true" => Ok(Command::Switch(true)),
            "false" => Ok(Command::Switch(false)),
            _ => Err(format!("{path}: `{text}` is not a boolean (true or false)")),
        },
        "dimmer" => {
            let value: i64 = text
                .parse()
                .map_err(|_| format!("{path}: `{text}` is not an integer"))?;
            in_range(&path, value as f64, property.format)?;
            Ok(Command::Dimmer(value))
        }
        "setpoint" => {
            let value: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("{path}: `{text}` is not a float"))?;
            in_range(&path, value, property.format)?;
            Ok(Command::Setpoint(value))
        }
        "reboot" if text == "reboot" => Ok(Command::Reboot),
        "reboot" => Err(format!("{path}: `{text}` is not one of: reboot")),
        _ => Err(format!("{path} is not settable")),
    }
}

/// Checks `value` against a Homie `min:max` format (either side may be empty).
fn in_range(path: &str, value: f64, format: Option<&str>) -> Result<(), String> {
    let Some((min, max)) = format.and_then(|f| f.split_once(':')) else {
        return Ok(());
    };
    let below = min.parse::<f64>().is_ok_and(|min| value < min);
    let above = max.parse::<f64>().is_ok_and(|max| value > max);
    if below || above {
        Err(format!("{path}: {value} is out of range {min}:{max}"))
    } else {
        Ok(())
    }
}

/// The device's current values, drifting like real sensors.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) temperature: f64,
    pub(crate) humidity: f64,
    pub(crate) power: f64,
    pub(crate) switch: bool,
    pub(crate) dimmer: i64,
    pub(crate) setpoint: f64,
    rng: fastrand::Rng,
}

impl State {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let setpoint = 20.0 + f64::from(rng.u8(0..5));
        let mut state = Self {
            temperature: setpoint + rng.f64() * 4.0 - 2.0,
            humidity: 35.0 + rng.f64() * 20.0,
            power: 0.0,
            switch: rng.bool(),
            dimmer: i64::from(rng.u8(20..=100)),
            setpoint,
            rng,
        };
        state.drift(0.0);
        state
    }

    /// Advances the simulation by one step of `dt` seconds.
    pub(crate) fn drift(&mut self, dt: f64) {
        let noise = |rng: &mut fastrand::Rng, scale: f64| (rng.f64() - 0.5) * 2.0 * scale;
        // The room follows the thermostat slowly, with sensor noise.
        self.temperature +=
            (self.setpoint - self.temperature) * 0.02 * dt + noise(&mut self.rng, 0.05 * dt.sqrt());
        self.humidity = (self.humidity + noise(&mut self.rng, 0.3 * dt.sqrt())).clamp(0.0, 100.0);
        let load = if self.switch {
            60.0 * self.dimmer as f64 / 100.0
        } else {
            0.0
        };
        self.power = (1.8 + load + noise(&mut self.rng, 0.4)).max(0.0);
    }

    /// The Homie encoding of property `id`.
    pub(crate) fn value(&self, id: &str) -> Option<String> {
        Some(match id {
            "temperature" => format!("{:.2}", self.temperature),
            "humidity" => format!("{:.1}", self.humidity),
            "power" => format!("{:.1}", self.power),
            "switch" => self.switch.to_string(),
            "dimmer" => self.dimmer.to_string(),
            "setpoint" => format!("{:.1}", self.setpoint),
            _ => return None,
        })
    }

    /// Applies a validated command; returns the property whose value changed.
    pub(crate) fn apply(&mut self, command: &Command) -> Option<&'static str> {
        match *command {
            Command::Switch(on) => self.switch = on,
            Command::Dimmer(level) => self.dimmer = level,
            Command::Setpoint(celsius) => self.setpoint = celsius,
            Command::Reboot => return None,
        }
        self.drift(0.0);
        Some(match command {
            Command::Switch(_) => "switch",
            Command::Dimmer(_) => "dimmer",
            _ => "setpoint",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(node: &str, id: &str, payload: &str) -> Result<Command, String> {
        parse_set(find(node, id).unwrap(), payload.as_bytes())
    }

    #[test]
    fn commands_are_checked_against_datatype_and_format() {
        assert_eq!(set("lamp", "switch", "true"), Ok(Command::Switch(true)));
        assert!(
            set("lamp", "switch", "on")
                .unwrap_err()
                .contains("not a boolean")
        );
        assert_eq!(set("lamp", "dimmer", "100"), Ok(Command::Dimmer(100)));
        assert!(
            set("lamp", "dimmer", "101")
                .unwrap_err()
                .contains("out of range 0:100")
        );
        assert!(
            set("lamp", "dimmer", "5.5")
                .unwrap_err()
                .contains("not an integer")
        );
        assert_eq!(
            set("thermostat", "setpoint", "22.5"),
            Ok(Command::Setpoint(22.5))
        );
        assert!(set("thermostat", "setpoint", "NaN").is_err());
        assert!(
            set("env", "temperature", "3")
                .unwrap_err()
                .contains("not settable")
        );
        assert_eq!(set("system", "reboot", "reboot"), Ok(Command::Reboot));
    }

    #[test]
    fn the_description_lists_every_property_with_its_attributes() {
        let description = description("sim-001");
        let dimmer = &description["nodes"]["lamp"]["properties"]["dimmer"];
        assert_eq!(dimmer["datatype"], "integer");
        assert_eq!(dimmer["format"], "0:100");
        assert_eq!(dimmer["settable"], true);
        assert_eq!(
            description["nodes"]["system"]["properties"]["reboot"]["retained"],
            false
        );
        assert_eq!(
            description["nodes"]["env"]["properties"]["temperature"]["unit"],
            "°C"
        );
    }

    #[test]
    fn drift_keeps_values_in_their_ranges() {
        let mut state = State::new(7);
        for _ in 0..10_000 {
            state.drift(1.0);
            assert!((0.0..=100.0).contains(&state.humidity));
            assert!(state.power >= 0.0);
            assert!((0.0..60.0).contains(&state.temperature));
        }
    }
}
