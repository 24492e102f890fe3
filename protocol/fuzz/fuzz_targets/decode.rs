//! Arbitrary bytes through `decode` at one protocol version.
//!
//! Input: one selector byte (version = `selector % 3`: 3.1, 3.1.1, 5.0), then the bytes
//! to decode. Every packet that decodes must encode again, with `encoded_len` agreeing,
//! and decode from its own encoding to an equal packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::{Limits, ProtocolVersion, decode, encode, encoded_len};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let version = match selector % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    let limits = Limits {
        version,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(packet)) = decode(&mut buf, &limits) {
        let mut encoded = BytesMut::new();
        encode(&packet, version, &mut encoded).expect("a decoded packet encodes");
        assert_eq!(
            encoded_len(&packet, version),
            Ok(encoded.len()),
            "{packet:?}"
        );
        let again = decode(&mut encoded, &limits)
            .expect("a re-encoded packet decodes")
            .expect("a re-encoded packet is whole");
        assert_eq!(again, packet);
        assert!(
            encoded.is_empty(),
            "{} bytes left after {packet:?}",
            encoded.len()
        );
    }
});
