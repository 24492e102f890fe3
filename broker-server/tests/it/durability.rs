//! What the embedded store keeps across a restart of the broker (in-process, stopped
//! and started again on the same data directory, with the clock paused so that the
//! time the broker is "down" is simulated): session expiry counts the downtime, a will
//! waits out its delay across the restart, QoS 2 stays exactly once in both directions,
//! subscriptions and retained messages come back. The crash test (`crash.rs`) does the
//! same with SIGKILL instead of a clean stop.

use crate::common;
use crate::peer;

use std::path::Path;

use broker_server::Config;
use broker_server::config::{Backend, StorageConfig};
use common::{TestBroker, test_config};
use peer::*;
use protocol::{Packet, ProtocolVersion, PubComp, PubRec, PubRel, QoS};

fn durable(dir: &Path) -> Config {
    let mut config = test_config();
    config.storage = StorageConfig {
        backend: Backend::Redb,
        dir: dir.to_path_buf(),
        ..StorageConfig::default()
    };
    config
}

async fn restart(broker: TestBroker, dir: &Path, down_secs: u64) -> TestBroker {
    broker.stop().await;
    if down_secs > 0 {
        advance_secs(down_secs).await;
    }
    TestBroker::with_config(durable(dir)).await
}

/// A persistent session subscribed to `filter`, disconnected.
async fn offline_subscriber(broker: &TestBroker, id: &str, expiry: u32, filter: &str, qos: QoS) {
    let (mut sub, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, id, expiry)).await;
    sub.subscribe(1, filter, qos).await;
    sub.disconnect().await;
}

#[tokio::test(start_paused = true)]
async fn session_expiry_counts_the_time_the_broker_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path())).await;
    offline_subscriber(&broker, "short", 60, "t/#", QoS::AtLeastOnce).await;
    offline_subscriber(&broker, "long", 600, "t/#", QoS::AtLeastOnce).await;

    let broker = restart(broker, dir.path(), 61).await;
    assert!(
        broker.broker().session("short").is_none(),
        "expired while down"
    );
    assert!(broker.broker().session("long").is_some());
    let (mut publisher, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "pub")).await;
    publisher
        .publish(message("t/1", "after", QoS::AtLeastOnce, Some(1)))
        .await;

    let (mut long, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "long", 600)).await;
    assert!(present, "the session and its subscription survived");
    let got = long.receive_all().await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["after"]);
    let (_, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "short", 600)).await;
    assert!(!present, "the expired session is gone");
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_will_waits_out_its_delay_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path())).await;
    offline_subscriber(&broker, "watcher", 3600, "will/#", QoS::AtLeastOnce).await;
    for (id, delay) in [("soon", 30), ("late", 100)] {
        let mut connect = persistent(ProtocolVersion::V5, id, 3600);
        let mut w = will(&format!("will/{id}"), "gone", QoS::AtLeastOnce, false);
        w.properties.will_delay_interval = Some(delay);
        connect.will = Some(w);
        let (dying, _) = Peer::connected(broker.addr, connect).await;
        drop(dying); // network loss: the will waits out its delay
        let session = broker.broker().session(id).unwrap();
        wait_until("will pending", || session.detached().pending_will.is_some()).await;
    }

    // Down for 40 s: the first will's delay passed while the broker was down.
    let broker = restart(broker, dir.path(), 40).await;
    let (mut watcher, present) = Peer::connected(
        broker.addr,
        persistent(ProtocolVersion::V5, "watcher", 3600),
    )
    .await;
    assert!(present);
    let got = watcher.receive_all().await;
    assert_eq!(
        got.iter().map(|p| p.topic.to_string()).collect::<Vec<_>>(),
        ["will/soon"]
    );

    advance_secs(59).await;
    watcher.expect_idle().await;
    advance_secs(2).await;
    let got = watcher.receive_all().await;
    assert_eq!(
        got.iter().map(|p| p.topic.to_string()).collect::<Vec<_>>(),
        ["will/late"]
    );

    // Published once: a second restart does not bring them back.
    drop(watcher);
    let broker = restart(broker, dir.path(), 0).await;
    let (mut watcher, _) = Peer::connected(
        broker.addr,
        persistent(ProtocolVersion::V5, "watcher", 3600),
    )
    .await;
    watcher.expect_idle().await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn inbound_qos2_is_delivered_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path())).await;
    offline_subscriber(&broker, "sub", 3600, "q/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "pub", 3600)).await;
    publisher
        .send(&Packet::Publish(message(
            "q/1",
            "once",
            QoS::ExactlyOnce,
            Some(7),
        )))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(rec) if rec.packet_id == pid(7)));
    drop(publisher); // before PUBREL

    let broker = restart(broker, dir.path(), 0).await;
    let (mut publisher, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "pub", 3600)).await;
    assert!(present);
    // The client did not see PUBREC (as far as the broker knows): it re-sends.
    let mut again = message("q/1", "once", QoS::ExactlyOnce, Some(7));
    again.dup = true;
    publisher.send(&Packet::Publish(again)).await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(rec) if rec.packet_id == pid(7)));
    publisher.send(&Packet::PubRel(PubRel::new(pid(7)))).await;
    assert!(
        matches!(publisher.recv().await, Packet::PubComp(c) if c.reason_code == protocol::ReasonCode::Success)
    );

    let (mut sub, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "sub", 3600)).await;
    let got = sub.receive_all().await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["once"]);
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn outbound_qos2_past_pubrec_gets_its_pubrel_not_the_message_again() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path())).await;
    let (mut sub, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "sub", 3600)).await;
    sub.subscribe(1, "q/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "pub")).await;
    publisher
        .publish(message("q/1", "a", QoS::ExactlyOnce, Some(1)))
        .await;
    publisher
        .publish(message("q/2", "b", QoS::ExactlyOnce, Some(2)))
        .await;
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    let first_id = first.packet_id.unwrap();
    sub.send(&Packet::PubRec(PubRec::new(first_id))).await;
    assert!(matches!(sub.recv().await, Packet::PubRel(rel) if rel.packet_id == first_id));
    drop(sub); // "a" is past PUBREC, "b" not acknowledged at all

    let broker = restart(broker, dir.path(), 0).await;
    let (mut sub, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "sub", 3600)).await;
    assert!(present);
    match sub.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, first_id),
        other => panic!("expected PUBREL for the released message, got {other:?}"),
    }
    sub.send(&Packet::PubComp(PubComp::new(first_id))).await;
    let resent = sub.recv_publish().await;
    assert_eq!(
        (text(&resent), resent.packet_id, resent.dup),
        ("b", second.packet_id, true)
    );
    sub.acknowledge(&resent).await;
    sub.expect_idle().await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retained_messages_and_queues_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path())).await;
    offline_subscriber(&broker, "sub", 3600, "q/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) =
        Peer::connected(broker.addr, clean(ProtocolVersion::V3_1_1, "pub")).await;
    let mut kept = message("r/kept", "v2", QoS::AtLeastOnce, Some(1));
    kept.retain = true;
    let mut gone = message("r/gone", "x", QoS::AtMostOnce, None);
    gone.retain = true;
    publisher.publish(gone).await;
    publisher
        .publish(message("r/kept", "v1", QoS::AtMostOnce, None))
        .await;
    publisher.publish(kept).await;
    let mut clear = message("r/gone", "", QoS::AtLeastOnce, Some(2));
    clear.retain = true;
    publisher.publish(clear).await;
    for n in 0..20u16 {
        let qos = if n % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publisher
            .publish(message(
                &format!("q/{n}"),
                &n.to_string(),
                qos,
                Some(10 + n),
            ))
            .await;
    }
    drop(publisher);

    let broker = restart(broker, dir.path(), 0).await;
    // What the start recovered is in $SYS (and /metrics).
    let sys = broker_server::internals::storage::sys_topics(&broker.broker().storage);
    let value = |key: &str| sys.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(value("store/backend").as_deref(), Some("redb"));
    assert_eq!(value("store/recovery/messages").as_deref(), Some("20"));
    assert_eq!(value("store/recovery/sessions").as_deref(), Some("1"));
    let (mut reader, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "reader")).await;
    reader.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    let got = reader.receive_all().await;
    assert_eq!(
        got.iter()
            .map(|p| (p.topic.to_string(), text(p).to_string()))
            .collect::<Vec<_>>(),
        [("r/kept".to_string(), "v2".to_string())]
    );
    let (mut sub, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "sub", 3600)).await;
    let got = sub.receive_all().await;
    let expected: Vec<String> = (0..20).map(|n: u16| n.to_string()).collect();
    assert_eq!(
        got.iter().map(|p| text(p).to_string()).collect::<Vec<_>>(),
        expected
    );
    sub.disconnect().await;

    // Everything delivered is gone from the store.
    let broker = restart(broker, dir.path(), 0).await;
    let (mut sub, _) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "sub", 3600)).await;
    sub.expect_idle().await;
    let stats = broker.broker().storage.stats();
    assert_eq!(
        broker_server::internals::storage::StoreStats::get(&stats.queued),
        0
    );
    broker.stop().await;
}
