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
#[derive(Debug, Default)]
struct Seen(Vec<Vec<u64>>);

impl Seen {
    /// Marks `stamp` as seen; `false` if it was already.
    fn insert(&mut self, stamp: Stamp) -> bool {
        let publisher = stamp.publisher as usize;
        if self.0.len() <= publisher {
            self.0.resize_with(publisher + 1, Vec::new);
        }
        let bits = &mut self.0[publisher];
        let word = (stamp.seq / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (stamp.seq % 64);
        let new = bits[word] & mask == 0;
        bits[word] |= mask;
        new
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
                    if !seen.insert(stamp) {
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
