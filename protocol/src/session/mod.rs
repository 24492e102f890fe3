//! Sans-IO session state machines: [`ClientSession`] for clients (the native tokio client
//! and the browser client) and [`ServerSession`] for the broker's connection tasks.
//!
//! A session owns everything MQTT says about one side of a connection: the handshake,
//! packet identifiers, the QoS 1 and 2 flows in both directions, Receive Maximum flow
//! control, topic aliases, keep alive and the reaction to every protocol violation. It
//! owns no socket, no task and no clock: bytes and time go in as arguments, bytes and
//! events come out when polled, so the same code runs under tokio, in the browser and
//! in deterministic tests (`tests/session_pair.rs` joins a client and a server session
//! with an in-memory link and a simulated clock).
//!
//! # Driving a session
//!
//! ```text
//!   socket bytes ──► handle_bytes(data, now) ─┐      ┌─► poll_transmit(..) ──► one socket write
//!   commands ──────► publish(..), accept(..) ─┼─► state ─► poll_event() ───► application / broker
//!   timer fires ───► handle_timeout(now) ─────┘      └─► poll_timeout() ───► re-arm the timer
//! ```
//!
//! After any input (a `handle_*` call or a command), the driver:
//!
//! 1. calls `poll_transmit` until it returns `false`, and writes everything it appended
//!    to the socket in **one** write: acknowledgements, pings and publications queued by
//!    one input leave in one batch;
//! 2. calls `poll_event` until it returns `None`, and acts on each event;
//! 3. re-arms its single timer for `poll_timeout()` (`None`: no timer), and calls
//!    `handle_timeout(now)` when it fires (a late or early call is harmless);
//! 4. closes the transport once the session says the connection is over
//!    ([`ClientSession::is_open`] is `false`, [`ServerSession::is_closed`] is `true`),
//!    after writing what step 1 produced (a final DISCONNECT or CONNACK).
//!
//! `now` is a [`web_time::Instant`] (the standard one on native targets, a
//! `performance.now()` clock in the browser); the crate never reads a clock itself.
//! Peer input never panics: every malformed or forbidden packet becomes a
//! [`ProtocolViolation`], reported in an event after the session has queued the
//! DISCONNECT (or CONNACK) with its reason code, as §4.13 asks.
//!
//! # Delivery guarantees
//!
//! - Outbound QoS 1 and 2 messages are held, with their packet identifier, until the
//!   flow completes (PUBACK; PUBCOMP; or a PUBREC with an error code, which ends the
//!   flow [MQTT-4.3.3]). At most the peer's Receive Maximum are in flight; the rest wait
//!   in a FIFO (§4.9). When a connection ends, unacknowledged PUBLISH packets are re-sent
//!   with DUP set and PUBRELs re-sent, in their original order, once a connection
//!   resumes the session [MQTT-4.4.0-1] [MQTT-4.6.0-1].
//! - Inbound QoS 2 messages are surfaced once: their packet identifier is remembered from
//!   PUBREC until PUBREL, and a re-sent PUBLISH in between only gets its PUBREC again.
//! - The server session acknowledges an inbound QoS 1 or 2 message only when the broker
//!   says so ([`ServerSession::ack_publish`]), so "stored before acknowledged" holds.
//!
//! # Layout
//!
//! - [`client`](ClientSession): [`ClientSession`], [`ClientOptions`], [`ClientEvent`].
//! - [`server`](ServerSession): [`ServerSession`], [`ServerOptions`], [`AcceptOptions`],
//!   [`ServerEvent`].
//! - `outbound` (private): the sender side of QoS 1 and 2, the inflight window and its
//!   queue, shared by both sessions.
//! - `inbound` (private): the receiver side: Receive Maximum and QoS 2 deduplication.
//! - `alias` (private): topic alias tables in both directions.
//! - `packet_id` (private): the Packet Identifier allocator.
//! - this module: [`SessionState`] (what outlives a connection), [`SessionError`] (a
//!   command that cannot be carried out) and [`ProtocolViolation`] (a peer that broke
//!   the protocol).

mod acks;
mod alias;
mod client;
mod inbound;
mod outbound;
mod packet_id;
mod server;

use bytes::{Buf, BytesMut};

pub use client::{ClientEvent, ClientOptions, ClientSession, LostReason};
pub use server::{
    AcceptOptions, CloseReason, SendOutcome, ServerEvent, ServerOptions, ServerSession,
};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{
    self, BareAck, Limits, Packet, PacketId, PacketType, ProtocolVersion, Publish, QoS,
};
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// The part of a session that outlives a network connection (§4.1) and that a server
/// stores between connections: plain data, so the broker can persist it as it likes.
///
/// Take it from a closed [`ServerSession`] with [`ServerSession::into_state`] (or
/// [`take_state`](ServerSession::take_state)) and hand it to the next connection's
/// [`ServerSession::accept`]. Subscriptions are not in here: they belong to the
/// broker's router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Outbound QoS 1 and 2 flows not yet complete, in the order they are to be sent:
    /// first those that were in flight (in their original order), then those that were
    /// waiting for a slot in the peer's Receive Maximum window.
    pub outbound: Vec<OutboundMessage>,
    /// Packet identifiers of inbound QoS 2 messages acknowledged with PUBREC and not yet
    /// released by PUBREL: a re-sent PUBLISH with one of these is not delivered again.
    pub inbound_awaiting_release: Vec<PacketId>,
    /// Where packet identifier allocation continues, so a resumed session does not hand
    /// out identifiers that the peer may still associate with an old flow. `None`
    /// starts at 1.
    pub next_packet_id: Option<PacketId>,
}

/// One outbound QoS 1 or 2 flow in a [`SessionState`].
// Nearly every entry is a PUBLISH; boxing it would cost an allocation per message to
// save space on the few PUBRELs.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboundMessage {
    /// A PUBLISH to send, carrying its packet identifier. `dup` is set when it was
    /// sent before, so the next send is a re-delivery [MQTT-3.3.1-1]. Its topic is the
    /// full topic name (aliases are per connection).
    Publish(Publish),
    /// A QoS 2 message the peer has acknowledged with PUBREC: its PUBREL is to be sent
    /// (again), then PUBCOMP awaited. The message itself is no longer needed.
    Release(PacketId),
}

impl OutboundMessage {
    /// The packet identifier of the flow.
    pub fn packet_id(&self) -> Option<PacketId> {
        match self {
            Self::Publish(publish) => publish.packet_id,
            Self::Release(id) => Some(*id),
        }
    }
}

/// Why a command was refused. Nothing was queued when a command returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The command needs an established connection (after CONNACK), or a QoS 0
    /// message was published while there was none.
    #[error("not connected")]
    NotConnected,
    /// The server session is closed.
    #[error("the session is closed")]
    Closed,
    /// The command does not fit the session's state (e.g. `accept` twice).
    #[error("{0} is not possible in the current state of the session")]
    InvalidState(&'static str),
    /// The packet is larger than the peer's Maximum Packet Size [MQTT-3.1.2-24]
    /// [MQTT-3.2.2-15].
    #[error("packet of {size} bytes exceeds the peer's maximum packet size of {maximum}")]
    PacketTooLarge {
        /// The encoded size of the packet.
        size: usize,
        /// The peer's limit.
        maximum: u32,
    },
    /// A PUBLISH above the server's Maximum QoS [MQTT-3.2.2-11].
    #[error("[MQTT-3.2.2-11] QoS {requested:?} exceeds the server's maximum QoS {maximum:?}")]
    QoSNotSupported {
        /// The QoS asked for.
        requested: QoS,
        /// The server's Maximum QoS.
        maximum: QoS,
    },
    /// A retained PUBLISH to a server without retained messages [MQTT-3.2.2-14].
    #[error("[MQTT-3.2.2-14] the server does not support retained messages")]
    RetainNotSupported,
    /// All 65,535 packet identifiers are in flight (or queued) [MQTT-2.2.1-3].
    #[error("all 65535 packet identifiers are in use")]
    PacketIdsExhausted,
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter [MQTT-3.8.3-2]
    /// [MQTT-3.10.3-2].
    #[error("SUBSCRIBE and UNSUBSCRIBE need at least one topic filter")]
    NoTopicFilters,
    /// `ack_publish` for a packet identifier that no inbound message awaits.
    #[error("no inbound message awaits acknowledgement with packet identifier {0}")]
    UnknownPacketId(PacketId),
    /// An invalid topic name.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The packet cannot be encoded (a field too long, AUTH before MQTT 5, ...).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<std::convert::Infallible> for SessionError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// How the peer broke the protocol. The session has queued the DISCONNECT (MQTT 5) or
/// CONNACK with [`reason_code`](Self::reason_code) and closed the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// Bytes that are not a valid packet.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The first packet from a client is not CONNECT.
    #[error("[MQTT-3.1.0-1] first packet is {0}, not CONNECT")]
    FirstPacketNotConnect(PacketType),
    /// A second CONNECT on a connection.
    #[error("[MQTT-3.1.0-2] second CONNECT on one connection")]
    SecondConnect,
    /// A packet this side never accepts, or not at this point (e.g. SUBSCRIBE sent to a
    /// client, PUBLISH before CONNACK, a second CONNACK, anything but AUTH or
    /// DISCONNECT during enhanced authentication [MQTT-3.1.2-30]).
    #[error("[MQTT-4.13] unexpected {0}")]
    UnexpectedPacket(PacketType),
    /// An acknowledgement for a flow in another state (PUBACK for a QoS 2 message,
    /// PUBCOMP before PUBREC), or a SUBACK / UNSUBACK for no request. (One for an
    /// identifier not in flight at all is no violation: see
    /// [`ServerEvent::AckNotInFlight`].)
    #[error("[MQTT-4.3] {packet} for packet identifier {packet_id}, which is not in flight")]
    UnknownPacketId {
        /// The acknowledgement received.
        packet: PacketType,
        /// Its packet identifier.
        packet_id: PacketId,
    },
    /// A new PUBLISH reusing the packet identifier of an inbound flow that is not
    /// complete, at another QoS, or a PUBREL before our PUBREC [MQTT-2.2.1-3].
    #[error("[MQTT-2.2.1-3] packet identifier {0} is already in use by another flow")]
    PacketIdInUse(PacketId),
    /// A Topic Alias above the Topic Alias Maximum we advertised [MQTT-3.2.2-17]
    /// [MQTT-3.3.2-10] [MQTT-3.3.2-12].
    #[error("[MQTT-3.3.2-12] topic alias {alias} exceeds the topic alias maximum {maximum}")]
    TopicAliasInvalid {
        /// The alias received.
        alias: std::num::NonZeroU16,
        /// Our Topic Alias Maximum.
        maximum: u16,
    },
    /// A PUBLISH with an empty topic and an alias that has no mapping (§3.3.2.3.4).
    #[error("[MQTT-3.3.2.3.4] topic alias {0} has no mapping on this connection")]
    TopicAliasUnknown(std::num::NonZeroU16),
    /// More unacknowledged QoS 1 and 2 PUBLISH packets than our Receive Maximum
    /// [MQTT-3.3.4-7] [MQTT-3.3.4-9].
    #[error("[MQTT-3.3.4-7] more than receive maximum ({0}) unacknowledged publications")]
    ReceiveMaximumExceeded(u16),
    /// A PUBLISH above the Maximum QoS the server advertised [MQTT-3.2.2-11].
    #[error("[MQTT-3.2.2-11] PUBLISH at {qos:?} exceeds the maximum QoS {maximum:?}")]
    QoSNotSupported {
        /// The QoS received.
        qos: QoS,
        /// Our Maximum QoS.
        maximum: QoS,
    },
    /// A retained PUBLISH although the server advertised Retain Available 0
    /// [MQTT-3.2.2-14].
    #[error("[MQTT-3.2.2-14] retained PUBLISH although retain is not available")]
    RetainNotSupported,
    /// A PUBLISH from a client carrying a Subscription Identifier [MQTT-3.3.4-6].
    #[error("[MQTT-3.3.4-6] PUBLISH from a client carries a subscription identifier")]
    SubscriptionIdentifierFromClient,
    /// A client's DISCONNECT sets a Session Expiry Interval although its CONNECT had 0
    /// (§3.14.2.2.2).
    #[error("[MQTT-3.14.2.2.2] DISCONNECT sets a session expiry interval after CONNECT set 0")]
    SessionExpiryAfterZero,
}

impl ProtocolViolation {
    /// The reason code to send in DISCONNECT (or CONNACK) for this violation (§4.13).
    pub const fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Decode(err) => err.reason_code(),
            Self::TopicAliasInvalid { .. } => ReasonCode::TopicAliasInvalid,
            Self::ReceiveMaximumExceeded(_) => ReasonCode::ReceiveMaximumExceeded,
            Self::QoSNotSupported { .. } => ReasonCode::QoSNotSupported,
            Self::RetainNotSupported => ReasonCode::RetainNotSupported,
            Self::FirstPacketNotConnect(_)
            | Self::SecondConnect
            | Self::UnexpectedPacket(_)
            | Self::UnknownPacketId { .. }
            | Self::PacketIdInUse(_)
            | Self::TopicAliasUnknown(_)
            | Self::SubscriptionIdentifierFromClient
            | Self::SessionExpiryAfterZero => ReasonCode::ProtocolError,
        }
    }

    /// The reason code as DISCONNECT may carry it: codes that only CONNACK allows
    /// (0x84 for a bad second CONNECT) become Protocol Error.
    pub(crate) fn disconnect_code(&self) -> ReasonCode {
        let code = self.reason_code();
        if code.is_error() && code.allowed_in(PacketType::Disconnect) {
            code
        } else {
            ReasonCode::ProtocolError
        }
    }
}

/// The receive buffer: bytes from the peer that do not yet form a whole packet, or that
/// wait for the session to be ready for them (pipelined packets after CONNECT).
#[derive(Debug, Default)]
pub(crate) struct Rx {
    /// Buffered bytes, a packet boundary at the front.
    buf: BytesMut,
}

impl Rx {
    /// Takes every byte of `data`, leaving it empty. Without buffered bytes `data` is
    /// taken as is, so the common case copies nothing; `data` is left without capacity
    /// (the buffer is the session's now).
    pub(crate) fn push(&mut self, data: &mut BytesMut) {
        if self.buf.is_empty() {
            self.buf = std::mem::take(data);
        } else {
            self.buf.extend_from_slice(data);
            data.clear();
        }
    }

    /// Appends a copy of `data`.
    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, if there is one. Once every buffered byte is decoded the
    /// buffer is let go: an idle connection holds no receive memory (decoded payloads
    /// keep the part of it they share).
    pub(crate) fn decode(&mut self, limits: &Limits) -> Result<Option<Packet>, DecodeError> {
        let packet = packet::decode(&mut self.buf, limits);
        self.release_if_empty();
        packet
    }

    /// The next packet if it is a bare PUBACK, PUBREC, PUBREL or PUBCOMP ([`BareAck`]),
    /// taken without building a [`Packet`]; `None` (nothing consumed) for anything else,
    /// which [`decode`](Self::decode) then reads. What `decode` would refuse is never
    /// taken here, so the checks stay the decoder's.
    pub(crate) fn take_bare_ack(&mut self, limits: &Limits) -> Option<BareAck> {
        // A Maximum Packet Size under 4 bytes refuses these too: `decode` says so.
        if limits.max_packet_size < 4 {
            return None;
        }
        let ack = BareAck::peek(&self.buf)?;
        self.buf.advance(4);
        self.release_if_empty();
        Some(ack)
    }

    /// Lets the buffer go once every byte is decoded.
    fn release_if_empty(&mut self) {
        // Not `capacity() != 0`: a buffer read to its end by `split_to` has no capacity
        // left but still shares (and keeps alive) the allocation the packets came in.
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// The next whole packet from a server, if there is one. A packet type only clients
    /// send is [`ProtocolViolation::UnexpectedPacket`] as soon as its first byte is in;
    /// it is not decoded.
    pub(crate) fn decode_from_server(
        &mut self,
        limits: &Limits,
    ) -> Result<Option<Packet>, ProtocolViolation> {
        if let Some(packet_type) = self.buf.first().and_then(|&b| PacketType::from_u8(b >> 4))
            && !packet_type.sent_by_server()
        {
            return Err(ProtocolViolation::UnexpectedPacket(packet_type));
        }
        let packet = packet::decode_from_server(&mut self.buf, limits);
        self.release_if_empty();
        Ok(packet?)
    }

    /// The buffered bytes, not consumed.
    pub(crate) fn peek(&self) -> &[u8] {
        &self.buf
    }

    /// Drops everything buffered (the connection is over).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Hands the bytes queued in `tx` to the driver's `out`; `false` when there were none.
/// An empty `out` and `tx` trade places, so the common case copies nothing.
pub(crate) fn drain_transmit(tx: &mut BytesMut, out: &mut BytesMut) -> bool {
    if tx.is_empty() {
        return false;
    }
    if out.is_empty() {
        std::mem::swap(tx, out);
    } else {
        out.extend_from_slice(tx);
        tx.clear();
    }
    true
}

/// Encodes a packet the session builds itself (acknowledgements, pings). These have no
/// variable-length fields that could fail to encode; should one fail anyway, nothing is
/// written (the codec sizes a packet before writing it) and the failure is returned.
pub(crate) fn write(
    tx: &mut BytesMut,
    packet: &Packet,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    packet::encode(packet, version, tx)
}

/// Checks that `packet` fits the peer's Maximum Packet Size and encodes without error.
pub(crate) fn check_size(
    packet: &Packet,
    version: ProtocolVersion,
    maximum: u32,
) -> Result<usize, SessionError> {
    let size = packet::encoded_len(packet, version)?;
    if size > maximum as usize {
        return Err(SessionError::PacketTooLarge { size, maximum });
    }
    Ok(size)
}

/// Checks that `publish` fits `maximum` when sent without a topic alias (as a re-send
/// after reconnecting would be) and encodes without error, and hands it back. QoS 1
/// and 2 messages are measured with a placeholder packet identifier of the same size.
pub(crate) fn check_publish_size(
    publish: Publish,
    version: ProtocolVersion,
    maximum: u32,
) -> Result<Publish, SessionError> {
    let placeholder = publish.qos != QoS::AtMostOnce && publish.packet_id.is_none();
    let mut packet = Packet::Publish(publish);
    if let Packet::Publish(publish) = &mut packet
        && placeholder
    {
        publish.packet_id = Some(PacketId::MIN);
    }
    let result = check_size(&packet, version, maximum);
    let Packet::Publish(mut publish) = packet else {
        return Err(SessionError::InvalidState("measuring a PUBLISH"));
    };
    if placeholder {
        publish.packet_id = None;
    }
    result.map(|_| publish)
}

/// What the peer accepts on the current connection, as far as sending PUBLISH goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerLimits {
    /// The peer's Maximum Packet Size; [`packet::MAX_PACKET_SIZE`] when it set none.
    pub(crate) maximum_packet_size: u32,
    /// The server's Maximum QoS (always QoS 2 towards a client).
    pub(crate) maximum_qos: QoS,
    /// The server's Retain Available (always `true` towards a client).
    pub(crate) retain_available: bool,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            maximum_packet_size: packet::MAX_PACKET_SIZE,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
        }
    }
}

impl PeerLimits {
    /// Whether the peer's Maximum Packet Size is below what the wire allows.
    pub(crate) fn limits_size(&self) -> bool {
        self.maximum_packet_size < packet::MAX_PACKET_SIZE
    }

    /// Checks a new PUBLISH against these limits (QoS, retain, size), typed for the
    /// caller of a command, and hands it back.
    pub(crate) fn check_publish(
        &self,
        publish: Publish,
        version: ProtocolVersion,
    ) -> Result<Publish, SessionError> {
        if publish.qos > self.maximum_qos {
            return Err(SessionError::QoSNotSupported {
                requested: publish.qos,
                maximum: self.maximum_qos,
            });
        }
        if publish.retain && !self.retain_available {
            return Err(SessionError::RetainNotSupported);
        }
        check_publish_size(publish, version, self.maximum_packet_size)
    }

    /// Checks a queued PUBLISH before it is sent on this connection: the reason code
    /// to report it with when it cannot be.
    pub(crate) fn admits(
        &self,
        publish: &Publish,
        version: ProtocolVersion,
    ) -> Result<(), ReasonCode> {
        if publish.qos > self.maximum_qos {
            return Err(ReasonCode::QoSNotSupported);
        }
        if publish.retain && !self.retain_available {
            return Err(ReasonCode::RetainNotSupported);
        }
        if self.limits_size() {
            match packet::publish_encoded_len(publish, version) {
                Ok(size) if size <= self.maximum_packet_size as usize => {}
                Ok(_) => return Err(ReasonCode::PacketTooLarge),
                Err(_) => return Err(ReasonCode::ImplementationSpecificError),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod rx_tests {
    use super::*;
    use crate::packet::{Publish, encode};

    #[test]
    fn rx_holds_no_memory_once_everything_buffered_is_decoded() {
        let mut wire = BytesMut::new();
        for _ in 0..3 {
            let packet = Packet::Publish(Publish::new("a/b", vec![7u8; 100]));
            encode(&packet, ProtocolVersion::V5, &mut wire).unwrap();
        }
        let whole = wire.len();
        // A read that ends inside the third packet: the partial packet stays buffered.
        let mut read = BytesMut::with_capacity(8192);
        read.extend_from_slice(&wire[..whole - 10]);
        let mut rx = Rx::default();
        rx.push(&mut read);
        assert_eq!(read.capacity(), 0, "the read buffer is the session's now");
        let limits = Limits::default();
        assert!(rx.decode(&limits).unwrap().is_some());
        assert!(rx.decode(&limits).unwrap().is_some());
        assert!(rx.decode(&limits).unwrap().is_none());
        assert_eq!(rx.peek().len(), whole - 10 - 2 * (whole / 3));
        rx.push_slice(&wire[whole - 10..]);
        let last = rx.decode(&limits).unwrap();
        assert!(matches!(last, Some(Packet::Publish(p)) if p.payload.len() == 100));
        assert_eq!(rx.buf.capacity(), 0, "nothing held while idle");
        assert!(rx.decode(&limits).unwrap().is_none());
    }

    #[test]
    fn a_buffer_decoded_to_its_end_is_let_go() {
        // A read of exactly one PINGREQ, its allocation shared with `probe`: once the
        // packet is decoded, nothing but the probe may hold it (a `split_to` to the end
        // leaves the buffer with no capacity but still sharing the allocation).
        let mut read = BytesMut::from(&[0xC0, 0, 0xff][..]);
        let probe = read.split_off(2);
        let mut rx = Rx::default();
        rx.push(&mut read);
        let packet = rx.decode(&Limits::default()).unwrap();
        assert!(matches!(packet, Some(Packet::PingReq)));
        drop(packet);
        assert!(probe.freeze().is_unique(), "the session let the buffer go");
    }

    #[test]
    fn bare_acks_are_taken_whole_and_anything_else_is_left() {
        let limits = Limits::default();
        let mut rx = Rx::default();
        // PUBACK 1, PUBREL 2, then a PUBACK with a reason code (remaining length 3).
        let mut read = BytesMut::from(&[0x40, 2, 0, 1, 0x62, 2, 0, 2, 0x40, 3, 0, 3, 0x10][..]);
        rx.push(&mut read);
        let first = rx.take_bare_ack(&limits).expect("a bare PUBACK");
        assert_eq!(
            (first.kind, first.packet_id.get()),
            (packet::AckKind::PubAck, 1)
        );
        let second = rx.take_bare_ack(&limits).expect("a bare PUBREL");
        assert_eq!(
            (second.kind, second.packet_id.get()),
            (packet::AckKind::PubRel, 2)
        );
        assert!(rx.take_bare_ack(&limits).is_none());
        assert_eq!(rx.peek().len(), 5, "left to the decoder");
        let ack = rx.decode(&limits).unwrap();
        assert!(
            matches!(ack, Some(Packet::PubAck(a)) if a.reason_code == ReasonCode::NoMatchingSubscribers)
        );
        // With too small a Maximum Packet Size the decoder has to refuse it.
        let mut read = BytesMut::from(&[0x40, 2, 0, 1][..]);
        rx.clear();
        rx.push(&mut read);
        let tiny = Limits {
            max_packet_size: 3,
            ..Limits::default()
        };
        assert!(rx.take_bare_ack(&tiny).is_none());
        assert!(rx.decode(&tiny).is_err());
        // Taking the last bytes lets the buffer go.
        let mut read = BytesMut::from(&[0x70, 2, 0, 9][..]);
        rx.clear();
        rx.push(&mut read);
        assert!(rx.take_bare_ack(&limits).is_some());
        assert_eq!(rx.buf.capacity(), 0, "nothing held while idle");
    }
}
