//! Broker nodes end to end: three `broker-server`s in this test's process, each joined
//! to one real 3-node NATS JetStream cluster, with MQTT clients on different nodes.

use std::time::Duration;

use broker_server::Config;
use broker_server::cluster::config::ClusterBackend;
use protocol::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};

use crate::common::{PATIENCE, Peer, TestBroker, filter, memory_config, pid, publish};
use crate::nats::NatsCluster;

/// A node's configuration: in memory (its own sessions), joined to `nats` as `node`
/// under `prefix` (one per test, so tests sharing nothing else never see each other).
pub(crate) fn node_config(nats: &NatsCluster, prefix: &str, node: &str) -> Config {
    let mut config = memory_config();
    let cluster = &mut config.cluster;
    cluster.backend = ClusterBackend::Nats;
    cluster.node = Some(node.into());
    cluster.nats.urls = nats.urls();
    cluster.nats.prefix = prefix.into();
    cluster.shards = 2;
    cluster.heartbeat_secs = 1;
    cluster.node_ttl_secs = 3;
    config
}

/// `count` broker nodes `b1`, `b2`, … on `nats`.
pub(crate) async fn start_nodes(nats: &NatsCluster, prefix: &str, count: usize) -> Vec<TestBroker> {
    let mut nodes = Vec::new();
    for i in 1..=count {
        let config = node_config(nats, prefix, &format!("b{i}"));
        nodes.push(TestBroker::with_config(config).await);
    }
    nodes
}

async fn stop_all(nodes: Vec<TestBroker>) {
    for node in nodes {
        node.stop().await;
    }
}

/// A v5 CONNECT with a Session Expiry Interval (persistent when > 0).
fn connect_v5(client_id: &str, clean_start: bool, expiry: u32) -> Connect {
    let mut connect = Connect::new(ProtocolVersion::V5, client_id);
    connect.clean_start = clean_start;
    connect.properties.session_expiry_interval = Some(expiry);
    connect
}

/// Publishes at `qos` and completes the flow; returns the acknowledgement's reason.
async fn publish_acked(
    client: &mut Peer,
    topic: &str,
    payload: &str,
    qos: QoS,
    id: u16,
) -> ReasonCode {
    let packet_id = (qos != QoS::AtMostOnce).then_some(id);
    client
        .send_publish(publish(topic, payload, qos, packet_id))
        .await;
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => match client.recv().await {
            Packet::PubAck(ack) => ack.reason_code,
            other => panic!("expected PUBACK, got {other:?}"),
        },
        QoS::ExactlyOnce => {
            let rec = match client.recv().await {
                Packet::PubRec(rec) => rec,
                other => panic!("expected PUBREC, got {other:?}"),
            };
            if rec.reason_code as u8 >= 0x80 {
                return rec.reason_code;
            }
            client
                .send(&Packet::PubRel(protocol::PubRel::new(pid(id))))
                .await;
            match client.recv().await {
                Packet::PubComp(_) => rec.reason_code,
                other => panic!("expected PUBCOMP, got {other:?}"),
            }
        }
    }
}

/// Receives one PUBLISH and completes its flow as a subscriber.
async fn receive_acking(client: &mut Peer) -> protocol::Publish {
    receive_n(client, 1).await.remove(0)
}

/// Receives `n` PUBLISHes, acknowledging each as a subscriber (the broker may send the
/// next PUBLISH before a PUBREL), until every QoS 2 flow is complete.
async fn receive_n(client: &mut Peer, n: usize) -> Vec<protocol::Publish> {
    let mut got = Vec::new();
    let mut releasing = std::collections::HashSet::new();
    while got.len() < n || !releasing.is_empty() {
        match client.recv().await {
            Packet::Publish(publish) => {
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        client
                            .send(&Packet::PubAck(protocol::PubAck::new(id)))
                            .await
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        client
                            .send(&Packet::PubRec(protocol::PubRec::new(id)))
                            .await;
                        releasing.insert(id);
                    }
                    _ => {}
                }
                got.push(publish);
            }
            Packet::PubRel(rel) => {
                assert!(
                    releasing.remove(&rel.packet_id),
                    "PUBREL of an unknown flow"
                );
                client
                    .send(&Packet::PubComp(protocol::PubComp::new(rel.packet_id)))
                    .await;
            }
            other => panic!("expected PUBLISH or PUBREL, got {other:?}"),
        }
    }
    got
}

/// A subscription reaches the other nodes asynchronously: publishes probes on `via`
/// until `subscriber` gets one, then a fence, and drops everything up to the fence, so
/// what the test publishes next is neither raced nor mixed with probes.
async fn wait_routed(via: &mut Peer, subscriber: &mut Peer, topic: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        via.send_publish(publish(topic, "probe", QoS::AtMostOnce, None))
            .await;
        if let Ok(Some(Packet::Publish(p))) = subscriber.try_recv(Duration::from_millis(200)).await
            && &*p.topic == topic
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription never reached the publishing node"
        );
    }
    let fence = format!("fence-{}", fastrand::u64(..));
    via.send_publish(publish(topic, &fence, QoS::AtMostOnce, None))
        .await;
    loop {
        if let Packet::Publish(p) = subscriber.recv().await
            && p.payload[..] == *fence.as_bytes()
        {
            return;
        }
    }
}

#[tokio::test]
async fn publishes_at_every_qos_reach_subscribers_on_other_nodes() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e1", 3).await;
    let mut sub1 = nodes[0].client(ProtocolVersion::V5, "sub1").await;
    let mut sub2 = nodes[1].client(ProtocolVersion::V3_1_1, "sub2").await;
    let mut publisher = nodes[2].client(ProtocolVersion::V5, "pub3").await;
    // Two overlapping filters on one node and client: one delivery each (MQTT 5: the
    // broker sends one copy at the highest QoS).
    sub1.subscribe_many(1, &[("t/#", QoS::ExactlyOnce), ("t/+/x", QoS::AtLeastOnce)])
        .await;
    sub2.subscribe_many(1, &[("t/+/x", QoS::ExactlyOnce)]).await;
    wait_routed(&mut publisher, &mut sub1, "t/probe/x").await;
    wait_routed(&mut publisher, &mut sub2, "t/probe/x").await;
    // sub1 got sub2's probes too: both drop what came, up to a last fence.
    publisher
        .send_publish(publish("t/probe/x", "last-fence", QoS::AtMostOnce, None))
        .await;
    while !matches!(sub1.recv().await, Packet::Publish(p) if &p.payload[..] == b"last-fence") {}
    while !matches!(sub2.recv().await, Packet::Publish(p) if &p.payload[..] == b"last-fence") {}

    let topics = [
        "t/a.b/x",
        "t/*/x",
        "t/>/x",
        "t/with space/x",
        "t//x",
        "t/ünïcødé ✓/x",
        "t/%41/x",
    ];
    let mut id = 1;
    for (n, topic) in topics.iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("{n}-{}", qos as u8);
            let reason = publish_acked(&mut publisher, topic, &payload, qos, id).await;
            assert!(!reason.is_error(), "{topic} at {qos:?}: {reason:?}");
            id += 1;
            for subscriber in [&mut sub1, &mut sub2] {
                let got = receive_acking(subscriber).await;
                assert_eq!(&*got.topic, *topic);
                assert_eq!(&got.payload[..], payload.as_bytes());
                assert_eq!(got.qos, qos, "{topic}");
            }
        }
    }
    // No duplicates of anything above.
    sub1.expect_silence(Duration::from_millis(500)).await;
    sub2.expect_silence(Duration::from_millis(500)).await;

    // `#` does not match `$` topics, also across nodes.
    let mut dollar = nodes[0].client(ProtocolVersion::V5, "dollar").await;
    dollar.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
    wait_routed(&mut publisher, &mut dollar, "probe/any").await;
    publisher
        .send_publish(publish("$app/x", "hidden", QoS::AtMostOnce, None))
        .await;
    publisher
        .send_publish(publish("visible", "seen", QoS::AtMostOnce, None))
        .await;
    let got = dollar.recv_publish().await;
    assert_eq!(&*got.topic, "visible");
    stop_all(nodes).await;
}

#[tokio::test]
async fn a_retained_message_reaches_a_new_subscriber_on_another_node_until_cleared() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e2", 2).await;
    let mut publisher = nodes[0].client(ProtocolVersion::V5, "p").await;
    let mut retained = publish("home/kitchen/temp", "21.5", QoS::AtLeastOnce, Some(1));
    retained.retain = true;
    publisher.send_publish(retained).await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(ack) if !ack.reason_code.is_error()));

    let mut late = nodes[1].client(ProtocolVersion::V3_1_1, "late").await;
    late.subscribe_many(1, &[("home/+/temp", QoS::AtLeastOnce)])
        .await;
    let got = receive_acking(&mut late).await;
    assert!(got.retain, "sent as retained");
    assert_eq!(&got.payload[..], b"21.5");

    // An empty retained publish clears it everywhere.
    let mut clear = publish("home/kitchen/temp", "", QoS::AtLeastOnce, Some(2));
    clear.retain = true;
    publisher.send_publish(clear).await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    let _ = late.try_recv(Duration::from_millis(500)).await;
    let mut later = nodes[1].client(ProtocolVersion::V5, "later").await;
    later
        .subscribe_many(1, &[("home/#", QoS::AtLeastOnce)])
        .await;
    later.expect_silence(Duration::from_millis(500)).await;
    stop_all(nodes).await;
}

#[tokio::test]
async fn a_client_id_connecting_on_another_node_takes_the_session_over() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e3", 2).await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let id = format!("dev-{}", version as u8);
        let mut first = nodes[0].client(version, &id).await;
        let _second = nodes[1].client(version, &id).await;
        let seen = first.expect_closed().await;
        if version.is_v5() {
            assert!(
                seen.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == ReasonCode::SessionTakenOver)),
                "v5: DISCONNECT 0x8E before the close, got {seen:?}"
            );
        }
    }

    // Two CONNECTs with one id at once on two nodes: exactly one stays connected.
    let (mut a, mut b) = tokio::join!(
        nodes[0].raw(ProtocolVersion::V5),
        nodes[1].raw(ProtocolVersion::V5)
    );
    let (ack_a, ack_b) = tokio::join!(
        a.handshake(Connect::new(ProtocolVersion::V5, "racer")),
        b.handshake(Connect::new(ProtocolVersion::V5, "racer"))
    );
    assert_eq!(ack_a.reason_code, ReasonCode::Success);
    assert_eq!(ack_b.reason_code, ReasonCode::Success);
    // One of them is taken over (closed); the other stays and answers a PING.
    let survivor = tokio::select! {
        _ = a.expect_closed() => &mut b,
        _ = b.expect_closed() => &mut a,
    };
    assert!(
        still_open(survivor).await,
        "exactly one owner stays connected"
    );
    stop_all(nodes).await;
}

/// Whether the connection is open: it answers a PING.
async fn still_open(client: &mut Peer) -> bool {
    client.send(&Packet::PingReq).await;
    loop {
        match client.try_recv(PATIENCE).await {
            Ok(Some(Packet::PingResp)) => return true,
            Ok(Some(_)) => continue,
            _ => return false,
        }
    }
}

#[tokio::test]
async fn a_persistent_session_resumes_on_another_node_with_what_it_missed() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e4", 2).await;
    let mut device = nodes[0].raw(ProtocolVersion::V5).await;
    let ack = device.handshake(connect_v5("phone", true, 3600)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    device
        .subscribe_many(1, &[("alerts/#", QoS::ExactlyOnce)])
        .await;
    device.send(&Packet::Disconnect(Default::default())).await;
    drop(device);

    let mut publisher = nodes[0].client(ProtocolVersion::V5, "alarm").await;
    for (n, qos) in [
        (1, QoS::AtLeastOnce),
        (2, QoS::ExactlyOnce),
        (3, QoS::AtLeastOnce),
    ] {
        let reason = publish_acked(&mut publisher, "alerts/door", &format!("m{n}"), qos, n).await;
        assert!(!reason.is_error(), "{reason:?}");
    }

    let mut device = nodes[1].raw(ProtocolVersion::V5).await;
    let ack = device.handshake(connect_v5("phone", false, 3600)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(ack.session_present, "the session came from the other node");
    let got: Vec<_> = receive_n(&mut device, 3)
        .await
        .into_iter()
        .map(|p| (String::from_utf8(p.payload.to_vec()).unwrap(), p.qos))
        .collect();
    assert_eq!(
        got,
        vec![
            ("m1".to_string(), QoS::AtLeastOnce),
            ("m2".to_string(), QoS::ExactlyOnce),
            ("m3".to_string(), QoS::AtLeastOnce),
        ]
    );
    device.expect_silence(Duration::from_millis(500)).await;

    // The subscription moved with it: a new message reaches the device on its new node.
    let reason = publish_acked(&mut publisher, "alerts/window", "m4", QoS::ExactlyOnce, 9).await;
    assert!(!reason.is_error());
    let p = receive_acking(&mut device).await;
    assert_eq!(&p.payload[..], b"m4");
    device.expect_silence(Duration::from_millis(500)).await;
    stop_all(nodes).await;
}

#[tokio::test]
async fn losing_nats_quorum_refuses_what_must_be_durable_and_keeps_qos0_local() {
    let mut nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e6", 1).await;
    let mut sub = nodes[0].client(ProtocolVersion::V5, "local-sub").await;
    sub.subscribe_many(1, &[("q/#", QoS::AtLeastOnce)]).await;
    let mut publisher = nodes[0].client(ProtocolVersion::V5, "local-pub").await;

    // One NATS server of three down: everything works, once its streams elected new
    // leaders (JetStream takes no write meanwhile: a publish in that window may be
    // refused, never acknowledged and lost).
    nats.kill(0);
    nats.wait_ready().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut id = 1;
    loop {
        let reason = publish_acked(&mut publisher, "q/1", "one-down", QoS::AtLeastOnce, id).await;
        if !reason.is_error() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reason:?}");
        id += 1;
    }
    let got = receive_acking(&mut sub).await;
    assert_eq!(&got.payload[..], b"one-down");
    // A refused attempt may have reached the local subscriber too: drop those copies.
    while let Ok(Some(_)) = sub.try_recv(Duration::from_millis(300)).await {}

    // Two of three down: no quorum.
    nats.kill(1);
    let reason = publish_acked(&mut publisher, "q/2", "no-quorum", QoS::AtLeastOnce, 2).await;
    assert!(
        reason.is_error(),
        "QoS 1 refused without quorum, got {reason:?}"
    );
    // The local subscriber may have got it (it was routed here first); QoS 0 between
    // local clients keeps working.
    while let Ok(Some(_)) = sub.try_recv(Duration::from_millis(300)).await {}
    publisher
        .send_publish(publish("q/3", "local", QoS::AtMostOnce, None))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"local");
    // A persistent session cannot be recorded: refused.
    let mut persistent = nodes[0].raw(ProtocolVersion::V5).await;
    let ack = persistent.handshake(connect_v5("keeper", true, 600)).await;
    assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable);

    // Quorum back: QoS 1 is accepted again, by itself.
    nats.restart(0).await;
    nats.restart(1).await;
    nats.wait_ready().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut id = 10;
    loop {
        let reason = publish_acked(&mut publisher, "q/4", "back", QoS::AtLeastOnce, id).await;
        if !reason.is_error() {
            break;
        }
        id += 1;
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_all(nodes).await;
}

#[tokio::test]
async fn acls_hold_the_same_on_every_node() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read public/#\ntopic write public/#\n").unwrap();
    let mut nodes = Vec::new();
    for node in ["b1", "b2"] {
        let mut config = node_config(&nats, "e2e8", node);
        config.auth.acl_file = Some(acl.clone());
        nodes.push(TestBroker::with_config(config).await);
    }
    let mut reader = nodes[0].client(ProtocolVersion::V5, "reader").await;
    let codes = reader
        .subscribe_many(
            1,
            &[("public/#", QoS::AtMostOnce), ("secret/#", QoS::AtMostOnce)],
        )
        .await;
    assert!(!codes[0].is_error());
    assert_eq!(codes[1], ReasonCode::NotAuthorized);
    let mut writer = nodes[1].client(ProtocolVersion::V5, "writer").await;
    wait_routed(&mut writer, &mut reader, "public/probe").await;
    let reason = publish_acked(&mut writer, "secret/x", "no", QoS::AtLeastOnce, 1).await;
    assert_eq!(reason, ReasonCode::NotAuthorized);
    writer
        .send_publish(publish("public/x", "yes", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&reader.recv_publish().await.payload[..], b"yes");
    let _ = filter("x");
    stop_all(nodes).await;
}

#[tokio::test]
async fn a_shared_subscription_gives_each_message_to_one_member_cluster_wide() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e7", 3).await;
    let mut members = Vec::new();
    for (i, node) in nodes.iter().take(2).enumerate() {
        let mut member = node
            .client(ProtocolVersion::V5, &format!("worker{i}"))
            .await;
        member
            .subscribe_many(1, &[("$share/workers/jobs/#", QoS::AtLeastOnce)])
            .await;
        members.push(member);
    }
    // An ordinary subscriber beside the group gets everything.
    let mut audit = nodes[0].client(ProtocolVersion::V5, "audit").await;
    audit
        .subscribe_many(1, &[("jobs/#", QoS::AtLeastOnce)])
        .await;
    let mut publisher = nodes[2].client(ProtocolVersion::V5, "boss").await;
    wait_routed(&mut publisher, &mut audit, "jobs/probe").await;
    // The group's subscriptions reached NATS too: probes go to some member.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut reached = [false, false];
    while reached != [true, true] {
        publisher
            .send_publish(publish("jobs/probe", "probe", QoS::AtMostOnce, None))
            .await;
        for (i, member) in members.iter_mut().enumerate() {
            while let Ok(Some(Packet::Publish(_))) =
                member.try_recv(Duration::from_millis(100)).await
            {
                reached[i] = true;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "group never routed: {reached:?}"
        );
    }
    while let Ok(Some(_)) = audit.try_recv(Duration::from_millis(300)).await {}

    const JOBS: u16 = 40;
    for n in 1..=JOBS {
        let reason = publish_acked(
            &mut publisher,
            "jobs/x",
            &format!("job{n}"),
            QoS::AtLeastOnce,
            n,
        )
        .await;
        assert!(!reason.is_error(), "{reason:?}");
    }
    let mut seen = std::collections::BTreeMap::new();
    for (i, member) in members.iter_mut().enumerate() {
        loop {
            match member.try_recv(Duration::from_millis(1500)).await {
                Ok(Some(Packet::Publish(p))) => {
                    if let Some(id) = p.packet_id {
                        member
                            .send(&Packet::PubAck(protocol::PubAck::new(id)))
                            .await;
                    }
                    let job = String::from_utf8(p.payload.to_vec()).unwrap();
                    assert!(
                        seen.insert(job.clone(), i).is_none(),
                        "{job} reached two members"
                    );
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
    assert_eq!(
        seen.len(),
        usize::from(JOBS),
        "every job reached one member: {seen:?}"
    );
    assert_eq!(
        receive_n(&mut audit, usize::from(JOBS)).await.len(),
        usize::from(JOBS)
    );
    stop_all(nodes).await;
}

#[tokio::test]
async fn metrics_show_the_nats_connection_and_every_node() {
    let nats = NatsCluster::start().await;
    let nodes = start_nodes(&nats, "e2e9", 2).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = broker_server::internals::http::render(nodes[0].broker());
        if text.contains("\nmqtt_cluster_nodes 2\n") {
            assert!(text.contains("\nmqtt_cluster_nats_connected 1\n"), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node b1 never saw both nodes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A message across counts on both sides.
    let mut sub = nodes[1].client(ProtocolVersion::V5, "m-sub").await;
    sub.subscribe_many(1, &[("m/#", QoS::AtMostOnce)]).await;
    let mut publisher = nodes[0].client(ProtocolVersion::V5, "m-pub").await;
    wait_routed(&mut publisher, &mut sub, "m/x").await;
    let sent = broker_server::internals::http::render(nodes[0].broker());
    let received = broker_server::internals::http::render(nodes[1].broker());
    assert!(
        !sent.contains("\nmqtt_cluster_forwarded_total 0\n"),
        "{sent}"
    );
    assert!(
        !received.contains("\nmqtt_cluster_received_total 0\n"),
        "{received}"
    );
    stop_all(nodes).await;
}
