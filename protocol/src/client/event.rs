//! [`Event`]: what happens to a client's connection, for each client's
//! `Client::events`.

use std::time::Duration;

use crate::ReasonCode;

/// A change in the client's connection, delivered to every
/// `Client::events` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// CONNACK accepted a connection (the first or a reconnect).
    Connected {
        /// Whether the broker resumed the session. When it did not on a reconnect, the
        /// client subscribed its filters again.
        session_present: bool,
    },
    /// The connection ended.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// Whether the client will try to reconnect (an [`Event::Reconnecting`] follows).
        will_reconnect: bool,
    },
    /// The next connection attempt starts after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a drop.
        attempt: u32,
        /// The backoff before it.
        delay: Duration,
    },
    /// The broker refused a filter the client subscribed again by itself (after a
    /// reconnect to a broker that had lost the session). No `subscribe` call waits
    /// for it any more, so the application hears it here; the filter's
    /// `Subscription`s stay open and receive nothing.
    SubscriptionRefused {
        /// The filter.
        filter: String,
        /// The SUBACK reason code, e.g. Not authorized (0x87).
        reason_code: ReasonCode,
    },
    /// Messages were dropped.
    MessagesDropped {
        /// How many.
        count: u64,
        /// Where.
        source: DropSource,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The application called `Client::disconnect` or
    /// dropped every handle.
    Local,
    /// The broker sent DISCONNECT (MQTT 5) with this reason code, e.g. Session taken
    /// over (0x8E) or Server shutting down (0x8B).
    Server {
        /// The reason code.
        reason_code: ReasonCode,
        /// The reason string, if any.
        reason_string: Option<String>,
    },
    /// The broker refused a reconnect in CONNACK.
    Refused(ReasonCode),
    /// The transport (socket, TLS, WebSocket) closed, failed or could not be opened.
    /// Browsers do not tell pages why a WebSocket failed; the close code and reason,
    /// when there are any, are in the text.
    Transport(String),
    /// Neither the transport nor CONNACK came within the connect timeout.
    ConnectTimeout,
    /// No answer to PINGREQ.
    PingTimeout,
    /// The broker broke the protocol (the client sent DISCONNECT with the reason code).
    ProtocolViolation(String),
    /// `Client::drop_connection` cut it.
    Dropped,
}

impl DisconnectReason {
    /// Whether the connection ended because of a fault (anything but a local
    /// disconnection or a normal server DISCONNECT).
    pub fn is_error(&self) -> bool {
        match self {
            Self::Local | Self::Dropped => false,
            Self::Server { reason_code, .. } => reason_code.is_error(),
            _ => true,
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("disconnected by the client"),
            Self::Server {
                reason_code,
                reason_string: Some(text),
            } => write!(f, "the broker disconnected: {reason_code}: {text}"),
            Self::Server { reason_code, .. } => write!(f, "the broker disconnected: {reason_code}"),
            Self::Refused(code) => write!(f, "the broker refused the connection: {code}"),
            Self::Transport(text) => f.write_str(text),
            Self::ConnectTimeout => {
                f.write_str("no answer from the broker within the connect timeout")
            }
            Self::PingTimeout => f.write_str("no answer to PINGREQ within the ping timeout"),
            Self::ProtocolViolation(text) => write!(f, "the broker broke the protocol: {text}"),
            Self::Dropped => f.write_str("the connection was dropped by the client"),
        }
    }
}

/// Where [`Event::MessagesDropped`] happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropSource {
    /// Outgoing publications, by the offline queue's
    /// [`DropPolicy`](super::DropPolicy).
    OfflineQueue,
    /// Incoming messages for a `Subscription` whose buffer was
    /// full (its reader is too slow).
    Subscription {
        /// The subscription's filter.
        filter: String,
    },
}
