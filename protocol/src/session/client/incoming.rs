//! What the client does with each packet from the server.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use super::{ClientEvent, ClientSession, LostReason, Phase};
use crate::packet::{
    AckKind, ConnAck, Disconnect, Limits, MAX_PACKET_SIZE, Packet, PacketId, PacketType,
    ProtocolVersion, PubRec, Publish, QoS,
};
use crate::reason::ReasonCode;
use crate::session::acks::{self, AckEffect};
use crate::session::alias::OutboundAliases;
use crate::session::inbound::Arrival;
use crate::session::{PeerLimits, ProtocolViolation, write};

impl ClientSession {
    /// The server broke the protocol: DISCONNECT with the reason code (MQTT 5), close.
    fn violation(&mut self, violation: ProtocolViolation) {
        if self.options.version.is_v5() {
            let disconnect = Disconnect::new(violation.disconnect_code());
            let _ = write(
                &mut self.tx,
                &Packet::Disconnect(disconnect),
                self.options.version,
            );
        }
        self.end_connection();
        self.events
            .push_back(ClientEvent::ConnectionLost(LostReason::ProtocolViolation(
                violation,
            )));
    }

    pub(super) fn process(&mut self) {
        let limits = Limits {
            max_packet_size: self
                .options
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
            version: self.options.version,
        };
        while self.phase != Phase::Disconnected {
            // The common acknowledgement skips the decoder; the checks are the same.
            if self.phase == Phase::Connected
                && let Some(ack) = self.rx.take_bare_ack(&limits)
            {
                self.ping_sent = None;
                if let Err(violation) =
                    self.handle_ack(ack.kind, ack.packet_id, ReasonCode::Success)
                {
                    self.violation(violation);
                }
                continue;
            }
            match self.rx.decode_from_server(&limits) {
                Ok(Some(packet)) => {
                    // Anything from the server shows the connection is alive.
                    self.ping_sent = None;
                    if let Err(violation) = self.handle_packet(packet) {
                        self.violation(violation);
                    }
                }
                Ok(None) => break,
                Err(violation) => self.violation(violation),
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), ProtocolViolation> {
        let connected = self.phase == Phase::Connected;
        match packet {
            Packet::ConnAck(connack) if !connected => self.handle_connack(connack),
            Packet::Auth(auth) => self.events.push_back(ClientEvent::Auth(auth)),
            Packet::Disconnect(disconnect) => {
                self.end_connection();
                self.events.push_back(ClientEvent::Disconnected(disconnect));
            }
            Packet::Publish(publish) if connected => self.handle_publish(publish)?,
            Packet::PubAck(ack) if connected => {
                self.handle_ack(AckKind::PubAck, ack.packet_id, ack.reason_code)?
            }
            Packet::PubRec(rec) if connected => {
                self.handle_ack(AckKind::PubRec, rec.packet_id, rec.reason_code)?
            }
            Packet::PubComp(comp) if connected => {
                self.handle_ack(AckKind::PubComp, comp.packet_id, comp.reason_code)?
            }
            Packet::PubRel(rel) if connected => {
                self.handle_ack(AckKind::PubRel, rel.packet_id, rel.reason_code)?
            }
            Packet::SubAck(suback) if connected => {
                self.answered(suback.packet_id, PacketType::SubAck)?;
                self.events.push_back(ClientEvent::Subscribed(suback));
            }
            Packet::UnsubAck(unsuback) if connected => {
                self.answered(unsuback.packet_id, PacketType::UnsubAck)?;
                self.events.push_back(ClientEvent::Unsubscribed(unsuback));
            }
            Packet::PingResp if connected => self.events.push_back(ClientEvent::Pong),
            other => return Err(ProtocolViolation::UnexpectedPacket(other.packet_type())),
        }
        Ok(())
    }

    fn handle_connack(&mut self, connack: ConnAck) {
        if connack.reason_code.is_error() {
            self.end_connection();
            self.events
                .push_back(ClientEvent::ConnectionRefused(connack));
            return;
        }
        let v5 = self.options.version.is_v5();
        let props = &connack.properties;
        if v5 {
            self.server = PeerLimits {
                maximum_packet_size: props
                    .maximum_packet_size
                    .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
                maximum_qos: props.maximum_qos.unwrap_or(QoS::ExactlyOnce),
                retain_available: props.retain_available.unwrap_or(true),
            };
            self.server_receive_maximum = props.receive_maximum.map_or(u16::MAX, NonZeroU16::get);
            self.outbound_aliases = OutboundAliases::new(props.topic_alias_maximum.unwrap_or(0));
            if let Some(server_keep_alive) = props.server_keep_alive {
                self.keep_alive = Duration::from_secs(u64::from(server_keep_alive));
            }
            if let Some(id) = &props.assigned_client_identifier {
                self.options.client_id = id.clone();
            }
        }
        // MQTT 3.1 has no Session Present flag: assume the server kept what we asked
        // it to keep.
        let session_present = if self.options.version == ProtocolVersion::V3_1 {
            !self.last_clean_start
        } else {
            connack.session_present
        };
        let mut lost = None;
        if !session_present {
            let had_state = !self.inbound.is_empty();
            let discarded = self.outbound.discard_started();
            self.inbound.clear();
            if self.connected_before || had_state || !discarded.is_empty() {
                lost = Some(discarded);
            }
        }
        self.phase = Phase::Connected;
        self.connected_before = true;
        self.inbound
            .start(v5.then_some(self.options.receive_maximum.get()));
        self.outbound.start(self.server_receive_maximum);
        self.events.push_back(ClientEvent::Connected { connack });
        if let Some(discarded) = lost {
            self.events
                .push_back(ClientEvent::SessionLost { discarded });
        }
        self.flush();
    }

    fn handle_publish(&mut self, mut publish: Publish) -> Result<(), ProtocolViolation> {
        self.inbound_aliases.resolve(&mut publish)?;
        let (qos, Some(id)) = (publish.qos, publish.packet_id) else {
            self.events.push_back(ClientEvent::Message(publish));
            return Ok(());
        };
        match self.inbound.on_publish(id, qos)? {
            Arrival::New => {
                self.events.push_back(ClientEvent::Message(publish));
                if let Some(ack) = self.inbound.acknowledge(id, ReasonCode::Success) {
                    self.send(ack);
                }
            }
            // A client acknowledges at once, so nothing is ever left unacknowledged.
            Arrival::Duplicate => {}
            Arrival::AlreadyReceived => {
                self.send(Packet::PubRec(PubRec::new(id)));
            }
        }
        Ok(())
    }

    /// A PUBACK, PUBREC, PUBREL or PUBCOMP, decoded or taken bare (`reason_code` is then
    /// Success). Their properties carry nothing the session acts on.
    fn handle_ack(
        &mut self,
        kind: AckKind,
        packet_id: PacketId,
        reason_code: ReasonCode,
    ) -> Result<(), ProtocolViolation> {
        let (answer, effect) = acks::apply(
            &mut self.outbound,
            &mut self.inbound,
            kind,
            packet_id,
            reason_code,
        )?;
        if let Some(answer) = answer {
            self.send(answer);
        }
        if let AckEffect::Finished(reason_code) = effect {
            self.acked(packet_id, reason_code);
        }
        Ok(())
    }

    fn acked(&mut self, packet_id: PacketId, reason_code: ReasonCode) {
        self.events.push_back(ClientEvent::PublishAcked {
            packet_id,
            reason_code,
        });
        self.flush();
    }

    fn answered(&mut self, id: PacketId, ack: PacketType) -> Result<(), ProtocolViolation> {
        let expected = if ack == PacketType::SubAck {
            PacketType::Subscribe
        } else {
            PacketType::Unsubscribe
        };
        if self.requests.get(&id) != Some(&expected) {
            return Err(ProtocolViolation::UnknownPacketId {
                packet: ack,
                packet_id: id,
            });
        }
        self.requests.remove(&id);
        self.outbound.release_id(id);
        Ok(())
    }
}
