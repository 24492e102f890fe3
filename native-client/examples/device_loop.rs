//! A device's main loop: read a sensor, publish it, react to commands.
//!
//! ```text
//! cargo run -p broker-server &                        # a broker on localhost:1883
//! cargo run -p native-client --example device_loop    # this device
//! mqtt sub -t 'iot/5/thermo-1/#' -v                   # watch it
//! mqtt pub -t iot/5/thermo-1/heater/power/set -m true --response-topic dash/me/res/thermo-1 -q 1
//! ```
//!
//! Set `MQTT_URL` to use another broker (e.g. `mqtts://broker.example:8883`).

use std::time::Duration;

use native_client::{Client, ConnectOptions, Event, PublishOptions, QoS, ReasonCode};

const DEVICE: &str = "thermo-1";

/// Stands in for a real sensor driver.
struct Sensor {
    celsius: f64,
}

impl Sensor {
    fn read(&mut self, heating: bool) -> f64 {
        self.celsius += if heating { 0.2 } else { -0.1 };
        self.celsius
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MQTT_URL").unwrap_or_else(|_| "mqtt://localhost:1883".into());
    let base = format!("iot/5/{DEVICE}");
    let retained = PublishOptions::new(QoS::AtLeastOnce).retain(true);

    // The will tells everyone the device is gone if the connection drops; the client
    // reconnects by itself and resumes or restores its subscriptions.
    let options = ConnectOptions::new(url)
        .client_id(DEVICE)
        .keep_alive(Duration::from_secs(30))
        .will(&format!("{base}/$state"), "lost", QoS::AtLeastOnce, true);
    let client = Client::connect(options).await?;
    let mut events = client.events();

    let description = r#"{"homie":"5.0","version":1,"name":"Thermometer","nodes":{
        "env":{"name":"Environment","properties":{"temperature":{"datatype":"float","unit":"°C"}}},
        "heater":{"name":"Heater","properties":{"power":{"datatype":"boolean","settable":true}}}}}"#;
    client
        .publish(format!("{base}/$state"), "init", retained.clone())
        .await?;
    client
        .publish(
            format!("{base}/$description"),
            description,
            retained.clone(),
        )
        .await?;
    let mut commands = client
        .subscribe(format!("{base}/heater/power/set"), QoS::AtLeastOnce)
        .await?;
    client
        .publish(format!("{base}/$state"), "ready", retained.clone())
        .await?;

    let mut sensor = Sensor { celsius: 20.0 };
    let mut heating = false;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let celsius = sensor.read(heating);
                // QoS 0 telemetry; while offline it waits in the bounded offline queue.
                let _ = client.publish(format!("{base}/env/temperature"), format!("{celsius:.1}"), QoS::AtMostOnce).await;
            }
            Some(command) = commands.recv() => {
                let reply = match command.payload_str() {
                    Some("true") => { heating = true; r#"{"ok":true}"# }
                    Some("false") => { heating = false; r#"{"ok":true}"# }
                    _ => r#"{"ok":false,"error":"expected true or false"}"#,
                };
                client.publish(format!("{base}/heater/power"), heating.to_string(), retained.clone()).await?;
                if command.response_topic().is_some() {
                    client.respond(&command, reply, QoS::AtLeastOnce.into()).await?;
                }
            }
            Ok(event) = events.recv() => {
                eprintln!("{DEVICE}: {event:?}");
                if matches!(event, Event::Connected { session_present: false }) {
                    client.publish(format!("{base}/$state"), "ready", retained.clone()).await?;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client
        .publish(format!("{base}/$state"), "disconnected", retained)
        .await?;
    client.disconnect(ReasonCode::Success).await?;
    Ok(())
}
