//! UNSUBSCRIBE (§3.10).

use bytes::Bytes;

use super::{PacketId, PacketType, ProtocolVersion, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, UnsubscribeProperties};
use crate::topic::TopicFilter;
use crate::wire::{self, Sink};

/// UNSUBSCRIBE: removes subscriptions by their exact filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// The filters, never empty [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(buf, PacketType::Unsubscribe)?;
        let mut properties = UnsubscribeProperties::default();
        if version.is_v5() {
            property::read_properties(buf, |p| properties.apply(p))?;
        }
        let mut filters = Vec::new();
        while !buf.is_empty() {
            filters.push(TopicFilter::new(wire::read_string(buf, "topic filter")?)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe);
        }
        Ok(Self {
            packet_id,
            filters,
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
        for filter in &self.filters {
            wire::put_binary(s, filter.as_bytes(), "topic filter")?;
        }
        Ok(())
    }
}
