//! In-browser tests of the byte bridge between JavaScript and Rust that the WebSocket
//! adapter relies on: an incoming binary frame arrives as a JS `ArrayBuffer` and must
//! reach the codec as Rust bytes unchanged; outgoing packets go the other way.
//! They need no broker.
//!
//! The last test runs `protocol`'s codec compiled to wasm32 on bytes that went through JS
//! memory, as they will between the socket and the session.

use bytes::BytesMut;
use js_sys::{ArrayBuffer, Uint8Array};
use protocol::{Limits, Packet, ProtocolVersion};
use wasm_bindgen_test::wasm_bindgen_test;

/// Every byte value, so a sign or UTF-8 mix-up anywhere in the bridge shows.
fn all_byte_values() -> Vec<u8> {
    (0..=255).collect()
}

#[wasm_bindgen_test]
fn runs_in_a_browser_window() {
    // `run_in_browser` must not silently fall back to Node.js: the adapter needs a
    // browser `WebSocket`, so these tests only mean something inside a page.
    assert!(
        web_sys::window().is_some(),
        "not running in a browser window"
    );
}

#[wasm_bindgen_test]
fn incoming_array_buffer_copies_into_rust_unchanged() {
    let bytes = all_byte_values();
    // What a `MessageEvent` with `binaryType = "arraybuffer"` hands over.
    let buffer = ArrayBuffer::new(bytes.len() as u32);
    let view = Uint8Array::new(&buffer);
    view.copy_from(&bytes);

    let received: Vec<u8> = Uint8Array::new(&buffer).to_vec();
    assert_eq!(received, bytes);

    // A view at an offset (a frame that starts mid-buffer) copies only its window.
    let window = Uint8Array::new_with_byte_offset_and_length(&buffer, 16, 32);
    assert_eq!(window.to_vec(), bytes[16..48]);
}

#[wasm_bindgen_test]
fn outgoing_rust_bytes_copy_into_js_unchanged() {
    let mut bytes = all_byte_values();
    // What `WebSocket::send_with_u8_array` is given.
    let array = Uint8Array::from(bytes.as_slice());
    assert_eq!(array.length() as usize, bytes.len());
    assert_eq!(array.get_index(0xC0), 0xC0);
    assert_eq!(array.to_vec(), bytes);

    // The JS array is a copy: the adapter may reuse its write buffer right after `send`.
    bytes.fill(0);
    assert_eq!(array.to_vec(), all_byte_values());
}

#[wasm_bindgen_test]
fn codec_decodes_a_packet_that_crossed_js_memory_in_pieces() {
    let mut encoded = BytesMut::new();
    protocol::encode(&Packet::PingReq, ProtocolVersion::V5, &mut encoded).expect("PINGREQ encodes");
    assert_eq!(encoded[..], [0xC0, 0x00]);

    // Out through JS and back, as one frame would travel.
    let frame = Uint8Array::from(&encoded[..]).to_vec();

    // A WebSocket frame may hold part of a packet: the first byte alone is not a packet.
    let limits = Limits::default();
    let mut buf = BytesMut::from(&frame[..1]);
    assert_eq!(
        protocol::decode(&mut buf, &limits).expect("valid prefix"),
        None
    );
    buf.extend_from_slice(&frame[1..]);
    assert_eq!(
        protocol::decode(&mut buf, &limits).expect("valid packet"),
        Some(Packet::PingReq)
    );
    assert!(buf.is_empty());
}
