//! [`ServerEvent`]: what a [`ServerSession`](super::ServerSession) reports, and what
//! became of a message it was asked to send.

use crate::packet::{
    Auth, Connect, Disconnect, PacketId, PacketType, Publish, Subscribe, Unsubscribe,
};
use crate::reason::ReasonCode;
use crate::session::ProtocolViolation;

/// What a [`ServerSession`](super::ServerSession) reports, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The client's CONNECT: answer with [`ServerSession::accept`](super::ServerSession::accept) or
    /// [`ServerSession::reject`](super::ServerSession::reject). (CONNECTs the session can refuse by itself never get
    /// here: an empty 3.x client identifier without clean session [MQTT-3.1.3-8], a will
    /// above `maximum_qos` or retained without `retain_available` [MQTT-3.2.2-12]
    /// [MQTT-3.2.2-13].)
    Connect(Box<Connect>),
    /// An application message from the client, topic alias resolved and removed. For
    /// QoS 1 and 2, store it, then call [`ServerSession::ack_publish`](super::ServerSession::ack_publish) with its packet
    /// identifier. Re-sends of a message already surfaced are not reported again.
    Publish(Publish),
    /// PUBREL arrived for inbound QoS 2 message `packet_id` and PUBCOMP was sent: the
    /// identifier left [`SessionState::inbound_awaiting_release`](crate::session::SessionState::inbound_awaiting_release).
    Released {
        /// The message's packet identifier.
        packet_id: PacketId,
    },
    /// SUBSCRIBE: answer with [`ServerSession::suback`](super::ServerSession::suback).
    Subscribe(Subscribe),
    /// UNSUBSCRIBE: answer with [`ServerSession::unsuback`](super::ServerSession::unsuback).
    Unsubscribe(Unsubscribe),
    /// The flow of outbound message `packet_id` ended: PUBACK, PUBCOMP or an error
    /// PUBREC from the client, or 0x95 Packet too large when the message was discarded
    /// without sending because it no longer fits the client's Maximum Packet Size
    /// [MQTT-3.1.2-25]. The broker can drop the message from storage.
    Delivered {
        /// The message's packet identifier.
        packet_id: PacketId,
        /// How the flow ended.
        reason_code: ReasonCode,
    },
    /// The client answered outbound QoS 2 message `packet_id` with a successful PUBREC
    /// (it has the message) and PUBREL is queued (again, for a repeated PUBREC). The
    /// message itself is no longer needed: a broker that stores outbound messages
    /// records this before the PUBREL leaves, so that after a restart it re-sends the
    /// PUBREL, never the PUBLISH, which the client could take for a new message once it
    /// has completed the flow [MQTT-4.3.3-5].
    Received {
        /// The message's packet identifier.
        packet_id: PacketId,
    },
    /// A PUBACK, PUBREC, PUBREL or PUBCOMP for a packet identifier no flow has. Not a
    /// protocol error (mosquitto ignores it too): PUBACK and PUBCOMP are ignored, PUBREC
    /// answered with PUBREL and PUBREL with PUBCOMP, both 0x92 Packet Identifier not
    /// found in MQTT 5 (§3.6.2.1, §3.7.2.1). After a reconnect this is recovery; at
    /// other times it shows the two sides' session state disagree, so the broker counts
    /// it.
    AckNotInFlight {
        /// The acknowledgement received.
        packet: PacketType,
        /// Its packet identifier.
        packet_id: PacketId,
    },
    /// AUTH (enhanced authentication or re-authentication, §4.12): answer with
    /// [`ServerSession::send_auth`](super::ServerSession::send_auth), `accept` or `reject`.
    Auth(Auth),
    /// The connection is over: write what `poll_transmit` gives, close the socket, and
    /// take the session state if the session persists. Reported exactly once.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Whether the will is to be published (§3.1.2.5): the connection was accepted
        /// and did not end with a client DISCONNECT 0x00 [MQTT-3.1.2-10].
        publish_will: bool,
    },
}

/// Why a [`ServerSession`](super::ServerSession) closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent DISCONNECT (0x04: publish the will anyway; its properties may
    /// carry a new session expiry interval).
    ClientDisconnected(Disconnect),
    /// CONNECT was refused with this reason code, by the broker or the session.
    Rejected(ReasonCode),
    /// The broker closed it with [`ServerSession::disconnect`](super::ServerSession::disconnect).
    ServerDisconnected(ReasonCode),
    /// Nothing from the client for 1.5 times the keep alive; an MQTT 5 client was sent
    /// DISCONNECT 0x8D.
    KeepAliveTimeout,
    /// The client broke the protocol; the reason code went out in DISCONNECT or CONNACK
    /// (MQTT 5), or the connection is just closed (3.x, or before a CONNECT).
    ProtocolViolation(ProtocolViolation),
    /// The driver reported that the transport closed.
    ConnectionLost,
}

/// What [`ServerSession::send_publish`](super::ServerSession::send_publish) did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// Queued for transmission now; QoS 1 and 2 messages carry their identifier and
    /// end with [`ServerEvent::Delivered`].
    Sent {
        /// `None` for QoS 0.
        packet_id: Option<PacketId>,
    },
    /// Held in the session: the client's Receive Maximum window is full. Sent, in
    /// order, as acknowledgements free slots.
    Queued {
        /// The message's packet identifier.
        packet_id: PacketId,
    },
    /// Not sent and not kept: larger than the client's Maximum Packet Size. The spec
    /// treats it as delivered [MQTT-3.1.2-25]; count the drop.
    Dropped {
        /// The encoded size.
        size: usize,
        /// The client's limit.
        maximum: u32,
    },
}

/// The session's queue of what [`ServerSession::poll_event`](super::ServerSession::poll_event)
/// hands out: events, and the PINGRESPs that wait for the events before them.
///
/// A PINGREQ decoded behind a SUBSCRIBE (one read can hold both) is answered only once
/// the broker has taken that SUBSCRIBE, so the PINGRESP follows its SUBACK and retained
/// messages on the wire: the client sees its requests answered in the order it sent
/// them, as it would from mosquitto, and may use a PINGREQ as a barrier.
#[derive(Debug, Default)]
pub(super) struct EventQueue(std::collections::VecDeque<Queued>);

/// One entry of the [`EventQueue`].
#[derive(Debug)]
pub(super) enum Queued {
    /// An event for the broker.
    Event(ServerEvent),
    /// A PINGRESP to send when the queue reaches it.
    PingResp,
}

impl EventQueue {
    /// Queues `event`.
    pub(super) fn push_back(&mut self, event: ServerEvent) {
        self.0.push_back(Queued::Event(event));
    }

    /// Queues a PINGRESP; `false` (nothing queued) when no event waits, so the caller
    /// answers at once.
    pub(super) fn push_ping_resp(&mut self) -> bool {
        if self.0.is_empty() {
            return false;
        }
        self.0.push_back(Queued::PingResp);
        true
    }

    /// The next entry.
    pub(super) fn pop_front(&mut self) -> Option<Queued> {
        self.0.pop_front()
    }

    /// Room for entries without reallocating.
    pub(super) fn capacity(&self) -> usize {
        self.0.capacity()
    }
}
