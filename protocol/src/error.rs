//! Codec errors. Every [`DecodeError`] names the normative statement (or section) of the
//! spec that the input breaks, and maps with [`DecodeError::reason_code`] to the MQTT 5
//! reason code to send before closing the connection (§4.13).

use crate::packet::PacketType;
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// Why bytes from a peer are not a valid MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Packet type 0, or 15 (AUTH) before MQTT 5.
    #[error("[MQTT-2.1.2] reserved or unknown packet type {0}")]
    InvalidPacketType(u8),
    /// The low nibble of the fixed header is not what the packet type requires.
    #[error("[MQTT-2.1.3-1] invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A PUBLISH with both QoS bits set.
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    InvalidQoS,
    /// A QoS 0 PUBLISH with DUP set.
    #[error("[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    /// A Variable Byte Integer longer than four bytes, or longer than its value needs.
    #[error("[MQTT-1.5.5-1] variable byte integer longer than 4 bytes or not minimally encoded")]
    MalformedVariableByteInteger,
    /// The packet is larger than the receiver's Maximum Packet Size. Detected from the
    /// fixed header, before the body is buffered.
    #[error("[MQTT-3.1.2-24] packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// The Remaining Length ends inside a field.
    #[error("[MQTT-2.1.4] malformed packet: remaining length ends inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes left over after the last field of a packet.
    #[error("[MQTT-2.1.4] malformed packet: {extra} unexpected bytes at the end of {packet}")]
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
        /// How many bytes were left.
        extra: usize,
    },
    /// A string that is not well-formed UTF-8 (this includes encoded surrogates).
    #[error("[MQTT-1.5.4-1] {what} is not well-formed UTF-8")]
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// A string containing U+0000.
    #[error("[MQTT-1.5.4-2] {what} contains the null character U+0000")]
    NullCharacter {
        /// The field.
        what: &'static str,
    },
    /// CONNECT with a protocol name other than `MQTT` (or `MQIsdp` at level 3).
    #[error("[MQTT-3.1.2-1] unsupported protocol name {0:?}")]
    InvalidProtocolName(String),
    /// CONNECT with a protocol level other than 3, 4 or 5.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT with the reserved flag set.
    #[error("[MQTT-3.1.2-3] reserved CONNECT flag is set")]
    ConnectReservedFlag,
    /// Will QoS non-zero without a will.
    #[error("[MQTT-3.1.2-11] will QoS is set but the will flag is not")]
    WillQoSWithoutWill,
    /// Will QoS 3.
    #[error("[MQTT-3.1.2-12] will QoS 3")]
    InvalidWillQoS,
    /// Will Retain set without a will.
    #[error("[MQTT-3.1.2-13] will retain is set but the will flag is not")]
    WillRetainWithoutWill,
    /// MQTT 3.1.1: a password without a user name.
    #[error("[MQTT-3.1.2-22] password flag set without the user name flag")]
    PasswordWithoutUsername,
    /// CONNACK with reserved acknowledge flags set.
    #[error("[MQTT-3.2.2-1] reserved CONNACK flags are set")]
    ConnAckReservedFlags,
    /// CONNACK refusing the connection but claiming a session is present.
    #[error("[MQTT-3.2.2-6] CONNACK with an error reason code has session present set")]
    SessionPresentOnError,
    /// MQTT 3.x CONNACK return code above 5.
    #[error("[MQTT-3.2.2.3] reserved CONNACK return code {0}")]
    InvalidConnectReturnCode(u8),
    /// A reason code that the spec does not list for this packet.
    #[error("[MQTT-2.4] reason code {code:#04x} is not allowed in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The byte received.
        code: u8,
    },
    /// Packet Identifier 0 where one is required.
    #[error("[MQTT-2.2.1-3] {0} with packet identifier 0")]
    PacketIdZero(PacketType),
    /// An invalid topic name or topic filter.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// MQTT 5 PUBLISH with an empty topic and no Topic Alias.
    #[error("[MQTT-3.3.2.3.4] PUBLISH with an empty topic name and no topic alias")]
    EmptyTopicWithoutAlias,
    /// Topic Alias 0.
    #[error("[MQTT-3.3.2-8] topic alias 0")]
    TopicAliasZero,
    /// SUBSCRIBE without any topic filter.
    #[error("[MQTT-3.8.3-2] SUBSCRIBE without any topic filter")]
    EmptySubscribe,
    /// UNSUBSCRIBE without any topic filter.
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE without any topic filter")]
    EmptyUnsubscribe,
    /// Reserved bits of the subscription options byte are set.
    #[error("[MQTT-3.8.3-5] reserved bits of subscription options are set")]
    SubscriptionOptionsReserved,
    /// Requested QoS 3 in SUBSCRIBE.
    #[error("[MQTT-3.8.3-5] subscription requests QoS 3")]
    SubscriptionQoS,
    /// Retain Handling 3.
    #[error("[MQTT-3.8.3.1] retain handling 3")]
    InvalidRetainHandling,
    /// No Local on a shared subscription.
    #[error("[MQTT-3.8.3-4] no local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// SUBACK / UNSUBACK without any return code (MQTT 5, and SUBACK in 3.x).
    #[error("[MQTT-3.9.3] {0} without any reason code")]
    NoReasonCodes(PacketType),
    /// A property identifier the spec does not define.
    #[error("[MQTT-2.2.2.2] unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that is not allowed in this packet.
    #[error("[MQTT-2.2.2.2] property {property:#04x} is not allowed in {context}")]
    PropertyNotAllowed {
        /// Its identifier.
        property: u8,
        /// The packet (or will properties).
        context: &'static str,
    },
    /// A property given twice where it may appear once.
    #[error("[MQTT-2.2.2.2] property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property value out of its allowed range (e.g. Receive Maximum 0).
    #[error("[MQTT-2.2.2.2] property {property:#04x} has the invalid value {value}")]
    InvalidPropertyValue {
        /// Its identifier.
        property: u8,
        /// The value received.
        value: u32,
    },
}

impl DecodeError {
    /// The MQTT 5 reason code to send (in CONNACK before the session is established,
    /// DISCONNECT after) before closing the connection.
    pub const fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::InvalidProtocolName(_) | Self::UnsupportedProtocolLevel(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::Topic(err) => err.reason_code(),
            Self::TopicAliasZero => ReasonCode::TopicAliasInvalid,
            Self::SessionPresentOnError
            | Self::PacketIdZero(_)
            | Self::EmptyTopicWithoutAlias
            | Self::EmptySubscribe
            | Self::EmptyUnsubscribe
            | Self::InvalidRetainHandling
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue { .. } => ReasonCode::ProtocolError,
            _ => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field over 65,535 bytes.
    #[error("{what} is {len} bytes; at most 65535 fit (§1.5.4)")]
    FieldTooLong {
        /// The field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The packet's Remaining Length would exceed 268,435,455 (§2.1.4).
    #[error("packet body of {0} bytes exceeds the largest Remaining Length (268435455)")]
    PacketTooLarge(usize),
    /// A QoS 1 or 2 PUBLISH without a packet identifier.
    #[error("QoS 1 and 2 PUBLISH packets need a packet identifier")]
    MissingPacketId,
    /// A packet type that does not exist in the target protocol version (AUTH before 5).
    #[error("{packet} does not exist in {version}")]
    NotInVersion {
        /// The packet type.
        packet: PacketType,
        /// The version asked for.
        version: crate::packet::ProtocolVersion,
    },
    /// A property value the spec does not allow to be sent (e.g. Subscription
    /// Identifier 0 or above 268,435,455).
    #[error("property {property:#04x} cannot carry the value {value}")]
    InvalidPropertyValue {
        /// Its identifier.
        property: u8,
        /// The value.
        value: u32,
    },
}
