//! SUBACK (§3.9) and UNSUBACK (§3.11).

use bytes::Bytes;

use super::{PacketId, PacketType, ProtocolVersion, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, AckProperties};
use crate::reason::ReasonCode;
use crate::wire::{self, Sink};

/// SUBACK: one reason code per filter of the SUBSCRIBE, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// Granted QoS (0x00-0x02) or a failure per filter. In 3.x every failure is sent as
    /// 0x80.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

/// UNSUBACK: in MQTT 5 one reason code per filter; in 3.x only the packet identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 reason codes, one per filter; empty when decoded from 3.x.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

fn read_codes(
    buf: &mut Bytes,
    packet: PacketType,
    version: ProtocolVersion,
) -> Result<Vec<ReasonCode>, DecodeError> {
    let mut codes = Vec::with_capacity(buf.len());
    while !buf.is_empty() {
        let code = wire::read_u8(buf, "reason code")?;
        let reason = if version.is_v5() {
            ReasonCode::from_u8(code).filter(|rc| rc.allowed_in(packet))
        } else {
            match code {
                0x00..=0x02 | 0x80 => ReasonCode::from_u8(code),
                _ => None,
            }
        };
        codes.push(reason.ok_or(DecodeError::InvalidReasonCode { packet, code })?);
    }
    if codes.is_empty() {
        return Err(DecodeError::NoReasonCodes(packet));
    }
    Ok(codes)
}

impl SubAck {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(buf, PacketType::SubAck)?;
        let mut properties = AckProperties::default();
        if version.is_v5() {
            property::read_properties(buf, |p| properties.apply(p, "SUBACK"))?;
        }
        let reason_codes = read_codes(buf, PacketType::SubAck, version)?;
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn encode<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        s.put_u16(self.packet_id.get());
        if version.is_v5() {
            property::put_properties(s, &self.properties)?;
        }
        for &code in &self.reason_codes {
            let byte = if version.is_v5() || !code.is_error() {
                code as u8
            } else {
                0x80
            };
            s.put_u8(byte);
        }
        Ok(())
    }
}

impl UnsubAck {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(buf, PacketType::UnsubAck)?;
        let mut properties = AckProperties::default();
        let mut reason_codes = Vec::new();
        if version.is_v5() {
            property::read_properties(buf, |p| properties.apply(p, "UNSUBACK"))?;
            reason_codes = read_codes(buf, PacketType::UnsubAck, version)?;
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn encode<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        s.put_u16(self.packet_id.get());
        if version.is_v5() {
            property::put_properties(s, &self.properties)?;
            for &code in &self.reason_codes {
                s.put_u8(code as u8);
            }
        }
        Ok(())
    }
}
