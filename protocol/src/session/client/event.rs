//! [`ClientEvent`]: what a [`ClientSession`](super::ClientSession) reports.

use crate::packet::{Auth, ConnAck, Disconnect, PacketId, Publish, SubAck, UnsubAck};
use crate::reason::ReasonCode;
use crate::session::ProtocolViolation;

/// What a [`ClientSession`](super::ClientSession) reports, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the connection. Queued messages are on their way.
    Connected {
        /// The CONNACK, with the server's limits and assigned client identifier.
        connack: ConnAck,
    },
    /// Right after `Connected`: the server has no session for us although we had one
    /// (`session_present` is 0 on a reconnect). Subscriptions are gone and must be made
    /// again; the QoS 1 and 2 messages listed were sent at least once and are dropped,
    /// since the server forgot them (publish them again if a duplicate is acceptable).
    /// Messages never sent are still queued.
    SessionLost {
        /// Packet identifiers of the dropped messages.
        discarded: Vec<PacketId>,
    },
    /// The server refused the connection; the transport is to be closed.
    ConnectionRefused(ConnAck),
    /// An application message: topic alias resolved (and removed from the properties),
    /// a QoS 2 message delivered once.
    Message(Publish),
    /// The flow of our QoS 1 or 2 message `packet_id` ended: PUBACK, PUBCOMP, or a
    /// PUBREC with an error code (then `reason_code` is that error). An error code of
    /// our own (0x95, 0x9A, 0x9B) means the message was dropped unsent because the
    /// server's limits on this connection rule it out.
    PublishAcked {
        /// The message.
        packet_id: PacketId,
        /// Success, No matching subscribers, or why it failed.
        reason_code: ReasonCode,
    },
    /// A SUBACK.
    Subscribed(SubAck),
    /// An UNSUBACK.
    Unsubscribed(UnsubAck),
    /// An AUTH from the server (enhanced authentication, §4.12); answer with
    /// [`ClientSession::auth`](super::ClientSession::auth).
    Auth(Auth),
    /// A PINGRESP.
    Pong,
    /// The server sent DISCONNECT; the transport is to be closed.
    Disconnected(Disconnect),
    /// The connection is over for another reason; the transport is to be closed.
    ConnectionLost(LostReason),
}

/// Why a [`ClientEvent::ConnectionLost`](super::ClientEvent::ConnectionLost) happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The driver reported that the transport closed.
    Transport,
    /// No CONNACK within [`ClientOptions::connect_timeout`](super::ClientOptions::connect_timeout).
    ConnectTimeout,
    /// Nothing received within the ping timeout after a PINGREQ (§3.1.2.10).
    PingTimeout,
    /// The server broke the protocol; an MQTT 5 DISCONNECT with the reason code was
    /// queued.
    ProtocolViolation(ProtocolViolation),
}
