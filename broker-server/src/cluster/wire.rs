//! A [`Message`] ↔ NATS headers and payload: what a message looks like between nodes.
//!
//! The topic travels in the subject ([`super::subject`]), the payload as the NATS payload,
//! and everything else in headers:
//!
//! | header | value | when |
//! |---|---|---|
//! | `Mqtt-Qos` | `0`, `1` or `2` | always |
//! | `Mqtt-Retain` | `0` or `1` | always |
//! | `Mqtt-Node` | the origin node's name | always |
//! | `Mqtt-Origin` | the publisher's client id, escaped | non-empty |
//! | `Mqtt-Expires` | absolute expiry, unix milliseconds | Message Expiry Interval set |
//! | `Mqtt-Pfi` | `0` or `1` | Payload Format Indicator set |
//! | `Mqtt-Content-Type` | escaped | set |
//! | `Mqtt-Response-Topic` | escaped | set |
//! | `Mqtt-Correlation` | standard base64 (padded) | set |
//! | `Mqtt-User` | `key=value`, both escaped; repeated, in order | per user property |
//!
//! **Escaping.** A NATS header value is one line, and the client trims whitespace at both
//! ends (Unicode whitespace: `char::trim`), while MQTT strings may hold any of that. So
//! every character that is a control character, whitespace, `%` or `=` is written as
//! `%XX` per UTF-8 byte (upper-case hex); every other character, UTF-8 included, stays.
//! `=` is escaped so that `key=value` splits at the only raw `=`. Decoding takes `%XX`
//! back to bytes and refuses anything that is not valid UTF-8.
//!
//! Pure functions, no IO: [`super::routing`] and [`super::retained`] call them.

use std::fmt::Write as _;

use async_nats::HeaderMap;
use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use protocol::{PublishProperties, QoS};

use crate::message::Message;
use crate::storage::codec::{from_unix_ms, to_unix_ms};

/// Header: the QoS the message was published with.
pub const QOS: &str = "Mqtt-Qos";
/// Header: the publisher's retain flag.
pub const RETAIN: &str = "Mqtt-Retain";
/// Header: the node the message was published on (receivers drop their own).
pub const NODE: &str = "Mqtt-Node";
/// Header: the publisher's client id (for No Local), escaped.
pub const ORIGIN: &str = "Mqtt-Origin";
/// Header: when the message expires, unix milliseconds.
pub const EXPIRES: &str = "Mqtt-Expires";
/// Header: the Payload Format Indicator.
pub const PFI: &str = "Mqtt-Pfi";
/// Header: the Content Type, escaped.
pub const CONTENT_TYPE: &str = "Mqtt-Content-Type";
/// Header: the Response Topic, escaped.
pub const RESPONSE_TOPIC: &str = "Mqtt-Response-Topic";
/// Header: the Correlation Data, base64.
pub const CORRELATION: &str = "Mqtt-Correlation";
/// Header: one User Property, `key=value`, both escaped.
pub const USER: &str = "Mqtt-User";

/// Headers that do not describe a message as this module writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A header that every message carries is absent.
    #[error("header {0} is missing")]
    Missing(&'static str),
    /// A header's value is not what this module writes.
    #[error("header {name} has a bad value {value:?}")]
    Bad {
        /// The header.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// Whether `c` is written as `%XX` in a header value.
fn needs_escape(c: char) -> bool {
    c.is_control() || c.is_whitespace() || c == '%' || c == '='
}

/// `s` escaped for a header value (see the module docs).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_escape(c) {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The string that [`escape`] turned into `s`; `None` for a bad escape or bytes that
/// are not UTF-8.
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let mut bytes = Vec::with_capacity(s.len());
    let mut iter = s.bytes();
    while let Some(byte) = iter.next() {
        if byte == b'%' {
            let hi = hex(iter.next()?)?;
            let lo = hex(iter.next()?)?;
            bytes.push((hi << 4) | lo);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok()
}

/// The value of a hex digit (either case, to be lenient on input).
fn hex(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

/// The headers describing `message`, published on node `node` (everything but the topic
/// and the payload).
pub fn encode(message: &Message, node: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(QOS, (message.qos as u8).to_string());
    headers.insert(RETAIN, if message.retain { "1" } else { "0" });
    // Node names are checked by the configuration ([A-Za-z0-9_-]); escaped anyway.
    insert_escaped(&mut headers, NODE, node);
    if !message.origin.is_empty() {
        insert_escaped(&mut headers, ORIGIN, &message.origin);
    }
    if let Some(at) = message.expires_at {
        headers.insert(EXPIRES, to_unix_ms(at).to_string());
    }
    let props = &*message.properties;
    if let Some(pfi) = props.payload_format_indicator {
        headers.insert(PFI, if pfi { "1" } else { "0" });
    }
    if let Some(content_type) = &props.content_type {
        insert_escaped(&mut headers, CONTENT_TYPE, content_type);
    }
    if let Some(topic) = &props.response_topic {
        insert_escaped(&mut headers, RESPONSE_TOPIC, topic);
    }
    if let Some(data) = &props.correlation_data {
        headers.insert(
            CORRELATION,
            base64::engine::general_purpose::STANDARD.encode(data),
        );
    }
    for (key, value) in &props.user_properties {
        headers.append(USER, format!("{}={}", escape(key), escape(value)));
    }
    headers
}

/// Inserts `value` escaped: the escaped form never holds `\r` or `\n`.
fn insert_escaped(headers: &mut HeaderMap, name: &'static str, value: &str) {
    headers.insert(name, escape(value));
}

/// The origin node a message's headers name (escaped names decoded), to drop one's own
/// messages before decoding the rest.
pub fn origin_node(headers: &HeaderMap) -> Option<String> {
    headers.get(NODE).and_then(|v| unescape(v.as_str()))
}

/// The message that `headers` and `payload` describe, with `topic` taken from the
/// subject; and the node it was published on.
pub fn decode(
    topic: ByteString,
    headers: &HeaderMap,
    payload: Bytes,
) -> Result<(Message, String), WireError> {
    let qos = match required(headers, QOS)? {
        "0" => QoS::AtMostOnce,
        "1" => QoS::AtLeastOnce,
        "2" => QoS::ExactlyOnce,
        other => return Err(bad(QOS, other)),
    };
    let retain = flag(headers, RETAIN)?.ok_or(WireError::Missing(RETAIN))?;
    let node = escaped(headers, NODE)?.ok_or(WireError::Missing(NODE))?;
    let origin = escaped(headers, ORIGIN)?.unwrap_or_default();
    let expires_at = match headers.get(EXPIRES) {
        Some(v) => Some(
            v.as_str()
                .parse::<u64>()
                .map_err(|_| bad(EXPIRES, v.as_str()))
                .map(from_unix_ms)?,
        ),
        None => None,
    };
    let mut props = PublishProperties {
        payload_format_indicator: flag(headers, PFI)?,
        content_type: escaped(headers, CONTENT_TYPE)?.map(ByteString::from),
        response_topic: escaped(headers, RESPONSE_TOPIC)?.map(ByteString::from),
        ..PublishProperties::default()
    };
    if let Some(v) = headers.get(CORRELATION) {
        let data = base64::engine::general_purpose::STANDARD
            .decode(v.as_str())
            .map_err(|_| bad(CORRELATION, v.as_str()))?;
        props.correlation_data = Some(Bytes::from(data));
    }
    for v in headers.get_all(USER) {
        let (key, value) = v
            .as_str()
            .split_once('=')
            .and_then(|(k, v)| Some((unescape(k)?, unescape(v)?)))
            .ok_or_else(|| bad(USER, v.as_str()))?;
        props.user_properties.push((key.into(), value.into()));
    }
    let message = Message {
        topic,
        payload,
        qos,
        retain,
        properties: props.into(),
        expires_at,
        origin: origin.into(),
    };
    Ok((message, node))
}

/// A header every message has.
fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, WireError> {
    headers
        .get(name)
        .map(|v| v.as_str())
        .ok_or(WireError::Missing(name))
}

/// An optional `0`/`1` header.
fn flag(headers: &HeaderMap, name: &'static str) -> Result<Option<bool>, WireError> {
    match headers.get(name).map(|v| v.as_str()) {
        None => Ok(None),
        Some("0") => Ok(Some(false)),
        Some("1") => Ok(Some(true)),
        Some(other) => Err(bad(name, other)),
    }
}

/// An optional escaped header, unescaped.
fn escaped(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, WireError> {
    headers
        .get(name)
        .map(|v| unescape(v.as_str()).ok_or_else(|| bad(name, v.as_str())))
        .transpose()
}

/// A bad header value.
fn bad(name: &'static str, value: &str) -> WireError {
    WireError::Bad {
        name,
        value: value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Headers as they come out of a NATS connection: serialized as the client writes
    /// them and parsed back the way it parses them (one line per value, trimmed).
    fn through_the_wire(headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        for (name, values) in headers.iter() {
            for value in values {
                let line = format!("{name}: {}", value.as_str());
                assert_eq!(line.lines().count(), 1, "{line:?}");
                let (n, v) = line.split_once(':').unwrap();
                out.append(n, v.trim());
            }
        }
        out
    }

    fn round_trip(message: &Message) -> (Message, String) {
        let headers = through_the_wire(&encode(message, "node-1"));
        decode(message.topic.clone(), &headers, message.payload.clone()).unwrap()
    }

    #[test]
    fn a_plain_message_carries_only_what_is_always_there() {
        let message = Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        };
        let headers = encode(&message, "n1");
        assert_eq!(headers.len(), 3, "{headers:?}");
        let (back, node) = round_trip(&message);
        assert_eq!(back, message);
        assert_eq!(node, "node-1");
    }

    #[test]
    fn escaping_keeps_header_values_on_one_untrimmed_line() {
        for s in [
            "",
            " a ",
            "a=b",
            "%41",
            "x\r\ny",
            "\u{2003}em\u{a0}",
            "ü:€=日本",
        ] {
            let escaped = escape(s);
            assert!(!escaped.contains(['\r', '\n', ' ', '=']), "{escaped:?}");
            assert_eq!(escaped.trim(), escaped);
            assert_eq!(unescape(&escaped).as_deref(), Some(s));
        }
        assert_eq!(escape("k=v%"), "k%3Dv%25");
        assert_eq!(unescape("%"), None);
        assert_eq!(unescape("%FF"), None, "not UTF-8");
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            decode("t".into(), &headers, Bytes::new()),
            Err(WireError::Missing(QOS))
        );
        headers.insert(QOS, "3");
        assert!(decode("t".into(), &headers, Bytes::new()).is_err());
        headers.insert(QOS, "1");
        headers.insert(RETAIN, "1");
        headers.insert(NODE, "n");
        headers.insert(USER, "no-equals");
        assert!(matches!(
            decode("t".into(), &headers, Bytes::new()),
            Err(WireError::Bad { name: USER, .. })
        ));
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z=:%]{0,6}",
            any::<String>(),
            prop::collection::vec(
                prop::sample::select(vec![
                    "=", ":", "\n", "\r", " ", "%", "\t", "é", "\u{2028}", "k"
                ]),
                0..8
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            (text(), any::<Vec<u8>>(), 0u8..3, any::<bool>(), text()),
            (
                prop::option::of(0u64..=3_153_600_000_000),
                prop::option::of(any::<bool>()),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(any::<Vec<u8>>()),
                prop::collection::vec((text(), text()), 0..4),
            ),
        )
            .prop_map(
                |((topic, payload, qos, retain, origin), (expires, pfi, ct, rt, cd, user))| {
                    let properties = PublishProperties {
                        payload_format_indicator: pfi,
                        content_type: ct.map(Into::into),
                        response_topic: rt.map(Into::into),
                        correlation_data: cd.map(Bytes::from),
                        user_properties: user
                            .into_iter()
                            .map(|(k, v)| (k.into(), v.into()))
                            .collect(),
                        ..PublishProperties::default()
                    };
                    Message {
                        topic: topic.into(),
                        payload: payload.into(),
                        qos: QoS::from_u8(qos).unwrap(),
                        retain,
                        properties: properties.into(),
                        expires_at: expires.map(|ms| {
                            web_time::Instant::now() + std::time::Duration::from_millis(ms)
                        }),
                        origin: origin.into(),
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn every_message_round_trips(message in message()) {
            let (back, node) = round_trip(&message);
            prop_assert_eq!(node, "node-1");
            prop_assert_eq!(
                back.expires_at.map(to_unix_ms),
                message.expires_at.map(to_unix_ms)
            );
            let back = Message { expires_at: message.expires_at, ..back };
            prop_assert_eq!(back, message);
        }
    }
}
