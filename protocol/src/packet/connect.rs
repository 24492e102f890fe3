//! CONNECT (§3.1).

use bytes::Bytes;
use bytestring::ByteString;

use super::{ProtocolVersion, QoS};
use crate::error::{DecodeError, EncodeError};
use crate::property::{self, ConnectProperties, WillProperties};
use crate::topic::TopicName;
use crate::wire::{self, Sink};

/// CONNECT: the first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level, from the variable header.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5): discard any existing session.
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client Identifier; may be empty, asking the server to assign one.
    pub client_id: ByteString,
    /// The will message, if the Will Flag is set.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<ByteString>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// MQTT 5 properties.
    pub properties: ConnectProperties,
    /// MQTT 3.x only: the broker-to-broker bridge flag, the protocol level's top bit
    /// (0x84 / 0x83, mosquitto's `try_private`). A broker that knows it does not echo
    /// the bridge's own messages back and keeps the retain flag as published. Not
    /// part of the standard, but sent and accepted by mosquitto and by this codec
    /// (levels 0x83 and 0x84; MQTT 5 has No Local instead). Default `false`.
    pub bridge: bool,
}

/// A will message (§3.1.2.5, §3.1.3.2-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where the will is published.
    pub topic: TopicName,
    /// What is published.
    pub payload: Bytes,
    /// At which QoS.
    pub qos: QoS,
    /// Whether it is published retained.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: WillProperties,
}

impl Connect {
    /// A CONNECT with the given version and client id and everything else at its
    /// default: clean start, keep alive 60 s, no will, no credentials, no properties.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<ByteString>) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
            bridge: false,
        }
    }

    pub(crate) fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let name = wire::read_binary(buf, "protocol name")?;
        let level = wire::read_u8(buf, "protocol level")?;
        // MQTT 3.x bridge flag: the level's top bit (mosquitto's `try_private`).
        let bridge = level & 0x80 != 0 && matches!(level & 0x7f, 3 | 4);
        let level = if bridge { level & 0x7f } else { level };
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT" | b"MQIsdp", level) => {
                return Err(DecodeError::UnsupportedProtocolLevel(level));
            }
            (name, _) => {
                return Err(DecodeError::InvalidProtocolName(
                    String::from_utf8_lossy(name).into(),
                ));
            }
        };
        let flags = wire::read_u8(buf, "connect flags")?;
        if flags & 0x01 != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let clean_start = flags & 0x02 != 0;
        let will_flag = flags & 0x04 != 0;
        let will_qos = (flags >> 3) & 0x03;
        let will_retain = flags & 0x20 != 0;
        let has_password = flags & 0x40 != 0;
        let has_username = flags & 0x80 != 0;
        if !will_flag && will_qos != 0 {
            return Err(DecodeError::WillQoSWithoutWill);
        }
        if !will_flag && will_retain {
            return Err(DecodeError::WillRetainWithoutWill);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
        if has_password && !has_username && !protocol.is_v5() {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = wire::read_u16(buf, "keep alive")?;
        let mut properties = ConnectProperties::default();
        if protocol.is_v5() {
            property::read_properties(buf, |p| properties.apply(p))?;
        }

        let client_id = wire::read_string(buf, "client identifier")?;
        let will = if will_flag {
            let mut will_properties = WillProperties::default();
            if protocol.is_v5() {
                property::read_properties(buf, |p| will_properties.apply(p))?;
            }
            let topic = TopicName::new(wire::read_string(buf, "will topic")?)?;
            let payload = wire::read_binary(buf, "will payload")?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties: will_properties,
            })
        } else {
            None
        };
        let username = has_username
            .then(|| wire::read_string(buf, "user name"))
            .transpose()?;
        let password = has_password
            .then(|| wire::read_binary(buf, "password"))
            .transpose()?;
        Ok(Self {
            protocol,
            clean_start,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
            bridge,
        })
    }

    pub(crate) fn encode<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let v5 = self.protocol.is_v5();
        let name: &[u8] = if self.protocol == ProtocolVersion::V3_1 {
            b"MQIsdp"
        } else {
            b"MQTT"
        };
        wire::put_binary(s, name, "protocol name")?;
        let bridge = if self.bridge && !v5 { 0x80 } else { 0 };
        s.put_u8(self.protocol as u8 | bridge);
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos as u8) << 3;
            if will.retain {
                flags |= 0x20;
            }
        }
        // 3.1.1 forbids a password without a user name; it is left out rather than sent.
        let password = self
            .password
            .as_ref()
            .filter(|_| v5 || self.username.is_some());
        if password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        s.put_u8(flags);
        s.put_u16(self.keep_alive);
        if v5 {
            property::put_properties(s, &self.properties)?;
        }
        wire::put_binary(s, self.client_id.as_bytes(), "client identifier")?;
        if let Some(will) = &self.will {
            if v5 {
                property::put_properties(s, &will.properties)?;
            }
            wire::put_binary(s, will.topic.as_bytes(), "will topic")?;
            wire::put_binary(s, &will.payload, "will payload")?;
        }
        if let Some(username) = &self.username {
            wire::put_binary(s, username.as_bytes(), "user name")?;
        }
        if let Some(password) = password {
            wire::put_binary(s, password, "password")?;
        }
        Ok(())
    }
}
