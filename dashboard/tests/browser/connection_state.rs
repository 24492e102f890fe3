//! The dashboard never shows stale data as live, in a real browser against a real
//! broker: a device that is gone is listed after the live ones; when the broker goes
//! away every view says so (a banner with the reason and
//! what to do, device rows greyed with their state unknown and "last seen" as a clock
//! time, the explorer marked not live) and recovers when it comes back; a refused login
//! shows the broker's reason in place and what to change, and new credentials connect.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM` and `CHROMEDRIVER` set; without them it passes without running and says so.

use std::path::Path;

use fantoccini::Locator;

use crate::support::{
    self, Broker, ChromeDriver, click, device, mosquitto_pub, open, scratch_dir, screenshot, setup,
    text, type_into, wait_gone, wait_text,
};

const STATUS: &str = "[data-testid=connection-status]";
const BANNER: &str = "[data-testid=connection-banner-text]";

#[tokio::test]
async fn a_stopped_broker_turns_every_view_stale_until_it_returns() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-stale");
    let mut broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    let _sim = support::device_sim(
        &setup.device_sim,
        broker.tcp,
        2,
        4.0,
        &scratch.join("device-sim.log"),
    );
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page(""), "the dashboard").await;

    // Live: no banner, a ready device seen seconds ago, the explorer live.
    wait_text(&client, STATUS, "connected", |t| t == "connected").await;
    wait_text(&client, &device("sim-001", "device-state"), "ready", |t| {
        t == "ready"
    })
    .await;
    wait_text(&client, &device("sim-001", "device-seen"), "an age", |t| {
        t.ends_with("ago")
    })
    .await;
    wait_gone(&client, BANNER, "no banner while connected").await;
    // A device that is gone is listed after the live ones, although its id sorts first.
    mosquitto_pub(broker.tcp, "iot/5/aaa-gone/$state", Some("lost"), true).await;
    wait_for_order(&client, "device-sim-001,device-sim-002,device-aaa-gone").await;
    click(&client, "[data-testid=nav-explorer]").await;
    wait_text(
        &client,
        "[data-testid=explorer-live]",
        "explorer live",
        |t| t == "live",
    )
    .await;
    click(&client, "[data-testid=nav-devices]").await;

    broker.stop().await;

    // The banner: what happened, why, and that what is shown is old.
    let banner = wait_text(&client, BANNER, "the lost-connection banner", |t| {
        t.contains("Connection to the broker lost")
    })
    .await;
    assert!(banner.contains("not live"), "{banner}");
    assert!(
        banner.contains("check that the broker is running"),
        "{banner}"
    );
    wait_text(&client, STATUS, "reconnecting", |t| t == "reconnecting").await;
    // The rows: not "ready" any more, marked stale, the time frozen as a clock time.
    wait_text(
        &client,
        &device("sim-001", "device-state"),
        "state unknown",
        |t| t == "unknown",
    )
    .await;
    wait_text(
        &client,
        &device("sim-001", "device-stale"),
        "stale mark",
        |t| t == "stale",
    )
    .await;
    let seen = wait_text(&client, &device("sim-001", "device-seen"), "seen at", |t| {
        t.starts_with("seen at ")
    })
    .await;
    let count = text(&client, "[data-testid=devices-count]").await;
    assert!(
        count
            .as_deref()
            .is_some_and(|c| c.contains("not connected")),
        "{count:?}"
    );
    screenshot(&client, "devices-disconnected").await;
    // The explorer says so too.
    click(&client, "[data-testid=nav-explorer]").await;
    wait_text(
        &client,
        "[data-testid=explorer-live]",
        "explorer not live",
        |t| t == "not live",
    )
    .await;
    wait_text(&client, "[data-testid=not-live]", "explorer note", |t| {
        t.starts_with("Not live")
    })
    .await;
    screenshot(&client, "explorer-disconnected").await;
    // "Last seen" does not move while nothing arrives.
    click(&client, "[data-testid=nav-devices]").await;
    assert_eq!(
        text(&client, &device("sim-001", "device-seen")).await,
        Some(seen)
    );

    // Back: the banner goes, the device shows its reported state again (which one is
    // device-sim's business: the broker may have published its `lost` will on the way
    // down) and is heard from again.
    broker.start_again().await;
    wait_text(&client, STATUS, "connected again", |t| t == "connected").await;
    wait_gone(&client, BANNER, "no banner once reconnected").await;
    wait_text(
        &client,
        &device("sim-001", "device-state"),
        "a known state",
        |t| t != "unknown",
    )
    .await;
    wait_text(
        &client,
        &device("sim-001", "device-seen"),
        "an age again",
        |t| t.ends_with("ago"),
    )
    .await;
    client.close().await.expect("the session closes");
    broker.stop().await;
}

#[tokio::test]
async fn a_refused_login_shows_the_reason_and_new_credentials_connect() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-login");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let passwords = scratch.join("passwords");
    add_user(&setup.broker, &passwords, "alice", "right-password").await;
    let mut broker = Broker::start_with(
        &setup.broker,
        &setup.dist,
        &scratch.join("broker"),
        &[format!(
            "auth.password_file={:?}",
            passwords.display().to_string()
        )],
    )
    .await;
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page(""), "the dashboard").await;

    // Anonymous: refused, said in place (not only in a tooltip), and no "No devices yet."
    wait_text(&client, STATUS, "refused", |t| t == "refused").await;
    let banner = wait_text(&client, BANNER, "the refusal banner", |t| {
        t.contains("refused the connection")
    })
    .await;
    assert!(
        banner.contains("Check the user name and password"),
        "{banner}"
    );
    wait_text(
        &client,
        "[data-testid=devices-connecting]",
        "no claim of an empty list",
        |t| t.starts_with("Not connected"),
    )
    .await;
    assert!(
        client
            .find(Locator::Css("[data-testid=devices-empty]"))
            .await
            .is_err(),
        "the list claims there are no devices"
    );

    // A wrong password: the broker's reason, in the banner, on the settings page.
    click(&client, "[data-testid=banner-settings]").await;
    type_into(&client, "[data-testid=settings-username]", "alice").await;
    type_into(&client, "[data-testid=settings-password]", "wrong").await;
    click(&client, "[data-testid=settings-save]").await;
    let banner = wait_text(&client, BANNER, "bad password reason", |t| {
        t.contains("Bad User Name or Password")
    })
    .await;
    assert!(
        banner.contains("Check the user name and password"),
        "{banner}"
    );
    screenshot(&client, "login-refused").await;

    // The right one connects, and the banner goes.
    let password = "[data-testid=settings-password]";
    type_into(&client, password, "right-password").await;
    click(&client, "[data-testid=settings-save]").await;
    wait_text(&client, STATUS, "connected with the password", |t| {
        t == "connected"
    })
    .await;
    wait_gone(&client, BANNER, "no banner once logged in").await;
    client.close().await.expect("the session closes");
    broker.stop().await;
}

/// Waits until the device rows' test ids, in page order, are `expected` (joined by `,`).
async fn wait_for_order(client: &fantoccini::Client, expected: &str) {
    let deadline = std::time::Instant::now() + support::PATIENCE;
    loop {
        let order = client
            .execute(
                "return [...document.querySelectorAll('.device-row')]\
                 .map(row => row.dataset.testid).join(',')",
                Vec::new(),
            )
            .await
            .expect("the rows' order");
        if order.as_str() == Some(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rows are in the order {order}, not {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Adds `user` with `password` to the password file at `file` with `broker-server passwd`
/// (the password read from a pipe).
async fn add_user(broker: &Path, file: &Path, user: &str, password: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(broker)
        .arg("passwd")
        .arg(file)
        .args(["add", user])
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("broker-server passwd starts");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("the password is written");
    drop(stdin);
    let status = child.wait().await.expect("broker-server passwd ends");
    assert!(status.success(), "broker-server passwd failed: {status}");
}
