//! The on-disk encoding: compact, versioned, little-endian records, read back with
//! every length checked (a damaged record is a [`CodecError`], never a panic).
//!
//! Every record starts with a version byte, then (version 2) a CRC-32 of the record's
//! key and the rest of its value, then the body:
//!
//! - A message body: `expires_at (u64 unix ms, 0: never) | origin (u16 len + UTF-8)
//!   | the message as an MQTT 5 PUBLISH`, so every property the protocol knows (user
//!   properties, correlation data, ...) round-trips through the tested codec.
//! - A queue entry: `body id u64 | qos u8 | flags u8 | packet id u16 | n u8 |
//!   n subscription ids u32 | shared group (u16 len + UTF-8)`.
//! - A session record: `id u64 | expiry u32 | expires_at u64 | n u32 | n × (filter
//!   u16 len + UTF-8, options u8, subscription id u32) | will flag u8 [| due u64 | will
//!   as PUBLISH (u32 len + bytes)] | owner u8 (0 unknown, 1 anonymous, 2 user) [| user
//!   name (u16 len + UTF-8)]`. The owner came later, at the end: a record that ends
//!   before it (written by an older broker) decodes with an unknown owner, and an
//!   older broker reading a newer record ignores it.
//!
//! # Checksums
//!
//! Version 2 records carry `crc32 (u32) = CRC-32 (IEEE, the `crc32fast` crate already in
//! the dependency tree) of key bytes ‖ body`. redb checksums its pages too, but a page
//! checksum says only that *some* page is damaged, and a read that does not verify it
//! (every ordinary read) returns the damaged bytes. The record checksum lets the broker
//! refuse a damaged store naming the record, and `store repair` keep every record that
//! is intact. The key is covered so that a damaged key (a queue entry moved to another
//! session, a retained message moved to another topic) is caught as well. Version 1
//! records (written before checksums existed) still load, unchecked; the broker writes
//! only version 2. The key bytes: the topic or client id as UTF-8, a body id as u64 LE,
//! a queue key as session u64 LE ‖ position u64 LE ([`message_key`], [`queue_key`]).
//!
//! Instants are stored as wall-clock milliseconds ([`to_unix_ms`]): a monotonic instant
//! means nothing to the next process.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use protocol::{
    Packet, ProtocolVersion, Publish, PublishProperties, PublishProps, QoS, RetainHandling,
    SubscriptionOptions, TopicFilter, TopicName, Will, WillProperties,
};
use smallvec::SmallVec;
use web_time::Instant;

use super::{QueueEntry, SessionRecord};
use crate::message::Message;
use crate::session::{Owner, StoredSubscription};

/// Records written before checksums: no checksum, still read.
const VERSION_UNCHECKED: u8 = 1;
/// Records with a CRC-32 of key and body after the version byte (what is written).
const VERSION: u8 = 2;
const FLAG_RETAIN: u8 = 1;
const FLAG_RELEASED: u8 = 2;
const OWNER_UNKNOWN: u8 = 0;
const OWNER_ANONYMOUS: u8 = 1;
const OWNER_USER: u8 = 2;

/// The key bytes a body's checksum covers: its id, little-endian.
pub fn message_key(id: u64) -> [u8; 8] {
    id.to_le_bytes()
}

/// The key bytes a queue entry's checksum covers: session, then position, little-endian.
pub fn queue_key(session: u64, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&session.to_le_bytes());
    key[8..].copy_from_slice(&seq.to_le_bytes());
    key
}

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// Starts a record: version byte and room for the checksum [`seal`] fills in.
fn start(capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(capacity + 5);
    out.put_u8(VERSION);
    out.put_u32_le(0);
    out
}

/// Fills in the checksum of a record begun by [`start`].
fn seal(out: &mut BytesMut, key: &[u8]) {
    let sum = checksum(key, &out[5..]);
    out[1..5].copy_from_slice(&sum.to_le_bytes());
}

/// Whether a stored record carries a checksum (`false`: written by an older broker).
pub fn is_checked(data: &[u8]) -> bool {
    data.first() == Some(&VERSION)
}

/// A stored record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged {what} record: {why}")]
pub struct CodecError {
    /// Which kind of record.
    pub what: &'static str,
    /// What is wrong with it.
    pub why: String,
}

fn damaged(what: &'static str, why: impl Into<String>) -> CodecError {
    CodecError {
        what,
        why: why.into(),
    }
}

/// The process's mapping between the broker clock and the wall clock, fixed at first
/// use: later wall-clock jumps do not move stored deadlines, and a test that pauses and
/// advances the broker clock moves the wall clock with it.
fn anchor() -> (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    *ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (Instant::now(), wall)
    })
}

/// `at` as wall-clock milliseconds since the Unix epoch.
pub fn to_unix_ms(at: Instant) -> u64 {
    let (base, wall) = anchor();
    if at >= base {
        let ms = u64::try_from(at.duration_since(base).as_millis()).unwrap_or(u64::MAX);
        wall.saturating_add(ms)
    } else {
        let ms = u64::try_from(base.duration_since(at).as_millis()).unwrap_or(u64::MAX);
        wall.saturating_sub(ms).max(1)
    }
}

/// Wall-clock milliseconds as an instant of the broker clock (clamped to what an
/// `Instant` can represent).
pub fn from_unix_ms(ms: u64) -> Instant {
    let (base, wall) = anchor();
    if ms >= wall {
        let later = Duration::from_millis(ms - wall);
        base.checked_add(later)
            .unwrap_or_else(|| base + Duration::from_secs(u64::from(u32::MAX)))
    } else {
        base.checked_sub(Duration::from_millis(wall - ms))
            .unwrap_or(base)
    }
}

struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of the record's body, after its checksum is verified against `key`.
    fn new(what: &'static str, data: &'a [u8], key: &[u8]) -> Result<Self, CodecError> {
        let reader = Self::unchecked(what, data)?;
        if data.first() == Some(&VERSION) {
            let stored = data.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok());
            if stored.map(u32::from_le_bytes) != Some(checksum(key, reader.data)) {
                return Err(damaged(what, "checksum mismatch"));
            }
        }
        Ok(reader)
    }

    /// A reader of the record's body, its checksum not verified.
    fn unchecked(what: &'static str, data: &'a [u8]) -> Result<Self, CodecError> {
        let mut reader = Self { what, data };
        match reader.u8()? {
            VERSION_UNCHECKED => {}
            VERSION => {
                reader.u32()?;
            }
            version => {
                return Err(damaged(what, format!("unknown format version {version}")));
            }
        }
        Ok(reader)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.data.len() < n {
            return Err(damaged(self.what, "truncated"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<ByteString, CodecError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| damaged(self.what, "not UTF-8"))?;
        Ok(ByteString::from(text))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

fn put_string(out: &mut BytesMut, text: &str) {
    // Topics, filters and client ids are MQTT strings: at most 65,535 bytes.
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.put_u16_le(len);
    out.put_slice(&text.as_bytes()[..usize::from(len)]);
}

fn encode_publish(publish: Publish, out: &mut BytesMut) {
    // A PUBLISH the broker built from a valid one always encodes; an empty record
    // would fail to decode, which recovery reports.
    let _ = protocol::encode(&Packet::Publish(publish), ProtocolVersion::V5, out);
}

fn decode_publish(what: &'static str, data: &[u8]) -> Result<Publish, CodecError> {
    let mut buf = BytesMut::from(data);
    match protocol::decode(&mut buf, &protocol::Limits::default()) {
        Ok(Some(Packet::Publish(publish))) => Ok(publish),
        Ok(_) => Err(damaged(what, "not a PUBLISH")),
        Err(err) => Err(damaged(what, err.to_string())),
    }
}

/// Encodes a message body stored under `key` (a retained message's topic, or
/// [`message_key`]).
pub fn encode_message(message: &Message, key: &[u8]) -> Bytes {
    let mut out = start(32 + message.topic.len() + message.payload.len());
    out.put_u64_le(message.expires_at.map_or(0, to_unix_ms));
    put_string(&mut out, &message.origin);
    let mut properties = message.properties.clone();
    if let Some(props) = properties.get_mut() {
        props.message_expiry_interval = None;
        props.topic_alias = None;
        props.subscription_identifiers = Vec::new();
    }
    let publish = Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id: (message.qos != QoS::AtMostOnce).then_some(NonZeroU16::MIN),
        payload: message.payload.clone(),
        properties,
    };
    encode_publish(publish, &mut out);
    seal(&mut out, key);
    out.freeze()
}

/// Decodes a message body stored under `key`, verifying its checksum.
pub fn decode_message(data: &[u8], key: &[u8]) -> Result<Message, CodecError> {
    let mut reader = Reader::new("message", data, key)?;
    let expires_at = match reader.u64()? {
        0 => None,
        ms => Some(from_unix_ms(ms)),
    };
    let origin = reader.string()?;
    let publish = decode_publish("message", reader.rest())?;
    Ok(Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: publish.properties,
        expires_at,
        origin,
    })
}

/// Encodes a queue entry stored under `key` ([`queue_key`]).
pub fn encode_entry(entry: &QueueEntry, key: &[u8]) -> Vec<u8> {
    let mut out = start(24);
    out.put_u64_le(entry.message);
    out.put_u8(entry.qos as u8);
    let mut flags = 0;
    if entry.retain {
        flags |= FLAG_RETAIN;
    }
    if entry.released {
        flags |= FLAG_RELEASED;
    }
    out.put_u8(flags);
    out.put_u16_le(entry.packet_id.map_or(0, NonZeroU16::get));
    let ids = &entry.subscription_ids[..entry.subscription_ids.len().min(255)];
    out.put_u8(ids.len() as u8);
    for id in ids {
        out.put_u32_le(id.get());
    }
    put_string(&mut out, entry.shared_group.as_deref().unwrap_or(""));
    seal(&mut out, key);
    out.to_vec()
}

/// The body id of an encoded queue entry (what the writer needs to count references;
/// not verified: the writer only releases a reference with it).
pub fn entry_message(data: &[u8]) -> Result<u64, CodecError> {
    Reader::unchecked("queue", data)?.u64()
}

/// Decodes a queue entry stored under `key`, verifying its checksum.
pub fn decode_entry(data: &[u8], key: &[u8]) -> Result<QueueEntry, CodecError> {
    let mut r = Reader::new("queue", data, key)?;
    let message = r.u64()?;
    let qos = QoS::from_u8(r.u8()?).ok_or_else(|| damaged("queue", "bad QoS"))?;
    let flags = r.u8()?;
    let packet_id = NonZeroU16::new(r.u16()?);
    let count = r.u8()?;
    let mut subscription_ids = SmallVec::new();
    for _ in 0..count {
        let id = NonZeroU32::new(r.u32()?).ok_or_else(|| damaged("queue", "subscription id 0"))?;
        subscription_ids.push(id);
    }
    let group = r.string()?;
    let shared_group = if group.is_empty() {
        None
    } else {
        Some(TopicFilter::new(group).map_err(|e| damaged("queue", e.to_string()))?)
    };
    Ok(QueueEntry {
        message,
        qos,
        retain: flags & FLAG_RETAIN != 0,
        subscription_ids,
        shared_group,
        packet_id,
        released: flags & FLAG_RELEASED != 0,
    })
}

/// A queue entry with its packet id or release recorded (the writer's in-place edits).
pub fn patch_entry(
    data: &[u8],
    key: &[u8],
    packet_id: Option<NonZeroU16>,
    released: bool,
) -> Result<Vec<u8>, CodecError> {
    let mut entry = decode_entry(data, key)?;
    if packet_id.is_some() {
        entry.packet_id = packet_id;
    }
    entry.released |= released;
    Ok(encode_entry(&entry, key))
}

fn options_byte(options: &SubscriptionOptions) -> u8 {
    options.qos as u8
        | u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling as u8) << 4
}

fn options_from(byte: u8) -> Result<SubscriptionOptions, CodecError> {
    let qos = QoS::from_u8(byte & 3).ok_or_else(|| damaged("session", "bad QoS"))?;
    let retain_handling = match (byte >> 4) & 3 {
        0 => RetainHandling::SendOnSubscribe,
        1 => RetainHandling::SendIfNew,
        _ => RetainHandling::DoNotSend,
    };
    let mut options = SubscriptionOptions::new(qos);
    options.no_local = byte & 4 != 0;
    options.retain_as_published = byte & 8 != 0;
    options.retain_handling = retain_handling;
    Ok(options)
}

fn will_publish(will: &Will) -> Publish {
    let wp = &will.properties;
    let properties = PublishProperties {
        payload_format_indicator: wp.payload_format_indicator,
        message_expiry_interval: wp.message_expiry_interval,
        content_type: wp.content_type.clone(),
        response_topic: wp.response_topic.clone(),
        correlation_data: wp.correlation_data.clone(),
        user_properties: wp.user_properties.clone(),
        ..PublishProperties::default()
    }
    .into();
    Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic.as_str().into(),
        packet_id: (will.qos != QoS::AtMostOnce).then_some(NonZeroU16::MIN),
        payload: will.payload.clone(),
        properties,
    }
}

fn will_from(publish: Publish) -> Result<Will, CodecError> {
    let p = publish.properties.into_inner();
    Ok(Will {
        topic: TopicName::new(publish.topic).map_err(|e| damaged("session", e.to_string()))?,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: WillProperties {
            will_delay_interval: None,
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        },
    })
}

/// Encodes a session record stored under `key` (the client id).
pub fn encode_session(record: &SessionRecord, key: &[u8]) -> Vec<u8> {
    let mut out = start(64);
    out.put_u64_le(record.id);
    out.put_u32_le(record.expiry_interval);
    out.put_u64_le(record.expires_at.map_or(0, to_unix_ms));
    out.put_u32_le(record.subscriptions.len() as u32);
    for (filter, subscription) in &record.subscriptions {
        put_string(&mut out, filter);
        out.put_u8(options_byte(&subscription.options));
        out.put_u32_le(subscription.id.map_or(0, NonZeroU32::get));
    }
    match &record.will {
        None => out.put_u8(0),
        Some((due, will)) => {
            out.put_u8(1);
            out.put_u64_le(to_unix_ms(*due));
            let mut body = BytesMut::new();
            encode_publish(will_publish(will), &mut body);
            out.put_u32_le(body.len() as u32);
            out.put_slice(&body);
        }
    }
    match &record.owner {
        Owner::Unknown => out.put_u8(OWNER_UNKNOWN),
        Owner::Anonymous => out.put_u8(OWNER_ANONYMOUS),
        Owner::User(name) => {
            out.put_u8(OWNER_USER);
            put_string(&mut out, name);
        }
    }
    seal(&mut out, key);
    out.to_vec()
}

/// The incarnation id of an encoded session record (not verified: the writer only
/// compares it).
pub fn session_id(data: &[u8]) -> Result<u64, CodecError> {
    Reader::unchecked("session", data)?.u64()
}

/// Decodes a session record stored under `key`, verifying its checksum.
pub fn decode_session(data: &[u8], key: &[u8]) -> Result<SessionRecord, CodecError> {
    let mut r = Reader::new("session", data, key)?;
    let id = r.u64()?;
    let expiry_interval = r.u32()?;
    let expires_at = match r.u64()? {
        0 => None,
        ms => Some(from_unix_ms(ms)),
    };
    let count = r.u32()?;
    let mut subscriptions = Vec::new();
    for _ in 0..count {
        let filter =
            TopicFilter::new(r.string()?).map_err(|e| damaged("session", e.to_string()))?;
        let options = options_from(r.u8()?)?;
        let id = NonZeroU32::new(r.u32()?);
        subscriptions.push((filter, StoredSubscription { options, id }));
    }
    let will = match r.u8()? {
        0 => None,
        _ => {
            let due = from_unix_ms(r.u64()?);
            let len = r.u32()? as usize;
            let publish = decode_publish("session", r.take(len)?)?;
            Some((due, will_from(publish)?))
        }
    };
    // Absent in records written before owners were stored.
    let owner = match r.data.first() {
        None => Owner::Unknown,
        Some(_) => match r.u8()? {
            OWNER_UNKNOWN => Owner::Unknown,
            OWNER_ANONYMOUS => Owner::Anonymous,
            OWNER_USER => Owner::User(r.string()?),
            other => return Err(damaged("session", format!("unknown owner kind {other}"))),
        },
    };
    Ok(SessionRecord {
        id,
        expiry_interval,
        expires_at,
        subscriptions,
        will,
        owner,
    })
}

/// A message for tests and tools: topic, payload, QoS, retain, no properties.
pub fn plain_message(
    topic: &str,
    payload: impl Into<Bytes>,
    qos: QoS,
    retain: bool,
) -> Arc<Message> {
    Arc::new(Message {
        topic: topic.into(),
        payload: payload.into(),
        qos,
        retain,
        properties: PublishProps::new(),
        expires_at: None,
        origin: ByteString::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips_with_properties_and_expiry() {
        let now = Instant::now();
        let mut message = (*plain_message("a/b", "hello", QoS::ExactlyOnce, true)).clone();
        message
            .properties
            .user_properties
            .push(("k".into(), "v".into()));
        message.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01"));
        message.expires_at = Some(now + Duration::from_secs(90));
        message.origin = "pub-1".into();
        let back = decode_message(&encode_message(&message, b"a/b"), b"a/b").unwrap();
        let drift = back
            .expires_at
            .unwrap()
            .duration_since(now + Duration::from_secs(89));
        assert!(drift <= Duration::from_secs(2), "{drift:?}");
        message.expires_at = back.expires_at;
        assert_eq!(back, message);
    }

    #[test]
    fn entry_and_session_round_trip() {
        let entry = QueueEntry {
            message: 77,
            qos: QoS::ExactlyOnce,
            retain: true,
            subscription_ids: [NonZeroU32::new(5).unwrap()].into_iter().collect(),
            shared_group: Some(TopicFilter::new("$share/g/x/#").unwrap()),
            packet_id: None,
            released: false,
        };
        let key = queue_key(4, 5);
        let bytes = encode_entry(&entry, &key);
        assert_eq!(decode_entry(&bytes, &key).unwrap(), entry);
        assert_eq!(entry_message(&bytes).unwrap(), 77);
        let patched = patch_entry(&bytes, &key, NonZeroU16::new(9), false).unwrap();
        let patched =
            decode_entry(&patch_entry(&patched, &key, None, true).unwrap(), &key).unwrap();
        assert_eq!(
            (patched.packet_id, patched.released),
            (NonZeroU16::new(9), true)
        );

        let will = Will {
            topic: TopicName::new("w/t").unwrap(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        };
        let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
        options.no_local = true;
        options.retain_handling = RetainHandling::DoNotSend;
        let record = SessionRecord {
            id: 3,
            expiry_interval: 600,
            expires_at: None,
            subscriptions: vec![(
                TopicFilter::new("x/+").unwrap(),
                StoredSubscription {
                    options,
                    id: NonZeroU32::new(2),
                },
            )],
            will: None,
            owner: Owner::User("bob".into()),
        };
        assert_eq!(
            decode_session(&encode_session(&record, b"c"), b"c").unwrap(),
            record
        );
        assert_eq!(session_id(&encode_session(&record, b"c")).unwrap(), 3);
        for owner in [Owner::Anonymous, Owner::Unknown] {
            let record = SessionRecord {
                owner,
                ..record.clone()
            };
            assert_eq!(
                decode_session(&encode_session(&record, b"c"), b"c").unwrap(),
                record
            );
        }
        let with_will = SessionRecord {
            will: Some((Instant::now(), will.clone())),
            ..record
        };
        let back = decode_session(&encode_session(&with_will, b"c"), b"c").unwrap();
        assert_eq!(back.will.map(|(_, w)| w), Some(will));
    }

    #[test]
    fn a_session_stored_before_owners_decodes_with_an_unknown_owner() {
        let record = SessionRecord {
            id: 4,
            expiry_interval: u32::MAX,
            expires_at: None,
            subscriptions: Vec::new(),
            will: None,
            owner: Owner::User("bob".into()),
        };
        let bytes = encode_session(&record, b"c");
        // The old format: version 1 (no checksum), everything up to the owner ("bob":
        // kind, length, 3 bytes).
        let mut old = vec![VERSION_UNCHECKED];
        old.extend_from_slice(&bytes[5..bytes.len() - 6]);
        let back = decode_session(&old, b"c").unwrap();
        assert_eq!(back.owner, Owner::Unknown);
        assert_eq!(
            back,
            SessionRecord {
                owner: Owner::Unknown,
                ..record
            }
        );
        assert!(decode_session(&bytes[..bytes.len() - 1], b"c").is_err());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let key = queue_key(1, 1);
        let entry = encode_entry(
            &QueueEntry {
                message: 1,
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: SmallVec::new(),
                shared_group: None,
                packet_id: None,
                released: false,
            },
            &key,
        );
        for cut in 0..entry.len() {
            assert!(decode_entry(&entry[..cut], &key).is_err());
        }
        assert!(decode_message(&[1, 0, 0], b"").is_err());
        assert!(decode_message(&[2, 0, 0], b"").is_err());
        assert!(decode_session(&[9], b"").is_err());
        assert!(decode_message(&[], b"").is_err());
    }

    /// Any flipped bit of the body or of the key it is stored under is caught, where
    /// the body alone would still decode (a payload byte).
    #[test]
    fn a_flipped_bit_in_a_record_or_its_key_fails_its_checksum() {
        let message = plain_message("t/1", "payload", QoS::AtLeastOnce, true);
        let bytes = encode_message(&message, b"t/1").to_vec();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode_message(&damaged, b"t/1").is_err(), "byte {at}");
        }
        let err = decode_message(&bytes, b"t/2").unwrap_err();
        assert_eq!(err.why, "checksum mismatch");
        let key = message_key(7);
        let body = encode_message(&message, &key);
        assert!(decode_message(&body, &message_key(8)).is_err());
        assert!(is_checked(&body));
    }

    /// Records written before checksums (version 1: no checksum after the version
    /// byte) still decode.
    #[test]
    fn records_without_a_checksum_still_decode() {
        let legacy = |record: &[u8]| -> Vec<u8> {
            let mut old = vec![VERSION_UNCHECKED];
            old.extend_from_slice(&record[5..]);
            old
        };
        let message = plain_message("t/1", "payload", QoS::AtLeastOnce, true);
        let old = legacy(&encode_message(&message, b"t/1"));
        assert!(!is_checked(&old));
        assert_eq!(decode_message(&old, b"any key").unwrap(), *message);
        let entry = QueueEntry {
            message: 9,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: SmallVec::new(),
            shared_group: None,
            packet_id: None,
            released: false,
        };
        let old = legacy(&encode_entry(&entry, &queue_key(1, 2)));
        assert_eq!(decode_entry(&old, &queue_key(1, 2)).unwrap(), entry);
        assert_eq!(entry_message(&old).unwrap(), 9);
    }
}
