//! Shared subscriptions `$share/{group}/{filter}` (§4.8.2): one member of each group
//! gets each message; `sessions.shared_strategy` round-robin, random and sticky; groups
//! and ordinary subscribers each get their copy; and the messages a departed member did
//! not acknowledge go to the rest of its group.
//!
//! Every member also holds an ordinary subscription to `marker`: the publisher sends the
//! jobs, then one `marker`, so a member reading up to its marker has seen every job the
//! group gave it (routing keeps one publisher's order in every mailbox).

use crate::common;

use std::collections::BTreeSet;
use std::num::NonZeroU16;
use std::time::Duration;

use broker_server::config::SharedStrategy;
use common::*;
use protocol::{
    Connect, Packet, ProtocolVersion, PubAck, PubRec, PubRel, Publish, QoS, ReasonCode,
};

const JOBS: &str = "$share/workers/jobs/+";

/// A member of `JOBS` at `qos` that also subscribes to `marker`.
async fn member(broker: &TestBroker, version: ProtocolVersion, id: &str, qos: QoS) -> Peer {
    let mut client = broker.client(version, id).await;
    member_subscribe(&mut client, JOBS, qos).await;
    client
}

async fn member_subscribe(client: &mut Peer, group: &str, qos: QoS) {
    let granted = client
        .subscribe_many(1, &[(group, qos), ("marker", QoS::AtMostOnce)])
        .await;
    assert_eq!(granted[1], ReasonCode::GRANTED_QOS_0);
}

/// Publishes `count` QoS 0 jobs `{prefix}{n}` on `jobs/{n}`, then the marker.
async fn publish_jobs(publisher: &mut Peer, prefix: &str, count: usize) {
    for n in 0..count {
        let topic = format!("jobs/{n}");
        publisher
            .send_publish(publish(
                &topic,
                &format!("{prefix}{n}"),
                QoS::AtMostOnce,
                None,
            ))
            .await;
    }
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
}

/// The job payloads a client receives before its marker (QoS 1 jobs acknowledged).
async fn jobs_until_marker(client: &mut Peer) -> Vec<String> {
    let mut jobs = Vec::new();
    loop {
        let p = client.recv_publish().await;
        if &p.payload[..] == b"marker" {
            return jobs;
        }
        if p.qos == QoS::AtLeastOnce {
            client
                .send(&Packet::PubAck(PubAck::new(p.packet_id.unwrap())))
                .await;
        }
        jobs.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
}

/// Asserts that the members' jobs together are `{prefix}0..count`, each exactly once.
fn assert_each_job_once(per_member: &[Vec<String>], prefix: &str, count: usize) {
    let all: Vec<&String> = per_member.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    let expected: BTreeSet<String> = (0..count).map(|n| format!("{prefix}{n}")).collect();
    assert_eq!(all.len(), count, "each job delivered once: {per_member:?}");
    assert_eq!(distinct, expected.iter().collect(), "{per_member:?}");
}

/// Waits (bounded by [`PATIENCE`]) until `condition` holds: for the broker's side of a
/// client going away, which no packet announces.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn wait_offline(broker: &TestBroker, client_id: &str) {
    eventually(client_id, || {
        !broker
            .broker()
            .session(client_id)
            .is_some_and(|s| s.is_online())
    })
    .await;
}

async fn broker_with(strategy: SharedStrategy) -> TestBroker {
    let mut config = test_config();
    config.sessions.shared_strategy = strategy;
    TestBroker::with_config(config).await
}

#[tokio::test]
async fn round_robin_gives_each_message_to_one_member_and_spreads_evenly() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let broker = broker_with(SharedStrategy::RoundRobin).await;
        let mut members = Vec::new();
        for id in ["w1", "w2", "w3"] {
            members.push(member(&broker, version, id, QoS::AtMostOnce).await);
        }
        let mut publisher = broker.client(version, "pub").await;
        publish_jobs(&mut publisher, "job", 30).await;
        let mut per_member = Vec::new();
        for m in &mut members {
            per_member.push(jobs_until_marker(m).await);
        }
        assert_each_job_once(&per_member, "job", 30);
        for jobs in &per_member {
            assert_eq!(jobs.len(), 10, "{per_member:?}");
        }
        broker.stop().await;
    }
}

#[tokio::test]
async fn round_robin_skips_members_that_are_offline() {
    let broker = broker_with(SharedStrategy::RoundRobin).await;
    let mut offline = persistent_member(&broker, "sleeper").await;
    offline
        .send(&Packet::Disconnect(protocol::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    offline.expect_closed().await;
    wait_offline(&broker, "sleeper").await;
    let mut awake = member(&broker, ProtocolVersion::V5, "awake", QoS::AtLeastOnce).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_jobs(&mut publisher, "job", 6).await;
    assert_eq!(jobs_until_marker(&mut awake).await.len(), 6);
    // The offline member's session queued none of them.
    let mut back = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "sleeper");
    connect.clean_start = false;
    assert!(back.handshake(connect).await.session_present);
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
    assert!(jobs_until_marker(&mut back).await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn random_strategy_gives_each_message_to_one_online_member() {
    let broker = broker_with(SharedStrategy::Random).await;
    drop(persistent_member(&broker, "sleeper").await);
    wait_offline(&broker, "sleeper").await;
    let mut members = Vec::new();
    for id in ["w1", "w2"] {
        members.push(member(&broker, ProtocolVersion::V5, id, QoS::AtMostOnce).await);
    }
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_jobs(&mut publisher, "job", 100).await;
    let mut per_member = Vec::new();
    for m in &mut members {
        per_member.push(jobs_until_marker(m).await);
    }
    assert_each_job_once(&per_member, "job", 100);
    // Not a fixed member: with 100 random picks, both get some (fails with p = 2^-99).
    assert!(
        per_member.iter().all(|jobs| !jobs.is_empty()),
        "{per_member:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn sticky_strategy_keeps_one_member_until_it_goes_offline() {
    let broker = broker_with(SharedStrategy::Sticky).await;
    let mut members = Vec::new();
    for id in ["w1", "w2", "w3"] {
        members.push(member(&broker, ProtocolVersion::V5, id, QoS::AtMostOnce).await);
    }
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_jobs(&mut publisher, "a", 10).await;
    let mut per_member = Vec::new();
    for m in &mut members {
        per_member.push(jobs_until_marker(m).await);
    }
    assert_each_job_once(&per_member, "a", 10);
    let chosen = per_member
        .iter()
        .position(|jobs| jobs.len() == 10)
        .expect("one member got all");

    // The chosen member leaves: another one takes over, and keeps every message too.
    drop(members.remove(chosen));
    let group = filter(JOBS);
    eventually("the member to leave the group", || {
        broker.broker().router.shared_members(&group).len() == 2
    })
    .await;
    publish_jobs(&mut publisher, "b", 10).await;
    let mut per_member = Vec::new();
    for m in &mut members {
        per_member.push(jobs_until_marker(m).await);
    }
    assert_each_job_once(&per_member, "b", 10);
    assert!(
        per_member.iter().any(|jobs| jobs.len() == 10),
        "{per_member:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn two_groups_and_an_ordinary_subscriber_each_get_a_copy() {
    let broker = TestBroker::start().await;
    let mut group_a = Vec::new();
    let mut group_b = Vec::new();
    for id in ["a1", "a2"] {
        let mut c = broker.client(ProtocolVersion::V5, id).await;
        member_subscribe(&mut c, "$share/a/jobs/+", QoS::AtLeastOnce).await;
        group_a.push(c);
    }
    for id in ["b1", "b2", "b3"] {
        let mut c = broker.client(ProtocolVersion::V3_1_1, id).await;
        member_subscribe(&mut c, "$share/b/jobs/+", QoS::AtMostOnce).await;
        group_b.push(c);
    }
    let mut plain = broker.client(ProtocolVersion::V5, "plain").await;
    member_subscribe(&mut plain, "jobs/#", QoS::AtMostOnce).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_jobs(&mut publisher, "job", 12).await;
    for group in [&mut group_a, &mut group_b] {
        let mut per_member = Vec::new();
        for m in group.iter_mut() {
            per_member.push(jobs_until_marker(m).await);
        }
        assert_each_job_once(&per_member, "job", 12);
    }
    assert_each_job_once(&[jobs_until_marker(&mut plain).await], "job", 12);
    broker.stop().await;
}

#[tokio::test]
async fn a_member_with_its_own_ordinary_subscription_gets_both_copies() {
    let broker = TestBroker::start().await;
    let mut both = broker.client(ProtocolVersion::V5, "both").await;
    member_subscribe(&mut both, JOBS, QoS::AtMostOnce).await;
    both.subscribe_many(2, &[("jobs/#", QoS::AtMostOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_jobs(&mut publisher, "job", 1).await;
    assert_eq!(jobs_until_marker(&mut both).await, ["job0", "job0"]);
    broker.stop().await;
}

// ---- re-delivery of a departed member's unacknowledged messages -------------------

/// A v5 member with a persistent session (expiry 300 s), subscribed at QoS 1.
async fn persistent_member(broker: &TestBroker, id: &str) -> Peer {
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, id);
    connect.properties.session_expiry_interval = Some(300);
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::Success
    );
    member_subscribe(&mut client, JOBS, QoS::AtLeastOnce).await;
    client
}

/// A v5 member with a clean session and Receive Maximum `window`.
async fn windowed_member(broker: &TestBroker, id: &str, window: u16, qos: QoS) -> Peer {
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, id);
    connect.properties.receive_maximum = NonZeroU16::new(window);
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::Success
    );
    member_subscribe(&mut client, JOBS, qos).await;
    client
}

/// Publishes `count` QoS `qos` jobs and waits for each acknowledgement, so all are
/// routed when it returns.
async fn publish_acked(publisher: &mut Peer, prefix: &str, count: u16, qos: QoS) {
    for n in 0..count {
        let topic = format!("jobs/{n}");
        publisher
            .send_publish(publish(&topic, &format!("{prefix}{n}"), qos, Some(n + 1)))
            .await;
        match publisher.recv().await {
            Packet::PubAck(_) => {}
            Packet::PubRec(rec) => {
                publisher
                    .send(&Packet::PubRel(PubRel::new(rec.packet_id)))
                    .await;
                assert!(matches!(publisher.recv().await, Packet::PubComp(_)));
            }
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }
}

fn payload(p: &Publish) -> String {
    String::from_utf8(p.payload.to_vec()).unwrap()
}

#[tokio::test]
async fn departed_members_unacknowledged_messages_go_to_the_rest_of_its_group() {
    let broker = TestBroker::start().await;
    // Alone in the group, with room for two messages in flight: two are sent, three wait
    // in its mailbox.
    let mut leaving = windowed_member(&broker, "leaving", 2, QoS::AtLeastOnce).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_acked(&mut publisher, "job", 5, QoS::AtLeastOnce).await;
    let first = leaving.recv_publish().await;
    let second = leaving.recv_publish().await;
    assert_eq!(
        (payload(&first), payload(&second)),
        ("job0".into(), "job1".into())
    );

    let mut staying = member(&broker, ProtocolVersion::V5, "staying", QoS::AtLeastOnce).await;
    drop(leaving);
    // All five reach the remaining member, in their order, as first deliveries.
    for n in 0..5 {
        let p = staying.recv_publish().await;
        assert_eq!(payload(&p), format!("job{n}"));
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(!p.dup, "a first delivery to this client");
        staying
            .send(&Packet::PubAck(PubAck::new(p.packet_id.unwrap())))
            .await;
    }
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
    assert!(
        jobs_until_marker(&mut staying).await.is_empty(),
        "nothing twice"
    );
    broker.stop().await;
}

#[tokio::test]
async fn acknowledged_and_received_shared_messages_are_not_delivered_again() {
    let broker = TestBroker::start().await;
    let mut leaving = member(&broker, ProtocolVersion::V5, "leaving", QoS::ExactlyOnce).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_acked(&mut publisher, "job", 3, QoS::ExactlyOnce).await;
    let (p0, p1, p2) = (
        leaving.recv_publish().await,
        leaving.recv_publish().await,
        leaving.recv_publish().await,
    );
    // job0 completes, job1 has arrived (PUBREC), job2 is unacknowledged.
    let id0 = p0.packet_id.unwrap();
    leaving.send(&Packet::PubRec(PubRec::new(id0))).await;
    assert!(matches!(leaving.recv().await, Packet::PubRel(_)));
    leaving
        .send(&Packet::PubComp(protocol::PubComp::new(id0)))
        .await;
    leaving
        .send(&Packet::PubRec(PubRec::new(p1.packet_id.unwrap())))
        .await;
    assert!(matches!(leaving.recv().await, Packet::PubRel(_)));
    assert_eq!(payload(&p2), "job2");

    let mut staying = member(&broker, ProtocolVersion::V5, "staying", QoS::ExactlyOnce).await;
    leaving
        .send(&Packet::Disconnect(protocol::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    let p = staying.recv_publish().await;
    assert_eq!((payload(&p), p.qos), ("job2".into(), QoS::ExactlyOnce));
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
    assert!(
        jobs_until_marker(&mut staying).await.is_empty(),
        "job0 and job1 are not sent again"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_v311_clean_session_members_messages_go_to_the_rest_of_its_group() {
    let mut config = test_config();
    config.limits.max_inflight = 1;
    let broker = TestBroker::with_config(config).await;
    let mut leaving = member(
        &broker,
        ProtocolVersion::V3_1_1,
        "leaving",
        QoS::AtLeastOnce,
    )
    .await;
    let mut publisher = broker.client(ProtocolVersion::V3_1_1, "pub").await;
    publish_acked(&mut publisher, "job", 3, QoS::AtLeastOnce).await;
    assert_eq!(payload(&leaving.recv_publish().await), "job0");
    let mut staying = member(&broker, ProtocolVersion::V3_1_1, "staying", QoS::AtMostOnce).await;
    drop(leaving);
    // Delivered at the remaining member's QoS.
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let p = staying.recv_publish().await;
        if &p.payload[..] == b"marker" {
            continue;
        }
        assert_eq!(p.qos, QoS::AtMostOnce);
        got.push(payload(&p));
    }
    assert_eq!(got, ["job0", "job1", "job2"]);
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_persistent_member_keeps_its_messages_until_its_session_expires() {
    let broker = TestBroker::with_config(memory_config()).await;
    let mut leaving = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "leaving");
    connect.keep_alive = 0;
    connect.properties.session_expiry_interval = Some(30);
    leaving.handshake(connect).await;
    member_subscribe(&mut leaving, JOBS, QoS::AtLeastOnce).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publish_acked(&mut publisher, "job", 2, QoS::AtLeastOnce).await;
    assert_eq!(payload(&leaving.recv_publish().await), "job0");
    let mut staying = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "staying");
    connect.keep_alive = 0;
    staying.handshake(connect).await;
    member_subscribe(&mut staying, JOBS, QoS::AtLeastOnce).await;
    drop(leaving);
    wait_offline(&broker, "leaving").await;

    // The session lives on: its messages wait for it.
    tokio::time::advance(Duration::from_secs(20)).await;
    publisher
        .send_publish(publish("marker", "marker", QoS::AtMostOnce, None))
        .await;
    assert!(jobs_until_marker(&mut staying).await.is_empty());
    // It expires: the rest of the group gets them.
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut got = vec![payload(&staying.recv_publish().await)];
    got.push(payload(&staying.recv_publish().await));
    assert_eq!(got, ["job0", "job1"]);
    broker.stop().await;
}
