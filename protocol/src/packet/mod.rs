//! The packet model and the codec: [`decode`] and [`encode`].
//!
//! One [`Packet`] enum covers MQTT 3.1 (protocol level 3), 3.1.1 (4) and 5.0 (5).
//! Fields that only MQTT 5 has (properties, most reason codes) are ignored when
//! encoding for 3.x and take their defaults when decoding 3.x. Each packet type has its
//! own module holding its struct, its decoder and its encoder.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsubscribe;

use std::fmt;
use std::num::NonZeroU16;

use bytes::{Buf, Bytes, BytesMut};

pub(crate) use ack::{AckKind, BareAck};
pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use publish::Publish;
pub use suback::{SubAck, UnsubAck};
pub use subscribe::{RetainHandling, Subscribe, Subscription, SubscriptionOptions};
pub use unsubscribe::Unsubscribe;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{self, Counter, Sink, VarInt};

/// A Packet Identifier (§2.2.1): never 0 [MQTT-2.2.1-3].
pub type PacketId = NonZeroU16;

/// The protocol level a connection speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1 = 3,
    /// MQTT 3.1.1, level 4.
    V3_1_1 = 4,
    /// MQTT 5.0, level 5.
    V5 = 5,
}

impl ProtocolVersion {
    /// Whether this is MQTT 5 (properties and reason codes on the wire).
    pub const fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }

    /// The protocol version for a CONNECT protocol level byte.
    pub const fn from_level(level: u8) -> Option<Self> {
        match level {
            3 => Some(Self::V3_1),
            4 => Some(Self::V3_1_1),
            5 => Some(Self::V5),
            _ => None,
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3_1 => "MQTT 3.1",
            Self::V3_1_1 => "MQTT 3.1.1",
            Self::V5 => "MQTT 5.0",
        })
    }
}

/// Quality of Service (§4.3). Ordered, so `min` gives the delivery QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for 0, 1 or 2.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// The fifteen MQTT control packet types (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// The spec's upper-case name, as used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }

    pub(crate) const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }

    /// Whether a server may send this packet type: all but CONNECT, SUBSCRIBE,
    /// UNSUBSCRIBE and PINGREQ, which go from client to server only (§2.1.2).
    pub const fn sent_by_server(self) -> bool {
        !matches!(
            self,
            Self::Connect | Self::Subscribe | Self::Unsubscribe | Self::PingReq
        )
    }

    /// The fixed header flags every packet but PUBLISH must carry [MQTT-2.1.3-1].
    const fn required_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }

    /// Whether a packet of this type (not PUBLISH) may carry fixed header `flags` in
    /// `version`. MQTT 3.1 had PUBREL, SUBSCRIBE and UNSUBSCRIBE use the QoS 1 and DUP
    /// flags, DUP set on a re-send (3.1 §3.6, §3.8, §3.10); 3.1.1 fixed them at 0010
    /// [MQTT-3.6.1-1]. A 3.1 client re-sending PUBREL after a reconnect sets DUP, and
    /// refusing it would leave its QoS 2 flow without the PUBCOMP that ends it.
    const fn flags_allowed(self, flags: u8, version: ProtocolVersion) -> bool {
        let required = self.required_flags();
        flags == required
            || (matches!(version, ProtocolVersion::V3_1) && required == 0b0010 && flags == 0b1010)
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// This packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }
}

/// What the decoder needs to know about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest packet accepted, fixed header included. Checked from the fixed header
    /// before the body is buffered. Default: 268,435,460, the largest the wire allows.
    pub max_packet_size: u32,
    /// The protocol version of the connection. CONNECT carries its own and decodes
    /// whatever this says. Default: MQTT 5.
    pub version: ProtocolVersion,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: MAX_PACKET_SIZE,
            version: ProtocolVersion::V5,
        }
    }
}

/// The largest packet the wire format can express: one type byte, four length bytes
/// and 268,435,455 bytes of body.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + wire::MAX_VARINT;

/// Takes one packet off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet (nothing is consumed;
/// call again with more bytes). A packet over `limits.max_packet_size` is refused as
/// soon as its fixed header is in, before its body is buffered. On `Err` the connection
/// must be closed (after sending [`DecodeError::reason_code`] to an MQTT 5 peer); the
/// buffer is then in an unspecified state. Strings and payloads in the result share
/// `buf`'s memory.
#[inline]
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Packet>, DecodeError> {
    decode_as::<false>(buf, limits)
}

/// [`decode`] for a client: only the packet types a server sends
/// ([`PacketType::sent_by_server`]). One of the others is refused from its first byte
/// as [`DecodeError::InvalidPacketType`] without being decoded, so a client (the
/// browser's wasm above all) carries no decoder for CONNECT, SUBSCRIBE or UNSUBSCRIBE.
pub(crate) fn decode_from_server(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Packet>, DecodeError> {
    decode_as::<true>(buf, limits)
}

/// [`decode`], of every packet type or (`FROM_SERVER`) of those a server sends only.
#[inline]
fn decode_as<const FROM_SERVER: bool>(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = check_first_byte(first, limits.version)?;
    if FROM_SERVER && !packet_type.sent_by_server() {
        return Err(DecodeError::InvalidPacketType(first >> 4));
    }
    let (body_len, len_len) = match wire::parse_varint(&buf[1..])? {
        VarInt::Value(value, len) => (value as usize, len),
        VarInt::Incomplete => return Ok(None),
    };
    let size = 1 + len_len + body_len;
    if size as u64 > u64::from(limits.max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size: size as u64,
            max: limits.max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let mut body = buf.split_to(size).freeze();
    body.advance(1 + len_len);
    if packet_type == PacketType::Publish {
        // The hot path, kept apart so the packet is built in place. The payload is all
        // that the header leaves: a PUBLISH cannot have trailing bytes.
        let publish = Publish::decode(first & 0x0F, &mut body, limits.version)?;
        return Ok(Some(Packet::Publish(publish)));
    }
    decode_body::<FROM_SERVER>(packet_type, first & 0x0F, body, limits.version).map(Some)
}

/// Validates the first byte alone, so garbage is refused before waiting for more.
fn check_first_byte(first: u8, version: ProtocolVersion) -> Result<PacketType, DecodeError> {
    let kind = first >> 4;
    let flags = first & 0x0F;
    let packet_type = match PacketType::from_u8(kind) {
        Some(PacketType::Auth) if !version.is_v5() => {
            return Err(DecodeError::InvalidPacketType(kind));
        }
        Some(packet_type) => packet_type,
        None => return Err(DecodeError::InvalidPacketType(kind)),
    };
    if packet_type == PacketType::Publish {
        publish::check_flags(flags)?;
    } else if !packet_type.flags_allowed(flags, version) {
        return Err(DecodeError::InvalidFlags {
            packet: packet_type,
            flags,
        });
    }
    Ok(packet_type)
}

#[inline]
fn decode_body<const FROM_SERVER: bool>(
    packet_type: PacketType,
    flags: u8,
    mut body: Bytes,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let buf = &mut body;
    let packet = match packet_type {
        // `!FROM_SERVER` leaves these arms (and their decoders) out of a client.
        PacketType::Connect if !FROM_SERVER => Packet::Connect(Box::new(Connect::decode(buf)?)),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(buf, version)?),
        PacketType::Publish => Packet::Publish(Publish::decode(flags, buf, version)?),
        PacketType::PubAck => Packet::PubAck(PubAck::decode(buf, version)?),
        PacketType::PubRec => Packet::PubRec(PubRec::decode(buf, version)?),
        PacketType::PubRel => Packet::PubRel(PubRel::decode(buf, version)?),
        PacketType::PubComp => Packet::PubComp(PubComp::decode(buf, version)?),
        PacketType::Subscribe if !FROM_SERVER => {
            Packet::Subscribe(Subscribe::decode(buf, version)?)
        }
        PacketType::SubAck => Packet::SubAck(SubAck::decode(buf, version)?),
        PacketType::Unsubscribe if !FROM_SERVER => {
            Packet::Unsubscribe(Unsubscribe::decode(buf, version)?)
        }
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(buf, version)?),
        PacketType::PingReq if !FROM_SERVER => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(buf, version)?),
        PacketType::Auth => Packet::Auth(Auth::decode(buf)?),
        // Refused by `decode_as` already.
        PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq => return Err(DecodeError::InvalidPacketType(packet_type as u8)),
    };
    if !body.is_empty() {
        return Err(DecodeError::TrailingBytes {
            packet: packet_type,
            extra: body.len(),
        });
    }
    Ok(packet)
}

/// Reads a Packet Identifier, refusing 0 [MQTT-2.2.1-3].
pub(crate) fn read_packet_id(buf: &mut Bytes, packet: PacketType) -> Result<PacketId, DecodeError> {
    let value = wire::read_u16(buf, "packet identifier")?;
    PacketId::new(value).ok_or(DecodeError::PacketIdZero(packet))
}

/// Appends `packet`, encoded for `version`, to `buf`. A CONNECT is encoded for its own
/// `protocol`. MQTT 5-only fields are left out for 3.x.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if let Packet::Publish(publish) = packet {
        return encode_publish(publish, version, buf);
    }
    let mut counter = Counter::default();
    encode_body(packet, version, &mut counter)?;
    let body_len = u32::try_from(counter.0)
        .ok()
        .filter(|&len| len <= wire::MAX_VARINT)
        .ok_or(EncodeError::PacketTooLarge(counter.0))?;
    buf.reserve(1 + wire::varint_len(body_len) + counter.0);
    buf.put_u8(first_byte(packet));
    buf.put_varint(body_len);
    encode_body(packet, version, buf)
}

/// [`encode`] for a PUBLISH the caller holds by reference (a session's inflight copy),
/// so sending it moves or clones nothing.
pub(crate) fn encode_publish(
    publish: &Publish,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    publish.encode(version, &mut counter)?;
    let body_len = u32::try_from(counter.0)
        .ok()
        .filter(|&len| len <= wire::MAX_VARINT)
        .ok_or(EncodeError::PacketTooLarge(counter.0))?;
    buf.reserve(1 + wire::varint_len(body_len) + counter.0);
    buf.put_u8((PacketType::Publish as u8) << 4 | publish.flags());
    buf.put_varint(body_len);
    publish.encode(version, buf)
}

/// [`encoded_len`] of a PUBLISH held by reference.
pub(crate) fn publish_encoded_len(
    publish: &Publish,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    publish.encode(version, &mut counter)?;
    Ok(1 + wire::varint_len(counter.0.min(u32::MAX as usize) as u32) + counter.0)
}

/// The size in bytes of `packet` encoded for `version`, fixed header included; used to
/// respect a peer's Maximum Packet Size before sending.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    encode_body(packet, version, &mut counter)?;
    Ok(1 + wire::varint_len(counter.0.min(u32::MAX as usize) as u32) + counter.0)
}

fn first_byte(packet: &Packet) -> u8 {
    let packet_type = packet.packet_type();
    let flags = match packet {
        Packet::Publish(publish) => publish.flags(),
        _ => packet_type.required_flags(),
    };
    (packet_type as u8) << 4 | flags
}

fn encode_body<S: Sink>(
    packet: &Packet,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(connect) => connect.encode(s),
        Packet::ConnAck(connack) => connack.encode(version, s),
        Packet::Publish(publish) => publish.encode(version, s),
        Packet::PubAck(ack) => ack.encode(version, s),
        Packet::PubRec(ack) => ack.encode(version, s),
        Packet::PubRel(ack) => ack.encode(version, s),
        Packet::PubComp(ack) => ack.encode(version, s),
        Packet::Subscribe(subscribe) => subscribe.encode(version, s),
        Packet::SubAck(suback) => suback.encode(version, s),
        Packet::Unsubscribe(unsubscribe) => unsubscribe.encode(version, s),
        Packet::UnsubAck(unsuback) => unsuback.encode(version, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(disconnect) => disconnect.encode(version, s),
        Packet::Auth(auth) => {
            if !version.is_v5() {
                return Err(EncodeError::NotInVersion {
                    packet: PacketType::Auth,
                    version,
                });
            }
            auth.encode(s)
        }
    }
}
