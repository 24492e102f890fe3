//! Payload views: text, pretty JSON (in the publisher's key order, [`super::json`]),
//! hex, Base64 and CBOR ([`super::cbor`]); pure, unit-tested natively.

use super::{cbor, json};

/// How the payload viewer shows a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// UTF-8 text (invalid sequences replaced).
    Text,
    /// Pretty-printed JSON, or why it is not JSON.
    Json,
    /// Offset, hex bytes and printable ASCII, 16 bytes a line.
    Hex,
    /// The payload encoded as Base64 (RFC 4648, with padding), to copy binary payloads
    /// as text.
    Base64,
    /// CBOR decoded to indented diagnostic notation, or why it is not CBOR.
    Cbor,
}

impl View {
    /// Every view, in tab order, with its label.
    pub const ALL: [(Self, &'static str); 5] = [
        (Self::Text, "Text"),
        (Self::Json, "JSON"),
        (Self::Hex, "Hex"),
        (Self::Base64, "Base64"),
        (Self::Cbor, "CBOR"),
    ];

    /// The best first view: JSON if it parses as an object or array, text if UTF-8,
    /// CBOR if it is exactly one CBOR map or array, else hex.
    pub fn guess(payload: &[u8]) -> Self {
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) if value.is_object() || value.is_array() => Self::Json,
            _ if std::str::from_utf8(payload).is_ok() => Self::Text,
            _ if cbor::looks_like(payload) => Self::Cbor,
            _ => Self::Hex,
        }
    }

    /// `payload` shown this way.
    pub fn render(self, payload: &[u8]) -> String {
        match self {
            Self::Text => String::from_utf8_lossy(payload).into_owned(),
            Self::Json => match std::str::from_utf8(payload) {
                Ok(text) => json::pretty(text).unwrap_or_else(|e| format!("not JSON: {e}")),
                Err(error) => format!("not JSON: not UTF-8 ({error})"),
            },
            Self::Hex => hex_dump(payload),
            Self::Base64 => base64(payload),
            Self::Cbor => cbor::render(payload).unwrap_or_else(|e| format!("not CBOR: {e}")),
        }
    }
}

/// `payload` in standard Base64 with padding.
pub fn base64(payload: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(payload.len().div_ceil(3) * 4);
    for chunk in payload.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A classic hex dump: `00000000  68 69 …  |hi…|`.
pub fn hex_dump(payload: &[u8]) -> String {
    payload
        .chunks(16)
        .enumerate()
        .map(|(line, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  |{ascii}|", line * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_view_renders_the_payload() {
        assert_eq!(View::guess(br#"{"a":1}"#), View::Json);
        assert_eq!(View::guess(b"21.5"), View::Text);
        assert_eq!(View::guess(&[0xff, 0x00]), View::Hex);
        assert_eq!(
            View::Json.render(br#"{"a":[1]}"#),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert!(View::Json.render(b"{").starts_with("not JSON"));
        assert_eq!(View::Text.render(b"hi"), "hi");
        assert_eq!(
            View::Hex.render(b"hi\n"),
            "00000000  68 69 0a                                         |hi.|"
        );
        assert_eq!(hex_dump(&[0u8; 17]).lines().count(), 2);
        // Key order as published.
        assert_eq!(
            View::Json.render(br#"{"b":1,"a":2}"#),
            "{\n  \"b\": 1,\n  \"a\": 2\n}"
        );
        assert_eq!(View::guess(&[0xa1, 0x61, 0x74, 0x01]), View::Cbor);
        assert_eq!(
            View::Cbor.render(&[0xa1, 0x61, 0x74, 0x01]),
            "{\n  \"t\": 1\n}"
        );
        assert!(View::Cbor.render(b"\xff").starts_with("not CBOR"));
        assert_eq!(View::Base64.render(b"hi\n"), "aGkK");
    }

    #[test]
    fn base64_follows_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }
}
