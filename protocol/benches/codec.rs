//! Codec throughput: `decode` and `encode` of the packets a broker handles most.
//!
//! Run with `cargo bench -p protocol --bench codec`; figures are in BENCHMARKS.md.
//!
//! Decode benchmarks measure a buffer holding many packets back to back, as a socket
//! read delivers them, and report packets per second. Setting up each buffer (a copy of
//! the encoded stream) is outside the measured time.

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::{
    Connect, ConnectProperties, Limits, Packet, ProtocolVersion, Publish, PublishProperties, QoS,
    RetainHandling, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    Will, WillProperties, decode, encode,
};

/// Packets per decode batch: enough to amortise the per-batch setup.
const BATCH: usize = 1_000;

fn publish(payload_len: usize, qos: QoS) -> Packet {
    Packet::Publish(Publish {
        qos,
        packet_id: (qos != QoS::AtMostOnce).then(|| NonZeroU16::new(42).unwrap()),
        ..Publish::new("iot/5/dev-0042/sensor/temperature", vec![0x5A; payload_len])
    })
}

fn subscribe() -> Packet {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: false,
        retain_handling: RetainHandling::SendIfNew,
    };
    let filters = [
        "iot/5/+/$state",
        "iot/5/dev-0042/#",
        "$share/workers/jobs/+/run",
    ];
    Packet::Subscribe(Subscribe {
        packet_id: NonZeroU16::new(7).unwrap(),
        subscriptions: filters
            .iter()
            .map(|filter| Subscription {
                filter: TopicFilter::new(*filter).unwrap(),
                options: SubscriptionOptions {
                    // No Local is a protocol error on a shared subscription.
                    no_local: !filter.starts_with("$share/"),
                    ..options
                },
            })
            .collect(),
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(12),
            user_properties: Vec::new(),
        },
    })
}

fn connect() -> Packet {
    let mut connect = Connect::new(ProtocolVersion::V5, "dashboard-3f2a9c");
    connect.username = Some("operator".into());
    connect.password = Some(Bytes::from_static(b"correct horse battery staple"));
    connect.properties = ConnectProperties {
        session_expiry_interval: Some(3_600),
        receive_maximum: NonZeroU16::new(100),
        maximum_packet_size: NonZeroU32::new(1 << 20),
        topic_alias_maximum: Some(16),
        request_problem_information: Some(true),
        user_properties: vec![("app".into(), "dashboard".into())],
        ..ConnectProperties::default()
    };
    connect.will = Some(Will {
        topic: "iot/5/dashboard-3f2a9c/$state".parse().unwrap(),
        payload: Bytes::from_static(b"lost"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(5),
            content_type: Some("text/plain".into()),
            ..WillProperties::default()
        },
    });
    Packet::Connect(Box::new(connect))
}

fn publish_with_properties() -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: NonZeroU16::new(42),
        properties: PublishProperties {
            message_expiry_interval: Some(30),
            response_topic: Some("dash/dashboard-3f2a9c/res/dev-0042".into()),
            correlation_data: Some(Bytes::from_static(b"cmd-000123")),
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("application/json".into()),
            ..PublishProperties::default()
        }
        .into(),
        ..Publish::new("iot/5/dev-0042/light/on/set", "true")
    })
}

fn cases() -> Vec<(&'static str, Packet)> {
    vec![
        ("publish_qos0_64B", publish(64, QoS::AtMostOnce)),
        ("publish_qos1_4KB", publish(4096, QoS::AtLeastOnce)),
        ("publish_qos1_properties", publish_with_properties()),
        ("subscribe", subscribe()),
        ("connect_properties", connect()),
    ]
}

fn encoded(packet: &Packet, count: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for _ in 0..count {
        encode(packet, ProtocolVersion::V5, &mut buf).unwrap();
    }
    buf
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let limits = Limits::default();
    for (name, packet) in cases() {
        let stream = encoded(&packet, BATCH);
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched_ref(
                || stream.clone(),
                |buf| {
                    while let Some(packet) = decode(buf, &limits).unwrap() {
                        black_box(&packet);
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, packet) in cases() {
        let mut buf = BytesMut::with_capacity(encoded(&packet, BATCH).len());
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                buf.clear();
                for _ in 0..BATCH {
                    encode(black_box(&packet), ProtocolVersion::V5, &mut buf).unwrap();
                }
                black_box(&buf);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
