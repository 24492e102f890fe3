//! Packets captured from real clients (mosquitto_pub / mosquitto_sub 2.0.11, see
//! `fixtures/README.md`): each decodes to the fields the client was asked to send, and
//! encodes back to the same bytes.
//!
//! Where mosquitto writes MQTT 5 properties in another order than our encoder (the spec
//! leaves the order free), the bytes differ; those fixtures assert
//! `decode(encode(decode(x))) == decode(x)` instead, and say so.

use std::num::{NonZeroU16, NonZeroU32};

use crate::common::{s, topic};
use bytes::BytesMut;
use protocol::{Limits, Packet, ProtocolVersion, QoS, ReasonCode, RetainHandling, decode, encode};

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// The fixtures whose MQTT 5 properties mosquitto writes in another order than ours.
const REORDERED: [&str; 2] = ["mosquitto_pub_v5_publish", "mosquitto_pub_v5_qos2_publish"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn decode_whole(version: ProtocolVersion, bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(
        &mut buf,
        &Limits {
            version,
            ..Limits::default()
        },
    )
    .unwrap_or_else(|err| panic!("{err}"))
    .expect("a whole packet");
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    packet
}

fn encode_packet(version: ProtocolVersion, packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).unwrap();
    buf.to_vec()
}

/// Decodes a fixture and checks that encoding gives the captured bytes back.
fn decode_fixture(version: ProtocolVersion, name: &str) -> Packet {
    let bytes = fixture(name);
    let packet = decode_whole(version, &bytes);
    assert_eq!(
        encode_packet(version, &packet),
        bytes,
        "{name}: re-encoded bytes"
    );
    packet
}

/// Decodes a fixture whose properties mosquitto orders differently from our encoder:
/// the re-encoded bytes differ, but decode to the same packet.
fn decode_reordered_fixture(version: ProtocolVersion, name: &str) -> Packet {
    let bytes = fixture(name);
    let packet = decode_whole(version, &bytes);
    let encoded = encode_packet(version, &packet);
    assert_eq!(encoded.len(), bytes.len(), "{name}: same size, other order");
    assert_eq!(
        decode_whole(version, &encoded),
        packet,
        "{name}: round trip"
    );
    packet
}

fn connect(packet: Packet) -> protocol::Connect {
    match packet {
        Packet::Connect(connect) => *connect,
        other => panic!("not a CONNECT: {other:?}"),
    }
}

fn publish(packet: Packet) -> protocol::Publish {
    match packet {
        Packet::Publish(publish) => publish,
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

#[test]
fn mosquitto_pub_v5_connect_carries_session_expiry_and_receive_maximum() {
    let connect = connect(decode_fixture(V5, "mosquitto_pub_v5_connect"));
    assert_eq!(connect.protocol, V5);
    assert_eq!(connect.client_id, "pub-v5");
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 60);
    assert_eq!(connect.properties.session_expiry_interval, Some(60));
    assert_eq!(connect.properties.receive_maximum, NonZeroU16::new(20));
    assert_eq!(
        (connect.will, connect.username, connect.password),
        (None, None, None)
    );
}

#[test]
fn mosquitto_pub_v5_publish_carries_its_properties_in_mosquitto_order() {
    // mosquitto writes user property, content type, response topic, correlation data;
    // our encoder writes response topic, correlation data, user property, content type.
    let publish = publish(decode_reordered_fixture(V5, "mosquitto_pub_v5_publish"));
    assert_eq!(publish.topic, "sensors/t1");
    assert_eq!(publish.payload, "21.5");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert!(publish.retain);
    assert!(!publish.dup);
    assert_eq!(publish.packet_id, NonZeroU16::new(1));
    let properties = &publish.properties;
    assert_eq!(properties.user_properties, [(s("k"), s("v"))]);
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(properties.response_topic.as_deref(), Some("r/t"));
    assert_eq!(properties.correlation_data.as_deref(), Some(&b"abc"[..]));
}

#[test]
fn mosquitto_pub_v5_qos2_exchange_publish_and_short_pubrel() {
    let connect = connect(decode_fixture(V5, "mosquitto_pub_v5_qos2_connect"));
    assert_eq!(connect.client_id, "pub-v5-qos2");
    // mosquitto writes message expiry before payload format indicator; we, the reverse.
    let publish = publish(decode_reordered_fixture(
        V5,
        "mosquitto_pub_v5_qos2_publish",
    ));
    assert_eq!(
        (publish.topic.as_ref(), publish.qos),
        ("a/b", QoS::ExactlyOnce)
    );
    assert_eq!(publish.properties.message_expiry_interval, Some(30));
    assert_eq!(publish.properties.payload_format_indicator, Some(true));
    assert_eq!(publish.payload, "hello");
    // mosquitto sends the two-byte PUBREL when the reason is Success (§3.6.2.1).
    match decode_fixture(V5, "mosquitto_pub_v5_qos2_pubrel") {
        Packet::PubRel(pubrel) => {
            assert_eq!(pubrel.packet_id, publish.packet_id.unwrap());
            assert_eq!(pubrel.reason_code, ReasonCode::Success);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mosquitto_pub_v5_will_with_will_properties_and_credentials() {
    let connect = connect(decode_fixture(V5, "mosquitto_pub_v5_will_connect"));
    assert_eq!(connect.client_id, "dev1");
    assert!(!connect.clean_start); // -c
    assert_eq!(connect.properties.session_expiry_interval, Some(u32::MAX)); // -c: never
    assert_eq!(connect.username.as_deref(), Some("dev1"));
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
    let will = connect.will.expect("will");
    assert_eq!(will.topic, topic("iot/5/dev1/$state"));
    assert_eq!(will.payload, "lost");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain);
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(will.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(will.properties.user_properties, [(s("w"), s("x"))]);
    let publish = publish(decode_fixture(V5, "mosquitto_pub_v5_will_publish"));
    assert_eq!(
        (publish.topic.as_ref(), &publish.payload[..]),
        ("iot/5/dev1/$state", &b"ready"[..])
    );
    assert!(publish.retain);
}

#[test]
fn mosquitto_pub_v311_qos2_with_credentials() {
    let connect = connect(decode_fixture(V3_1_1, "mosquitto_pub_v311_connect"));
    assert_eq!(connect.protocol, V3_1_1);
    assert_eq!(connect.client_id, "pub-v311");
    assert_eq!(connect.username.as_deref(), Some("alice"));
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
    let publish = publish(decode_fixture(V3_1_1, "mosquitto_pub_v311_publish"));
    assert_eq!(publish.qos, QoS::ExactlyOnce);
    assert_eq!(
        (publish.topic.as_ref(), &publish.payload[..]),
        ("a/b", &b"hello"[..])
    );
    assert!(
        matches!(decode_fixture(V3_1_1, "mosquitto_pub_v311_pubrel"), Packet::PubRel(p) if p.packet_id.get() == 1)
    );
}

#[test]
fn mosquitto_pub_v311_will_at_qos2() {
    let connect = connect(decode_fixture(V3_1_1, "mosquitto_pub_v311_will_connect"));
    let will = connect.will.expect("will");
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("iot/5/dev2/$state", &b"lost"[..])
    );
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert!(!will.retain);
    let publish = publish(decode_fixture(V3_1_1, "mosquitto_pub_v311_will_publish"));
    assert_eq!(
        (publish.qos, &publish.payload[..]),
        (QoS::AtMostOnce, &b"ready"[..])
    );
}

#[test]
fn mosquitto_pub_v31_speaks_mqisdp() {
    let bytes = fixture("mosquitto_pub_v31_connect");
    assert_eq!(&bytes[2..10], b"\x00\x06MQIsdp");
    let connect = connect(decode_fixture(V3_1, "mosquitto_pub_v31_connect"));
    assert_eq!(connect.protocol, V3_1);
    assert_eq!(connect.client_id, "pub-v31");
    let publish = publish(decode_fixture(V3_1, "mosquitto_pub_v31_publish"));
    assert_eq!(
        (publish.qos, publish.packet_id.map(NonZeroU16::get)),
        (QoS::AtLeastOnce, Some(1))
    );
}

#[test]
fn mosquitto_sub_v5_subscribe_with_subscription_identifier_and_shared_filter() {
    let connect = connect(decode_fixture(V5, "mosquitto_sub_v5_connect"));
    assert_eq!(connect.client_id, "sub-v5");
    let Packet::Subscribe(subscribe) = decode_fixture(V5, "mosquitto_sub_v5_subscribe") else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(
        subscribe.properties.subscription_identifier,
        NonZeroU32::new(7)
    );
    let filters: Vec<_> = subscribe
        .subscriptions
        .iter()
        .map(|s| s.filter.as_str())
        .collect();
    assert_eq!(filters, ["sensors/#", "$share/g/jobs/+"]);
    assert_eq!(subscribe.subscriptions[1].filter.share_group(), Some("g"));
    for subscription in &subscribe.subscriptions {
        assert_eq!(subscription.options.qos, QoS::AtLeastOnce);
        assert!(!subscription.options.no_local);
        assert_eq!(
            subscription.options.retain_handling,
            RetainHandling::SendOnSubscribe
        );
    }
    let Packet::Unsubscribe(unsubscribe) = decode_fixture(V5, "mosquitto_sub_v5_unsubscribe")
    else {
        panic!("not an UNSUBSCRIBE");
    };
    assert_eq!(unsubscribe.filters[0].as_str(), "old/topic");
    assert!(
        matches!(decode_fixture(V5, "mosquitto_sub_v5_puback"), Packet::PubAck(a) if a.reason_code == ReasonCode::Success)
    );
}

#[test]
fn mosquitto_sub_v311_and_v31_subscribe() {
    let Packet::Subscribe(subscribe) = decode_fixture(V3_1_1, "mosquitto_sub_v311_subscribe")
    else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.subscriptions[0].filter.as_str(), "sensors/+/temp");
    assert_eq!(subscribe.subscriptions[0].options.qos, QoS::ExactlyOnce);
    assert!(matches!(
        decode_fixture(V3_1_1, "mosquitto_sub_v311_unsubscribe"),
        Packet::Unsubscribe(_)
    ));
    let Packet::Subscribe(subscribe) = decode_fixture(V3_1, "mosquitto_sub_v31_subscribe") else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.subscriptions[0].filter.as_str(), "a/#");
    assert_eq!(
        connect(decode_fixture(V3_1, "mosquitto_sub_v31_connect")).client_id,
        "sub-v31"
    );
    assert_eq!(
        connect(decode_fixture(V3_1_1, "mosquitto_sub_v311_connect")).client_id,
        "sub-v311"
    );
}

#[test]
fn every_fixture_decodes_and_encodes_back() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "bin") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let version = if name.contains("_v5_") {
            V5
        } else if name.contains("_v311_") {
            V3_1_1
        } else {
            V3_1
        };
        if REORDERED.contains(&name.as_str()) {
            decode_reordered_fixture(version, &name);
        } else {
            decode_fixture(version, &name);
        }
        if name.ends_with("_disconnect") {
            assert_eq!(fixture(&name), [0xE0, 0x00]);
        }
        count += 1;
    }
    assert_eq!(count, 34, "fixtures in {dir}");
}

#[test]
fn a_whole_captured_session_decodes_packet_by_packet() {
    let mut stream = BytesMut::new();
    for part in ["connect", "publish", "disconnect"] {
        stream.extend_from_slice(&fixture(&format!("mosquitto_pub_v5_{part}")));
    }
    let limits = Limits {
        version: V5,
        ..Limits::default()
    };
    let mut kinds = Vec::new();
    while let Some(packet) = decode(&mut stream, &limits).unwrap() {
        kinds.push(packet.packet_type());
    }
    assert!(stream.is_empty());
    use protocol::PacketType as P;
    assert_eq!(kinds, [P::Connect, P::Publish, P::Disconnect]);
}
