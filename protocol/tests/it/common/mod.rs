//! Byte-exact vectors shared by the codec tests, the fuzz seed corpus and the partial
//! input test: every packet type at every protocol level where it exists, with its
//! expected bytes written out by hand from the spec (MQTT 3.1, 3.1.1 §3, MQTT 5.0 §3).
//!
//! Each vector's bytes are grouped by field, with the Remaining Length worked out in the
//! comment next to it. For MQTT 5 properties the bytes follow the order in which the
//! encoder writes them (the spec leaves the order free).

#![allow(dead_code)] // builders kept for every packet type, not all used by a test

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;
use protocol::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec,
    PubRel, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, TopicName, UnsubAck,
    Unsubscribe, UnsubscribeProperties, Will, WillProperties,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// A packet, the protocol level it is encoded at, and its exact bytes.
#[derive(Debug, Clone)]
pub(crate) struct Vector {
    /// Names the fuzz seed file (`seed-{name}`) and failing assertions.
    pub(crate) name: &'static str,
    pub(crate) version: ProtocolVersion,
    pub(crate) packet: Packet,
    pub(crate) bytes: Vec<u8>,
}

fn vector(name: &'static str, version: ProtocolVersion, packet: Packet, parts: &[&[u8]]) -> Vector {
    Vector { name, version, packet, bytes: parts.concat() }
}

pub(crate) fn s(value: &str) -> ByteString {
    ByteString::from(value)
}

pub(crate) fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero packet id")
}

pub(crate) fn topic(value: &str) -> TopicName {
    TopicName::new(value).expect("valid topic name")
}

pub(crate) fn filter(value: &str) -> TopicFilter {
    TopicFilter::new(value).expect("valid topic filter")
}

/// The user property `k` = `v`: `26 00 01 'k' 00 01 'v'`, 7 bytes.
pub(crate) fn user_kv() -> Vec<(ByteString, ByteString)> {
    vec![(s("k"), s("v"))]
}

const USER_KV: &[u8] = &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'];

/// Every vector, all packet types, all levels.
pub(crate) fn all() -> Vec<Vector> {
    [
        connect(),
        connack(),
        publish(),
        pub_acks(),
        subscribe(),
        suback(),
        unsubscribe(),
        unsuback(),
        ping(),
        disconnect(),
        auth(),
    ]
    .concat()
}

fn connect_with_will(protocol: ProtocolVersion) -> Connect {
    let mut connect = Connect::new(protocol, "c1");
    connect.clean_start = false;
    connect.keep_alive = 10;
    connect.will = Some(Will {
        topic: topic("w/t"),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    connect.username = Some(s("u"));
    connect.password = Some(Bytes::from_static(b"p"));
    connect
}

pub(crate) fn connect() -> Vec<Vector> {
    let mut v5_full = connect_with_will(V5);
    v5_full.properties = ConnectProperties {
        session_expiry_interval: Some(60),
        receive_maximum: NonZeroU16::new(20),
        maximum_packet_size: NonZeroU32::new(4096),
        topic_alias_maximum: Some(10),
        request_response_information: Some(true),
        request_problem_information: Some(false),
        user_properties: user_kv(),
        authentication_method: Some(s("SCRAM")),
        authentication_data: Some(Bytes::from_static(&[1, 2])),
    };
    if let Some(will) = &mut v5_full.will {
        will.properties = WillProperties {
            will_delay_interval: Some(5),
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(120),
            content_type: Some(s("text")),
            response_topic: Some(s("r/t")),
            correlation_data: Some(Bytes::from_static(&[0xAB, 0xCD])),
            user_properties: vec![(s("a"), s("b"))],
        };
    }
    let mut v5_password_only = Connect::new(V5, "c1");
    v5_password_only.password = Some(Bytes::from_static(b"p"));

    vec![
        vector(
            "connect-v3",
            V3_1,
            Packet::Connect(Box::new(Connect::new(V3_1, "c1"))),
            &[
                &[0x10, 0x10],           // CONNECT, remaining length 8+1+1+2+4 = 16
                &[0x00, 0x06],           // protocol name length
                b"MQIsdp",               // MQTT 3.1 protocol name
                &[0x03],                 // protocol level 3
                &[0x02],                 // flags: clean session
                &[0x00, 0x3C],           // keep alive 60 s
                &[0x00, 0x02], b"c1",    // client identifier
            ],
        ),
        vector(
            "connect-v4",
            V3_1_1,
            Packet::Connect(Box::new(Connect::new(V3_1_1, "c1"))),
            &[
                &[0x10, 0x0E],           // remaining length 6+1+1+2+4 = 14
                &[0x00, 0x04], b"MQTT",  // protocol name
                &[0x04],                 // protocol level 4
                &[0x02],                 // flags: clean session
                &[0x00, 0x3C],           // keep alive 60 s
                &[0x00, 0x02], b"c1",    // client identifier
            ],
        ),
        vector(
            "connect-v5",
            V5,
            Packet::Connect(Box::new(Connect::new(V5, "c1"))),
            &[
                &[0x10, 0x0F],           // remaining length 6+1+1+2+1+4 = 15
                &[0x00, 0x04], b"MQTT",
                &[0x05],                 // protocol level 5
                &[0x02],                 // flags: clean start
                &[0x00, 0x3C],           // keep alive 60 s
                &[0x00],                 // no properties
                &[0x00, 0x02], b"c1",
            ],
        ),
        vector(
            "connect-v3-will-credentials",
            V3_1,
            Packet::Connect(Box::new(connect_with_will(V3_1))),
            &[
                &[0x10, 0x20],           // remaining length 8+1+1+2+4+5+5+3+3 = 32
                &[0x00, 0x06], b"MQIsdp",
                &[0x03],
                &[0xEC],                 // user name, password, will retain, will QoS 1, will
                &[0x00, 0x0A],           // keep alive 10 s
                &[0x00, 0x02], b"c1",
                &[0x00, 0x03], b"w/t",   // will topic
                &[0x00, 0x03], b"bye",   // will payload
                &[0x00, 0x01], b"u",     // user name
                &[0x00, 0x01], b"p",     // password
            ],
        ),
        vector(
            "connect-v4-will-credentials",
            V3_1_1,
            Packet::Connect(Box::new(connect_with_will(V3_1_1))),
            &[
                &[0x10, 0x1E],           // remaining length 6+1+1+2+4+5+5+3+3 = 30
                &[0x00, 0x04], b"MQTT",
                &[0x04],
                &[0xEC],
                &[0x00, 0x0A],
                &[0x00, 0x02], b"c1",
                &[0x00, 0x03], b"w/t",
                &[0x00, 0x03], b"bye",
                &[0x00, 0x01], b"u",
                &[0x00, 0x01], b"p",
            ],
        ),
        vector(
            "connect-v5-will-credentials-properties",
            V5,
            Packet::Connect(Box::new(v5_full)),
            &[
                &[0x10, 0x6D],           // remaining length 6+1+1+2+41+4+38+5+5+3+3 = 109
                &[0x00, 0x04], b"MQTT",
                &[0x05],
                &[0xEC],
                &[0x00, 0x0A],
                &[0x28],                              // properties: 40 bytes
                &[0x11, 0x00, 0x00, 0x00, 0x3C],      // session expiry interval 60
                &[0x21, 0x00, 0x14],                  // receive maximum 20
                &[0x27, 0x00, 0x00, 0x10, 0x00],      // maximum packet size 4096
                &[0x22, 0x00, 0x0A],                  // topic alias maximum 10
                &[0x19, 0x01],                        // request response information
                &[0x17, 0x00],                        // request problem information: no
                USER_KV,
                &[0x15, 0x00, 0x05], b"SCRAM",        // authentication method
                &[0x16, 0x00, 0x02, 0x01, 0x02],      // authentication data
                &[0x00, 0x02], b"c1",
                &[0x25],                              // will properties: 37 bytes
                &[0x18, 0x00, 0x00, 0x00, 0x05],      // will delay interval 5
                &[0x01, 0x01],                        // payload format: UTF-8
                &[0x02, 0x00, 0x00, 0x00, 0x78],      // message expiry interval 120
                &[0x03, 0x00, 0x04], b"text",         // content type
                &[0x08, 0x00, 0x03], b"r/t",          // response topic
                &[0x09, 0x00, 0x02, 0xAB, 0xCD],      // correlation data
                &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],
                &[0x00, 0x03], b"w/t",
                &[0x00, 0x03], b"bye",
                &[0x00, 0x01], b"u",
                &[0x00, 0x01], b"p",
            ],
        ),
        vector(
            "connect-v5-password-without-username",
            V5,
            Packet::Connect(Box::new(v5_password_only)),
            &[
                &[0x10, 0x12],           // remaining length 6+1+1+2+1+4+3 = 18
                &[0x00, 0x04], b"MQTT",
                &[0x05],
                &[0x42],                 // password, clean start (MQTT 5 allows no user name)
                &[0x00, 0x3C],
                &[0x00],
                &[0x00, 0x02], b"c1",
                &[0x00, 0x01], b"p",
            ],
        ),
    ]
}

pub(crate) fn connack() -> Vec<Vector> {
    let present = |reason_code| ConnAck { session_present: true, ..ConnAck::new(reason_code) };
    let full = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            session_expiry_interval: Some(60),
            receive_maximum: NonZeroU16::new(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: NonZeroU32::new(65_536),
            assigned_client_identifier: Some(s("abc")),
            topic_alias_maximum: Some(5),
            reason_string: Some(s("ok")),
            user_properties: user_kv(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(s("resp")),
            server_reference: Some(s("srv")),
            authentication_method: Some(s("M")),
            authentication_data: Some(Bytes::from_static(&[0xFF])),
        }
        .into(),
    };
    vec![
        vector("connack-v3", V3_1, Packet::ConnAck(ConnAck::new(ReasonCode::Success)), &[
            &[0x20, 0x02, 0x00, 0x00],
        ]),
        vector(
            "connack-v3-not-authorized",
            V3_1,
            Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized)),
            &[&[0x20, 0x02, 0x00, 0x05]], // return code 5: not authorized
        ),
        vector(
            "connack-v4-session-present",
            V3_1_1,
            Packet::ConnAck(present(ReasonCode::Success)),
            &[&[0x20, 0x02, 0x01, 0x00]],
        ),
        vector(
            "connack-v4-bad-credentials",
            V3_1_1,
            Packet::ConnAck(ConnAck::new(ReasonCode::BadUserNameOrPassword)),
            &[&[0x20, 0x02, 0x00, 0x04]], // return code 4: bad user name or password
        ),
        vector(
            "connack-v4-server-unavailable",
            V3_1_1,
            Packet::ConnAck(ConnAck::new(ReasonCode::ServerUnavailable)),
            &[&[0x20, 0x02, 0x00, 0x03]],
        ),
        vector("connack-v5", V5, Packet::ConnAck(ConnAck::new(ReasonCode::Success)), &[
            &[0x20, 0x03, 0x00, 0x00, 0x00], // flags, reason code, no properties
        ]),
        vector(
            "connack-v5-session-present",
            V5,
            Packet::ConnAck(present(ReasonCode::Success)),
            &[&[0x20, 0x03, 0x01, 0x00, 0x00]],
        ),
        vector(
            "connack-v5-not-authorized",
            V5,
            Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized)),
            &[&[0x20, 0x03, 0x00, 0x87, 0x00]],
        ),
        vector("connack-v5-properties", V5, Packet::ConnAck(full), &[
            &[0x20, 0x47],                        // remaining length 1+1+1+68 = 71
            &[0x00, 0x00],                        // no session, success
            &[0x44],                              // properties: 68 bytes
            &[0x11, 0x00, 0x00, 0x00, 0x3C],      // session expiry interval 60
            &[0x21, 0x00, 0x0A],                  // receive maximum 10
            &[0x24, 0x01],                        // maximum QoS 1
            &[0x25, 0x00],                        // retain not available
            &[0x27, 0x00, 0x01, 0x00, 0x00],      // maximum packet size 65536
            &[0x12, 0x00, 0x03], b"abc",          // assigned client identifier
            &[0x22, 0x00, 0x05],                  // topic alias maximum 5
            &[0x1F, 0x00, 0x02], b"ok",           // reason string
            USER_KV,
            &[0x28, 0x01],                        // wildcard subscriptions available
            &[0x29, 0x00],                        // subscription identifiers not available
            &[0x2A, 0x01],                        // shared subscriptions available
            &[0x13, 0x00, 0x1E],                  // server keep alive 30
            &[0x1A, 0x00, 0x04], b"resp",         // response information
            &[0x1C, 0x00, 0x03], b"srv",          // server reference
            &[0x15, 0x00, 0x01], b"M",            // authentication method
            &[0x16, 0x00, 0x01, 0xFF],            // authentication data
        ]),
    ]
}

fn publish_ab(qos: QoS, packet_id: Option<u16>, dup: bool, retain: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain,
        packet_id: packet_id.map(id),
        ..Publish::new("a/b", "hi")
    })
}

pub(crate) fn publish() -> Vec<Vector> {
    use QoS::{AtLeastOnce, AtMostOnce, ExactlyOnce};
    let props = Packet::Publish(Publish {
        qos: AtLeastOnce,
        packet_id: Some(id(1)),
        properties: PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(60),
            topic_alias: NonZeroU16::new(7),
            response_topic: Some(s("r/t")),
            correlation_data: Some(Bytes::from_static(b"abc")),
            user_properties: user_kv(),
            subscription_identifiers: vec![NonZeroU32::new(7).unwrap(), NonZeroU32::new(128).unwrap()],
            content_type: Some(s("text/plain")),
        }
        .into(),
        ..Publish::new("a/b", "hi")
    });
    let alias_only = Packet::Publish(Publish {
        properties: PublishProperties { topic_alias: NonZeroU16::new(7), ..Default::default() }.into(),
        ..Publish::new("", "hi")
    });
    let long = Packet::Publish(Publish::new("a", vec![0x55; 200]));
    let long_bytes = [&[0x30, 0xCB, 0x01][..], &[0x00, 0x01], b"a", &[0x55; 200]].concat();
    vec![
        vector("publish-v3-qos0", V3_1, publish_ab(AtMostOnce, None, false, false), &[
            &[0x30, 0x07],                   // PUBLISH QoS 0, remaining length 5+2
            &[0x00, 0x03], b"a/b",           // topic name
            b"hi",                           // payload
        ]),
        vector("publish-v3-qos1-retain", V3_1, publish_ab(AtLeastOnce, Some(10), false, true), &[
            &[0x33, 0x09],                   // QoS 1, retain; 5+2+2
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x0A],                   // packet identifier 10
            b"hi",
        ]),
        vector("publish-v3-qos2-dup", V3_1, publish_ab(ExactlyOnce, Some(11), true, false), &[
            &[0x3C, 0x09],                   // DUP, QoS 2
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x0B],
            b"hi",
        ]),
        vector("publish-v4-qos0-retain", V3_1_1, publish_ab(AtMostOnce, None, false, true), &[
            &[0x31, 0x07],
            &[0x00, 0x03], b"a/b",
            b"hi",
        ]),
        vector("publish-v4-qos1-dup-retain", V3_1_1, publish_ab(AtLeastOnce, Some(10), true, true), &[
            &[0x3B, 0x09],                   // DUP, QoS 1, retain
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x0A],
            b"hi",
        ]),
        vector("publish-v4-qos2", V3_1_1, publish_ab(ExactlyOnce, Some(0xFFFF), false, false), &[
            &[0x34, 0x09],
            &[0x00, 0x03], b"a/b",
            &[0xFF, 0xFF],                   // packet identifier 65535
            b"hi",
        ]),
        Vector {
            name: "publish-v4-two-byte-remaining-length",
            version: V3_1_1,
            packet: long,
            bytes: long_bytes, // 30 CB 01: remaining length 3+200 = 203 = 0x4B + 1*128
        },
        vector("publish-v5-qos0", V5, publish_ab(AtMostOnce, None, false, false), &[
            &[0x30, 0x08],                   // 5+1+2
            &[0x00, 0x03], b"a/b",
            &[0x00],                         // no properties
            b"hi",
        ]),
        vector("publish-v5-qos1-retain", V5, publish_ab(AtLeastOnce, Some(10), false, true), &[
            &[0x33, 0x0A],                   // 5+2+1+2
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x0A],
            &[0x00],
            b"hi",
        ]),
        vector("publish-v5-qos2-dup", V5, publish_ab(ExactlyOnce, Some(11), true, false), &[
            &[0x3C, 0x0A],
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x0B],
            &[0x00],
            b"hi",
        ]),
        vector("publish-v5-properties", V5, props, &[
            &[0x32, 0x39],                        // QoS 1; 5+2+1+47+2 = 57
            &[0x00, 0x03], b"a/b",
            &[0x00, 0x01],                        // packet identifier 1
            &[0x2F],                              // properties: 47 bytes
            &[0x01, 0x01],                        // payload format: UTF-8
            &[0x02, 0x00, 0x00, 0x00, 0x3C],      // message expiry interval 60
            &[0x23, 0x00, 0x07],                  // topic alias 7
            &[0x08, 0x00, 0x03], b"r/t",          // response topic
            &[0x09, 0x00, 0x03], b"abc",          // correlation data
            USER_KV,
            &[0x0B, 0x07],                        // subscription identifier 7
            &[0x0B, 0x80, 0x01],                  // subscription identifier 128 (2-byte VBI)
            &[0x03, 0x00, 0x0A], b"text/plain",   // content type
            b"hi",
        ]),
        vector("publish-v5-topic-alias-empty-topic", V5, alias_only, &[
            &[0x30, 0x08],                   // 2+4+2
            &[0x00, 0x00],                   // empty topic name: the alias stands for it
            &[0x03, 0x23, 0x00, 0x07],       // topic alias 7
            b"hi",
        ]),
        vector("publish-v5-empty-payload", V5, Packet::Publish(Publish::new("a/b", "")), &[
            &[0x30, 0x06],
            &[0x00, 0x03], b"a/b",
            &[0x00],
        ]),
    ]
}

fn ack_props() -> AckProperties {
    AckProperties { reason_string: Some(s("no")), user_properties: user_kv() }
}

/// `0C 1F 00 02 'n' 'o' 26 00 01 'k' 00 01 'v'`: the 12 bytes of [`ack_props`], length first.
const ACK_PROPS: &[u8] = &[
    0x0C, 0x1F, 0x00, 0x02, b'n', b'o', 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
];

pub(crate) fn pub_acks() -> Vec<Vector> {
    let mut vectors = Vec::new();
    for version in [V3_1, V3_1_1, V5] {
        let level = version as u8;
        let name = |kind: &str| -> &'static str { format!("{kind}-v{level}").leak() };
        vectors.extend([
            vector(name("puback"), version, Packet::PubAck(PubAck::new(id(1))), &[&[0x40, 0x02, 0x00, 0x01]]),
            vector(name("pubrec"), version, Packet::PubRec(PubRec::new(id(1))), &[&[0x50, 0x02, 0x00, 0x01]]),
            // PUBREL has the fixed header flags 0010 [MQTT-3.6.1-1].
            vector(name("pubrel"), version, Packet::PubRel(PubRel::new(id(1))), &[&[0x62, 0x02, 0x00, 0x01]]),
            vector(name("pubcomp"), version, Packet::PubComp(PubComp::new(id(1))), &[&[0x70, 0x02, 0x00, 0x01]]),
        ]);
    }
    let reason = ReasonCode::NoMatchingSubscribers;
    let not_found = ReasonCode::PacketIdentifierNotFound;
    vectors.extend([
        // MQTT 5 with a reason code and no properties: the property length is left out
        // (§3.4.2.1).
        vector("puback-v5-reason", V5, Packet::PubAck(PubAck::with_reason(id(1), reason)), &[
            &[0x40, 0x03, 0x00, 0x01, 0x10],
        ]),
        vector("pubrec-v5-reason", V5, Packet::PubRec(PubRec::with_reason(id(1), reason)), &[
            &[0x50, 0x03, 0x00, 0x01, 0x10],
        ]),
        vector("pubrel-v5-reason", V5, Packet::PubRel(PubRel::with_reason(id(1), not_found)), &[
            &[0x62, 0x03, 0x00, 0x01, 0x92],
        ]),
        vector("pubcomp-v5-reason", V5, Packet::PubComp(PubComp::with_reason(id(1), not_found)), &[
            &[0x70, 0x03, 0x00, 0x01, 0x92],
        ]),
        // With properties: packet id, reason code, property length and properties.
        vector(
            "puback-v5-properties",
            V5,
            Packet::PubAck(PubAck {
                properties: ack_props(),
                ..PubAck::with_reason(id(1), ReasonCode::NotAuthorized)
            }),
            &[&[0x40, 0x10, 0x00, 0x01, 0x87], ACK_PROPS], // 2+1+1+12 = 16
        ),
        vector(
            "pubrec-v5-properties",
            V5,
            Packet::PubRec(PubRec {
                properties: ack_props(),
                ..PubRec::with_reason(id(1), ReasonCode::QuotaExceeded)
            }),
            &[&[0x50, 0x10, 0x00, 0x01, 0x97], ACK_PROPS],
        ),
        vector(
            "pubrel-v5-properties",
            V5,
            Packet::PubRel(PubRel { properties: ack_props(), ..PubRel::new(id(1)) }),
            &[&[0x62, 0x10, 0x00, 0x01, 0x00], ACK_PROPS], // success must be written
        ),
        vector(
            "pubcomp-v5-properties",
            V5,
            Packet::PubComp(PubComp { properties: ack_props(), ..PubComp::with_reason(id(1), not_found) }),
            &[&[0x70, 0x10, 0x00, 0x01, 0x92], ACK_PROPS],
        ),
    ]);
    vectors
}

pub(crate) fn subscribe() -> Vec<Vector> {
    let plain = Packet::Subscribe(Subscribe {
        packet_id: id(10),
        subscriptions: vec![
            Subscription { filter: filter("a/+"), options: SubscriptionOptions::new(QoS::AtLeastOnce) },
            Subscription { filter: filter("b/#"), options: SubscriptionOptions::new(QoS::ExactlyOnce) },
        ],
        properties: SubscribeProperties::default(),
    });
    let plain_bytes: &[&[u8]] = &[
        &[0x82, 0x0E],                   // SUBSCRIBE (flags 0010), 2+5+1+5+1 = 14
        &[0x00, 0x0A],                   // packet identifier 10
        &[0x00, 0x03], b"a/+", &[0x01],  // filter, requested QoS 1
        &[0x00, 0x03], b"b/#", &[0x02],  // filter, requested QoS 2
    ];
    let v5 = Packet::Subscribe(Subscribe {
        packet_id: id(10),
        subscriptions: vec![
            Subscription {
                filter: filter("a/+"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                filter: filter("$share/g/x"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    retain_handling: RetainHandling::SendIfNew,
                    ..SubscriptionOptions::default()
                },
            },
        ],
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(7),
            user_properties: user_kv(),
        },
    });
    let v5_minimal = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        subscriptions: vec![Subscription { filter: filter("#"), options: SubscriptionOptions::default() }],
        properties: SubscribeProperties::default(),
    });
    vec![
        vector("subscribe-v3", V3_1, plain.clone(), plain_bytes),
        vector("subscribe-v4", V3_1_1, plain, plain_bytes),
        vector("subscribe-v5-options-properties", V5, v5, &[
            &[0x82, 0x1F],                        // 2+1+9+6+13 = 31
            &[0x00, 0x0A],
            &[0x09],                              // properties: 9 bytes
            &[0x0B, 0x07],                        // subscription identifier 7
            USER_KV,
            &[0x00, 0x03], b"a/+",
            &[0x2D],                              // retain handling 2, RAP, no local, QoS 1
            &[0x00, 0x0A], b"$share/g/x",
            &[0x12],                              // retain handling 1, QoS 2
        ]),
        vector("subscribe-v5", V5, v5_minimal, &[
            &[0x82, 0x07],                   // 2+1+3+1 = 7
            &[0x00, 0x01],
            &[0x00],
            &[0x00, 0x01], b"#", &[0x00],
        ]),
    ]
}

pub(crate) fn suback() -> Vec<Vector> {
    use ReasonCode as R;
    let suback = |codes: Vec<ReasonCode>, properties| {
        Packet::SubAck(SubAck { packet_id: id(10), reason_codes: codes, properties })
    };
    vec![
        vector("suback-v3", V3_1, suback(vec![R::GRANTED_QOS_0, R::GrantedQoS1], AckProperties::default()), &[
            &[0x90, 0x04, 0x00, 0x0A, 0x00, 0x01],
        ]),
        vector(
            "suback-v4-failure",
            V3_1_1,
            suback(vec![R::GRANTED_QOS_0, R::GrantedQoS2, R::UnspecifiedError], AckProperties::default()),
            &[&[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80]], // 0x80: failure
        ),
        vector(
            "suback-v5",
            V5,
            suback(
                vec![R::GrantedQoS1, R::GrantedQoS2, R::UnspecifiedError, R::WildcardSubscriptionsNotSupported],
                AckProperties::default(),
            ),
            &[&[0x90, 0x07, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80, 0xA2]], // 2+1+4
        ),
        vector(
            "suback-v5-properties",
            V5,
            suback(vec![R::NotAuthorized], AckProperties { reason_string: Some(s("no")), ..Default::default() }),
            &[
                &[0x90, 0x09, 0x00, 0x0A],       // 2+1+5+1 = 9
                &[0x05, 0x1F, 0x00, 0x02], b"no",
                &[0x87],
            ],
        ),
    ]
}

pub(crate) fn unsubscribe() -> Vec<Vector> {
    let plain = Packet::Unsubscribe(Unsubscribe {
        packet_id: id(11),
        filters: vec![filter("a/+"), filter("b/#")],
        properties: UnsubscribeProperties::default(),
    });
    let plain_bytes: &[&[u8]] = &[
        &[0xA2, 0x0C],                   // UNSUBSCRIBE (flags 0010), 2+5+5 = 12
        &[0x00, 0x0B],
        &[0x00, 0x03], b"a/+",
        &[0x00, 0x03], b"b/#",
    ];
    let v5_props = Packet::Unsubscribe(Unsubscribe {
        packet_id: id(11),
        filters: vec![filter("a/+")],
        properties: UnsubscribeProperties { user_properties: user_kv() },
    });
    vec![
        vector("unsubscribe-v3", V3_1, plain.clone(), plain_bytes),
        vector("unsubscribe-v4", V3_1_1, plain.clone(), plain_bytes),
        vector("unsubscribe-v5", V5, plain, &[
            &[0xA2, 0x0D],                   // 2+1+5+5 = 13
            &[0x00, 0x0B],
            &[0x00],
            &[0x00, 0x03], b"a/+",
            &[0x00, 0x03], b"b/#",
        ]),
        vector("unsubscribe-v5-properties", V5, v5_props, &[
            &[0xA2, 0x0F],                   // 2+1+7+5 = 15
            &[0x00, 0x0B],
            &[0x07], USER_KV,
            &[0x00, 0x03], b"a/+",
        ]),
    ]
}

pub(crate) fn unsuback() -> Vec<Vector> {
    let bare = Packet::UnsubAck(UnsubAck {
        packet_id: id(11),
        reason_codes: Vec::new(),
        properties: AckProperties::default(),
    });
    let v5 = Packet::UnsubAck(UnsubAck {
        packet_id: id(11),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        properties: AckProperties::default(),
    });
    let v5_props = Packet::UnsubAck(UnsubAck {
        packet_id: id(11),
        reason_codes: vec![ReasonCode::NotAuthorized],
        properties: AckProperties { reason_string: Some(s("no")), ..Default::default() },
    });
    vec![
        vector("unsuback-v3", V3_1, bare.clone(), &[&[0xB0, 0x02, 0x00, 0x0B]]),
        vector("unsuback-v4", V3_1_1, bare, &[&[0xB0, 0x02, 0x00, 0x0B]]),
        vector("unsuback-v5", V5, v5, &[&[0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11]]),
        vector("unsuback-v5-properties", V5, v5_props, &[
            &[0xB0, 0x09, 0x00, 0x0B],
            &[0x05, 0x1F, 0x00, 0x02], b"no",
            &[0x87],
        ]),
    ]
}

pub(crate) fn ping() -> Vec<Vector> {
    let mut vectors = Vec::new();
    for version in [V3_1, V3_1_1, V5] {
        let level = version as u8;
        vectors.push(vector(format!("pingreq-v{level}").leak(), version, Packet::PingReq, &[&[0xC0, 0x00]]));
        vectors.push(vector(format!("pingresp-v{level}").leak(), version, Packet::PingResp, &[&[0xD0, 0x00]]));
    }
    vectors
}

pub(crate) fn disconnect() -> Vec<Vector> {
    let full = Disconnect {
        reason_code: ReasonCode::UseAnotherServer,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(s("bye")),
            user_properties: user_kv(),
            server_reference: Some(s("srv")),
        }
        .into(),
    };
    vec![
        vector("disconnect-v3", V3_1, Packet::Disconnect(Disconnect::default()), &[&[0xE0, 0x00]]),
        vector("disconnect-v4", V3_1_1, Packet::Disconnect(Disconnect::default()), &[&[0xE0, 0x00]]),
        // Normal disconnection without properties: remaining length 0 (§3.14.2.1).
        vector("disconnect-v5", V5, Packet::Disconnect(Disconnect::default()), &[&[0xE0, 0x00]]),
        vector(
            "disconnect-v5-reason",
            V5,
            Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
            &[&[0xE0, 0x01, 0x04]],
        ),
        vector("disconnect-v5-properties", V5, Packet::Disconnect(full), &[
            &[0xE0, 0x1A],                        // 1+1+24 = 26
            &[0x9C],                              // use another server
            &[0x18],                              // properties: 24 bytes
            &[0x11, 0x00, 0x00, 0x00, 0x00],      // session expiry interval 0
            &[0x1F, 0x00, 0x03], b"bye",          // reason string
            USER_KV,
            &[0x1C, 0x00, 0x03], b"srv",          // server reference
        ]),
    ]
}

pub(crate) fn auth() -> Vec<Vector> {
    let full = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Bytes::from_static(&[1, 2, 3])),
            reason_string: Some(s("go")),
            user_properties: user_kv(),
        }
        .into(),
    };
    vec![
        // Success without properties: remaining length 0 (§3.15.2.1).
        vector("auth-v5", V5, Packet::Auth(Auth::default()), &[&[0xF0, 0x00]]),
        vector(
            "auth-v5-reason",
            V5,
            Packet::Auth(Auth { reason_code: ReasonCode::ReAuthenticate, ..Auth::default() }),
            &[&[0xF0, 0x01, 0x19]],
        ),
        vector("auth-v5-properties", V5, Packet::Auth(full), &[
            &[0xF0, 0x1C],                        // 1+1+26 = 28
            &[0x18],                              // continue authentication
            &[0x1A],                              // properties: 26 bytes
            &[0x15, 0x00, 0x05], b"SCRAM",        // authentication method
            &[0x16, 0x00, 0x03, 0x01, 0x02, 0x03], // authentication data
            &[0x1F, 0x00, 0x02], b"go",           // reason string
            USER_KV,
        ]),
    ]
}

/// Encodings the decoder accepts but the encoder does not produce (it writes the short
/// form), with the packet they decode to.
pub(crate) fn decode_only() -> Vec<Vector> {
    vec![
        // PUBACK with reason code Success and an empty property list (§3.4.2.1).
        vector("puback-v5-long-form", V5, Packet::PubAck(PubAck::new(id(1))), &[
            &[0x40, 0x04, 0x00, 0x01, 0x00, 0x00],
        ]),
        vector("disconnect-v5-reason-only", V5, Packet::Disconnect(Disconnect::default()), &[
            &[0xE0, 0x01, 0x00],
        ]),
        vector("disconnect-v5-long-form", V5, Packet::Disconnect(Disconnect::default()), &[
            &[0xE0, 0x02, 0x00, 0x00],
        ]),
        vector("auth-v5-long-form", V5, Packet::Auth(Auth::default()), &[&[0xF0, 0x02, 0x00, 0x00]]),
        // MQTT 3.1 has no Session Present flag: the byte is reserved and ignored.
        vector("connack-v3-reserved-session-bit", V3_1, Packet::ConnAck(ConnAck::new(ReasonCode::Success)), &[
            &[0x20, 0x02, 0x01, 0x00],
        ]),
    ]
}

/// The fuzz seed name for a vector: `seed-{name}`, plus the protocol level selector the
/// fuzz targets read from their first input byte (`selector % 3`: 0 = 3.1, 1 = 3.1.1,
/// 2 = 5.0).
pub(crate) fn fuzz_selector(version: ProtocolVersion) -> u8 {
    match version {
        V3_1 => 0,
        V3_1_1 => 1,
        _ => 2,
    }
}
