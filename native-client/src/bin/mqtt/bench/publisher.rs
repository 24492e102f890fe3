//! The publisher loop and the payload stamp.
//!
//! Each PUBLISH is encoded once by `protocol` into a template; sending one copies the
//! template into the write buffer and patches the packet identifier and the stamp in
//! place. Everything due is batched into one write of up to [`BATCH_BYTES`]. At QoS 1
//! and 2 at most `inflight` messages are unacknowledged (packet identifiers come from a
//! free list), and acknowledgements are read between batches without waiting.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use bytes::{Bytes, BytesMut};
use native_client::{ProtocolVersion, QoS};
use protocol::packet::{self, Packet, PacketId, PubRel, Publish};

use super::link::Link;
use super::report::Latency;

/// Bytes of PUBLISH packets written at once: large enough that a flat-out publisher
/// makes few system calls, small enough to keep a 1 KiB-payload batch under 40 packets.
const BATCH_BYTES: usize = 32 * 1024;

/// The stamp at the start of every payload: send time (8 bytes, Unix ns, big endian),
/// publisher index (4) and sequence number (8). Wall-clock time, so that `sub` in one
/// process can measure latency from `pub` in another on the same host.
pub(super) const STAMP_LEN: usize = 20;

/// Nanoseconds since the Unix epoch.
pub(super) fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A payload's stamp.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub(super) sent_ns: u64,
    pub(super) publisher: u32,
    pub(super) seq: u64,
}

impl Stamp {
    /// The stamp of a bench payload; `None` for a payload too short to be one.
    pub(super) fn read(payload: &[u8]) -> Option<Self> {
        let sent_ns = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
        let publisher = u32::from_be_bytes(payload.get(8..12)?.try_into().ok()?);
        let seq = u64::from_be_bytes(payload.get(12..20)?.try_into().ok()?);
        Some(Self {
            sent_ns,
            publisher,
            seq,
        })
    }
}

/// What one publisher does.
#[derive(Debug, Clone)]
pub(super) struct PublishPlan {
    pub(super) topic: String,
    pub(super) qos: QoS,
    /// Payload size, at least [`STAMP_LEN`].
    pub(super) payload_bytes: usize,
    /// This publisher's index, stamped into its payloads.
    pub(super) index: u32,
    /// Messages to send (`u64::MAX`: until `until`).
    pub(super) count: u64,
    /// Messages per second, 0 for as fast as the broker takes them.
    pub(super) rate: f64,
    /// QoS 1 and 2: unacknowledged messages allowed (fewer if the broker's Receive
    /// Maximum is lower).
    pub(super) inflight: u16,
    /// Stop sending at this time, if set.
    pub(super) until: Option<Instant>,
    /// Acknowledgements of messages sent before this are not timed.
    pub(super) warmup_until: Instant,
    /// The run fails if this publisher is not done by then.
    pub(super) deadline: Instant,
}

/// What one publisher did.
#[derive(Debug)]
pub(super) struct Published {
    pub(super) sent: u64,
    /// Successful PUBACK / PUBCOMP; at QoS 0 all sent, once PINGRESP came back.
    pub(super) acked: u64,
    pub(super) first_sent: Option<Instant>,
    pub(super) last_acked: Option<Instant>,
    /// Sent → acknowledged, QoS 1 and 2 only.
    pub(super) ack_latency: Latency,
}

/// A PUBLISH encoded once, with the offsets patched per message.
#[derive(Debug)]
struct Template {
    bytes: BytesMut,
    stamp_at: usize,
    packet_id_at: Option<usize>,
}

impl Template {
    fn new(plan: &PublishPlan, version: ProtocolVersion) -> anyhow::Result<Self> {
        let mut publish = Publish::new(
            plan.topic.clone(),
            Bytes::from(vec![0u8; plan.payload_bytes]),
        );
        publish.qos = plan.qos;
        if plan.qos != QoS::AtMostOnce {
            publish.packet_id = Some(PacketId::MIN);
        }
        let mut bytes = BytesMut::new();
        packet::encode(&Packet::Publish(publish), version, &mut bytes)?;
        // The payload ends the packet; before it, an MQTT 5 PUBLISH has its (empty, one
        // byte) property length, and before that the packet identifier.
        let stamp_at = bytes.len() - plan.payload_bytes;
        let properties = usize::from(version.is_v5());
        let packet_id_at = (plan.qos != QoS::AtMostOnce).then(|| stamp_at - properties - 2);
        Ok(Self {
            bytes,
            stamp_at,
            packet_id_at,
        })
    }

    fn append(&self, out: &mut BytesMut, stamp: Stamp, packet_id: Option<u16>) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[at..];
        let s = self.stamp_at;
        packet[s..s + 8].copy_from_slice(&stamp.sent_ns.to_be_bytes());
        packet[s + 8..s + 12].copy_from_slice(&stamp.publisher.to_be_bytes());
        packet[s + 12..s + 20].copy_from_slice(&stamp.seq.to_be_bytes());
        if let (Some(p), Some(id)) = (self.packet_id_at, packet_id) {
            packet[p..p + 2].copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// Runs one publisher on `link` to the end of its plan; `start` is the common start of
/// the rate schedules.
pub(super) async fn publish(
    mut link: Link,
    plan: PublishPlan,
    start: Instant,
) -> anyhow::Result<(Link, Published)> {
    let template = Template::new(&plan, link.version())?;
    let window = if plan.qos == QoS::AtMostOnce {
        0
    } else {
        usize::from(plan.inflight.min(link.receive_maximum).max(1))
    };
    // Packet identifiers 1..=window; a slot's send time, for the ack latency.
    let mut free: Vec<u16> = (1..=window as u16).rev().collect();
    let mut sent_at: Vec<Option<Instant>> = vec![None; window + 1];
    let mut ping_sent = false;
    let mut ping_back = false;
    let mut out = Published {
        sent: 0,
        acked: 0,
        first_sent: None,
        last_acked: None,
        ack_latency: Latency::new(),
    };
    loop {
        // One read per round, so that a DISCONNECT before the end of the stream is
        // decoded (and reported) before the end is.
        link.try_fill()?;
        let now = Instant::now();
        while let Some(packet) = link.next_packet()? {
            let (id, done) = match packet {
                Packet::PubAck(ack) => (ack.packet_id, Some(!ack.reason_code.is_error())),
                Packet::PubRec(rec) if rec.reason_code.is_error() => (rec.packet_id, Some(false)),
                Packet::PubRec(rec) => {
                    link.queue(&Packet::PubRel(PubRel::new(rec.packet_id)))?;
                    (rec.packet_id, None)
                }
                Packet::PubComp(comp) => (comp.packet_id, Some(!comp.reason_code.is_error())),
                Packet::PingResp => {
                    ping_back = true;
                    continue;
                }
                Packet::Disconnect(disconnect) => {
                    bail!(
                        "publisher {}: the broker disconnected: {:?}",
                        plan.index,
                        disconnect.reason_code
                    )
                }
                _ => continue,
            };
            let Some(success) = done else { continue };
            let slot = usize::from(id.get());
            let Some(at) = sent_at.get_mut(slot).and_then(Option::take) else {
                bail!(
                    "publisher {}: acknowledgement for unknown packet id {id}",
                    plan.index
                );
            };
            free.push(id.get());
            if success {
                out.acked += 1;
                out.last_acked = Some(now);
                if at >= plan.warmup_until {
                    out.ack_latency
                        .record(now.duration_since(at).as_micros() as u64);
                }
            }
        }

        let sending = out.sent < plan.count && plan.until.is_none_or(|until| now < until);
        if sending {
            let due = if plan.rate > 0.0 {
                ((now - start).as_secs_f64() * plan.rate) as u64 + 1
            } else {
                u64::MAX
            }
            .min(plan.count);
            let sent_ns = now_unix_ns();
            while out.sent < due
                && link.write.len() < BATCH_BYTES
                && (window == 0 || !free.is_empty())
            {
                let id = free.pop();
                if let Some(id) = id {
                    sent_at[usize::from(id)] = Some(now);
                }
                let stamp = Stamp {
                    sent_ns,
                    publisher: plan.index,
                    seq: out.sent,
                };
                template.append(&mut link.write, stamp, id);
                out.sent += 1;
                out.first_sent.get_or_insert(now);
            }
        } else if window == 0 && !ping_sent {
            // QoS 0 has no acknowledgement: the PINGRESP after the last PUBLISH says
            // the broker has read them all.
            link.queue(&Packet::PingReq)?;
            ping_sent = true;
        }
        if !link.write.is_empty() {
            link.flush().await?;
            continue;
        }
        if !sending {
            if window == 0 && ping_back {
                out.acked = out.sent;
                out.last_acked = Some(Instant::now());
                break;
            }
            if window > 0 && free.len() == window {
                break;
            }
        }
        // Wait for an acknowledgement, the next message due, or the end of sending.
        let mut wake = plan.deadline;
        if sending && (window == 0 || !free.is_empty()) && plan.rate > 0.0 {
            wake = wake.min(start + Duration::from_secs_f64(out.sent as f64 / plan.rate));
        }
        if sending && let Some(until) = plan.until {
            wake = wake.min(until);
        }
        tokio::select! {
            read = link.fill() => read?,
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        if Instant::now() >= plan.deadline {
            return Err(anyhow!(
                "publisher {}: timed out with {} of {} messages acknowledged",
                plan.index,
                out.acked,
                out.sent
            ));
        }
    }
    Ok((link, out))
}
