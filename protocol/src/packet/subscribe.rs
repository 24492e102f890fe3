//! SUBSCRIBE (§3.8).

use bytes::Bytes;

use super::{PacketId, PacketType, ProtocolVersion, QoS, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, SubscribeProperties};
use crate::topic::TopicFilter;
use crate::wire::{self, Sink};

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier, echoed by SUBACK.
    pub packet_id: PacketId,
    /// The filters, never empty [MQTT-3.8.3-2].
    pub subscriptions: Vec<Subscription>,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
}

/// One topic filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The filter.
    pub filter: TopicFilter,
    /// How to deliver what matches it.
    pub options: SubscriptionOptions,
}

/// Subscription Options (§3.8.3.1). In 3.x only `qos` exists; the rest keep their
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS for deliveries.
    pub qos: QoS,
    /// Do not deliver this client's own publications back to it.
    pub no_local: bool,
    /// Keep the retain flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

/// Retain Handling (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages on every subscribe.
    #[default]
    SendOnSubscribe = 0,
    /// 1: only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: never.
    DoNotSend = 2,
}

impl SubscriptionOptions {
    /// Options with `qos` and every MQTT 5 option at its default.
    pub fn new(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::SubscriptionQoS)?;
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(Self {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version.is_v5() {
            byte |= u8::from(self.no_local) << 2
                | u8::from(self.retain_as_published) << 3
                | (self.retain_handling as u8) << 4;
        }
        byte
    }
}

impl Subscribe {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(buf, PacketType::Subscribe)?;
        let mut properties = SubscribeProperties::default();
        if version.is_v5() {
            property::read_properties(buf, |p| properties.apply(p))?;
        }
        let mut subscriptions = Vec::new();
        while !buf.is_empty() {
            let filter = TopicFilter::new(wire::read_string(buf, "topic filter")?)?;
            let options =
                SubscriptionOptions::decode(wire::read_u8(buf, "subscription options")?, version)?;
            if options.no_local && filter.is_shared() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::EmptySubscribe);
        }
        Ok(Self {
            packet_id,
            subscriptions,
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
        for subscription in &self.subscriptions {
            wire::put_binary(s, subscription.filter.as_bytes(), "topic filter")?;
            s.put_u8(subscription.options.encode(version));
        }
        Ok(())
    }
}
