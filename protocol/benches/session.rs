//! The server session's hot path, as the broker drives it for one subscriber: send a
//! window of PUBLISHes (`send_publish`), take the bytes (`poll_transmit`), feed the
//! client's PUBACKs back (`handle_bytes`) and drain the events they raise.
//!
//! Run with `cargo bench -p protocol --bench session`; figures are in BENCHMARKS.md.
//! Each iteration moves [`WINDOW`] messages through a connected MQTT 3.1.1 or 5
//! session, and throughput is reported in messages.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::session::{AcceptOptions, SendOutcome, ServerEvent, ServerOptions, ServerSession};
use protocol::{Connect, Packet, ProtocolVersion, PubAck, Publish, QoS, encode};
use web_time::Instant;

/// Messages per iteration: the broker's default inflight window.
const WINDOW: u16 = 100;

/// A session that accepted a CONNECT for `version`.
fn connected(version: ProtocolVersion) -> ServerSession {
    let now = Instant::now();
    let mut session = ServerSession::new(ServerOptions::default(), now);
    let mut wire = BytesMut::new();
    encode(
        &Packet::Connect(Box::new(Connect::new(version, "bench"))),
        version,
        &mut wire,
    )
    .unwrap();
    session.handle_bytes(&mut wire, now);
    assert!(matches!(
        session.poll_event(),
        Some(ServerEvent::Connect(_))
    ));
    session.accept(AcceptOptions::default(), None).unwrap();
    let mut connack = BytesMut::new();
    session.poll_transmit(&mut connack);
    session
}

/// PUBACKs for every packet identifier 1..=65,535 back to back, 4 bytes each (no
/// reason code or properties, the same in 3.1.1 and 5): a window's acknowledgements
/// are a slice of it.
fn all_pubacks(version: ProtocolVersion) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for id in 1..=u16::MAX {
        let id = std::num::NonZeroU16::new(id).unwrap();
        encode(&Packet::PubAck(PubAck::new(id)), version, &mut wire).unwrap();
    }
    assert_eq!(wire.len(), 4 * usize::from(u16::MAX));
    wire.to_vec()
}

/// The PUBACKs for `count` identifiers from `first` on (wrapping after 65,535), as one
/// read delivers them.
fn window_acks(all: &[u8], first: u16, count: u16) -> BytesMut {
    let start = 4 * usize::from(first - 1);
    let len = 4 * usize::from(count);
    let mut read = BytesMut::with_capacity(len);
    let head = &all[start..all.len().min(start + len)];
    read.extend_from_slice(head);
    read.extend_from_slice(&all[..len - head.len()]);
    read
}

fn bench_qos1_window(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_session");
    group.throughput(Throughput::Elements(u64::from(WINDOW)));
    let topic = ByteString::from_static("iot/5/dev-0042/sensor/temperature");
    let payload = Bytes::from(vec![0x5Au8; 64]);
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let name = format!("v{}_qos{}_64B", version as u8, qos as u8);
            group.bench_function(BenchmarkId::new("send_window", name), |b| {
                let mut session = connected(version);
                let mut out = BytesMut::new();
                let now = Instant::now();
                // Each window is acknowledged whole before the next is sent.
                let acks = all_pubacks(version);
                b.iter(|| {
                    let mut first = None;
                    for _ in 0..WINDOW {
                        let mut publish = Publish::new(topic.clone(), payload.clone());
                        publish.qos = qos;
                        let outcome = session.send_publish(publish).unwrap();
                        if let SendOutcome::Sent { packet_id } = outcome {
                            first = first.or(packet_id);
                        }
                    }
                    session.poll_transmit(&mut out);
                    black_box(&out);
                    out.clear();
                    if let Some(first) = first {
                        let mut read = window_acks(&acks, first.get(), WINDOW);
                        session.handle_bytes(&mut read, now);
                        while let Some(event) = session.poll_event() {
                            black_box(event);
                        }
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_qos1_window);
criterion_main!(benches);
