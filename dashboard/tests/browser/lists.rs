//! The dashboard's lists at scale and by keyboard, end to end: the trunk build served by
//! a real `broker-server`, `device-sim` devices, `mosquitto_pub` as an independent
//! publisher, headless Chromium over WebDriver.
//!
//! - A thousand devices (plus three that are then killed, so the broker publishes their
//!   wills): only a screenful of rows is in the DOM; search, the state filter, the sort
//!   and "lost last" choose and order the rows; opening a device moves focus into its
//!   page.
//! - The explorer: arrow keys, Home and End move through the tree (`role=tree`) with
//!   focus staying on it; a topic whose retained message is deleted and that had no other
//!   traffic leaves the tree, one with other traffic stays; JSON keeps the publisher's
//!   key order; left and opened again, it has kept its tree, did not count what was
//!   published meanwhile, and does not count the retained messages sent again.
//!
//! Runs with the variables of the `e2e` module (`DASHBOARD_DIST`, `DASHBOARD_BROKER`,
//! `DEVICE_SIM`, `CHROMEDRIVER`); without them it passes without running and says so.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator, key::Key};

use crate::support::{
    self, Broker, ChromeDriver, click, device, mosquitto_pub, open, scratch_dir, screenshot, setup,
    text, type_into, wait_gone, wait_text,
};

/// How long a thousand devices may take to connect and describe themselves on a loaded
/// machine.
const MANY_PATIENCE: Duration = Duration::from_secs(240);

/// The names of the device rows in the DOM, top to bottom, with whether each is
/// subdued as gone.
async fn rows(client: &Client) -> Vec<(String, bool)> {
    let script = r#"
        return Array.from(document.querySelectorAll('[data-testid=device-list] > li'))
            .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
            .map(li => [li.querySelector('[data-testid=device-name]').textContent,
                        li.classList.contains('gone')]);
    "#;
    let value = client.execute(script, Vec::new()).await.expect("the rows");
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_owned(),
                pair[1].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// Polls [`rows`] until `ok` holds (panics with the last rows after [`MANY_PATIENCE`]).
async fn wait_rows(
    client: &Client,
    what: &str,
    ok: impl Fn(&[(String, bool)]) -> bool,
) -> Vec<(String, bool)> {
    let deadline = Instant::now() + MANY_PATIENCE;
    loop {
        let seen = rows(client).await;
        if ok(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{what}")).await;
            panic!("{what}: rows {seen:?} (screenshot: {})", shot.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the text at `css` like [`wait_text`], with [`MANY_PATIENCE`].
async fn wait_long(client: &Client, css: &str, what: &str, wanted: &str) {
    let deadline = Instant::now() + MANY_PATIENCE;
    loop {
        let seen = text(client, css).await;
        if seen.as_deref() == Some(wanted) {
            return;
        }
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{what}")).await;
            panic!(
                "{what}: `{css}` shows {seen:?}, not {wanted:?} (screenshot: {})",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn select(client: &Client, css: &str, value: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("selecting {value} in {css}: {e}"));
}

fn names(rows: &[(String, bool)]) -> Vec<&str> {
    rows.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn a_thousand_devices_are_windowed_searched_filtered_and_sorted() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-lists-devices");
    // The default session queue (1,000 messages, newest dropped) can lose a device's
    // `ready` when a thousand devices start at once and the page is slow to take them
    // (a loaded machine); this test is about the list, so the queue holds them all.
    let broker = Broker::start_with(
        &setup.broker,
        &setup.dist,
        &scratch.join("broker"),
        &["limits.max_queued_messages=1000000".to_owned()],
    )
    .await;
    let _many = support::device_sim(
        &setup.device_sim,
        broker.tcp,
        1000,
        0.05,
        &scratch.join("device-sim.log"),
    );
    let mut old = support::device_sim_with(
        &setup.device_sim,
        broker.tcp,
        3,
        0.2,
        &scratch.join("device-sim-old.log"),
        &["--prefix", "old"],
    );
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page("#/devices"), "the dashboard").await;
    let count = "[data-testid=devices-count]";
    wait_long(&client, count, "all ready", "1003 devices, 1003 ready").await;

    // Windowed: a screenful of rows exists, not a thousand.
    let in_dom = rows(&client).await.len();
    assert!(
        (5..=40).contains(&in_dom),
        "{in_dom} device rows in the DOM for 1003 devices"
    );
    let height = client
        .execute(
            "return document.querySelector('[data-testid=device-list]').offsetHeight",
            Vec::new(),
        )
        .await
        .expect("the list's height");
    assert_eq!(
        height.as_f64(),
        Some(1003.0 * 44.0),
        "the list keeps its full height"
    );

    // The three old devices are killed: their wills say lost.
    old.start_kill().expect("device-sim (old) is killed");
    let _ = old.wait().await;
    wait_long(&client, count, "three lost", "1003 devices, 1000 ready").await;
    screenshot(&client, "devices-1000").await;

    // By name, lost last: sim-001 first; at the bottom the three lost, subdued.
    let top = wait_rows(&client, "sorted by name", |rows| {
        rows.first().is_some_and(|(name, _)| name == "sim-001")
    })
    .await;
    assert_eq!(names(&top[..3]), ["sim-001", "sim-002", "sim-003"]);
    client
        .execute(
            "const v = document.querySelector('[data-testid=device-viewport]'); \
             v.scrollTop = v.scrollHeight;",
            Vec::new(),
        )
        .await
        .expect("scrolling");
    let bottom = wait_rows(&client, "the end of the list", |rows| {
        rows.last().is_some_and(|(name, _)| name == "old-003")
    })
    .await;
    let end = &bottom[bottom.len() - 4..];
    assert_eq!(
        end,
        [
            ("sim-1000".to_owned(), false),
            ("old-001".to_owned(), true),
            ("old-002".to_owned(), true),
            ("old-003".to_owned(), true),
        ],
        "natural order (sim-1000 after sim-999), then the lost ones subdued"
    );

    // The state filter.
    select(&client, "[data-testid=device-filter]", "lost").await;
    let lost = wait_rows(&client, "lost only", |rows| rows.len() == 3).await;
    assert_eq!(names(&lost), ["old-001", "old-002", "old-003"]);
    wait_text(&client, "[data-testid=devices-shown]", "shown", |t| {
        t == "showing 3 of 1003"
    })
    .await;
    select(&client, "[data-testid=device-filter]", "all").await;

    // Search, by id, in natural order.
    type_into(&client, "[data-testid=device-search]", "SIM-10").await;
    let found = wait_rows(&client, "search", |rows| rows.len() == 11).await;
    assert_eq!(
        names(&found),
        [
            "sim-100", "sim-101", "sim-102", "sim-103", "sim-104", "sim-105", "sim-106", "sim-107",
            "sim-108", "sim-109", "sim-1000"
        ]
    );
    wait_text(&client, "[data-testid=devices-shown]", "shown", |t| {
        t == "showing 11 of 1003"
    })
    .await;

    // Lost ones among the others when "lost last" is off: by name, "old" < "sim".
    type_into(&client, "[data-testid=device-search]", "").await;
    click(&client, "[data-testid=device-gone-last]").await;
    let mixed = wait_rows(&client, "lost not last", |rows| {
        rows.first().is_some_and(|(name, _)| name == "old-001")
    })
    .await;
    assert_eq!(
        mixed[..4],
        [
            ("old-001".to_owned(), true),
            ("old-002".to_owned(), true),
            ("old-003".to_owned(), true),
            ("sim-001".to_owned(), false),
        ]
    );
    // Sorted by state, lost goes last again.
    select(&client, "[data-testid=device-sort]", "state").await;
    wait_rows(&client, "by state", |rows| {
        rows.first().is_some_and(|(name, _)| name == "sim-001")
    })
    .await;

    // Opening a device leaves focus in its page.
    click(&client, &device("sim-002", "device-open")).await;
    wait_text(
        &client,
        "[data-testid=device-title]",
        "the device page",
        |t| t == "sim-002",
    )
    .await;
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let inside = client
            .execute(
                "return !!document.activeElement.closest('[data-testid=device-page]')",
                Vec::new(),
            )
            .await
            .expect("the active element");
        if inside.as_bool() == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "focus is not in the device page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = client.close().await;
}

/// The selected topic and whether focus is on the tree (not on `<body>`).
async fn where_am_i(client: &Client) -> (String, String) {
    let topic = text(client, "[data-testid=topic-name]")
        .await
        .unwrap_or_default();
    let focus = client
        .execute(
            "const a = document.activeElement; \
             return a === document.body ? 'body' : (a.dataset.testid || a.tagName);",
            Vec::new(),
        )
        .await
        .expect("the active element");
    (topic, focus.as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_explorer_tree_by_keyboard_and_deleted_retained_topics() {
    let Some(setup) = setup() else {
        return;
    };
    let scratch = scratch_dir("dashboard-lists-explorer");
    let broker = Broker::start(&setup.broker, &setup.dist, &scratch.join("broker")).await;
    for (topic, payload) in [
        ("kb/a/x", "1"),
        ("kb/a/y", "2"),
        ("kb/b", "3"),
        ("kb/c", "4"),
    ] {
        mosquitto_pub(broker.tcp, topic, Some(payload), true).await;
    }
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page("#/explorer"), "the dashboard").await;
    wait_text(&client, "[data-testid=explorer-live]", "live", |t| {
        t == "live"
    })
    .await;
    // Traffic beside the retained message on kb/c; JSON on kb/j.
    mosquitto_pub(broker.tcp, "kb/c", Some("5"), false).await;
    mosquitto_pub(
        broker.tcp,
        "kb/j",
        Some(r#"{"z":1,"a":{"y":2,"b":3}}"#),
        false,
    )
    .await;
    let row = |topic: &str| format!("[data-testid=tree-row][data-topic=\"{topic}\"]");
    wait_text(
        &client,
        &format!("{} [data-testid=tree-count]", row("kb")),
        "kb's count",
        |t| t == "6",
    )
    .await;

    // Keyboard: click the top row, then arrows; focus stays on the tree.
    click(&client, &format!("{} [data-testid=tree-label]", row("kb"))).await;
    let tree = "explorer-tree";
    assert_eq!(
        where_am_i(&client).await,
        ("kb".to_owned(), tree.to_owned())
    );
    let steps = [
        (Key::Down, "kb/a"),
        (Key::Right, "kb/a/x"),
        (Key::Down, "kb/a/y"),
        (Key::Left, "kb/a"),
        (Key::Left, "kb/a"),
        (Key::Down, "kb/b"),
        (Key::End, "kb/j"),
        (Key::Up, "kb/c"),
        (Key::Home, "kb"),
    ];
    for (key, topic) in steps {
        client
            .active_element()
            .await
            .expect("the active element")
            .send_keys(&key.to_string())
            .await
            .expect("a key");
        let deadline = Instant::now() + support::PATIENCE;
        loop {
            let here = where_am_i(&client).await;
            if here == (topic.to_owned(), tree.to_owned()) {
                break;
            }
            assert_ne!(here.1, "body", "focus dropped to <body> after {key:?}");
            if Instant::now() > deadline {
                let shot = screenshot(&client, "failed-tree-keys").await;
                panic!(
                    "after {key:?}: {here:?}, not {topic} on the tree ({})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The second Left collapsed kb/a: its children left, and it says so.
    wait_gone(&client, &row("kb/a/x"), "kb/a collapsed").await;
    let expanded = client
        .find(Locator::Css(&row("kb/a")))
        .await
        .expect("kb/a")
        .attr("aria-expanded")
        .await
        .expect("an attribute");
    assert_eq!(expanded.as_deref(), Some("false"));
    client
        .active_element()
        .await
        .expect("the active element")
        .send_keys(&Key::Down.to_string())
        .await
        .expect("a key");
    client
        .active_element()
        .await
        .expect("the active element")
        .send_keys(&Key::Right.to_string())
        .await
        .expect("a key");
    wait_text(&client, &row("kb/a/x"), "kb/a expanded again", |_| true).await;

    // JSON in the publisher's key order.
    click(
        &client,
        &format!("{} [data-testid=tree-label]", row("kb/j")),
    )
    .await;
    wait_text(&client, "[data-testid=payload]", "kb/j's payload", |t| {
        t == "{\n  \"z\": 1,\n  \"a\": {\n    \"y\": 2,\n    \"b\": 3\n  }\n}"
    })
    .await;

    // Deleting retained messages: kb/b (only retained traffic) leaves the tree; kb/c
    // (also live traffic) stays, no longer retained.
    mosquitto_pub(broker.tcp, "kb/b", None, true).await;
    mosquitto_pub(broker.tcp, "kb/c", None, true).await;
    wait_gone(&client, &row("kb/b"), "kb/b after its retained delete").await;
    wait_text(
        &client,
        &format!("{} [data-testid=tree-count]", row("kb")),
        "kb's count after the delete",
        |t| t == "6",
    )
    .await;
    assert!(
        client.find(Locator::Css(&row("kb/c"))).await.is_ok(),
        "kb/c had other traffic and stays"
    );
    // Deleting both of kb/a's topics removes kb/a too.
    mosquitto_pub(broker.tcp, "kb/a/x", None, true).await;
    mosquitto_pub(broker.tcp, "kb/a/y", None, true).await;
    wait_gone(&client, &row("kb/a"), "kb/a with nothing left below").await;
    screenshot(&client, "explorer-keyboard").await;

    // The explorer listens only while it is shown, and keeps its tree: a message sent
    // while another page is shown is not counted, nor is a retained message that the
    // broker sends again when the page is opened again.
    let since = text(&client, "[data-testid=explorer-since]").await;
    assert!(
        since
            .as_deref()
            .is_some_and(|t| t.contains("while this page is open")),
        "{since:?}"
    );
    mosquitto_pub(broker.tcp, "kb/r", Some("7"), true).await;
    let count = |topic: &str| format!("{} [data-testid=tree-count]", row(topic));
    wait_text(&client, &count("kb/r"), "kb/r's count", |t| t == "1").await;
    let before = text(&client, &count("kb"))
        .await
        .and_then(|t| t.parse::<u64>().ok())
        .expect("kb's count");
    let kb_c = text(&client, &count("kb/c")).await;
    click(&client, "[data-testid=nav-devices]").await;
    wait_gone(&client, "[data-testid=explorer]", "the explorer left").await;
    mosquitto_pub(broker.tcp, "kb/c", Some("away"), false).await;
    click(&client, "[data-testid=nav-explorer]").await;
    mosquitto_pub(broker.tcp, "kb/s", Some("8"), true).await;
    wait_text(&client, &count("kb/s"), "kb/s after coming back", |t| {
        t == "1"
    })
    .await;
    assert_eq!(
        text(&client, &count("kb")).await,
        Some((before + 1).to_string()),
        "only kb/s is new to the explorer"
    );
    assert_eq!(text(&client, &count("kb/r")).await.as_deref(), Some("1"));
    assert_eq!(text(&client, &count("kb/c")).await, kb_c);
    let _ = client.close().await;
}
