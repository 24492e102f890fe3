//! A session record as stored in the `<P>_SESSIONS` bucket: its fields and its
//! versioned binary encoding.
//!
//! Layout (little-endian): `version u8 (1) | epoch u64 | flags u8 (1: connected)
//! | node (u16 len + UTF-8) | node started u64 | client id (u16 len + UTF-8)
//! | will due (u64 unix ms, 0: none) | has will delay u8 [| will delay u32] | n u16
//! | n × checkpoint u64 | the rest`,
//! where the rest is the embedded store's session record
//! ([`crate::storage::codec::encode_session`], checksummed with the client id as its
//! key): expiry interval, expiry time, subscriptions with their options and identifiers,
//! the will (without its delay, kept above), the owner. Reusing it keeps one encoding of
//! subscriptions and wills for both stores, already tested for round trips and damage.
//! A record of another version is refused, never guessed at.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use protocol::{TopicFilter, Will};
use web_time::Instant;

use crate::cluster::Checkpoint;
use crate::session::{Owner, StoredSubscription};
use crate::storage::SessionRecord;
use crate::storage::codec::{self, CodecError, from_unix_ms, to_unix_ms};

/// The only version written (and read).
const VERSION: u8 = 1;
/// Flag: a connection is attached on [`Record::node`].
const FLAG_CONNECTED: u8 = 1;

/// One client's session as the cluster knows it: who holds it, and what it needs to
/// resume on any node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The MQTT client identifier (the key is only its hash).
    pub client_id: ByteString,
    /// The node holding the session: where it is connected, or where it was last (a
    /// node that reaped a dead node's session holds it while its will waits).
    pub node: String,
    /// When that node started (unix ms): tells its incarnations apart, so a node that
    /// died and started again is cleaned up after without touching its new sessions.
    pub node_started: u64,
    /// Incremented by every claim (and by a reaper's takeover); strictly increasing for
    /// a client id, also across a delete: the holder of an older epoch lost the session.
    pub epoch: u64,
    /// A connection is attached on [`Record::node`].
    pub connected: bool,
    /// The user the session belongs to.
    pub owner: Owner,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// When an offline session expires; `None` while connected, or never.
    pub expires_at: Option<Instant>,
    /// The will, with its Will Delay Interval in `properties.will_delay_interval`.
    pub will: Option<Will>,
    /// When the will is due while the session is offline waiting out the will delay;
    /// `None` while connected (the will is published when the connection ends).
    pub will_due: Option<Instant>,
    /// Subscriptions by filter, as the embedded store keeps them.
    pub subscriptions: Vec<(TopicFilter, StoredSubscription)>,
    /// Per shard, the last stream sequence this session has taken care of.
    pub checkpoint: Checkpoint,
}

impl Record {
    /// Encodes the record (see the module docs).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128);
        out.put_u8(VERSION);
        out.put_u64_le(self.epoch);
        out.put_u8(if self.connected { FLAG_CONNECTED } else { 0 });
        put_string(&mut out, &self.node);
        out.put_u64_le(self.node_started);
        put_string(&mut out, &self.client_id);
        out.put_u64_le(self.will_due.map_or(0, to_unix_ms));
        match self
            .will
            .as_ref()
            .and_then(|will| will.properties.will_delay_interval)
        {
            Some(delay) => {
                out.put_u8(1);
                out.put_u32_le(delay);
            }
            None => out.put_u8(0),
        }
        let shards = u16::try_from(self.checkpoint.0.len()).unwrap_or(u16::MAX);
        out.put_u16_le(shards);
        for seq in self.checkpoint.0.iter().take(usize::from(shards)) {
            out.put_u64_le(*seq);
        }
        let embedded = SessionRecord {
            id: self.epoch,
            expiry_interval: self.expiry_interval,
            expires_at: self.expires_at,
            subscriptions: self.subscriptions.clone(),
            // The due time lives above (a connected session's will has none).
            will: self.will.clone().map(|will| (from_unix_ms(1), will)),
            owner: self.owner.clone(),
        };
        out.put_slice(&codec::encode_session(&embedded, self.client_id.as_bytes()));
        out.freeze()
    }

    /// Decodes a record; damage or an unknown version is an error.
    pub fn decode(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader(data);
        let version = r.u8()?;
        if version != VERSION {
            return Err(damaged(format!("unknown format version {version}")));
        }
        let epoch = r.u64()?;
        let flags = r.u8()?;
        let node = r.string()?;
        let node_started = r.u64()?;
        let client_id = ByteString::from(r.string()?);
        let will_due = match r.u64()? {
            0 => None,
            ms => Some(from_unix_ms(ms)),
        };
        let will_delay = match r.u8()? {
            0 => None,
            _ => Some(r.u32()?),
        };
        let shards = r.u16()?;
        let mut checkpoint = Vec::with_capacity(usize::from(shards));
        for _ in 0..shards {
            checkpoint.push(r.u64()?);
        }
        let embedded = codec::decode_session(r.0, client_id.as_bytes())?;
        let will = embedded.will.map(|(_, mut will)| {
            will.properties.will_delay_interval = will_delay;
            will
        });
        Ok(Self {
            client_id,
            node,
            node_started,
            epoch,
            connected: flags & FLAG_CONNECTED != 0,
            owner: embedded.owner,
            expiry_interval: embedded.expiry_interval,
            expires_at: embedded.expires_at,
            will,
            will_due,
            subscriptions: embedded.subscriptions,
            checkpoint: Checkpoint(checkpoint),
        })
    }
}

fn damaged(why: impl Into<String>) -> CodecError {
    CodecError {
        what: "cluster session",
        why: why.into(),
    }
}

fn put_string(out: &mut BytesMut, text: &str) {
    // Node names are short; client ids are MQTT strings (at most 65,535 bytes).
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.put_u16_le(len);
    out.put_slice(&text.as_bytes()[..usize::from(len)]);
}

/// Reads the header fields, every length checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        if self.0.len() < N {
            return Err(damaged("truncated"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = usize::from(self.u16()?);
        if self.0.len() < len {
            return Err(damaged("truncated"));
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).map_err(|_| damaged("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{QoS, SubscriptionOptions, TopicName, WillProperties};
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn record() -> Record {
        Record {
            client_id: "dev/1 ü".into(),
            node: "n-1".into(),
            node_started: 1_765_000_000_000,
            epoch: 42,
            connected: true,
            owner: Owner::User("alice".into()),
            expiry_interval: 3600,
            expires_at: None,
            will: Some(Will {
                topic: TopicName::new("dev/1/status").unwrap(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: WillProperties {
                    will_delay_interval: Some(30),
                    ..WillProperties::default()
                },
            }),
            will_due: None,
            subscriptions: vec![(
                TopicFilter::new("a/+/c").unwrap(),
                StoredSubscription {
                    options: SubscriptionOptions::new(QoS::ExactlyOnce),
                    id: NonZeroU32::new(7),
                },
            )],
            checkpoint: Checkpoint(vec![0, 5, 9]),
        }
    }

    #[test]
    fn round_trips_connected_and_offline() {
        let connected = record();
        assert_eq!(Record::decode(&connected.encode()).unwrap(), connected);

        // Instants go through wall-clock milliseconds: compare at that precision.
        let now = from_unix_ms(to_unix_ms(Instant::now()));
        let offline = Record {
            connected: false,
            node: "n2".into(),
            expires_at: Some(now + Duration::from_secs(3600)),
            will_due: Some(now + Duration::from_secs(30)),
            owner: Owner::Anonymous,
            checkpoint: Checkpoint(Vec::new()),
            ..record()
        };
        assert_eq!(Record::decode(&offline.encode()).unwrap(), offline);

        let bare = Record {
            will: None,
            subscriptions: Vec::new(),
            ..record()
        };
        assert_eq!(Record::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let data = record().encode();
        for len in 0..data.len() {
            assert!(Record::decode(&data[..len]).is_err(), "truncated at {len}");
        }
        let mut flipped = data.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(Record::decode(&flipped).is_err());
        let mut other_version = data.to_vec();
        other_version[0] = 9;
        let err = Record::decode(&other_version).unwrap_err();
        assert!(err.why.contains("version 9"), "{err}");
    }
}
