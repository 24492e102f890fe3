//! The operator's side of the dashboard in a real browser against a real broker: the
//! operator login (a wrong token shows the broker's reason; the right one gives a
//! session token kept in `sessionStorage` only), connected clients with search and
//! subscriptions, a disconnect that really closes the client's socket, a retained
//! message deleted after a confirmation (gone from the broker); formatted `$SYS`
//! figures; connection profiles (the header names the active one, switching
//! reconnects, passwords stay out of `localStorage`); and the app shell painted from
//! the HTML alone, before and without the wasm.
//!
//! Run by `cargo xtask test browser` with `DASHBOARD_DIST`, `DASHBOARD_BROKER` and
//! `CHROMEDRIVER` set; without them it passes without running and says so.

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{
    self, Broker, ChromeDriver, PATIENCE, click, open, scratch_dir, setup, type_into, wait_gone,
    wait_text,
};

/// The admin token the tests' broker is started with.
const ADMIN_TOKEN: &str = "op-e2e-token";

/// A broker with the admin API on (token [`ADMIN_TOKEN`]).
async fn broker(binary: &Path, dist: &Path, name: &str) -> Broker {
    let scratch = scratch_dir(name);
    Broker::start_with(
        binary,
        dist,
        &scratch,
        &[format!("http.admin_token={ADMIN_TOKEN:?}")],
    )
    .await
}

/// An MQTT 3.1.1 client speaking raw bytes: CONNECT (no keep-alive, so only an operator
/// closes it), optionally SUBSCRIBE to `filter` and a retained PUBLISH.
async fn raw_client(port: u16, client_id: &str, filter: &str, retained: (&str, &str)) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("MQTT over TCP");
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00];
    push_string(&mut connect, client_id);
    send(&mut stream, 0x10, &connect).await;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "accepted");
    let mut subscribe = vec![0x00, 0x01];
    push_string(&mut subscribe, filter);
    subscribe.push(0x00);
    send(&mut stream, 0x82, &subscribe).await;
    let mut suback = [0u8; 5];
    stream.read_exact(&mut suback).await.expect("SUBACK");
    assert_eq!(suback[0], 0x90);
    let mut publish = Vec::new();
    push_string(&mut publish, retained.0);
    publish.extend_from_slice(retained.1.as_bytes());
    send(&mut stream, 0x31, &publish).await;
    stream
}

fn push_string(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend_from_slice(&(text.len() as u16).to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

/// Writes one packet (remaining length < 128).
async fn send(stream: &mut TcpStream, header: u8, body: &[u8]) {
    assert!(body.len() < 128);
    let mut packet = vec![header, body.len() as u8];
    packet.extend_from_slice(body);
    stream.write_all(&packet).await.expect("write");
}

/// Reads (and drops) what arrives until the broker closes the socket; panics if it is
/// still open after [`PATIENCE`].
async fn wait_closed(stream: &mut TcpStream) {
    let mut buffer = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the broker did not close the disconnected client"
    );
}

/// `GET path` on the broker's HTTP port with the admin token; the JSON body.
async fn admin_get(port: u16, path: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("HTTP");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let start = body.find(['{', '[']).expect("a JSON body");
    let end = body.rfind(['}', ']']).expect("a JSON body");
    serde_json::from_str(&body[start..=end]).expect("JSON")
}

/// `GET /` as a plain HTTP client (no script runs): the HTML as served.
async fn index_html(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("HTTP");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}

/// The text at `css` (which must exist).
async fn text_of(client: &Client, css: &str) -> String {
    support::text(client, css)
        .await
        .unwrap_or_else(|| panic!("{css} is missing"))
}

/// Accepts the `confirm()` the page opens, returning its question.
async fn confirm(client: &Client) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = client.get_alert_text().await {
            client.accept_alert().await.expect("confirmed");
            return text;
        }
        assert!(Instant::now() < deadline, "no confirmation appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `localStorage` and `sessionStorage` of the page, as JSON text.
async fn storages(client: &Client) -> (String, String) {
    let value = client
        .execute(
            "return [JSON.stringify(localStorage), JSON.stringify(sessionStorage)]",
            Vec::new(),
        )
        .await
        .expect("the storages");
    (
        value[0].as_str().unwrap_or_default().to_owned(),
        value[1].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn an_operator_logs_in_disconnects_a_client_and_deletes_a_retained_message() {
    let Some(setup) = setup() else {
        return;
    };
    let broker = broker(&setup.broker, &setup.dist, "dashboard-operator").await;
    let mut victim = raw_client(broker.tcp, "victim-1", "ops/#", ("ops/kept", "keep-me")).await;
    let _bystander = raw_client(broker.tcp, "bystander-2", "other/#", ("other/t", "x")).await;
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page("#/broker"), "the broker page").await;

    // Figures are formatted: the uptime as a duration, bytes in binary units.
    let figure = |name: &str| format!("[data-testid=broker-figure][data-name='{name}'] td.value");
    wait_text(
        &client,
        &figure("uptime"),
        "the uptime as a duration",
        |t| t.ends_with(" s") && !t.contains("seconds"),
    )
    .await;
    wait_text(&client, &figure("bytes/received"), "bytes in units", |t| {
        t.ends_with(" B") || t.ends_with("KiB") || t.ends_with("MiB")
    })
    .await;
    // This broker has no bridges: the bridges card says so.
    wait_text(&client, "[data-testid=bridges-none]", "no bridges", |t| {
        t.starts_with("No bridges configured")
    })
    .await;

    // A wrong token is refused with the broker's reason; the right one logs in.
    type_into(&client, "[data-testid=operator-secret]", "not-the-token").await;
    click(&client, "[data-testid=operator-login-submit]").await;
    wait_text(
        &client,
        "[data-testid=operator-login-outcome]",
        "the refused login's reason",
        |t| t.contains("Login failed") && t.contains("wrong credentials"),
    )
    .await;
    type_into(&client, "[data-testid=operator-secret]", ADMIN_TOKEN).await;
    click(&client, "[data-testid=operator-login-submit]").await;
    wait_text(&client, "[data-testid=operator-user]", "logged in", |t| {
        t.contains("admin-token")
    })
    .await;
    let (local, session) = storages(&client).await;
    assert!(
        !local.contains(ADMIN_TOKEN),
        "the admin token is not kept: {local}"
    );
    assert!(
        !session.contains(ADMIN_TOKEN),
        "only the login's token is kept: {session}"
    );
    assert!(
        session.contains("admin-login"),
        "the login is kept for the tab: {session}"
    );

    // The clients: both raw clients and the dashboard's own; the search narrows to one.
    wait_text(
        &client,
        "[data-testid=clients-summary]",
        "three clients",
        |t| t == "3 connected",
    )
    .await;
    type_into(&client, "[data-testid=clients-search]", "victim").await;
    wait_text(
        &client,
        "[data-testid=clients-summary]",
        "the search",
        |t| t == "1 of 3 connected",
    )
    .await;
    let row = "[data-testid=client-row][data-client-id='victim-1']";
    click(
        &client,
        &format!("{row} [data-testid=client-subscriptions-toggle]"),
    )
    .await;
    wait_text(
        &client,
        "[data-testid=client-subscriptions]",
        "the client's subscriptions",
        |t| t.contains("ops/#"),
    )
    .await;

    // Disconnect, confirmed: the client's socket is closed by the broker.
    click(&client, &format!("{row} [data-testid=client-disconnect]")).await;
    let question = confirm(&client).await;
    assert!(question.contains("victim-1"), "{question}");
    wait_closed(&mut victim).await;
    wait_gone(&client, row, "the disconnected client's row").await;
    let clients = admin_get(broker.http, "/api/clients").await;
    assert!(
        !clients.to_string().contains("victim-1"),
        "still listed: {clients}"
    );

    // Retained messages: filtered, then one deleted after a confirmation.
    type_into(&client, "[data-testid=retained-filter]", "ops/#").await;
    click(&client, "[data-testid=retained-refresh]").await;
    let kept = "[data-testid=retained-row][data-topic='ops/kept']";
    wait_text(
        &client,
        &format!("{kept} [data-testid=retained-topic]"),
        "the retained row",
        |t| t == "ops/kept",
    )
    .await;
    let stored = text_of(&client, &format!("{kept} [data-testid=retained-stored]")).await;
    assert!(stored.ends_with("UTC"), "the time it was stored: {stored}");
    click(&client, &format!("{kept} [data-testid=retained-delete]")).await;
    let question = confirm(&client).await;
    assert!(question.contains("ops/kept"), "{question}");
    wait_text(
        &client,
        "[data-testid=retained-message]",
        "the deletion",
        |t| t.contains("deleted 1"),
    )
    .await;
    let left = admin_get(broker.http, "/api/retained?filter=ops/%23").await;
    assert_eq!(left["total"], 0, "{left}");
    let other = admin_get(broker.http, "/api/retained?filter=other/%23").await;
    assert_eq!(
        other["total"], 1,
        "only the confirmed one is deleted: {other}"
    );

    support::screenshot(&client, "operator-views").await;

    // A reload keeps the login for the tab; logging out ends it.
    client.refresh().await.expect("reload");
    wait_text(
        &client,
        "[data-testid=operator-user]",
        "still logged in",
        |t| t.contains("admin-token"),
    )
    .await;
    click(&client, "[data-testid=operator-logout]").await;
    wait_text(
        &client,
        "[data-testid=operator-login] h3",
        "logged out",
        |_| true,
    )
    .await;
    support::screenshot(&client, "operator-login").await;
    client.close().await.expect("session closed");
}

#[tokio::test]
async fn profiles_switch_the_connection_and_the_header_names_the_active_one() {
    let Some(setup) = setup() else {
        return;
    };
    let broker = broker(&setup.broker, &setup.dist, "dashboard-profiles").await;
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let client = driver.session().await;
    open(&client, &broker.page("#/settings"), "the settings page").await;
    wait_text(
        &client,
        "[data-testid=profile-name]",
        "the default profile",
        |t| t == "Default",
    )
    .await;
    wait_text(
        &client,
        "header [data-testid=connection-status]",
        "connected",
        |t| t == "connected",
    )
    .await;

    // A second profile with its own client id and a password not to remember.
    click(&client, "[data-testid=settings-profile-new]").await;
    type_into(&client, "[data-testid=settings-profile-name]", "bench").await;
    type_into(
        &client,
        "[data-testid=settings-client-id]",
        "dash-bench-profile",
    )
    .await;
    type_into(&client, "[data-testid=settings-username]", "bench-user").await;
    type_into(
        &client,
        "[data-testid=settings-password]",
        "pw-for-this-tab",
    )
    .await;
    click(&client, "[data-testid=settings-save]").await;
    wait_text(
        &client,
        "[data-testid=profile-name]",
        "the new profile",
        |t| t == "bench",
    )
    .await;
    wait_text(
        &client,
        "[data-testid=settings-outcome]",
        "the outcome",
        |t| t.contains("bench") && t.contains("connected"),
    )
    .await;
    // The outcome and the header's status are in view without scrolling.
    let in_view: Value = client
        .execute(
            "const seen = css => { const r = document.querySelector(css).getBoundingClientRect();\
               return r.top >= 0 && r.bottom <= window.innerHeight; };\
             return [seen('[data-testid=settings-outcome]'),\
                     seen('header [data-testid=connection-status]')];",
            Vec::new(),
        )
        .await
        .expect("positions");
    assert_eq!(
        in_view,
        serde_json::json!([true, true]),
        "outcome and status in view"
    );
    support::screenshot(&client, "settings-profiles").await;
    let deadline = Instant::now() + PATIENCE;
    while !admin_get(broker.http, "/api/clients")
        .await
        .to_string()
        .contains("dash-bench-profile")
    {
        assert!(
            Instant::now() < deadline,
            "the new profile's client never connected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (local, session) = storages(&client).await;
    assert!(
        local.contains("bench-user"),
        "the profile is saved: {local}"
    );
    assert!(
        !local.contains("pw-for-this-tab"),
        "no password in localStorage: {local}"
    );
    assert!(
        session.contains("pw-for-this-tab"),
        "kept for the tab: {session}"
    );

    // Switching back reconnects as the first profile.
    client
        .find(Locator::Css("[data-testid=settings-profile]"))
        .await
        .expect("the profile select")
        .select_by_value("Default")
        .await
        .expect("Default selected");
    wait_text(
        &client,
        "[data-testid=profile-name]",
        "switched back",
        |t| t == "Default",
    )
    .await;
    let deadline = Instant::now() + PATIENCE;
    while admin_get(broker.http, "/api/clients")
        .await
        .to_string()
        .contains("dash-bench-profile")
    {
        assert!(
            Instant::now() < deadline,
            "the old profile's connection stayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(
        &client,
        "header [data-testid=connection-status]",
        "connected again",
        |t| t == "connected",
    )
    .await;

    // Both profiles survive a reload; the active one is still the first.
    client.refresh().await.expect("reload");
    wait_text(&client, "[data-testid=profile-name]", "after reload", |t| {
        t == "Default"
    })
    .await;
    let options = client
        .find_all(Locator::Css("[data-testid=settings-profile] option"))
        .await
        .expect("options");
    assert_eq!(options.len(), 2);
    client.close().await.expect("session closed");
}

#[tokio::test]
async fn the_app_shell_is_painted_from_the_html_without_the_wasm() {
    let Some(setup) = setup() else {
        return;
    };
    let broker = broker(&setup.broker, &setup.dist, "dashboard-shell").await;

    // As served: the shell is in the HTML, and nothing asks for the wasm early.
    let html = index_html(broker.http).await;
    assert!(html.contains("data-testid=\"app-shell\""), "{html}");
    assert!(html.contains("Loading…"), "{html}");
    assert!(
        !html.contains("rel=\"preload\""),
        "no preload of the wasm: {html}"
    );
    assert!(!html.contains("modulepreload"), "no module preload: {html}");

    // With scripts off, Chromium still shows the header, the navigation and "Loading…".
    let driver = ChromeDriver::start(&setup.chromedriver).await;
    let page = broker.page("");
    let client = driver
        .session_with_args(&["--blink-settings=scriptEnabled=false"])
        .await;
    client.goto(&page).await.expect("the page loads");
    let shell = wait_text(
        &client,
        "[data-testid=app-shell]",
        "the static shell",
        |t| t.contains("Loading…"),
    )
    .await;
    for label in [
        "mqtt-web dashboard",
        "Devices",
        "Explorer",
        "Broker",
        "Settings",
    ] {
        assert!(shell.contains(label), "{label} missing from {shell:?}");
    }
    let fetched: Value = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            Vec::new(),
        )
        .await
        .unwrap_or(Value::Null);
    assert!(
        !fetched.to_string().contains(".wasm"),
        "no wasm without scripts: {fetched}"
    );
    client.close().await.expect("session closed");

    // With scripts on, the app replaces the shell; the wasm was fetched by the loader
    // (not a preload) after the first paint.
    let client = driver.session().await;
    client.goto(&page).await.expect("the page loads");
    wait_text(&client, "[data-testid=product-name]", "the app", |_| true).await;
    wait_gone(&client, "[data-testid=app-shell]", "the shell").await;
    let timing: Value = client
        .execute(
            "const wasm = performance.getEntriesByType('resource').find(e => e.name.endsWith('.wasm'));\
             const paint = performance.getEntriesByName('first-paint')[0];\
             return { initiator: wasm && wasm.initiatorType, wasm_start: wasm && wasm.startTime,\
                      first_paint: paint && paint.startTime };",
            Vec::new(),
        )
        .await
        .expect("timings");
    assert_eq!(timing["initiator"], "fetch", "{timing}");
    // A figure, not an assertion: when the wasm was asked for, against the first paint.
    eprintln!("app shell: {timing}");
    client.close().await.expect("session closed");
}
