//! [`ClientOptions`]: how a [`ClientSession`](super::ClientSession) connects, each
//! field with its default.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::{ProtocolVersion, Will};
use crate::property::UserProperties;

/// How a [`ClientSession`](super::ClientSession) connects. Every field is public; the defaults are those of
/// [`ClientOptions::new`](super::ClientOptions::new).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Protocol version. Default: MQTT 5.
    pub version: ProtocolVersion,
    /// Client Identifier. Empty asks an MQTT 5 server to assign one, which the session
    /// then uses on reconnects; MQTT 3.1.1 allows empty only with `clean_start`
    /// [MQTT-3.1.3-8]. Default: empty.
    pub client_id: ByteString,
    /// Clean Start (Clean Session in 3.x) on the first [`connect`](super::ClientSession::connect).
    /// Reconnects of the same `ClientSession` send `false` when MQTT 5 is used with a
    /// non-zero `session_expiry_interval`, to resume the session this object created;
    /// otherwise they send this value again. Default: `true`.
    pub clean_start: bool,
    /// Keep Alive: the longest time without sending a packet; a PINGREQ fills the gap
    /// [MQTT-3.1.2-20]. Rounded up to whole seconds, at most 65,535 s; zero disables
    /// keep alive. A Server Keep Alive in CONNACK overrides it [MQTT-3.2.2-21].
    /// Default: 60 s.
    pub keep_alive: Duration,
    /// How long to wait for any packet after a PINGREQ before declaring the connection
    /// lost ([`LostReason::PingTimeout`](super::LostReason::PingTimeout)). `None`: half the keep alive in force (30 s
    /// when keep alive is disabled). Default: `None`.
    pub ping_timeout: Option<Duration>,
    /// How long to wait for CONNACK after `connect` ([`LostReason::ConnectTimeout`](super::LostReason::ConnectTimeout)).
    /// Default: 30 s.
    pub connect_timeout: Duration,
    /// Will message. Default: none.
    pub will: Option<Will>,
    /// User Name. Default: none.
    pub username: Option<ByteString>,
    /// Password. Default: none.
    pub password: Option<Bytes>,
    /// MQTT 5 Session Expiry Interval in seconds: how long the server keeps the session
    /// after the connection ends. Default: 0 (ends with the connection).
    pub session_expiry_interval: u32,
    /// MQTT 5 Receive Maximum: how many QoS 1 and 2 messages the server may have in
    /// flight to us; more is a protocol error (0x93). Default: 65,535.
    pub receive_maximum: NonZeroU16,
    /// MQTT 5 Maximum Packet Size we accept; larger packets are a protocol error (0x95).
    /// Default: none (the wire's limit).
    pub maximum_packet_size: Option<NonZeroU32>,
    /// MQTT 5 Topic Alias Maximum: how many topic aliases the server may use towards
    /// us. Default: 0 (none), so no table is kept unless asked for.
    pub topic_alias_maximum: u16,
    /// MQTT 5 Request Response Information. Default: `false`.
    pub request_response_information: bool,
    /// MQTT 5 Request Problem Information; `false` asks the server to leave reason
    /// strings and user properties out of failures. Default: `true`.
    pub request_problem_information: bool,
    /// MQTT 5 user properties of CONNECT. Default: none.
    pub user_properties: UserProperties,
    /// MQTT 5 enhanced authentication method (§4.12). Default: none.
    pub authentication_method: Option<ByteString>,
    /// MQTT 5 enhanced authentication data. Default: none.
    pub authentication_data: Option<Bytes>,
    /// MQTT 3.x: connect as a broker-to-broker bridge ([`Connect::bridge`](crate::Connect::bridge),
    /// mosquitto's `try_private`). Default: `false`.
    pub bridge: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::new("")
    }
}

impl ClientOptions {
    /// Options with `client_id` and every other field at its documented default.
    pub fn new(client_id: impl Into<ByteString>) -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: client_id.into(),
            clean_start: true,
            keep_alive: Duration::from_secs(60),
            ping_timeout: None,
            connect_timeout: Duration::from_secs(30),
            will: None,
            username: None,
            password: None,
            session_expiry_interval: 0,
            receive_maximum: NonZeroU16::MAX,
            maximum_packet_size: None,
            topic_alias_maximum: 0,
            request_response_information: false,
            request_problem_information: true,
            user_properties: UserProperties::new(),
            authentication_method: None,
            authentication_data: None,
            bridge: false,
        }
    }

    /// Sets the protocol version.
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets Clean Start.
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// Sets the keep alive.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Sets the MQTT 5 session expiry interval, in seconds.
    pub fn session_expiry_interval(mut self, seconds: u32) -> Self {
        self.session_expiry_interval = seconds;
        self
    }

    /// Sets the will message.
    pub fn will(mut self, will: Will) -> Self {
        self.will = Some(will);
        self
    }

    /// Sets user name and password.
    pub fn credentials(
        mut self,
        username: impl Into<ByteString>,
        password: impl Into<Bytes>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The Keep Alive field of CONNECT: whole seconds, rounded up, saturating.
    pub(super) fn keep_alive_secs(&self) -> u16 {
        let secs = self.keep_alive.as_secs() + u64::from(self.keep_alive.subsec_nanos() > 0);
        u16::try_from(secs).unwrap_or(u16::MAX)
    }
}
