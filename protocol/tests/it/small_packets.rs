//! The packet model stays small: a PUBLISH without properties allocates nothing, the
//! types every decode, acknowledgement and delivery moves stay within a few words, and
//! the session every idle connection holds stays small.

use bytes::BytesMut;
use protocol::{Limits, Packet, ProtocolVersion, Publish, decode};

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
    use protocol::{ClientEvent, ServerEvent, ServerSession};
    use std::mem::size_of;
    let sizes = [
        ("Publish", size_of::<Publish>(), 80),
        ("Packet", size_of::<Packet>(), 96),
        ("ServerEvent", size_of::<ServerEvent>(), 80),
        ("ClientEvent", size_of::<ClientEvent>(), 96),
        // Held by every idle connection: the topic-alias tables come with the first alias.
        ("ServerSession", size_of::<ServerSession>(), 384),
    ];
    for (name, size, limit) in sizes {
        assert!(size <= limit, "{name} is {size} bytes, over {limit}");
    }
}
