//! The dashboard under load, measured in Chromium (a benchmark, not a pass/fail test):
//! `device-sim` with many devices publishing telemetry, the dashboard open on a page, and
//! for a while: the frame rate (frames counted by `requestAnimationFrame` in the page),
//! the main thread's busy time (Chrome DevTools Protocol `Performance.getMetrics`
//! `TaskDuration`, through chromedriver), and long tasks (`PerformanceObserver`).
//!
//! It runs only when `DASHBOARD_LOAD` is set, with the same variables as the `e2e` module:
//!
//! ```text
//! trunk build --release --dist target/dashboard-release
//! cargo build -p broker-server -p native-client --bin broker-server --bin device-sim
//! DASHBOARD_LOAD=1 DASHBOARD_DIST=target/dashboard-release \
//!   DASHBOARD_BROKER=target/debug/broker-server DEVICE_SIM=target/debug/device-sim \
//!   CHROMEDRIVER=/usr/bin/chromedriver \
//!   cargo test -p dashboard --test browser -- load:: --nocapture
//! ```
//!
//! `DASHBOARD_LOAD_DEVICES` (default 200), `DASHBOARD_LOAD_RATE` (messages/s per device,
//! default 10) and `DASHBOARD_LOAD_SECS` (default 20) change the load;
//! `DASHBOARD_LOAD_WAIT` (seconds, default 600) bounds the wait for every device to be
//! listed ready. The figures are printed once per page (devices, the devices searched
//! and sorted by last seen, explorer, device page), with how long the list took to show
//! every device ready and how many device rows the DOM held.

use std::time::Duration;

use fantoccini::{Client, Locator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, Broker, ChromeDriver, click, device, open, scratch_dir, screenshot};

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn frame_rate_and_main_thread_time_under_device_load() {
    let (Some(_), Some(dist), Some(broker), Some(sim), Some(driver)) = (
        std::env::var_os("DASHBOARD_LOAD"),
        std::env::var_os("DASHBOARD_DIST"),
        std::env::var_os("DASHBOARD_BROKER"),
        std::env::var_os("DEVICE_SIM"),
        std::env::var_os("CHROMEDRIVER"),
    ) else {
        eprintln!("skipped: a benchmark; see the module docs for how to run it");
        return;
    };
    let devices: u32 = var("DASHBOARD_LOAD_DEVICES", 200);
    let rate: f64 = var("DASHBOARD_LOAD_RATE", 10.0);
    let secs: u64 = var("DASHBOARD_LOAD_SECS", 20);
    let scratch = scratch_dir("dashboard-load");
    // A session queue large enough for the start-up burst of every device (each
    // publishes `$state`, `$description` and its values at QoS 1 within a second): the
    // default 1,000 queued messages drops the newest, often a device's `ready`, when
    // thousands of devices start while the page is open. This measures the page.
    let broker = Broker::start_with(
        broker.as_ref(),
        dist.as_ref(),
        &scratch.join("broker"),
        &["limits.max_queued_messages=1000000".to_owned()],
    )
    .await;
    let _sim = support::device_sim(
        sim.as_ref(),
        broker.tcp,
        devices,
        rate,
        &scratch.join("device-sim.log"),
    );
    let driver = ChromeDriver::start(&driver).await;
    let client = driver.session().await;
    open(&client, &broker.page(""), "the dashboard").await;
    // The list is windowed: wait for the count, not for the last device's row.
    let wait: u64 = var("DASHBOARD_LOAD_WAIT", 600);
    let all_ready = format!("{devices} devices, {devices} ready");
    let started = std::time::Instant::now();
    loop {
        let seen = support::text(&client, "[data-testid=devices-count]").await;
        if seen.as_deref() == Some(all_ready.as_str()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(wait) {
            screenshot(&client, "load-failed-ready").await;
            panic!("after {wait} s the list shows {seen:?}, not {all_ready:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows = client
        .execute(
            "return document.querySelectorAll('[data-testid=device-list] > li').length",
            Vec::new(),
        )
        .await
        .expect("the row count");
    println!(
        "load: every device listed ready {:.0} s after the page opened; {} device rows in the DOM",
        started.elapsed().as_secs_f64(),
        rows
    );
    let session = client.session_id().await.ok().flatten().expect("a session");
    cdp(&driver.url, &session, "Performance.enable").await;

    println!("load: {devices} devices × {rate} msg/s, {secs} s per page");
    for (page, nav) in [
        ("devices", None),
        ("devices sorted", None),
        ("explorer", Some("[data-testid=nav-explorer]")),
        ("device page", Some("[data-testid=nav-devices]")),
    ] {
        if let Some(nav) = nav {
            click(&client, nav).await;
        }
        if page == "devices sorted" {
            // A search (ids containing "1"), sorted by last seen (the
            // order that moves the most).
            let search = client
                .find(Locator::Css("[data-testid=device-search]"))
                .await
                .expect("the device search");
            search.send_keys("1").await.expect("typing");
            client
                .find(Locator::Css("[data-testid=device-sort]"))
                .await
                .expect("the sort")
                .select_by_value("last-seen")
                .await
                .expect("sorting by last seen");
        }
        if page == "device page" {
            click(&client, &device("sim-001", "device-open")).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = task_duration(&driver.url, &session).await;
        let probe = measure(&client, secs).await;
        let after = task_duration(&driver.url, &session).await;
        let busy = (after - before) / probe.secs;
        println!(
            "load: {page:<12} {:.1} frames/s, main thread busy {:.0}% ({:.0} ms/s), \
             {} long tasks ({:.0} ms), {} messages applied in {} frames",
            probe.frames / probe.secs,
            busy * 100.0,
            busy * 1000.0,
            probe.long_tasks,
            probe.long_ms,
            probe.messages,
            probe.batches,
        );
        if page == "explorer" {
            let summary = support::text(&client, "[data-testid=explorer-summary]").await;
            println!("load: explorer tree: {}", summary.unwrap_or_default());
        }
        screenshot(&client, &format!("load-{}", page.replace(' ', "-"))).await;
    }
    let _ = client.close().await;
}

/// What the in-page probe measured.
struct Probe {
    secs: f64,
    frames: f64,
    long_tasks: u64,
    long_ms: f64,
    messages: u64,
    batches: u64,
}

/// Counts frames and long tasks in the page for `secs` seconds.
async fn measure(client: &Client, secs: u64) -> Probe {
    let script = r#"
        const [secs, done] = arguments;
        let frames = 0, longTasks = 0, longMs = 0;
        const observer = new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) { longTasks += 1; longMs += entry.duration; }
        });
        observer.observe({ type: "longtask" });
        const stats = () => window.__dashboardFrames ? window.__dashboardFrames() : [0, 0];
        const [batches0, messages0] = stats();
        const start = performance.now();
        const tick = () => {
            frames += 1;
            if (performance.now() - start < secs * 1000) { requestAnimationFrame(tick); return; }
            observer.disconnect();
            const [batches1, messages1] = stats();
            done([(performance.now() - start) / 1000, frames, longTasks, longMs,
                  messages1 - messages0, batches1 - batches0]);
        };
        requestAnimationFrame(tick);
    "#;
    let value = client
        .execute_async(script, vec![serde_json::json!(secs)])
        .await
        .expect("the probe runs");
    let n = |i: usize| value[i].as_f64().unwrap_or(0.0);
    Probe {
        secs: n(0),
        frames: n(1),
        long_tasks: n(2) as u64,
        long_ms: n(3),
        messages: n(4) as u64,
        batches: n(5) as u64,
    }
}

/// The renderer's cumulative main-thread task time in seconds (CDP `TaskDuration`).
async fn task_duration(driver: &str, session: &str) -> f64 {
    let metrics = cdp(driver, session, "Performance.getMetrics").await;
    metrics["value"]["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "TaskDuration"))
        .and_then(|m| m["value"].as_f64())
        .expect("TaskDuration in Performance.getMetrics")
}

/// Sends a Chrome DevTools Protocol command through chromedriver's `goog/cdp/execute`.
async fn cdp(driver: &str, session: &str, cmd: &str) -> serde_json::Value {
    let addr = driver.trim_start_matches("http://");
    let body = serde_json::json!({ "cmd": cmd, "params": {} }).to_string();
    let request = format!(
        "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("chromedriver");
    stream.write_all(request.as_bytes()).await.expect("write");
    // chromedriver may keep the connection open: read the head, then Content-Length.
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "{cmd}: chromedriver closed the connection");
        response.extend_from_slice(&buf[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .expect("a Content-Length");
            break (end + 4, length);
        }
    };
    while response.len() < head_len + body_len {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "{cmd}: chromedriver closed the connection");
        response.extend_from_slice(&buf[..n]);
    }
    let body = &response[head_len..head_len + body_len];
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{cmd}: {e}: {}", String::from_utf8_lossy(&response)))
}
