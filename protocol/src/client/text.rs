//! The texts the client layer puts into [`DisconnectReason`](super::DisconnectReason)
//! and [`ConnectFailure`](super::ConnectFailure). By default, the `Display` texts of the
//! errors behind them; with the `terse-errors` feature (the browser package), fixed
//! phrases and reason codes written without `core::fmt`, so that neither the formatting
//! machinery nor the error types' message tables are linked into the wasm module.

use crate::ReasonCode;
use crate::session::ProtocolViolation;

/// `value`'s `Display` text, or `terse` with the `terse-errors` feature.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn describe<T: std::fmt::Display + ?Sized>(value: &T, _terse: &'static str) -> String {
    value.to_string()
}

/// `value`'s `Display` text, or `terse` with the `terse-errors` feature.
#[cfg(feature = "terse-errors")]
pub(crate) fn describe<T: ?Sized>(_value: &T, terse: &'static str) -> String {
    terse.to_owned()
}

/// Why the client found the broker in breach of the protocol: the violation's text.
#[cfg(not(feature = "terse-errors"))]
pub(crate) fn violation(violation: &ProtocolViolation) -> String {
    violation.to_string()
}

/// Why the client found the broker in breach of the protocol: with `terse-errors`, the
/// reason code the client disconnected with (`0x81`).
#[cfg(feature = "terse-errors")]
pub(crate) fn violation(violation: &ProtocolViolation) -> String {
    reason_hex(violation.reason_code() as u8)
}

/// The text of a DISCONNECT that ended the connection before CONNACK: the reason code
/// (its name, or `0x..` with `terse-errors`) and the broker's reason string.
pub(crate) fn disconnect(reason_code: ReasonCode, reason_string: Option<&str>) -> String {
    let mut text = String::from("DISCONNECT ");
    #[cfg(not(feature = "terse-errors"))]
    text.push_str(&reason_code.to_string());
    #[cfg(feature = "terse-errors")]
    text.push_str(&reason_hex(reason_code as u8));
    if let Some(reason) = reason_string {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

/// A reason code as `0x87`, without `core::fmt`.
pub fn reason_hex(code: u8) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::from("0x");
    text.push(char::from(DIGITS[usize::from(code >> 4)]));
    text.push(char::from(DIGITS[usize::from(code & 0xF)]));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_in_hex() {
        assert_eq!(reason_hex(0x87), "0x87");
        assert_eq!(reason_hex(0), "0x00");
        assert_eq!(reason_hex(0xA2), "0xA2");
    }

    #[test]
    fn disconnect_text_carries_the_reason_string() {
        let text = disconnect(ReasonCode::NotAuthorized, Some("no"));
        assert!(text.starts_with("DISCONNECT "), "{text}");
        assert!(text.ends_with(": no"), "{text}");
    }
}
