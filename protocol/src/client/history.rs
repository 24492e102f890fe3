//! The broker's topic history over MQTT 5 request/response: the request a client
//! publishes to [`QUERY_TOPIC`] and the reply the broker sends to its Response Topic
//! (with its Correlation Data). One definition for the broker, which decodes
//! requests and encodes replies, and for both clients, which do the reverse.
//!
//! The format (JSON, UTF-8), as `docs/history.md` documents it:
//!
//! ```text
//! request  {"filter": "iot/5/+/+/+", "from": 1733540000000, "to": 1733543600000, "limit": 100}
//! reply    {"topics": [{"topic": "iot/5/d1/env/temp",
//!                       "samples": [{"t": 1733540001000, "p": "21.5"},
//!                                   {"t": 1733540002000, "p": "AAEC", "b64": true}]}],
//!           "truncated": false}
//! error    {"error": "not_authorized", "message": "..."}
//! ```
//!
//! `from` and `to` are milliseconds since the Unix epoch, both inclusive, both
//! optional; `limit` is the most samples per topic (the newest in the range). Samples
//! are oldest first; a payload is its UTF-8 text, or base64 with `"b64": true`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The topic history requests are published to.
pub const QUERY_TOPIC: &str = "$history/query";

/// A history request: which topics, which time range, how many samples.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The topics, as a subscription's topic filter (`+` and `#` allowed).
    pub filter: String,
    /// The earliest sample wanted, ms since the Unix epoch (inclusive). `None`: the
    /// oldest kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// The latest sample wanted, ms since the Unix epoch (inclusive). `None`: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// The most samples per topic, the newest of the range. `None`: every one kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl HistoryQuery {
    /// Everything kept for the topics matching `filter`.
    pub fn new(filter: impl Into<String>) -> Self {
        Self {
            filter: filter.into(),
            ..Self::default()
        }
    }

    /// The request as published.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A request as received; a body that is not one is [`HistoryError::BadRequest`].
    pub fn decode(body: &[u8]) -> Result<Self, HistoryError> {
        serde_json::from_slice(body).map_err(|err| HistoryError::BadRequest(err.to_string()))
    }
}

/// One recorded message of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When the broker received it, ms since the Unix epoch.
    pub time_ms: u64,
    /// Its payload.
    pub payload: Bytes,
}

impl Sample {
    /// The payload as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// The samples of one topic, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicHistory {
    /// The topic name.
    pub topic: String,
    /// Its samples, oldest first.
    pub samples: Vec<Sample>,
}

/// The reply to a history request as a client received it ([`super::Message`]), or
/// the broker's error: what both clients' `history` helpers return.
pub fn decode_reply(message: &super::Message) -> Result<HistoryReply, super::Error> {
    Ok(HistoryReply::decode(&message.payload)?)
}

/// The broker's answer to a [`HistoryQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryReply {
    /// Each matching topic with samples in the range, by topic name.
    pub topics: Vec<TopicHistory>,
    /// Whether samples were left out to keep the reply within the requester's
    /// Maximum Packet Size (or the broker's reply bound).
    pub truncated: bool,
}

/// A sample on the wire.
#[derive(Serialize, Deserialize)]
struct WireSample<'a> {
    t: u64,
    #[serde(borrow)]
    p: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    b64: bool,
}

/// A topic on the wire.
#[derive(Serialize, Deserialize)]
struct WireTopic<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    samples: Vec<WireSample<'a>>,
}

/// Any reply on the wire (success or error) as read.
#[derive(Deserialize)]
struct WireReply<'a> {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, borrow)]
    topics: Vec<WireTopic<'a>>,
    #[serde(default)]
    truncated: bool,
}

/// An error reply as written.
#[derive(Serialize)]
struct WireError<'a> {
    error: &'a str,
    message: &'a str,
}

/// The wire form of `samples` (text when UTF-8, else base64).
fn wire_topic<'a>(topic: &'a str, samples: &'a [Sample]) -> WireTopic<'a> {
    let samples = samples
        .iter()
        .map(|sample| match sample.payload_str() {
            Some(text) => WireSample {
                t: sample.time_ms,
                p: text.into(),
                b64: false,
            },
            None => WireSample {
                t: sample.time_ms,
                p: STANDARD.encode(&sample.payload).into(),
                b64: true,
            },
        })
        .collect();
    WireTopic {
        topic: topic.into(),
        samples,
    }
}

impl HistoryReply {
    /// The reply as sent, every sample included.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_within(usize::MAX).0
    }

    /// The reply as sent, at most `max_bytes` long when that is possible: topics in
    /// order while they fit; the first that does not fit is cut to its newest samples
    /// that do, and the rest are left out. Returns the body and whether anything was
    /// left out (then `"truncated": true` in it).
    pub fn encode_within(&self, max_bytes: usize) -> (Vec<u8>, bool) {
        // `{"topics":[` … `],"truncated":false}` and a comma per topic.
        const FRAME: usize = 40;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut used = FRAME;
        let mut truncated = self.truncated;
        for topic in &self.topics {
            let mut keep = topic.samples.len();
            loop {
                let from = topic.samples.len() - keep;
                let json = serde_json::to_vec(&wire_topic(&topic.topic, &topic.samples[from..]))
                    .unwrap_or_default();
                if used.saturating_add(json.len() + 1) <= max_bytes {
                    used += json.len() + 1;
                    parts.push(json);
                    break;
                }
                truncated = true;
                if keep == 0 {
                    break;
                }
                keep /= 2;
            }
            if keep < topic.samples.len() {
                break;
            }
        }
        let mut body = br#"{"topics":["#.to_vec();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(part);
        }
        body.extend_from_slice(format!(r#"],"truncated":{truncated}}}"#).as_bytes());
        (body, truncated)
    }

    /// A reply as received: the topics, or the error the broker answered with.
    pub fn decode(body: &[u8]) -> Result<Self, HistoryError> {
        let wire: WireReply<'_> =
            serde_json::from_slice(body).map_err(|err| HistoryError::Malformed(err.to_string()))?;
        if let Some(code) = wire.error {
            return Err(HistoryError::from_code(
                &code,
                wire.message.unwrap_or_default(),
            ));
        }
        let mut topics = Vec::with_capacity(wire.topics.len());
        for topic in wire.topics {
            let mut samples = Vec::with_capacity(topic.samples.len());
            for sample in topic.samples {
                let payload = if sample.b64 {
                    STANDARD
                        .decode(sample.p.as_bytes())
                        .map_err(|err| HistoryError::Malformed(err.to_string()))?
                        .into()
                } else {
                    Bytes::copy_from_slice(sample.p.as_bytes())
                };
                samples.push(Sample {
                    time_ms: sample.t,
                    payload,
                });
            }
            topics.push(TopicHistory {
                topic: topic.topic.into_owned(),
                samples,
            });
        }
        Ok(Self {
            topics,
            truncated: wire.truncated,
        })
    }
}

/// Why the broker did not answer a request with history, or why its answer could not
/// be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// `bad_request`: the request is not valid JSON of the format, or its filter is not
    /// a valid topic filter.
    #[error("bad history request: {0}")]
    BadRequest(String),
    /// `not_authorized`: the requester may not subscribe to the filter.
    #[error("history not authorized: {0}")]
    NotAuthorized(String),
    /// `disabled`: the broker keeps no history (`[history] enabled = false`).
    #[error("history is disabled on this broker: {0}")]
    Disabled(String),
    /// Another error code, from a newer broker.
    #[error("history error {code}: {message}")]
    Other {
        /// The code.
        code: String,
        /// The broker's explanation.
        message: String,
    },
    /// The reply is not in the format (client side only).
    #[error("malformed history reply: {0}")]
    Malformed(String),
}

impl HistoryError {
    /// The error's code on the wire.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotAuthorized(_) => "not_authorized",
            Self::Disabled(_) => "disabled",
            Self::Other { code, .. } => code,
            Self::Malformed(_) => "malformed",
        }
    }

    /// The error from its wire code and message.
    fn from_code(code: &str, message: String) -> Self {
        match code {
            "bad_request" => Self::BadRequest(message),
            "not_authorized" => Self::NotAuthorized(message),
            "disabled" => Self::Disabled(message),
            _ => Self::Other {
                code: code.to_owned(),
                message,
            },
        }
    }

    /// The error reply the broker sends.
    pub fn encode(&self) -> Vec<u8> {
        let message = match self {
            Self::BadRequest(m) | Self::NotAuthorized(m) | Self::Disabled(m) => m,
            Self::Malformed(m) | Self::Other { message: m, .. } => m,
        };
        serde_json::to_vec(&WireError {
            error: self.code(),
            message,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, payload: &'static [u8]) -> Sample {
        Sample {
            time_ms: t,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn a_query_round_trips_and_unknown_fields_are_refused() {
        let query = HistoryQuery {
            filter: "iot/5/+/+/+".into(),
            from: Some(1),
            to: None,
            limit: Some(10),
        };
        assert_eq!(HistoryQuery::decode(&query.encode()), Ok(query));
        assert!(matches!(
            HistoryQuery::decode(br#"{"filter":"a","form":1}"#),
            Err(HistoryError::BadRequest(_))
        ));
        assert!(matches!(
            HistoryQuery::decode(b"not json"),
            Err(HistoryError::BadRequest(_))
        ));
    }

    #[test]
    fn text_and_binary_payloads_round_trip() {
        let reply = HistoryReply {
            topics: vec![TopicHistory {
                topic: "a/b".into(),
                samples: vec![sample(1, b"21.5"), sample(2, &[0, 1, 0xff])],
            }],
            truncated: false,
        };
        let body = reply.encode();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(r#"{"t":1,"p":"21.5"}"#), "{text}");
        assert!(text.contains(r#""b64":true"#), "{text}");
        assert_eq!(HistoryReply::decode(&body), Ok(reply));
    }

    #[test]
    fn a_bounded_reply_keeps_the_newest_samples_and_says_so() {
        let samples = (0..100).map(|t| sample(t, b"0123456789")).collect();
        let reply = HistoryReply {
            topics: vec![
                TopicHistory {
                    topic: "a".into(),
                    samples,
                },
                TopicHistory {
                    topic: "b".into(),
                    samples: vec![sample(5, b"x")],
                },
            ],
            truncated: false,
        };
        let (body, truncated) = reply.encode_within(1000);
        assert!(truncated);
        assert!(body.len() <= 1000, "{}", body.len());
        let decoded = HistoryReply::decode(&body).unwrap();
        assert!(decoded.truncated);
        assert_eq!(decoded.topics.len(), 1);
        let kept = &decoded.topics[0].samples;
        assert!(!kept.is_empty() && kept.len() < 100);
        assert_eq!(kept.last().unwrap().time_ms, 99);
    }

    #[test]
    fn errors_round_trip_by_code() {
        let error = HistoryError::NotAuthorized("filter secret/#".into());
        assert_eq!(HistoryReply::decode(&error.encode()), Err(error));
        let other = HistoryReply::decode(br#"{"error":"busy","message":"later"}"#);
        assert_eq!(other.unwrap_err().code(), "busy");
    }
}
