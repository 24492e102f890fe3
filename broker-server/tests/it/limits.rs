//! Configured limits as clients see them: `limits.max_connections` (CONNACK 0x97 /
//! 3.1.1 return code 3), `limits.max_subscriptions_per_client` (SUBACK 0x97),
//! `limits.max_topic_levels` and `max_topic_length` (PUBLISH: DISCONNECT 0x90;
//! SUBSCRIBE: SUBACK 0x8F), and `limits.max_inflight`, advertised as Receive Maximum and
//! enforced both ways.

use crate::common;

use std::num::NonZeroU16;
use std::time::Duration;

use broker_server::Config;
use common::*;
use protocol::{Connect, Packet, ProtocolVersion, PubAck, QoS, ReasonCode};

async fn broker_with(configure: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = test_config();
    configure(&mut config);
    TestBroker::with_config(config).await
}

/// Waits (bounded by [`PATIENCE`]) until `condition` holds.
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

/// Publishes a QoS 0 marker on `topic` from `publisher`; `subscriber` must read it as
/// its next PUBLISH (nothing else was delivered in between).
async fn assert_next_is_marker(publisher: &mut Peer, subscriber: &mut Peer, topic: &str) {
    publisher
        .send_publish(publish(topic, "marker", QoS::AtMostOnce, None))
        .await;
    let got = subscriber.recv_publish().await;
    assert_eq!((&got.topic[..], &got.payload[..]), (topic, &b"marker"[..]));
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused() {
    let broker = broker_with(|c| c.limits.max_connections = 2).await;
    let mut first = broker.client(ProtocolVersion::V5, "first").await;
    first.subscribe_many(1, &[("t", QoS::AtMostOnce)]).await;
    let mut second = broker.client(ProtocolVersion::V3_1_1, "second").await;

    let mut refused = broker.raw(ProtocolVersion::V5).await;
    let connack = refused
        .handshake(Connect::new(ProtocolVersion::V5, "third"))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::QuotaExceeded);
    assert!(refused.expect_closed().await.is_empty());
    let mut refused = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = refused
        .handshake(Connect::new(ProtocolVersion::V3_1_1, "third"))
        .await;
    // Return code 3, "Server unavailable".
    assert_eq!(connack.reason_code, ReasonCode::ServerUnavailable);
    assert!(refused.expect_closed().await.is_empty());
    assert_eq!(broker.broker().metrics.connections_refused.get(), 2);
    let hits = &broker.broker().metrics.limit_hits;
    assert_eq!(
        hits.get(broker_server::internals::limits::Limit::MaxConnections),
        2
    );
    assert!(
        broker.broker().session("third").is_none(),
        "no session for a refused client"
    );

    // The connected clients are unaffected.
    assert_next_is_marker(&mut second, &mut first, "t").await;
    // A freed slot can be taken.
    drop(second);
    eventually("the slot to be freed", || {
        broker.broker().metrics.clients_connected.get() == 1
    })
    .await;
    let mut third = broker.client(ProtocolVersion::V5, "third").await;
    assert_next_is_marker(&mut third, &mut first, "t").await;
    broker.stop().await;
}

#[tokio::test]
async fn subscriptions_beyond_max_subscriptions_per_client_are_refused() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let broker = broker_with(|c| c.limits.max_subscriptions_per_client = 2).await;
        let mut sub = broker.client(version, "sub").await;
        let quota = if version.is_v5() {
            ReasonCode::QuotaExceeded
        } else {
            ReasonCode::UnspecifiedError
        };
        let codes = sub
            .subscribe_many(
                1,
                &[
                    ("a", QoS::AtMostOnce),
                    ("b", QoS::AtLeastOnce),
                    ("c", QoS::AtMostOnce),
                ],
            )
            .await;
        assert_eq!(
            codes,
            [ReasonCode::GRANTED_QOS_0, ReasonCode::GrantedQoS1, quota]
        );
        // Replacing an existing subscription is not a new one.
        assert_eq!(
            sub.subscribe_many(2, &[("a", QoS::AtLeastOnce)]).await,
            [ReasonCode::GrantedQoS1]
        );
        assert_eq!(
            sub.subscribe_many(3, &[("$share/g/d", QoS::AtMostOnce)])
                .await,
            [quota]
        );

        // The refused filter is not subscribed.
        let mut publisher = broker.client(version, "pub").await;
        publisher
            .send_publish(publish("c", "refused", QoS::AtMostOnce, None))
            .await;
        assert_next_is_marker(&mut publisher, &mut sub, "a").await;

        // Unsubscribing frees a slot.
        sub.send(&Packet::Unsubscribe(protocol::Unsubscribe {
            packet_id: pid(4),
            filters: vec![filter("b")],
            properties: Default::default(),
        }))
        .await;
        assert!(matches!(sub.recv().await, Packet::UnsubAck(_)));
        assert_eq!(
            sub.subscribe_many(5, &[("c", QoS::AtMostOnce)]).await,
            [ReasonCode::GRANTED_QOS_0]
        );
        assert_next_is_marker(&mut publisher, &mut sub, "c").await;
        broker.stop().await;
    }
}

async fn topic_limited_broker() -> TestBroker {
    broker_with(|c| {
        c.limits.max_topic_levels = 3;
        c.limits.max_topic_length = 16;
    })
    .await
}

#[tokio::test]
async fn filters_over_the_topic_limits_are_refused_in_suback() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let broker = topic_limited_broker().await;
        let mut sub = broker.client(version, "sub").await;
        let invalid = if version.is_v5() {
            ReasonCode::TopicFilterInvalid
        } else {
            ReasonCode::UnspecifiedError
        };
        let codes = sub
            .subscribe_many(
                1,
                &[
                    ("a/b/c", QoS::AtMostOnce),
                    ("a/b/c/d", QoS::AtMostOnce),
                    ("a/+/+/#", QoS::AtMostOnce),
                    ("0123456789abcdef", QoS::AtMostOnce),
                    ("0123456789abcdefg", QoS::AtMostOnce),
                    // The limits apply to a shared subscription's filter part.
                    ("$share/group/x/y/z", QoS::AtMostOnce),
                ],
            )
            .await;
        let ok = ReasonCode::GRANTED_QOS_0;
        assert_eq!(codes, [ok, invalid, invalid, ok, invalid, ok]);
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_publish_over_the_topic_limits_closes_the_connection_with_0x90() {
    for (version, topic) in [
        (ProtocolVersion::V5, "a/b/c/d"),
        (ProtocolVersion::V5, "0123456789abcdefg"),
        (ProtocolVersion::V3_1_1, "a/b/c/d"),
        (ProtocolVersion::V3_1_1, "0123456789abcdefg"),
    ] {
        let broker = topic_limited_broker().await;
        let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
        sub.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
        let mut publisher = broker.client(version, "pub").await;
        publisher
            .send_publish(publish("a/b/c", "at the limit", QoS::AtMostOnce, None))
            .await;
        assert_eq!(&sub.recv_publish().await.payload[..], b"at the limit");
        publisher
            .send_publish(publish(topic, "over", QoS::AtLeastOnce, Some(1)))
            .await;
        let seen = publisher.expect_closed().await;
        if version.is_v5() {
            assert!(
                matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::TopicNameInvalid),
                "{seen:?}"
            );
        } else {
            assert!(seen.is_empty(), "{seen:?}");
        }
        let mut other = broker.client(ProtocolVersion::V5, "other").await;
        assert_next_is_marker(&mut other, &mut sub, "after").await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_will_topic_over_the_topic_limits_is_refused_in_connack() {
    let broker = topic_limited_broker().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "c");
    connect.will = Some(protocol::Will {
        topic: protocol::TopicName::new("a/b/c/d").unwrap(),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::TopicNameInvalid
    );
    assert!(client.expect_closed().await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn max_inflight_is_advertised_as_receive_maximum_and_enforced_on_v5_clients() {
    let broker = broker_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .handshake(Connect::new(ProtocolVersion::V5, "c"))
        .await;
    assert_eq!(connack.properties.receive_maximum, NonZeroU16::new(2));
    // Two QoS 2 flows left open (no PUBREL) fill the window; a third exceeds it.
    for id in [1, 2] {
        client
            .send_publish(publish("t", "x", QoS::ExactlyOnce, Some(id)))
            .await;
        assert!(matches!(client.recv().await, Packet::PubRec(_)));
    }
    client
        .send_publish(publish("t", "x", QoS::ExactlyOnce, Some(3)))
        .await;
    let seen = client.expect_closed().await;
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ReceiveMaximumExceeded),
        "{seen:?}"
    );
    assert_eq!(broker.broker().metrics.protocol_errors.get(), 1);
    broker.stop().await;
}

/// A client that goes on sending after the broker's DISCONNECT (here PUBLISH packets
/// after exceeding Receive Maximum) still reads that DISCONNECT and then a clean end of
/// the stream: the broker shuts its side down and drains the client's input for a
/// moment, instead of closing a socket with unread input, which resets the connection.
#[tokio::test]
async fn a_client_still_sending_after_disconnect_reads_it_without_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = broker_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.client(ProtocolVersion::V5, "c").await;
    for id in [1, 2] {
        client
            .send_publish(publish("t", "x", QoS::ExactlyOnce, Some(id)))
            .await;
        assert!(matches!(client.recv().await, Packet::PubRec(_)));
    }
    // The third flow exceeds the window; the client keeps sending for a while before it
    // reads, as a client busy publishing does.
    let mut burst = bytes::BytesMut::new();
    for id in 3..=6 {
        let packet = Packet::Publish(publish("t", "x", QoS::ExactlyOnce, Some(id)));
        protocol::encode(&packet, ProtocolVersion::V5, &mut burst).unwrap();
    }
    let mut more = bytes::BytesMut::new();
    let filler = Packet::Publish(publish("t", &"y".repeat(1000), QoS::AtMostOnce, None));
    protocol::encode(&filler, ProtocolVersion::V5, &mut more).unwrap();
    client.stream.write_all(&burst).await.unwrap();
    for i in 0..30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Err(err) = client.stream.write_all(&more).await {
            panic!("write {i} after the DISCONNECT failed: {err}");
        }
    }
    client.stream.shutdown().await.unwrap();
    let mut received = Vec::new();
    let end = tokio::time::timeout(PATIENCE, client.stream.read_to_end(&mut received))
        .await
        .expect("the broker closes");
    assert!(
        end.is_ok(),
        "the stream ended with {end:?}, not a clean FIN"
    );
    let mut received = bytes::BytesMut::from(&received[..]);
    let limits = protocol::Limits::default();
    let mut packets = Vec::new();
    while let Some(packet) = protocol::decode(&mut received, &limits).unwrap() {
        packets.push(packet);
    }
    assert!(
        matches!(&packets[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ReceiveMaximumExceeded),
        "{packets:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn completed_flows_free_the_receive_window() {
    let broker = broker_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.client(ProtocolVersion::V5, "c").await;
    for id in 1..=10 {
        client
            .send_publish(publish("t", "x", QoS::AtLeastOnce, Some(id)))
            .await;
        assert!(matches!(client.recv().await, Packet::PubAck(a) if a.packet_id == pid(id)));
    }
    // 3.1.1 cannot be told a Receive Maximum, so it is not enforced on it.
    let mut old = broker.client(ProtocolVersion::V3_1_1, "old").await;
    for id in 1..=3 {
        old.send_publish(publish("t", "x", QoS::ExactlyOnce, Some(id)))
            .await;
        assert!(matches!(old.recv().await, Packet::PubRec(_)));
    }
    broker.stop().await;
}

#[tokio::test]
async fn the_broker_keeps_at_most_max_inflight_deliveries_unacknowledged() {
    let broker = broker_with(|c| c.limits.max_inflight = 2).await;
    let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("t", QoS::AtLeastOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    for id in 1..=3 {
        publisher
            .send_publish(publish("t", &format!("m{id}"), QoS::AtLeastOnce, Some(id)))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    let first = sub.recv_publish().await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"m2");
    // The third waits in the session's queue until a slot frees.
    let session = broker.broker().session("sub").unwrap();
    assert_eq!(session.queue_len(), 1);
    sub.send(&Packet::PubAck(PubAck::new(first.packet_id.unwrap())))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"m3");
    assert_eq!(session.queue_len(), 0);
    broker.stop().await;
}
