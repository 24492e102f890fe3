//! Authorization by the ACL file (`auth.acl_file`, `broker_server::security::acl`): every
//! place a refusal shows, at MQTT 3.1.1 and 5.0: PUBLISH (v5 PUBACK/PUBREC 0x87; 3.1.1
//! acknowledged and dropped), SUBSCRIBE (0x87 / 0x80), delivery of routed and retained
//! messages, and wills; `%u` / `%c` patterns and `client` sections; deny rules winning;
//! reloading the file (in-process and by SIGHUP to the binary) with connections staying
//! up; and a malformed file stopping the start with its file and line named.

use crate::common;
use crate::peer;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{TestBroker, test_config};
use peer::*;
use protocol::{
    Connect, Packet, ProtocolVersion, PubAck, PubRel, Publish, QoS, ReasonCode, SubscriptionOptions,
};

/// The rules most tests use: `writer` may publish anywhere, `reader` reads everything
/// but `secret/`, `alice` may write `allowed/` only.
const RULES: &str = "\
# test rules
user writer
topic write #

user reader
topic read #
topic deny secret/#

user alice
topic write allowed/#
topic read allowed/#
";

/// A broker with `rules` as its ACL file (the directory lives as long as the broker).
async fn broker_with(rules: &str) -> (TestBroker, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("acl.conf");
    std::fs::write(&path, rules).expect("write ACL");
    let mut config = test_config();
    config.auth.acl_file = Some(path.clone());
    (TestBroker::with_config(config).await, dir, path)
}

/// A clean CONNECT logged in as `username`.
fn login(version: ProtocolVersion, client_id: &str, username: &str) -> Connect {
    let mut connect = clean(version, client_id);
    connect.username = Some(username.into());
    connect
}

async fn connected(broker: &TestBroker, connect: Connect) -> Peer {
    Peer::connected(broker.addr, connect).await.0
}

/// Publishes a QoS 1 `message` from a client that may be subscribed to it: returns the
/// PUBACK's reason code and every message the client then receives (acknowledged), in
/// whatever order the acknowledgement and the deliveries arrive.
async fn publish_own(peer: &mut Peer, message: Publish) -> (ReasonCode, Vec<String>) {
    let id = message.packet_id.expect("QoS 1");
    peer.send(&Packet::Publish(message)).await;
    let mut topics = Vec::new();
    let reason = loop {
        match peer.recv().await {
            Packet::PubAck(ack) if ack.packet_id == id => break ack.reason_code,
            Packet::Publish(p) => {
                peer.acknowledge(&p).await;
                topics.push(p.topic.to_string());
            }
            other => panic!("expected PUBACK or PUBLISH, got {other:?}"),
        }
    };
    topics.extend(peer.receive_all().await.iter().map(|p| p.topic.to_string()));
    (reason, topics)
}

fn denied(broker: &TestBroker) -> [u64; 4] {
    let d = &broker.broker().metrics.acl_denied;
    [
        d.publish.get(),
        d.subscribe.get(),
        d.receive.get(),
        d.will.get(),
    ]
}

/// The code a refused SUBSCRIBE filter gets: 0x87 in v5, 0x80 in 3.1.1.
fn refused(version: ProtocolVersion) -> ReasonCode {
    if version.is_v5() {
        ReasonCode::NotAuthorized
    } else {
        ReasonCode::UnspecifiedError
    }
}

async fn publish_outside_the_rules_is_refused(version: ProtocolVersion) {
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut reader = connected(&broker, login(version, "reader", "reader")).await;
    reader.subscribe(1, "#", QoS::ExactlyOnce).await;
    let mut alice = connected(&broker, login(version, "alice", "alice")).await;

    alice
        .send(&Packet::Publish(message(
            "other/0",
            "q0",
            QoS::AtMostOnce,
            None,
        )))
        .await;
    alice
        .send(&Packet::Publish(message(
            "other/1",
            "q1",
            QoS::AtLeastOnce,
            Some(1),
        )))
        .await;
    match alice.recv().await {
        Packet::PubAck(ack) => {
            assert_eq!(ack.packet_id, pid(1));
            let expected = if version.is_v5() {
                ReasonCode::NotAuthorized
            } else {
                ReasonCode::Success
            };
            assert_eq!(ack.reason_code, expected, "{ack:?}");
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    alice
        .send(&Packet::Publish(message(
            "other/2",
            "q2",
            QoS::ExactlyOnce,
            Some(2),
        )))
        .await;
    match alice.recv().await {
        Packet::PubRec(rec) if version.is_v5() => {
            // An error PUBREC ends the flow: no PUBREL follows.
            assert_eq!(rec.reason_code, ReasonCode::NotAuthorized, "{rec:?}");
        }
        Packet::PubRec(rec) => {
            // 3.1.1 cannot refuse: the flow completes, the message is dropped.
            assert_eq!(rec.packet_id, pid(2));
            alice.send(&Packet::PubRel(PubRel::new(pid(2)))).await;
            assert!(matches!(alice.recv().await, Packet::PubComp(c) if c.packet_id == pid(2)));
        }
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // What alice may publish still goes through, on the same connection.
    alice
        .publish(message("allowed/x", "ok", QoS::AtLeastOnce, Some(3)))
        .await;

    let got = reader.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["allowed/x"]);
    assert_eq!(denied(&broker), [3, 0, 0, 0]);
    alice.ping().await;
    broker.stop().await;
}
each_version!(publish_outside_the_rules_is_refused);

async fn subscribe_outside_the_rules_is_refused(version: ProtocolVersion) {
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut alice = connected(&broker, login(version, "alice", "alice")).await;
    let codes = alice
        .subscribe_with(
            1,
            vec![
                subscription("allowed/+", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("other/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
                // Broader than the rule: refused too.
                subscription("#", SubscriptionOptions::new(QoS::AtMostOnce)),
                subscription(
                    "$share/g/allowed/#",
                    SubscriptionOptions::new(QoS::AtMostOnce),
                ),
                subscription(
                    "$share/g/other/#",
                    SubscriptionOptions::new(QoS::AtMostOnce),
                ),
            ],
        )
        .await;
    assert_eq!(
        codes,
        [
            ReasonCode::GrantedQoS1,
            refused(version),
            refused(version),
            ReasonCode::GRANTED_QOS_0,
            refused(version),
        ]
    );
    assert_eq!(denied(&broker), [0, 3, 0, 0]);
    // The refused filters were not subscribed: a message there does not arrive.
    let mut writer = connected(&broker, login(version, "writer", "writer")).await;
    writer
        .publish(message("other/x", "no", QoS::AtLeastOnce, Some(1)))
        .await;
    writer
        .publish(message("allowed/x", "yes", QoS::AtLeastOnce, Some(2)))
        .await;
    let got = alice.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["allowed/x", "allowed/x"], "plain and shared");
    broker.stop().await;
}
each_version!(subscribe_outside_the_rules_is_refused);

async fn deny_rules_filter_a_broad_subscription(version: ProtocolVersion) {
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut reader = connected(&broker, login(version, "reader", "reader")).await;
    // `#` is granted (a grant covers it); `secret/#` is covered by the deny rule.
    let codes = reader
        .subscribe_with(
            1,
            vec![
                subscription("#", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("secret/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
            ],
        )
        .await;
    assert_eq!(codes, [ReasonCode::GrantedQoS1, refused(version)]);
    let mut writer = connected(&broker, login(version, "writer", "writer")).await;
    for (topic, qos, id) in [
        ("secret/a", QoS::AtMostOnce, None),
        ("open/a", QoS::AtMostOnce, None),
        ("secret/b", QoS::AtLeastOnce, Some(1)),
        ("open/b", QoS::ExactlyOnce, Some(2)),
    ] {
        writer.publish(message(topic, "m", qos, id)).await;
    }
    let got = reader.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["open/a", "open/b"]);
    assert_eq!(denied(&broker), [0, 1, 2, 0]);
    broker.stop().await;
}
each_version!(deny_rules_filter_a_broad_subscription);

async fn retained_messages_are_filtered_on_subscribe(version: ProtocolVersion) {
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut writer = connected(&broker, login(version, "writer", "writer")).await;
    for topic in ["secret/r", "open/r"] {
        let mut retained = message(topic, "kept", QoS::AtLeastOnce, Some(1));
        retained.retain = true;
        writer.publish(retained).await;
    }
    let mut reader = connected(&broker, login(version, "reader", "reader")).await;
    reader.subscribe(1, "#", QoS::AtLeastOnce).await;
    let got = reader.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["open/r"]);
    assert!(got[0].retain);
    assert_eq!(denied(&broker), [0, 0, 1, 0]);
    broker.stop().await;
}
each_version!(retained_messages_are_filtered_on_subscribe);

async fn a_will_outside_the_rules_is_not_published(version: ProtocolVersion) {
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut reader = connected(&broker, login(version, "reader", "reader")).await;
    reader.subscribe(1, "#", QoS::AtLeastOnce).await;
    let mut refused_will = login(version, "alice-1", "alice");
    refused_will.will = Some(will("other/will", "gone", QoS::AtLeastOnce, false));
    let mut allowed_will = login(version, "alice-2", "alice");
    allowed_will.will = Some(will("allowed/will", "gone", QoS::AtLeastOnce, false));
    let first = connected(&broker, refused_will).await;
    let second = connected(&broker, allowed_will).await;
    // Network loss: both wills are due.
    drop(first);
    drop(second);
    let metrics = &broker.broker().metrics;
    wait_until("both connections ended", || {
        metrics.clients_connected.get() == 1 && metrics.acl_denied.will.get() == 1
    })
    .await;
    let got = reader.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["allowed/will"]);
    assert_eq!(denied(&broker), [0, 0, 0, 1]);
    broker.stop().await;
}
each_version!(a_will_outside_the_rules_is_not_published);

#[tokio::test(start_paused = true)]
async fn a_delayed_will_outside_the_rules_is_not_published() {
    let version = ProtocolVersion::V5;
    let (broker, _dir, _) = broker_with(RULES).await;
    let mut reader = connected(&broker, login(version, "reader", "reader")).await;
    reader.subscribe(1, "#", QoS::AtLeastOnce).await;
    for (id, topic) in [("alice-1", "other/will"), ("alice-2", "allowed/will")] {
        let mut connect = persistent(version, id, 60);
        connect.username = Some("alice".into());
        let mut delayed = will(topic, "gone", QoS::AtLeastOnce, false);
        delayed.properties.will_delay_interval = Some(5);
        connect.will = Some(delayed);
        drop(connected(&broker, connect).await);
    }
    let metrics = &broker.broker().metrics;
    wait_until("both connections ended", || {
        metrics.clients_connected.get() == 1
    })
    .await;
    reader.expect_idle().await;
    advance_secs(6).await;
    let got = reader.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["allowed/will"]);
    assert_eq!(denied(&broker), [0, 0, 0, 1]);
    broker.stop().await;
}

async fn patterns_and_client_sections_apply(version: ProtocolVersion) {
    let rules = "\
pattern readwrite devices/%c/#
pattern read users/%u/#
client console
topic write devices/+/cmd
";
    let (broker, _dir, _) = broker_with(rules).await;
    let mut device = connected(&broker, login(version, "d1", "bob")).await;
    let codes = device
        .subscribe_with(
            1,
            vec![
                subscription("devices/d1/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("users/bob/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("devices/d2/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("users/eve/#", SubscriptionOptions::new(QoS::AtLeastOnce)),
            ],
        )
        .await;
    assert_eq!(
        codes,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            refused(version),
            refused(version),
        ]
    );
    // The console (any user, or none) may command every device, and nothing else.
    let mut console = connected(&broker, clean(version, "console")).await;
    console
        .publish(message("devices/d1/cmd", "on", QoS::AtLeastOnce, Some(1)))
        .await;
    console
        .send(&Packet::Publish(message(
            "users/bob/x",
            "no",
            QoS::AtLeastOnce,
            Some(2),
        )))
        .await;
    let ack = console.recv().await;
    if version.is_v5() {
        assert!(
            matches!(&ack, Packet::PubAck(a) if a.reason_code == ReasonCode::NotAuthorized),
            "{ack:?}"
        );
    }
    let got = device.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["devices/d1/cmd"]);
    // The device's own topics are readwrite for it.
    let (reason, topics) = publish_own(
        &mut device,
        message("devices/d1/state", "up", QoS::AtLeastOnce, Some(1)),
    )
    .await;
    assert_eq!(reason, ReasonCode::Success);
    assert_eq!(topics, ["devices/d1/state"]);
    broker.stop().await;
}
each_version!(patterns_and_client_sections_apply);

#[tokio::test]
async fn reload_applies_new_rules_to_open_connections() {
    let (broker, _dir, path) = broker_with("user alice\ntopic readwrite first/#\n").await;
    let version = ProtocolVersion::V5;
    let mut alice = connected(&broker, login(version, "alice", "alice")).await;
    alice.subscribe(1, "first/#", QoS::AtLeastOnce).await;
    let (reason, topics) = publish_own(
        &mut alice,
        message("first/a", "1", QoS::AtLeastOnce, Some(1)),
    )
    .await;
    assert_eq!(
        (reason, topics),
        (ReasonCode::Success, vec!["first/a".to_string()])
    );

    std::fs::write(&path, "user alice\ntopic readwrite second/#\n").unwrap();
    broker.broker().security.reload().expect("reloads");
    // The same connection: the old grant is gone (even for its existing subscription),
    // the new one applies.
    let (reason, topics) = publish_own(
        &mut alice,
        message("first/b", "2", QoS::AtLeastOnce, Some(2)),
    )
    .await;
    assert_eq!((reason, topics), (ReasonCode::NotAuthorized, vec![]));
    alice.subscribe(2, "second/#", QoS::AtLeastOnce).await;
    let (reason, topics) = publish_own(
        &mut alice,
        message("second/a", "3", QoS::AtLeastOnce, Some(3)),
    )
    .await;
    assert_eq!(
        (reason, topics),
        (ReasonCode::Success, vec!["second/a".to_string()])
    );

    // A broken file is refused and the rules in force stay.
    std::fs::write(&path, "user alice\ntopic deny second/#\nfrobnicate\n").unwrap();
    let err = broker.broker().security.reload().unwrap_err().to_string();
    assert!(
        err.contains("acl.conf:3: unknown directive `frobnicate`"),
        "{err}"
    );
    let (reason, topics) = publish_own(
        &mut alice,
        message("second/b", "4", QoS::AtLeastOnce, Some(4)),
    )
    .await;
    assert_eq!(
        (reason, topics),
        (ReasonCode::Success, vec!["second/b".to_string()])
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_malformed_acl_file_stops_the_start_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl.conf");
    std::fs::write(&path, "user a\ntopic read a/#\ntopic read a/#/b\n").unwrap();
    let mut config = test_config();
    config.auth.acl_file = Some(path.clone());
    let err = broker_server::start(config).await.unwrap_err().to_string();
    let expected = format!("{}:3: `a/#/b` is not a valid topic filter", path.display());
    assert!(err.contains(&expected), "{err}");

    let mut config = test_config();
    config.auth.acl_file = Some(dir.path().join("missing.conf"));
    let err = broker_server::start(config).await.unwrap_err().to_string();
    assert!(err.contains("missing.conf"), "{err}");
}

#[tokio::test]
async fn without_an_acl_file_everything_is_allowed() {
    let broker = TestBroker::start().await;
    let mut anyone = connected(&broker, clean(ProtocolVersion::V5, "anyone")).await;
    anyone.subscribe(1, "#", QoS::AtLeastOnce).await;
    let (reason, topics) = publish_own(
        &mut anyone,
        message("any/where", "x", QoS::AtLeastOnce, Some(1)),
    )
    .await;
    assert_eq!(
        (reason, topics),
        (ReasonCode::Success, vec!["any/where".to_string()])
    );
    assert!(!broker.broker().security.enforces(&Default::default()));
    assert_eq!(denied(&broker), [0, 0, 0, 0]);
    broker.stop().await;
}

/// How many times `log` says the ACL was loaded.
fn loads(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("ACL loaded")
        .count()
}

#[tokio::test]
async fn sighup_reloads_the_acl_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.conf");
    std::fs::write(&acl, "user alice\ntopic readwrite first/#\n").unwrap();
    let log = dir.path().join("broker.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .args(["--tcp", "127.0.0.1:0"])
        .args(["--set", "http.listeners=[]", "--set", "sys.interval_secs=0"])
        .args(["--set", "storage.backend=memory"])
        .arg("--set")
        .arg(format!("auth.acl_file={:?}", acl.display().to_string()))
        .args([
            "--log-level",
            "warn,broker_server::transport=info,broker_server::security=info",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("broker-server starts");
    let binary = common::KillOnDrop(child);
    let addr = common::bound_addr(&log).await;
    assert_eq!(loads(&log), 1);

    let version = ProtocolVersion::V5;
    let mut alice = common::Peer::open(addr, version).await.parking();
    let connack = alice.handshake(login(version, "alice", "alice")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    alice
        .send_publish(message("second/a", "x", QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(
        matches!(alice.recv().await, Packet::PubAck(a) if a.reason_code == ReasonCode::NotAuthorized)
    );

    std::fs::write(&acl, "user alice\ntopic readwrite second/#\n").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &binary.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // Bounded readiness poll on the log.
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while loads(&log) < 2 {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The same connection, now under the new rules.
    assert_eq!(
        alice
            .subscribe_many(1, &[("second/#", QoS::AtLeastOnce)])
            .await,
        [ReasonCode::GrantedQoS1]
    );
    alice
        .send_publish(message("second/a", "y", QoS::AtLeastOnce, Some(2)))
        .await;
    let mut acked = false;
    let mut received = false;
    while !(acked && received) {
        match alice.recv().await {
            Packet::PubAck(a) => {
                assert_eq!(a.reason_code, ReasonCode::Success, "{a:?}");
                acked = true;
            }
            Packet::Publish(p) => {
                assert_eq!(&*p.topic, "second/a");
                if let Some(id) = p.packet_id {
                    alice.send(&Packet::PubAck(PubAck::new(id))).await;
                }
                received = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(binary);
}

// Session takeover across users: a client id is not a credential. A user who connects
// with another user's client id must not be handed that session's messages.

/// The takeover scenario's policy: `alice` owns `allowed/`, `bob` reads everything,
/// `dave` writes everything.
const TAKEOVER_RULES: &str = "\
user alice
topic readwrite allowed/#

user bob
topic read #

user dave
topic write #
";

/// A broker with a password file (`alice`, `bob`, `dave`, each with password
/// `{name}-pw`), [`TAKEOVER_RULES`] and `sessions.allow_cross_user_takeover` =
/// `allow`, storing in `storage` (`None`: the test default).
async fn takeover_broker(
    dir: &Path,
    allow: bool,
    storage: Option<broker_server::config::StorageConfig>,
) -> TestBroker {
    TestBroker::with_config(takeover_config(dir, allow, storage)).await
}

fn takeover_config(
    dir: &Path,
    allow: bool,
    storage: Option<broker_server::config::StorageConfig>,
) -> broker_server::Config {
    let passwd = dir.join("passwd");
    if !passwd.exists() {
        let mut text = String::new();
        for user in ["alice", "bob", "dave"] {
            let password = format!("{user}-pw");
            let credential = broker_server::internals::security::passwd::Credential::argon2id(
                password.as_bytes(),
            )
            .expect("hashes");
            text.push_str(&format!("{user}:{credential}\n"));
        }
        std::fs::write(&passwd, text).expect("write password file");
    }
    let acl = dir.join("acl.conf");
    if !acl.exists() {
        std::fs::write(&acl, TAKEOVER_RULES).expect("write ACL");
    }
    let mut config = test_config();
    config.auth.password_file = Some(passwd);
    config.auth.acl_file = Some(acl);
    config.auth.failed_login_delay_ms = 0;
    config.sessions.allow_cross_user_takeover = allow;
    if let Some(storage) = storage {
        config.storage = storage;
    }
    config
}

/// A CONNECT as `user` (password `{user}-pw`) with `client_id`, persistent (clean
/// session 0; MQTT 5: expiry one hour).
fn as_user(version: ProtocolVersion, client_id: &str, user: &str) -> Connect {
    let mut connect = persistent(version, client_id, 3600);
    connect.username = Some(user.into());
    connect.password = Some(format!("{user}-pw").into_bytes().into());
    connect
}

/// Bob's persistent session `bob-phone`, subscribed to `bobonly/#` at QoS 1, holding
/// dave's three QoS 1 messages to `bobonly/secret` in flight: sent to bob, who read
/// them and did not acknowledge them. Returns bob's connection (still open).
async fn bob_with_three_unacked(broker: &TestBroker, version: ProtocolVersion) -> Peer {
    let (mut bob, _) = Peer::connected(broker.addr, as_user(version, "bob-phone", "bob")).await;
    bob.subscribe(1, "bobonly/#", QoS::AtLeastOnce).await;
    let (mut dave, _) = Peer::connected(broker.addr, as_user(version, "dave-1", "dave")).await;
    for n in 1..=3u16 {
        let body = format!("secret {n}");
        dave.publish(message("bobonly/secret", &body, QoS::AtLeastOnce, Some(n)))
            .await;
    }
    for n in 1..=3 {
        let p = bob.recv_publish().await;
        assert_eq!(
            (&*p.topic, text(&p)),
            ("bobonly/secret", &*format!("secret {n}"))
        );
    }
    dave.disconnect().await;
    bob
}

/// Waits until `client_id`'s session has no connection attached.
async fn offline(broker: &TestBroker, client_id: &str) {
    wait_until("session offline", || {
        broker
            .broker()
            .session(client_id)
            .is_some_and(|s| !s.is_online())
    })
    .await;
}

/// Alice connects as `bob-phone` (clean session 0) and, if she is let in, subscribes
/// to `allowed/#` and reads everything the broker sends her. Returns her CONNACK's
/// code, her connection if open, and the topics of what she received.
async fn alice_takes_bob_phone(
    broker: &TestBroker,
    version: ProtocolVersion,
) -> (ReasonCode, Option<Peer>, Vec<String>) {
    let (mut alice, connack) =
        Peer::connect(broker.addr, as_user(version, "bob-phone", "alice")).await;
    if connack.reason_code != ReasonCode::Success {
        assert!(alice.expect_closed().await.is_empty());
        return (connack.reason_code, None, Vec::new());
    }
    // In-flight messages are re-sent right after CONNACK, before any SUBACK.
    let mut topics = Vec::new();
    let id = pid(1);
    alice
        .send(&Packet::Subscribe(protocol::Subscribe {
            packet_id: id,
            subscriptions: vec![subscription(
                "allowed/#",
                SubscriptionOptions::new(QoS::AtLeastOnce),
            )],
            properties: Default::default(),
        }))
        .await;
    loop {
        match alice.recv().await {
            Packet::SubAck(ack) if ack.packet_id == id => break,
            Packet::Publish(p) => {
                alice.acknowledge(&p).await;
                topics.push(p.topic.to_string());
            }
            other => panic!("expected SUBACK or PUBLISH, got {other:?}"),
        }
    }
    topics.extend(
        alice
            .receive_all()
            .await
            .iter()
            .map(|p| p.topic.to_string()),
    );
    (connack.reason_code, Some(alice), topics)
}

/// Bob reconnects to `bob-phone` and gets his three messages again.
async fn bob_gets_his_three_back(broker: &TestBroker, version: ProtocolVersion) {
    let (mut bob, present) =
        Peer::connected(broker.addr, as_user(version, "bob-phone", "bob")).await;
    assert!(present, "bob's session is still there");
    let got = bob.receive_all().await;
    let bodies: Vec<&str> = got.iter().map(text).collect();
    assert_eq!(bodies, ["secret 1", "secret 2", "secret 3"]);
    bob.disconnect().await;
}

async fn another_user_cannot_take_over_an_offline_session(version: ProtocolVersion) {
    let dir = tempfile::tempdir().unwrap();
    let broker = takeover_broker(dir.path(), false, None).await;
    let bob = bob_with_three_unacked(&broker, version).await;
    drop(bob);
    offline(&broker, "bob-phone").await;

    let (code, _alice, leaked) = alice_takes_bob_phone(&broker, version).await;
    assert_eq!(
        (code, leaked),
        (ReasonCode::NotAuthorized, Vec::<String>::new())
    );
    // Nor with a clean session, which would have ended bob's session.
    let mut fresh = as_user(version, "bob-phone", "alice");
    fresh.clean_start = true;
    let (_, connack) = Peer::connect(broker.addr, fresh).await;
    assert_eq!(connack.reason_code, ReasonCode::NotAuthorized);
    bob_gets_his_three_back(&broker, version).await;
    broker.stop().await;
}
each_version!(another_user_cannot_take_over_an_offline_session);

async fn another_user_cannot_take_over_an_online_session(version: ProtocolVersion) {
    let dir = tempfile::tempdir().unwrap();
    let broker = takeover_broker(dir.path(), false, None).await;
    let mut bob = bob_with_three_unacked(&broker, version).await;

    let (code, _alice, leaked) = alice_takes_bob_phone(&broker, version).await;
    assert_eq!(
        (code, leaked),
        (ReasonCode::NotAuthorized, Vec::<String>::new())
    );
    // Bob was not kicked, and his messages are still his.
    bob.ping().await;
    drop(bob);
    offline(&broker, "bob-phone").await;
    bob_gets_his_three_back(&broker, version).await;
    broker.stop().await;
}
each_version!(another_user_cannot_take_over_an_online_session);

async fn an_allowed_cross_user_takeover_delivers_nothing_the_new_user_may_not_read(
    version: ProtocolVersion,
) {
    let dir = tempfile::tempdir().unwrap();
    let broker = takeover_broker(dir.path(), true, None).await;
    let mut bob = bob_with_three_unacked(&broker, version).await;

    let (code, alice, leaked) = alice_takes_bob_phone(&broker, version).await;
    assert_eq!((code, leaked), (ReasonCode::Success, Vec::<String>::new()));
    // The takeover closed bob's connection, as any takeover does.
    bob.expect_closed().await;
    let metrics = &broker.broker().metrics;
    assert_eq!(metrics.acl_denied.receive.get(), 3, "dropped and counted");
    // What alice may read still reaches her on the session she took.
    let mut alice = alice.expect("alice is connected");
    let (mut dave, _) = Peer::connected(broker.addr, as_user(version, "dave-1", "dave")).await;
    dave.publish(message("bobonly/secret", "4", QoS::AtLeastOnce, Some(1)))
        .await;
    dave.publish(message("allowed/x", "5", QoS::AtLeastOnce, Some(2)))
        .await;
    let got = alice.receive_all().await;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_ref()).collect();
    assert_eq!(topics, ["allowed/x"]);
    broker.stop().await;
}
each_version!(an_allowed_cross_user_takeover_delivers_nothing_the_new_user_may_not_read);

/// The owner is stored with the session: after a restart alice is still refused, and
/// bob gets his messages.
#[tokio::test]
async fn the_session_owner_survives_a_restart() {
    let version = ProtocolVersion::V3_1_1;
    let dir = tempfile::tempdir().unwrap();
    let storage = broker_server::config::StorageConfig {
        backend: broker_server::config::Backend::Redb,
        dir: dir.path().join("data"),
        ..Default::default()
    };
    let broker = takeover_broker(dir.path(), false, Some(storage.clone())).await;
    let bob = bob_with_three_unacked(&broker, version).await;
    drop(bob);
    offline(&broker, "bob-phone").await;
    broker.stop().await;

    let broker = takeover_broker(dir.path(), false, Some(storage)).await;
    let (code, _alice, leaked) = alice_takes_bob_phone(&broker, version).await;
    assert_eq!(
        (code, leaked),
        (ReasonCode::NotAuthorized, Vec::<String>::new())
    );
    bob_gets_his_three_back(&broker, version).await;
    broker.stop().await;
}

/// Messages in flight when the rules change are checked again when the session
/// resumes: a reload that takes away bob's read access keeps them from him.
#[tokio::test]
async fn resumed_in_flight_messages_follow_reloaded_rules() {
    let version = ProtocolVersion::V5;
    let dir = tempfile::tempdir().unwrap();
    let broker = takeover_broker(dir.path(), false, None).await;
    let bob = bob_with_three_unacked(&broker, version).await;
    drop(bob);
    offline(&broker, "bob-phone").await;
    let rules = TAKEOVER_RULES.replace("topic read #", "topic read #\ntopic deny bobonly/#");
    std::fs::write(dir.path().join("acl.conf"), rules).unwrap();
    broker.broker().security.reload().expect("reloads");

    let (mut bob, present) =
        Peer::connected(broker.addr, as_user(version, "bob-phone", "bob")).await;
    assert!(present);
    let got = bob.receive_all().await;
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(broker.broker().metrics.acl_denied.receive.get(), 3);
    broker.stop().await;
}
