//! The sender side of QoS 1 and QoS 2 (§4.3.2, §4.3.3), flow control (§4.9) and
//! re-delivery (§4.4), shared by the client and the server session.
//!
//! ```text
//!             enqueue                 flush (window has room)
//!   Publish ───────────► pending ─────────────────────────────────► inflight
//!   (id assigned)        (FIFO)                                        │
//!                          ▲             connection lost:              │
//!                          └──── re-queued at the front, in order, ◄───┘
//!                                PUBLISH with DUP=1, or PUBREL
//!
//!   inflight states: QoS 1  AwaitingPubAck ──PUBACK──► done
//!                    QoS 2  AwaitingPubRec ──PUBREC──► AwaitingPubComp ──PUBCOMP──► done
//!                                          └─PUBREC ≥ 0x80──► done
//! ```
//!
//! A message gets its packet identifier when it is queued, so the caller can name it at
//! once (and a broker can key its storage by it). The window is the peer's Receive
//! Maximum for the current connection: at most that many flows are in flight, counting
//! flows past PUBREC, since the peer counts a QoS 2 flow until its PUBCOMP [MQTT-3.3.4-7]
//! [MQTT-3.3.4-9]. After a reconnect, re-sent flows go through the same window.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::alias::OutboundAliases;
use super::packet_id::{BurstRoom, IdMap, PacketIdAllocator};
use super::{OutboundMessage, PeerLimits, ProtocolViolation, SessionError};
use crate::packet::{self, Packet, PacketId, PacketType, ProtocolVersion, PubRel, Publish, QoS};
use crate::reason::ReasonCode;

/// A flow in flight on the current connection.
#[derive(Debug, Clone)]
struct Inflight {
    /// Order of first transmission on this connection, to re-queue flows in order.
    seq: u64,
    /// Where the flow stands.
    state: FlowState,
}

// The spec's names for the states (§4.3.2, §4.3.3).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone)]
enum FlowState {
    /// QoS 1 PUBLISH sent; the message is kept for a re-send.
    AwaitingPubAck(Publish),
    /// QoS 2 PUBLISH sent; the message is kept for a re-send.
    AwaitingPubRec(Publish),
    /// QoS 2 PUBREL sent; the peer owns the message now.
    AwaitingPubComp,
}

/// What a PUBREC does to its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PubRecOutcome {
    /// Send PUBREL (again).
    Release,
    /// The PUBREC carried an error code: the flow ended without delivery
    /// [MQTT-4.3.3]. Its identifier is free.
    Ended,
    /// No such flow: answer PUBREL with 0x92 Packet Identifier not found (§3.6.2.1).
    Unknown,
}

/// Outbound QoS 1 and 2 flows of one session.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    /// Identifiers of every flow here, and of the client's SUBSCRIBE / UNSUBSCRIBE.
    ids: PacketIdAllocator,
    /// Flows sent on the current connection, by packet identifier.
    inflight: IdMap<Inflight>,
    /// Flows waiting for a slot, in sending order.
    pending: VecDeque<OutboundMessage>,
    /// The peer's Receive Maximum on the current connection; 0 while there is none.
    window: u16,
    /// Next value of [`Inflight::seq`].
    next_seq: u64,
    /// The most flows at once since the tables were last empty.
    burst: BurstRoom,
}

impl Outbound {
    /// Queues a QoS 1 or 2 `publish` (DUP cleared, packet identifier assigned).
    pub(crate) fn enqueue(&mut self, mut publish: Publish) -> Result<PacketId, SessionError> {
        let id = self
            .ids
            .allocate()
            .ok_or(SessionError::PacketIdsExhausted)?;
        publish.packet_id = Some(id);
        publish.dup = false;
        self.pending.push_back(OutboundMessage::Publish(publish));
        self.burst.saw(self.ids.len());
        Ok(id)
    }

    /// A packet identifier for a SUBSCRIBE or UNSUBSCRIBE.
    pub(crate) fn allocate_id(&mut self) -> Result<PacketId, SessionError> {
        self.ids.allocate().ok_or(SessionError::PacketIdsExhausted)
    }

    /// Frees an identifier from [`allocate_id`](Self::allocate_id).
    pub(crate) fn release_id(&mut self, id: PacketId) {
        self.ids.release(id);
    }

    /// Opens the window for a new connection: `window` is the peer's Receive Maximum.
    pub(crate) fn start(&mut self, window: u16) {
        self.window = window;
    }

    /// Sends (encodes into `tx`) every flow the window lets through. A flow the peer
    /// cannot take on this connection is dropped and handed to `discarded` with the
    /// reason code to report it with.
    ///
    /// A PUBLISH moves from the queue into its inflight slot once and is encoded from
    /// there, by reference: sending it copies nothing but its bytes into `tx`.
    pub(crate) fn flush(
        &mut self,
        tx: &mut BytesMut,
        version: ProtocolVersion,
        aliases: &mut OutboundAliases,
        limits: &PeerLimits,
        mut discarded: impl FnMut(PacketId, ReasonCode),
    ) {
        while self.inflight.len() < usize::from(self.window) {
            let Some(message) = self.pending.pop_front() else {
                return;
            };
            let (id, state) = match message {
                OutboundMessage::Publish(publish) => {
                    let Some(id) = publish.packet_id else {
                        // Not produced by `enqueue` or `restore`; nothing to track.
                        let _ = aliases.write(tx, &publish, version, limits.maximum_packet_size);
                        continue;
                    };
                    if let Err(reason) = limits.admits(&publish, version) {
                        self.ids.release(id);
                        discarded(id, reason);
                        continue;
                    }
                    let state = match publish.qos {
                        QoS::ExactlyOnce => FlowState::AwaitingPubRec(publish),
                        _ => FlowState::AwaitingPubAck(publish),
                    };
                    (id, state)
                }
                OutboundMessage::Release(id) => (id, FlowState::AwaitingPubComp),
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            let flow = self
                .inflight
                .entry(id)
                .insert_entry(Inflight { seq, state })
                .into_mut();
            let result = match &flow.state {
                FlowState::AwaitingPubAck(publish) | FlowState::AwaitingPubRec(publish) => {
                    aliases.write(tx, publish, version, limits.maximum_packet_size)
                }
                FlowState::AwaitingPubComp => {
                    packet::encode(&Packet::PubRel(PubRel::new(id)), version, tx)
                }
            };
            if result.is_err() {
                // Not on the wire (the codec writes nothing when it fails): the peer
                // will never acknowledge it, so it must not hold a slot.
                self.complete(id);
                discarded(id, ReasonCode::ImplementationSpecificError);
            }
        }
    }

    /// Handles PUBACK: completes a QoS 1 flow. `false` if no flow has identifier `id`
    /// (see [`Self::on_pubcomp`] for why that is not an error).
    pub(crate) fn on_puback(&mut self, id: PacketId) -> Result<bool, ProtocolViolation> {
        match self.inflight.get(&id).map(|flow| &flow.state) {
            Some(FlowState::AwaitingPubAck(_)) => {
                self.complete(id);
                Ok(true)
            }
            None => Ok(false),
            Some(_) => Err(ProtocolViolation::UnknownPacketId {
                packet: PacketType::PubAck,
                packet_id: id,
            }),
        }
    }

    /// Handles PUBREC with `reason` [MQTT-4.3.3].
    pub(crate) fn on_pubrec(
        &mut self,
        id: PacketId,
        reason: ReasonCode,
    ) -> Result<PubRecOutcome, ProtocolViolation> {
        let Some(flow) = self.inflight.get_mut(&id) else {
            return Ok(PubRecOutcome::Unknown);
        };
        match flow.state {
            FlowState::AwaitingPubRec(_) if reason.is_error() => {
                self.complete(id);
                Ok(PubRecOutcome::Ended)
            }
            FlowState::AwaitingPubRec(_) | FlowState::AwaitingPubComp => {
                flow.state = FlowState::AwaitingPubComp;
                Ok(PubRecOutcome::Release)
            }
            FlowState::AwaitingPubAck(_) => Err(ProtocolViolation::UnknownPacketId {
                packet: PacketType::PubRec,
                packet_id: id,
            }),
        }
    }

    /// Handles PUBCOMP: completes a QoS 2 flow. `false` if no flow has identifier `id`.
    ///
    /// An acknowledgement for an identifier not in flight at all is ignored, not a
    /// protocol error: the spec names none for it, and it happens without fault (a
    /// PUBACK re-sent after a reconnect for a message the broker already let go, an
    /// acknowledgement crossing a session takeover). mosquitto ignores it too. One for
    /// a flow in another state (PUBACK for a QoS 2 message, PUBCOMP before PUBREC) is a
    /// mismatch of the two sides' state and stays a protocol error, as in mosquitto.
    pub(crate) fn on_pubcomp(&mut self, id: PacketId) -> Result<bool, ProtocolViolation> {
        match self.inflight.get(&id).map(|flow| &flow.state) {
            Some(FlowState::AwaitingPubComp) => {
                self.complete(id);
                Ok(true)
            }
            None => Ok(false),
            Some(_) => Err(ProtocolViolation::UnknownPacketId {
                packet: PacketType::PubComp,
                packet_id: id,
            }),
        }
    }

    fn complete(&mut self, id: PacketId) {
        self.inflight.remove(&id);
        self.ids.release(id);
        if self.inflight.is_empty() && self.pending.is_empty() {
            self.release_spare();
        }
    }

    /// Once no flow is left, lets go of the room a burst grew the tables to when the
    /// flows since then needed far less ([`BurstRoom`]), so a connection does not keep
    /// its peak for good.
    fn release_spare(&mut self) {
        let burst = self.burst;
        self.burst.restart();
        if burst.spare(self.inflight.capacity()) {
            self.inflight = IdMap::default();
        }
        if burst.spare(self.pending.capacity()) {
            self.pending = VecDeque::new();
        }
        self.ids.release_spare(&burst);
    }

    /// The connection ended: closes the window and puts every flow in flight back at the
    /// front of the queue, in the order it was sent, to be re-sent on the next
    /// connection: PUBLISH with DUP=1, PUBREL as is [MQTT-4.4.0-1] [MQTT-4.6.0-1].
    pub(crate) fn connection_lost(&mut self) {
        self.window = 0;
        let mut flows: Vec<(PacketId, Inflight)> = self.inflight.drain().collect();
        flows.sort_unstable_by_key(|(_, flow)| flow.seq);
        for (id, flow) in flows.into_iter().rev() {
            let message = match flow.state {
                FlowState::AwaitingPubAck(mut publish) | FlowState::AwaitingPubRec(mut publish) => {
                    publish.dup = true;
                    OutboundMessage::Publish(publish)
                }
                FlowState::AwaitingPubComp => OutboundMessage::Release(id),
            };
            self.pending.push_front(message);
        }
    }

    /// The peer has no session for us: drops every flow that was sent at least once
    /// (the peer forgot it; re-sending a QoS 2 message could deliver it twice) and
    /// returns their identifiers. Messages never sent stay queued. Call while
    /// disconnected.
    pub(crate) fn discard_started(&mut self) -> Vec<PacketId> {
        self.connection_lost();
        let mut discarded = Vec::new();
        self.pending.retain(|message| match message {
            OutboundMessage::Publish(publish) if !publish.dup => true,
            other => {
                discarded.extend(other.packet_id());
                false
            }
        });
        for &id in &discarded {
            self.ids.release(id);
        }
        discarded
    }

    /// Takes every flow out, in sending order, leaving this empty and disconnected;
    /// also returns where identifier allocation continues.
    pub(crate) fn take_state(&mut self) -> (Vec<OutboundMessage>, PacketId) {
        self.connection_lost();
        let next = self.ids.next();
        let messages = self.pending.drain(..).collect();
        self.ids = PacketIdAllocator::starting_at(next);
        (messages, next)
    }

    /// Loads stored flows (in sending order) in front of anything queued. Flows
    /// without a packet identifier, at QoS 0, or with an identifier used twice are
    /// dropped: stored state is data from outside and must not break the session.
    pub(crate) fn restore(&mut self, messages: Vec<OutboundMessage>, next: Option<PacketId>) {
        if let Some(next) = next {
            let mut ids = PacketIdAllocator::starting_at(next);
            for message in &self.pending {
                if let Some(id) = message.packet_id() {
                    ids.reserve(id);
                }
            }
            self.ids = ids;
        }
        let mut restored = Vec::with_capacity(messages.len());
        for message in messages {
            let valid = match &message {
                OutboundMessage::Publish(publish) => publish.qos != QoS::AtMostOnce,
                OutboundMessage::Release(_) => true,
            };
            match message.packet_id() {
                Some(id) if valid && !self.inflight.contains_key(&id) && self.ids.reserve(id) => {
                    restored.push(message);
                }
                _ => {}
            }
        }
        for message in restored.into_iter().rev() {
            self.pending.push_front(message);
        }
    }

    /// Whether the flow `id` is on the wire (not waiting for a slot).
    pub(crate) fn is_inflight(&self, id: PacketId) -> bool {
        self.inflight.contains_key(&id)
    }

    /// Flows in flight on this connection.
    pub(crate) fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Flows waiting for a slot.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// How many more QoS 1 and 2 messages would be sent at once if queued now (§4.9).
    pub(crate) fn send_quota(&self) -> usize {
        usize::from(self.window).saturating_sub(self.inflight.len() + self.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::packet_id::KEEP;

    fn qos1(topic: &'static str) -> Publish {
        let mut publish = Publish::new(topic, "x");
        publish.qos = QoS::AtLeastOnce;
        publish
    }

    fn qos2(topic: &'static str) -> Publish {
        let mut publish = Publish::new(topic, "x");
        publish.qos = QoS::ExactlyOnce;
        publish
    }

    /// What `flush` puts on the wire (MQTT 5, no limits), decoded again.
    fn sent(outbound: &mut Outbound) -> Vec<Packet> {
        sent_with(outbound, &PeerLimits::default(), |id, reason| {
            panic!("unexpected discard of {id} ({reason:?})")
        })
    }

    fn sent_with(
        outbound: &mut Outbound,
        limits: &PeerLimits,
        discarded: impl FnMut(PacketId, ReasonCode),
    ) -> Vec<Packet> {
        let mut tx = BytesMut::new();
        let mut aliases = OutboundAliases::default();
        outbound.flush(
            &mut tx,
            ProtocolVersion::V5,
            &mut aliases,
            limits,
            discarded,
        );
        let mut packets = Vec::new();
        while let Some(packet) = packet::decode(&mut tx, &crate::packet::Limits::default())
            .expect("flush writes valid packets")
        {
            packets.push(packet);
        }
        assert!(tx.is_empty(), "nothing but whole packets");
        packets
    }

    fn topics(packets: &[Packet]) -> Vec<String> {
        packets
            .iter()
            .map(|packet| match packet {
                Packet::Publish(p) => format!("{}{}", p.topic, if p.dup { "+dup" } else { "" }),
                Packet::PubRel(rel) => format!("pubrel {}", rel.packet_id),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_tables_let_a_burst_go_once_traffic_falls_back() {
        let mut out = Outbound::default();
        out.start(100);
        let burst = |out: &mut Outbound, count: usize| {
            let ids: Vec<PacketId> = (0..count)
                .map(|_| out.enqueue(qos1("t")).unwrap())
                .collect();
            sent(out);
            for id in ids {
                out.on_puback(id).unwrap();
                sent(out);
            }
            assert_eq!((out.inflight_len(), out.pending_len()), (0, 0));
        };
        let room = |out: &Outbound| {
            (
                out.inflight.capacity(),
                out.pending.capacity(),
                out.ids.capacity(),
            )
        };
        // Bursts of one size keep their room...
        burst(&mut out, 300);
        let peak = room(&out);
        assert!(peak.0 >= 100 && peak.1 >= 200 && peak.2 >= 300, "{peak:?}");
        burst(&mut out, 300);
        assert_eq!(room(&out), peak);
        // ...which goes once the traffic is a trickle; the trickle's own stays.
        burst(&mut out, 1);
        let (inflight, pending, ids) = room(&out);
        assert!(
            inflight <= KEEP && pending <= KEEP && ids <= KEEP,
            "{:?}",
            room(&out)
        );
        burst(&mut out, 1);
        assert!(
            out.inflight.capacity() > 0,
            "a trickle does not allocate for each message"
        );
    }

    #[test]
    fn window_bounds_the_inflight_flows_and_the_rest_wait_in_order() {
        let mut out = Outbound::default();
        out.start(2);
        let a = out.enqueue(qos1("a")).unwrap();
        out.enqueue(qos1("b")).unwrap();
        out.enqueue(qos1("c")).unwrap();
        assert_eq!(topics(&sent(&mut out)), ["a", "b"]);
        assert_eq!(
            (out.inflight_len(), out.pending_len(), out.send_quota()),
            (2, 1, 0)
        );
        out.on_puback(a).unwrap();
        assert_eq!(topics(&sent(&mut out)), ["c"]);
    }

    #[test]
    fn qos2_flow_counts_against_the_window_until_pubcomp() {
        let mut out = Outbound::default();
        out.start(1);
        let a = out.enqueue(qos2("a")).unwrap();
        out.enqueue(qos1("b")).unwrap();
        assert_eq!(topics(&sent(&mut out)), ["a"]);
        assert_eq!(
            out.on_pubrec(a, ReasonCode::Success),
            Ok(PubRecOutcome::Release)
        );
        assert!(sent(&mut out).is_empty(), "still in flight until PUBCOMP");
        assert!(
            out.on_puback(a).is_err(),
            "PUBACK does not complete a QoS 2 flow"
        );
        out.on_pubcomp(a).unwrap();
        assert_eq!(topics(&sent(&mut out)), ["b"]);
    }

    #[test]
    fn pubrec_with_an_error_ends_the_flow() {
        let mut out = Outbound::default();
        out.start(5);
        let a = out.enqueue(qos2("a")).unwrap();
        sent(&mut out);
        assert_eq!(
            out.on_pubrec(a, ReasonCode::QuotaExceeded),
            Ok(PubRecOutcome::Ended)
        );
        assert_eq!(out.inflight_len(), 0);
        assert!(!out.ids.is_in_use(a));
        assert_eq!(
            out.on_pubrec(a, ReasonCode::Success),
            Ok(PubRecOutcome::Unknown)
        );
    }

    #[test]
    fn connection_loss_requeues_in_flight_flows_first_with_dup_and_pubrel() {
        let mut out = Outbound::default();
        out.start(3);
        let a = out.enqueue(qos1("a")).unwrap();
        let b = out.enqueue(qos2("b")).unwrap();
        out.enqueue(qos1("c")).unwrap();
        out.enqueue(qos1("d")).unwrap();
        sent(&mut out);
        out.on_pubrec(b, ReasonCode::Success).unwrap();
        out.connection_lost();
        assert_eq!(out.inflight_len(), 0);
        out.start(10);
        let again = sent(&mut out);
        assert_eq!(
            topics(&again),
            ["a+dup", format!("pubrel {b}").as_str(), "c+dup", "d"]
        );
        let Packet::Publish(first) = &again[0] else {
            panic!("a PUBLISH")
        };
        assert_eq!(
            first.packet_id,
            Some(a),
            "re-sent with its original identifier"
        );
    }

    #[test]
    fn discard_started_keeps_messages_never_sent() {
        let mut out = Outbound::default();
        out.start(1);
        let a = out.enqueue(qos2("a")).unwrap();
        out.enqueue(qos1("b")).unwrap();
        sent(&mut out);
        out.connection_lost();
        assert_eq!(out.discard_started(), vec![a]);
        out.start(1);
        assert_eq!(topics(&sent(&mut out)), ["b"]);
    }

    #[test]
    fn state_round_trips_and_invalid_entries_are_dropped() {
        let mut out = Outbound::default();
        out.start(1);
        out.enqueue(qos1("a")).unwrap();
        out.enqueue(qos1("b")).unwrap();
        sent(&mut out);
        let (mut messages, next) = out.take_state();
        assert_eq!(messages.len(), 2);
        messages.push(OutboundMessage::Publish(Publish::new("qos0", "x")));
        messages.push(messages[0].clone()); // duplicate identifier

        let mut resumed = Outbound::default();
        resumed.restore(messages, Some(next));
        resumed.start(5);
        assert_eq!(topics(&sent(&mut resumed)), ["a+dup", "b"]);
        let fresh = resumed.enqueue(qos1("c")).unwrap();
        assert_eq!(fresh, next, "allocation continues where it stopped");
    }

    #[test]
    fn a_flow_the_peer_cannot_take_is_discarded_and_its_id_freed() {
        let mut out = Outbound::default();
        out.start(5);
        let a = out.enqueue(qos1("a")).unwrap();
        let small = PeerLimits {
            maximum_packet_size: 4,
            ..PeerLimits::default()
        };
        let mut discarded = Vec::new();
        let packets = sent_with(&mut out, &small, |id, reason| discarded.push((id, reason)));
        assert!(packets.is_empty());
        assert_eq!(discarded, [(a, ReasonCode::PacketTooLarge)]);
        assert!(!out.ids.is_in_use(a));
        assert_eq!(out.inflight_len(), 0);
    }
}
