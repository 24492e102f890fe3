//! Message delivery retry (§4.4) and flow control (§4.9): unacknowledged QoS 1 and 2
//! messages are re-sent with DUP set and their original packet identifiers when a
//! persistent session resumes, PUBREL is re-sent for those past PUBREC, an inbound
//! QoS 2 message re-sent across a reconnect is delivered once, and no more QoS 1 and 2
//! messages are in flight to a client than its window allows.

use crate::common;
use crate::peer;

use common::{TestBroker, test_config};
use peer::*;
use protocol::{Connect, Packet, ProtocolVersion, PubComp, PubRel, Publish, QoS};

/// Drops `client`'s socket without DISCONNECT and waits until the broker has stored its
/// session.
async fn lose_connection(broker: &TestBroker, client: Peer, client_id: &str) {
    drop(client);
    wait_until("broker noticed the lost connection", || {
        broker
            .broker()
            .session(client_id)
            .is_some_and(|s| !s.is_online())
    })
    .await;
}

/// A persistent subscriber `sub` on `r/#` at `qos`, and a connected publisher.
async fn subscriber_and_publisher(
    broker: &TestBroker,
    version: ProtocolVersion,
    qos: QoS,
) -> (Peer, Peer) {
    let (mut sub, _) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    sub.subscribe(1, "r/#", qos).await;
    let (publisher, _) = Peer::connected(broker.addr, clean(version, "pub")).await;
    (sub, publisher)
}

async fn unacknowledged_qos1_is_resent_with_dup_and_its_packet_id(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut sub, mut publisher) =
        subscriber_and_publisher(&broker, version, QoS::AtLeastOnce).await;
    publisher
        .publish(message("r/a", "first", QoS::AtLeastOnce, Some(1)))
        .await;
    let first = sub.recv_publish().await;
    assert!(!first.dup);
    lose_connection(&broker, sub, "sub").await;
    // Queued while offline: goes out after the re-sent one, as a first attempt.
    publisher
        .publish(message("r/b", "second", QoS::AtLeastOnce, Some(2)))
        .await;

    let (mut sub, present) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    assert!(present);
    let again = sub.recv_publish().await;
    assert!(again.dup, "re-delivery sets DUP [MQTT-3.3.1-1]");
    assert_eq!(
        (again.packet_id, text(&again), again.qos),
        (first.packet_id, "first", QoS::AtLeastOnce),
        "same message, original packet identifier [MQTT-4.4.0-1]"
    );
    sub.acknowledge(&again).await;
    let rest = sub.receive_all().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!((text(&rest[0]), rest[0].dup), ("second", false));
    broker.stop().await;
}
each_version!(unacknowledged_qos1_is_resent_with_dup_and_its_packet_id);

/// A takeover hands the new connection the old one's unacknowledged messages.
async fn takeover_resends_the_unacknowledged_messages(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut old, mut publisher) =
        subscriber_and_publisher(&broker, version, QoS::AtLeastOnce).await;
    publisher
        .publish(message("r/a", "unacked", QoS::AtLeastOnce, Some(1)))
        .await;
    let first = old.recv_publish().await;

    let (mut new, present) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    assert!(present);
    old.expect_closed().await;
    let again = new.recv_publish().await;
    assert_eq!(
        (again.packet_id, again.dup, text(&again)),
        (first.packet_id, true, "unacked")
    );
    new.acknowledge(&again).await;
    new.expect_idle().await;
    broker.stop().await;
}
each_version!(takeover_resends_the_unacknowledged_messages);

/// Two QoS 2 messages: `x` got PUBREC (and its PUBREL came), `y` got nothing. After the
/// reconnect the broker re-sends PUBREL for `x` and PUBLISH (DUP) for `y`, in that
/// (original) order, and never `x`'s PUBLISH again.
async fn qos2_resends_pubrel_past_pubrec_and_publish_before_it(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut sub, mut publisher) =
        subscriber_and_publisher(&broker, version, QoS::ExactlyOnce).await;
    publisher
        .publish(message("r/x", "x", QoS::ExactlyOnce, Some(1)))
        .await;
    publisher
        .publish(message("r/y", "y", QoS::ExactlyOnce, Some(2)))
        .await;
    let x = sub.recv_publish().await;
    let y = sub.recv_publish().await;
    let (x_id, y_id) = (x.packet_id.unwrap(), y.packet_id.unwrap());
    sub.send(&Packet::PubRec(protocol::PubRec::new(x_id))).await;
    match sub.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, x_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    lose_connection(&broker, sub, "sub").await;

    let (mut sub, present) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    assert!(present);
    match sub.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, x_id, "PUBREL re-sent [MQTT-4.4.0-1]"),
        other => panic!("expected the PUBREL of x first, got {other:?}"),
    }
    let again = sub.recv_publish().await;
    assert_eq!(
        (again.packet_id, again.dup, text(&again)),
        (Some(y_id), true, "y")
    );
    sub.send(&Packet::PubComp(PubComp::new(x_id))).await;
    sub.acknowledge(&again).await;
    let rest = sub.receive_all().await;
    assert!(rest.is_empty(), "x is not sent again: {rest:?}");
    broker.stop().await;
}
each_version!(qos2_resends_pubrel_past_pubrec_and_publish_before_it);

/// The publisher's QoS 2 message got PUBREC, then its connection dropped before PUBREL.
/// It reconnects and re-sends the PUBLISH with DUP (as a client does): the broker
/// answers PUBREC again and does not route the message a second time (§4.3.3).
async fn inbound_qos2_is_delivered_once_across_a_reconnect(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut sub, _) = Peer::connected(broker.addr, clean(version, "sub")).await;
    sub.subscribe(1, "r/#", QoS::AtLeastOnce).await;

    let (mut publisher, _) = Peer::connected(broker.addr, persistent(version, "pub", 600)).await;
    let once = message("r/once", "once", QoS::ExactlyOnce, Some(7));
    publisher.send(&Packet::Publish(once.clone())).await;
    match publisher.recv().await {
        Packet::PubRec(rec) => assert_eq!(rec.packet_id, pid(7)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    lose_connection(&broker, publisher, "pub").await;

    let (mut publisher, present) =
        Peer::connected(broker.addr, persistent(version, "pub", 600)).await;
    assert!(present);
    let mut resent = once;
    resent.dup = true;
    publisher.send(&Packet::Publish(resent)).await;
    match publisher.recv().await {
        Packet::PubRec(rec) => assert_eq!(rec.packet_id, pid(7)),
        other => panic!("expected PUBREC for the re-sent PUBLISH, got {other:?}"),
    }
    publisher.send(&Packet::PubRel(PubRel::new(pid(7)))).await;
    match publisher.recv().await {
        Packet::PubComp(comp) => assert_eq!(comp.packet_id, pid(7)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    publisher
        .publish(message("r/after", "after", QoS::AtLeastOnce, Some(8)))
        .await;

    let got = sub.receive_all().await;
    let payloads: Vec<&str> = got.iter().map(text).collect();
    assert_eq!(payloads, ["once", "after"], "exactly once");
    broker.stop().await;
}
each_version!(inbound_qos2_is_delivered_once_across_a_reconnect);

/// Five QoS 1 messages for a client whose window is 2: two at a time, the next one
/// only when one is acknowledged, in order.
async fn window_of_two(broker: &TestBroker, connect: Connect) {
    let (mut sub, _) = Peer::connected(broker.addr, connect).await;
    sub.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "pub")).await;
    for n in 1..=5u16 {
        let payload = format!("m{n}");
        publisher
            .publish(message("r/w", &payload, QoS::AtLeastOnce, Some(n)))
            .await;
    }
    let payloads = |got: &[Publish]| got.iter().map(|p| text(p).to_string()).collect::<Vec<_>>();

    let first = sub.drain().await;
    assert_eq!(payloads(&first), ["m1", "m2"], "at most 2 unacknowledged");
    sub.acknowledge(&first[0]).await;
    let third = sub.drain().await;
    assert_eq!(
        payloads(&third),
        ["m3"],
        "one acknowledgement frees one slot"
    );
    sub.acknowledge(&first[1]).await;
    sub.acknowledge(&third[0]).await;
    let rest = sub.drain().await;
    assert_eq!(payloads(&rest), ["m4", "m5"]);
    for p in &rest {
        sub.acknowledge(p).await;
    }
    sub.expect_idle().await;
}

#[tokio::test]
async fn v5_inflight_window_is_the_client_receive_maximum() {
    let broker = TestBroker::start().await;
    let mut connect = clean(ProtocolVersion::V5, "sub");
    connect.properties.receive_maximum = Some(pid(2));
    window_of_two(&broker, connect).await;
    broker.stop().await;
}

#[tokio::test]
async fn v311_inflight_window_is_max_inflight() {
    // 3.1.1 clients have no Receive Maximum: the broker's own bound applies.
    let mut config = test_config();
    config.limits.max_inflight = 2;
    let broker = TestBroker::with_config(config).await;
    window_of_two(&broker, clean(ProtocolVersion::V3_1_1, "sub")).await;
    broker.stop().await;
}

#[tokio::test]
async fn v5_inflight_window_is_the_smaller_of_receive_maximum_and_max_inflight() {
    let mut config = test_config();
    config.limits.max_inflight = 2;
    let broker = TestBroker::with_config(config).await;
    let mut connect = clean(ProtocolVersion::V5, "sub");
    connect.properties.receive_maximum = Some(pid(10));
    window_of_two(&broker, connect).await;
    broker.stop().await;
}

/// The window is set anew by each connection (§4.9): messages re-sent on resumption
/// count against the new Receive Maximum.
#[tokio::test]
async fn v5_resent_messages_respect_the_new_receive_maximum() {
    let broker = TestBroker::start().await;
    let v5 = ProtocolVersion::V5;
    let (mut sub, mut publisher) = subscriber_and_publisher(&broker, v5, QoS::AtLeastOnce).await;
    for n in 1..=2u16 {
        publisher
            .publish(message("r/w", &format!("m{n}"), QoS::AtLeastOnce, Some(n)))
            .await;
    }
    assert_eq!(sub.drain().await.len(), 2);
    lose_connection(&broker, sub, "sub").await;

    let mut connect = persistent(v5, "sub", 600);
    connect.properties.receive_maximum = Some(pid(1));
    let (mut sub, present) = Peer::connected(broker.addr, connect).await;
    assert!(present);
    let first = sub.drain().await;
    assert_eq!(
        first.iter().map(text).collect::<Vec<_>>(),
        ["m1"],
        "one at a time"
    );
    assert!(first[0].dup);
    sub.acknowledge(&first[0]).await;
    let second = sub.drain().await;
    assert_eq!(second.iter().map(text).collect::<Vec<_>>(), ["m2"]);
    assert!(second[0].dup);
    sub.acknowledge(&second[0]).await;
    sub.expect_idle().await;
    broker.stop().await;
}
