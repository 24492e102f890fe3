//! The discovery parser on fixtures in the shapes Zigbee2MQTT and Tasmota publish
//! (written for these tests from their documented payload shapes), and on the other
//! components' documented keys.

use super::entity::{AvailabilityMode, Component, combine};
use super::parse::{self, ConfigTopic};
use super::store::{Store, device_id};
use crate::devices::homie::{Control, DeviceState};

const Z2M_TEMPERATURE: &str = include_str!("fixtures/z2m_temperature.json");
const Z2M_LIGHT: &str = include_str!("fixtures/z2m_light.json");
const TASMOTA_RELAY: &str = include_str!("fixtures/tasmota_relay.json");
const TASMOTA_POWER: &str = include_str!("fixtures/tasmota_power.json");

const PREFIX: &str = "homeassistant";

fn store_with(configs: &[(&str, &str)]) -> Store {
    let mut store = Store::new();
    for (topic, payload) in configs {
        assert!(
            store
                .handle_config(PREFIX, topic, payload.as_bytes())
                .is_some(),
            "{topic} is a config topic"
        );
    }
    store
}

fn values(store: &mut Store, topic: &str, payload: &str) -> Vec<(String, String)> {
    store
        .handle_message(topic, payload.as_bytes())
        .values
        .into_iter()
        .map(|(_, path, value)| (path, value))
        .collect()
}

fn pair(path: &str, value: &str) -> (String, String) {
    (path.to_owned(), value.to_owned())
}

#[test]
fn config_topics_with_and_without_node_id() {
    assert_eq!(
        parse::config_topic(PREFIX, "homeassistant/sensor/0x00158d/temperature/config"),
        Some(ConfigTopic {
            component: "sensor".into(),
            node_id: Some("0x00158d".into()),
            object_id: "temperature".into(),
        })
    );
    assert_eq!(
        parse::config_topic("ha", "ha/switch/relay1/config").map(|t| t.object_id),
        Some("relay1".into())
    );
    assert_eq!(
        parse::config_topic(PREFIX, "homeassistant/switch/relay1/state"),
        None
    );
    assert_eq!(
        parse::config_topic(PREFIX, "homeassistant/switch/config"),
        None
    );
    assert_eq!(
        parse::config_topic(PREFIX, "homeassistantx/switch/a/config"),
        None
    );
    assert_eq!(
        parse::config_topic(PREFIX, "homeassistant/a/b/c/d/config"),
        None
    );
}

#[test]
fn abbreviations_and_the_base_topic_expand() {
    let map = parse::expand(TASMOTA_RELAY.as_bytes()).expect("valid");
    assert_eq!(map["command_topic"], "tasmota_8E1B2C/cmnd/POWER");
    assert_eq!(map["state_topic"], "tasmota_8E1B2C/tele/STATE");
    assert_eq!(map["availability_topic"], "tasmota_8E1B2C/tele/LWT");
    assert_eq!(map["value_template"], "{{value_json.POWER}}");
    assert_eq!(map["device"]["identifiers"][0], "8E1B2C");
    assert_eq!(map["device"]["model"], "Sonoff Pow R2");
    // `~` at the end, and in availability entries.
    let map = parse::expand(
        br#"{"~":"home/plug","stat_t":"state/~","avty":[{"t":"~/avail","pl_avail":"up"}]}"#,
    )
    .expect("valid");
    assert_eq!(map["state_topic"], "state/home/plug");
    assert_eq!(map["availability"][0]["topic"], "home/plug/avail");
    assert_eq!(map["availability"][0]["payload_available"], "up");
}

#[test]
fn a_zigbee2mqtt_sensor_reads_its_json_state_and_both_availability_topics() {
    let topic = "homeassistant/sensor/0x00158d00045a1b2c/temperature/config";
    let mut store = store_with(&[(topic, Z2M_TEMPERATURE)]);
    let id = device_id("zigbee2mqtt_0x00158d00045a1b2c");
    let description = store.description(&id).expect("a device");
    assert_eq!(description.name, "hallway_sensor");
    let property = &description.properties[0];
    assert_eq!(property.path(), "temperature/state");
    assert_eq!(property.unit.as_deref(), Some("°C"));
    assert!(property.is_numeric() && !property.settable);
    assert_eq!(
        store.details(&id).as_deref(),
        Some("Aqara · Temperature and humidity sensor (WSDCGQ11LM) · software 3000-0001")
    );
    assert_eq!(
        values(
            &mut store,
            "zigbee2mqtt/hallway_sensor",
            r#"{"temperature":21.37,"humidity":48.2,"linkquality":120}"#
        ),
        [pair("temperature/state", "21.37")]
    );
    // A state without the field leaves the value alone.
    assert!(
        values(
            &mut store,
            "zigbee2mqtt/hallway_sensor",
            r#"{"battery":90}"#
        )
        .is_empty()
    );

    // availability_mode all: both topics must say online.
    assert_eq!(store.state(&id), DeviceState::Unknown);
    store.handle_message("zigbee2mqtt/bridge/state", br#"{"state":"online"}"#);
    assert_eq!(
        store.state(&id),
        DeviceState::Offline,
        "one of two is not enough"
    );
    let changes = store.handle_message(
        "zigbee2mqtt/hallway_sensor/availability",
        br#"{"state":"online"}"#,
    );
    assert!(changes.availability.contains(&id));
    assert_eq!(store.state(&id), DeviceState::Ready);
    store.handle_message("zigbee2mqtt/bridge/state", br#"{"state":"offline"}"#);
    assert_eq!(store.state(&id), DeviceState::Offline);
}

#[test]
fn a_json_schema_light_switches_and_dims_with_json_commands() {
    let mut store = store_with(&[(
        "homeassistant/light/0x000b57fffe8c9d0e/light/config",
        Z2M_LIGHT,
    )]);
    let id = device_id("zigbee2mqtt_0x000b57fffe8c9d0e");
    let description = store.description(&id).expect("a device");
    assert_eq!(description.name, "desk_lamp");
    let controls: Vec<_> = description
        .properties
        .iter()
        .map(|p| (p.path(), p.control()))
        .collect();
    assert_eq!(
        controls,
        [
            ("light/state".to_owned(), Some(Control::Switch)),
            (
                "light/brightness".to_owned(),
                Some(Control::Slider {
                    min: 0.0,
                    max: 254.0,
                    step: 1.0
                })
            ),
        ]
    );
    assert_eq!(
        values(
            &mut store,
            "zigbee2mqtt/desk_lamp",
            r#"{"state":"ON","brightness":77,"linkquality":90}"#
        ),
        [pair("light/state", "true"), pair("light/brightness", "77")]
    );
    let on = store
        .command(&id, "light/state", "false")
        .expect("a command");
    assert_eq!(on.topic, "zigbee2mqtt/desk_lamp/set");
    assert_eq!(on.payload, r#"{"state":"OFF"}"#);
    assert!(on.confirmed_by_state);
    let dim = store
        .command(&id, "light/brightness", "128")
        .expect("a command");
    assert_eq!(dim.payload, r#"{"brightness":128,"state":"ON"}"#);
}

#[test]
fn a_zigbee2mqtt_occupancy_sensor_compares_json_booleans() {
    let mut store = store_with(&[(
        "homeassistant/binary_sensor/0x0017880104a1b2c3/occupancy/config",
        r#"{"device":{"identifiers":["zigbee2mqtt_0x0017880104a1b2c3"],"name":"hall_motion"},
            "device_class":"occupancy","name":"Occupancy","payload_on":true,"payload_off":false,
            "state_topic":"zigbee2mqtt/hall_motion","value_template":"{{ value_json.occupancy }}"}"#,
    )]);
    assert_eq!(
        values(
            &mut store,
            "zigbee2mqtt/hall_motion",
            r#"{"occupancy":true,"battery":97}"#
        ),
        [pair("occupancy/state", "true")]
    );
    assert_eq!(
        values(
            &mut store,
            "zigbee2mqtt/hall_motion",
            r#"{"occupancy":false}"#
        ),
        [pair("occupancy/state", "false")]
    );
}

#[test]
fn tasmota_entities_group_into_one_device_by_dev_ids() {
    let mut store = store_with(&[
        ("homeassistant/switch/8E1B2C_RL_1/config", TASMOTA_RELAY),
        (
            "homeassistant/sensor/8E1B2C_ENERGY_Power/config",
            TASMOTA_POWER,
        ),
    ]);
    let id = device_id("8E1B2C");
    let description = store.description(&id).expect("one device");
    assert_eq!(description.name, "Kitchen plug");
    let paths: Vec<String> = description.properties.iter().map(|p| p.path()).collect();
    assert_eq!(
        paths,
        [
            "8E1B2C_ENERGY_Power/state",
            "8E1B2C_ENERGY_Power/attributes",
            "8E1B2C_RL_1/state"
        ]
    );
    assert_eq!(
        values(
            &mut store,
            "tasmota_8E1B2C/tele/SENSOR",
            r#"{"Time":"2026-12-07T01:00:00","ENERGY":{"Power":42,"Voltage":231}}"#
        ),
        [pair("8E1B2C_ENERGY_Power/state", "42")]
    );
    assert_eq!(
        values(
            &mut store,
            "tasmota_8E1B2C/tele/STATE",
            r#"{"POWER":"ON","Wifi":{}}"#
        ),
        [pair("8E1B2C_RL_1/state", "true")]
    );
    assert_eq!(
        values(
            &mut store,
            "tasmota_8E1B2C/tele/HASS_STATE",
            r#"{"RSSI":70}"#
        ),
        [pair("8E1B2C_ENERGY_Power/attributes", r#"{"RSSI":70}"#)]
    );
    let off = store
        .command(&id, "8E1B2C_RL_1/state", "false")
        .expect("a command");
    assert_eq!(
        (off.topic.as_str(), off.payload.as_str()),
        ("tasmota_8E1B2C/cmnd/POWER", "OFF")
    );
    assert!(
        store
            .command(&id, "8E1B2C_ENERGY_Power/state", "1")
            .is_err()
    );
    // Tasmota's LWT: `Online` / `Offline` (latest mode).
    store.handle_message("tasmota_8E1B2C/tele/LWT", b"Online");
    assert_eq!(store.state(&id), DeviceState::Ready);
    store.handle_message("tasmota_8E1B2C/tele/LWT", b"Offline");
    assert_eq!(store.state(&id), DeviceState::Offline);
    assert!(store.topics().contains("tasmota_8E1B2C/tele/LWT"));
}

#[test]
fn malformed_configs_are_ignored_with_a_warning_and_others_stay() {
    let mut store = store_with(&[("homeassistant/switch/8E1B2C_RL_1/config", TASMOTA_RELAY)]);
    for (topic, payload) in [
        ("homeassistant/sensor/bad/json/config", "{nope"),
        ("homeassistant/sensor/bad/array/config", "[1,2]"),
        (
            "homeassistant/sensor/bad/tpl/config",
            r#"{"stat_t":"x","val_tpl":"{{ value_json.t * 10 }}"}"#,
        ),
        ("homeassistant/switch/bad/nocmd/config", r#"{"stat_t":"x"}"#),
        ("homeassistant/vacuum/bad/v/config", r#"{"cmd_t":"x"}"#),
        (
            "homeassistant/sensor/bad/mode/config",
            r#"{"stat_t":"x","avty_t":"a","avty_mode":"most"}"#,
        ),
    ] {
        let touched = store
            .handle_config(PREFIX, topic, payload.as_bytes())
            .expect("a config topic");
        assert!(touched.is_empty(), "{topic} adds no device");
    }
    let warnings = store.warnings();
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|(t, why)| t.ends_with("tpl/config") && why.contains("not supported"))
    );
    assert!(warnings.iter().any(|(_, why)| why.contains("`vacuum`")));
    assert!(store.description(&device_id("8E1B2C")).is_some());
    // A corrected config replaces its warning.
    store.handle_config(
        PREFIX,
        "homeassistant/sensor/bad/json/config",
        br#"{"stat_t":"x"}"#,
    );
    assert_eq!(store.warnings().len(), 5);
}

#[test]
fn an_empty_config_removes_the_entity_and_then_the_device() {
    let relay = "homeassistant/switch/8E1B2C_RL_1/config";
    let power = "homeassistant/sensor/8E1B2C_ENERGY_Power/config";
    let mut store = store_with(&[(relay, TASMOTA_RELAY), (power, TASMOTA_POWER)]);
    let id = device_id("8E1B2C");
    assert_eq!(
        store.handle_config(PREFIX, relay, b""),
        Some(vec![id.clone()])
    );
    assert_eq!(store.description(&id).map(|d| d.properties.len()), Some(2));
    store.handle_config(PREFIX, power, b"");
    assert_eq!(store.description(&id), None);
    assert!(store.topics().is_empty());
}

#[test]
fn number_select_button_climate_and_cover_map_to_controls_and_payloads() {
    let mut store = store_with(&[
        (
            "homeassistant/number/th/setpoint/config",
            r#"{"name":"Setpoint","cmd_t":"th/sp/set","stat_t":"th/state","val_tpl":"{{ value_json.sp }}","min":5,"max":35,"step":0.5,"unit_of_meas":"°C","dev":{"ids":"th"}}"#,
        ),
        (
            "homeassistant/select/th/fan/config",
            r#"{"name":"Fan","cmd_t":"th/fan/set","stat_t":"th/fan","ops":["low","high"],"dev":{"ids":"th"}}"#,
        ),
        (
            "homeassistant/button/th/reboot/config",
            r#"{"name":"Reboot","cmd_t":"th/cmd","pl_prs":"restart","dev":{"ids":"th"}}"#,
        ),
        (
            "homeassistant/climate/th/hvac/config",
            r#"{"name":"Heating","curr_temp_t":"th/state","curr_temp_tpl":"{{ value_json.t }}","temp_cmd_t":"th/target/set","temp_stat_t":"th/target","mode_cmd_t":"th/mode/set","mode_stat_t":"th/mode","modes":["off","heat"],"min_temp":10,"max_temp":30,"dev":{"ids":"th"}}"#,
        ),
        (
            "homeassistant/cover/th/blind/config",
            r#"{"name":"Blind","cmd_t":"th/blind/set","stat_t":"th/blind","pos_t":"th/blind/pos","set_pos_t":"th/blind/pos/set","pl_stop":null,"dev":{"ids":"th"}}"#,
        ),
    ]);
    let id = device_id("th");
    let description = store.description(&id).expect("one device");
    let control = |path: &str| {
        description
            .properties
            .iter()
            .find(|p| p.path() == path)
            .unwrap_or_else(|| panic!("{path}"))
            .control()
    };
    assert_eq!(
        control("setpoint/state"),
        Some(Control::Slider {
            min: 5.0,
            max: 35.0,
            step: 0.3
        })
    );
    assert_eq!(
        control("fan/state"),
        Some(Control::Enum(vec!["low".into(), "high".into()]))
    );
    assert_eq!(
        control("reboot/press"),
        Some(Control::Action("press".into()))
    );
    assert_eq!(control("hvac/current"), None);
    assert_eq!(
        control("hvac/target"),
        Some(Control::Slider {
            min: 10.0,
            max: 30.0,
            step: 0.2
        })
    );
    assert_eq!(
        control("hvac/mode"),
        Some(Control::Enum(vec!["off".into(), "heat".into()]))
    );
    assert_eq!(control("blind/open"), Some(Control::Action("open".into())));
    assert!(
        description
            .properties
            .iter()
            .all(|p| p.path() != "blind/stop"),
        "pl_stop: null"
    );
    assert_eq!(
        control("blind/position"),
        Some(Control::Slider {
            min: 0.0,
            max: 100.0,
            step: 1.0
        })
    );

    let payload = |path: &str, value: &str| {
        let out = store.command(&id, path, value).expect(path);
        (out.topic, out.payload, out.confirmed_by_state)
    };
    assert_eq!(
        payload("setpoint/state", "21.5"),
        ("th/sp/set".into(), "21.5".into(), true)
    );
    assert_eq!(
        payload("reboot/press", "press"),
        ("th/cmd".into(), "restart".into(), false)
    );
    assert_eq!(
        payload("blind/close", "close"),
        ("th/blind/set".into(), "CLOSE".into(), false)
    );
    assert_eq!(
        payload("hvac/mode", "heat"),
        ("th/mode/set".into(), "heat".into(), true)
    );
    let order: Vec<String> = description.properties.iter().map(|p| p.path()).collect();
    assert_eq!(
        order,
        [
            "hvac/current",
            "hvac/target",
            "hvac/mode",
            "blind/state",
            "blind/open",
            "blind/close",
            "blind/position",
            "setpoint/state",
            "fan/state",
            "reboot/press"
        ],
        "readings first, then controls"
    );
    assert_eq!(
        values(&mut store, "th/state", r#"{"sp":21.5,"t":19.75}"#),
        [
            pair("hvac/current", "19.75"),
            pair("setpoint/state", "21.5")
        ]
    );
    // Without availability topics a device counts as ready.
    assert_eq!(store.state(&id), DeviceState::Ready);
}

#[test]
fn availability_modes_combine_like_home_assistant() {
    use AvailabilityMode::*;
    assert_eq!(
        combine(Latest, &[Some(true), Some(false)], Some(true)),
        Some(true)
    );
    assert_eq!(combine(All, &[Some(true), Some(true)], None), Some(true));
    assert_eq!(combine(All, &[Some(true), None], None), Some(false));
    assert_eq!(combine(All, &[None, None], None), None);
    assert_eq!(combine(Any, &[Some(false), Some(true)], None), Some(true));
    assert_eq!(combine(Any, &[Some(false), None], None), Some(false));
    assert_eq!(Component::parse("light"), Some(Component::Light));
    assert_eq!(Component::parse("vacuum"), None);
}

#[test]
fn an_esphome_style_light_uses_the_base_topic_and_color_modes() {
    let mut store = store_with(&[(
        "homeassistant/light/kitchen-esp/kitchen_light/config",
        r#"{"~":"kitchen-esp/light/kitchen_light","name":"Kitchen light","schema":"json",
            "clrm":true,"sup_clrm":["brightness"],"brightness":true,"stat_t":"~/state",
            "cmd_t":"~/command","avty_t":"kitchen-esp/status","uniq_id":"ESPlightkitchen_light",
            "dev":{"ids":"a4cf12b3c4d5","name":"kitchen-esp","sw":"esphome v2024.6.0","mdl":"esp32dev","mf":"espressif"}}"#,
    )]);
    let id = device_id("a4cf12b3c4d5");
    let paths: Vec<String> = store
        .description(&id)
        .expect("a device")
        .properties
        .iter()
        .map(|p| p.path())
        .collect();
    assert_eq!(paths, ["kitchen_light/state", "kitchen_light/brightness"]);
    assert_eq!(
        values(
            &mut store,
            "kitchen-esp/light/kitchen_light/state",
            r#"{"state":"OFF","brightness":255,"color_mode":"brightness"}"#
        ),
        [
            pair("kitchen_light/state", "false"),
            pair("kitchen_light/brightness", "255")
        ]
    );
    assert_eq!(
        store
            .command(&id, "kitchen_light/state", "true")
            .map(|c| c.topic),
        Ok("kitchen-esp/light/kitchen_light/command".into())
    );
    store.handle_message("kitchen-esp/status", b"online");
    assert_eq!(store.state(&id), DeviceState::Ready);
}

#[test]
fn a_default_schema_light_has_its_own_brightness_topics() {
    let mut store = store_with(&[(
        "homeassistant/light/l1/config",
        r#"{"name":"Lamp","cmd_t":"l1/set","stat_t":"l1/state","pl_on":"1","pl_off":"0","bri_cmd_t":"l1/bri/set","bri_stat_t":"l1/bri","bri_scl":100}"#,
    )]);
    let id = device_id("l1");
    assert_eq!(
        values(&mut store, "l1/state", "1"),
        [pair("l1/state", "true")]
    );
    assert_eq!(
        values(&mut store, "l1/bri", "40"),
        [pair("l1/brightness", "40")]
    );
    assert_eq!(
        store.command(&id, "l1/state", "true").map(|c| c.payload),
        Ok("1".into())
    );
    assert_eq!(
        store.command(&id, "l1/brightness", "60").map(|c| c.topic),
        Ok("l1/bri/set".into())
    );
}

#[test]
fn only_the_last_command_to_a_property_may_time_out() {
    let first = super::next_command("ha:x/lamp/state");
    assert!(super::is_last_command("ha:x/lamp/state", first));
    let second = super::next_command("ha:x/lamp/state");
    assert!(!super::is_last_command("ha:x/lamp/state", first));
    assert!(super::is_last_command("ha:x/lamp/state", second));
    // Another property keeps its own count.
    let other = super::next_command("ha:x/lamp/brightness");
    assert!(super::is_last_command("ha:x/lamp/brightness", other));
    assert!(super::is_last_command("ha:x/lamp/state", second));
}
