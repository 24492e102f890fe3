//! The development loop works: the page `cargo xtask dev` serves (trunk's watch build,
//! served by the debug broker next to its `/mqtt`) connects in headless Chromium and
//! shows the devices `device-sim` publishes, so MQTT flows both ways through it.
//!
//! This is the check that `trunk serve` with a `/mqtt` proxy failed: the page loaded,
//! but trunk's WebSocket proxy dropped the `mqtt` subprotocol answer and Chromium
//! refused the handshake, so the header said "failed".
//!
//! `cargo xtask dev --check` (the `browser-dev` step of `cargo xtask test`) starts the
//! loop on free ports and runs this with `DASHBOARD_DEV_URL` and `CHROMEDRIVER` set;
//! without them (a plain `cargo test`) it passes without running and says so.

use crate::support::{ChromeDriver, device, screenshot, wait_text};

#[tokio::test]
async fn the_dev_loop_page_connects_and_shows_devices() {
    let (Some(url), Some(chromedriver)) = (
        std::env::var_os("DASHBOARD_DEV_URL"),
        std::env::var_os("CHROMEDRIVER"),
    ) else {
        eprintln!(
            "skipped: needs DASHBOARD_DEV_URL and CHROMEDRIVER; run `cargo xtask dev --check`"
        );
        return;
    };
    let url = url.to_string_lossy().into_owned();
    let driver = ChromeDriver::start(&chromedriver).await;
    let client = driver.session().await;
    client.goto(&url).await.expect("the dev page loads");
    wait_text(
        &client,
        "[data-testid=connection-status]",
        "connected through the dev loop",
        |t| t == "connected",
    )
    .await;
    // A device published over TCP reaches the page: subscriptions and deliveries work.
    wait_text(
        &client,
        &device("sim-001", "device-state"),
        "a device-sim device ready",
        |t| t == "ready",
    )
    .await;
    screenshot(&client, "dev-loop").await;
    client.close().await.expect("the session closes");
}
