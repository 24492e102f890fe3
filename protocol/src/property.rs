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
pub(crate) fn read_properties(
    buf: &mut Bytes,
    mut apply: impl FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    // Most packets carry none: a zero length byte.
    if buf.first() == Some(&0) {
        buf.advance(1);
        return Ok(());
    }
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

/// Properties of CONNECT (§3.1.2.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Seconds the session outlives the connection; absent means 0.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 PUBLISHes the client accepts in flight; absent means 65,535.
    pub receive_maximum: Option<NonZeroU16>,
    /// The largest packet the client accepts; absent means no limit.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// The highest topic alias the client accepts; absent means 0 (none).
    pub topic_alias_maximum: Option<u16>,
    /// Whether the client wants Response Information in CONNACK.
    pub request_response_information: Option<bool>,
    /// Whether the server may send reason strings and user properties on failures.
    pub request_problem_information: Option<bool>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Enhanced authentication method.
    pub authentication_method: Option<ByteString>,
    /// Enhanced authentication data.
    pub authentication_data: Option<Bytes>,
}

impl ConnectProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::SessionExpiryInterval(v) => self.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => self.receive_maximum = Some(v),
            Property::MaximumPacketSize(v) => self.maximum_packet_size = Some(v),
            Property::TopicAliasMaximum(v) => self.topic_alias_maximum = Some(v),
            Property::RequestResponseInformation(v) => self.request_response_information = Some(v),
            Property::RequestProblemInformation(v) => self.request_problem_information = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            Property::AuthenticationMethod(v) => self.authentication_method = Some(v),
            Property::AuthenticationData(v) => self.authentication_data = Some(v),
            other => return Err(other.not_allowed("CONNECT")),
        }
        Ok(())
    }
}

impl PropertyList for ConnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16_prop(
            s,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(NonZeroU16::get),
        );
        put_u32_prop(
            s,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(NonZeroU32::get),
        );
        put_u16_prop(s, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_flag(
            s,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        put_flag(
            s,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        put_user_properties(s, &self.user_properties)?;
        put_str_prop(
            s,
            id::AUTHENTICATION_METHOD,
            &self.authentication_method,
            "authentication method",
        )?;
        put_bin_prop(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
            "authentication data",
        )
    }
}

/// Will properties, in the CONNECT payload (§3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Seconds the server waits after the connection ends before publishing the will.
    pub will_delay_interval: Option<u32>,
    /// `true`: the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// Lifetime of the will message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// MIME type of the payload.
    pub content_type: Option<ByteString>,
    /// Topic for a response (request/response, §4.10).
    pub response_topic: Option<ByteString>,
    /// Correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl WillProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::WillDelayInterval(v) => self.will_delay_interval = Some(v),
            Property::PayloadFormatIndicator(v) => self.payload_format_indicator = Some(v),
            Property::MessageExpiryInterval(v) => self.message_expiry_interval = Some(v),
            Property::ContentType(v) => self.content_type = Some(v),
            Property::ResponseTopic(v) => self.response_topic = Some(v),
            Property::CorrelationData(v) => self.correlation_data = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            other => return Err(other.not_allowed("will properties")),
        }
        Ok(())
    }
}

impl PropertyList for WillProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_flag(
            s,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        put_u32_prop(s, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_str_prop(s, id::CONTENT_TYPE, &self.content_type, "content type")?;
        put_str_prop(
            s,
            id::RESPONSE_TOPIC,
            &self.response_topic,
            "response topic",
        )?;
        put_bin_prop(
            s,
            id::CORRELATION_DATA,
            self.correlation_data.as_deref(),
            "correlation data",
        )?;
        put_user_properties(s, &self.user_properties)
    }
}

/// Properties of CONNACK (§3.2.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// The session expiry the server uses, if it differs from the client's.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 PUBLISHes the server accepts in flight; absent: 65,535.
    pub receive_maximum: Option<NonZeroU16>,
    /// The highest QoS the server supports; absent: 2.
    pub maximum_qos: Option<QoS>,
    /// Whether the server supports retained messages; absent: yes.
    pub retain_available: Option<bool>,
    /// The largest packet the server accepts; absent: no limit.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// The client identifier the server assigned to an empty one.
    pub assigned_client_identifier: Option<ByteString>,
    /// The highest topic alias the server accepts; absent: 0.
    pub topic_alias_maximum: Option<u16>,
    /// Human-readable diagnostics.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Whether wildcard subscriptions are supported; absent: yes.
    pub wildcard_subscription_available: Option<bool>,
    /// Whether subscription identifiers are supported; absent: yes.
    pub subscription_identifiers_available: Option<bool>,
    /// Whether shared subscriptions are supported; absent: yes.
    pub shared_subscription_available: Option<bool>,
    /// The keep alive the client must use instead of its own.
    pub server_keep_alive: Option<u16>,
    /// Basis for response topics (§4.10).
    pub response_information: Option<ByteString>,
    /// Another server to use (§4.11).
    pub server_reference: Option<ByteString>,
    /// Enhanced authentication method.
    pub authentication_method: Option<ByteString>,
    /// Enhanced authentication data.
    pub authentication_data: Option<Bytes>,
}

impl ConnAckProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::SessionExpiryInterval(v) => self.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => self.receive_maximum = Some(v),
            Property::MaximumQoS(v) => self.maximum_qos = Some(v),
            Property::RetainAvailable(v) => self.retain_available = Some(v),
            Property::MaximumPacketSize(v) => self.maximum_packet_size = Some(v),
            Property::AssignedClientIdentifier(v) => self.assigned_client_identifier = Some(v),
            Property::TopicAliasMaximum(v) => self.topic_alias_maximum = Some(v),
            Property::ReasonString(v) => self.reason_string = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            Property::WildcardSubscriptionAvailable(v) => {
                self.wildcard_subscription_available = Some(v)
            }
            Property::SubscriptionIdentifierAvailable(v) => {
                self.subscription_identifiers_available = Some(v)
            }
            Property::SharedSubscriptionAvailable(v) => {
                self.shared_subscription_available = Some(v)
            }
            Property::ServerKeepAlive(v) => self.server_keep_alive = Some(v),
            Property::ResponseInformation(v) => self.response_information = Some(v),
            Property::ServerReference(v) => self.server_reference = Some(v),
            Property::AuthenticationMethod(v) => self.authentication_method = Some(v),
            Property::AuthenticationData(v) => self.authentication_data = Some(v),
            other => return Err(other.not_allowed("CONNACK")),
        }
        Ok(())
    }
}

impl PropertyList for ConnAckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16_prop(
            s,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(NonZeroU16::get),
        );
        put_u8_prop(s, id::MAXIMUM_QOS, self.maximum_qos.map(|q| q as u8));
        put_flag(s, id::RETAIN_AVAILABLE, self.retain_available);
        put_u32_prop(
            s,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(NonZeroU32::get),
        );
        put_str_prop(
            s,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
            "assigned client identifier",
        )?;
        put_u16_prop(s, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_str_prop(s, id::REASON_STRING, &self.reason_string, "reason string")?;
        put_user_properties(s, &self.user_properties)?;
        put_flag(
            s,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        put_flag(
            s,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        put_flag(
            s,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        put_u16_prop(s, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_str_prop(
            s,
            id::RESPONSE_INFORMATION,
            &self.response_information,
            "response information",
        )?;
        put_str_prop(
            s,
            id::SERVER_REFERENCE,
            &self.server_reference,
            "server reference",
        )?;
        put_str_prop(
            s,
            id::AUTHENTICATION_METHOD,
            &self.authentication_method,
            "authentication method",
        )?;
        put_bin_prop(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
            "authentication data",
        )
    }
}

/// Properties of PUBLISH (§3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// `true`: the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// Seconds the message stays deliverable; forwarded reduced by the time it waited.
    pub message_expiry_interval: Option<u32>,
    /// Stands for the topic name on this connection (§3.3.2.3.4).
    pub topic_alias: Option<NonZeroU16>,
    /// Topic for a response (§4.10).
    pub response_topic: Option<ByteString>,
    /// Correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// User properties, forwarded unchanged and in order.
    pub user_properties: UserProperties,
    /// The identifiers of the subscriptions that matched (server to client only).
    pub subscription_identifiers: Vec<NonZeroU32>,
    /// MIME type of the payload.
    pub content_type: Option<ByteString>,
}

impl PublishProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::PayloadFormatIndicator(v) => self.payload_format_indicator = Some(v),
            Property::MessageExpiryInterval(v) => self.message_expiry_interval = Some(v),
            Property::TopicAlias(v) => self.topic_alias = Some(v),
            Property::ResponseTopic(v) => self.response_topic = Some(v),
            Property::CorrelationData(v) => self.correlation_data = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            Property::SubscriptionIdentifier(v) => self.subscription_identifiers.push(v),
            Property::ContentType(v) => self.content_type = Some(v),
            other => return Err(other.not_allowed("PUBLISH")),
        }
        Ok(())
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

impl PropertyList for PublishProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_flag(
            s,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        put_u32_prop(s, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_u16_prop(s, id::TOPIC_ALIAS, self.topic_alias.map(NonZeroU16::get));
        put_str_prop(
            s,
            id::RESPONSE_TOPIC,
            &self.response_topic,
            "response topic",
        )?;
        put_bin_prop(
            s,
            id::CORRELATION_DATA,
            self.correlation_data.as_deref(),
            "correlation data",
        )?;
        put_user_properties(s, &self.user_properties)?;
        for &sid in &self.subscription_identifiers {
            put_subscription_id(s, sid)?;
        }
        put_str_prop(s, id::CONTENT_TYPE, &self.content_type, "content type")
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: a reason string
/// and user properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Human-readable diagnostics.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl AckProperties {
    pub(crate) fn apply(
        &mut self,
        property: Property,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        match property {
            Property::ReasonString(v) => self.reason_string = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            other => return Err(other.not_allowed(context)),
        }
        Ok(())
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

impl PropertyList for AckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_str_prop(s, id::REASON_STRING, &self.reason_string, "reason string")?;
        put_user_properties(s, &self.user_properties)
    }
}

/// Properties of SUBSCRIBE (§3.8.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// Identifier echoed in every PUBLISH this subscription delivers.
    pub subscription_identifier: Option<NonZeroU32>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl SubscribeProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::SubscriptionIdentifier(v) => {
                if self.subscription_identifier.replace(v).is_some() {
                    return Err(DecodeError::DuplicateProperty(id::SUBSCRIPTION_IDENTIFIER));
                }
            }
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            other => return Err(other.not_allowed("SUBSCRIBE")),
        }
        Ok(())
    }
}

impl PropertyList for SubscribeProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(sid) = self.subscription_identifier {
            put_subscription_id(s, sid)?;
        }
        put_user_properties(s, &self.user_properties)
    }
}

/// Properties of UNSUBSCRIBE (§3.10.2.1): user properties only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// User properties.
    pub user_properties: UserProperties,
}

impl UnsubscribeProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            other => return Err(other.not_allowed("UNSUBSCRIBE")),
        }
        Ok(())
    }
}

impl PropertyList for UnsubscribeProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_user_properties(s, &self.user_properties)
    }
}

/// Properties of DISCONNECT (§3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// A new session expiry (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// Human-readable diagnostics.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Another server to use (§4.11).
    pub server_reference: Option<ByteString>,
}

impl DisconnectProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::SessionExpiryInterval(v) => self.session_expiry_interval = Some(v),
            Property::ReasonString(v) => self.reason_string = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            Property::ServerReference(v) => self.server_reference = Some(v),
            other => return Err(other.not_allowed("DISCONNECT")),
        }
        Ok(())
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.session_expiry_interval.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.server_reference.is_none()
    }
}

impl PropertyList for DisconnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_str_prop(s, id::REASON_STRING, &self.reason_string, "reason string")?;
        put_user_properties(s, &self.user_properties)?;
        put_str_prop(
            s,
            id::SERVER_REFERENCE,
            &self.server_reference,
            "server reference",
        )
    }
}

/// Properties of AUTH (§3.15.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Enhanced authentication method.
    pub authentication_method: Option<ByteString>,
    /// Enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// Human-readable diagnostics.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl AuthProperties {
    pub(crate) fn apply(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::AuthenticationMethod(v) => self.authentication_method = Some(v),
            Property::AuthenticationData(v) => self.authentication_data = Some(v),
            Property::ReasonString(v) => self.reason_string = Some(v),
            Property::UserProperty(k, v) => self.user_properties.push((k, v)),
            other => return Err(other.not_allowed("AUTH")),
        }
        Ok(())
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.authentication_method.is_none()
            && self.authentication_data.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
    }
}

impl PropertyList for AuthProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_str_prop(
            s,
            id::AUTHENTICATION_METHOD,
            &self.authentication_method,
            "authentication method",
        )?;
        put_bin_prop(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
            "authentication data",
        )?;
        put_str_prop(s, id::REASON_STRING, &self.reason_string, "reason string")?;
        put_user_properties(s, &self.user_properties)
    }
}
