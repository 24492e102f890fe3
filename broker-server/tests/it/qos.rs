//! QoS 0, 1 and 2 through the broker, both directions, for 3.1.1 and 5.0: the flows,
//! delivery QoS = min(publish QoS, subscription QoS).

use crate::common;

use common::*;
use protocol::{Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, QoS, ReasonCode};

async fn qos_flows(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut sub = broker.in_process_client(version, "sub").await;
    assert_eq!(
        sub.subscribe_many(
            1,
            &[
                ("q/0", QoS::AtMostOnce),
                ("q/1", QoS::AtLeastOnce),
                ("q/2", QoS::ExactlyOnce)
            ]
        )
        .await,
        [
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2
        ]
    );
    let mut publisher = broker.in_process_client(version, "pub").await;

    // QoS 0 in, QoS 0 out.
    publisher
        .send_publish(publish("q/0", "zero", QoS::AtMostOnce, None))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (QoS::AtMostOnce, &b"zero"[..]));

    // QoS 1: PUBACK to the publisher, PUBLISH QoS 1 to the subscriber.
    publisher
        .send_publish(publish("q/1", "one", QoS::AtLeastOnce, Some(7)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(ack) if ack.packet_id == pid(7)));
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let id = got.packet_id.expect("QoS 1 has a packet id");
    sub.send(&Packet::PubAck(PubAck::new(id))).await;

    // QoS 2: PUBREC, PUBREL, PUBCOMP with the publisher; the same with the subscriber.
    publisher
        .send_publish(publish("q/2", "two", QoS::ExactlyOnce, Some(8)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(r) if r.packet_id == pid(8)));
    publisher.send(&Packet::PubRel(PubRel::new(pid(8)))).await;
    assert!(matches!(publisher.recv().await, Packet::PubComp(c) if c.packet_id == pid(8)));
    let got = sub.recv_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (QoS::ExactlyOnce, &b"two"[..]));
    let id = got.packet_id.unwrap();
    sub.send(&Packet::PubRec(PubRec::new(id))).await;
    assert!(matches!(sub.recv().await, Packet::PubRel(r) if r.packet_id == id));
    sub.send(&Packet::PubComp(PubComp::new(id))).await;

    // Delivery QoS is the minimum of publish and subscription QoS.
    publisher
        .send_publish(publish("q/0", "downgraded", QoS::ExactlyOnce, Some(9)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(_)));
    let got = sub.recv_publish().await;
    assert_eq!((got.qos, got.packet_id), (QoS::AtMostOnce, None));
    publisher
        .send_publish(publish("q/2", "upgraded?", QoS::AtMostOnce, None))
        .await;
    assert_eq!(sub.recv_publish().await.qos, QoS::AtMostOnce);
    broker.stop().await;
}

#[tokio::test]
async fn qos_flows_v311() {
    qos_flows(ProtocolVersion::V3_1_1).await;
}

#[tokio::test]
async fn qos_flows_v5() {
    qos_flows(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn qos2_duplicate_publish_is_delivered_once() {
    let broker = TestBroker::start().await;
    let mut sub = broker.in_process_client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("d", QoS::AtMostOnce)]).await;
    let mut publisher = broker.in_process_client(ProtocolVersion::V5, "pub").await;
    publisher
        .send_publish(publish("d", "once", QoS::ExactlyOnce, Some(3)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(_)));
    let mut again = publish("d", "once", QoS::ExactlyOnce, Some(3));
    again.dup = true;
    publisher.send_publish(again).await;
    assert!(
        matches!(publisher.recv().await, Packet::PubRec(_)),
        "re-sent PUBLISH gets PUBREC again"
    );
    assert_eq!(&sub.recv_publish().await.payload[..], b"once");
    sub.expect_silence(std::time::Duration::from_millis(300))
        .await;
    broker.stop().await;
}

/// A PUBREL the broker has no flow for (a QoS 2 flow it no longer knows, e.g. after a
/// reconnect) is still answered with PUBCOMP, 0x92 Packet Identifier not found in
/// MQTT 5 (§3.7.2.1), so the client's flow ends.
#[tokio::test]
async fn a_pubrel_for_an_unknown_packet_id_gets_pubcomp() {
    let broker = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut client = broker.in_process_client(version, "rel").await;
        client.send(&Packet::PubRel(PubRel::new(pid(9)))).await;
        let expected = if version.is_v5() {
            PubComp::with_reason(pid(9), ReasonCode::PacketIdentifierNotFound)
        } else {
            PubComp::new(pid(9))
        };
        assert_eq!(
            client.recv().await,
            Packet::PubComp(expected),
            "{version:?}"
        );
    }
    broker.stop().await;
}

/// MQTT 3.1 sets DUP on a PUBREL it re-sends after a reconnect (only 3.1.1 fixed the
/// flags at 0010): the broker must take it and answer PUBCOMP, whether it still has
/// the flow or not.
#[tokio::test]
async fn a_3_1_pubrel_with_dup_after_a_reconnect_gets_pubcomp() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V3_1;
    let persistent = || {
        let mut connect = protocol::Connect::new(version, "old-client");
        connect.clean_start = false;
        connect
    };
    let mut client = broker.in_process(version).await;
    client.handshake(persistent()).await;
    client
        .send_publish(publish("t", "two", QoS::ExactlyOnce, Some(5)))
        .await;
    assert_eq!(client.recv().await, Packet::PubRec(PubRec::new(pid(5))));
    drop(client);

    let mut client = broker.in_process(version).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The broker may still be closing the first connection: retry until accepted.
    loop {
        let connack = client.handshake(persistent()).await;
        if connack.reason_code == ReasonCode::Success {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{connack:?}");
        client = broker.in_process(version).await;
    }
    // PUBREL, DUP set, QoS 1: 0110 1010.
    client.send_bytes(&[0x6A, 0x02, 0x00, 0x05]).await;
    assert_eq!(client.recv().await, Packet::PubComp(PubComp::new(pid(5))));
    // And for a flow the broker never had.
    client.send_bytes(&[0x6A, 0x02, 0x00, 0x06]).await;
    assert_eq!(client.recv().await, Packet::PubComp(PubComp::new(pid(6))));
    broker.stop().await;
}

/// PUBACK, PUBREC or PUBCOMP for a packet identifier not in flight does not end the
/// connection (the spec makes none of them a protocol error; mosquitto ignores them):
/// PUBACK and PUBCOMP are ignored, PUBREC answered with PUBREL (0x92 in MQTT 5,
/// §3.6.2.1), and each is counted in `mqtt_unknown_acks_total`.
#[tokio::test]
async fn acknowledgements_for_packet_ids_not_in_flight_are_ignored_and_counted() {
    let broker = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut client = broker.in_process_client(version, "acks").await;
        client.send(&Packet::PubAck(PubAck::new(pid(4)))).await;
        client.send(&Packet::PubComp(PubComp::new(pid(5)))).await;
        client.send(&Packet::PubRec(PubRec::new(pid(6)))).await;
        let expected = if version.is_v5() {
            PubRel::with_reason(pid(6), ReasonCode::PacketIdentifierNotFound)
        } else {
            PubRel::new(pid(6))
        };
        assert_eq!(client.recv().await, Packet::PubRel(expected), "{version:?}");
        // Still connected, and nothing else was sent.
        client.send(&Packet::PingReq).await;
        assert_eq!(client.recv().await, Packet::PingResp, "{version:?}");
    }
    let counted = &broker.broker().metrics.acks_not_in_flight;
    assert_eq!(
        counted.by_packet(),
        [("puback", 2), ("pubrec", 2), ("pubrel", 0), ("pubcomp", 2)]
    );
    broker.stop().await;
}
