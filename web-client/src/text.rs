//! The texts of the JavaScript API's errors and close events, and of a closed
//! WebSocket. By default, the `Display` texts of [`ConnectError`], [`Error`] and
//! [`DisconnectReason`]; with the `terse-errors` feature (the npm package), fixed
//! phrases with the reason code in hex, built with `push_str` alone: `core::fmt`, the
//! `Display` impls and their message tables then stay out of the wasm module (about
//! 10 KB gzipped; see BENCHMARKS.md). The codes JavaScript reads (`code`, `reasonCode`)
//! are the same either way.

use protocol::client::DisconnectReason;
#[cfg(feature = "terse-errors")]
use protocol::client::{ConnectFailure, reason_hex};

use crate::error::{ConnectError, Error};

/// `err`'s message.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn connect_error(err: &ConnectError) -> String {
    err.to_string()
}

/// `err`'s message.
#[cfg(feature = "terse-errors")]
pub(crate) fn connect_error(err: &ConnectError) -> String {
    match err {
        ConnectError::Url { reason, .. } => join("invalid broker URL: ", reason),
        ConnectError::Transport(text) => join("the WebSocket failed: ", text),
        ConnectError::Handshake(ConnectFailure::Timeout(_)) => {
            "no answer from the broker within the connect timeout".into()
        }
        ConnectError::Handshake(ConnectFailure::Refused {
            reason_code,
            reason_string,
        }) => {
            let mut text = join(
                "connection refused by the broker: ",
                &reason_hex(*reason_code as u8),
            );
            if let Some(reason) = reason_string {
                text.push_str(": ");
                text.push_str(reason);
            }
            text
        }
        ConnectError::Handshake(ConnectFailure::Closed(text)) => join(
            "the broker closed the connection before accepting it: ",
            text,
        ),
        ConnectError::Handshake(ConnectFailure::Options(text)) => join("invalid options: ", text),
        _ => "the connection failed".into(),
    }
}

/// `err`'s message.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn error(err: &Error) -> String {
    err.to_string()
}

/// `err`'s message.
#[cfg(feature = "terse-errors")]
pub(crate) fn error(err: &Error) -> String {
    match err {
        Error::Closed => "the client is closed".into(),
        Error::Topic(_) => "invalid topic name or filter".into(),
        Error::Session(_) => "the session refused the command".into(),
        Error::PublishRejected(code) => join(
            "publication refused by the broker: ",
            &reason_hex(*code as u8),
        ),
        Error::SubscribeRejected(code) => join(
            "subscription refused by the broker: ",
            &reason_hex(*code as u8),
        ),
        Error::ConnectionLost => "the connection dropped before the message was sent".into(),
        Error::SessionLost => "the broker lost the session before acknowledging the message".into(),
        Error::Dropped => "the offline queue was full and the message was dropped".into(),
        Error::QueueFull => "the offline queue is full".into(),
        Error::Timeout(_) => "no response within the request's timeout".into(),
        Error::NeedsV5(what) => join(what, " needs MQTT 5"),
        Error::NoResponseTopic => "the request carries no response topic".into(),
        _ => "the operation failed".into(),
    }
}

/// Why the connection ended.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn disconnect_reason(reason: &DisconnectReason) -> String {
    reason.to_string()
}

/// Why the connection ended.
#[cfg(feature = "terse-errors")]
pub(crate) fn disconnect_reason(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Local => "disconnected by the client".into(),
        DisconnectReason::Server {
            reason_code,
            reason_string,
        } => {
            let mut text = join("the broker disconnected: ", &reason_hex(*reason_code as u8));
            if let Some(reason) = reason_string {
                text.push_str(": ");
                text.push_str(reason);
            }
            text
        }
        DisconnectReason::Refused(code) => join(
            "the broker refused the connection: ",
            &reason_hex(*code as u8),
        ),
        DisconnectReason::Transport(text) => text.clone(),
        DisconnectReason::ConnectTimeout => {
            "no answer from the broker within the connect timeout".into()
        }
        DisconnectReason::PingTimeout => "no answer to PINGREQ within the ping timeout".into(),
        DisconnectReason::ProtocolViolation(text) => join("the broker broke the protocol: ", text),
        DisconnectReason::Dropped => "the connection was dropped by the client".into(),
        _ => "the connection ended".into(),
    }
}

/// Why a topic given as an option is invalid.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn topic_error(err: &protocol::topic::TopicError) -> String {
    err.to_string()
}

/// Why a topic given as an option is invalid.
#[cfg(feature = "terse-errors")]
pub(crate) fn topic_error(_err: &protocol::topic::TopicError) -> String {
    "a valid topic name".into()
}

/// The text of a WebSocket that closed: `WebSocket closed (1006): reason`, written
/// without `core::fmt` in every build (the close code is the only number).
pub(crate) fn socket_closed(code: u16, reason: &str, error: bool) -> String {
    let mut text = String::from(if error && reason.is_empty() {
        "WebSocket error, closed ("
    } else {
        "WebSocket closed ("
    });
    push_decimal(&mut text, code);
    text.push(')');
    if !reason.is_empty() {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

/// `a` then `b`.
pub(crate) fn join(a: &str, b: &str) -> String {
    let mut text = String::with_capacity(a.len() + b.len());
    text.push_str(a);
    text.push_str(b);
    text
}

/// Appends `value` in decimal.
fn push_decimal(text: &mut String, value: u16) {
    let mut digits = [0u8; 5];
    let mut rest = value;
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_close_texts() {
        assert_eq!(
            socket_closed(1006, "", true),
            "WebSocket error, closed (1006)"
        );
        assert_eq!(socket_closed(1000, "", false), "WebSocket closed (1000)");
        assert_eq!(
            socket_closed(4000, "bye", true),
            "WebSocket closed (4000): bye"
        );
        assert_eq!(socket_closed(0, "", false), "WebSocket closed (0)");
        assert_eq!(socket_closed(65535, "", false), "WebSocket closed (65535)");
    }
}
