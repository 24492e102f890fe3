//! The HTTP routes without a socket (`tower::ServiceExt::oneshot` on `http::app`):
//! health and readiness, `/metrics` before and after MQTT traffic, the admin API with
//! and without its token, and the dashboard from a temporary directory.

use crate::common;
use crate::http_support;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use broker_server::Broker;
use broker_server::internals::http::HttpState;
use common::*;
use http_support::*;
use protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use serde_json::Value;
use tokio::sync::watch;

fn state_of(broker: &TestBroker) -> Arc<Broker> {
    broker.running.as_ref().unwrap().broker.clone()
}

/// `/metrics` as a map from series (name and labels) to value.
async fn scrape(broker: &Arc<Broker>) -> HashMap<String, u64> {
    let response = oneshot(broker, get("/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = std::str::from_utf8(response.body()).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn metric(map: &HashMap<String, u64>, series: &str) -> u64 {
    *map.get(series)
        .unwrap_or_else(|| panic!("{series} missing from {map:#?}"))
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_turns_unavailable_on_shutdown() {
    let broker = Arc::new(Broker::new(test_config()));
    let (tx, rx) = watch::channel(false);
    let state = HttpState::new(broker, rx);
    let health = oneshot_with(state.clone(), get("/healthz")).await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = oneshot_with(state.clone(), get("/readyz")).await;
    assert_eq!(ready.status(), StatusCode::OK);
    tx.send(true).unwrap();
    let ready = oneshot_with(state.clone(), get("/readyz")).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = oneshot_with(state, get("/healthz")).await;
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_connections_messages_and_bytes_per_qos() {
    let broker = TestBroker::start().await;
    let state = state_of(&broker);
    let before = scrape(&state).await;
    assert_eq!(
        metric(&before, r#"mqtt_messages_received_total{qos="1"}"#),
        0
    );
    assert_eq!(metric(&before, "mqtt_sessions"), 0);

    let mut sub = broker.client(ProtocolVersion::V5, "metrics-sub").await;
    sub.subscribe_many(1, &[("m/#", QoS::ExactlyOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V3_1_1, "metrics-pub").await;
    publisher
        .send_publish(publish("m/a", "hello", QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    let mut retained = publish("m/kept", "0123456789", QoS::AtMostOnce, None);
    retained.retain = true;
    publisher.send_publish(retained).await;
    for _ in 0..2 {
        let p = sub.recv_publish().await;
        if let Some(id) = p.packet_id {
            sub.send(&Packet::PubAck(protocol::PubAck::new(id))).await;
        }
    }

    let after = scrape(&state).await;
    let listener = broker.addr.to_string();
    let connections = |version: &str| {
        format!(r#"mqtt_connections{{listener="{listener}",transport="tcp",protocol="{version}"}}"#)
    };
    assert_eq!(metric(&after, &connections("5.0")), 1);
    assert_eq!(metric(&after, &connections("3.1.1")), 1);
    let accepted =
        format!(r#"mqtt_connections_accepted_total{{listener="{listener}",transport="tcp"}}"#);
    assert_eq!(metric(&after, &accepted), 2);
    assert_eq!(
        metric(&after, r#"mqtt_messages_received_total{qos="1"}"#),
        1
    );
    assert_eq!(
        metric(&after, r#"mqtt_messages_received_total{qos="0"}"#),
        1
    );
    assert_eq!(
        metric(&after, r#"mqtt_payload_bytes_received_total{qos="1"}"#),
        5
    );
    assert_eq!(
        metric(&after, r#"mqtt_payload_bytes_received_total{qos="0"}"#),
        10
    );
    assert_eq!(metric(&after, r#"mqtt_messages_sent_total{qos="1"}"#), 1);
    assert_eq!(
        metric(&after, r#"mqtt_payload_bytes_sent_total{qos="1"}"#),
        5
    );
    assert_eq!(metric(&after, "mqtt_sessions"), 2);
    assert_eq!(metric(&after, "mqtt_subscriptions"), 1);
    assert_eq!(metric(&after, "mqtt_retained_messages"), 1);
    // Storage figures are rendered too (zero when the broker keeps nothing on disk).
    let store_size = metric(&after, "mqtt_store_size_bytes");
    if stores_on_disk() {
        assert!(store_size > 0, "the store's size: {store_size}");
    } else {
        assert_eq!(store_size, 0);
    }
    assert!(
        metric(&after, "mqtt_bytes_received_total") > metric(&before, "mqtt_bytes_received_total")
    );
    assert!(metric(&after, "mqtt_bytes_sent_total") > 0);
    assert_eq!(metric(&after, "mqtt_messages_dropped_total"), 0);
    for series in [
        "mqtt_inflight_messages",
        "mqtt_queued_messages",
        "mqtt_auth_failures_total",
        "mqtt_protocol_errors_total",
    ] {
        assert!(after.contains_key(series), "{series}");
    }
    broker.stop().await;
}

fn admin_config(token: Option<&str>) -> broker_server::Config {
    let mut config = test_config();
    config.http.admin_token = token.map(str::to_owned);
    config
}

fn with_token(mut request: Request<Body>, token: &str) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    request
}

fn json(response: &axum::http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(response.body()).expect("JSON body")
}

#[tokio::test]
async fn admin_api_is_disabled_without_a_configured_token() {
    let state = Arc::new(Broker::new(admin_config(None)));
    let response = oneshot(&state, with_token(get("/api/clients"), "anything")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error = json(&response)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("http.admin_token"), "{error}");
    // The description stays public.
    let doc = oneshot(&state, get("/api/openapi.json")).await;
    assert_eq!(doc.status(), StatusCode::OK);
    assert_eq!(json(&doc)["openapi"], "3.1.0");
}

#[tokio::test]
async fn admin_api_needs_the_bearer_token() {
    let state = Arc::new(Broker::new(admin_config(Some("s3cret"))));
    for request in [
        get("/api/stats"),
        with_token(get("/api/stats"), "wrong"),
        Request::get("/api/stats")
            .header(header::AUTHORIZATION, "Basic czNjcmV0")
            .body(Body::empty())
            .unwrap(),
    ] {
        let response = oneshot(&state, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    let response = oneshot(&state, with_token(get("/api/stats"), "s3cret")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&response)["sessions"], 0);
    let unknown = oneshot(&state, with_token(get("/api/nothing-here"), "s3cret")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_api_lists_a_client_and_disconnects_it() {
    let broker = TestBroker::with_config(admin_config(Some("t"))).await;
    let state = state_of(&broker);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut connect = protocol::Connect::new(ProtocolVersion::V5, "admin-listed");
    connect.username = Some("alice".into());
    client.handshake(connect).await;
    client.subscribe_many(1, &[("a/+", QoS::AtLeastOnce)]).await;

    let list = oneshot(&state, with_token(get("/api/clients"), "t")).await;
    assert_eq!(list.status(), StatusCode::OK);
    let list = json(&list);
    let entry = &list[0];
    assert_eq!(entry["client_id"], "admin-listed");
    assert_eq!(entry["username"], "alice");
    assert_eq!(entry["protocol"], "5.0");
    assert_eq!(entry["transport"], "tcp");
    assert_eq!(entry["listener"], broker.addr.to_string());
    assert_eq!(entry["subscriptions"][0]["filter"], "a/+");
    assert_eq!(entry["subscriptions"][0]["qos"], 1);
    assert_eq!(entry["queue_depth"], 0);
    assert!(entry["connected_since"].as_str().unwrap().ends_with('Z'));

    let one = oneshot(&state, with_token(get("/api/clients/admin-listed"), "t")).await;
    assert_eq!(json(&one)["username"], "alice");
    let missing = oneshot(&state, with_token(get("/api/clients/nobody"), "t")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let request = with_token(
        Request::post("/api/clients/admin-listed/disconnect")
            .body(Body::empty())
            .unwrap(),
        "t",
    );
    let response = oneshot(&state, request).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let seen = client.expect_closed().await;
    assert!(
        matches!(seen.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::AdministrativeAction),
        "{seen:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn admin_api_lists_and_deletes_retained_messages_by_filter() {
    let broker = TestBroker::with_config(admin_config(Some("t"))).await;
    let state = state_of(&broker);
    let mut publisher = broker.client(ProtocolVersion::V5, "retainer").await;
    for (topic, payload) in [("r/a", "one"), ("r/b", "two"), ("other/c", "three")] {
        let mut p = publish(topic, payload, QoS::AtLeastOnce, Some(1));
        p.retain = true;
        publisher.send_publish(p).await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    let list = oneshot(&state, with_token(get("/api/retained?filter=r/%2B"), "t")).await;
    assert_eq!(list.status(), StatusCode::OK);
    let list = json(&list);
    assert_eq!(list["total"], 2);
    assert_eq!(list["messages"][0]["topic"], "r/a");
    assert_eq!(list["messages"][0]["payload"], "one");
    assert_eq!(list["messages"][0]["payload_base64"], "b25l");
    assert_eq!(list["messages"][1]["qos"], 1);
    let stored_at = list["messages"][0]["stored_at"].as_str().unwrap();
    assert!(
        stored_at.starts_with("20") && stored_at.ends_with('Z'),
        "{stored_at}"
    );

    let bad = oneshot(&state, with_token(get("/api/retained?filter=a/%23/b"), "t")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let no_filter = Request::delete("/api/retained")
        .body(Body::empty())
        .unwrap();
    let no_filter = oneshot(&state, with_token(no_filter, "t")).await;
    assert_eq!(no_filter.status(), StatusCode::BAD_REQUEST);

    let delete = Request::delete("/api/retained?filter=r/%23")
        .body(Body::empty())
        .unwrap();
    let deleted = oneshot(&state, with_token(delete, "t")).await;
    assert_eq!(json(&deleted)["deleted"], 2);
    let all = oneshot(&state, with_token(get("/api/retained"), "t")).await;
    let all = json(&all);
    assert_eq!(all["total"], 1);
    assert_eq!(all["messages"][0]["topic"], "other/c");
    broker.stop().await;
}

fn dashboard_state(dir: &std::path::Path) -> HttpState {
    let mut config = test_config();
    config.http.dashboard_dir = Some(dir.to_path_buf());
    let (_tx, rx) = watch::channel(false);
    HttpState::new(Arc::new(Broker::new(config)), rx)
}

#[tokio::test]
async fn dashboard_serves_index_html_and_hashed_assets_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let index = "<!doctype html><title>dashboard</title>";
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    let wasm = vec![0u8, b'a', b's', b'm', 1, 0, 0, 0];
    std::fs::write(dir.path().join("dashboard-0123456789abcdef_bg.wasm"), &wasm).unwrap();
    let mut js = std::fs::File::create(dir.path().join("dashboard-0123456789abcdef.js")).unwrap();
    for _ in 0..200 {
        writeln!(js, "console.log('a line that compresses well');").unwrap();
    }
    let state = dashboard_state(dir.path());

    let root = oneshot_with(state.clone(), get("/")).await;
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(root.body().as_ref(), index.as_bytes());
    assert_eq!(
        root.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(root.headers()[header::CACHE_CONTROL], "no-cache");

    let module = oneshot_with(state.clone(), get("/dashboard-0123456789abcdef_bg.wasm")).await;
    assert_eq!(module.status(), StatusCode::OK);
    assert_eq!(module.headers()[header::CONTENT_TYPE], "application/wasm");
    assert!(
        module.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(module.body().as_ref(), wasm.as_slice());

    let gzip = Request::get("/dashboard-0123456789abcdef.js")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let compressed = oneshot_with(state.clone(), gzip).await;
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");

    // A client-side route gets the page; a missing asset does not.
    let route = oneshot_with(state.clone(), get("/devices/th-1")).await;
    assert_eq!(route.body().as_ref(), index.as_bytes());
    let missing = oneshot_with(state, get("/missing-0123456789abcdef.js")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dashboard_that_is_not_built_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let response = oneshot_with(dashboard_state(dir.path()), get("/")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let text = std::str::from_utf8(response.body()).unwrap();
    assert!(text.contains("trunk build"), "{text}");
}

/// A link in the dashboard directory that leads out of it (planted, or left by a
/// careless deployment) must not expose the file it names: `/etc/passwd` was served.
#[cfg(unix)]
#[tokio::test]
async fn dashboard_does_not_follow_links_out_of_its_directory() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let secret = "root:x:0:0:the secret outside the dashboard";
    std::fs::write(outside.path().join("secret.txt"), secret).unwrap();
    std::fs::write(outside.path().join("index.html"), secret).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let index = "<!doctype html><title>dashboard</title>";
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    symlink(
        outside.path().join("secret.txt"),
        dir.path().join("leak.txt"),
    )
    .unwrap();
    // Without an extension the path would otherwise be a client-side route.
    symlink(outside.path().join("secret.txt"), dir.path().join("leak")).unwrap();
    symlink(outside.path(), dir.path().join("assets")).unwrap();
    std::fs::create_dir(dir.path().join("v2")).unwrap();
    symlink("../index.html", dir.path().join("v2").join("start.html")).unwrap();
    let state = dashboard_state(dir.path());

    for path in [
        "/leak.txt",
        "/leak",
        "/assets/secret.txt",
        "/assets/",
        "/assets",
    ] {
        let response = oneshot_with(state.clone(), get(path)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = std::str::from_utf8(response.body()).unwrap();
        assert!(!body.contains("secret"), "{path}: {body}");
    }
    // A link that stays inside the directory is served.
    let inside = oneshot_with(state.clone(), get("/v2/start.html")).await;
    assert_eq!(inside.status(), StatusCode::OK);
    assert_eq!(inside.body().as_ref(), index.as_bytes());
    // So is the directory itself when it is reached through a link (a release switch).
    let releases = tempfile::tempdir().unwrap();
    symlink(dir.path(), releases.path().join("current")).unwrap();
    let linked = dashboard_state(&releases.path().join("current"));
    let root = oneshot_with(linked.clone(), get("/")).await;
    assert_eq!(root.body().as_ref(), index.as_bytes());
    let leak = oneshot_with(linked, get("/leak.txt")).await;
    assert_eq!(leak.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plain_get_of_mqtt_explains_it_is_a_websocket_endpoint() {
    let state = Arc::new(Broker::new(test_config()));
    let response = oneshot(&state, get("/mqtt")).await;
    assert!(response.status().is_client_error(), "{response:?}");
    let text = std::str::from_utf8(response.body()).unwrap();
    assert!(text.contains("MQTT over WebSocket"), "{text}");
}

#[tokio::test]
async fn retained_messages_deleted_by_the_admin_api_stay_deleted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = admin_config(Some("t"));
        config.storage.backend = broker_server::config::Backend::Redb;
        config.storage.dir = dir.path().to_path_buf();
        config
    };
    let broker = TestBroker::with_config(config()).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "retainer").await;
    for topic in ["keep/a", "drop/b"] {
        let mut p = publish(topic, "x", QoS::AtLeastOnce, Some(1));
        p.retain = true;
        publisher.send_publish(p).await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    let delete = Request::delete("/api/retained?filter=drop/%23")
        .body(Body::empty())
        .unwrap();
    let deleted = oneshot(&state_of(&broker), with_token(delete, "t")).await;
    assert_eq!(json(&deleted)["deleted"], 1);
    drop(publisher);
    broker.stop().await;

    let broker = TestBroker::with_config(config()).await;
    let all = oneshot(&state_of(&broker), with_token(get("/api/retained"), "t")).await;
    let all = json(&all);
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(all["messages"][0]["topic"], "keep/a");
    // Its time of storing was not kept: the API says so rather than show the restart.
    assert_eq!(all["messages"][0]["stored_at"], Value::Null, "{all}");
    broker.stop().await;
}

fn login_request(body: &str) -> Request<Body> {
    Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn login_exchanges_the_admin_token_for_a_token_that_expires() {
    let mut config = admin_config(Some("s3cret"));
    config.http.admin_session_secs = 60;
    let state = Arc::new(Broker::new(config));

    let wrong = oneshot(&state, login_request(r#"{"token":"guess"}"#)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(json(&wrong)["error"].as_str().unwrap().contains("wrong"));
    let empty = oneshot(&state, login_request("{}")).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);

    let response = oneshot(&state, login_request(r#"{"token":"s3cret"}"#)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(&response);
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["user"], "admin-token");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert_ne!(token, "s3cret");

    let stats = oneshot(&state, with_token(get("/api/stats"), &token)).await;
    assert_eq!(stats.status(), StatusCode::OK);
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    let expired = oneshot(&state, with_token(get("/api/stats"), &token)).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(expired.headers().contains_key(header::WWW_AUTHENTICATE));

    // Logging out ends a token before its time.
    let again = json(&oneshot(&state, login_request(r#"{"token":"s3cret"}"#)).await);
    let token = again["token"].as_str().unwrap().to_owned();
    let logout = Request::post("/api/logout").body(Body::empty()).unwrap();
    let logout = oneshot(&state, with_token(logout, &token)).await;
    assert_eq!(json(&logout)["ended"], true);
    let after = oneshot(&state, with_token(get("/api/stats"), &token)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_without_admin_token_or_users_is_disabled() {
    let state = Arc::new(Broker::new(admin_config(None)));
    let response = oneshot(&state, login_request(r#"{"token":""}"#)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

/// Writes `user`'s `password` to `file` with `broker-server passwd` (argon2id).
async fn add_user(file: &std::path::Path, user: &str, password: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .arg("passwd")
        .arg(file)
        .args(["add", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("broker-server passwd starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn admin_users_log_in_with_their_broker_password_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    add_user(&file, "ops", "opspass").await;
    add_user(&file, "device", "devpass").await;
    let mut config = test_config();
    config.auth.password_file = Some(file);
    config.auth.failed_login_delay_ms = 0;
    config.http.admin_users = vec!["ops".into()];
    let broker = TestBroker::with_config(config).await;
    let state = state_of(&broker);

    for refused in [
        r#"{"username":"ops","password":"wrong"}"#,
        r#"{"username":"device","password":"devpass"}"#,
        r#"{"username":"nobody","password":"opspass"}"#,
    ] {
        let response = oneshot(&state, login_request(refused)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused}");
    }
    let response = oneshot(
        &state,
        login_request(r#"{"username":"ops","password":"opspass"}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(&response);
    assert_eq!(body["user"], "ops");
    let token = body["token"].as_str().unwrap();
    let clients = oneshot(&state, with_token(get("/api/clients"), token)).await;
    assert_eq!(clients.status(), StatusCode::OK);
    // Without an admin token, the token of a login is the only way in.
    let bare = oneshot(&state, get("/api/clients")).await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    broker.stop().await;
}
