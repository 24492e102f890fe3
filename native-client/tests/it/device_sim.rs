//! `device-sim` devices discovered and commanded by a test client following the
//! Homie 5 convention (docs/ARCHITECTURE.md, "Device topic convention"): state,
//! description, values, `/set` with a reply and echo, rejection, and dropout (the will
//! says `lost`).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{self, TestBroker, next};
use native_client::{Message, QoS, ReasonCode, Subscription};
use tokio::process::{Child, Command};

const DEVICE_SIM: &str = env!("CARGO_BIN_EXE_device-sim");

fn device_sim(broker: &TestBroker, args: &[&str]) -> Child {
    Command::new(DEVICE_SIM)
        .arg("-L")
        .arg(broker.url())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("device-sim starts")
}

/// Reads `subscription` until `topic` has `payload`.
async fn wait_for(subscription: &mut Subscription, topic: &str, payload: &str) -> Message {
    loop {
        let message = next(subscription).await;
        if message.topic() == topic && message.payload_str() == Some(payload) {
            return message;
        }
    }
}

fn json(message: &Message) -> serde_json::Value {
    serde_json::from_slice(&message.payload).expect("JSON payload")
}

#[tokio::test]
async fn devices_announce_themselves_and_publish_telemetry() {
    let broker = TestBroker::start().await;
    let mut sim = device_sim(
        &broker,
        &["--devices", "3", "--rate", "20", "--root", "lab"],
    );
    let client = common::connect(&broker.url(), "dashboard").await;
    let mut states = client
        .subscribe("lab/5/+/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut ready = HashMap::new();
    while ready.len() < 3 {
        let message = next(&mut states).await;
        if message.payload_str() == Some("ready") {
            ready.insert(message.topic().to_owned(), ());
        }
    }
    for n in 1..=3 {
        assert!(
            ready.contains_key(&format!("lab/5/sim-00{n}/$state")),
            "{ready:?}"
        );
    }

    let mut description = client
        .subscribe("lab/5/sim-002/$description", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut description).await;
    assert!(message.retain);
    let description = json(&message);
    assert_eq!(description["homie"], "5.0");
    let lamp = &description["nodes"]["lamp"]["properties"];
    assert_eq!(lamp["dimmer"]["datatype"], "integer");
    assert_eq!(lamp["dimmer"]["format"], "0:100");
    assert_eq!(lamp["switch"]["settable"], true);
    assert_eq!(
        description["nodes"]["env"]["properties"]["temperature"]["unit"],
        "°C"
    );
    assert_eq!(
        description["nodes"]["system"]["properties"]["reboot"]["retained"],
        false
    );

    // Telemetry keeps coming: more than the retained value.
    let mut temperature = client
        .subscribe("lab/5/sim-001/env/temperature", QoS::AtMostOnce)
        .await
        .unwrap();
    for _ in 0..3 {
        let value: f64 = next(&mut temperature)
            .await
            .payload_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..60.0).contains(&value), "{value}");
    }
    client.disconnect(ReasonCode::Success).await.unwrap();
    sim.kill().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_set_command_is_applied_echoed_and_answered() {
    let broker = TestBroker::start().await;
    let mut sim = device_sim(&broker, &["--devices", "1", "--rate", "1"]);
    let client = common::connect(&broker.url(), "commander").await;
    let mut states = client
        .subscribe("iot/5/sim-001/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut states, "iot/5/sim-001/$state", "ready").await;
    let mut lamp = client
        .subscribe("iot/5/sim-001/lamp/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    let response = client
        .request("iot/5/sim-001/lamp/dimmer/set", "42", common::PATIENCE)
        .await
        .unwrap();
    assert_eq!(json(&response), serde_json::json!({ "ok": true }));
    wait_for(&mut lamp, "iot/5/sim-001/lamp/dimmer/$target", "42").await;
    wait_for(&mut lamp, "iot/5/sim-001/lamp/dimmer", "42").await;

    let response = client
        .request("iot/5/sim-001/lamp/switch/set", "true", common::PATIENCE)
        .await
        .unwrap();
    assert_eq!(json(&response)["ok"], true);
    wait_for(&mut lamp, "iot/5/sim-001/lamp/switch", "true").await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    sim.kill().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn invalid_commands_are_rejected_with_an_error_reply() {
    let broker = TestBroker::start().await;
    let mut sim = device_sim(&broker, &["--devices", "1", "--rate", "1"]);
    let client = common::connect(&broker.url(), "tester").await;
    let mut states = client
        .subscribe("iot/5/sim-001/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut states, "iot/5/sim-001/$state", "ready").await;
    for (topic, payload, error) in [
        ("lamp/dimmer", "150", "out of range 0:100"),
        ("lamp/dimmer", "bright", "not an integer"),
        ("lamp/switch", "maybe", "not a boolean"),
        ("thermostat/setpoint", "99", "out of range 5:35"),
        ("env/temperature", "30", "not settable"),
        ("lamp/colour", "red", "no such property"),
    ] {
        let response = client
            .request(
                format!("iot/5/sim-001/{topic}/set"),
                payload,
                common::PATIENCE,
            )
            .await
            .unwrap();
        let reply = json(&response);
        assert_eq!(reply["ok"], false, "{topic} = {payload}");
        let text = reply["error"].as_str().unwrap();
        assert!(text.contains(error), "{topic} = {payload}: {text}");
    }
    client.disconnect(ReasonCode::Success).await.unwrap();
    sim.kill().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_dropout_makes_the_will_report_the_device_lost() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "watcher").await;
    let mut states = client
        .subscribe("iot/5/flaky-001/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut sim = device_sim(
        &broker,
        &[
            "--prefix",
            "flaky",
            "--devices",
            "1",
            "--dropout-prob",
            "1",
            "--dropout-secs",
            "0.5",
        ],
    );
    wait_for(&mut states, "iot/5/flaky-001/$state", "ready").await;
    let lost = wait_for(&mut states, "iot/5/flaky-001/$state", "lost").await;
    assert_eq!(lost.qos, QoS::AtLeastOnce);
    // It comes back.
    wait_for(&mut states, "iot/5/flaky-001/$state", "ready").await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    sim.kill().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn device_sim_prints_a_summary_and_says_disconnected_when_it_stops() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "observer").await;
    let mut states = client
        .subscribe("iot/5/+/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let sim = device_sim(
        &broker,
        &["--devices", "2", "--rate", "5", "--duration", "1"],
    );
    let output = common::within("device-sim to stop", sim.wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("device-sim: 2 devices (sim-001..sim-002)"),
        "{stdout}"
    );
    wait_for(&mut states, "iot/5/sim-001/$state", "disconnected").await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn device_sim_fails_with_the_cause_when_the_broker_is_unreachable() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = Command::new(DEVICE_SIM)
        .args(["-L", &url, "--devices", "1"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
}
