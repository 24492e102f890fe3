//! The spec's primitive data representations (§1.5): two- and four-byte integers,
//! Variable Byte Integers, UTF-8 strings, binary data and string pairs.
//!
//! Reading works on a [`Bytes`] holding exactly one packet's remaining bytes, so strings
//! and binary data come out as zero-copy slices of the receive buffer. Writing goes
//! through [`Sink`], implemented both by `BytesMut` and by [`Counter`], so the code that
//! writes a packet is also the code that measures it: lengths can never disagree.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};

/// The largest value a Variable Byte Integer can hold (§1.5.5).
pub(crate) const MAX_VARINT: u32 = 268_435_455;

pub(crate) fn read_u8(buf: &mut Bytes, what: &'static str) -> Result<u8, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Truncated { what });
    }
    Ok(buf.get_u8())
}

pub(crate) fn read_u16(buf: &mut Bytes, what: &'static str) -> Result<u16, DecodeError> {
    if buf.len() < 2 {
        return Err(DecodeError::Truncated { what });
    }
    Ok(buf.get_u16())
}

pub(crate) fn read_u32(buf: &mut Bytes, what: &'static str) -> Result<u32, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Truncated { what });
    }
    Ok(buf.get_u32())
}

/// Outcome of parsing a Variable Byte Integer from the front of a slice.
pub(crate) enum VarInt {
    /// The value and how many bytes encoded it.
    Value(u32, usize),
    /// The slice ends before the integer does.
    Incomplete,
}

/// Parses a Variable Byte Integer without consuming anything. More than four bytes, or
/// more bytes than the value needs (a last byte of 0 after a continuation byte, as in
/// `80 00`), is malformed [MQTT-1.5.5-1].
pub(crate) fn parse_varint(bytes: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(DecodeError::MalformedVariableByteInteger);
            }
            return Ok(VarInt::Value(value, i + 1));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::MalformedVariableByteInteger)
    } else {
        Ok(VarInt::Incomplete)
    }
}

pub(crate) fn read_varint(buf: &mut Bytes, what: &'static str) -> Result<u32, DecodeError> {
    match parse_varint(buf)? {
        VarInt::Value(value, len) => {
            buf.advance(len);
            Ok(value)
        }
        VarInt::Incomplete => Err(DecodeError::Truncated { what }),
    }
}

/// Binary Data (§1.5.6): a two-byte length and that many bytes, as a zero-copy slice.
pub(crate) fn read_binary(buf: &mut Bytes, what: &'static str) -> Result<Bytes, DecodeError> {
    let len = usize::from(read_u16(buf, what)?);
    if buf.len() < len {
        return Err(DecodeError::Truncated { what });
    }
    Ok(buf.split_to(len))
}

/// A UTF-8 Encoded String (§1.5.4): well-formed UTF-8 (which excludes the surrogates
/// U+D800..U+DFFF) [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2].
pub(crate) fn read_string(buf: &mut Bytes, what: &'static str) -> Result<ByteString, DecodeError> {
    string_from(read_binary(buf, what)?, what)
}

/// Checks Binary Data read off the wire as a UTF-8 Encoded String (see [`read_string`]).
pub(crate) fn string_from(raw: Bytes, what: &'static str) -> Result<ByteString, DecodeError> {
    // Branch-free, so it vectorises: faster than `contains` on the short strings of MQTT.
    if raw.iter().fold(false, |nul, &byte| nul | (byte == 0)) {
        return Err(DecodeError::NullCharacter { what });
    }
    ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8 { what })
}

/// Where encoded bytes go: a real buffer, or a [`Counter`] that only measures.
pub(crate) trait Sink {
    fn put_u8(&mut self, value: u8);
    fn put_slice(&mut self, bytes: &[u8]);

    fn put_u16(&mut self, value: u16) {
        self.put_slice(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.put_slice(&value.to_be_bytes());
    }

    /// Writes a Variable Byte Integer; callers keep `value <= MAX_VARINT`.
    fn put_varint(&mut self, mut value: u32) {
        loop {
            let mut byte = (value & 0x7F) as u8;
            value >>= 7;
            if value > 0 {
                byte |= 0x80;
            }
            self.put_u8(byte);
            if value == 0 {
                break;
            }
        }
    }
}

impl Sink for BytesMut {
    fn put_u8(&mut self, value: u8) {
        BufMut::put_u8(self, value);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A [`Sink`] that counts the bytes it is given, to size a packet before writing it.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn put_varint(&mut self, value: u32) {
        self.0 += varint_len(value);
    }
}

/// How many bytes the Variable Byte Integer encoding of `value` takes.
pub(crate) const fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes Binary Data or a UTF-8 string (§1.5.4, §1.5.6): a two-byte length, then the
/// bytes. A field over 65,535 bytes cannot be encoded. Packets are measured with a
/// [`Counter`] before they are written, so this error surfaces before any byte is.
pub(crate) fn put_binary<S: Sink>(
    sink: &mut S,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), EncodeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong {
        what,
        len: bytes.len(),
    })?;
    sink.put_u16(len);
    sink.put_slice(bytes);
    Ok(())
}
