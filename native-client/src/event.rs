//! [`Event`]: what happens to a client's connection, for
//! [`Client::events`](crate::Client::events).

use std::time::Duration;

use protocol::ReasonCode;

/// A change in the client's connection, broadcast to every
/// [`Client::events`](crate::Client::events) receiver.
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
    /// The application called [`Client::disconnect`](crate::Client::disconnect) or
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
    /// The socket closed or failed, or a transport could not be opened.
    Transport(String),
    /// No CONNACK within the connect timeout.
    ConnectTimeout,
    /// No answer to PINGREQ.
    PingTimeout,
    /// The broker broke the protocol (the client sent DISCONNECT with the reason code).
    ProtocolViolation(String),
    /// [`Client::drop_connection`](crate::Client::drop_connection) cut it.
    Dropped,
}

/// Where [`Event::MessagesDropped`] happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropSource {
    /// Outgoing publications, by the offline queue's
    /// [`DropPolicy`](crate::DropPolicy).
    OfflineQueue,
    /// Incoming messages for a [`Subscription`](crate::Subscription) whose buffer was
    /// full (its reader is too slow).
    Subscription {
        /// The subscription's filter.
        filter: String,
    },
}
