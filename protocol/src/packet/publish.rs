//! PUBLISH (§3.3).

use bytes::{Buf, Bytes};
use bytestring::ByteString;

use super::{PacketId, PacketType, ProtocolVersion, QoS, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, PublishProperties, PublishProps};
use crate::topic;
use crate::wire::{self, Sink};

/// PUBLISH: an application message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Set when this is a re-delivery of a QoS 1 or 2 message [MQTT-3.3.1-1].
    pub dup: bool,
    /// The QoS of this delivery.
    pub qos: QoS,
    /// Retain flag: store as the topic's retained message (client to server), or this
    /// is a retained message (server to client).
    pub retain: bool,
    /// Topic Name. May be empty only in MQTT 5 with a Topic Alias set; the session
    /// layer resolves aliases.
    pub topic: ByteString,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// Application payload, shared with the receive buffer (no copy).
    pub payload: Bytes,
    /// MQTT 5 properties, on the heap only when there are any.
    pub properties: PublishProps,
}

/// Checks the PUBLISH fixed header flags: no QoS 3 [MQTT-3.3.1-4], no DUP at
/// QoS 0 [MQTT-3.3.1-2].
pub(super) fn check_flags(flags: u8) -> Result<(), DecodeError> {
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err(DecodeError::InvalidQoS);
    }
    if qos == 0 && flags & 0x08 != 0 {
        return Err(DecodeError::DupOnQoS0);
    }
    Ok(())
}

impl Publish {
    /// A QoS 0, not retained PUBLISH without properties.
    pub fn new(topic: impl Into<ByteString>, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: payload.into(),
            properties: PublishProps::new(),
        }
    }

    pub(super) fn flags(&self) -> u8 {
        u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain)
    }

    #[inline(always)]
    pub(crate) fn decode(
        flags: u8,
        buf: &mut Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        // `check_flags` has run on the first byte already.
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQoS)?;
        // One pass finds what needs a closer look, U+0000 and wildcards; without them
        // only UTF-8 validity and emptiness are left to check. With them, the checks run
        // in the usual order, so the error is the same.
        let raw = wire::read_binary(buf, "topic name")?;
        let plain = !topic::has_nul_or_wildcard(&raw);
        let topic = if plain {
            ByteString::try_from(raw)
                .map_err(|_| DecodeError::InvalidUtf8 { what: "topic name" })?
        } else {
            wire::string_from(raw, "topic name")?
        };
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(read_packet_id(buf, PacketType::Publish)?),
        };
        // Most PUBLISHes carry no property: then nothing is allocated.
        let mut properties = PublishProps::new();
        if version.is_v5() {
            if buf.first() == Some(&0) {
                buf.advance(1);
            } else {
                let mut set = PublishProperties::default();
                property::read_properties(buf, |p| set.apply(p))?;
                properties = set.into();
            }
        }
        if topic.is_empty() && version.is_v5() {
            if properties.topic_alias.is_none() {
                return Err(DecodeError::EmptyTopicWithoutAlias);
            }
        } else if !plain || topic.is_empty() {
            topic::validate_topic_name(&topic)?;
        }
        // The payload is the rest: taking it whole costs no reference count.
        let payload = std::mem::take(buf);
        Ok(Self {
            dup: flags & 0x08 != 0,
            qos,
            retain: flags & 0x01 != 0,
            topic,
            packet_id,
            payload,
            properties,
        })
    }

    pub(crate) fn encode<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        wire::put_binary(s, self.topic.as_bytes(), "topic name")?;
        if self.qos != QoS::AtMostOnce {
            let id = self.packet_id.ok_or(EncodeError::MissingPacketId)?;
            s.put_u16(id.get());
        }
        if version.is_v5() {
            if self.properties.is_empty() {
                s.put_u8(0);
            } else {
                property::put_properties(s, &*self.properties)?;
            }
        }
        s.put_slice(&self.payload);
        Ok(())
    }
}
