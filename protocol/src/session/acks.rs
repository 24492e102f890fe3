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
    /// Nothing to report: an unknown packet identifier, answered with 0x92.
    Nothing,
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
        AckKind::PubAck => {
            outbound.on_puback(packet_id)?;
            (None, AckEffect::Finished(reason_code))
        }
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
                AckEffect::Nothing,
            ),
        },
        AckKind::PubComp => {
            outbound.on_pubcomp(packet_id)?;
            (None, AckEffect::Finished(reason_code))
        }
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
                AckEffect::Nothing
            };
            (
                Some(Packet::PubComp(PubComp::with_reason(packet_id, reason))),
                effect,
            )
        }
    })
}
