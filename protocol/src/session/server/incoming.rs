//! What the server session does with each packet from the client, and how it answers
//! a protocol violation.

use super::{CloseReason, Phase, ServerEvent, ServerSession, connack_code, peek_connect_level};
use crate::error::DecodeError;
use crate::packet::{
    AckKind, ConnAck, Disconnect, Limits, Packet, PacketId, ProtocolVersion, PubRec, Publish,
};
use crate::reason::ReasonCode;
use crate::session::ProtocolViolation;
use crate::session::acks::{self, AckEffect};
use crate::session::inbound::Arrival;
use crate::session::write;

impl ServerSession {
    pub(super) fn process(&mut self) {
        loop {
            match self.phase {
                Phase::AwaitingConnect
                | Phase::Connected
                | Phase::AwaitingAccept {
                    enhanced_auth: true,
                } => {}
                Phase::AwaitingAccept {
                    enhanced_auth: false,
                }
                | Phase::Closed => return,
            }
            let limits = Limits {
                max_packet_size: self.options.maximum_packet_size.get(),
                version: self.version,
            };
            // Before CONNECT is decoded, its protocol level decides how to answer a
            // malformed one.
            let level = if self.phase == Phase::AwaitingConnect {
                peek_connect_level(self.rx.peek())
            } else {
                None
            };
            // The common acknowledgement skips the decoder; the checks are the same.
            let bare_ack = match self.phase {
                Phase::Connected => self.rx.take_bare_ack(&limits),
                _ => None,
            };
            let result = match bare_ack {
                Some(ack) => self.handle_ack(ack.kind, ack.packet_id, ReasonCode::Success),
                None => match self.rx.decode(&limits) {
                    Ok(Some(packet)) => self.handle_packet(packet),
                    Ok(None) => return,
                    Err(err) => Err(err.into()),
                },
            };
            if let Err(violation) = result {
                self.violation(violation, level);
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), ProtocolViolation> {
        match self.phase {
            Phase::AwaitingConnect => match packet {
                Packet::Connect(connect) => {
                    self.handle_connect(connect);
                    Ok(())
                }
                other => Err(ProtocolViolation::FirstPacketNotConnect(
                    other.packet_type(),
                )),
            },
            Phase::AwaitingAccept { .. } => match packet {
                Packet::Auth(auth) => {
                    self.events.push_back(ServerEvent::Auth(auth));
                    Ok(())
                }
                Packet::Disconnect(disconnect) => {
                    self.close(CloseReason::ClientDisconnected(disconnect));
                    Ok(())
                }
                Packet::Connect(_) => Err(ProtocolViolation::SecondConnect),
                other => Err(ProtocolViolation::UnexpectedPacket(other.packet_type())),
            },
            Phase::Connected => self.handle_connected(packet),
            Phase::Closed => Ok(()),
        }
    }

    fn handle_connected(&mut self, packet: Packet) -> Result<(), ProtocolViolation> {
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish)?,
            Packet::PubAck(ack) => {
                self.handle_ack(AckKind::PubAck, ack.packet_id, ack.reason_code)?
            }
            Packet::PubRec(rec) => {
                self.handle_ack(AckKind::PubRec, rec.packet_id, rec.reason_code)?
            }
            Packet::PubComp(comp) => {
                self.handle_ack(AckKind::PubComp, comp.packet_id, comp.reason_code)?
            }
            Packet::PubRel(rel) => {
                self.handle_ack(AckKind::PubRel, rel.packet_id, rel.reason_code)?
            }
            Packet::Subscribe(subscribe) => {
                self.events.push_back(ServerEvent::Subscribe(subscribe))
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.events.push_back(ServerEvent::Unsubscribe(unsubscribe))
            }
            Packet::PingReq => {
                if !self.events.push_ping_resp() {
                    self.send(Packet::PingResp);
                }
            }
            Packet::Disconnect(disconnect) => {
                if disconnect
                    .properties
                    .session_expiry_interval
                    .is_some_and(|expiry| expiry > 0)
                    && self.session_expiry_interval == 0
                {
                    return Err(ProtocolViolation::SessionExpiryAfterZero);
                }
                self.close(CloseReason::ClientDisconnected(disconnect));
            }
            Packet::Auth(auth) => self.events.push_back(ServerEvent::Auth(auth)),
            Packet::Connect(_) => return Err(ProtocolViolation::SecondConnect),
            other => return Err(ProtocolViolation::UnexpectedPacket(other.packet_type())),
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
        match effect {
            AckEffect::Finished(reason_code) => self.delivered(packet_id, reason_code),
            AckEffect::Received => self.events.push_back(ServerEvent::Received { packet_id }),
            AckEffect::Released => self.events.push_back(ServerEvent::Released { packet_id }),
            AckEffect::NotInFlight(kind) => self.events.push_back(ServerEvent::AckNotInFlight {
                packet: kind.packet_type(),
                packet_id,
            }),
        }
        Ok(())
    }

    fn handle_publish(&mut self, mut publish: Publish) -> Result<(), ProtocolViolation> {
        if publish.qos > self.options.maximum_qos {
            return Err(ProtocolViolation::QoSNotSupported {
                qos: publish.qos,
                maximum: self.options.maximum_qos,
            });
        }
        if publish.retain && !self.options.retain_available {
            return Err(ProtocolViolation::RetainNotSupported);
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(ProtocolViolation::SubscriptionIdentifierFromClient);
        }
        self.inbound_aliases.resolve(&mut publish)?;
        let (qos, Some(id)) = (publish.qos, publish.packet_id) else {
            self.events.push_back(ServerEvent::Publish(publish));
            return Ok(());
        };
        match self.inbound.on_publish(id, qos)? {
            Arrival::New => self.events.push_back(ServerEvent::Publish(publish)),
            // Surfaced already; the broker's ack_publish will answer both.
            Arrival::Duplicate => {}
            Arrival::AlreadyReceived => self.send(Packet::PubRec(PubRec::new(id))),
        }
        Ok(())
    }

    /// The client broke the protocol: answers with CONNACK or DISCONNECT carrying the
    /// reason code where the protocol has one (§4.13), then closes. `level` is the
    /// protocol level read from a CONNECT that failed to decode.
    fn violation(&mut self, violation: ProtocolViolation, level: Option<u8>) {
        match self.phase {
            Phase::AwaitingConnect => {
                let answer = match (&violation, level) {
                    (ProtocolViolation::Decode(_), Some(5)) => {
                        Some((ProtocolVersion::V5, connack_code(violation.reason_code())))
                    }
                    // A level we do not speak: the 3.1.1 CONNACK "unacceptable protocol
                    // version" is the answer every version understands [MQTT-3.1.2-2].
                    (
                        ProtocolViolation::Decode(DecodeError::UnsupportedProtocolLevel(_)),
                        Some(_),
                    ) => Some((
                        ProtocolVersion::V3_1_1,
                        ReasonCode::UnsupportedProtocolVersion,
                    )),
                    _ => None,
                };
                if let Some((version, reason)) = answer {
                    let _ = write(
                        &mut self.tx,
                        &Packet::ConnAck(ConnAck::new(reason)),
                        version,
                    );
                }
            }
            Phase::AwaitingAccept { .. } if self.version.is_v5() => {
                self.send(Packet::ConnAck(ConnAck::new(connack_code(
                    violation.reason_code(),
                ))));
            }
            Phase::Connected if self.version.is_v5() => {
                self.send(Packet::Disconnect(Disconnect::new(
                    violation.disconnect_code(),
                )));
            }
            Phase::Closed => return,
            _ => {}
        }
        self.close(CloseReason::ProtocolViolation(violation));
    }
}
