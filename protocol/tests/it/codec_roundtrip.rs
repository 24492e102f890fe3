//! Property tests: arbitrary valid packets of every type, at every protocol level, with
//! only the fields that level carries, survive `decode(encode(p)) == p` with
//! `encoded_len` agreeing; arbitrary and mutated bytes never make `decode` panic; and
//! packets written back to back decode one by one.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use protocol::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Limits, Packet, PacketId, PacketType, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperties, Will, WillProperties,
    decode, encode, encoded_len,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

// ---- primitives ---------------------------------------------------------------------

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(V3_1), Just(V3_1_1), Just(V5)]
}

/// Any UTF-8 string without U+0000 (which no MQTT string may hold).
fn string() -> impl Strategy<Value = ByteString> {
    prop_oneof!["[a-z0-9/ ]{0,8}", "[^\u{0}]{0,6}",].prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

/// A level of a topic: a small alphabet, so that `$`, spaces and multi-byte characters
/// show up, and the empty level too.
fn level() -> impl Strategy<Value = String> {
    "[a-z0-9$ é語_-]{0,4}"
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is not empty", |name| !name.is_empty())
        .prop_map(|name| TopicName::new(name).unwrap())
}

/// A valid filter: levels that are literal or `+`, maybe a final `#`, maybe shared.
fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(level, 0..4), any::<bool>(), of("[a-z0-9]{1,4}"))
        .prop_map(|(mut levels, hash, group)| {
            if hash || levels.is_empty() {
                levels.push("#".to_owned());
            }
            let mut filter = levels.join("/");
            if filter.is_empty() {
                filter.push('#');
            }
            match group {
                Some(group) => format!("$share/{group}/{filter}"),
                None => filter,
            }
        })
        .prop_map(|filter| TopicFilter::new(filter).unwrap())
}

fn user_properties() -> impl Strategy<Value = UserProperties> {
    vec((string(), string()), 0..3)
}

fn subscription_id() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1..=200u32, 1..=268_435_455u32].prop_map(|id| NonZeroU32::new(id).unwrap())
}

fn non_zero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|v| NonZeroU16::new(v).unwrap())
}

fn non_zero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|v| NonZeroU32::new(v).unwrap())
}

/// The reason codes the spec allows in `packet`.
fn reason(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|rc| rc.allowed_in(packet))
        .collect();
    prop::sample::select(codes)
}

// ---- properties ---------------------------------------------------------------------

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (
            of(any::<u32>()),
            of(non_zero_u16()),
            of(non_zero_u32()),
            of(any::<u16>()),
        ),
        (
            of(any::<bool>()),
            of(any::<bool>()),
            user_properties(),
            of(string()),
            of(binary()),
        ),
    )
        .prop_map(
            |((expiry, receive, size, alias), (rri, rpi, user, method, data))| ConnectProperties {
                session_expiry_interval: expiry,
                receive_maximum: receive,
                maximum_packet_size: size,
                topic_alias_maximum: alias,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: user,
                authentication_method: method,
                authentication_data: data,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        of(any::<u32>()),
        of(any::<bool>()),
        of(any::<u32>()),
        of(string()),
        of(topic_name()),
        of(binary()),
        user_properties(),
    )
        .prop_map(
            |(delay, format, expiry, content, response, correlation, user)| WillProperties {
                will_delay_interval: delay,
                payload_format_indicator: format,
                message_expiry_interval: expiry,
                content_type: content,
                response_topic: response.map(TopicName::into_inner),
                correlation_data: correlation,
                user_properties: user,
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let qos01 = prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)];
    (
        (
            of(any::<u32>()),
            of(non_zero_u16()),
            of(qos01),
            of(any::<bool>()),
            of(non_zero_u32()),
            of(string()),
            of(any::<u16>()),
            of(string()),
        ),
        (
            user_properties(),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<u16>()),
            of(string()),
            of(string()),
            of(string()),
            of(binary()),
        ),
    )
        .prop_map(|(a, b)| ConnAckProperties {
            session_expiry_interval: a.0,
            receive_maximum: a.1,
            maximum_qos: a.2,
            retain_available: a.3,
            maximum_packet_size: a.4,
            assigned_client_identifier: a.5,
            topic_alias_maximum: a.6,
            reason_string: a.7,
            user_properties: b.0,
            wildcard_subscription_available: b.1,
            subscription_identifiers_available: b.2,
            shared_subscription_available: b.3,
            server_keep_alive: b.4,
            response_information: b.5,
            server_reference: b.6,
            authentication_method: b.7,
            authentication_data: b.8,
        })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        of(any::<bool>()),
        of(any::<u32>()),
        of(non_zero_u16()),
        of(topic_name()),
        of(binary()),
        user_properties(),
        vec(subscription_id(), 0..3),
        of(string()),
    )
        .prop_map(
            |(format, expiry, alias, response, correlation, user, ids, content)| {
                PublishProperties {
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic: response.map(TopicName::into_inner),
                    correlation_data: correlation,
                    user_properties: user,
                    subscription_identifiers: ids,
                    content_type: content,
                }
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(string()), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

// ---- packets ------------------------------------------------------------------------

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let will = (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        will_properties(),
    )
        .prop_map(move |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: if v5 {
                properties
            } else {
                WillProperties::default()
            },
        });
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(will),
        of(string()),
        of(binary()),
        connect_properties(),
        any::<bool>(),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
                bridge,
            )| {
                Packet::Connect(Box::new(Connect {
                    // The 3.x bridge flag (protocol level 0x83 / 0x84).
                    bridge: bridge && !v5,
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    // Before MQTT 5 a password needs a user name [MQTT-3.1.2-22].
                    password: password.filter(|_| v5 || username.is_some()),
                    username,
                    properties: if v5 {
                        properties
                    } else {
                        ConnectProperties::default()
                    },
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    if version.is_v5() {
        (
            any::<bool>(),
            reason(PacketType::ConnAck),
            connack_properties(),
        )
            .prop_map(|(session_present, reason_code, properties)| {
                Packet::ConnAck(ConnAck {
                    session_present: session_present && !reason_code.is_error(),
                    reason_code,
                    properties: Box::new(properties),
                })
            })
            .boxed()
    } else {
        // The six 3.x return codes; no Session Present flag in 3.1.
        (any::<bool>(), 0..=5u8)
            .prop_map(move |(session_present, code)| {
                let reason_code = ReasonCode::from_v3_connack(code).unwrap();
                Packet::ConnAck(ConnAck {
                    session_present: session_present && code == 0 && version == V3_1_1,
                    ..ConnAck::new(reason_code)
                })
            })
            .boxed()
    }
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        vec(any::<u8>(), 0..64),
        publish_properties(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, alias_only, id, payload, properties)| {
                let properties = if v5 {
                    properties
                } else {
                    PublishProperties::default()
                };
                // MQTT 5: a Topic Alias may stand in for an empty topic name.
                let topic = if alias_only && properties.topic_alias.is_some() {
                    ByteString::new()
                } else {
                    topic.into_inner()
                };
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    payload: payload.into(),
                    properties: properties.into(),
                })
            },
        )
}

fn pub_ack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    (
        0..4usize,
        packet_id(),
        ack_properties(),
        reason(PacketType::PubAck),
        reason(PacketType::PubRel),
    )
        .prop_map(move |(kind, id, properties, ack_reason, rel_reason)| {
            let (properties, ack_reason, rel_reason) = if v5 {
                (properties, ack_reason, rel_reason)
            } else {
                (
                    AckProperties::default(),
                    ReasonCode::Success,
                    ReasonCode::Success,
                )
            };
            match kind {
                0 => Packet::PubAck(PubAck {
                    properties,
                    ..PubAck::with_reason(id, ack_reason)
                }),
                1 => Packet::PubRec(PubRec {
                    properties,
                    ..PubRec::with_reason(id, ack_reason)
                }),
                2 => Packet::PubRel(PubRel {
                    properties,
                    ..PubRel::with_reason(id, rel_reason)
                }),
                _ => Packet::PubComp(PubComp {
                    properties,
                    ..PubComp::with_reason(id, rel_reason)
                }),
            }
        })
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendOnSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    let subscription = (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        retain_handling,
    )
        .prop_map(
            move |(filter, qos, no_local, retain_as_published, retain_handling)| {
                let options = if v5 {
                    SubscriptionOptions {
                        qos,
                        // No Local on a shared subscription is a protocol error.
                        no_local: no_local && !filter.is_shared(),
                        retain_as_published,
                        retain_handling,
                    }
                } else {
                    SubscriptionOptions::new(qos)
                };
                Subscription { filter, options }
            },
        );
    (
        packet_id(),
        vec(subscription, 1..4),
        of(subscription_id()),
        user_properties(),
    )
        .prop_map(
            move |(packet_id, subscriptions, subscription_identifier, user_properties)| {
                Packet::Subscribe(Subscribe {
                    packet_id,
                    subscriptions,
                    properties: if v5 {
                        SubscribeProperties {
                            subscription_identifier,
                            user_properties,
                        }
                    } else {
                        SubscribeProperties::default()
                    },
                })
            },
        )
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let v3_codes = prop::sample::select(vec![
        ReasonCode::Success,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ]);
    (
        packet_id(),
        vec(reason(PacketType::SubAck), 1..5),
        vec(v3_codes, 1..5),
        ack_properties(),
    )
        .prop_map(move |(packet_id, v5_codes, v3_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes: if v5 { v5_codes } else { v3_codes },
                properties: if v5 {
                    properties
                } else {
                    AckProperties::default()
                },
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    (packet_id(), vec(topic_filter(), 1..4), user_properties()).prop_map(
        move |(packet_id, filters, user_properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties: if v5 {
                    UnsubscribeProperties { user_properties }
                } else {
                    UnsubscribeProperties::default()
                },
            })
        },
    )
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    (
        packet_id(),
        vec(reason(PacketType::UnsubAck), 1..5),
        ack_properties(),
    )
        .prop_map(move |(packet_id, codes, properties)| {
            // 3.x UNSUBACK carries only the packet identifier.
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes: if v5 { codes } else { Vec::new() },
                properties: if v5 {
                    properties
                } else {
                    AckProperties::default()
                },
            })
        })
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let properties = (
        of(any::<u32>()),
        of(string()),
        user_properties(),
        of(string()),
    )
        .prop_map(
            |(session_expiry_interval, reason_string, user_properties, server_reference)| {
                DisconnectProperties {
                    session_expiry_interval,
                    reason_string,
                    user_properties,
                    server_reference,
                }
            },
        );
    (reason(PacketType::Disconnect), properties).prop_map(move |(reason_code, properties)| {
        Packet::Disconnect(if v5 {
            Disconnect {
                reason_code,
                properties: Box::new(properties),
            }
        } else {
            Disconnect::default()
        })
    })
}

fn auth() -> impl Strategy<Value = Packet> {
    let properties = (of(string()), of(binary()), of(string()), user_properties()).prop_map(
        |(authentication_method, authentication_data, reason_string, user_properties)| {
            AuthProperties {
                authentication_method,
                authentication_data,
                reason_string,
                user_properties,
            }
        },
    );
    (reason(PacketType::Auth), properties).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties: Box::new(properties),
        })
    })
}

/// Any valid packet for `version`.
fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(version),
        connack(version),
        publish(version),
        pub_ack(version),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version),
    ];
    if version.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|version| (Just(version), packet(version)))
}

fn limits(version: ProtocolVersion) -> Limits {
    Limits {
        version,
        ..Limits::default()
    }
}

/// Decodes packets off `buf` until it is empty, an error, or a partial packet; never
/// panics, whatever `buf` holds.
fn decode_all(buf: &mut BytesMut, version: ProtocolVersion) {
    while let Ok(Some(_)) = decode(buf, &limits(version)) {}
}

// ---- properties ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_valid_packet_survives_encode_then_decode((version, packet) in versioned_packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        prop_assert_eq!(encoded_len(&packet, version), Ok(buf.len()));
        let decoded = decode(&mut buf, &limits(version));
        prop_assert_eq!(decoded, Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn concatenated_packets_decode_one_by_one(
        (version, packets) in version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..8)))
    ) {
        let mut buf = BytesMut::new();
        for packet in &packets {
            encode(packet, version, &mut buf).unwrap();
        }
        for packet in packets {
            prop_assert_eq!(decode(&mut buf, &limits(version)), Ok(Some(packet)));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decode(&mut buf, &limits(version)), Ok(None));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes_at_v3_1(bytes in vec(any::<u8>(), 0..256)) {
        decode_all(&mut BytesMut::from(&bytes[..]), V3_1);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes_at_v3_1_1(bytes in vec(any::<u8>(), 0..256)) {
        decode_all(&mut BytesMut::from(&bytes[..]), V3_1_1);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes_at_v5(bytes in vec(any::<u8>(), 0..256)) {
        decode_all(&mut BytesMut::from(&bytes[..]), V5);
    }

    /// The PUBLISH topic check (a vectorised scan, then the full rules only when it
    /// finds something) agrees with the rules applied naively, at every length.
    #[test]
    fn publish_topic_checks_agree_with_the_rules(topic in "[ab/+#\u{0}é]{0,40}") {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x30, (2 + topic.len()) as u8]);
        buf.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        buf.extend_from_slice(topic.as_bytes());
        let result = decode(&mut buf, &limits(V3_1_1));
        let expected = if topic.contains('\0') {
            Err(protocol::DecodeError::NullCharacter { what: "topic name" })
        } else if topic.is_empty() {
            Err(protocol::topic::TopicError::EmptyTopicName.into())
        } else if topic.contains(['+', '#']) {
            Err(protocol::topic::TopicError::WildcardInTopicName.into())
        } else {
            Ok(Some(Packet::Publish(Publish::new(topic.as_str(), ""))))
        };
        prop_assert_eq!(result, expected);
    }

    /// Random bytes rarely get past the fixed header; valid packets with a few bytes
    /// changed reach every field decoder.
    #[test]
    fn decode_never_panics_on_mutated_valid_packets(
        (version, packet) in versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        decode_at in version(),
    ) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        for (index, byte) in edits {
            let at = index.index(buf.len());
            buf[at] = byte;
        }
        decode_all(&mut buf, decode_at);
    }
}
