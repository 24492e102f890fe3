//! `--convention ha`: the same simulated device announced with Home Assistant MQTT
//! discovery instead of Homie 5. Topics, under the base `{root}/ha/{dev}` (`~` in the
//! configs):
//!
//! | topic | retained | payload |
//! |---|---|---|
//! | `{prefix}/{component}/{dev}/{object}/config` | yes | discovery config, abbreviated keys |
//! | `~/availability` | yes | `online`, `offline` (also the will) |
//! | `~/state` | yes | `{"temperature":…,"humidity":…,"power":…,"relay":"ON","setpoint":…}` |
//! | `~/light` | yes | `{"state":"ON","brightness":0..100}` (JSON-schema light) |
//! | `~/relay/set` | no | `ON` / `OFF` (switch) |
//! | `~/light/set` | no | `{"state":"ON","brightness":40}` (either field) |
//! | `~/setpoint/set` | no | a number, 5 to 35 (number) |
//! | `~/reboot/set` | no | `PRESS` (button) |
//!
//! A valid command is applied and the state topics are published again (that is how
//! HA devices confirm: there is no MQTT 5 reply); an invalid one is logged and counted
//! as rejected.

use std::sync::atomic::Ordering;
use std::time::Duration;

use native_client::{Client, Message, PublishOptions, QoS, ReasonCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::device::{End, Fleet};
use crate::model::{self, Command, State};

/// The base topic of device `id` (`~` in its configs).
pub(crate) fn base(fleet: &Fleet, id: &str) -> String {
    format!("{}/ha/{id}", fleet.root)
}

/// Its availability topic (its will says `offline` there).
pub(crate) fn availability_topic(fleet: &Fleet, id: &str) -> String {
    format!("{}/availability", base(fleet, id))
}

/// Every discovery config of device `id`: (component, object id, config).
pub(crate) fn configs(base: &str, id: &str) -> Vec<(&'static str, &'static str, Value)> {
    let common = |object: &str, name: &str| {
        json!({
            "~": base,
            "name": name,
            "uniq_id": format!("{id}_{object}"),
            "avty_t": "~/availability",
            "dev": {
                "ids": [id],
                "name": id,
                "mdl": "device-sim",
                "mf": "mqtt-web",
                "sw": env!("CARGO_PKG_VERSION"),
            },
        })
    };
    let with = |mut config: Value, extra: Value| {
        if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
            config.extend(extra);
        }
        config
    };
    let sensor = |object: &'static str, name: &str, unit: &str, class: &str| {
        (
            "sensor",
            object,
            with(
                common(object, name),
                json!({
                    "stat_t": "~/state",
                    "val_tpl": format!("{{{{ value_json.{object} }}}}"),
                    "unit_of_meas": unit,
                    "dev_cla": class,
                    "stat_cla": "measurement",
                }),
            ),
        )
    };
    vec![
        sensor("temperature", "Temperature", "°C", "temperature"),
        sensor("humidity", "Relative humidity", "%", "humidity"),
        sensor("power", "Power", "W", "power"),
        (
            "switch",
            "relay",
            with(
                common("relay", "Relay"),
                json!({
                    "cmd_t": "~/relay/set",
                    "stat_t": "~/state",
                    "val_tpl": "{{ value_json.relay }}",
                    "pl_on": "ON",
                    "pl_off": "OFF",
                }),
            ),
        ),
        (
            "light",
            "lamp",
            with(
                common("lamp", "Lamp"),
                json!({
                    "schema": "json",
                    "cmd_t": "~/light/set",
                    "stat_t": "~/light",
                    "brightness": true,
                    "bri_scl": 100,
                    "supported_color_modes": ["brightness"],
                }),
            ),
        ),
        (
            "number",
            "setpoint",
            with(
                common("setpoint", "Setpoint"),
                json!({
                    "cmd_t": "~/setpoint/set",
                    "stat_t": "~/state",
                    "val_tpl": "{{ value_json.setpoint }}",
                    "min": 5,
                    "max": 35,
                    "step": 0.5,
                    "unit_of_meas": "°C",
                }),
            ),
        ),
        (
            "button",
            "reboot",
            with(
                common("reboot", "Reboot"),
                json!({ "cmd_t": "~/reboot/set", "pl_prs": "PRESS" }),
            ),
        ),
    ]
}

/// Rounds to `digits` decimals for the JSON state.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The `~/state` payload.
pub(crate) fn state_json(state: &State) -> Value {
    json!({
        "temperature": round(state.temperature, 2),
        "humidity": round(state.humidity, 1),
        "power": round(state.power, 1),
        "relay": if state.switch { "ON" } else { "OFF" },
        "setpoint": state.setpoint,
    })
}

/// The `~/light` payload.
pub(crate) fn light_json(state: &State) -> Value {
    json!({
        "state": if state.switch { "ON" } else { "OFF" },
        "brightness": state.dimmer,
    })
}

/// Validates a command on `~/{object}/set`: the commands it stands for.
pub(crate) fn parse_command(object: &str, payload: &[u8]) -> Result<Vec<Command>, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("{object}: the payload is not UTF-8 text"))?
        .trim();
    let switch = |word: &str| match word {
        "ON" => Ok(Command::Switch(true)),
        "OFF" => Ok(Command::Switch(false)),
        other => Err(format!("{object}: `{other}` is not ON or OFF")),
    };
    let homie = |node: &str, prop: &str, value: &str| match model::find(node, prop) {
        Some(property) => model::parse_set(property, value.as_bytes()),
        None => Err(format!("{node}/{prop}: no such property")),
    };
    match object {
        "relay" => Ok(vec![switch(text)?]),
        "light" => {
            let json: Value = serde_json::from_str(text)
                .map_err(|error| format!("light: not a JSON command: {error}"))?;
            let mut commands = Vec::new();
            if let Some(word) = json.get("state") {
                commands.push(switch(word.as_str().unwrap_or_default())?);
            }
            if let Some(level) = json.get("brightness") {
                commands.push(homie("lamp", "dimmer", &level.to_string())?);
            }
            if commands.is_empty() {
                return Err("light: neither state nor brightness".to_owned());
            }
            Ok(commands)
        }
        "setpoint" => Ok(vec![homie("thermostat", "setpoint", text)?]),
        "reboot" if text == "PRESS" => Ok(vec![Command::Reboot]),
        "reboot" => Err(format!("reboot: `{text}` is not PRESS")),
        other => Err(format!("{other}: no such command")),
    }
}

fn retained(qos: QoS) -> PublishOptions {
    PublishOptions::new(qos).retain(true)
}

/// Publishes both state payloads.
async fn publish_state(
    client: &Client,
    base: &str,
    state: &State,
    qos: QoS,
) -> Result<(), native_client::Error> {
    client
        .publish(
            format!("{base}/state"),
            state_json(state).to_string(),
            retained(qos),
        )
        .await?;
    client
        .publish(
            format!("{base}/light"),
            light_json(state).to_string(),
            retained(qos),
        )
        .await?;
    Ok(())
}

/// One connection's life: discovery configs, availability, state; then telemetry and
/// commands until it ends.
pub(crate) async fn session(
    fleet: &Fleet,
    id: &str,
    client: &Client,
    state: &mut State,
    rng: &mut fastrand::Rng,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<End, native_client::Error> {
    let qos = QoS::AtLeastOnce;
    let base = base(fleet, id);
    let prefix = fleet.ha_prefix.as_deref().unwrap_or("homeassistant");
    let mut commands = client.subscribe(format!("{base}/+/set"), qos).await?;
    for (component, object, config) in configs(&base, id) {
        client
            .publish(
                format!("{prefix}/{component}/{id}/{object}/config"),
                config.to_string(),
                retained(qos),
            )
            .await?;
    }
    publish_state(client, &base, state, qos).await?;
    let availability = availability_topic(fleet, id);
    client
        .publish(availability.clone(), "online", retained(qos))
        .await?;

    let period = Duration::from_secs_f64(1.0 / fleet.rate.max(0.001));
    let start = Instant::now() + period.mul_f64(rng.f64());
    let mut telemetry = tokio::time::interval_at(start, period);
    telemetry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut each_second = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                let _ = client.publish(availability.clone(), "offline", retained(qos)).await;
                let _ = client.disconnect(ReasonCode::Success).await;
                return Ok(End::Shutdown);
            }
            _ = telemetry.tick() => {
                state.drift(period.as_secs_f64());
                client
                    .publish(format!("{base}/state"), state_json(state).to_string(), retained(fleet.telemetry_qos))
                    .await?;
                fleet.sent.fetch_add(1, Ordering::Relaxed);
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ok(End::Lost) };
                if handle_command(fleet, id, client, &base, state, &command).await? {
                    let _ = client.publish(availability.clone(), "offline", retained(qos)).await;
                    return Ok(End::Reboot);
                }
            }
            _ = each_second.tick() => {
                if fleet.dropout_prob > 0.0 && rng.f64() < fleet.dropout_prob {
                    let away = fleet.dropout.mul_f64(0.5 + rng.f64());
                    return Ok(End::Dropout(away));
                }
            }
        }
    }
}

/// Validates and applies one command, then publishes the state it leads to. Returns
/// `true` for a reboot.
async fn handle_command(
    fleet: &Fleet,
    id: &str,
    client: &Client,
    base: &str,
    state: &mut State,
    message: &Message,
) -> Result<bool, native_client::Error> {
    fleet.commands.fetch_add(1, Ordering::Relaxed);
    // {base}/{object}/set
    let object = message
        .topic()
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix("/set"))
        .unwrap_or_default();
    let commands = match parse_command(object, &message.payload) {
        Ok(commands) => commands,
        Err(error) => {
            fleet.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!("{id}: rejected {object}: {error}");
            return Ok(false);
        }
    };
    if commands.contains(&Command::Reboot) {
        return Ok(true);
    }
    for command in &commands {
        state.apply(command);
    }
    publish_state(client, base, state, QoS::AtLeastOnce).await?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_take_the_payload_forms_the_configs_declare() {
        assert_eq!(
            parse_command("relay", b"ON"),
            Ok(vec![Command::Switch(true)])
        );
        assert!(parse_command("relay", b"true").is_err());
        assert_eq!(
            parse_command("light", br#"{"state":"ON","brightness":40}"#),
            Ok(vec![Command::Switch(true), Command::Dimmer(40)])
        );
        assert!(
            parse_command("light", br#"{"brightness":140}"#)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            parse_command("setpoint", b"22.5"),
            Ok(vec![Command::Setpoint(22.5)])
        );
        assert!(parse_command("setpoint", b"40").is_err());
        assert_eq!(parse_command("reboot", b"PRESS"), Ok(vec![Command::Reboot]));
        assert!(parse_command("fan", b"ON").is_err());
    }

    #[test]
    fn every_config_names_the_device_availability_and_its_topics() {
        let configs = configs("iot/ha/sim-001", "sim-001");
        let components: Vec<&str> = configs.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(
            components,
            [
                "sensor", "sensor", "sensor", "switch", "light", "number", "button"
            ]
        );
        for (_, object, config) in &configs {
            assert_eq!(config["dev"]["ids"][0], "sim-001", "{object}");
            assert_eq!(config["avty_t"], "~/availability", "{object}");
            assert_eq!(config["~"], "iot/ha/sim-001", "{object}");
        }
        let light = &configs[4].2;
        assert_eq!(light["schema"], "json");
        assert_eq!(light["bri_scl"], 100);
        assert_eq!(configs[0].2["val_tpl"], "{{ value_json.temperature }}");
        let state = state_json(&State::new(1));
        assert!(state["temperature"].is_f64());
        assert!(matches!(state["relay"].as_str(), Some("ON" | "OFF")));
    }
}
