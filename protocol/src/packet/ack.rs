//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4-§3.7): one shape, four packet types.

use bytes::Bytes;

use super::{PacketId, PacketType, ProtocolVersion, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, AckProperties};
use crate::reason::ReasonCode;
use crate::wire::{self, Sink};

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $packet_type:expr, $context:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The packet identifier of the PUBLISH (or PUBREL) acknowledged.
            pub packet_id: PacketId,
            /// MQTT 5 reason code; always success in 3.x.
            pub reason_code: ReasonCode,
            /// MQTT 5 properties.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement without properties.
            pub fn new(packet_id: PacketId) -> Self {
                Self::with_reason(packet_id, ReasonCode::Success)
            }

            /// An acknowledgement with `reason_code` and no properties.
            pub fn with_reason(packet_id: PacketId, reason_code: ReasonCode) -> Self {
                Self { packet_id, reason_code, properties: AckProperties::default() }
            }

            pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
                let packet_id = read_packet_id(buf, $packet_type)?;
                let mut properties = AckProperties::default();
                let mut reason_code = ReasonCode::Success;
                // §3.4.2.1: the reason code and properties may be left out.
                if version.is_v5() && !buf.is_empty() {
                    let code = wire::read_u8(buf, "reason code")?;
                    reason_code = ReasonCode::from_u8(code)
                        .filter(|rc| rc.allowed_in($packet_type))
                        .ok_or(DecodeError::InvalidReasonCode { packet: $packet_type, code })?;
                    if !buf.is_empty() {
                        property::read_properties(buf, |p| properties.apply(p, $context))?;
                    }
                }
                Ok(Self { packet_id, reason_code, properties })
            }

            pub(crate) fn encode<S: Sink>(&self, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
                s.put_u16(self.packet_id.get());
                if version.is_v5() {
                    let bare = self.properties.is_empty();
                    if self.reason_code != ReasonCode::Success || !bare {
                        s.put_u8(self.reason_code as u8);
                    }
                    if !bare {
                        property::put_properties(s, &self.properties)?;
                    }
                }
                Ok(())
            }
        }
    };
}

ack_packet!(
    /// PUBACK: acknowledges a QoS 1 PUBLISH.
    PubAck,
    PacketType::PubAck,
    "PUBACK"
);
ack_packet!(
    /// PUBREC: first acknowledgement of a QoS 2 PUBLISH.
    PubRec,
    PacketType::PubRec,
    "PUBREC"
);
ack_packet!(
    /// PUBREL: releases a QoS 2 message after PUBREC.
    PubRel,
    PacketType::PubRel,
    "PUBREL"
);
ack_packet!(
    /// PUBCOMP: completes a QoS 2 exchange.
    PubComp,
    PacketType::PubComp,
    "PUBCOMP"
);
