//! What a received PUBACK, PUBREC, PUBREL or PUBCOMP does to a session's flows, the
//! same for the client and the server session: the flow tables take it, and the result
//! says what to answer and what the session reports.

use crate::packet::{AckKind, Packet, PacketId, PubComp, PubRel};
use crate::reason::ReasonCode;
use crate::session::ProtocolViolation;
use crate::session::inbound::Inbound;
use crate::session::outbound::{Outbound, PubRecOutcome};

/// What the session reports for an acknowledgement its flow tables took.
pub(crate) enum AckEffect {
    /// An outbound flow ended (PUBACK, PUBCOMP, or a PUBREC with an error code), with
    /// the acknowledgement's reason code.
    Finished(ReasonCode),
    /// Outbound QoS 2: the PUBREC was answered with PUBREL.
    Received,
    /// Inbound QoS 2: the PUBREL released the message (PUBCOMP sent).
    Released,
    /// No flow has this packet identifier: ignored, or for PUBREC and PUBREL answered
    /// with 0x92 Packet Identifier not found (§3.6.2.1, §3.7.2.1). Not an error: it
    /// happens in recovery (see `Outbound::on_pubcomp`); the session reports it so the
    /// broker can count it.
    NotInFlight(AckKind),
}

/// Applies acknowledgement `kind` for `packet_id` to the flow tables: the packet to send
/// in answer, if any, and what happened.
pub(crate) fn apply(
    outbound: &mut Outbound,
    inbound: &mut Inbound,
    kind: AckKind,
    packet_id: PacketId,
    reason_code: ReasonCode,
) -> Result<(Option<Packet>, AckEffect), ProtocolViolation> {
    Ok(match kind {
        AckKind::PubAck => match outbound.on_puback(packet_id)? {
            true => (None, AckEffect::Finished(reason_code)),
            false => (None, AckEffect::NotInFlight(kind)),
        },
        AckKind::PubRec => match outbound.on_pubrec(packet_id, reason_code)? {
            PubRecOutcome::Release => (
                Some(Packet::PubRel(PubRel::new(packet_id))),
                AckEffect::Received,
            ),
            PubRecOutcome::Ended => (None, AckEffect::Finished(reason_code)),
            PubRecOutcome::Unknown => (
                Some(Packet::PubRel(PubRel::with_reason(
                    packet_id,
                    ReasonCode::PacketIdentifierNotFound,
                ))),
                AckEffect::NotInFlight(kind),
            ),
        },
        AckKind::PubComp => match outbound.on_pubcomp(packet_id)? {
            true => (None, AckEffect::Finished(reason_code)),
            false => (None, AckEffect::NotInFlight(kind)),
        },
        AckKind::PubRel => {
            let released = inbound.on_pubrel(packet_id)?;
            let reason = if released {
                ReasonCode::Success
            } else {
                ReasonCode::PacketIdentifierNotFound
            };
            let effect = if released {
                AckEffect::Released
            } else {
                AckEffect::NotInFlight(kind)
            };
            (
                Some(Packet::PubComp(PubComp::with_reason(packet_id, reason))),
                effect,
            )
        }
    })
}
