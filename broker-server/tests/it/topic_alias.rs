//! MQTT 5 Topic Aliases (§3.3.2.3.4) in both directions: a client's aliases up to the
//! broker's advertised `limits.topic_alias_maximum` (above: DISCONNECT 0x94; an alias
//! never set: 0x82), and the broker's own aliases towards a client that allows them in
//! CONNECT (first PUBLISH of a topic: topic + alias; later ones: empty topic + alias).

use crate::common;
use tokio::io::DuplexStream;

use std::num::NonZeroU16;

use common::*;
use protocol::{Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};

fn alias(n: u16) -> Option<NonZeroU16> {
    NonZeroU16::new(n)
}

/// A QoS 0 PUBLISH carrying topic alias `n` (an empty `topic` uses the alias).
fn aliased(topic: &str, payload: &str, n: u16) -> Publish {
    let mut p = publish(topic, payload, QoS::AtMostOnce, None);
    p.properties.topic_alias = alias(n);
    p
}

async fn broker_with_alias_maximum(maximum: u16) -> TestBroker {
    let mut config = test_config();
    config.limits.topic_alias_maximum = maximum;
    TestBroker::with_config(config).await
}

/// A v5 client whose CONNACK is returned, to read what the broker advertised.
async fn connect_v5(
    broker: &TestBroker,
    id: &str,
    topic_alias_maximum: Option<u16>,
) -> (Peer<DuplexStream>, protocol::ConnAck) {
    let mut client = broker.in_process(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, id);
    connect.properties.topic_alias_maximum = topic_alias_maximum;
    let connack = client.handshake(connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    (client, connack)
}

/// Asserts the broker sends DISCONNECT `reason` and closes, and that it counted a
/// protocol error.
async fn assert_disconnected(
    broker: &TestBroker,
    client: &mut Peer<DuplexStream>,
    reason: ReasonCode,
) {
    let seen = client.expect_closed().await;
    assert!(
        matches!(seen.last(), Some(Packet::Disconnect(d)) if d.reason_code == reason),
        "expected DISCONNECT {reason}, got {seen:?}"
    );
    assert!(broker.broker().metrics.protocol_errors.get() >= 1);
}

#[tokio::test]
async fn broker_advertises_its_topic_alias_maximum() {
    let broker = broker_with_alias_maximum(4).await;
    let (_client, connack) = connect_v5(&broker, "c", None).await;
    assert_eq!(connack.properties.topic_alias_maximum, Some(4));
    broker.stop().await;
}

#[tokio::test]
async fn client_alias_set_then_used_with_an_empty_topic_reaches_subscribers_by_name() {
    let broker = broker_with_alias_maximum(4).await;
    let mut sub = broker
        .in_process_client(ProtocolVersion::V3_1_1, "sub")
        .await;
    sub.subscribe_many(1, &[("sensors/#", QoS::AtMostOnce)])
        .await;
    let (mut publisher, _) = connect_v5(&broker, "pub", None).await;

    publisher
        .send_publish(aliased("sensors/temp", "21", 1))
        .await;
    publisher.send_publish(aliased("", "22", 1)).await;
    publisher
        .send_publish(aliased("sensors/hum", "40", 4))
        .await;
    publisher.send_publish(aliased("", "41", 4)).await;
    // Re-mapping an alias to another topic.
    publisher
        .send_publish(aliased("sensors/wind", "5", 1))
        .await;
    publisher.send_publish(aliased("", "6", 1)).await;
    let mut got = Vec::new();
    for _ in 0..6 {
        let p = sub.recv_publish().await;
        got.push((
            p.topic.to_string(),
            String::from_utf8(p.payload.to_vec()).unwrap(),
        ));
    }
    let expected = [
        ("sensors/temp", "21"),
        ("sensors/temp", "22"),
        ("sensors/hum", "40"),
        ("sensors/hum", "41"),
        ("sensors/wind", "5"),
        ("sensors/wind", "6"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, expected);
    broker.stop().await;
}

#[tokio::test]
async fn client_alias_above_the_advertised_maximum_is_disconnected_with_0x94() {
    let broker = broker_with_alias_maximum(4).await;
    let (mut client, _) = connect_v5(&broker, "c", None).await;
    client.send_publish(aliased("t", "x", 5)).await;
    assert_disconnected(&broker, &mut client, ReasonCode::TopicAliasInvalid).await;
    broker.stop().await;
}

#[tokio::test]
async fn any_client_alias_is_invalid_when_the_broker_allows_none() {
    let broker = broker_with_alias_maximum(0).await;
    let (mut client, connack) = connect_v5(&broker, "c", None).await;
    assert_eq!(
        connack.properties.topic_alias_maximum, None,
        "0 is the default: not sent"
    );
    client.send_publish(aliased("t", "x", 1)).await;
    assert_disconnected(&broker, &mut client, ReasonCode::TopicAliasInvalid).await;
    broker.stop().await;
}

#[tokio::test]
async fn an_alias_that_was_never_set_is_a_protocol_error() {
    let broker = broker_with_alias_maximum(4).await;
    let mut sub = broker.in_process_client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
    let (mut client, _) = connect_v5(&broker, "c", None).await;
    client.send_publish(aliased("t", "set", 1)).await;
    client.send_publish(aliased("", "unknown", 2)).await;
    assert_disconnected(&broker, &mut client, ReasonCode::ProtocolError).await;
    // What came before the violation was delivered; the bad one was not.
    assert_eq!(&sub.recv_publish().await.payload[..], b"set");
    let (mut other, _) = connect_v5(&broker, "other", None).await;
    other
        .send_publish(publish("after", "ok", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"ok");
    broker.stop().await;
}

#[tokio::test]
async fn aliases_belong_to_one_connection() {
    let broker = broker_with_alias_maximum(4).await;
    let mut client = broker.in_process(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "c");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    client.handshake(connect.clone()).await;
    client.send_publish(aliased("t", "set", 1)).await;
    client
        .send(&Packet::Disconnect(protocol::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    client.expect_closed().await;
    let mut again = broker.in_process(ProtocolVersion::V5).await;
    assert!(again.handshake(connect).await.session_present);
    again.send_publish(aliased("", "stale", 1)).await;
    assert_disconnected(&broker, &mut again, ReasonCode::ProtocolError).await;
    broker.stop().await;
}

#[tokio::test]
async fn broker_aliases_topics_towards_a_client_that_allows_them() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = connect_v5(&broker, "sub", Some(2)).await;
    sub.subscribe_many(1, &[("a/#", QoS::AtLeastOnce)]).await;
    let mut publisher = broker.in_process_client(ProtocolVersion::V5, "pub").await;
    for (topic, payload) in [
        ("a/one", "1"),
        ("a/one", "2"),
        ("a/two", "3"),
        ("a/one", "4"),
        ("a/two", "5"),
    ] {
        publisher
            .send_publish(publish(topic, payload, QoS::AtMostOnce, None))
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let p = sub.recv_publish().await;
        let alias = p
            .properties
            .topic_alias
            .expect("every delivery carries an alias")
            .get();
        assert!(
            (1..=2).contains(&alias),
            "within the client's maximum: {alias}"
        );
        got.push((
            p.topic.to_string(),
            alias,
            String::from_utf8(p.payload.to_vec()).unwrap(),
        ));
    }
    let (one, two) = (got[0].1, got[2].1);
    assert_ne!(one, two);
    let expected = vec![
        ("a/one".to_string(), one, "1".to_string()),
        (String::new(), one, "2".to_string()),
        ("a/two".to_string(), two, "3".to_string()),
        (String::new(), one, "4".to_string()),
        (String::new(), two, "5".to_string()),
    ];
    assert_eq!(got, expected);
    broker.stop().await;
}

#[tokio::test]
async fn broker_sends_no_aliases_to_a_client_that_did_not_allow_them() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let broker = TestBroker::start().await;
        let mut sub = broker.in_process_client(version, "sub").await;
        sub.subscribe_many(1, &[("a/#", QoS::AtMostOnce)]).await;
        let mut publisher = broker.in_process_client(ProtocolVersion::V5, "pub").await;
        for _ in 0..3 {
            publisher
                .send_publish(publish("a/one", "x", QoS::AtMostOnce, None))
                .await;
        }
        for _ in 0..3 {
            let p = sub.recv_publish().await;
            assert_eq!((&p.topic[..], p.properties.topic_alias), ("a/one", None));
        }
        broker.stop().await;
    }
}
