//! Arbitrary bytes fed to `decode` in chunks, as a socket delivers them.
//!
//! Input: a selector byte (version = `selector % 3`; bit 7 sets a 64-byte Maximum Packet
//! Size), a seed byte for the chunk sizes, then the stream. Feeding the stream in chunks
//! must give exactly the packets, and the error, that decoding it whole gives, and
//! `Ok(None)` must never consume anything.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::{DecodeError, Limits, Packet, ProtocolVersion, decode};

/// Decodes everything `buf` holds: the packets, then the error or `None` at the end.
fn drain(buf: &mut BytesMut, limits: &Limits, out: &mut Vec<Packet>) -> Option<DecodeError> {
    loop {
        let before = buf.len();
        match decode(buf, limits) {
            Ok(Some(packet)) => out.push(packet),
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                return None;
            }
            Err(err) => return Some(err),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, seed, stream @ ..] = data else {
        return;
    };
    let version = match selector % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    let max_packet_size = if selector & 0x80 != 0 {
        64
    } else {
        protocol::MAX_PACKET_SIZE
    };
    let limits = Limits {
        version,
        max_packet_size,
    };

    let mut whole = BytesMut::from(stream);
    let mut expected = Vec::new();
    let expected_err = drain(&mut whole, &limits, &mut expected);

    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut got_err = None;
    let mut rest = stream;
    let mut state = u32::from(*seed) | 1;
    while !rest.is_empty() && got_err.is_none() {
        // xorshift: chunk sizes from 1 to 16 bytes, repeatable from the seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let take = (state % 16 + 1) as usize;
        let (chunk, tail) = rest.split_at(take.min(rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        got_err = drain(&mut buf, &limits, &mut got);
    }
    assert_eq!(got, expected);
    assert_eq!(got_err, expected_err);
    if expected_err.is_none() {
        assert_eq!(buf, whole, "different bytes left over");
    }
});
