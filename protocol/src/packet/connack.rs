//! CONNACK (§3.2).

use bytes::Bytes;

use super::{PacketType, ProtocolVersion};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, ConnAckProperties};
use crate::reason::ReasonCode;
use crate::wire::{self, Sink};

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (always `false` with 3.1).
    pub session_present: bool,
    /// Success or why the connection is refused. For 3.x this is the reason code
    /// matching the return code ([`ReasonCode::to_v3_connack`]).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties, boxed: the set is large (about 250 bytes) and inline it
    /// would make every [`Packet`](super::Packet) and client event that size.
    pub properties: Box<ConnAckProperties>,
}

impl ConnAck {
    /// A CONNACK with `reason_code`, no session and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason_code,
            properties: Box::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = wire::read_u8(buf, "connect acknowledge flags")?;
        if flags & 0xFE != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        // MQTT 3.1 has no Session Present flag: its first byte is reserved and unused.
        let session_present = flags & 0x01 != 0 && version != ProtocolVersion::V3_1;
        let code = wire::read_u8(buf, "connect reason code")?;
        let mut properties = Box::<ConnAckProperties>::default();
        let reason_code = if version.is_v5() {
            let reason_code = ReasonCode::from_u8(code)
                .filter(|rc| rc.allowed_in(PacketType::ConnAck))
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::ConnAck,
                    code,
                })?;
            property::read_properties(buf, |p| properties.apply(p))?;
            reason_code
        } else {
            ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidConnectReturnCode(code))?
        };
        if session_present && reason_code.is_error() {
            return Err(DecodeError::SessionPresentOnError);
        }
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn encode<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        let session_present = self.session_present && !self.reason_code.is_error();
        s.put_u8(u8::from(
            session_present && version != ProtocolVersion::V3_1,
        ));
        if version.is_v5() {
            s.put_u8(self.reason_code as u8);
            property::put_properties(s, &*self.properties)
        } else {
            s.put_u8(self.reason_code.to_v3_connack());
            Ok(())
        }
    }
}
