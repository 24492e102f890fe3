//! What the dashboard shows stays true while data moves, in a real browser (the built
//! dashboard served by `broker-server`, `device-sim`, headless Chromium, and
//! `mosquitto_pub` as an independent publisher):
//!
//! - a history message chosen in the explorer stays the one shown (and a diff stays
//!   between the two messages chosen) while ten messages a second arrive on its topic;
//!   the topic's JSON values are plotted;
//! - the device's switch is toggled twice with the keyboard only (Tab to it, Space, then
//!   Enter), each time the device reports the new value, and focus stays on the switch;
//! - a setpoint typed out of range is rejected and the input returns to the device's
//!   value; a reboot asks first (focus on Confirm), Cancel closes the question and
//!   returns focus to the button, Enter on Confirm reboots the device;
//! - the device chart has value and time axis labels and a unit, and a readout of the
//!   value and time under the pointer.
//!
//! No timing is asserted: every wait polls for what must become true, with a deadline.
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM` and `CHROMEDRIVER` set; without them it passes without running and says so.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::Client;
use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::{Locator, elements::Element};
use tokio::io::AsyncWriteExt;

use crate::support::{
    self, Broker, ChromeDriver, PATIENCE, click, property, scratch_dir, screenshot, setup,
    wait_text,
};

/// Runs `script` (a function body returning a value) in the page.
async fn js(client: &Client, script: &str) -> serde_json::Value {
    client
        .execute(script, Vec::new())
        .await
        .unwrap_or(serde_json::Value::Null)
}

/// Polls `script` until `ok` holds for its result, which it returns; panics naming
/// `what` (with a screenshot) after [`PATIENCE`].
async fn wait_js(
    client: &Client,
    script: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = js(client, script).await;
        if ok(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{what}")).await;
            panic!(
                "{what}: {script} gave {seen} (screenshot: {})",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Presses and releases `key` on whatever has focus.
async fn press(client: &Client, key: char) {
    let actions = KeyActions::new("keyboard".to_owned())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(actions).await.expect("a key press");
}

/// `data-testid` of the focused element, and of the property row it is in.
const FOCUS: &str = "const a = document.activeElement; \
    const row = a && a.closest('[data-testid^=property-]'); \
    return (row ? row.dataset.testid : '') + ' ' + (a && a.dataset ? (a.dataset.testid || a.tagName) : '');";

async fn find(client: &Client, css: &str) -> Element {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

#[tokio::test]
async fn selections_controls_and_charts_stay_true() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-truthful");
    let broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    let _sim = support::device_sim(
        &setup.device_sim,
        broker.tcp,
        1,
        2.0,
        &scratch.join("sim.log"),
    );
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    let base = broker.page("");

    // Ten messages a second on one topic, `{"seq":N,"t":…}`, from mosquitto_pub.
    let mut publisher = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.tcp.to_string()])
        .args(["-t", "e2e/seq", "-l"])
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_pub runs (cargo xtask setup installs it)");
    let mut stdin = publisher.stdin.take().expect("mosquitto_pub's stdin");
    let feeding = tokio::spawn(async move {
        for seq in 0_u64.. {
            let line = format!("{{\"seq\":{seq},\"t\":{}}}\n", 20 + seq % 7);
            if stdin.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // The explorer on that topic: wait for a few messages, choose an older one.
    client
        .goto(&format!("{base}#/explorer?topic=e2e/seq"))
        .await
        .expect("the explorer link loads");
    let items = "return [...document.querySelectorAll('[data-testid=history-item]')].map(e => e.dataset.id);";
    wait_js(&client, items, "a history of several messages", |v| {
        v.as_array().is_some_and(|a| a.len() >= 6)
    })
    .await;
    // The fourth newest: click it, by its id, wherever it is by then.
    let ids = js(&client, items).await;
    let id = ids[3].as_str().expect("an id").to_owned();
    click(
        &client,
        &format!("[data-testid=history-item][data-id=\"{id}\"]"),
    )
    .await;
    let payload = format!("[data-testid=payload][data-id=\"{id}\"]");
    let shown = wait_text(&client, &payload, "the chosen message", |t| {
        t.contains("\"seq\"")
    })
    .await;
    // Tick another message for a diff, then let twenty more messages arrive.
    let other = ids[5].as_str().expect("an id").to_owned();
    click(
        &client,
        &format!("[data-testid=history-item][data-id=\"{other}\"] ~ label input"),
    )
    .await;
    // A JSON diff by path (`~ seq: 62 → 73`), or a line diff for other payloads.
    let diff = wait_text(&client, "[data-testid=diff]", "the diff", |t| {
        t.contains('→') || (t.contains('-') && t.contains('+'))
    })
    .await;
    let newest = |v: &serde_json::Value| {
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|f| f.as_str())
            .and_then(|f| f.parse::<u64>().ok())
    };
    let chosen_id: u64 = id.parse().expect("a numeric id");
    wait_js(&client, items, "twenty newer messages", |v| {
        newest(v).is_some_and(|n| n >= chosen_id + 20)
    })
    .await;
    assert_eq!(
        find(&client, "[data-testid=payload]")
            .await
            .attr("data-id")
            .await
            .ok()
            .flatten(),
        Some(id.clone()),
        "the payload shown is still the chosen message"
    );
    assert_eq!(
        find(&client, "[data-testid=payload]")
            .await
            .text()
            .await
            .expect("text"),
        shown,
        "its text did not change"
    );
    assert_eq!(
        find(&client, "[data-testid=diff]")
            .await
            .text()
            .await
            .expect("text"),
        diff,
        "the diff is still between the two chosen messages"
    );
    // The topic's JSON is plotted: the first numeric path, with a line.
    let path = find(&client, "[data-testid=plot-path]").await;
    assert_eq!(
        path.prop("value").await.ok().flatten().as_deref(),
        Some("seq")
    );
    wait_js(
        &client,
        "const l = document.querySelector('[data-testid=plot-line]'); return l ? l.getAttribute('points').split(' ').length : 0;",
        "the plot's line",
        |v| v.as_u64().is_some_and(|n| n >= 2),
    )
    .await;
    screenshot(&client, "explorer-pinned-and-plot").await;
    // Back to following the newest message.
    click(&client, "[data-testid=history-latest]").await;
    wait_js(
        &client,
        "return document.querySelector('[data-testid=payload]').dataset.id;",
        "the newest message again",
        |v| {
            v.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|n| n > chosen_id + 20)
        },
    )
    .await;
    feeding.abort();
    drop(publisher);

    // The device page.
    client
        .goto(&format!("{base}#/device/sim-001"))
        .await
        .expect("the device link loads");
    wait_text(
        &client,
        "[data-testid=device-page] [data-testid=device-state]",
        "the device",
        |t| t == "ready",
    )
    .await;

    // The chart: value ticks, time ticks, the unit, and a readout under the pointer.
    let labels = "return [...document.querySelectorAll('[data-testid=chart] [data-testid=chart-y-tick]')].map(e => e.textContent);";
    let ys = wait_js(&client, labels, "value axis labels", |v| {
        v.as_array().is_some_and(|a| {
            a.len() >= 2
                && a.iter()
                    .all(|l| l.as_str().is_some_and(|l| l.parse::<f64>().is_ok()))
        })
    })
    .await;
    let times = wait_js(
        &client,
        "return [...document.querySelectorAll('[data-testid=chart] [data-testid=chart-x-tick]')].map(e => e.textContent);",
        "time axis labels",
        |v| {
            v.as_array().is_some_and(|a| {
                a.len() >= 2
                    && a.iter().all(|l| {
                        l.as_str()
                            .is_some_and(|l| l.len() == 8 && l.chars().filter(|c| *c == ':').count() == 2)
                    })
            })
        },
    )
    .await;
    // The first numeric property's unit (device-sim's: % or °C).
    let unit = wait_text(
        &client,
        "[data-testid=chart] [data-testid=chart-unit]",
        "the chart's unit",
        |t| !t.is_empty(),
    )
    .await;
    wait_text(&client, "[data-testid=chart-range]", "two samples", |t| {
        t.split(' ').next().and_then(|n| n.parse::<u32>().ok()) >= Some(2)
    })
    .await;
    let plot = find(&client, "[data-testid=chart] [data-testid=chart-plot]").await;
    let hover = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveToElement {
        element: plot,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    client
        .perform_actions(hover)
        .await
        .expect("the pointer moves");
    let readout = wait_text(
        &client,
        "[data-testid=chart] [data-testid=chart-readout]",
        "the readout",
        |t| t.contains(&unit),
    )
    .await;
    let time = find(
        &client,
        "[data-testid=chart] [data-testid=chart-readout-time]",
    )
    .await
    .text()
    .await
    .expect("the readout's time");
    assert!(
        time.len() == 8 && time.contains(':'),
        "the readout has a time: {readout:?}"
    );
    find(&client, "[data-testid=chart] [data-testid=chart-rule]").await;
    eprintln!("value ticks {ys}, time ticks {times}, readout {readout:?}");
    screenshot(&client, "device-chart-readout").await;

    // The switch, keyboard only: Tab until it has focus.
    let switch_row = "property-lamp-switch switch";
    let before = wait_text(
        &client,
        &property("lamp/switch", "property-value"),
        "the lamp",
        |t| t == "true" || t == "false",
    )
    .await;
    js(&client, "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return null;").await;
    let mut tabs = 0;
    while js(&client, FOCUS).await.as_str() != Some(switch_row) {
        tabs += 1;
        assert!(
            tabs < 80,
            "Tab never reached the switch: {}",
            js(&client, FOCUS).await
        );
        press(&client, Key::Tab.into()).await;
    }
    let mut expected = before;
    for key in [' ', Key::Enter.into()] {
        let wanted = if expected == "true" { "false" } else { "true" };
        press(&client, key).await;
        wait_text(
            &client,
            &property("lamp/switch", "property-value"),
            "the device's report of the switch",
            |t| t == wanted,
        )
        .await;
        wait_text(
            &client,
            &property("lamp/switch", "command-state"),
            "the switch's reply",
            |t| t == "ok",
        )
        .await;
        assert_eq!(
            js(&client, FOCUS).await.as_str(),
            Some(switch_row),
            "focus stays on the switch"
        );
        expected = wanted.to_owned();
    }

    // A setpoint out of range: rejected, and the input shows the device's value again.
    let setpoint = find(&client, &property("thermostat/setpoint", "number-input")).await;
    let device_value = wait_text(
        &client,
        &property("thermostat/setpoint", "property-value"),
        "the setpoint",
        |t| t.ends_with("°C"),
    )
    .await;
    let device_number = device_value.trim_end_matches("°C").trim().to_owned();
    // As a user does: select what the input shows, type over it, Enter.
    setpoint.click().await.expect("focusing the setpoint");
    let control: char = Key::Control.into();
    let mut keys = KeyActions::new("keyboard".to_owned())
        .then(KeyAction::Down { value: control })
        .then(KeyAction::Down { value: 'a' })
        .then(KeyAction::Up { value: 'a' })
        .then(KeyAction::Up { value: control });
    for key in ['9', '9', Key::Enter.into()] {
        keys = keys
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    client
        .perform_actions(keys)
        .await
        .expect("typing 99, Enter");
    wait_text(
        &client,
        &property("thermostat/setpoint", "command-state"),
        "the setpoint's rejection",
        |t| t.starts_with("rejected"),
    )
    .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shown = setpoint
            .prop("value")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let parsed = |s: &str| s.parse::<f64>().ok();
        if parsed(&shown).is_some() && parsed(&shown) == parsed(&device_number) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the rejection the input shows {shown:?}, the device {device_number:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Reboot asks first, with focus on Confirm; Cancel closes the question and gives
    // focus back to the button.
    let reboot = property("system/reboot", "action");
    let on_confirm = |v: &serde_json::Value| v.as_str() == Some("property-system-reboot confirm");
    click(&client, &reboot).await;
    wait_js(&client, FOCUS, "focus on Confirm", on_confirm).await;
    screenshot(&client, "device-reboot-confirm").await;
    click(&client, &property("system/reboot", "cancel")).await;
    assert!(
        client
            .find(Locator::Css(&property("system/reboot", "confirm-step")))
            .await
            .is_err(),
        "Cancel closes the question"
    );
    assert_eq!(
        js(&client, FOCUS).await.as_str(),
        Some("property-system-reboot action"),
        "focus is back on the reboot button"
    );
    // Confirmed with Enter: the device reboots (mosquitto_sub sees it announce `init`).
    let states = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.tcp.to_string()])
        .args(["-t", "iot/5/sim-001/$state", "-C", "2", "-W", "60"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs");
    click(&client, &reboot).await;
    wait_js(&client, FOCUS, "focus on Confirm again", on_confirm).await;
    press(&client, Key::Enter.into()).await;
    let seen = states
        .wait_with_output()
        .await
        .expect("mosquitto_sub's output");
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.lines().any(|l| l == "init"),
        "the device rebooted after the confirmation: its $state went {seen:?}"
    );

    // Phone width, dark: the chart keeps its labels.
    client.set_window_size(390, 844).await.expect("phone width");
    click(&client, "[data-testid=theme-toggle]").await;
    wait_text(&client, "[data-testid=theme-toggle]", "dark mode", |t| {
        t.ends_with("dark")
    })
    .await;
    wait_js(&client, labels, "value labels at phone width", |v| {
        v.as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    screenshot(&client, "device-chart-phone-dark").await;
}
