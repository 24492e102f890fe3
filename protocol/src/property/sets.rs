//! The property sets, one struct per packet (and one for wills): which properties each
//! may carry is decided by its `apply`, how they are written by its `PropertyList`.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use super::{
    Property, PropertyList, UserProperties, id, put_bin_prop, put_flag, put_str_prop,
    put_subscription_id, put_u8_prop, put_u16_prop, put_u32_prop, put_user_properties,
};
use crate::error::{DecodeError, EncodeError};
use crate::packet::QoS;
use crate::wire::Sink;

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
    /// No property set; `const`, so an empty set can live in a `static`.
    pub const EMPTY: Self = Self {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
        subscription_identifiers: Vec::new(),
        content_type: None,
    };

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
