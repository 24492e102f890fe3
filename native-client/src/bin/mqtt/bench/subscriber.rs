//! The subscriber loop: decode every packet of a read, count and time the deliveries
//! from their stamps, and answer all QoS 1/2 acknowledgements of the read in one write.

use std::time::{Duration, Instant};

use anyhow::bail;
use native_client::QoS;
use protocol::packet::{Packet, PubAck, PubComp, PubRec};
use tokio::sync::watch;

use super::link::Link;
use super::publisher::{Stamp, now_unix_ns};
use super::report::Latency;

/// When a subscriber stops.
#[derive(Debug, Clone)]
pub(super) struct SubscribePlan {
    /// Messages this subscriber should get, once the publishers are done (the sum of
    /// what they sent); `None` while they are still sending.
    pub(super) expected: watch::Receiver<Option<u64>>,
    /// Stop after this many deliveries (`sub --count`), 0 for no such limit.
    pub(super) count: u64,
    /// Stop at this time (`sub --duration`, and the run's timeout).
    pub(super) until: Instant,
    /// Once `expected` is known, stop when nothing arrived for this long: what is still
    /// missing then counts as lost.
    pub(super) drain: Duration,
    /// Messages stamped before this (Unix ns) are counted but not timed.
    pub(super) warmup_end_ns: u64,
}

/// What one subscriber got.
#[derive(Debug)]
pub(super) struct Delivered {
    /// Deliveries, duplicates included.
    pub(super) received: u64,
    pub(super) duplicates: u64,
    /// Deliveries stamped after the warmup.
    pub(super) measured: u64,
    pub(super) first_at: Option<Instant>,
    pub(super) last_at: Option<Instant>,
    /// Stamp → delivery, after the warmup.
    pub(super) latency: Latency,
}

/// Which (publisher, sequence) pairs arrived: one bit each, grown as needed.
///
/// The stamps are peer input (anything published on the filter, not only this tool's
/// messages), so the set grows only as a bench publisher's sequence does: by at most
/// [`Seen::MAX_JUMP_WORDS`] at once, for at most [`Seen::MAX_PUBLISHERS`] publishers.
/// A stamp beyond that is not tracked.
#[derive(Debug, Default)]
struct Seen(Vec<Vec<u64>>);

impl Seen {
    const MAX_PUBLISHERS: usize = 1 << 16;
    /// 64 Ki words: a sequence number up to 4 Mi ahead of the highest seen so far.
    const MAX_JUMP_WORDS: usize = 1 << 16;

    /// Marks `stamp` as seen: `Some(false)` if it was already, `None` if untracked.
    fn insert(&mut self, stamp: Stamp) -> Option<bool> {
        let publisher = stamp.publisher as usize;
        if publisher >= Self::MAX_PUBLISHERS {
            return None;
        }
        if self.0.len() <= publisher {
            self.0.resize_with(publisher + 1, Vec::new);
        }
        let bits = &mut self.0[publisher];
        let word = usize::try_from(stamp.seq / 64).ok()?;
        if word >= bits.len() + Self::MAX_JUMP_WORDS {
            return None;
        }
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (stamp.seq % 64);
        let new = bits[word] & mask == 0;
        bits[word] |= mask;
        Some(new)
    }
}

/// Receives on `link` (already subscribed) until the plan says stop.
pub(super) async fn receive(
    mut link: Link,
    mut plan: SubscribePlan,
) -> anyhow::Result<(Link, Delivered)> {
    let mut out = Delivered {
        received: 0,
        duplicates: 0,
        measured: 0,
        first_at: None,
        last_at: None,
        latency: Latency::new(),
    };
    let mut seen = Seen::default();
    // Since when nothing arrived, for the drain once the expected count is known.
    let mut quiet_since = Instant::now();
    // The publishers' side hung up without a count (`sub` alone, or a failed run).
    let mut no_publishers = false;
    loop {
        let now = Instant::now();
        let now_ns = now_unix_ns();
        let before = out.received;
        while let Some(packet) = link.next_packet()? {
            match packet {
                Packet::Publish(publish) => {
                    out.received += 1;
                    match publish.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => {
                            if let Some(id) = publish.packet_id {
                                link.queue(&Packet::PubAck(PubAck::new(id)))?;
                            }
                        }
                        QoS::ExactlyOnce => {
                            if let Some(id) = publish.packet_id {
                                link.queue(&Packet::PubRec(PubRec::new(id)))?;
                            }
                        }
                    }
                    let Some(stamp) = Stamp::read(&publish.payload) else {
                        continue;
                    };
                    if seen.insert(stamp) == Some(false) {
                        out.duplicates += 1;
                    }
                    if stamp.sent_ns >= plan.warmup_end_ns {
                        out.measured += 1;
                        out.latency
                            .record(now_ns.saturating_sub(stamp.sent_ns) / 1000);
                    }
                }
                Packet::PubRel(rel) => {
                    link.queue(&Packet::PubComp(PubComp::new(rel.packet_id)))?;
                }
                Packet::Disconnect(disconnect) => {
                    bail!(
                        "the broker disconnected the subscriber: {:?}",
                        disconnect.reason_code
                    )
                }
                _ => {}
            }
        }
        if out.received > before {
            out.first_at.get_or_insert(now);
            out.last_at = Some(now);
            quiet_since = now;
        }
        link.flush().await?;

        let unique = out.received - out.duplicates;
        let expected = *plan.expected.borrow();
        if (plan.count > 0 && out.received >= plan.count)
            || expected.is_some_and(|expected| unique >= expected)
            || now >= plan.until
        {
            break;
        }
        let mut wake = plan.until;
        if expected.is_some() {
            if now >= quiet_since + plan.drain {
                break;
            }
            wake = wake.min(quiet_since + plan.drain);
        }
        tokio::select! {
            read = link.fill() => read?,
            changed = plan.expected.changed(), if expected.is_none() && !no_publishers => {
                match changed {
                    // The drain starts when the publishers are done, not before.
                    Ok(()) => quiet_since = quiet_since.max(Instant::now()),
                    Err(_) => no_publishers = true,
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    Ok((link, out))
}

#[cfg(test)]
mod tests {
    use super::{Seen, Stamp};

    fn stamp(publisher: u32, seq: u64) -> Stamp {
        Stamp {
            sent_ns: 0,
            publisher,
            seq,
        }
    }

    #[test]
    fn seen_counts_a_repeat_as_a_duplicate() {
        let mut seen = Seen::default();
        assert_eq!(seen.insert(stamp(3, 70)), Some(true));
        assert_eq!(seen.insert(stamp(3, 71)), Some(true));
        assert_eq!(seen.insert(stamp(3, 70)), Some(false));
        assert_eq!(seen.insert(stamp(0, 70)), Some(true));
    }

    #[test]
    fn seen_does_not_grow_for_a_foreign_stamp() {
        let mut seen = Seen::default();
        // Someone else's payload on the bench topic: not tracked, nothing allocated.
        assert_eq!(seen.insert(stamp(u32::MAX, 0)), None);
        assert_eq!(seen.insert(stamp(1, u64::MAX)), None);
        assert_eq!(seen.0.iter().map(Vec::len).sum::<usize>(), 0);
        // A bench publisher's sequence still grows as it goes.
        for seq in 0..10_000 {
            assert_eq!(seen.insert(stamp(1, seq)), Some(true));
        }
    }
}
