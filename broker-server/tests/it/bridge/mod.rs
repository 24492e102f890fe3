//! Bridges (`[[bridges]]`) against a real Eclipse Mosquitto and between two of our
//! brokers: topic rules with prefixes and wildcards in each direction at QoS 0/1/2 over
//! MQTT 3.1.1 and 5.0, retained messages and properties, store and forward across an
//! outage of the remote, loops, and the backoff after a refused login.
//!
//! The tests run on a multi-threaded runtime, as the broker does: the bridge task and
//! its MQTT client answer each other from different threads.
//!
//! Each test starts its own `/usr/sbin/mosquitto` (installed by `cargo xtask setup`)
//! from a generated configuration with one listener on a free loopback port and kills
//! it at the end. Without mosquitto these tests fail; they do not skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker_server::Config;
use bytes::Bytes;
use native_client::{
    Client, ConnectOptions, Message, ProtocolVersion, PublishOptions, PublishProperties, QoS,
    ReasonCode, Subscription,
};

use crate::common::{PATIENCE, TestBroker, test_config};

mod durable;

/// Where Debian's `mosquitto` package puts the broker.
pub(crate) const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process with a generated configuration; killed when dropped.
pub(crate) struct Mosquitto {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto on a free port with `options` added to its configuration.
    pub(crate) fn start(dir: &Path, options: &str) -> Self {
        Self::with_listener(dir, options, "")
    }

    /// [`Mosquitto::start`] with `listener_options` for its one listener (TLS files).
    fn with_listener(dir: &Path, options: &str, listener_options: &str) -> Self {
        assert!(
            Path::new(MOSQUITTO).is_file(),
            "{MOSQUITTO} is missing: run `cargo xtask setup` (Debian package mosquitto)"
        );
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        // `user root`: as root mosquitto would switch to the `mosquitto` user, who cannot
        // read the test's files; as any other user it has no effect.
        let text = format!(
            "user root\nlog_dest stderr\nlog_type all\n{options}\nlistener {port} 127.0.0.1\n\
             {listener_options}\n"
        );
        std::fs::write(&conf, text).unwrap();
        let mut broker = Self {
            child: None,
            port,
            conf,
            log,
        };
        broker.spawn();
        broker
    }

    /// Starts (again) the process, on the same port, and waits until it listens.
    pub(crate) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto does not listen:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtt://{}", self.addr())
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM (with persistence it writes its database first).
    pub(crate) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mosquitto does not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `[[bridges]]` entry named `name` to `address` with the given extra TOML lines and
/// topic rules, through the config loader (so the test also covers its grammar).
pub(crate) fn with_bridge(
    config: &mut Config,
    name: &str,
    address: SocketAddr,
    extra: &str,
    rules: &[&str],
) {
    let topics: Vec<String> = rules.iter().map(|r| format!("{r:?}")).collect();
    let max = if extra.contains("restart_max_ms") {
        ""
    } else {
        "restart_max_ms = 1000"
    };
    let text = format!(
        "[[bridges]]\nname = \"{name}\"\naddress = [\"{address}\"]\nrestart_initial_ms = 100\n\
         {max}\n{extra}\ntopics = [{}]\n",
        topics.join(", ")
    );
    let parsed = Config::from_toml(&text, Path::new("bridge.toml")).expect("bridge config");
    config.bridges.extend(parsed.bridges);
}

/// A client of `url` with `id`, speaking `version`.
pub(crate) async fn client(url: &str, id: &str, version: ProtocolVersion) -> Client {
    let options = ConnectOptions::new(url).client_id(id).version(version);
    Client::connect(options).await.expect("client connects")
}

pub(crate) fn url_of(broker: &TestBroker) -> String {
    format!("mqtt://{}", broker.addr)
}

/// The next message of `subscription`, within [`PATIENCE`].
pub(crate) async fn next(subscription: &mut Subscription) -> Message {
    tokio::time::timeout(PATIENCE, subscription.recv())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

/// Nothing more arrives on `subscription` for a while (a loop or a duplicate would).
pub(crate) async fn nothing_more(subscription: &mut Subscription) {
    if let Ok(Some(extra)) =
        tokio::time::timeout(Duration::from_millis(700), subscription.recv()).await
    {
        panic!("unexpected message {} {:?}", extra.topic, extra.payload);
    }
}

/// Waits until the bridge `name` of the broker at `local` says `state` on its `$SYS`
/// topic.
pub(crate) async fn wait_state(local: &Client, name: &str, state: &str) {
    let mut states = local
        .subscribe(format!("$SYS/broker/bridges/{name}/state"), QoS::AtMostOnce)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, states.recv())
            .await
            .unwrap_or_else(|_| panic!("bridge {name} never {state}"))
            .unwrap();
        if message.payload == state.as_bytes() {
            return;
        }
    }
}

/// Publishes in each direction the rules allow at each QoS and checks the renamed
/// topic, the QoS (the message's, capped by the rule), the payload.
async fn directions(version: ProtocolVersion) {
    let dir = tempfile::tempdir().unwrap();
    let remote = Mosquitto::start(dir.path(), "allow_anonymous true");
    let protocol = if version == ProtocolVersion::V5 {
        "mqttv5"
    } else {
        "mqttv311"
    };
    let mut config = test_config();
    with_bridge(
        &mut config,
        "edge",
        remote.addr(),
        &format!("protocol = \"{protocol}\""),
        &[
            "up/# out 2 site/ cloud/site/",
            "capped/+ out 1 \"\" \"\"",
            "down/+/cmd in 2 site/ cloud/site/",
            "sync/# both 2 \"\" shared/",
        ],
    );
    let local = TestBroker::with_config(config).await;
    let here = client(&url_of(&local), "here", version).await;
    let there = client(&remote.url(), "there", version).await;
    wait_state(&here, "edge", "connected").await;

    let mut remote_sub = there
        .subscribe("cloud/site/up/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    let mut remote_capped = there.subscribe("capped/#", QoS::ExactlyOnce).await.unwrap();
    let mut remote_sync = there.subscribe("shared/#", QoS::ExactlyOnce).await.unwrap();
    let mut local_sub = here
        .subscribe("site/down/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    let mut local_sync = here.subscribe("sync/#", QoS::ExactlyOnce).await.unwrap();

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let n = qos as u8;
        // out, with prefixes and a multi-level wildcard.
        here.publish(format!("site/up/a/{n}"), format!("out {n}"), qos)
            .await
            .unwrap();
        let got = next(&mut remote_sub).await;
        assert_eq!(
            (got.topic(), got.qos),
            (format!("cloud/site/up/a/{n}").as_str(), qos)
        );
        assert_eq!(got.payload, format!("out {n}").as_bytes());
        // out, capped at QoS 1 by the rule.
        here.publish(format!("capped/{n}"), "c", qos).await.unwrap();
        let got = next(&mut remote_capped).await;
        assert_eq!(
            (got.topic(), got.qos),
            (format!("capped/{n}").as_str(), qos.min(QoS::AtLeastOnce))
        );
        // in, with a single-level wildcard.
        there
            .publish(format!("cloud/site/down/d{n}/cmd"), format!("in {n}"), qos)
            .await
            .unwrap();
        let got = next(&mut local_sub).await;
        assert_eq!(
            (got.topic(), got.qos),
            (format!("site/down/d{n}/cmd").as_str(), qos)
        );
        assert_eq!(got.payload, format!("in {n}").as_bytes());
        // both: each way once (MQTT 3.1.1: mosquitto does not echo what the bridge
        // sends because of the bridge flag, try_private).
        here.publish(format!("sync/x/{n}"), "from here", qos)
            .await
            .unwrap();
        let got = next(&mut remote_sync).await;
        assert_eq!(
            (got.topic(), got.qos),
            (format!("shared/sync/x/{n}").as_str(), qos)
        );
        assert_eq!(next(&mut local_sync).await.payload, "from here".as_bytes());
        there
            .publish(format!("shared/sync/y/{n}"), "from there", qos)
            .await
            .unwrap();
        let got = next(&mut local_sync).await;
        assert_eq!(
            (got.topic(), got.qos, &got.payload[..]),
            (format!("sync/y/{n}").as_str(), qos, "from there".as_bytes())
        );
        assert_eq!(
            next(&mut remote_sync).await.payload,
            "from there".as_bytes()
        );
    }
    // Topics outside every rule stay where they are.
    here.publish("site/other", "no", QoS::AtLeastOnce)
        .await
        .unwrap();
    there
        .publish("cloud/site/other", "no", QoS::AtLeastOnce)
        .await
        .unwrap();
    nothing_more(&mut remote_sub).await;
    nothing_more(&mut local_sub).await;
    nothing_more(&mut local_sync).await;
    nothing_more(&mut remote_sync).await;

    // Retained, with properties (MQTT 5): a later subscriber on the remote gets it
    // retained, properties intact.
    let properties = PublishProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("unit".into(), "C".into())],
        ..PublishProperties::default()
    };
    let options = PublishOptions::new(QoS::AtLeastOnce)
        .retain(true)
        .properties(properties);
    here.publish("site/up/kept", "21.5", options).await.unwrap();
    assert_eq!(next(&mut remote_sub).await.topic(), "cloud/site/up/kept");
    let late = client(&remote.url(), "late", version).await;
    let mut late_sub = late
        .subscribe("cloud/site/up/kept", QoS::AtLeastOnce)
        .await
        .unwrap();
    let kept = next(&mut late_sub).await;
    assert!(kept.retain, "retained on the remote");
    assert_eq!(kept.payload, Bytes::from_static(b"21.5"));
    if version == ProtocolVersion::V5 {
        assert_eq!(kept.properties.content_type.as_deref(), Some("text/plain"));
        assert!(
            kept.properties
                .user_properties
                .iter()
                .any(|(k, v)| k == "unit" && v == "C")
        );
    }
    // And retained coming in: a retained message on the remote reaches a later local
    // subscriber retained.
    there
        .publish(
            "cloud/site/down/d9/cmd",
            "stay",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut local_sub).await.payload, "stay".as_bytes());
    let late_here = client(&url_of(&local), "late-here", version).await;
    let mut late_local = late_here
        .subscribe("site/down/d9/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let kept = next(&mut late_local).await;
    assert!(kept.retain);
    assert_eq!(kept.payload, "stay".as_bytes());

    for c in [here, there, late, late_here] {
        c.disconnect(ReasonCode::Success).await.unwrap();
    }
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_in_and_both_with_prefixes_over_mqtt5() {
    directions(ProtocolVersion::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_in_and_both_with_prefixes_over_mqtt311() {
    directions(ProtocolVersion::V3_1_1).await;
}

/// The remote goes away; QoS 1 and 2 messages published meanwhile wait in the outbox
/// and, once it is back, each arrives once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_for_the_remote_and_arrive_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let persistence = format!(
        "allow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 0",
        dir.path().display()
    );
    let mut remote = Mosquitto::start(dir.path(), &persistence);
    let mut config = test_config();
    with_bridge(&mut config, "away", remote.addr(), "", &["queued/# out 2"]);
    let local = TestBroker::with_config(config).await;
    let here = client(&url_of(&local), "here", ProtocolVersion::V5).await;
    wait_state(&here, "away", "connected").await;
    // A persistent subscriber on the remote: mosquitto keeps its session (and what
    // arrives for it) across its restart.
    let options = ConnectOptions::new(remote.url())
        .client_id("reader")
        .clean_start(false)
        .session_expiry(3600);
    let reader = Client::connect(options).await.unwrap();
    let mut queued = reader
        .subscribe("queued/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    here.publish("queued/first", "0", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut queued).await.payload, "0".as_bytes());

    remote.stop().await;
    wait_state(&here, "away", "disconnected").await;
    let count = 60u32;
    for n in 1..=count {
        let qos = if n % 2 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        here.publish(format!("queued/{n}"), n.to_string(), qos)
            .await
            .unwrap();
    }
    remote.spawn();
    let mut got = Vec::new();
    while got.len() < count as usize {
        let message = next(&mut queued).await;
        got.push(String::from_utf8(message.payload.to_vec()).unwrap());
    }
    // Once each, and in order within each QoS (MQTT orders messages of one QoS: a
    // broker may deliver a QoS 2 message only after its PUBREL, behind later QoS 1
    // ones).
    for parity in [1, 0] {
        let sent: Vec<String> = (1..=count)
            .filter(|n| n % 2 == parity)
            .map(|n| n.to_string())
            .collect();
        let arrived: Vec<String> = got
            .iter()
            .filter(|p| p.parse::<u32>().unwrap() % 2 == parity)
            .cloned()
            .collect();
        assert_eq!(arrived, sent, "every message once, in order: {got:?}");
    }
    nothing_more(&mut queued).await;
    reader.disconnect(ReasonCode::Success).await.unwrap();
    here.disconnect(ReasonCode::Success).await.unwrap();
    local.stop().await;
}

/// Publishes `payload` on `topic` at `from` and checks that each of `subscriptions`
/// gets it exactly once.
async fn once_everywhere(
    from: &Client,
    topic: &str,
    payload: &str,
    subscriptions: &mut [&mut Subscription],
) {
    from.publish(topic, payload.to_owned(), QoS::AtLeastOnce)
        .await
        .unwrap();
    for subscription in subscriptions.iter_mut() {
        let got = next(subscription).await;
        assert_eq!((got.topic(), &got.payload[..]), (topic, payload.as_bytes()));
    }
    for subscription in subscriptions.iter_mut() {
        nothing_more(subscription).await;
    }
}

/// Two of our brokers, one bridged to the other with `# both` over `protocol`: a
/// message published on either reaches the subscribers of both once, and does not come
/// back (No Local on both sides of the bridge: MQTT 5's, or on 3.1.1 the bridge flag's);
/// a retained message published live on the remote side stays retained here (Retain As
/// Published). Without the bridge flag (`try_private = false`) the 3.1.1 case fails
/// on the echo.
async fn two_brokers_bridged_both_ways(protocol: &str) {
    let b = TestBroker::with_config(test_config()).await;
    let mut config = test_config();
    let extra = format!("protocol = \"{protocol}\"");
    with_bridge(&mut config, "peer", b.addr, &extra, &["# both 1"]);
    let a = TestBroker::with_config(config).await;
    let on_a = client(&url_of(&a), "on-a", ProtocolVersion::V5).await;
    let on_b = client(&url_of(&b), "on-b", ProtocolVersion::V5).await;
    wait_state(&on_a, "peer", "connected").await;
    let mut sub_a = on_a.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    let mut sub_b = on_b.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    once_everywhere(&on_a, "t/from-a", "1", &mut [&mut sub_a, &mut sub_b]).await;
    once_everywhere(&on_b, "t/from-b", "2", &mut [&mut sub_a, &mut sub_b]).await;
    on_b.publish(
        "t/kept",
        "3",
        PublishOptions::new(QoS::AtLeastOnce).retain(true),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut sub_a).await.payload, "3".as_bytes());
    let late = client(&url_of(&a), "late-a", ProtocolVersion::V5).await;
    let mut late_sub = late.subscribe("t/kept", QoS::AtLeastOnce).await.unwrap();
    let kept = next(&mut late_sub).await;
    assert!(kept.retain && kept.payload == "3".as_bytes(), "{kept:?}");
    for c in [on_a, on_b, late] {
        c.disconnect(ReasonCode::Success).await.unwrap();
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_bridged_both_ways_neither_loop_nor_duplicate() {
    two_brokers_bridged_both_ways("mqttv5").await;
}

/// Over MQTT 3.1.1 the bridge connects with the bridge flag (level 0x84), which this
/// broker accepts as mosquitto does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_bridged_both_ways_over_mqtt311_with_the_bridge_flag() {
    two_brokers_bridged_both_ways("mqttv311").await;
}

/// Two of our brokers each bridging `#` out to the other: a cycle. The hop marker
/// stops every message where it started: once everywhere, no loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_of_bridges_is_cut_by_the_hop_marker() {
    let b_port = free_port();
    let a_port = free_port();
    let mut config_a = test_config();
    config_a.listeners.tcp = vec![SocketAddr::from(([127, 0, 0, 1], a_port))];
    with_bridge(
        &mut config_a,
        "to-b",
        SocketAddr::from(([127, 0, 0, 1], b_port)),
        "",
        &["# out 1"],
    );
    let mut config_b = test_config();
    config_b.listeners.tcp = vec![SocketAddr::from(([127, 0, 0, 1], b_port))];
    with_bridge(
        &mut config_b,
        "to-a",
        SocketAddr::from(([127, 0, 0, 1], a_port)),
        "",
        &["# out 1"],
    );
    let a = TestBroker::with_config(config_a).await;
    let b = TestBroker::with_config(config_b).await;
    let on_a = client(&url_of(&a), "on-a", ProtocolVersion::V5).await;
    let on_b = client(&url_of(&b), "on-b", ProtocolVersion::V5).await;
    wait_state(&on_a, "to-b", "connected").await;
    wait_state(&on_b, "to-a", "connected").await;
    let mut sub_a = on_a.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    let mut sub_b = on_b.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    once_everywhere(&on_a, "t/from-a", "1", &mut [&mut sub_a, &mut sub_b]).await;
    once_everywhere(&on_b, "t/from-b", "2", &mut [&mut sub_a, &mut sub_b]).await;
    let metrics = broker_server::internals::http::render(a.broker());
    assert!(
        metrics.contains("mqtt_bridge_looped_total 1\n"),
        "{metrics}"
    );
    on_a.disconnect(ReasonCode::Success).await.unwrap();
    on_b.disconnect(ReasonCode::Success).await.unwrap();
    a.stop().await;
    b.stop().await;
}

/// The value of `metric` for the bridge `name` in `/metrics`.
pub(crate) fn figure(broker: &TestBroker, metric: &str, name: &str) -> u64 {
    let metrics = broker_server::internals::http::render(broker.broker());
    let series = format!("{metric}{{bridge=\"{name}\"}} ");
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("{series} in /metrics:\n{metrics}"));
    line[series.len()..].parse().unwrap()
}

/// A remote that refuses the bridge's login: the error is kept (admin API, log) and
/// the bridge tries again with growing delays, not in a hot loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_back_off() {
    let dir = tempfile::tempdir().unwrap();
    // No anonymous access and no password file: every login is refused.
    let remote = Mosquitto::start(dir.path(), "allow_anonymous false");
    let mut config = test_config();
    config.http.admin_token = Some("admin".into());
    with_bridge(
        &mut config,
        "locked",
        remote.addr(),
        "username = \"bridge\"\npassword = \"wrong\"\nrestart_max_ms = 400",
        &["# out 0"],
    );
    let local = TestBroker::with_config(config).await;
    let attempts =
        |broker: &TestBroker| figure(broker, "mqtt_bridge_connect_attempts_total", "locked");
    // Several attempts happen...
    let deadline = Instant::now() + PATIENCE;
    while attempts(&local) < 4 {
        assert!(Instant::now() < deadline, "the bridge does not try again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...but over a second only a handful: the delays are capped at 400 ms, so at least
    // 2-3 attempts and far from the thousands of a hot loop.
    let before = attempts(&local);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = attempts(&local) - before;
    assert!((1..=20).contains(&during), "{during} attempts in a second");
    let refused = remote.log_text().matches("not authorised").count()
        + remote.log_text().matches("not authorized").count();
    assert!(
        refused >= 4,
        "mosquitto saw the refused logins:\n{}",
        remote.log_text()
    );
    // The admin API says why (the same text is logged at `error`).
    let broker = local.running.as_ref().unwrap().broker.clone();
    let mut request = crate::http_support::get("/api/bridges");
    request.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        "Bearer admin".parse().unwrap(),
    );
    let response = crate::http_support::oneshot(&broker, request).await;
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    let bridge = &body["bridges"][0];
    let error = bridge["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("connection refused by the broker"), "{body}");
    assert_eq!(
        (bridge["state"].as_str(), bridge["role"].as_str()),
        (Some("disconnected"), Some("single"))
    );
    local.stop().await;
}

/// TLS to the remote with a test CA and a client certificate (mosquitto requires one):
/// messages cross; a bridge that does not trust the CA never connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_test_ca_and_a_client_certificate() {
    let pki = crate::http_support::Pki::generate();
    std::fs::write(pki.path("client.pem"), &pki.client_cert_pem).unwrap();
    std::fs::write(pki.path("client.key"), &pki.client_key_pem).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true",
        pki.path("ca.pem").display(),
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    );
    let remote = Mosquitto::with_listener(dir.path(), "allow_anonymous true", &listener);
    let tls = format!(
        "tls = true\nserver_name = \"localhost\"\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
        pki.path("ca.pem").display().to_string(),
        pki.path("client.pem").display().to_string(),
        pki.path("client.key").display().to_string()
    );
    let mut config = test_config();
    with_bridge(
        &mut config,
        "secure",
        remote.addr(),
        &tls,
        &["secure/# both 1"],
    );
    // The same remote, trusting another CA: the handshake fails.
    let stranger = crate::http_support::Pki::generate();
    let untrusted = tls.replace(
        &pki.path("ca.pem").display().to_string(),
        &stranger.path("ca.pem").display().to_string(),
    );
    with_bridge(
        &mut config,
        "untrusted",
        remote.addr(),
        &untrusted,
        &["other/# out 0"],
    );
    let local = TestBroker::with_config(config).await;
    let here = client(&url_of(&local), "here", ProtocolVersion::V5).await;
    wait_state(&here, "secure", "connected").await;
    let mut secure = here.subscribe("secure/#", QoS::AtLeastOnce).await.unwrap();

    // A TLS client of mosquitto publishing on the remote side.
    let remote_tls = native_client::TlsOptions::default()
        .ca_pem(pki.ca_pem.clone())
        .client_auth(pki.client_cert_pem.clone(), pki.client_key_pem.clone())
        .server_name("localhost");
    let options = ConnectOptions::new(format!("mqtts://{}", remote.addr()))
        .client_id("remote-device")
        .transport(remote_tls);
    let there = Client::connect(options).await.expect("TLS client connects");
    there
        .publish("secure/in", "over tls", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut secure).await.payload, "over tls".as_bytes());

    let metrics = broker_server::internals::http::render(local.broker());
    assert!(
        metrics.contains("mqtt_bridge_connected{bridge=\"untrusted\"} 0"),
        "{metrics}"
    );
    there.disconnect(ReasonCode::Success).await.unwrap();
    here.disconnect(ReasonCode::Success).await.unwrap();
    local.stop().await;
}
