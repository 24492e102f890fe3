//! History from the broker, in a real browser against a real broker: after device-sim
//! has published for a while and stopped, reloading a device page shows a chart with
//! the points from before the reload (nothing live can have drawn them: the devices are
//! gone, only each property's retained value arrives), and the explorer's history of a
//! property topic opened by a deep link holds the recorded messages too.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM` and `CHROMEDRIVER` set; without them it passes without running and says so.

use fantoccini::Locator;

use crate::support::{self, Broker, ChromeDriver, scratch_dir, setup, wait_text};

const RANGE: &str = "[data-testid=chart] [data-testid=chart-range]";
const LINE: &str = "[data-testid=chart] [data-testid=chart-line]";

/// The sample count of the chart's caption ("12 samples, …"), 0 when it has none.
fn samples(caption: &str) -> usize {
    caption
        .split_once(" samples")
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The points of the chart's SVG line.
async fn points(client: &fantoccini::Client) -> usize {
    let line = client
        .find(Locator::Css(LINE))
        .await
        .expect("the chart line");
    let points = line
        .attr("points")
        .await
        .expect("points")
        .unwrap_or_default();
    points.split_whitespace().count()
}

#[tokio::test]
async fn a_reloaded_device_page_shows_the_history_recorded_before() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-history");
    let mut broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    let mut sim = support::device_sim(
        &setup.device_sim,
        broker.tcp,
        1,
        10.0,
        &scratch.join("device-sim.log"),
    );
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    let base = broker.page("");
    client
        .goto(&format!("{base}#/device/sim-001"))
        .await
        .expect("the device page loads");

    // Live: the chart fills while the device publishes.
    let caption = wait_text(&client, RANGE, "a chart of 8 live samples", |t| {
        samples(t) >= 8
    })
    .await;
    let before = samples(&caption);
    // The property charted: the legend's ticked entry (`node/property`).
    let path = client
        .find(Locator::Css("[data-testid=chart-pick]:has(input:checked)"))
        .await
        .expect("a property ticked in the legend")
        .attr("data-path")
        .await
        .expect("its path")
        .expect("a property");

    // The device goes away; what reaches a new page live is one retained value per
    // property, so a chart of many points after the reload comes from the broker.
    sim.kill().await.expect("device-sim stops");
    client.refresh().await.expect("reload");
    let caption = wait_text(&client, RANGE, "the backfilled chart", |t| {
        samples(t) >= before
    })
    .await;
    assert!(points(&client).await >= before, "{caption}");

    // The explorer's history of that property's topic, by a deep link.
    let topic = format!("iot/5/sim-001/{path}");
    client
        .goto(&format!("{base}#/explorer?topic={topic}"))
        .await
        .expect("the explorer loads");
    client.refresh().await.expect("reload");
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let mut seen = 0;
    while seen < 3 {
        seen = client
            .find_all(Locator::Css("[data-testid=history] li"))
            .await
            .map_or(0, |items| items.len());
        assert!(
            std::time::Instant::now() < deadline,
            "the explorer history of {topic} holds {seen} messages"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    client.close().await.ok();
    broker.stop().await;
}
