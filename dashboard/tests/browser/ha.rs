//! Home Assistant discovery end to end: the built dashboard served by a real
//! `broker-server`, `device-sim --convention ha` (and one Homie device beside it),
//! headless Chromium over WebDriver, `mosquitto_sub`/`mosquitto_pub` as independent
//! peers.
//!
//! One scenario: HA devices appear ready, marked `HA` beside the Homie one, with key
//! values; a malformed config is counted as ignored; on a device's page values update;
//! the relay switch and the light's brightness round-trip (the command settles when the
//! state topic shows the value; `mosquitto_sub` reads the device's retained state);
//! the page's link survives a reload; killing device-sim (its will says `offline`) shows the devices offline.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM` and `CHROMEDRIVER` set; without them it passes without running.

use crate::support::{
    Broker, ChromeDriver, click, device, device_sim_with, mosquitto_pub, mosquitto_sub_one, open,
    property, scratch_dir, screenshot, setup, type_over, wait_text,
};

/// A device's JSON state, as `mosquitto_sub` printed it.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("a JSON state, not {text:?}: {e}"))
}

#[tokio::test]
async fn home_assistant_devices_values_commands_and_offline_in_a_real_browser() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-ha");
    let broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    let mut ha_sim = device_sim_with(
        &setup.device_sim,
        broker.tcp,
        2,
        4.0,
        &scratch.join("device-sim-ha.log"),
        &["--convention", "ha"],
    );
    let _homie_sim = device_sim_with(
        &setup.device_sim,
        broker.tcp,
        1,
        1.0,
        &scratch.join("device-sim-homie.log"),
        &["--prefix", "homie"],
    );
    let broken = "homeassistant/sensor/broken/x/config";
    mosquitto_pub(broker.tcp, broken, Some("{nope"), true).await;
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page(""), "the dashboard").await;

    // Both conventions in one list, each marked.
    let ha = "ha:sim-001";
    wait_text(
        &client,
        &device(ha, "device-state"),
        "HA device ready",
        |t| t == "ready",
    )
    .await;
    wait_text(
        &client,
        &device("ha:sim-002", "device-state"),
        "second HA device",
        |t| t == "ready",
    )
    .await;
    wait_text(
        &client,
        &device("homie-001", "device-state"),
        "Homie device",
        |t| t == "ready",
    )
    .await;
    wait_text(&client, &device(ha, "device-convention"), "HA mark", |t| {
        t == "HA"
    })
    .await;
    wait_text(
        &client,
        &device("homie-001", "device-convention"),
        "Homie mark",
        |t| t == "Homie",
    )
    .await;
    wait_text(&client, &device(ha, "device-values"), "key values", |t| {
        t.contains("°C") && t.contains('%')
    })
    .await;
    wait_text(
        &client,
        "[data-testid=ha-warnings-count]",
        "the ignored config",
        |t| t == "1 Home Assistant discovery config ignored",
    )
    .await;
    screenshot(&client, "ha-devices").await;

    // The page: values arrive and update.
    click(&client, &device(ha, "device-open")).await;
    let temperature = property("temperature/state", "property-value");
    let first = wait_text(&client, &temperature, "a temperature", |t| {
        t.ends_with("°C")
    })
    .await;
    wait_text(&client, &temperature, "a new temperature", |t| {
        t != first && t.ends_with("°C")
    })
    .await;

    // The relay (switch): ON/OFF to its command topic; settled by the state topic.
    let before = wait_text(
        &client,
        &property("relay/state", "property-value"),
        "the relay",
        |t| t == "true" || t == "false",
    )
    .await;
    let wanted = before != "true";
    click(&client, &property("relay/state", "switch")).await;
    wait_text(
        &client,
        &property("relay/state", "command-state"),
        "the relay command settled",
        |t| t == "ok",
    )
    .await;
    wait_text(
        &client,
        &property("relay/state", "property-value"),
        "the relay's new value",
        |t| t == wanted.to_string(),
    )
    .await;
    let state = json(&mosquitto_sub_one(broker.tcp, "iot/ha/sim-001/state").await);
    assert_eq!(
        state["relay"],
        if wanted { "ON" } else { "OFF" },
        "the device's state after the switch: {state}"
    );

    // The light's brightness: a JSON-schema command, settled by the light's state.
    type_over(&client, &property("lamp/brightness", "number-input"), "37").await;
    wait_text(
        &client,
        &property("lamp/brightness", "command-state"),
        "the brightness command settled",
        |t| t == "ok",
    )
    .await;
    wait_text(
        &client,
        &property("lamp/brightness", "property-value"),
        "the new brightness",
        |t| t == "37",
    )
    .await;
    let light = json(&mosquitto_sub_one(broker.tcp, "iot/ha/sim-001/light").await);
    assert_eq!(light["brightness"], 37, "the device's light state: {light}");
    assert_eq!(
        light["state"], "ON",
        "a brightness command turns the light on"
    );
    wait_text(
        &client,
        "[data-testid=device-convention]",
        "the page's mark",
        |t| t == "HA",
    )
    .await;
    screenshot(&client, "ha-device-page").await;

    // The page's link survives a reload: discovery finds the device again and the page
    // gets its properties, values and details.
    client.refresh().await.expect("reloaded");
    wait_text(
        &client,
        &property("lamp/brightness", "property-value"),
        "the brightness after a reload",
        |t| t == "37",
    )
    .await;
    wait_text(
        &client,
        "[data-testid=device-details]",
        "the device's details",
        |t| t.contains("device-sim"),
    )
    .await;

    // The devices go away without a word: their will says offline.
    ha_sim.kill().await.expect("device-sim killed");
    click(&client, "[data-testid=nav-devices]").await;
    wait_text(&client, &device(ha, "device-state"), "offline", |t| {
        t == "offline"
    })
    .await;
    wait_text(
        &client,
        &device("homie-001", "device-state"),
        "the Homie device still ready",
        |t| t == "ready",
    )
    .await;
    screenshot(&client, "ha-devices-offline").await;
    let _ = client.close().await;
}
