//! The packet model stays small: a PUBLISH without properties allocates nothing, and
//! the types every decode, acknowledgement and delivery moves stay within a few words.

use bytes::BytesMut;
use protocol::{ClientEvent, Limits, Packet, ProtocolVersion, Publish, ServerEvent, decode};

fn decode_publish(bytes: &[u8], version: ProtocolVersion) -> Publish {
    let limits = Limits {
        version,
        ..Limits::default()
    };
    match decode(&mut BytesMut::from(bytes), &limits) {
        Ok(Some(Packet::Publish(publish))) => publish,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_publish_without_properties_allocates_none() {
    // Topic "a/b", payload "hi".
    let v4 = decode_publish(
        &[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'],
        ProtocolVersion::V3_1_1,
    );
    assert!(!v4.properties.is_allocated());
    // The same in MQTT 5 with a property length of 0.
    let v5 = decode_publish(
        &[0x30, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'h', b'i'],
        ProtocolVersion::V5,
    );
    assert!(!v5.properties.is_allocated());
    assert_eq!(v5.payload.as_ref(), b"hi");
}

#[test]
fn a_publish_with_properties_keeps_them() {
    // Message Expiry Interval 300.
    let bytes = [
        0x30, 0x0D, 0x00, 0x03, b'a', b'/', b'b', 0x05, 0x02, 0x00, 0x00, 0x01, 0x2C, b'h', b'i',
    ];
    let publish = decode_publish(&bytes, ProtocolVersion::V5);
    assert!(publish.properties.is_allocated());
    assert_eq!(publish.properties.message_expiry_interval, Some(300));
}

/// The sizes on 64-bit targets; growing one of these is a decision to make knowingly
/// (box what is rare, see `PublishProps`).
#[cfg(target_pointer_width = "64")]
#[test]
fn hot_types_stay_small() {
    use std::mem::size_of;
    assert!(
        size_of::<Publish>() <= 80,
        "Publish: {}",
        size_of::<Publish>()
    );
    assert!(size_of::<Packet>() <= 96, "Packet: {}", size_of::<Packet>());
    assert!(
        size_of::<ServerEvent>() <= 80,
        "ServerEvent: {}",
        size_of::<ServerEvent>()
    );
    assert!(
        size_of::<ClientEvent>() <= 96,
        "ClientEvent: {}",
        size_of::<ClientEvent>()
    );
}
