//! Deep links in a real browser: every page has a URL (`#/devices`, `#/device/{id}`,
//! `#/explorer?topic=…`, `#/broker`, `#/settings`) that opens it, a reload keeps the
//! place, Back and Forward move between pages; and the favicon exists.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM` and `CHROMEDRIVER` set; without them it passes without running and says so.

use fantoccini::Locator;

use crate::support::{
    self, Broker, ChromeDriver, click, device, fragment, scratch_dir, setup, wait_text,
};

#[tokio::test]
async fn deep_links_survive_a_reload_and_back_works() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-navigation");
    let mut broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
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
    let device_page = "[data-testid=device-page] [data-testid=device-state]";

    // A device's link opens its page, and a reload keeps it.
    client
        .goto(&format!("{base}#/device/sim-001"))
        .await
        .expect("the device link loads");
    wait_text(&client, device_page, "the linked device", |t| t == "ready").await;
    client.refresh().await.expect("reload");
    wait_text(&client, device_page, "the device after a reload", |t| {
        t == "ready"
    })
    .await;
    assert_eq!(fragment(&client).await, "#/device/sim-001");

    // Another page, then Back returns to the device, Forward to the explorer.
    click(&client, "[data-testid=nav-explorer]").await;
    wait_text(
        &client,
        "[data-testid=explorer-summary]",
        "explorer",
        |_| true,
    )
    .await;
    assert_eq!(fragment(&client).await, "#/explorer");
    client.back().await.expect("Back");
    wait_text(&client, device_page, "the device after Back", |t| {
        t == "ready"
    })
    .await;
    assert_eq!(fragment(&client).await, "#/device/sim-001");
    client.forward().await.expect("Forward");
    wait_text(
        &client,
        "[data-testid=explorer-summary]",
        "explorer again",
        |_| true,
    )
    .await;

    // The device page's own back link goes to the list, which has its URL.
    client.back().await.expect("Back");
    click(&client, "[data-testid=back]").await;
    wait_text(
        &client,
        &device("sim-001", "device-state"),
        "the list",
        |t| t == "ready",
    )
    .await;
    assert_eq!(fragment(&client).await, "#/devices");

    // A topic's link selects it in the explorer; the selection is in the URL and a
    // reload keeps it.
    let topic = "iot/5/sim-001/$state";
    client
        .goto(&format!("{base}#/explorer?topic={topic}"))
        .await
        .expect("the topic link loads");
    wait_text(
        &client,
        "[data-testid=topic-name]",
        "the linked topic",
        |t| t == topic,
    )
    .await;
    client.refresh().await.expect("reload");
    wait_text(
        &client,
        "[data-testid=topic-name]",
        "the topic after a reload",
        |t| t == topic,
    )
    .await;
    wait_text(
        &client,
        &format!("[data-topic=\"{topic}\"].selected [data-testid=tree-label]"),
        "the selected row",
        |t| t == "$state",
    )
    .await;
    // Selecting another topic updates the URL.
    click(&client, "[data-testid=explorer-search]").await;
    client
        .find(Locator::Css("[data-testid=explorer-search]"))
        .await
        .expect("search box")
        .send_keys("iot/5/sim-001/$description")
        .await
        .expect("typing a search");
    click(
        &client,
        "[data-topic=\"iot/5/sim-001/$description\"] [data-testid=tree-label]",
    )
    .await;
    wait_text(
        &client,
        "[data-testid=topic-name]",
        "the clicked topic",
        |t| t.ends_with("$description"),
    )
    .await;
    assert_eq!(
        fragment(&client).await,
        "#/explorer?topic=iot/5/sim-001/$description"
    );

    // The broker view and the settings have links too.
    client
        .goto(&format!("{base}#/broker"))
        .await
        .expect("the broker link");
    wait_text(&client, "[data-testid=broker] h2", "broker view", |t| {
        t.starts_with("Broker")
    })
    .await;
    client
        .goto(&format!("{base}#/settings"))
        .await
        .expect("the settings link");
    wait_text(&client, "[data-testid=settings] h2", "settings", |t| {
        t == "Settings"
    })
    .await;

    // The favicon the page names is served (no 404 in the console).
    let status = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const icon = document.querySelector('link[rel=icon]'); \
             if (!icon) { done('no <link rel=icon>'); } \
             else { fetch(icon.href).then(r => done(r.status + ' ' + r.headers.get('content-type')), e => done(String(e))); }",
            Vec::new(),
        )
        .await
        .expect("the favicon fetch runs");
    assert_eq!(status.as_str(), Some("200 image/svg+xml"), "{status}");

    client.close().await.expect("the session closes");
    broker.stop().await;
}
