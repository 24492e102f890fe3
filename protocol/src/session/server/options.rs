//! [`ServerOptions`] (the server's limits, per listener) and [`AcceptOptions`] (the
//! broker's part of one CONNACK).

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::QoS;
use crate::property::UserProperties;

/// The server's limits and capabilities, advertised to MQTT 5 clients in CONNACK (only
/// where they differ from the spec's defaults) and enforced on what clients send.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The largest packet we accept; a larger one closes the connection with 0x95.
    /// Default: 1 MiB.
    pub maximum_packet_size: NonZeroU32,
    /// How many QoS 1 and 2 messages from a client may await our acknowledgement (the
    /// broker's `ack_publish`) and PUBREL; one more closes the connection with 0x93.
    /// MQTT 3.x clients cannot be told, so it is not enforced on them. Default: 32.
    pub receive_maximum: NonZeroU16,
    /// How many topic aliases a client may use; aliases above close with 0x94. Each
    /// costs one topic string of memory per connection. Default: 16.
    pub topic_alias_maximum: u16,
    /// The longest keep alive a client may use: an MQTT 5 client asking for more, or
    /// for none (0), is given this one as Server Keep Alive. `None`: the client's.
    /// Default: `None`.
    pub max_keep_alive: Option<u16>,
    /// The highest QoS accepted in PUBLISH and wills; above closes with 0x9B (a will
    /// above is refused in CONNACK). Default: QoS 2.
    pub maximum_qos: QoS,
    /// Whether retained messages are supported; a retained PUBLISH otherwise closes
    /// with 0x9A. Default: `true`.
    pub retain_available: bool,
    /// Advertised only: whether wildcard subscriptions are supported (the broker
    /// answers SUBSCRIBE). Default: `true`.
    pub wildcard_subscription_available: bool,
    /// Advertised only: whether subscription identifiers are supported. Default: `true`.
    pub subscription_identifiers_available: bool,
    /// Advertised only: whether shared subscriptions are supported. Default: `true`.
    pub shared_subscription_available: bool,
    /// The most QoS 1 and 2 messages in flight to one client, below its own Receive
    /// Maximum; the only bound for MQTT 3.x clients, which have none. Default: 65,535.
    pub max_inflight: NonZeroU16,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            maximum_packet_size: NonZeroU32::new(1 << 20).unwrap_or(NonZeroU32::MAX),
            receive_maximum: NonZeroU16::new(32).unwrap_or(NonZeroU16::MAX),
            topic_alias_maximum: 16,
            max_keep_alive: None,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            subscription_identifiers_available: true,
            shared_subscription_available: true,
            max_inflight: NonZeroU16::MAX,
        }
    }
}

/// The broker's part of an accepting CONNACK, for MQTT 5 clients (3.x has no
/// properties). Session Present is not here: it is `true` exactly when `accept` is given
/// a [`SessionState`](crate::session::SessionState) (and the client did not ask for Clean Start).
#[derive(Debug, Clone, Default)]
pub struct AcceptOptions {
    /// The client identifier assigned to a client that sent an empty one (required
    /// then [MQTT-3.2.2-16]).
    pub assigned_client_identifier: Option<ByteString>,
    /// A Session Expiry Interval other than the client's, in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Server Keep Alive in seconds, overriding [`ServerOptions::max_keep_alive`].
    pub server_keep_alive: Option<u16>,
    /// Response Information (§4.10), if the client requested it.
    pub response_information: Option<ByteString>,
    /// Server Reference (§4.11).
    pub server_reference: Option<ByteString>,
    /// Reason String (dropped if it would make CONNACK too large for the client).
    pub reason_string: Option<ByteString>,
    /// User properties (dropped if they would make CONNACK too large for the client).
    pub user_properties: UserProperties,
    /// Enhanced authentication method, echoed at the end of an exchange (§4.12).
    pub authentication_method: Option<ByteString>,
    /// Enhanced authentication data.
    pub authentication_data: Option<Bytes>,
}
