//! The dashboard end to end, as a user sees it: the built dashboard (`trunk build`) served
//! by a real `broker-server`, `device-sim` devices publishing to it over TCP, headless
//! Chromium driven over WebDriver (fantoccini), and `mosquitto_sub` as an independent
//! observer.
//!
//! One scenario, in order: a device appears ready; its page shows values that update and
//! a chart that draws; its switch, toggled in the page, reaches the device (the device's
//! retained `$target`, read by `mosquitto_sub`, confirms) and shows ok; an out-of-range
//! setpoint shows the device's rejection; dark mode; the explorer lists the tree, finds
//! topics by MQTT wildcard and publishes a message (with an MQTT 5 content type) that
//! `mosquitto_sub` receives, and deletes a retained message after a confirmation that
//! names the count; the broker view shows `$SYS` clients and messages/s; killing
//! device-sim shows the device lost. Screenshots of each view go to `$DASHBOARD_SCREENSHOTS` (else the test's
//! scratch directory); `docs/screenshots/` holds the committed ones.
//!
//! `cargo xtask test browser` builds what it needs and runs this test with
//! `DASHBOARD_DIST`, `DASHBOARD_BROKER`, `DEVICE_SIM` and `CHROMEDRIVER` set (not `BROKER_*`:
//! broker-server reads those as configuration). Without them (a
//! plain `cargo test`) it passes without running and says so.

use std::time::Duration;

use fantoccini::Locator;

use crate::support::{
    self, Broker, ChromeDriver, PATIENCE, click, device, mosquitto_sub_one, open, property,
    scratch_dir, screenshot, setup, type_into, type_over, wait_text,
};

#[tokio::test]
async fn devices_values_commands_and_lost_devices_in_a_real_browser() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-e2e");
    let broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    let mut sim = support::device_sim(
        &setup.device_sim,
        broker.tcp,
        3,
        4.0,
        &scratch.join("device-sim.log"),
    );
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;

    // The dashboard's defaults: the broker of the page's own origin, root `iot`.
    open(&client, &broker.page(""), "the dashboard").await;
    wait_text(
        &client,
        "[data-testid=connection-status]",
        "connected",
        |t| t == "connected",
    )
    .await;

    // A device appears, ready, with its name from `$description`.
    wait_text(&client, &device("sim-001", "device-state"), "ready", |t| {
        t == "ready"
    })
    .await;
    wait_text(&client, &device("sim-003", "device-state"), "ready", |t| {
        t == "ready"
    })
    .await;
    // Its row: key values and when it was last seen.
    wait_text(
        &client,
        &device("sim-001", "device-values"),
        "key values",
        |t| t.contains("°C"),
    )
    .await;
    wait_text(
        &client,
        &device("sim-001", "device-seen"),
        "last seen",
        |t| t.ends_with("ago"),
    )
    .await;
    screenshot(&client, "devices").await;

    // Its page: values arrive and update.
    click(&client, &device("sim-001", "device-open")).await;
    let temperature = property("env/temperature", "property-value");
    let first = wait_text(&client, &temperature, "a temperature", |t| {
        t.ends_with("°C")
    })
    .await;
    wait_text(&client, &temperature, "a new temperature", |t| {
        t != first && t.ends_with("°C")
    })
    .await;

    // The chart draws the first numeric property (two samples make a line).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        // The line is drawn once a sample is in the window (and redrawn as time moves).
        let points = match client.find(Locator::Css("[data-testid=chart-line]")).await {
            Ok(line) => line.attr("points").await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        };
        if points.split(' ').filter(|p| p.contains(',')).count() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chart has no line: points {points:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more samples, for a screenshot worth looking at.
    wait_text(
        &client,
        "[data-testid=chart-range]",
        "the chart's range",
        |t| t.split(' ').next().and_then(|n| n.parse::<u32>().ok()) >= Some(6),
    )
    .await;

    // The switch: pending → ok, the value follows, and the device confirms.
    let switch = property("lamp/switch", "switch");
    let before = wait_text(
        &client,
        &property("lamp/switch", "property-value"),
        "the lamp",
        |t| t == "true" || t == "false",
    )
    .await;
    let wanted = if before == "true" { "false" } else { "true" };
    click(&client, &switch).await;
    wait_text(
        &client,
        &property("lamp/switch", "command-state"),
        "the switch's reply",
        |t| t == "ok",
    )
    .await;
    wait_text(
        &client,
        &property("lamp/switch", "property-value"),
        "the lamp's new value",
        |t| t == wanted,
    )
    .await;
    let target = mosquitto_sub_one(broker.tcp, "iot/5/sim-001/lamp/switch/$target").await;
    assert_eq!(target, wanted, "the device's $target after the switch");

    // A setpoint out of the format's range: the device says why.
    type_over(
        &client,
        &property("thermostat/setpoint", "number-input"),
        "99",
    )
    .await;
    let rejected = wait_text(
        &client,
        &property("thermostat/setpoint", "command-state"),
        "the setpoint's rejection",
        |t| t.starts_with("rejected"),
    )
    .await;
    assert!(
        rejected.contains("out of range 5:35"),
        "the device's reason is shown: {rejected}"
    );
    screenshot(&client, "device-page").await;

    // Dark mode: system → dark.
    click(&client, "[data-testid=theme-toggle]").await;
    wait_text(&client, "[data-testid=theme-toggle]", "dark mode", |t| {
        t.ends_with("dark")
    })
    .await;
    screenshot(&client, "device-page-dark").await;
    click(&client, "[data-testid=nav-devices]").await;
    wait_text(
        &client,
        &device("sim-002", "device-state"),
        "the list",
        |t| t == "ready",
    )
    .await;
    screenshot(&client, "devices-dark").await;
    // Phone width: the same list, rows wrapped.
    client
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    screenshot(&client, "devices-phone-dark").await;
    client
        .set_window_size(1280, 1000)
        .await
        .expect("the desktop size again");

    // The explorer: the tree of what the devices publish, and a publish that an
    // independent subscriber receives with its MQTT 5 content type.
    click(&client, "[data-testid=nav-explorer]").await;
    let count = wait_text(
        &client,
        "[data-testid=tree-row][data-topic=\"iot\"] [data-testid=tree-count]",
        "the tree's root",
        |t| t.parse::<u64>().is_ok_and(|n| n > 10),
    )
    .await;
    wait_text(
        &client,
        "[data-testid=tree-row][data-topic=\"iot\"] [data-testid=tree-count]",
        "the root's count growing",
        |t| {
            t.parse::<u64>()
                .is_ok_and(|n| n > count.parse::<u64>().unwrap_or(0))
        },
    )
    .await;
    type_into(
        &client,
        "[data-testid=explorer-search]",
        "iot/5/sim-002/+/+",
    )
    .await;
    let first = wait_text(
        &client,
        "[data-testid=tree-row] [data-testid=tree-label]",
        "a wildcard search",
        |t| !t.is_empty(),
    )
    .await;
    click(&client, "[data-testid=tree-row] [data-testid=tree-label]").await;
    wait_text(
        &client,
        "[data-testid=topic-name]",
        "the selected topic",
        |t| t.starts_with("iot/5/sim-002/") && t.ends_with(&first),
    )
    .await;
    let mut sub = Subscriber::start(broker.tcp, "e2e/hello").await;
    type_into(&client, "[data-testid=publish-topic]", "e2e/hello").await;
    let payload = "{\"from\":\"the dashboard\"}";
    type_into(&client, "[data-testid=publish-payload]", payload).await;
    click(&client, "[data-testid=publish-properties] summary").await;
    type_into(
        &client,
        "[data-testid=publish-content-type]",
        "application/json",
    )
    .await;
    click(&client, "[data-testid=publish-send]").await;
    wait_text(
        &client,
        "[data-testid=publish-outcome]",
        "the publish",
        |t| t.starts_with("published"),
    )
    .await;
    let received = sub.next_message().await;
    assert_eq!(
        received, "e2e/hello|{\"from\":\"the dashboard\"}|application/json",
        "mosquitto_sub's view of the dashboard's message"
    );
    // A retained message published from the panel, then deleted from the tree: the
    // confirmation names the count, and the broker no longer holds it.
    type_into(&client, "[data-testid=publish-topic]", "e2e/retained").await;
    click(&client, "[data-testid=publish-retain]").await;
    click(&client, "[data-testid=publish-send]").await;
    assert_eq!(
        mosquitto_sub_one(broker.tcp, "e2e/retained").await,
        "{\"from\":\"the dashboard\"}",
        "the retained message is on the broker"
    );
    type_into(&client, "[data-testid=explorer-search]", "e2e/retained").await;
    let row = "[data-testid=tree-row][data-topic=\"e2e/retained\"]";
    click(&client, &format!("{row} [data-testid=tree-label]")).await;
    wait_text(
        &client,
        "[data-testid=delete-retained]",
        "the delete button",
        |t| t == "Delete retained (1)",
    )
    .await;
    click(&client, "[data-testid=delete-retained]").await;
    let question = client.get_alert_text().await.expect("a confirmation");
    assert!(
        question.starts_with("Delete 1 retained"),
        "the confirmation names the count: {question}"
    );
    client.accept_alert().await.expect("confirmed");
    wait_text(
        &client,
        "[data-testid=delete-status]",
        "the deletion",
        |t| t == "deleted 1 of 1 retained",
    )
    .await;
    let left = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.tcp.to_string()])
        .args(["-t", "e2e/retained", "-C", "1", "-W", "2"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("mosquitto_sub runs");
    assert!(
        left.stdout.is_empty(),
        "no retained message left: {:?}",
        String::from_utf8_lossy(&left.stdout)
    );
    type_into(
        &client,
        "[data-testid=explorer-search]",
        "iot/5/sim-002/+/+",
    )
    .await;
    click(&client, "[data-testid=tree-row] [data-testid=tree-label]").await;

    client
        .execute("window.scrollTo(0, 0)", Vec::new())
        .await
        .expect("scrolling");
    screenshot(&client, "explorer-dark").await;

    // The broker view: `$SYS` every second here; the rate needs two updates.
    click(&client, "[data-testid=nav-broker]").await;
    wait_text(&client, "[data-testid=broker-clients]", "clients", |t| {
        t.trim().parse::<f64>().is_ok_and(|n| n >= 4.0)
    })
    .await;
    wait_text(&client, "[data-testid=broker-rate]", "messages/s", |t| {
        t.ends_with("msg/s")
    })
    .await;
    screenshot(&client, "broker-dark").await;

    // Killing the devices' process: the broker publishes their wills, `lost`.
    click(&client, "[data-testid=nav-devices]").await;
    sim.start_kill().expect("device-sim is killed");
    let _ = sim.wait().await;
    wait_text(&client, &device("sim-001", "device-state"), "lost", |t| {
        t == "lost"
    })
    .await;
    screenshot(&client, "devices-lost-dark").await;
    let _ = client.close().await;
}

/// `mosquitto_sub -V 5` on one topic, printing `topic|payload|content type`.
struct Subscriber {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl Subscriber {
    /// Starts it and returns once the broker granted the subscription (its `-d` output
    /// shows the SUBACK).
    async fn start(port: u16, topic: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        // Line-buffered: mosquitto_sub's stdout is a pipe here.
        let mut child = tokio::process::Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
            .args(["-V", "mqttv5", "-d", "-F", "%t|%p|%C"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub runs (cargo xtask setup installs it)");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let suback = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("SUBACK") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(suback, Ok(true), "mosquitto_sub did not subscribe");
        Self {
            lines,
            _child: child,
        }
    }

    /// The next message line (the `-d` lines skipped).
    async fn next_message(&mut self) -> String {
        tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                // `-d` adds "Client … sending/received …" and "Subscribed …" lines.
                if line.contains('|') {
                    return line;
                }
            }
            panic!("mosquitto_sub ended");
        })
        .await
        .expect("mosquitto_sub receives the message")
    }
}
