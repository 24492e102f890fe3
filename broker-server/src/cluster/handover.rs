//! A session handed from one node to another: what crosses NATS when a client that was
//! connected (or left its session) on node A connects to node B.
//!
//! A [`Handover`] carries the session's subscriptions, the messages waiting in its
//! mailbox and its protocol state (the QoS 1/2 flows in flight, with their packet
//! identifiers, and the inbound QoS 2 identifiers not yet released), so the client
//! resumes on B exactly where it was on A: a QoS 2 message in flight is neither lost
//! nor delivered twice.
//!
//! The encoding reuses the store's record formats (`storage::codec`) for subscriptions
//! and messages and MQTT 5's own PUBLISH encoding for the flows in flight:
//!
//! ```text
//! u8 version (1)
//! u32 len, session record (subscriptions only)
//! u32 count, then per message: u8 QoS, u32 len, stored message
//! u8 has_state; if 1:
//!   u32 count, then per flow: u8 0 + u32 len + PUBLISH packet (MQTT 5) | u8 1 + u16 PUBREL id
//!   u32 count, then u16 per inbound id awaiting PUBREL
//!   u16 next packet id (0: none)
//! ```

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protocol::session::{OutboundMessage, SessionState};
use protocol::{PacketId, ProtocolVersion, QoS};

use crate::broker::backplane::Handover;
use crate::storage::SessionRecord;
use crate::storage::codec;

/// The format's version byte.
const VERSION: u8 = 1;
/// The key the store's checksums are computed with (no store key applies here).
const KEY: &[u8] = b"handover";

/// A handover that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("damaged session handover: {0}")]
pub struct HandoverError(String);

fn damaged(why: impl Into<String>) -> HandoverError {
    HandoverError(why.into())
}

/// Encodes `handover`.
pub fn encode(handover: &Handover) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    out.put_u8(VERSION);
    let record = SessionRecord {
        id: 0,
        expiry_interval: 0,
        expires_at: None,
        subscriptions: handover.subscriptions.clone(),
        will: None,
        owner: crate::session::Owner::Unknown,
    };
    let record = codec::encode_session(&record, KEY);
    out.put_u32_le(record.len() as u32);
    out.put_slice(&record);
    out.put_u32_le(handover.messages.len() as u32);
    for (message, qos) in &handover.messages {
        let body = codec::encode_message(message, KEY);
        out.put_u8(*qos as u8);
        out.put_u32_le(body.len() as u32);
        out.put_slice(&body);
    }
    match &handover.state {
        None => out.put_u8(0),
        Some(state) => {
            out.put_u8(1);
            out.put_u32_le(state.outbound.len() as u32);
            for flow in &state.outbound {
                match flow {
                    OutboundMessage::Publish(publish) => {
                        let mut packet = BytesMut::new();
                        let encoded = protocol::packet::encode(
                            &protocol::Packet::Publish(publish.clone()),
                            ProtocolVersion::V5,
                            &mut packet,
                        );
                        if encoded.is_err() {
                            // Larger than any packet: it could never have been sent.
                            continue;
                        }
                        out.put_u8(0);
                        out.put_u32_le(packet.len() as u32);
                        out.put_slice(&packet);
                    }
                    OutboundMessage::Release(id) => {
                        out.put_u8(1);
                        out.put_u16_le(id.get());
                    }
                    _ => {}
                }
            }
            out.put_u32_le(state.inbound_awaiting_release.len() as u32);
            for id in &state.inbound_awaiting_release {
                out.put_u16_le(id.get());
            }
            out.put_u16_le(state.next_packet_id.map_or(0, PacketId::get));
        }
    }
    out.freeze()
}

/// Decodes what [`encode`] wrote.
pub fn decode(mut data: Bytes) -> Result<Handover, HandoverError> {
    let version = take_u8(&mut data)?;
    if version != VERSION {
        return Err(damaged(format!("unknown version {version}")));
    }
    let record = take_slice(&mut data)?;
    let record = codec::decode_session(&record, KEY).map_err(|err| damaged(err.to_string()))?;
    let count = take_u32(&mut data)?;
    let mut messages = Vec::new();
    for _ in 0..count {
        let qos = QoS::from_u8(take_u8(&mut data)?).ok_or_else(|| damaged("bad QoS"))?;
        let body = take_slice(&mut data)?;
        let message = codec::decode_message(&body, KEY).map_err(|err| damaged(err.to_string()))?;
        messages.push((Arc::new(message), qos));
    }
    let state = match take_u8(&mut data)? {
        0 => None,
        _ => {
            let count = take_u32(&mut data)?;
            let mut outbound = Vec::new();
            for _ in 0..count {
                match take_u8(&mut data)? {
                    0 => {
                        let mut packet = BytesMut::from(&take_slice(&mut data)?[..]);
                        let limits = protocol::packet::Limits::default();
                        match protocol::packet::decode(&mut packet, &limits) {
                            Ok(Some(protocol::Packet::Publish(publish))) => {
                                outbound.push(OutboundMessage::Publish(publish))
                            }
                            _ => return Err(damaged("bad PUBLISH in flight")),
                        }
                    }
                    _ => outbound.push(OutboundMessage::Release(take_id(&mut data)?)),
                }
            }
            let count = take_u32(&mut data)?;
            let mut inbound_awaiting_release = Vec::new();
            for _ in 0..count {
                inbound_awaiting_release.push(take_id(&mut data)?);
            }
            let next_packet_id = PacketId::new(take_u16(&mut data)?);
            Some(SessionState {
                outbound,
                inbound_awaiting_release,
                next_packet_id,
            })
        }
    };
    Ok(Handover {
        subscriptions: record.subscriptions,
        messages,
        state,
        replay_from: None,
    })
}

fn need(data: &Bytes, len: usize) -> Result<(), HandoverError> {
    if data.remaining() < len {
        return Err(damaged("truncated"));
    }
    Ok(())
}

fn take_u8(data: &mut Bytes) -> Result<u8, HandoverError> {
    need(data, 1)?;
    Ok(data.get_u8())
}

fn take_u16(data: &mut Bytes) -> Result<u16, HandoverError> {
    need(data, 2)?;
    Ok(data.get_u16_le())
}

fn take_u32(data: &mut Bytes) -> Result<u32, HandoverError> {
    need(data, 4)?;
    Ok(data.get_u32_le())
}

fn take_id(data: &mut Bytes) -> Result<PacketId, HandoverError> {
    PacketId::new(take_u16(data)?).ok_or_else(|| damaged("packet id 0"))
}

fn take_slice(data: &mut Bytes) -> Result<Bytes, HandoverError> {
    let len = take_u32(data)? as usize;
    need(data, len)?;
    Ok(data.split_to(len))
}

#[cfg(test)]
mod tests {
    use protocol::{Publish, SubscriptionOptions, TopicFilter};

    use super::*;
    use crate::session::StoredSubscription;

    #[test]
    fn a_handover_round_trips() {
        let message = codec::plain_message("a/b", "payload", QoS::ExactlyOnce, false);
        let publish = Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: "a/c".into(),
            packet_id: PacketId::new(7),
            payload: Bytes::from_static(b"in flight"),
            properties: Default::default(),
        };
        let id = |n| PacketId::new(n).unwrap();
        let handover = Handover {
            subscriptions: vec![(
                TopicFilter::new("a/#").unwrap(),
                StoredSubscription {
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        ..Default::default()
                    },
                    id: std::num::NonZeroU32::new(3),
                },
            )],
            messages: vec![(message.clone(), QoS::AtLeastOnce)],
            state: Some(SessionState {
                outbound: vec![
                    OutboundMessage::Publish(publish.clone()),
                    OutboundMessage::Release(id(9)),
                ],
                inbound_awaiting_release: vec![id(4)],
                next_packet_id: Some(id(10)),
            }),
            replay_from: None,
        };
        let back = decode(encode(&handover)).unwrap();
        assert_eq!(back.subscriptions, handover.subscriptions);
        assert_eq!(back.messages.len(), 1);
        assert_eq!(*back.messages[0].0, *message);
        assert_eq!(back.messages[0].1, QoS::AtLeastOnce);
        assert_eq!(back.state, handover.state);
        let mut truncated = encode(&handover);
        truncated.truncate(truncated.len() - 3);
        assert!(decode(truncated).is_err());
    }
}
