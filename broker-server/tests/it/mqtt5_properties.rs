//! MQTT 5 properties through the broker: PUBLISH properties forwarded unchanged and in
//! order; Message Expiry (the remaining interval is forwarded, an expired message is
//! not delivered); Request / Response Information in CONNACK; Maximum Packet Size in
//! both directions.

use crate::common;
use tokio::io::DuplexStream;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use protocol::{
    Connect, Packet, ProtocolVersion, PubAck, Publish, PublishProperties, QoS, ReasonCode,
};

/// A v5 CONNECT without keep alive (paused-time tests advance the clock a lot).
fn connect_v5(id: &str) -> Connect {
    let mut connect = Connect::new(ProtocolVersion::V5, id);
    connect.keep_alive = 0;
    connect
}

async fn connected(
    broker: &TestBroker,
    connect: Connect,
) -> (Peer<DuplexStream>, protocol::ConnAck) {
    let mut client = broker.in_process(connect.protocol).await;
    let connack = client.handshake(connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
    (client, connack)
}

fn application_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(true),
        content_type: Some("application/json; charset=utf-8".into()),
        response_topic: Some("replies/device-7".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01req-42\xff")),
        user_properties: vec![
            ("z-first".into(), "1".into()),
            ("a-second".into(), "2".into()),
            ("z-first".into(), "repeated key".into()),
            ("".into(), "empty key".into()),
        ],
        ..PublishProperties::default()
    }
}

#[tokio::test]
async fn application_properties_are_forwarded_unchanged_and_in_order() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = connected(&broker, connect_v5("sub")).await;
    sub.subscribe_many(1, &[("props/#", QoS::AtLeastOnce)])
        .await;
    let mut old = broker
        .in_process_client(ProtocolVersion::V3_1_1, "old")
        .await;
    old.subscribe_many(1, &[("props/#", QoS::AtMostOnce)]).await;
    let (mut publisher, _) = connected(&broker, connect_v5("pub")).await;

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut p = publish(
            "props/x",
            "{\"on\":true}",
            qos,
            (qos != QoS::AtMostOnce).then_some(9),
        );
        p.properties = application_properties().into();
        publisher.send_publish(p).await;
        if qos == QoS::AtLeastOnce {
            assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        }
        let got = sub.recv_publish().await;
        assert_eq!(got.properties, application_properties(), "QoS {qos:?}");
        assert_eq!(&got.payload[..], b"{\"on\":true}");
        if let Some(id) = got.packet_id {
            sub.send(&Packet::PubAck(PubAck::new(id))).await;
        }
        // A 3.1.1 subscriber gets the message without them.
        assert_eq!(&old.recv_publish().await.payload[..], b"{\"on\":true}");
    }

    // Retained: the properties are stored with the message.
    let mut p = publish("props/kept", "v", QoS::AtMostOnce, None);
    p.retain = true;
    p.properties = application_properties().into();
    publisher.send_publish(p).await;
    assert_eq!(
        sub.recv_publish().await.properties,
        application_properties()
    );
    let (mut late, _) = connected(&broker, connect_v5("late")).await;
    late.subscribe_many(1, &[("props/kept", QoS::AtMostOnce)])
        .await;
    let got = late.recv_publish().await;
    assert!(got.retain);
    assert_eq!(got.properties, application_properties());
    broker.stop().await;
}

/// Subscribes `id` with a persistent session to `exp/#` at QoS 1, then disconnects it
/// and waits until the broker has it offline.
async fn offline_subscriber(broker: &TestBroker, id: &str) -> Connect {
    let mut connect = connect_v5(id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);
    let (mut client, _) = connected(broker, connect.clone()).await;
    client
        .subscribe_many(1, &[("exp/#", QoS::AtLeastOnce)])
        .await;
    client
        .send(&Packet::Disconnect(protocol::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    client.expect_closed().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while broker.broker().session(id).is_some_and(|s| s.is_online()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session still online"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    connect
}

fn expiring(topic: &str, payload: &str, secs: u32, packet_id: u16) -> Publish {
    let mut p = publish(topic, payload, QoS::AtLeastOnce, Some(packet_id));
    p.properties.message_expiry_interval = Some(secs);
    p
}

#[tokio::test(start_paused = true)]
async fn message_expiry_forwards_the_remaining_interval() {
    let broker = TestBroker::with_config(memory_config()).await;
    let reconnect = offline_subscriber(&broker, "sub").await;
    let (mut publisher, _) = connected(&broker, connect_v5("pub")).await;
    publisher
        .send_publish(expiring("exp/a", "soon", 10, 1))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    tokio::time::advance(Duration::from_secs(4)).await;

    let (mut sub, connack) = connected(&broker, reconnect).await;
    assert!(connack.session_present);
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"soon");
    let left = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!(
        (1..=6).contains(&left),
        "4 of 10 seconds passed, {left} left"
    );

    // Delivered at once: (almost) the whole interval.
    publisher
        .send_publish(expiring("exp/b", "fresh", 10, 2))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    let got = sub.recv_publish().await;
    assert!(got.packet_id.is_some());
    let left = got.properties.message_expiry_interval.unwrap();
    assert!((9..=10).contains(&left), "{left}");
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_expired_message_is_not_delivered() {
    let broker = TestBroker::with_config(memory_config()).await;
    let reconnect = offline_subscriber(&broker, "sub").await;
    let (mut publisher, _) = connected(&broker, connect_v5("pub")).await;
    publisher
        .send_publish(expiring("exp/a", "stale", 10, 1))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    publisher
        .send_publish(expiring("exp/b", "lasting", 100, 2))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    let mut retained = expiring("exp/retained", "stale retained", 10, 3);
    retained.retain = true;
    publisher.send_publish(retained).await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    tokio::time::advance(Duration::from_secs(11)).await;

    let (mut sub, _) = connected(&broker, reconnect).await;
    let got = sub.recv_publish().await;
    assert_eq!(
        &got.payload[..],
        b"lasting",
        "the expired messages were skipped"
    );
    assert!(got.properties.message_expiry_interval.unwrap() <= 89);
    sub.send(&Packet::PubAck(PubAck::new(got.packet_id.unwrap())))
        .await;
    // Nor is an expired retained message sent to a new subscriber.
    let (mut late, _) = connected(&broker, connect_v5("late")).await;
    late.subscribe_many(1, &[("exp/#", QoS::AtMostOnce)]).await;
    publisher
        .send_publish(publish("exp/marker", "marker", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&late.recv_publish().await.payload[..], b"marker");
    broker.stop().await;
}

#[tokio::test]
async fn response_information_is_sent_only_when_requested() {
    let broker = TestBroker::start().await;
    let mut asking = connect_v5("requester");
    asking.properties.request_response_information = Some(true);
    let (mut requester, connack) = connected(&broker, asking).await;
    let info = connack.properties.response_information.expect("requested");
    assert_eq!(&info[..], "response/requester");

    let (_, connack) = connected(&broker, connect_v5("quiet")).await;
    assert_eq!(connack.properties.response_information, None);
    let mut declined = connect_v5("declined");
    declined.properties.request_response_information = Some(false);
    let (_, connack) = connected(&broker, declined).await;
    assert_eq!(connack.properties.response_information, None);

    // An assigned client identifier gets its own prefix too.
    let mut anonymous = connect_v5("");
    anonymous.properties.request_response_information = Some(true);
    let (_, connack) = connected(&broker, anonymous).await;
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned");
    assert_eq!(
        connack.properties.response_information.as_deref(),
        Some(&*format!("response/{assigned}"))
    );

    // The prefix is an ordinary topic: a responder answers under it.
    requester
        .subscribe_many(1, &[(&format!("{info}/#"), QoS::AtMostOnce)])
        .await;
    let (mut responder, _) = connected(&broker, connect_v5("responder")).await;
    let mut reply = publish(&format!("{info}/call-1"), "pong", QoS::AtMostOnce, None);
    reply.properties.correlation_data = Some(Bytes::from_static(b"call-1"));
    responder.send_publish(reply).await;
    let got = requester.recv_publish().await;
    assert_eq!(
        (&got.payload[..], got.properties.correlation_data.as_deref()),
        (&b"pong"[..], Some(&b"call-1"[..]))
    );
    broker.stop().await;
}

async fn broker_with_max_packet_size(size: u32) -> TestBroker {
    let mut config = test_config();
    config.limits.max_packet_size = size;
    TestBroker::with_config(config).await
}

#[tokio::test]
async fn a_publish_larger_than_the_brokers_maximum_packet_size_is_refused_with_0x95() {
    let broker = broker_with_max_packet_size(1024).await;
    let mut sub = broker.in_process_client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("big/#", QoS::AtMostOnce)]).await;
    let (mut publisher, connack) = connected(&broker, connect_v5("pub")).await;
    assert_eq!(
        connack.properties.maximum_packet_size,
        NonZeroU32::new(1024)
    );
    let fits = "x".repeat(900);
    publisher
        .send_publish(publish("big/ok", &fits, QoS::AtMostOnce, None))
        .await;
    assert_eq!(sub.recv_publish().await.payload.len(), 900);
    publisher
        .send_publish(publish("big/no", &"x".repeat(2000), QoS::AtMostOnce, None))
        .await;
    let seen = publisher.expect_closed().await;
    assert!(
        matches!(seen.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::PacketTooLarge),
        "{seen:?}"
    );
    // A 3.1.1 client is just closed.
    let mut old = broker
        .in_process_client(ProtocolVersion::V3_1_1, "old")
        .await;
    old.send_publish(publish("big/no", &"x".repeat(2000), QoS::AtMostOnce, None))
        .await;
    assert!(old.expect_closed().await.is_empty());
    assert_eq!(broker.broker().metrics.protocol_errors.get(), 2);
    // Neither oversized message was delivered.
    let mut other = broker.in_process_client(ProtocolVersion::V5, "other").await;
    other
        .send_publish(publish("big/after", "small", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"small");
    broker.stop().await;
}

#[tokio::test]
async fn a_message_larger_than_a_subscribers_maximum_packet_size_is_not_sent_to_it() {
    let broker = TestBroker::start().await;
    let mut small = connect_v5("small");
    small.properties.maximum_packet_size = NonZeroU32::new(200);
    small.properties.receive_maximum = NonZeroU16::new(10);
    let (mut small, _) = connected(&broker, small).await;
    small.subscribe_many(1, &[("m/#", QoS::AtLeastOnce)]).await;
    let (mut big, _) = connected(&broker, connect_v5("big")).await;
    big.subscribe_many(1, &[("m/#", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = connected(&broker, connect_v5("pub")).await;
    let dropped_before = broker.broker().metrics.messages_dropped.get();

    let large = "L".repeat(500);
    for (payload, qos, id) in [
        (&large[..], QoS::AtLeastOnce, Some(1)),
        (&large[..], QoS::AtMostOnce, None),
        ("small", QoS::AtLeastOnce, Some(2)),
    ] {
        publisher
            .send_publish(publish("m/x", payload, qos, id))
            .await;
        if id.is_some() {
            assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        }
    }
    for expected in [500, 500, 5] {
        let got = big.recv_publish().await;
        assert_eq!(got.payload.len(), expected);
        if let Some(id) = got.packet_id {
            big.send(&Packet::PubAck(PubAck::new(id))).await;
        }
    }
    let got = small.recv_publish().await;
    assert_eq!(
        &got.payload[..],
        b"small",
        "the large messages were not sent to it"
    );
    assert_eq!(
        broker.broker().metrics.messages_dropped.get() - dropped_before,
        2
    );
    broker.stop().await;
}
