//! [`Error`], why an operation of a client failed, and [`ConnectFailure`], why the
//! first connection failed above the transport. Both clients use [`Error`] as theirs;
//! each wraps [`ConnectFailure`] in its own `ConnectError`, next to what only its
//! transport can fail with (a URL, TLS, a WebSocket).

use std::time::Duration;

use crate::ReasonCode;
use crate::session::SessionError;
use crate::topic::TopicError;

/// Why an operation of a client (`publish`, `subscribe`, `request`, ...) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client has ended (`disconnect`, a connection that could not be resumed with
    /// reconnect disabled, or every handle dropped).
    #[error("the client is closed")]
    Closed,
    /// A topic name or filter is invalid.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The session refused the command (QoS above the server's maximum, packet too
    /// large, retain not available, ...).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The broker answered a publication with an error reason code (PUBACK or PUBREC
    /// ≥ 0x80), e.g. Not authorized (0x87) or Quota exceeded (0x97).
    #[error("publication refused by the broker: {0}")]
    PublishRejected(ReasonCode),
    /// The broker refused a subscription (SUBACK ≥ 0x80), e.g. Not authorized (0x87).
    #[error("subscription refused by the broker: {0}")]
    SubscribeRejected(ReasonCode),
    /// A QoS 0 message could not be handed to the transport before the connection
    /// dropped.
    #[error("the connection dropped before the message was sent")]
    ConnectionLost,
    /// A QoS 2 message was sent but the broker lost the session before completing the
    /// flow: it may or may not have been delivered. (QoS 1 messages are re-published.)
    #[error("the broker lost the session before acknowledging the message")]
    SessionLost,
    /// The offline queue was full and its policy dropped this message.
    #[error("the offline queue was full and the message was dropped")]
    Dropped,
    /// The offline queue was full and its policy is to reject.
    #[error("the offline queue is full")]
    QueueFull,
    /// No response within the request's timeout.
    #[error("no response within {} ms", .0.as_millis() as u64)]
    Timeout(Duration),
    /// The feature needs MQTT 5 (request/response).
    #[error("{0} needs MQTT 5")]
    NeedsV5(&'static str),
    /// The message carries no response topic to respond to.
    #[error("the request carries no response topic")]
    NoResponseTopic,
    /// The broker refused a history request, or its reply could not be read
    /// ([`super::history`]).
    #[cfg(feature = "history")]
    #[error(transparent)]
    History(#[from] super::history::HistoryError),
}

/// Why the first connection failed once the transport was open, or within the connect
/// timeout: what every client's `ConnectError` has in common. The transport's own
/// failures (URL, TLS, WebSocket) are the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// Neither the transport nor CONNACK came within the connect timeout.
    #[error("no answer from the broker within {} ms", .0.as_millis() as u64)]
    Timeout(Duration),
    /// The broker answered CONNACK with an error: not authorized (0x87), bad user name
    /// or password (0x86), ... MQTT 3.x return codes are mapped to these.
    #[error("connection refused by the broker: {reason_code}{}", fmt_reason(.reason_string))]
    Refused {
        /// The CONNACK reason code.
        reason_code: ReasonCode,
        /// The MQTT 5 reason string, if the broker sent one.
        reason_string: Option<String>,
    },
    /// The connection ended before CONNACK (the broker closed it, sent DISCONNECT, or
    /// broke the protocol).
    #[error("the broker closed the connection before accepting it: {0}")]
    Closed(String),
    /// The options contradict each other or the session refused them.
    #[error("invalid options: {0}")]
    Options(String),
}

impl ConnectFailure {
    /// The broker's reason code when it refused the connection.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Self::Refused { reason_code, .. } => Some(*reason_code),
            _ => None,
        }
    }
}

fn fmt_reason(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}
