//! The dashboard in a real browser (headless Chromium, `wasm-bindgen-test`): the app
//! shell mounts, and against the broker `cargo xtask test browser` starts, a Homie 5
//! device published by the test shows up with its state and properties, and its switch
//! sends a `/set` that the test answers as a device would (MQTT 5 response topic and
//! correlation data): the first command ends `ok`, the second is rejected with the
//! device's reason; and the explorer lists a message another client published, with its
//! count, pretty JSON, retained flag and content type.
//!
//! Without `MQTT_WS_URL` at build time (a plain `cargo test -p dashboard --target
//! wasm32-unknown-unknown`) the broker test passes without running and says so.
#![cfg(target_arch = "wasm32")]

use std::future::Future;
use std::time::Duration;

use dashboard::settings::Settings;
use futures::StreamExt;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_client::{Client, ConnectOptions, ProtocolVersion, PublishOptions, QoS};

wasm_bindgen_test_configure!(run_in_browser);

/// A failure guard only: nothing asserts on timing.
const PATIENCE: Duration = Duration::from_secs(15);

fn document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("a document")
}

/// Mounts the app in a fresh `<div>`, on the device list; it stays mounted while the
/// handle lives.
fn mount() -> (web_sys::HtmlElement, impl Sized) {
    // The app opens the page the URL names (`route`): an earlier test's navigation must
    // not decide where this one starts.
    web_sys::window()
        .and_then(|w| w.history().ok())
        .expect("the history")
        .replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some("#/devices"))
        .expect("the URL reset");
    let parent: web_sys::HtmlElement = document()
        .create_element("div")
        .expect("a div")
        .unchecked_into();
    document()
        .body()
        .expect("a body")
        .append_child(&parent)
        .expect("appended");
    let handle = leptos::mount::mount_to(parent.clone(), dashboard::App);
    (parent, handle)
}

fn find(parent: &web_sys::HtmlElement, selector: &str) -> Option<web_sys::HtmlElement> {
    parent
        .query_selector(selector)
        .ok()
        .flatten()
        .map(JsCast::unchecked_into)
}

fn text(parent: &web_sys::HtmlElement, selector: &str) -> Option<String> {
    find(parent, selector).and_then(|e| e.text_content())
}

async fn sleep(duration: Duration) {
    let ms = duration.as_millis() as i32;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let window = web_sys::window().expect("a window");
        window
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("setTimeout");
    });
    JsFuture::from(promise).await.expect("timeout resolves");
}

/// Polls `check` until it holds, failing after [`PATIENCE`] with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = PATIENCE.as_millis() / 50;
    for _ in 0..deadline {
        if check() {
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    let timeout = Box::pin(sleep(PATIENCE));
    match futures::future::select(Box::pin(future), timeout).await {
        futures::future::Either::Left((value, _)) => value,
        futures::future::Either::Right(_) => panic!("timed out waiting for {what}"),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:x}", (js_sys::Math::random() * 1e12) as u64)
}

#[wasm_bindgen_test]
async fn the_shell_shows_status_navigation_and_theme() {
    let (page, _mounted) = mount();
    assert_eq!(
        text(&page, "[data-testid=product-name]").as_deref(),
        Some(dashboard::PRODUCT_NAME)
    );
    assert!(text(&page, "[data-testid=connection-status]").is_some());
    find(&page, "[data-testid=nav-settings]")
        .expect("settings tab")
        .click();
    until("the settings form", || {
        find(&page, "[data-testid=settings-url]").is_some()
    })
    .await;
    let root = document().document_element().expect("<html>");
    let before = root.get_attribute("data-theme");
    find(&page, "[data-testid=theme-toggle]")
        .expect("theme toggle")
        .click();
    until("the theme to change", || {
        root.get_attribute("data-theme") != before
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_device_appears_and_its_switch_round_trips() {
    let Some(url) = option_env!("MQTT_WS_URL") else {
        web_sys::console::log_1(&"no broker: MQTT_WS_URL was not set at build time".into());
        return;
    };
    let root = unique("dash-test-");
    let device = "lamp-1";
    Settings {
        broker_url: url.to_owned(),
        root: root.clone(),
        ..Settings::default()
    }
    .save();

    // The test plays the device: retained state and description, and a /set responder.
    let sim = within(
        "the device to connect",
        Client::connect(
            ConnectOptions::new(url)
                .client_id(unique("sim-"))
                .version(ProtocolVersion::V5),
        ),
    )
    .await
    .expect("device connects");
    let retained = PublishOptions::new(QoS::AtLeastOnce).retain(true);
    let base = format!("{root}/5/{device}");
    let description = r#"{"homie":"5.0","version":1,"name":"Hall lamp","nodes":{"lamp":{"name":"Lamp","properties":{"switch":{"name":"Lamp on","datatype":"boolean","settable":true}}}}}"#;
    for (topic, payload) in [
        (format!("{base}/$state"), "ready"),
        (format!("{base}/$description"), description),
        (format!("{base}/lamp/switch"), "false"),
    ] {
        sim.publish(topic, payload.to_owned(), retained.clone())
            .await
            .expect("published");
    }
    let mut commands = sim
        .subscribe(format!("{base}/+/+/set"), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    let responder = sim.clone();
    let state_topic = format!("{base}/lamp/switch");
    wasm_bindgen_futures::spawn_local(async move {
        // Accepts the first command, rejects the rest.
        let mut accepted = false;
        while let Some(command) = commands.next().await {
            let reply = if accepted {
                r#"{"ok":false,"error":"overheated"}"#
            } else {
                accepted = true;
                let value = command.payload_str().unwrap_or_default().to_owned();
                let _ = responder
                    .publish(state_topic.clone(), value, retained.clone())
                    .await;
                r#"{"ok":true}"#
            };
            let _ = responder
                .respond(&command, reply, QoS::AtLeastOnce.into())
                .await;
        }
    });

    let (page, _mounted) = mount();
    let row = format!("[data-testid=device-{device}]");
    until("the device to be listed as ready", || {
        text(&page, &format!("{row} [data-testid=device-state]")).as_deref() == Some("ready")
    })
    .await;
    until("the device's name", || {
        text(&page, &format!("{row} [data-testid=device-name]")).as_deref() == Some("Hall lamp")
    })
    .await;
    find(&page, &format!("{row} [data-testid=device-open]"))
        .expect("open button")
        .click();

    let property = "[data-testid=property-lamp-switch]";
    until("the switch's live value", || {
        text(&page, &format!("{property} [data-testid=property-value]")).as_deref() == Some("false")
    })
    .await;
    find(&page, &format!("{property} [data-testid=switch]"))
        .expect("switch")
        .click();
    until("the command to be acknowledged", || {
        text(&page, &format!("{property} [data-testid=command-state]")).as_deref() == Some("ok")
    })
    .await;
    until("the new value", || {
        text(&page, &format!("{property} [data-testid=property-value]")).as_deref() == Some("true")
    })
    .await;

    let switch = find(&page, &format!("{property} [data-testid=switch]")).expect("switch");
    until("the switch to be ready again", || {
        switch.get_attribute("aria-disabled").as_deref() == Some("false")
    })
    .await;
    switch.click();
    until("the command to be rejected", || {
        text(&page, &format!("{property} [data-testid=command-state]")).as_deref()
            == Some("rejected: overheated")
    })
    .await;
    assert_eq!(
        text(&page, &format!("{property} [data-testid=property-value]")).as_deref(),
        Some("true"),
        "a rejected command leaves the value alone"
    );
}

/// The explorer component: a retained JSON message published by another client appears
/// in the tree (found by search) with its count and last value, its details show the
/// pretty-printed JSON, the retained flag and the MQTT 5 content type, and a second
/// message raises the count.
#[wasm_bindgen_test]
async fn the_explorer_lists_counts_and_shows_a_message() {
    let Some(url) = option_env!("MQTT_WS_URL") else {
        web_sys::console::log_1(&"no broker: MQTT_WS_URL was not set at build time".into());
        return;
    };
    let root = unique("dash-explorer-");
    let topic = format!("{root}/room/climate");
    Settings {
        broker_url: url.to_owned(),
        root: root.clone(),
        ..Settings::default()
    }
    .save();
    let publisher = within(
        "the publisher to connect",
        Client::connect(
            ConnectOptions::new(url)
                .client_id(unique("pub-"))
                .version(ProtocolVersion::V5),
        ),
    )
    .await
    .expect("publisher connects");
    let mut options = PublishOptions::new(QoS::AtLeastOnce).retain(true);
    options.properties.content_type = Some("application/json".into());
    within(
        "the first message",
        publisher.publish(topic.clone(), &br#"{"n":1}"#[..], options.clone()),
    )
    .await
    .expect("published");

    let (page, _mounted) = mount();
    until("the connection", || {
        text(&page, "[data-testid=connection-status]").as_deref() == Some("connected")
    })
    .await;
    find(&page, "[data-testid=nav-explorer]")
        .expect("the explorer's tab")
        .click();
    until("the search box", || {
        find(&page, "[data-testid=explorer-search]").is_some()
    })
    .await;
    let search: web_sys::HtmlInputElement = find(&page, "[data-testid=explorer-search]")
        .expect("the search box")
        .unchecked_into();
    search.set_value(&root);
    search
        .dispatch_event(&web_sys::Event::new("input").expect("an event"))
        .expect("dispatched");
    let row = format!("[data-testid=tree-row][data-topic=\"{topic}\"]");
    until("the topic's row", || {
        text(&page, &format!("{row} [data-testid=tree-count]")).as_deref() == Some("1")
    })
    .await;
    assert_eq!(
        text(&page, &format!("{row} [data-testid=tree-last]")).as_deref(),
        Some(r#"{"n":1}"#)
    );
    find(&page, &format!("{row} [data-testid=tree-label]"))
        .expect("the label")
        .click();
    until("the pretty JSON", || {
        text(&page, "[data-testid=payload]").is_some_and(|t| t.contains("\"n\": 1"))
    })
    .await;
    let meta = text(&page, "[data-testid=payload-meta]").unwrap_or_default();
    assert!(
        meta.contains("retained") && meta.contains("content type application/json"),
        "the message's attributes: {meta}"
    );

    within(
        "the second message",
        publisher.publish(topic.clone(), &br#"{"n":2}"#[..], options),
    )
    .await
    .expect("published");
    until("the count to grow", || {
        text(&page, &format!("{row} [data-testid=tree-count]")).as_deref() == Some("2")
    })
    .await;
    // Clean up the retained message for later runs against the same broker.
    let _ = publisher
        .publish(
            topic,
            Vec::new(),
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await;
}
