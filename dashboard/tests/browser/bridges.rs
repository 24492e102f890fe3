//! The broker page's "Bridges" card in a real browser: `broker-server` bridged to a
//! real Eclipse Mosquitto started by the test on a free loopback port. Logged out, the
//! card shows the bridge connected (from the retained `$SYS/broker/bridges/edge/state`);
//! logged in as operator, the admin API's figures too (the remote address, a message
//! that came in from mosquitto); mosquitto stopped, the card shows it disconnected.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER` and
//! `CHROMEDRIVER` set; without them it passes without running and says so. Needs
//! `/usr/sbin/mosquitto` and `mosquitto_pub` (`cargo xtask setup`).

use std::path::Path;
use std::process::Stdio;

use fantoccini::Locator;
use tokio::process::{Child, Command};

use crate::support::{
    self, Broker, ChromeDriver, click, free_port, mosquitto_pub, open, scratch_dir, setup,
    wait_for_port, wait_text,
};

/// The admin token the test's broker is started with.
const ADMIN_TOKEN: &str = "bridges-e2e-token";

/// Where Debian's `mosquitto` package puts the broker.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Starts mosquitto with one listener on `port` (config and log in `dir`); killed when
/// dropped.
async fn mosquitto(dir: &Path, port: u16) -> Child {
    assert!(
        Path::new(MOSQUITTO).is_file(),
        "{MOSQUITTO} is missing: run `cargo xtask setup` (Debian package mosquitto)"
    );
    let conf = dir.join("mosquitto.conf");
    // `user root`: as root mosquitto would switch to the `mosquitto` user, who cannot
    // read the test's files; as any other user it has no effect.
    std::fs::write(
        &conf,
        format!("user root\nallow_anonymous true\nlistener {port} 127.0.0.1\n"),
    )
    .expect("mosquitto.conf");
    let log = std::fs::File::create(dir.join("mosquitto.log")).expect("mosquitto's log");
    let mut child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto starts");
    wait_for_port(port, "mosquitto", &mut child).await;
    child
}

#[tokio::test]
async fn the_bridges_card_follows_a_bridge_to_mosquitto() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-bridges");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("the test's directory");
    let remote_port = free_port();
    let mut remote = mosquitto(&scratch, remote_port).await;
    let broker = Broker::start_with(
        &setup.broker,
        &setup.dist,
        &scratch.join("broker"),
        &[
            format!("http.admin_token={ADMIN_TOKEN:?}"),
            format!(
                "bridges=[{{name = \"edge\", address = [\"127.0.0.1:{remote_port}\"], \
                 topics = [\"edge/# both 0\"], restart_initial_ms = 200, \
                 restart_max_ms = 1000}}]"
            ),
        ],
    )
    .await;
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page("#/broker"), "the broker page").await;

    // Logged out: name and state from $SYS, no admin figures.
    let edge = "[data-testid=bridge-row][data-name=edge]";
    let state = format!("{edge} [data-testid=bridge-state]");
    wait_text(&client, &state, "the bridge connected", |t| {
        t == "connected"
    })
    .await;
    let class = client
        .find(Locator::Css(&state))
        .await
        .expect("the state badge")
        .attr("class")
        .await
        .expect("its class");
    assert_eq!(class.as_deref(), Some("badge status-connected"));
    assert!(
        client
            .find(Locator::Css(&format!("{edge} [data-testid=bridge-remote]")))
            .await
            .is_err(),
        "the admin API's figures are for the operator only"
    );

    // Logged in: the remote address, and a message that came in from mosquitto.
    client
        .find(Locator::Css("[data-testid=operator-secret]"))
        .await
        .expect("the login form")
        .send_keys(ADMIN_TOKEN)
        .await
        .expect("typing the token");
    click(&client, "[data-testid=operator-login-submit]").await;
    wait_text(
        &client,
        &format!("{edge} [data-testid=bridge-remote]"),
        "the remote address",
        |t| t == format!("127.0.0.1:{remote_port}"),
    )
    .await;
    mosquitto_pub(remote_port, "edge/hello", Some("from mosquitto"), false).await;
    wait_text(
        &client,
        &format!("{edge} [data-testid=bridge-in]"),
        "a message in from mosquitto",
        |t| t == "1",
    )
    .await;
    let _ = client
        .execute(
            "document.querySelector('[data-testid=bridges]').scrollIntoView()",
            Vec::new(),
        )
        .await;
    support::screenshot(&client, "broker-bridges").await;

    // Mosquitto gone: the bridge is shown disconnected, with why.
    remote.start_kill().expect("mosquitto is killed");
    let _ = remote.wait().await;
    wait_text(&client, &state, "the bridge disconnected", |t| {
        t == "disconnected"
    })
    .await;
    wait_text(
        &client,
        &format!("{edge} [data-testid=bridge-error]"),
        "why it is disconnected",
        |t| !t.is_empty(),
    )
    .await;
    support::screenshot(&client, "broker-bridges-disconnected").await;
    drop(broker);
}
