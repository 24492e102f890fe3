//! Malformed input: one test per way a peer can get a packet wrong, each asserting the
//! exact [`DecodeError`] and the MQTT 5 reason code it maps to. Then partial input: every
//! prefix of a valid packet asks for more bytes and consumes nothing.

#[rustfmt::skip] // hand-aligned byte tables
use crate::common;

use bytes::BytesMut;
use protocol::error::DecodeError as E;
use protocol::topic::TopicError;
use protocol::{DecodeError, Limits, PacketType as P, ProtocolVersion, ReasonCode as R, decode};

use ProtocolVersion::{V3_1, V3_1_1, V5};

fn decode_err(version: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(
        &mut buf,
        &Limits {
            version,
            ..Limits::default()
        },
    ) {
        Err(err) => err,
        Ok(packet) => panic!("{bytes:02x?} decoded to {packet:?}"),
    }
}

/// One `#[test]` per malformed input: the protocol level it is decoded at, its bytes,
/// the error and the reason code expected.
macro_rules! malformed {
    ($($name:ident: $version:expr, $bytes:expr => $error:expr, $reason:expr;)*) => {$(
        #[test]
        fn $name() {
            let err = decode_err($version, &$bytes);
            assert_eq!(err, $error);
            assert_eq!(err.reason_code(), $reason);
            // Every message names the spec statement or section it enforces.
            let message = err.to_string();
            assert!(message.starts_with("[MQTT-"), "{message}");
        }
    )*};
}

// Fixed header flags other than those of the packet type [MQTT-2.1.3-1].
malformed! {
    connect_with_reserved_flags: V5, [0x11, 0x00] => E::InvalidFlags { packet: P::Connect, flags: 1 }, R::MalformedPacket;
    connack_with_reserved_flags: V5, [0x28, 0x00] => E::InvalidFlags { packet: P::ConnAck, flags: 8 }, R::MalformedPacket;
    puback_with_reserved_flags: V5, [0x42, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubAck, flags: 2 }, R::MalformedPacket;
    pubrec_with_reserved_flags: V5, [0x51, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubRec, flags: 1 }, R::MalformedPacket;
    pubrel_without_its_required_flags: V3_1_1, [0x60, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubRel, flags: 0 }, R::MalformedPacket;
    pubrel_with_dup_after_3_1: V3_1_1, [0x6A, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubRel, flags: 0b1010 }, R::MalformedPacket;
    pubrel_with_dup_at_v5: V5, [0x6A, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubRel, flags: 0b1010 }, R::MalformedPacket;
    pubcomp_with_reserved_flags: V5, [0x74, 0x02, 0x00, 0x01] => E::InvalidFlags { packet: P::PubComp, flags: 4 }, R::MalformedPacket;
    subscribe_without_its_required_flags: V3_1_1, [0x80, 0x00] => E::InvalidFlags { packet: P::Subscribe, flags: 0 }, R::MalformedPacket;
    suback_with_reserved_flags: V5, [0x92, 0x00] => E::InvalidFlags { packet: P::SubAck, flags: 2 }, R::MalformedPacket;
    unsubscribe_with_wrong_flags: V3_1, [0xA3, 0x00] => E::InvalidFlags { packet: P::Unsubscribe, flags: 3 }, R::MalformedPacket;
    unsuback_with_reserved_flags: V5, [0xB1, 0x00] => E::InvalidFlags { packet: P::UnsubAck, flags: 1 }, R::MalformedPacket;
    pingreq_with_reserved_flags: V3_1_1, [0xC1, 0x00] => E::InvalidFlags { packet: P::PingReq, flags: 1 }, R::MalformedPacket;
    pingresp_with_reserved_flags: V3_1_1, [0xD8, 0x00] => E::InvalidFlags { packet: P::PingResp, flags: 8 }, R::MalformedPacket;
    disconnect_with_reserved_flags: V5, [0xE2, 0x00] => E::InvalidFlags { packet: P::Disconnect, flags: 2 }, R::MalformedPacket;
    auth_with_reserved_flags: V5, [0xF1, 0x00] => E::InvalidFlags { packet: P::Auth, flags: 1 }, R::MalformedPacket;
    packet_type_zero_is_reserved: V5, [0x00, 0x00] => E::InvalidPacketType(0), R::MalformedPacket;
}

/// MQTT 3.1 set DUP on a re-sent PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1 §3.6, §3.8,
/// §3.10); only 3.1.1 fixed their flags at 0010.
#[test]
fn dup_on_pubrel_subscribe_and_unsubscribe_is_accepted_at_3_1() {
    let limits = Limits {
        version: V3_1,
        ..Limits::default()
    };
    let mut pubrel = BytesMut::from(&[0x6A, 0x02, 0x00, 0x07][..]);
    let packet = decode(&mut pubrel, &limits).unwrap().unwrap();
    assert!(
        matches!(&packet, protocol::Packet::PubRel(rel) if rel.packet_id.get() == 7),
        "{packet:?}"
    );
    let mut unsubscribe = BytesMut::from(&[0xAA, 0x05, 0x00, 0x01, 0x00, 0x01, b't'][..]);
    assert!(matches!(
        decode(&mut unsubscribe, &limits),
        Ok(Some(protocol::Packet::Unsubscribe(_)))
    ));
    // Any other flag is still refused.
    assert_eq!(
        decode_err(V3_1, &[0x6B, 0x02, 0x00, 0x01]),
        E::InvalidFlags {
            packet: P::PubRel,
            flags: 0b1011
        }
    );
}

// The fixed header and the Remaining Length.
malformed! {
    publish_with_qos_3: V5, [0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01] => E::InvalidQoS, R::MalformedPacket;
    publish_with_dup_at_qos_0: V3_1_1, [0x38, 0x03, 0x00, 0x01, b'a'] => E::DupOnQoS0, R::MalformedPacket;
    remaining_length_over_four_bytes: V5, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] => E::MalformedVariableByteInteger, R::MalformedPacket;
    remaining_length_not_minimally_encoded: V5, [0xC0, 0x80, 0x00] => E::MalformedVariableByteInteger, R::MalformedPacket;
    property_length_not_minimally_encoded: V5, [0x30, 0x05, 0x00, 0x01, b'a', 0x80, 0x00] => E::MalformedVariableByteInteger, R::MalformedPacket;
    auth_packet_at_v3_1_1: V3_1_1, [0xF0, 0x00] => E::InvalidPacketType(15), R::MalformedPacket;
    auth_packet_at_v3_1: V3_1, [0xF0, 0x00] => E::InvalidPacketType(15), R::MalformedPacket;
}

#[test]
fn packet_over_the_maximum_size_is_refused_from_its_fixed_header_alone() {
    // A PUBLISH announcing 2,097,152 bytes of body (80 80 80 01): only the first five
    // bytes are given, so the refusal cannot have waited for (or buffered) the body.
    let header = [0x30, 0x80, 0x80, 0x80, 0x01];
    let mut buf = BytesMut::from(&header[..]);
    let limits = Limits {
        max_packet_size: 1024,
        version: V5,
    };
    let err = decode(&mut buf, &limits).unwrap_err();
    assert_eq!(
        err,
        E::PacketTooLarge {
            size: 5 + 2_097_152,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), R::PacketTooLarge);
    // The limit counts the whole packet, fixed header included: 1024 fits exactly.
    let mut exact = BytesMut::from(&[0x30, 0xFD, 0x07][..]); // 3 + 1021
    assert_eq!(decode(&mut exact, &limits), Ok(None));
    let mut over = BytesMut::from(&[0x30, 0xFE, 0x07][..]); // 3 + 1022
    assert_eq!(
        decode(&mut over, &limits),
        Err(E::PacketTooLarge {
            size: 1025,
            max: 1024
        })
    );
}

// Strings (§1.5.4).
malformed! {
    topic_with_invalid_utf8: V3_1_1, [0x30, 0x04, 0x00, 0x02, 0xC3, 0x28] => E::InvalidUtf8 { what: "topic name" }, R::MalformedPacket;
    topic_with_null_character: V3_1_1, [0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'] => E::NullCharacter { what: "topic name" }, R::MalformedPacket;
    topic_with_encoded_surrogate: V5, [0x30, 0x06, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00] => E::InvalidUtf8 { what: "topic name" }, R::MalformedPacket;
    client_id_with_encoded_surrogate: V3_1_1,
        [0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, 0xED, 0xB0, 0x80]
        => E::InvalidUtf8 { what: "client identifier" }, R::MalformedPacket;
    // The checks run in order: U+0000, then UTF-8, then the topic rules.
    topic_with_null_and_invalid_utf8_reports_the_null: V3_1_1, [0x30, 0x05, 0x00, 0x03, 0x00, 0xC3, 0x28]
        => E::NullCharacter { what: "topic name" }, R::MalformedPacket;
    topic_with_wildcard_and_invalid_utf8_reports_the_utf8: V5, [0x30, 0x06, 0x00, 0x03, b'#', 0xC3, 0x28, 0x00]
        => E::InvalidUtf8 { what: "topic name" }, R::MalformedPacket;
    long_topic_with_wildcard_after_sixteen_bytes: V3_1_1,
        [0x30, 0x14, 0x00, 0x12, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b'j', b'k', b'l', b'm', b'n', b'o', b'p', b'/', b'#']
        => E::Topic(TopicError::WildcardInTopicName), R::TopicNameInvalid;
    user_property_with_null_character: V5, [0x30, 0x0B, 0x00, 0x01, b'a', 0x07, 0x26, 0x00, 0x01, 0x00, 0x00, 0x01, b'v']
        => E::NullCharacter { what: "user property name" }, R::MalformedPacket;
}

// Properties (§2.2.2).
malformed! {
    duplicate_property: V5, [0x30, 0x0E, 0x00, 0x01, b'a', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]
        => E::DuplicateProperty(0x02), R::ProtocolError;
    duplicate_subscription_identifier_in_subscribe: V5, [0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00]
        => E::DuplicateProperty(0x0B), R::ProtocolError;
    property_not_allowed_in_the_packet: V5, [0x30, 0x09, 0x00, 0x01, b'a', 0x05, 0x11, 0, 0, 0, 60]
        => E::PropertyNotAllowed { property: 0x11, context: "PUBLISH" }, R::MalformedPacket;
    property_not_allowed_in_will_properties: V5,
        [0x10, 0x17, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, b'c',
         0x03, 0x23, 0x00, 0x01, 0x00, 0x01, b't', 0x00, 0x00]
        => E::PropertyNotAllowed { property: 0x23, context: "will properties" }, R::MalformedPacket;
    unknown_property: V5, [0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x04, 0x00] => E::UnknownProperty(0x04), R::MalformedPacket;
    topic_alias_zero: V5, [0x30, 0x07, 0x00, 0x01, b'a', 0x03, 0x23, 0x00, 0x00] => E::TopicAliasZero, R::TopicAliasInvalid;
    receive_maximum_zero: V5, [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00]
        => E::InvalidPropertyValue { property: 0x21, value: 0 }, R::ProtocolError;
    subscription_identifier_zero: V5, [0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x0B, 0x00]
        => E::InvalidPropertyValue { property: 0x0B, value: 0 }, R::ProtocolError;
    payload_format_indicator_two: V5, [0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x01, 0x02]
        => E::InvalidPropertyValue { property: 0x01, value: 2 }, R::ProtocolError;
    maximum_qos_two: V5, [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02]
        => E::InvalidPropertyValue { property: 0x24, value: 2 }, R::ProtocolError;
    response_topic_with_wildcard: V5, [0x30, 0x09, 0x00, 0x01, b'a', 0x05, 0x08, 0x00, 0x02, b'a', b'#']
        => E::Topic(TopicError::WildcardInTopicName), R::TopicNameInvalid;
    property_length_past_the_packet: V5, [0x30, 0x05, 0x00, 0x01, b'a', 0x09, 0x01]
        => E::Truncated { what: "properties" }, R::MalformedPacket;
}

// Packet identifiers and topics.
malformed! {
    publish_with_packet_id_zero: V3_1_1, [0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00] => E::PacketIdZero(P::Publish), R::ProtocolError;
    puback_with_packet_id_zero: V5, [0x40, 0x02, 0x00, 0x00] => E::PacketIdZero(P::PubAck), R::ProtocolError;
    subscribe_with_packet_id_zero: V3_1_1, [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00] => E::PacketIdZero(P::Subscribe), R::ProtocolError;
    wildcard_in_publish_topic: V3_1_1, [0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'] => E::Topic(TopicError::WildcardInTopicName), R::TopicNameInvalid;
    hash_in_publish_topic: V5, [0x30, 0x04, 0x00, 0x01, b'#', 0x00] => E::Topic(TopicError::WildcardInTopicName), R::TopicNameInvalid;
    empty_publish_topic_before_v5: V3_1_1, [0x30, 0x02, 0x00, 0x00] => E::Topic(TopicError::EmptyTopicName), R::TopicNameInvalid;
    empty_publish_topic_without_alias: V5, [0x30, 0x03, 0x00, 0x00, 0x00] => E::EmptyTopicWithoutAlias, R::ProtocolError;
    wildcard_in_will_topic: V3_1_1,
        [0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01, b'c', 0x00, 0x01, b'#', 0x00, 0x01, b'x']
        => E::Topic(TopicError::WildcardInTopicName), R::TopicNameInvalid;
}

// SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10).
malformed! {
    empty_subscribe: V3_1_1, [0x82, 0x02, 0x00, 0x01] => E::EmptySubscribe, R::ProtocolError;
    empty_subscribe_v5: V5, [0x82, 0x03, 0x00, 0x01, 0x00] => E::EmptySubscribe, R::ProtocolError;
    empty_unsubscribe: V3_1_1, [0xA2, 0x02, 0x00, 0x01] => E::EmptyUnsubscribe, R::ProtocolError;
    empty_unsubscribe_v5: V5, [0xA2, 0x03, 0x00, 0x01, 0x00] => E::EmptyUnsubscribe, R::ProtocolError;
    subscription_options_reserved_bits_v5: V5, [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40]
        => E::SubscriptionOptionsReserved, R::MalformedPacket;
    subscription_options_reserved_bits_v3_1_1: V3_1_1, [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04]
        => E::SubscriptionOptionsReserved, R::MalformedPacket;
    subscription_requests_qos_3: V3_1_1, [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03]
        => E::SubscriptionQoS, R::MalformedPacket;
    retain_handling_3: V5, [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30] => E::InvalidRetainHandling, R::ProtocolError;
    shared_subscription_without_a_filter: V5,
        [0x82, 0x0E, 0x00, 0x01, 0x00, 0x00, 0x08, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', 0x04]
        => E::Topic(TopicError::MissingSharedFilter), R::TopicFilterInvalid;
    no_local_on_valid_shared_subscription: V5,
        [0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a', 0x04]
        => E::NoLocalOnSharedSubscription, R::ProtocolError;
    misplaced_multi_level_wildcard_in_filter: V3_1_1, [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, b'a', b'#', b'b', 0x00]
        => E::Topic(TopicError::MultiLevelWildcardMisplaced), R::TopicFilterInvalid;
    single_level_wildcard_sharing_a_level: V5, [0xA2, 0x07, 0x00, 0x01, 0x00, 0x00, 0x02, b'a', b'+']
        => E::Topic(TopicError::SingleLevelWildcardMisplaced), R::TopicFilterInvalid;
}

// CONNECT (§3.1).
malformed! {
    bad_protocol_name: V5, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'X', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]
        => E::InvalidProtocolName("MQTX".into()), R::UnsupportedProtocolVersion;
    mqisdp_name_at_level_4: V5, [0x10, 0x0E, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]
        => E::UnsupportedProtocolLevel(4), R::UnsupportedProtocolVersion;
    bad_protocol_level: V5, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00]
        => E::UnsupportedProtocolLevel(6), R::UnsupportedProtocolVersion;
    connect_reserved_flag: V3_1_1, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x00]
        => E::ConnectReservedFlag, R::MalformedPacket;
    will_qos_without_will: V3_1_1, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x0A, 0x00, 0x3C, 0x00, 0x00]
        => E::WillQoSWithoutWill, R::MalformedPacket;
    will_retain_without_will: V5, [0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x22, 0x00, 0x3C, 0x00, 0x00, 0x00]
        => E::WillRetainWithoutWill, R::MalformedPacket;
    will_qos_3: V3_1_1, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x1E, 0x00, 0x3C, 0x00, 0x00]
        => E::InvalidWillQoS, R::MalformedPacket;
    password_without_username_v3_1_1: V3_1_1, [0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x42, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, b'p']
        => E::PasswordWithoutUsername, R::MalformedPacket;
    password_without_username_v3_1: V3_1, [0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x42, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, b'p']
        => E::PasswordWithoutUsername, R::MalformedPacket;
    connect_truncated_in_the_protocol_name: V5, [0x10, 0x03, 0x00, 0x04, b'M'] => E::Truncated { what: "protocol name" }, R::MalformedPacket;
    connect_truncated_before_the_client_id: V3_1_1, [0x10, 0x0A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C]
        => E::Truncated { what: "client identifier" }, R::MalformedPacket;
    connect_user_name_flag_without_user_name: V3_1_1, [0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x82, 0x00, 0x3C, 0x00, 0x00]
        => E::Truncated { what: "user name" }, R::MalformedPacket;
    connect_with_trailing_bytes: V3_1_1, [0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00, 0xFF]
        => E::TrailingBytes { packet: P::Connect, extra: 1 }, R::MalformedPacket;
}

// CONNACK (§3.2).
malformed! {
    connack_reserved_flags: V3_1_1, [0x20, 0x02, 0x02, 0x00] => E::ConnAckReservedFlags, R::MalformedPacket;
    connack_reserved_flags_v5: V5, [0x20, 0x03, 0x80, 0x00, 0x00] => E::ConnAckReservedFlags, R::MalformedPacket;
    connack_session_present_with_error: V3_1_1, [0x20, 0x02, 0x01, 0x05] => E::SessionPresentOnError, R::ProtocolError;
    connack_session_present_with_error_v5: V5, [0x20, 0x03, 0x01, 0x87, 0x00] => E::SessionPresentOnError, R::ProtocolError;
    connack_return_code_6: V3_1_1, [0x20, 0x02, 0x00, 0x06] => E::InvalidConnectReturnCode(6), R::MalformedPacket;
    connack_without_property_length_v5: V5, [0x20, 0x02, 0x00, 0x00] => E::Truncated { what: "property length" }, R::MalformedPacket;
    connack_truncated: V3_1_1, [0x20, 0x01, 0x00] => E::Truncated { what: "connect reason code" }, R::MalformedPacket;
}

// Reason codes the spec does not list for the packet (§2.4).
malformed! {
    connack_with_a_puback_reason_code: V5, [0x20, 0x03, 0x00, 0x10, 0x00] => E::InvalidReasonCode { packet: P::ConnAck, code: 0x10 }, R::MalformedPacket;
    puback_with_a_connack_reason_code: V5, [0x40, 0x03, 0x00, 0x01, 0x86] => E::InvalidReasonCode { packet: P::PubAck, code: 0x86 }, R::MalformedPacket;
    pubrec_with_an_undefined_reason_code: V5, [0x50, 0x03, 0x00, 0x01, 0x03] => E::InvalidReasonCode { packet: P::PubRec, code: 0x03 }, R::MalformedPacket;
    pubrel_with_a_puback_reason_code: V5, [0x62, 0x03, 0x00, 0x01, 0x10] => E::InvalidReasonCode { packet: P::PubRel, code: 0x10 }, R::MalformedPacket;
    pubcomp_with_unspecified_error: V5, [0x70, 0x03, 0x00, 0x01, 0x80] => E::InvalidReasonCode { packet: P::PubComp, code: 0x80 }, R::MalformedPacket;
    suback_with_an_unsuback_reason_code: V5, [0x90, 0x04, 0x00, 0x01, 0x00, 0x11] => E::InvalidReasonCode { packet: P::SubAck, code: 0x11 }, R::MalformedPacket;
    suback_v3_1_1_with_a_v5_reason_code: V3_1_1, [0x90, 0x03, 0x00, 0x01, 0x87] => E::InvalidReasonCode { packet: P::SubAck, code: 0x87 }, R::MalformedPacket;
    unsuback_with_a_suback_reason_code: V5, [0xB0, 0x04, 0x00, 0x01, 0x00, 0x01] => E::InvalidReasonCode { packet: P::UnsubAck, code: 0x01 }, R::MalformedPacket;
    disconnect_with_a_connack_reason_code: V5, [0xE0, 0x01, 0x84] => E::InvalidReasonCode { packet: P::Disconnect, code: 0x84 }, R::MalformedPacket;
    auth_with_a_disconnect_reason_code: V5, [0xF0, 0x01, 0x04] => E::InvalidReasonCode { packet: P::Auth, code: 0x04 }, R::MalformedPacket;
    suback_without_reason_codes: V3_1_1, [0x90, 0x02, 0x00, 0x01] => E::NoReasonCodes(P::SubAck), R::MalformedPacket;
    unsuback_v5_without_reason_codes: V5, [0xB0, 0x03, 0x00, 0x01, 0x00] => E::NoReasonCodes(P::UnsubAck), R::MalformedPacket;
}

// Truncated fields and trailing bytes (§2.1.4).
malformed! {
    publish_topic_longer_than_the_packet: V3_1_1, [0x30, 0x03, 0x00, 0x05, b'a'] => E::Truncated { what: "topic name" }, R::MalformedPacket;
    publish_qos1_without_packet_id: V3_1_1, [0x32, 0x03, 0x00, 0x01, b'a'] => E::Truncated { what: "packet identifier" }, R::MalformedPacket;
    puback_with_one_byte_packet_id: V3_1_1, [0x40, 0x01, 0x00] => E::Truncated { what: "packet identifier" }, R::MalformedPacket;
    property_value_cut_short: V5, [0x30, 0x07, 0x00, 0x01, b'a', 0x02, 0x02, 0x00, 0x00] => E::Truncated { what: "property value" }, R::MalformedPacket;
    subscribe_filter_without_options: V3_1_1, [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'] => E::Truncated { what: "subscription options" }, R::MalformedPacket;
    puback_with_trailing_bytes_v3_1_1: V3_1_1, [0x40, 0x03, 0x00, 0x01, 0x00] => E::TrailingBytes { packet: P::PubAck, extra: 1 }, R::MalformedPacket;
    unsuback_with_trailing_bytes_v3_1_1: V3_1_1, [0xB0, 0x03, 0x00, 0x01, 0x00] => E::TrailingBytes { packet: P::UnsubAck, extra: 1 }, R::MalformedPacket;
    pingreq_with_a_body: V5, [0xC0, 0x01, 0x00] => E::TrailingBytes { packet: P::PingReq, extra: 1 }, R::MalformedPacket;
    disconnect_with_a_body_v3_1_1: V3_1_1, [0xE0, 0x01, 0x00] => E::TrailingBytes { packet: P::Disconnect, extra: 1 }, R::MalformedPacket;
    puback_v5_with_bytes_after_its_properties: V5, [0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xAA]
        => E::TrailingBytes { packet: P::PubAck, extra: 1 }, R::MalformedPacket;
}

#[test]
fn every_prefix_of_a_valid_packet_asks_for_more_and_consumes_nothing() {
    for vector in common::all().into_iter().chain(common::decode_only()) {
        let limits = Limits {
            version: vector.version,
            ..Limits::default()
        };
        for len in 0..vector.bytes.len() {
            let mut buf = BytesMut::from(&vector.bytes[..len]);
            assert_eq!(
                decode(&mut buf, &limits),
                Ok(None),
                "{} cut to {len} bytes",
                vector.name
            );
            assert_eq!(
                buf[..],
                vector.bytes[..len],
                "{} cut to {len} bytes",
                vector.name
            );
        }
    }
}

#[test]
fn a_packet_split_across_reads_decodes_once_complete() {
    let vectors = common::all();
    let vector = vectors
        .iter()
        .find(|v| v.name == "connect-v5-will-credentials-properties")
        .unwrap();
    let limits = Limits {
        version: vector.version,
        ..Limits::default()
    };
    let mut buf = BytesMut::new();
    for (i, &byte) in vector.bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let decoded = decode(&mut buf, &limits).unwrap();
        if i + 1 < vector.bytes.len() {
            assert_eq!(decoded, None);
        } else {
            assert_eq!(decoded, Some(vector.packet.clone()));
        }
    }
    assert!(buf.is_empty());
}
