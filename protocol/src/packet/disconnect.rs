//! DISCONNECT (§3.14).

use bytes::Bytes;

use super::{PacketType, ProtocolVersion};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, DisconnectProperties};
use crate::reason::ReasonCode;
use crate::wire::{self, Sink};

/// DISCONNECT: the last packet of a connection. In 3.x only a client sends it and it
/// carries nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Why (MQTT 5); [`ReasonCode::NORMAL_DISCONNECTION`] in 3.x.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties, boxed so that a rare packet does not make every
    /// [`Packet`](super::Packet) and session event larger.
    pub properties: Box<DisconnectProperties>,
}

impl Disconnect {
    /// A DISCONNECT with `reason_code` and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: Box::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut disconnect = Self::default();
        // §3.14.2.1: no reason code means normal disconnection.
        if version.is_v5() && !buf.is_empty() {
            let code = wire::read_u8(buf, "reason code")?;
            disconnect.reason_code = ReasonCode::from_u8(code)
                .filter(|rc| rc.allowed_in(PacketType::Disconnect))
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::Disconnect,
                    code,
                })?;
            if !buf.is_empty() {
                property::read_properties(buf, |p| disconnect.properties.apply(p))?;
            }
        }
        Ok(disconnect)
    }

    pub(crate) fn encode<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        if version.is_v5() {
            let bare = self.properties.is_empty();
            if self.reason_code != ReasonCode::Success || !bare {
                s.put_u8(self.reason_code as u8);
            }
            if !bare {
                property::put_properties(s, &*self.properties)?;
            }
        }
        Ok(())
    }
}
