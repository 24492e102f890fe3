//! MQTT 5 properties (§2.2.2): one struct per packet's set of properties, read and
//! written by one table-driven reader and a handful of writers.
//!
//! The reader checks what the spec requires of every property list: a known identifier,
//! a value of the right type and range, no duplicate of a property that may appear once,
//! and no property the packet does not allow. Each `*Properties` struct decides the last
//! one in its `apply`, so what a packet may carry is written in exactly one place.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Buf, Bytes};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::packet::QoS;
use crate::topic;
use crate::wire::{self, Counter, Sink};

/// Property identifiers (§2.2.2.2).
pub(crate) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// User Properties (0x26): name/value pairs, kept in order [MQTT-3.3.2-18].
pub type UserProperties = Vec<(ByteString, ByteString)>;

/// One property as read off the wire, its value already checked for range. Variants are
/// named after the spec's property names.
#[derive(Debug)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Property {
    PayloadFormatIndicator(bool),
    MessageExpiryInterval(u32),
    ContentType(ByteString),
    ResponseTopic(ByteString),
    CorrelationData(Bytes),
    SubscriptionIdentifier(NonZeroU32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(ByteString),
    ServerKeepAlive(u16),
    AuthenticationMethod(ByteString),
    AuthenticationData(Bytes),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(ByteString),
    ServerReference(ByteString),
    ReasonString(ByteString),
    ReceiveMaximum(NonZeroU16),
    TopicAliasMaximum(u16),
    TopicAlias(NonZeroU16),
    MaximumQoS(QoS),
    RetainAvailable(bool),
    UserProperty(ByteString, ByteString),
    MaximumPacketSize(NonZeroU32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property {
    fn id(&self) -> u8 {
        match self {
            Self::PayloadFormatIndicator(_) => id::PAYLOAD_FORMAT_INDICATOR,
            Self::MessageExpiryInterval(_) => id::MESSAGE_EXPIRY_INTERVAL,
            Self::ContentType(_) => id::CONTENT_TYPE,
            Self::ResponseTopic(_) => id::RESPONSE_TOPIC,
            Self::CorrelationData(_) => id::CORRELATION_DATA,
            Self::SubscriptionIdentifier(_) => id::SUBSCRIPTION_IDENTIFIER,
            Self::SessionExpiryInterval(_) => id::SESSION_EXPIRY_INTERVAL,
            Self::AssignedClientIdentifier(_) => id::ASSIGNED_CLIENT_IDENTIFIER,
            Self::ServerKeepAlive(_) => id::SERVER_KEEP_ALIVE,
            Self::AuthenticationMethod(_) => id::AUTHENTICATION_METHOD,
            Self::AuthenticationData(_) => id::AUTHENTICATION_DATA,
            Self::RequestProblemInformation(_) => id::REQUEST_PROBLEM_INFORMATION,
            Self::WillDelayInterval(_) => id::WILL_DELAY_INTERVAL,
            Self::RequestResponseInformation(_) => id::REQUEST_RESPONSE_INFORMATION,
            Self::ResponseInformation(_) => id::RESPONSE_INFORMATION,
            Self::ServerReference(_) => id::SERVER_REFERENCE,
            Self::ReasonString(_) => id::REASON_STRING,
            Self::ReceiveMaximum(_) => id::RECEIVE_MAXIMUM,
            Self::TopicAliasMaximum(_) => id::TOPIC_ALIAS_MAXIMUM,
            Self::TopicAlias(_) => id::TOPIC_ALIAS,
            Self::MaximumQoS(_) => id::MAXIMUM_QOS,
            Self::RetainAvailable(_) => id::RETAIN_AVAILABLE,
            Self::UserProperty(..) => id::USER_PROPERTY,
            Self::MaximumPacketSize(_) => id::MAXIMUM_PACKET_SIZE,
            Self::WildcardSubscriptionAvailable(_) => id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            Self::SubscriptionIdentifierAvailable(_) => id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            Self::SharedSubscriptionAvailable(_) => id::SHARED_SUBSCRIPTION_AVAILABLE,
        }
    }

    /// The error for a property that `context` does not allow.
    pub(crate) fn not_allowed(&self, context: &'static str) -> DecodeError {
        DecodeError::PropertyNotAllowed {
            property: self.id(),
            context,
        }
    }
}

fn read_flag(buf: &mut Bytes, property: u8) -> Result<bool, DecodeError> {
    match wire::read_u8(buf, "property value")? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::InvalidPropertyValue {
            property,
            value: value.into(),
        }),
    }
}

fn read_one(buf: &mut Bytes, property: u32) -> Result<Property, DecodeError> {
    const V: &str = "property value";
    let invalid = |value: u32| DecodeError::InvalidPropertyValue {
        property: property as u8,
        value,
    };
    let Ok(pid) = u8::try_from(property) else {
        return Err(DecodeError::UnknownProperty(property));
    };
    Ok(match pid {
        id::PAYLOAD_FORMAT_INDICATOR => Property::PayloadFormatIndicator(read_flag(buf, pid)?),
        id::MESSAGE_EXPIRY_INTERVAL => Property::MessageExpiryInterval(wire::read_u32(buf, V)?),
        id::CONTENT_TYPE => Property::ContentType(wire::read_string(buf, "content type")?),
        id::RESPONSE_TOPIC => {
            let topic = wire::read_string(buf, "response topic")?;
            topic::validate_topic_name(&topic)?;
            Property::ResponseTopic(topic)
        }
        id::CORRELATION_DATA => Property::CorrelationData(wire::read_binary(buf, V)?),
        id::SUBSCRIPTION_IDENTIFIER => {
            let value = wire::read_varint(buf, V)?;
            Property::SubscriptionIdentifier(NonZeroU32::new(value).ok_or(invalid(0))?)
        }
        id::SESSION_EXPIRY_INTERVAL => Property::SessionExpiryInterval(wire::read_u32(buf, V)?),
        id::ASSIGNED_CLIENT_IDENTIFIER => Property::AssignedClientIdentifier(wire::read_string(
            buf,
            "assigned client identifier",
        )?),
        id::SERVER_KEEP_ALIVE => Property::ServerKeepAlive(wire::read_u16(buf, V)?),
        id::AUTHENTICATION_METHOD => {
            Property::AuthenticationMethod(wire::read_string(buf, "authentication method")?)
        }
        id::AUTHENTICATION_DATA => Property::AuthenticationData(wire::read_binary(buf, V)?),
        id::REQUEST_PROBLEM_INFORMATION => {
            Property::RequestProblemInformation(read_flag(buf, pid)?)
        }
        id::WILL_DELAY_INTERVAL => Property::WillDelayInterval(wire::read_u32(buf, V)?),
        id::REQUEST_RESPONSE_INFORMATION => {
            Property::RequestResponseInformation(read_flag(buf, pid)?)
        }
        id::RESPONSE_INFORMATION => {
            Property::ResponseInformation(wire::read_string(buf, "response information")?)
        }
        id::SERVER_REFERENCE => {
            Property::ServerReference(wire::read_string(buf, "server reference")?)
        }
        id::REASON_STRING => Property::ReasonString(wire::read_string(buf, "reason string")?),
        id::RECEIVE_MAXIMUM => {
            let value = wire::read_u16(buf, V)?;
            Property::ReceiveMaximum(NonZeroU16::new(value).ok_or(invalid(0))?)
        }
        id::TOPIC_ALIAS_MAXIMUM => Property::TopicAliasMaximum(wire::read_u16(buf, V)?),
        id::TOPIC_ALIAS => {
            let value = wire::read_u16(buf, V)?;
            Property::TopicAlias(NonZeroU16::new(value).ok_or(DecodeError::TopicAliasZero)?)
        }
        id::MAXIMUM_QOS => match wire::read_u8(buf, V)? {
            0 => Property::MaximumQoS(QoS::AtMostOnce),
            1 => Property::MaximumQoS(QoS::AtLeastOnce),
            value => return Err(invalid(value.into())),
        },
        id::RETAIN_AVAILABLE => Property::RetainAvailable(read_flag(buf, pid)?),
        id::USER_PROPERTY => Property::UserProperty(
            wire::read_string(buf, "user property name")?,
            wire::read_string(buf, "user property value")?,
        ),
        id::MAXIMUM_PACKET_SIZE => {
            let value = wire::read_u32(buf, V)?;
            Property::MaximumPacketSize(NonZeroU32::new(value).ok_or(invalid(0))?)
        }
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
            Property::WildcardSubscriptionAvailable(read_flag(buf, pid)?)
        }
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            Property::SubscriptionIdentifierAvailable(read_flag(buf, pid)?)
        }
        id::SHARED_SUBSCRIPTION_AVAILABLE => {
            Property::SharedSubscriptionAvailable(read_flag(buf, pid)?)
        }
        _ => return Err(DecodeError::UnknownProperty(property)),
    })
}

/// Reads a property list (length, then properties) and hands each property to `apply`,
/// which rejects those its packet does not allow. Only User Property and Subscription
/// Identifier may repeat here; a packet that allows one Subscription Identifier checks
/// that itself.
///
/// Generic only as far as the empty-list check; the loop takes `apply` as a trait
/// object, so the nine property sets share one copy of it (the browser client's wasm
/// carries each monomorphised copy otherwise).
#[inline]
pub(crate) fn read_properties(
    buf: &mut Bytes,
    mut apply: impl FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    // Most packets carry none: a zero length byte.
    if buf.first() == Some(&0) {
        buf.advance(1);
        return Ok(());
    }
    read_property_list(buf, &mut apply)
}

fn read_property_list(
    buf: &mut Bytes,
    apply: &mut dyn FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = wire::read_varint(buf, "property length")? as usize;
    if buf.len() < len {
        return Err(DecodeError::Truncated { what: "properties" });
    }
    let mut list = buf.split_to(len);
    let mut seen = 0u64;
    while !list.is_empty() {
        let identifier = wire::read_varint(&mut list, "property identifier")?;
        let property = read_one(&mut list, identifier)?;
        let pid = property.id();
        if pid != id::USER_PROPERTY && pid != id::SUBSCRIPTION_IDENTIFIER {
            let bit = 1u64 << pid;
            if seen & bit != 0 {
                return Err(DecodeError::DuplicateProperty(pid));
            }
            seen |= bit;
        }
        apply(property)?;
    }
    Ok(())
}

/// A set of properties that can be written as a property list.
pub(crate) trait PropertyList {
    /// Writes the properties, without the length prefix.
    fn write<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError>;
}

/// Writes `list` with its Variable Byte Integer length prefix.
pub(crate) fn put_properties<S: Sink, P: PropertyList>(
    sink: &mut S,
    list: &P,
) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    list.write(&mut counter)?;
    let len = u32::try_from(counter.0)
        .ok()
        .filter(|&len| len <= wire::MAX_VARINT)
        .ok_or(EncodeError::PacketTooLarge(counter.0))?;
    sink.put_varint(len);
    list.write(sink)
}

fn put_u8_prop<S: Sink>(sink: &mut S, pid: u8, value: Option<u8>) {
    if let Some(value) = value {
        sink.put_u8(pid);
        sink.put_u8(value);
    }
}

fn put_flag<S: Sink>(sink: &mut S, pid: u8, value: Option<bool>) {
    put_u8_prop(sink, pid, value.map(u8::from));
}

fn put_u16_prop<S: Sink>(sink: &mut S, pid: u8, value: Option<u16>) {
    if let Some(value) = value {
        sink.put_u8(pid);
        sink.put_u16(value);
    }
}

fn put_u32_prop<S: Sink>(sink: &mut S, pid: u8, value: Option<u32>) {
    if let Some(value) = value {
        sink.put_u8(pid);
        sink.put_u32(value);
    }
}

fn put_bin_prop<S: Sink>(
    sink: &mut S,
    pid: u8,
    value: Option<&[u8]>,
    what: &'static str,
) -> Result<(), EncodeError> {
    if let Some(value) = value {
        sink.put_u8(pid);
        wire::put_binary(sink, value, what)?;
    }
    Ok(())
}

fn put_str_prop<S: Sink>(
    sink: &mut S,
    pid: u8,
    value: &Option<ByteString>,
    what: &'static str,
) -> Result<(), EncodeError> {
    put_bin_prop(
        sink,
        pid,
        value.as_ref().map(|s| s.as_bytes().as_ref()),
        what,
    )
}

fn put_user_properties<S: Sink>(sink: &mut S, list: &UserProperties) -> Result<(), EncodeError> {
    for (name, value) in list {
        sink.put_u8(id::USER_PROPERTY);
        wire::put_binary(sink, name.as_bytes(), "user property name")?;
        wire::put_binary(sink, value.as_bytes(), "user property value")?;
    }
    Ok(())
}

fn put_subscription_id<S: Sink>(sink: &mut S, value: NonZeroU32) -> Result<(), EncodeError> {
    if value.get() > wire::MAX_VARINT {
        return Err(EncodeError::InvalidPropertyValue {
            property: id::SUBSCRIPTION_IDENTIFIER,
            value: value.get(),
        });
    }
    sink.put_u8(id::SUBSCRIPTION_IDENTIFIER);
    sink.put_varint(value.get());
    Ok(())
}

mod publish_props;
mod sets;

pub use publish_props::PublishProps;
pub use sets::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
