//! Topic aliases (§3.3.2.3.4), MQTT 5 only.
//!
//! A Topic Alias is a number that stands for a topic name on one network connection, in
//! one direction: the receiver says how many it accepts (Topic Alias Maximum, in CONNECT
//! for server-to-client traffic, in CONNACK for client-to-server), the sender chooses
//! which topics get one. Mappings never outlive the connection [MQTT-3.3.2-7], so both
//! tables are reset on every new connection.
//!
//! - [`InboundAliases`] resolves what the peer sends, enforcing the maximum we
//!   advertised: an alias above it is *Topic Alias invalid* (0x94) [MQTT-3.3.2-10]
//!   [MQTT-3.3.2-12]; an empty topic with an alias that has no mapping yet is a
//!   *Protocol Error* (0x82) (§3.3.2.3.4).
//! - [`OutboundAliases`] assigns aliases to what we send, least recently used first out,
//!   never above the peer's maximum [MQTT-3.3.2-9] [MQTT-3.3.2-11]. The first PUBLISH of
//!   a topic carries the topic and its new alias; later ones an empty topic and the
//!   alias.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;

use bytes::BytesMut;
use bytestring::ByteString;

use super::ProtocolViolation;
use crate::error::EncodeError;
use crate::packet::{self, MAX_PACKET_SIZE, ProtocolVersion, Publish};

/// The receiver's side: alias → topic, as the peer established them.
#[derive(Debug, Clone, Default)]
pub(crate) struct InboundAliases {
    /// The Topic Alias Maximum we advertised; 0 accepts none.
    maximum: u16,
    /// Mappings established on this connection, allocated with the first one: most
    /// connections use no alias, and an empty map is still 48 bytes of every session.
    #[allow(clippy::box_collection)] // the point: one word inline, not 48 bytes
    topics: Option<Box<HashMap<NonZeroU16, ByteString>>>,
}

impl InboundAliases {
    /// An empty table accepting aliases 1..=`maximum`.
    pub(crate) fn new(maximum: u16) -> Self {
        Self {
            maximum,
            topics: None,
        }
    }

    /// Replaces the topic alias of `publish` (if any) by its topic name, recording a new
    /// mapping when the PUBLISH carries both. Afterwards `publish` has a topic and no
    /// alias, so it can be forwarded as is.
    pub(crate) fn resolve(&mut self, publish: &mut Publish) -> Result<(), ProtocolViolation> {
        let Some(alias) = publish.properties.take_topic_alias() else {
            return Ok(());
        };
        if alias.get() > self.maximum {
            return Err(ProtocolViolation::TopicAliasInvalid {
                alias,
                maximum: self.maximum,
            });
        }
        if publish.topic.is_empty() {
            let topic = self
                .topics
                .as_ref()
                .and_then(|topics| topics.get(&alias))
                .ok_or(ProtocolViolation::TopicAliasUnknown(alias))?;
            publish.topic = topic.clone();
        } else {
            self.topics
                .get_or_insert_default()
                .insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// The sender's side: topic → alias, with least-recently-used replacement.
///
/// The eviction order is a queue of uses with lazy deletion: a use appends to `uses`
/// and leaves the alias's older entries in place; eviction skips entries that are no
/// longer an alias's last use, and the queue is compacted when stale entries make up
/// more than half of it. Every operation is amortised O(1) and needs no ordered map
/// (which is also what keeps `BTreeMap` out of the browser client's wasm).
#[derive(Debug, Clone, Default)]
pub(crate) struct OutboundAliases {
    /// The peer's Topic Alias Maximum; 0 means we send no aliases.
    maximum: u16,
    /// The mappings, allocated with the first alias handed out: most peers accept none,
    /// and the empty table would be 130 bytes of every session.
    table: Option<Box<OutboundTable>>,
}

/// The mappings of [`OutboundAliases`].
#[derive(Debug, Clone, Default)]
struct OutboundTable {
    /// Topic → its alias.
    by_topic: HashMap<ByteString, NonZeroU16>,
    /// Per alias handed out (index alias − 1): the topic it stands for (empty when
    /// free) and the tick of its last use.
    slots: Vec<(ByteString, u64)>,
    /// (tick, alias) per use, oldest first; an entry whose tick is not its alias's last
    /// use is stale.
    uses: VecDeque<(u64, NonZeroU16)>,
    /// Increases on every use.
    tick: u64,
    /// Aliases handed out and then forgotten, to hand out again first.
    free: Vec<NonZeroU16>,
}

/// How a PUBLISH is to name its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasUse {
    /// Topic name and this alias: establishes (or re-points) the mapping.
    Establish(NonZeroU16),
    /// Empty topic name and this alias, mapped by an earlier PUBLISH.
    Reuse(NonZeroU16),
}

impl OutboundAliases {
    /// An empty table that assigns aliases 1..=`maximum`.
    pub(crate) fn new(maximum: u16) -> Self {
        Self {
            maximum,
            table: None,
        }
    }

    /// The alias to use for `topic`, updating the table as if the PUBLISH is sent.
    /// `None` when the peer accepts no aliases.
    pub(crate) fn assign(&mut self, topic: &ByteString) -> Option<AliasUse> {
        if self.maximum == 0 || topic.is_empty() {
            return None;
        }
        self.table
            .get_or_insert_default()
            .assign(topic, self.maximum)
    }

    /// Forgets `topic`'s mapping: the PUBLISH that would have established it was sent
    /// without an alias after all.
    pub(crate) fn forget(&mut self, topic: &ByteString) {
        if let Some(table) = &mut self.table {
            table.forget(topic);
        }
    }
}

impl OutboundTable {
    /// [`OutboundAliases::assign`] for a peer that accepts aliases 1..=`maximum`.
    fn assign(&mut self, topic: &ByteString, maximum: u16) -> Option<AliasUse> {
        self.tick += 1;
        if let Some(&alias) = self.by_topic.get(topic) {
            self.used(alias);
            return Some(AliasUse::Reuse(alias));
        }
        let alias = if let Some(alias) = self.free.pop() {
            alias
        } else if self.slots.len() < usize::from(maximum) {
            self.slots.push(Default::default());
            NonZeroU16::new(u16::try_from(self.slots.len()).ok()?)?
        } else {
            let alias = self.least_recently_used()?;
            let evicted = std::mem::take(&mut self.slot(alias).0);
            self.by_topic.remove(&evicted);
            alias
        };
        self.by_topic.insert(topic.clone(), alias);
        self.slot(alias).0 = topic.clone();
        self.used(alias);
        Some(AliasUse::Establish(alias))
    }

    /// The slot of an alias handed out.
    fn slot(&mut self, alias: NonZeroU16) -> &mut (ByteString, u64) {
        &mut self.slots[usize::from(alias.get() - 1)]
    }

    /// Records a use of `alias` at the current tick.
    fn used(&mut self, alias: NonZeroU16) {
        self.slot(alias).1 = self.tick;
        self.uses.push_back((self.tick, alias));
        if self.uses.len() > 2 * self.slots.len() + 8 {
            let slots = &self.slots;
            self.uses
                .retain(|&(tick, alias)| slots[usize::from(alias.get() - 1)].1 == tick);
        }
    }

    /// Takes the least recently used alias off the queue (it stays mapped).
    fn least_recently_used(&mut self) -> Option<NonZeroU16> {
        while let Some((tick, alias)) = self.uses.pop_front() {
            if self.slot(alias).1 == tick {
                return Some(alias);
            }
        }
        None
    }

    /// [`OutboundAliases::forget`].
    fn forget(&mut self, topic: &ByteString) {
        if let Some(alias) = self.by_topic.remove(topic) {
            // No tick is 0, so the alias's entries in `uses` are stale from now on.
            *self.slot(alias) = Default::default();
            self.free.push(alias);
        }
    }
}

impl OutboundAliases {
    /// Encodes `publish` (which carries its full topic; its own topic alias is
    /// ignored) into `tx` for `version`, with an alias when the peer accepts them. Should
    /// the alias property push the packet over the peer's `maximum` size, the topic is
    /// sent instead of the alias. Without an alias nothing is copied: the PUBLISH is
    /// encoded from the reference.
    pub(crate) fn write(
        &mut self,
        tx: &mut BytesMut,
        publish: &Publish,
        version: ProtocolVersion,
        maximum: u32,
    ) -> Result<(), EncodeError> {
        let alias = if version.is_v5() {
            self.assign(&publish.topic)
        } else {
            None
        };
        let Some(alias) = alias else {
            if publish.properties.topic_alias.is_none() {
                return packet::encode_publish(publish, version, tx);
            }
            let mut plain = publish.clone();
            plain.properties.set_topic_alias(None);
            return packet::encode_publish(&plain, version, tx);
        };
        let mut aliased = publish.clone();
        Self::apply(&mut aliased, alias);
        let too_large = maximum < MAX_PACKET_SIZE
            && packet::publish_encoded_len(&aliased, version)
                .is_ok_and(|size| size > maximum as usize);
        if too_large {
            aliased.topic = publish.topic.clone();
            aliased.properties.set_topic_alias(None);
        }
        let result = packet::encode_publish(&aliased, version, tx);
        if (too_large || result.is_err()) && matches!(alias, AliasUse::Establish(_)) {
            // The mapping never reached the peer.
            self.forget(&publish.topic);
        }
        result
    }

    /// Applies `alias` to `publish`.
    pub(crate) fn apply(publish: &mut Publish, alias: AliasUse) {
        match alias {
            AliasUse::Establish(alias) => publish.properties.topic_alias = Some(alias),
            AliasUse::Reuse(alias) => {
                publish.properties.topic_alias = Some(alias);
                publish.topic = ByteString::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(value: u16) -> NonZeroU16 {
        NonZeroU16::new(value).expect("test aliases are non-zero")
    }

    fn topic(name: &'static str) -> ByteString {
        ByteString::from_static(name)
    }

    #[test]
    fn first_use_establishes_later_uses_reuse() {
        let mut aliases = OutboundAliases::new(2);
        assert_eq!(
            aliases.assign(&topic("a/b")),
            Some(AliasUse::Establish(alias(1)))
        );
        assert_eq!(
            aliases.assign(&topic("a/b")),
            Some(AliasUse::Reuse(alias(1)))
        );
        assert_eq!(
            aliases.assign(&topic("c")),
            Some(AliasUse::Establish(alias(2)))
        );
        assert_eq!(
            aliases.assign(&topic("a/b")),
            Some(AliasUse::Reuse(alias(1)))
        );
    }

    #[test]
    fn the_least_recently_used_topic_loses_its_alias() {
        let mut aliases = OutboundAliases::new(2);
        aliases.assign(&topic("one"));
        aliases.assign(&topic("two"));
        aliases.assign(&topic("one")); // "two" is now the least recently used
        assert_eq!(
            aliases.assign(&topic("three")),
            Some(AliasUse::Establish(alias(2)))
        );
        assert_eq!(
            aliases.assign(&topic("one")),
            Some(AliasUse::Reuse(alias(1)))
        );
        // "two" was evicted: it gets a fresh mapping, taking the alias of "three".
        assert_eq!(
            aliases.assign(&topic("two")),
            Some(AliasUse::Establish(alias(2)))
        );
        assert_eq!(
            aliases.assign(&topic("three")),
            Some(AliasUse::Establish(alias(1)))
        );
    }

    #[test]
    fn never_assigns_above_the_maximum() {
        let mut aliases = OutboundAliases::new(3);
        for i in 0..100u32 {
            let name = ByteString::from(format!("t/{}", i % 7));
            let (AliasUse::Establish(a) | AliasUse::Reuse(a)) =
                aliases.assign(&name).expect("aliases are enabled");
            assert!((1..=3).contains(&a.get()));
        }
    }

    /// Against a plain list in use order, over enough uses that the queue of uses is
    /// compacted many times, with some establishing PUBLISHes forgotten.
    #[test]
    fn eviction_matches_a_plain_lru_model() {
        let mut aliases = OutboundAliases::new(5);
        // (topic, alias), least recently used first; free aliases, last out first.
        let mut model: Vec<(ByteString, NonZeroU16)> = Vec::new();
        let mut free: Vec<NonZeroU16> = Vec::new();
        let mut handed_out = 0;
        let mut state = 7u32;
        for _ in 0..5_000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let name = ByteString::from(format!("t/{}", (state >> 16) % 9));
            let expected = if let Some(at) = model.iter().position(|(t, _)| *t == name) {
                let entry = model.remove(at);
                let alias = entry.1;
                model.push(entry);
                AliasUse::Reuse(alias)
            } else {
                let alias = if let Some(alias) = free.pop() {
                    alias
                } else if handed_out < 5 {
                    handed_out += 1;
                    alias(handed_out)
                } else {
                    model.remove(0).1
                };
                model.push((name.clone(), alias));
                AliasUse::Establish(alias)
            };
            assert_eq!(aliases.assign(&name), Some(expected));
            if matches!(expected, AliasUse::Establish(_)) && (state >> 8).is_multiple_of(4) {
                aliases.forget(&name);
                let (_, alias) = model.pop().expect("just pushed");
                free.push(alias);
            }
            let uses = aliases.table.as_ref().map_or(0, |table| table.uses.len());
            assert!(uses <= 2 * 5 + 9);
        }
    }

    #[test]
    fn maximum_zero_assigns_nothing() {
        let mut aliases = OutboundAliases::new(0);
        assert_eq!(aliases.assign(&topic("a")), None);
        assert!(
            aliases.table.is_none(),
            "nothing allocated for a peer without aliases"
        );
    }

    #[test]
    fn forget_frees_the_alias_without_clashing() {
        let mut aliases = OutboundAliases::new(3);
        aliases.assign(&topic("a"));
        aliases.assign(&topic("b"));
        aliases.assign(&topic("c"));
        aliases.forget(&topic("b"));
        assert_eq!(
            aliases.assign(&topic("d")),
            Some(AliasUse::Establish(alias(2)))
        );
        assert_eq!(aliases.assign(&topic("c")), Some(AliasUse::Reuse(alias(3))));
        assert_eq!(
            aliases.assign(&topic("b")),
            Some(AliasUse::Establish(alias(1))),
            "evicts a"
        );
    }

    #[test]
    fn inbound_resolves_and_checks_the_maximum() {
        let mut aliases = InboundAliases::new(2);
        let mut first = Publish::new("x/y", "1");
        first.properties.topic_alias = Some(alias(2));
        aliases.resolve(&mut first).expect("valid alias");
        assert_eq!(first.topic, "x/y");
        assert_eq!(first.properties.topic_alias, None);

        let mut second = Publish::new(ByteString::new(), "2");
        second.properties.topic_alias = Some(alias(2));
        aliases.resolve(&mut second).expect("known alias");
        assert_eq!(second.topic, "x/y");

        let mut unknown = Publish::new(ByteString::new(), "3");
        unknown.properties.topic_alias = Some(alias(1));
        let err = aliases.resolve(&mut unknown).expect_err("no mapping for 1");
        assert_eq!(err.reason_code(), crate::ReasonCode::ProtocolError);

        let mut too_big = Publish::new("z", "4");
        too_big.properties.topic_alias = Some(alias(3));
        let err = aliases
            .resolve(&mut too_big)
            .expect_err("above the maximum");
        assert_eq!(err.reason_code(), crate::ReasonCode::TopicAliasInvalid);
    }
}
