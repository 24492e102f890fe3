//! [`ServerSession`], its options and its events: the server side of one MQTT
//! connection, driven by the broker's connection task.
//!
//! - `options`: [`ServerOptions`], [`AcceptOptions`].
//! - `event`: [`ServerEvent`], [`CloseReason`], [`SendOutcome`].
//! - `handshake`: CONNECT, `accept`, `reject`.
//! - `incoming`: what each packet from the client does; protocol violations.
//! - this module: the state machine once connected, and closing.

mod event;
mod handshake;
mod incoming;
mod options;

use std::time::Duration;

use bytes::BytesMut;
use web_time::Instant;

use super::alias::{InboundAliases, OutboundAliases};
use super::inbound::Inbound;
use super::outbound::Outbound;
use super::{
    PeerLimits, Rx, SessionError, SessionState, check_publish_size, check_size, drain_transmit,
    write,
};
use crate::packet::{
    Auth, Disconnect, Packet, PacketId, PacketType, ProtocolVersion, Publish, QoS, SubAck, UnsubAck,
};
use crate::property::AckProperties;
use crate::reason::ReasonCode;

pub use event::{CloseReason, SendOutcome, ServerEvent};
use event::{EventQueue, Queued};
pub use options::{AcceptOptions, ServerOptions};

use handshake::{connack_code, peek_connect_level};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing received yet that forms a packet.
    AwaitingConnect,
    /// CONNECT surfaced; decoding pauses (except AUTH during enhanced authentication,
    /// when the client may send nothing else [MQTT-3.1.2-30]).
    AwaitingAccept { enhanced_auth: bool },
    /// CONNACK sent.
    Connected,
    /// Over.
    Closed,
}

/// The server side of one MQTT connection, sans IO. See [`crate::session`] for the
/// driving contract.
///
/// ```text
///   new ──► AwaitingConnect ──CONNECT──► AwaitingAccept ──accept()──► Connected ──► Closed
///                 │                          │ reject()                  │
///                 └── anything else ─────────┴───────────────────────────┴──► Closed
/// ```
///
/// The session surfaces CONNECT as [`ServerEvent::Connect`] and then waits: the broker
/// authenticates, looks the client's session up and calls [`accept`](ServerSession::accept)
/// (with the stored [`SessionState`], if any) or [`reject`](ServerSession::reject).
/// Packets the client pipelines after CONNECT are kept until then. The connect timeout
/// is the broker's (a timer of its own); keep alive is the session's: 1.5 times the keep
/// alive in force without a byte from the client closes the connection [MQTT-3.1.2-22]
/// (3.1.1: [MQTT-3.1.2-24]).
///
/// # Acknowledge after persist
///
/// An inbound QoS 1 or 2 PUBLISH is surfaced as [`ServerEvent::Publish`] and **not**
/// acknowledged: the broker routes and stores it, and only then calls
/// [`ack_publish`](ServerSession::ack_publish), which sends PUBACK (QoS 1) or PUBREC
/// (QoS 2). A message is therefore never acknowledged before it is durable. The rest of
/// the QoS 2 exchange is the session's own: it answers PUBREL with PUBCOMP and reports
/// [`ServerEvent::Released`] (the identifier left the stored state). `ack_publish` may
/// come after the connection closed: it then records the PUBREC in the session state
/// without sending anything, so a broker that finishes storing a QoS 2 message after a
/// disconnect still dedups the client's re-send. Call it for every stored message before
/// [`take_state`](ServerSession::take_state); QoS 2 messages not acknowledged by then are
/// forgotten, and their re-send is surfaced again.
///
/// Outbound, [`send_publish`](ServerSession::send_publish) assigns the packet
/// identifier; [`ServerEvent::Delivered`] reports the end of each QoS 1 or 2 flow, when
/// the broker can delete the message from storage.
#[derive(Debug)]
pub struct ServerSession {
    options: ServerOptions,
    phase: Phase,
    /// The client's protocol version (MQTT 5 until CONNECT says otherwise).
    version: ProtocolVersion,
    rx: Rx,
    tx: BytesMut,
    events: EventQueue,
    /// Events taken since the queue was last empty (see `poll_event`).
    events_taken: usize,
    /// Our QoS 1 and 2 messages to the client.
    outbound: Outbound,
    /// The client's QoS 1 and 2 messages.
    inbound: Inbound,
    inbound_aliases: InboundAliases,
    outbound_aliases: OutboundAliases,
    /// The client's Maximum Packet Size (from CONNECT).
    client: PeerLimits,
    /// The client's Receive Maximum (from CONNECT; 65,535 for 3.x).
    client_receive_maximum: u16,
    /// The client's Topic Alias Maximum (from CONNECT).
    client_topic_alias_maximum: u16,
    /// CONNECT's Clean Start.
    clean_start: bool,
    /// CONNECT's Session Expiry Interval, to check the one in DISCONNECT.
    session_expiry_interval: u32,
    /// CONNECT's Keep Alive, in seconds.
    client_keep_alive: u16,
    /// Keep alive in force; zero: none.
    keep_alive: Duration,
    /// When bytes last arrived.
    last_received: Instant,
    /// Whether CONNACK accepted the connection (the will applies from then on).
    accepted: bool,
}

impl ServerSession {
    /// A session for a connection just accepted at `now`, waiting for CONNECT.
    pub fn new(options: ServerOptions, now: Instant) -> Self {
        Self {
            options,
            phase: Phase::AwaitingConnect,
            version: ProtocolVersion::V5,
            rx: Rx::default(),
            tx: BytesMut::new(),
            events: EventQueue::default(),
            events_taken: 0,
            outbound: Outbound::default(),
            inbound: Inbound::new(None),
            inbound_aliases: InboundAliases::default(),
            outbound_aliases: OutboundAliases::default(),
            client: PeerLimits::default(),
            client_receive_maximum: u16::MAX,
            client_topic_alias_maximum: 0,
            clean_start: true,
            session_expiry_interval: 0,
            client_keep_alive: 0,
            keep_alive: Duration::ZERO,
            last_received: now,
            accepted: false,
        }
    }

    /// The client's protocol version (MQTT 5 until its CONNECT has arrived).
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// Whether CONNACK accepted the connection and it is not over.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether the connection is over: close the socket after writing what
    /// `poll_transmit` gives.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The keep alive in force (zero: none), once accepted.
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// How many more QoS 1 and 2 messages `send_publish` would send at once (§4.9): a
    /// broker takes that many from its queue and leaves the rest there.
    pub fn send_quota(&self) -> usize {
        if self.phase == Phase::Connected {
            self.outbound.send_quota()
        } else {
            0
        }
    }

    /// Outbound QoS 1 and 2 messages in flight.
    pub fn inflight(&self) -> usize {
        self.outbound.inflight_len()
    }

    /// Outbound QoS 1 and 2 messages waiting for the client's window.
    pub fn queued(&self) -> usize {
        self.outbound.pending_len()
    }

    /// Inbound QoS 1 and 2 messages surfaced and not yet acknowledged by the broker.
    pub fn unacknowledged(&self) -> usize {
        self.inbound.unacknowledged()
    }

    /// Bytes waiting for `poll_transmit`, for write back-pressure.
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Feeds bytes from the socket, received at `now` (all of `data` is taken; partial
    /// packets wait in the session). Any byte counts as a sign of life for keep alive.
    /// While a CONNECT awaits `accept`, what follows it is buffered, not decoded: a
    /// driver need not read more from the socket until it has answered.
    pub fn handle_bytes(&mut self, data: &mut BytesMut, now: Instant) {
        if self.phase == Phase::Closed {
            data.clear();
            return;
        }
        self.last_received = now;
        self.rx.push(data);
        self.process();
    }

    /// Like [`handle_bytes`](Self::handle_bytes), for a borrowed slice.
    pub fn handle_slice(&mut self, data: &[u8], now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_received = now;
        self.rx.push_slice(data);
        self.process();
    }

    /// The socket closed (or failed).
    pub fn handle_connection_lost(&mut self) {
        if self.phase != Phase::Closed {
            self.close(CloseReason::ConnectionLost);
        }
    }

    /// Handles the timer armed for [`poll_timeout`](Self::poll_timeout): the keep
    /// alive timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout()
            && now >= deadline
        {
            if self.version.is_v5() {
                self.send(Packet::Disconnect(Disconnect::new(
                    ReasonCode::KeepAliveTimeout,
                )));
            }
            self.close(CloseReason::KeepAliveTimeout);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is to be called next: 1.5 times the
    /// keep alive after the last bytes from the client. `None`: no timer is needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase != Phase::Connected || self.keep_alive.is_zero() {
            return None;
        }
        self.last_received.checked_add(self.keep_alive * 3 / 2)
    }

    /// Appends every byte waiting to be sent to `out`, to be written in one go; `false`
    /// when there was nothing.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        drain_transmit(&mut self.tx, out)
    }

    /// The next event, in order.
    ///
    /// When the queue runs dry after a burst that used at most a quarter of its
    /// capacity, the queue lets its memory go, so an idle connection holds none (and a
    /// busy one keeps a queue sized to its bursts).
    /// A PINGREQ that arrived behind events is answered here, once the events before
    /// it are taken (see `EventQueue`).
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        loop {
            match self.events.pop_front() {
                Some(Queued::Event(event)) => {
                    self.events_taken += 1;
                    return Some(event);
                }
                Some(Queued::PingResp) => {
                    if self.phase == Phase::Connected {
                        self.send(Packet::PingResp);
                    }
                }
                None => {
                    if self.events_taken <= self.events.capacity() / 4
                        && self.events.capacity() != 0
                    {
                        self.events = EventQueue::default();
                    }
                    self.events_taken = 0;
                    return None;
                }
            }
        }
    }

    /// Sends an application message to the client. The session assigns the packet
    /// identifier (QoS 1 and 2), topic aliases (up to the client's Topic Alias Maximum)
    /// and DUP; the message's own `packet_id`, `dup` and `topic_alias` are ignored. The
    /// broker decides QoS, retain flag and properties (subscription identifiers,
    /// remaining message expiry).
    pub fn send_publish(&mut self, mut publish: Publish) -> Result<SendOutcome, SessionError> {
        match self.phase {
            Phase::Connected => {}
            Phase::Closed => return Err(SessionError::Closed),
            _ => return Err(SessionError::NotConnected),
        }
        publish.dup = false;
        publish.packet_id = None;
        publish.properties.set_topic_alias(None);
        if self.client.limits_size() {
            publish =
                match check_publish_size(publish, self.version, self.client.maximum_packet_size) {
                    Ok(publish) => publish,
                    Err(SessionError::PacketTooLarge { size, maximum }) => {
                        return Ok(SendOutcome::Dropped { size, maximum });
                    }
                    Err(err) => return Err(err),
                };
        }
        if publish.qos == QoS::AtMostOnce {
            let maximum = self.client.maximum_packet_size;
            self.outbound_aliases
                .write(&mut self.tx, &publish, self.version, maximum)?;
            return Ok(SendOutcome::Sent { packet_id: None });
        }
        let packet_id = self.outbound.enqueue(publish)?;
        self.flush();
        Ok(if self.outbound.is_inflight(packet_id) {
            SendOutcome::Sent {
                packet_id: Some(packet_id),
            }
        } else {
            SendOutcome::Queued { packet_id }
        })
    }

    /// The broker has stored (or refused) inbound message `packet_id`: sends PUBACK for
    /// QoS 1, PUBREC for QoS 2, with `reason` (MQTT 5; a code PUBACK does not allow
    /// becomes 0x80, or Success if it is not an error). An error code ends a QoS 2 flow
    /// too. After the connection closed, nothing is sent but a QoS 2 message is still
    /// recorded as received, for [`take_state`](Self::take_state). MQTT 3.x has no
    /// negative acknowledgement: disconnect instead if the client must know.
    pub fn ack_publish(
        &mut self,
        packet_id: PacketId,
        reason: ReasonCode,
    ) -> Result<(), SessionError> {
        let reason = if reason.allowed_in(PacketType::PubAck) {
            reason
        } else if reason.is_error() {
            ReasonCode::UnspecifiedError
        } else {
            ReasonCode::Success
        };
        let ack = self
            .inbound
            .acknowledge(packet_id, reason)
            .ok_or(SessionError::UnknownPacketId(packet_id))?;
        if self.phase == Phase::Connected {
            self.send(ack);
        }
        Ok(())
    }

    /// Answers SUBSCRIBE `packet_id` with one reason code per filter, in order
    /// (granted QoS or failure; 3.x sends every failure as 0x80). Properties are left
    /// out if they would make the packet too large for the client [MQTT-3.9.2-1].
    pub fn suback(
        &mut self,
        packet_id: PacketId,
        reason_codes: Vec<ReasonCode>,
        properties: AckProperties,
    ) -> Result<(), SessionError> {
        self.reply(Packet::SubAck(SubAck {
            packet_id,
            reason_codes,
            properties,
        }))
    }

    /// Answers UNSUBSCRIBE `packet_id` (reason codes are MQTT 5 only, one per filter).
    pub fn unsuback(
        &mut self,
        packet_id: PacketId,
        reason_codes: Vec<ReasonCode>,
        properties: AckProperties,
    ) -> Result<(), SessionError> {
        self.reply(Packet::UnsubAck(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        }))
    }

    fn reply(&mut self, mut packet: Packet) -> Result<(), SessionError> {
        if self.phase != Phase::Connected {
            return Err(if self.phase == Phase::Closed {
                SessionError::Closed
            } else {
                SessionError::NotConnected
            });
        }
        if check_size(&packet, self.version, self.client.maximum_packet_size).is_err() {
            match &mut packet {
                Packet::SubAck(ack) => ack.properties = AckProperties::default(),
                Packet::UnsubAck(ack) => ack.properties = AckProperties::default(),
                _ => {}
            }
        }
        check_size(&packet, self.version, self.client.maximum_packet_size)?;
        write(&mut self.tx, &packet, self.version)?;
        Ok(())
    }

    /// Sends AUTH (MQTT 5 enhanced authentication, §4.12), before `accept` or after.
    pub fn send_auth(&mut self, auth: Auth) -> Result<(), SessionError> {
        match self.phase {
            Phase::AwaitingAccept { .. } | Phase::Connected => {
                write(&mut self.tx, &Packet::Auth(auth), self.version)?;
                Ok(())
            }
            Phase::Closed => Err(SessionError::Closed),
            Phase::AwaitingConnect => Err(SessionError::NotConnected),
        }
    }

    /// Closes the connection from the server's side: MQTT 5 clients get DISCONNECT with
    /// `reason` (e.g. 0x8E Session taken over, 0x8B Server shutting down); 3.x has no
    /// server DISCONNECT, the socket is just closed. Nothing happens if already closed.
    pub fn disconnect(&mut self, reason: ReasonCode) {
        self.disconnect_with(Disconnect::new(reason));
    }

    /// Like [`disconnect`](Self::disconnect) with properties (a Server Reference for
    /// 0x9C / 0x9D, a reason string). A Session Expiry Interval is removed: the server
    /// must not send one [MQTT-3.14.2-2].
    pub fn disconnect_with(&mut self, mut disconnect: Disconnect) {
        if self.phase == Phase::Closed {
            return;
        }
        if !disconnect.reason_code.allowed_in(PacketType::Disconnect)
            || disconnect.reason_code == ReasonCode::DisconnectWithWillMessage
        {
            disconnect.reason_code = ReasonCode::UnspecifiedError;
        }
        disconnect.properties.session_expiry_interval = None;
        let reason = disconnect.reason_code;
        if self.phase == Phase::Connected && self.version.is_v5() {
            let mut packet = Packet::Disconnect(disconnect);
            if check_size(&packet, self.version, self.client.maximum_packet_size).is_err() {
                packet = Packet::Disconnect(Disconnect::new(reason));
            }
            self.send(packet);
        }
        self.close(CloseReason::ServerDisconnected(reason));
    }

    /// Takes the state that outlives the connection, leaving the session empty: call it
    /// once [`ServerEvent::Closed`] was reported, after acknowledging what was stored.
    /// Flows in flight are in it in their original order, marked DUP.
    pub fn take_state(&mut self) -> SessionState {
        let (outbound, next) = self.outbound.take_state();
        let inbound_awaiting_release = self.inbound.awaiting_release();
        self.inbound.clear();
        SessionState {
            outbound,
            inbound_awaiting_release,
            next_packet_id: Some(next),
        }
    }

    /// [`take_state`](Self::take_state), consuming the session.
    pub fn into_state(mut self) -> SessionState {
        self.take_state()
    }

    fn delivered(&mut self, packet_id: PacketId, reason_code: ReasonCode) {
        self.events.push_back(ServerEvent::Delivered {
            packet_id,
            reason_code,
        });
        self.flush();
    }

    /// Sends what the client's window lets through.
    fn flush(&mut self) {
        if self.phase != Phase::Connected {
            return;
        }
        let events = &mut self.events;
        self.outbound.flush(
            &mut self.tx,
            self.version,
            &mut self.outbound_aliases,
            &self.client,
            |packet_id, reason_code| {
                events.push_back(ServerEvent::Delivered {
                    packet_id,
                    reason_code,
                });
            },
        );
    }

    fn close(&mut self, reason: CloseReason) {
        let publish_will = self.accepted
            && !matches!(&reason, CloseReason::ClientDisconnected(d) if d.reason_code == ReasonCode::Success);
        self.phase = Phase::Closed;
        self.outbound.connection_lost();
        self.rx.clear();
        self.events.push_back(ServerEvent::Closed {
            reason,
            publish_will,
        });
    }

    /// Queues a packet the session builds itself (it cannot fail to encode).
    fn send(&mut self, packet: Packet) {
        let _ = write(&mut self.tx, &packet, self.version);
    }
}
