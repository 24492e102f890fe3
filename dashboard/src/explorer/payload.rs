//! Payload views: text, pretty JSON and hex; pure, unit-tested natively.

/// How the payload viewer shows a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// UTF-8 text (invalid sequences replaced).
    Text,
    /// Pretty-printed JSON, or why it is not JSON.
    Json,
    /// Offset, hex bytes and printable ASCII, 16 bytes a line.
    Hex,
}

impl View {
    /// Every view, in tab order, with its label.
    pub const ALL: [(Self, &'static str); 3] = [
        (Self::Text, "Text"),
        (Self::Json, "JSON"),
        (Self::Hex, "Hex"),
    ];

    /// The best first view: JSON if it parses as an object or array, text if UTF-8,
    /// else hex.
    pub fn guess(payload: &[u8]) -> Self {
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) if value.is_object() || value.is_array() => Self::Json,
            _ if std::str::from_utf8(payload).is_ok() => Self::Text,
            _ => Self::Hex,
        }
    }

    /// `payload` shown this way.
    pub fn render(self, payload: &[u8]) -> String {
        match self {
            Self::Text => String::from_utf8_lossy(payload).into_owned(),
            Self::Json => match serde_json::from_slice::<serde_json::Value>(payload) {
                Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
                Err(error) => format!("not JSON: {error}"),
            },
            Self::Hex => hex_dump(payload),
        }
    }
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
    }
}
