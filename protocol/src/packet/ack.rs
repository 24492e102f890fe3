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

/// Which of the four acknowledgements a [`BareAck`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the spec's packet names
pub(crate) enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

impl AckKind {
    /// The packet this acknowledgement is.
    pub(crate) const fn packet_type(self) -> PacketType {
        match self {
            Self::PubAck => PacketType::PubAck,
            Self::PubRec => PacketType::PubRec,
            Self::PubRel => PacketType::PubRel,
            Self::PubComp => PacketType::PubComp,
        }
    }
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP of remaining length 2: a packet identifier and
/// nothing else. It is the acknowledgement of every QoS 1 and 2 flow in MQTT 3.x and the
/// usual one in MQTT 5, so the sessions take it without building a
/// [`Packet`](super::Packet). [`decode`](super::decode) reads the same bytes as the same
/// packet with reason code Success and no properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BareAck {
    pub(crate) kind: AckKind,
    pub(crate) packet_id: PacketId,
}

impl BareAck {
    /// The bare acknowledgement the first four bytes of `buf` hold, if they are one.
    /// Anything else, a packet identifier of 0 included, is `None` and left to
    /// [`decode`](super::decode), which refuses what is malformed.
    pub(crate) fn peek(buf: &[u8]) -> Option<Self> {
        let [first, 2, high, low, ..] = *buf else {
            return None;
        };
        // The fixed header flags are part of the match: PUBREL's are 0b0010, the
        // others' 0 [MQTT-2.1.3-1].
        let kind = match first {
            0x40 => AckKind::PubAck,
            0x50 => AckKind::PubRec,
            0x62 => AckKind::PubRel,
            0x70 => AckKind::PubComp,
            _ => return None,
        };
        let packet_id = PacketId::new(u16::from_be_bytes([high, low]))?;
        Some(Self { kind, packet_id })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::packet::{Limits, Packet, decode};

    /// Every byte string `peek` takes decodes to the same acknowledgement, in every
    /// version; every one it leaves is left to `decode`.
    #[test]
    fn peek_agrees_with_decode() {
        let id = PacketId::new(0x1234).unwrap();
        for first in 0..=u8::MAX {
            for bytes in [
                [first, 2, 0x12, 0x34],
                [first, 2, 0, 0],
                [first, 3, 0x12, 0x34],
            ] {
                let peeked = BareAck::peek(&bytes);
                for version in [
                    ProtocolVersion::V3_1,
                    ProtocolVersion::V3_1_1,
                    ProtocolVersion::V5,
                ] {
                    let limits = Limits {
                        version,
                        ..Limits::default()
                    };
                    let decoded = decode(&mut BytesMut::from(&bytes[..]), &limits);
                    let expected = match decoded {
                        // MQTT 3.1's PUBREL with DUP, a re-send: rare, left to `decode`.
                        Ok(Some(Packet::PubRel(_))) if first == 0x6A => None,
                        Ok(Some(Packet::PubAck(a))) if a == PubAck::new(id) => {
                            Some(AckKind::PubAck)
                        }
                        Ok(Some(Packet::PubRec(a))) if a == PubRec::new(id) => {
                            Some(AckKind::PubRec)
                        }
                        Ok(Some(Packet::PubRel(a))) if a == PubRel::new(id) => {
                            Some(AckKind::PubRel)
                        }
                        Ok(Some(Packet::PubComp(a))) if a == PubComp::new(id) => {
                            Some(AckKind::PubComp)
                        }
                        _ => None,
                    };
                    assert_eq!(
                        peeked.map(|ack| ack.kind),
                        expected,
                        "{bytes:02x?} {version:?}"
                    );
                }
            }
            assert!(BareAck::peek(&[first, 2, 0x12]).is_none());
        }
        let ack = BareAck::peek(&[0x40, 2, 0x12, 0x34, 0xFF]).unwrap();
        assert_eq!(ack.packet_id, id);
    }
}
