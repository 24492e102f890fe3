//! A broker node killed with SIGKILL under QoS 1 load: its clients resume on another
//! node without losing anything that was acknowledged, and the wills of its clients
//! are published once, by a survivor.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use protocol::{Connect, Packet, ProtocolVersion, PubAck, QoS, ReasonCode, Will};

use super::e2e::node_config;
use crate::common::{self, KillOnDrop, PATIENCE, Peer, TestBroker, publish};
use crate::nats::NatsCluster;

/// The killed node's setting: a shared subscription's unacknowledged message goes to
/// another member after 2 s.
const SHARED_ACK_WAIT: &[&str] = &["cluster.shared_ack_wait_secs=2"];

/// Messages published in all; the node dies after about half of them.
const MESSAGES: u32 = 200;

/// The `broker-server` binary as node `node` of the cluster on `nats` (subject prefix
/// `prefix`), with `extra` settings (`--set` values) after the common ones; its log in
/// `dir`; killed with SIGKILL when dropped.
pub(super) async fn spawn_node(
    nats: &NatsCluster,
    prefix: &str,
    node: &str,
    dir: &Path,
    extra: &[&str],
) -> (KillOnDrop, SocketAddr) {
    let log_path = dir.join(format!("{node}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let urls = nats
        .urls()
        .iter()
        .map(|url| format!("{url:?}"))
        .collect::<Vec<_>>()
        .join(",");
    let child = Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .args(["--tcp", "127.0.0.1:0"])
        .args(["--set", "http.listeners=[]", "--set", "sys.interval_secs=0"])
        .args(["--set", "storage.backend=\"memory\""])
        .args(["--set", "cluster.backend=\"nats\""])
        .args(["--set", &format!("cluster.node={node:?}")])
        .args(["--set", &format!("cluster.nats.urls=[{urls}]")])
        .args(["--set", &format!("cluster.nats.prefix={prefix:?}")])
        .args(["--set", "cluster.shards=2"])
        .args([
            "--set",
            "cluster.heartbeat_secs=1",
            "--set",
            "cluster.node_ttl_secs=3",
        ])
        .args(extra.iter().flat_map(|setting| ["--set", setting]))
        .args(["--log-level", "warn,broker_server::transport=info"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("broker-server starts");
    let child = KillOnDrop(child);
    let addr = common::bound_addr(&log_path).await;
    (child, addr)
}

fn persistent(client_id: &str, clean_start: bool) -> Connect {
    let mut connect = Connect::new(ProtocolVersion::V5, client_id);
    connect.clean_start = clean_start;
    connect.properties.session_expiry_interval = Some(3600);
    connect
}

/// Reads PUBLISHes (acknowledging QoS 1) until the connection closes or nothing comes
/// for `quiet`; adds their payloads to `got`.
async fn collect(client: &mut Peer, got: &mut BTreeSet<u32>, quiet: Duration) {
    loop {
        match client.try_recv(quiet).await {
            Ok(Some(Packet::Publish(p))) => {
                if let Some(id) = p.packet_id {
                    client.send(&Packet::PubAck(PubAck::new(id))).await;
                }
                if let Ok(n) = std::str::from_utf8(&p.payload).unwrap_or("").parse() {
                    got.insert(n);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(()) => return,
        }
    }
}

#[tokio::test]
async fn a_killed_node_s_clients_resume_elsewhere_and_its_wills_come_out_once() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (doomed, doomed_addr) = spawn_node(&nats, "fo", "b1", dir.path(), SHARED_ACK_WAIT).await;
    let survivor = TestBroker::with_config(node_config(&nats, "fo", "b2")).await;

    // On the survivor: who watches for wills, and the publisher.
    let mut watcher = survivor.client(ProtocolVersion::V5, "watcher").await;
    watcher
        .subscribe_many(1, &[("wills/#", QoS::AtLeastOnce)])
        .await;
    let mut publisher = survivor.client(ProtocolVersion::V5, "publisher").await;

    // On the doomed node: a device with a will, and a persistent-session subscriber.
    let mut device = Peer::open(doomed_addr, ProtocolVersion::V5).await.parking();
    let mut connect = Connect::new(ProtocolVersion::V5, "device");
    connect.will = Some(Will {
        topic: protocol::TopicName::new("wills/device").unwrap(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    assert_eq!(
        device.handshake(connect).await.reason_code,
        ReasonCode::Success
    );
    let mut subscriber = Peer::open(doomed_addr, ProtocolVersion::V5).await.parking();
    let ack = subscriber.handshake(persistent("subscriber", true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    subscriber
        .subscribe_many(1, &[("load/#", QoS::AtLeastOnce)])
        .await;
    // The subscription reached the survivor: a probe crosses.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publisher
            .send_publish(publish("load/probe", "probe", QoS::AtMostOnce, None))
            .await;
        if let Ok(Some(Packet::Publish(_))) = subscriber.try_recv(Duration::from_millis(200)).await
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never routed");
    }

    // QoS 1 load from the survivor; the subscriber's node dies halfway.
    let mut got = BTreeSet::new();
    let mut acked = BTreeSet::new();
    let mut doomed = Some(doomed);
    for n in 0..MESSAGES {
        let id = (n % 60_000 + 1) as u16;
        publisher
            .send_publish(publish(
                "load/x",
                &n.to_string(),
                QoS::AtLeastOnce,
                Some(id),
            ))
            .await;
        match publisher.recv().await {
            Packet::PubAck(ack) if !ack.reason_code.is_error() => {
                acked.insert(n);
            }
            other => panic!("message {n}: {other:?}"),
        }
        if n == MESSAGES / 2 {
            // Whatever arrived so far, then SIGKILL.
            collect(&mut subscriber, &mut got, Duration::from_millis(300)).await;
            drop(doomed.take());
        }
    }
    collect(&mut subscriber, &mut got, Duration::from_millis(300)).await;

    // The subscriber reconnects to the survivor and continues its session.
    let mut subscriber = survivor.raw(ProtocolVersion::V5).await;
    let ack = subscriber.handshake(persistent("subscriber", false)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(ack.session_present, "the session survived its node");
    collect(&mut subscriber, &mut got, Duration::from_secs(2)).await;
    let lost: Vec<_> = acked.difference(&got).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );

    // The subscription is live on the survivor too.
    publisher
        .send_publish(publish("load/x", "100000", QoS::AtLeastOnce, Some(9)))
        .await;
    let _ = publisher.recv().await;
    let mut after = BTreeSet::new();
    collect(&mut subscriber, &mut after, Duration::from_secs(1)).await;
    assert!(
        after.contains(&100_000),
        "live after the takeover: {after:?}"
    );

    // The device's will, once, from the survivor (the device never came back).
    let will = watcher.recv_publish().await;
    assert_eq!(&*will.topic, "wills/device");
    assert_eq!(&will.payload[..], b"gone");
    if let Some(id) = will.packet_id {
        watcher.send(&Packet::PubAck(PubAck::new(id))).await;
    }
    watcher.expect_silence(Duration::from_secs(2)).await;
    survivor.stop().await;
}

#[tokio::test]
async fn a_dead_node_s_unacknowledged_shared_messages_reach_a_member_elsewhere() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (doomed, doomed_addr) = spawn_node(&nats, "fs", "b1", dir.path(), SHARED_ACK_WAIT).await;
    let mut config = node_config(&nats, "fs", "b2");
    config.cluster.shared_ack_wait_secs = 2;
    let survivor = TestBroker::with_config(config).await;

    // A member on each node; the doomed node's member never acknowledges anything.
    let mut stuck = Peer::open(doomed_addr, ProtocolVersion::V5).await.parking();
    assert_eq!(
        stuck
            .handshake(Connect::new(ProtocolVersion::V5, "stuck"))
            .await
            .reason_code,
        ReasonCode::Success
    );
    stuck
        .subscribe_many(1, &[("$share/workers/jobs/#", QoS::AtLeastOnce)])
        .await;
    let mut worker = survivor.client(ProtocolVersion::V5, "worker").await;
    worker
        .subscribe_many(1, &[("$share/workers/jobs/#", QoS::AtLeastOnce)])
        .await;
    let mut publisher = survivor.client(ProtocolVersion::V5, "boss").await;

    // Jobs until the stuck member holds some (its node got them from the group).
    let mut stuck_holds = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut n: u32 = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stuck_holds.len() < 3 {
        n += 1;
        let id = (n % 60_000 + 1) as u16;
        publisher
            .send_publish(publish(
                "jobs/x",
                &n.to_string(),
                QoS::AtLeastOnce,
                Some(id),
            ))
            .await;
        assert!(
            matches!(publisher.recv().await, Packet::PubAck(ack) if !ack.reason_code.is_error())
        );
        while let Ok(Some(Packet::Publish(p))) = stuck.try_recv(Duration::from_millis(20)).await {
            stuck_holds.insert(
                std::str::from_utf8(&p.payload)
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
            );
        }
        collect(&mut worker, &mut done, Duration::from_millis(20)).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck member got nothing"
        );
    }
    drop(doomed); // SIGKILL, with the stuck member's jobs unacknowledged

    // Every job reaches the surviving member (after the group's ack wait).
    let published: BTreeSet<u32> = (1..=n).collect();
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    while done != published {
        collect(&mut worker, &mut done, Duration::from_millis(500)).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached a member: {:?} (the stuck member held {stuck_holds:?}, the other got {done:?})",
            published.difference(&done).collect::<Vec<_>>()
        );
    }
    survivor.stop().await;
}
