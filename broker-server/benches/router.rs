//! The router at 100,000 subscriptions: matching a topic (`route`), and subscribing
//! and unsubscribing one filter, with a realistic mix of exact and wildcard filters.
//!
//! Run with `cargo bench -p broker-server --bench router`; figures are in BENCHMARKS.md.
//!
//! The subscriptions model 1,000 sites of 80 devices, one client per subscription:
//! - 80,000 exact filters `site/{s}/dev/{d}/temp` (one per device) and the same on
//!   `…/hum` for the first 20 devices of each site (20,000);
//! - on top of those, per site: `site/{s}/dev/{d}/+` for devices 0..=4 (5,000 in all),
//!   `site/{s}/+/+/temp` (1,000), `site/{s}/#` (1,000), and 10 `#` watchers.
//!
//! That is 107,010 subscriptions; a temperature reading of device 3 of a site matches
//! 14 of them (exact, `+`, `+/+/temp`, `site/#`, ten `#`).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{QoS, SubscriptionOptions, TopicFilter};

use broker_server::config::{DropPolicy, SharedStrategy};
use broker_server::internals::message::{Delivery, Message};
use broker_server::internals::router::{Router, SubEntry};
use broker_server::internals::session::{QueueLimits, Session};

const SITES: usize = 1_000;
const DEVICES: usize = 80;

fn limits() -> QueueLimits {
    QueueLimits {
        max_messages: 1_000,
        max_bytes: 1 << 20,
        queue_qos0_offline: false,
        policy: DropPolicy::DropNewest,
    }
}

fn entry(client: String) -> SubEntry {
    SubEntry {
        session: Arc::new(Session::new(client.into(), limits())),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        id: None,
    }
}

fn filter(text: String) -> TopicFilter {
    TopicFilter::new(text).expect("valid filter")
}

/// The router with the subscriptions described in the module docs.
fn router() -> Router {
    let router = Router::new(SharedStrategy::RoundRobin);
    let mut client = 0usize;
    let mut subscribe = |text: String| {
        client += 1;
        router.subscribe(&filter(text), entry(format!("c{client}")));
    };
    for s in 0..SITES {
        for d in 0..DEVICES {
            subscribe(format!("site/{s}/dev/{d}/temp"));
            if d < 20 {
                subscribe(format!("site/{s}/dev/{d}/hum"));
            }
            if d < 5 {
                subscribe(format!("site/{s}/dev/{d}/+"));
            }
        }
        subscribe(format!("site/{s}/+/+/temp"));
        subscribe(format!("site/{s}/#"));
    }
    for _ in 0..10 {
        subscribe("#".to_owned());
    }
    router
}

fn message(topic: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: ByteString::from(topic),
        payload: Bytes::from_static(b"21.5"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        expires_at: None,
        origin: ByteString::from_static("publisher"),
    })
}

fn bench_router(c: &mut Criterion) {
    let router = router();
    assert_eq!(router.subscription_count(), 107_010);
    let mut group = c.benchmark_group("router_100k");
    group.throughput(Throughput::Elements(1));

    let mut out: Vec<(Arc<Session>, Delivery)> = Vec::new();
    let hit = message("site/517/dev/3/temp");
    router.route(&hit, &mut out);
    assert_eq!(out.len(), 14, "see the module docs");
    group.bench_function("match_14_of_107k", |b| {
        b.iter(|| {
            router.route(black_box(&hit), &mut out);
            black_box(out.len());
        });
    });

    let plain = message("site/517/dev/63/temp");
    router.route(&plain, &mut out);
    assert_eq!(out.len(), 13);
    group.bench_function("match_13_of_107k_other_device", |b| {
        b.iter(|| {
            router.route(black_box(&plain), &mut out);
            black_box(out.len());
        });
    });

    let elsewhere = message("other/place/entirely");
    router.route(&elsewhere, &mut out);
    assert_eq!(out.len(), 10, "only the `#` watchers");
    group.bench_function("match_10_hash_only", |b| {
        b.iter(|| {
            router.route(black_box(&elsewhere), &mut out);
            black_box(out.len());
        });
    });

    // One client subscribing and unsubscribing again, at the full trie: a new leaf
    // under an existing device, and a wildcard filter.
    let newcomer = entry("newcomer".to_owned());
    let client_id = newcomer.session.client_id.clone();
    for (name, text) in [
        ("subscribe_unsubscribe_exact", "site/517/dev/63/pressure"),
        ("subscribe_unsubscribe_wildcard", "site/517/+/63/#"),
    ] {
        let topic_filter = filter(text.to_owned());
        group.bench_function(name, |b| {
            b.iter(|| {
                router.subscribe(black_box(&topic_filter), newcomer.clone());
                assert!(router.unsubscribe(&topic_filter, &client_id));
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench_router
}
criterion_main!(benches);
