//! AUTH (§3.15), MQTT 5 only.

use bytes::Bytes;

use super::PacketType;
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, AuthProperties};
use crate::reason::ReasonCode;
use crate::wire::{self, Sink};

/// AUTH: a step of enhanced authentication (§4.12).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Method and data of the exchange, boxed so that a rare packet does not make every
    /// [`Packet`](super::Packet) and session event larger.
    pub properties: Box<AuthProperties>,
}

impl Auth {
    pub(crate) fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let mut auth = Self::default();
        // §3.15.2.1: no reason code means success.
        if !buf.is_empty() {
            let code = wire::read_u8(buf, "reason code")?;
            auth.reason_code = ReasonCode::from_u8(code)
                .filter(|rc| rc.allowed_in(PacketType::Auth))
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::Auth,
                    code,
                })?;
            if !buf.is_empty() {
                property::read_properties(buf, |p| auth.properties.apply(p))?;
            }
        }
        Ok(auth)
    }

    pub(crate) fn encode<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let bare = self.properties.is_empty();
        if self.reason_code != ReasonCode::Success || !bare {
            s.put_u8(self.reason_code as u8);
        }
        if !bare {
            property::put_properties(s, &*self.properties)?;
        }
        Ok(())
    }
}
