//! Packet Identifier allocation (§2.2.1).
//!
//! A sender gives each new QoS 1 / QoS 2 PUBLISH, SUBSCRIBE and UNSUBSCRIBE an identifier
//! that is "currently unused" [MQTT-2.2.1-3]: it becomes free again only when the flow
//! it names is complete (PUBACK, PUBCOMP, a PUBREC with an error code, SUBACK, UNSUBACK).
//! The allocator hands identifiers out in increasing order, wrapping from 65,535 to 1,
//! and skips those still in use, so a recently completed identifier is the last one to
//! be reused (which helps when reading traces).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::packet::PacketId;

/// A map keyed by packet identifier, hashed with [`PacketIdHasher`].
pub(crate) type IdMap<V> = HashMap<PacketId, V, BuildHasherDefault<PacketIdHasher>>;

/// How many entries a flow table keeps room for once it is empty again.
pub(crate) const KEEP: usize = 16;

/// When a flow table gives back the room a burst grew it to: when it is empty again
/// after a stretch of flows that needed at most a quarter of that room (the rule the
/// event queues follow), and only past [`KEEP`] entries. A connection that keeps
/// sending bursts of one size keeps its tables; one whose traffic fell back to a
/// trickle lets the peak go with the first small stretch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BurstRoom {
    /// The most entries at once in this stretch (packet identifiers bound it to
    /// 65,535; two bytes keep it inside the sessions' padding).
    peak: u16,
}

impl BurstRoom {
    /// The table holds `len` entries now.
    pub(crate) fn saw(&mut self, len: usize) {
        self.peak = self.peak.max(u16::try_from(len).unwrap_or(u16::MAX));
    }

    /// Whether an empty table's `capacity` is spare after this stretch.
    pub(crate) fn spare(&self, capacity: usize) -> bool {
        capacity > KEEP && usize::from(self.peak) <= capacity / 4
    }

    /// The table is empty: a new stretch begins.
    pub(crate) fn restart(&mut self) {
        self.peak = 0;
    }
}

/// A set of packet identifiers, hashed with [`PacketIdHasher`].
pub(crate) type IdSet = HashSet<PacketId, BuildHasherDefault<PacketIdHasher>>;

/// Hashes a 16-bit packet identifier with one multiplication (every QoS 1/2 flow is
/// an insert and a remove in two of these maps, so SipHash was a visible part of the
/// per-message cost). The product's high half, which every input bit reaches, is
/// folded into the low bits the table indexes by. Keys are not secret, but each map
/// holds at most the flows in flight (bounded by Receive Maximum), so a peer choosing
/// colliding identifiers can only make its own few lookups longer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PacketIdHasher(u64);

impl PacketIdHasher {
    fn mix(&mut self, value: u64) {
        let product = (self.0 ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = product ^ (product >> 32);
    }
}

impl Hasher for PacketIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.mix(u64::from(byte));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }
}

/// Hands out Packet Identifiers that are not in flight.
#[derive(Debug, Clone)]
pub(crate) struct PacketIdAllocator {
    /// The identifier to try first on the next allocation.
    next: PacketId,
    /// Identifiers in flight: allocated and not yet released.
    in_use: IdSet,
}

impl Default for PacketIdAllocator {
    fn default() -> Self {
        Self {
            next: PacketId::MIN,
            in_use: IdSet::default(),
        }
    }
}

/// The identifier after `id`, wrapping from 65,535 to 1.
pub(crate) fn successor(id: PacketId) -> PacketId {
    id.checked_add(1).unwrap_or(PacketId::MIN)
}

impl PacketIdAllocator {
    /// An allocator that tries `next` first.
    pub(crate) fn starting_at(next: PacketId) -> Self {
        Self {
            next,
            in_use: IdSet::default(),
        }
    }

    /// A free identifier, now marked in use; `None` when all 65,535 are in flight.
    pub(crate) fn allocate(&mut self) -> Option<PacketId> {
        if self.in_use.len() >= usize::from(u16::MAX) {
            return None;
        }
        // At most 65,535 probes; only reached when nearly every identifier is in use.
        loop {
            let id = self.next;
            self.next = successor(id);
            if self.in_use.insert(id) {
                return Some(id);
            }
        }
    }

    /// Marks `id` in use (restoring stored state); `false` if it already was.
    pub(crate) fn reserve(&mut self, id: PacketId) -> bool {
        self.in_use.insert(id)
    }

    /// Frees `id` for reuse.
    pub(crate) fn release(&mut self, id: PacketId) {
        self.in_use.remove(&id);
    }

    /// With no identifier in flight, lets go of room `burst` says is spare.
    pub(crate) fn release_spare(&mut self, burst: &BurstRoom) {
        if self.in_use.is_empty() && burst.spare(self.in_use.capacity()) {
            self.in_use = IdSet::default();
        }
    }

    /// How many identifiers are in flight.
    pub(crate) fn len(&self) -> usize {
        self.in_use.len()
    }

    /// How many identifiers the set holds room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.in_use.capacity()
    }

    /// Whether `id` is in flight.
    #[cfg(test)]
    pub(crate) fn is_in_use(&self, id: PacketId) -> bool {
        self.in_use.contains(&id)
    }

    /// How many identifiers are in flight.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// The identifier tried first by the next allocation, kept in stored session state
    /// so a resumed session does not start over at 1.
    pub(crate) fn next(&self) -> PacketId {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: u16) -> PacketId {
        PacketId::new(value).expect("test ids are non-zero")
    }

    #[test]
    fn allocates_in_increasing_order_from_one() {
        let mut ids = PacketIdAllocator::default();
        assert_eq!(ids.allocate(), Some(id(1)));
        assert_eq!(ids.allocate(), Some(id(2)));
        assert_eq!(ids.allocate(), Some(id(3)));
        assert_eq!(ids.in_use(), 3);
    }

    #[test]
    fn wraps_from_65535_to_1() {
        let mut ids = PacketIdAllocator::starting_at(id(65_534));
        assert_eq!(ids.allocate(), Some(id(65_534)));
        assert_eq!(ids.allocate(), Some(id(65_535)));
        assert_eq!(ids.allocate(), Some(id(1)));
    }

    #[test]
    fn skips_identifiers_in_flight_after_wrapping() {
        let mut ids = PacketIdAllocator::starting_at(id(65_535));
        assert!(ids.reserve(id(1)));
        assert!(ids.reserve(id(2)));
        assert_eq!(ids.allocate(), Some(id(65_535)));
        // 1 and 2 are still in flight: never handed out twice.
        assert_eq!(ids.allocate(), Some(id(3)));
        ids.release(id(1));
        assert_eq!(ids.allocate(), Some(id(4)), "a freed id waits for its turn");
    }

    #[test]
    fn reserve_reports_an_id_already_in_use() {
        let mut ids = PacketIdAllocator::default();
        let first = ids.allocate().expect("free ids");
        assert!(!ids.reserve(first));
        assert!(ids.is_in_use(first));
        ids.release(first);
        assert!(!ids.is_in_use(first));
    }

    #[test]
    fn exhaustion_returns_none_and_a_release_recovers() {
        let mut ids = PacketIdAllocator::default();
        for _ in 0..u16::MAX {
            assert!(ids.allocate().is_some());
        }
        assert_eq!(ids.allocate(), None);
        ids.release(id(40_000));
        assert_eq!(ids.allocate(), Some(id(40_000)));
        assert_eq!(ids.allocate(), None);
    }
}
