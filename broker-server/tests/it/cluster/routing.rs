//! The cluster's data plane ([`Routing`]) between two "nodes" (two `Routing`s with their
//! own NATS connections) over a real 3-node NATS JetStream cluster.
//!
//! Both nodes connect to the same NATS server, so the order in which that server hands
//! out messages is the order the tests rely on (a marker sent after a message arrives
//! after it).

use std::sync::Arc;
use std::time::Duration;

use broker_server::Interest;
use broker_server::cluster::config::{ClusterBackend, ClusterConfig, NatsConfig};
use broker_server::cluster::routing::{Inbound, Routing, shard_of, shard_stream};
use broker_server::cluster::{Checkpoint, StreamPos};
use broker_server::internals::message::Message;
use bytes::Bytes;
use protocol::{PublishProperties, QoS, ReasonCode, TopicFilter};
use tokio::sync::mpsc;

use crate::nats::NatsCluster;

/// Shards of the test streams: few, so the streams are created fast.
const SHARDS: u16 = 2;

/// How long a test waits for a message that should come.
const PATIENCE: Duration = Duration::from_secs(20);

/// The configuration of node `node` on the cluster at `url`.
pub(crate) fn config(url: &str, node: &str, prefix: &str) -> ClusterConfig {
    ClusterConfig {
        backend: ClusterBackend::Nats,
        node: Some(node.to_owned()),
        shards: SHARDS,
        replicas: 3,
        publish_timeout_ms: 2000,
        nats: NatsConfig {
            urls: vec![url.to_owned()],
            prefix: prefix.to_owned(),
            ..NatsConfig::default()
        },
        ..ClusterConfig::default()
    }
}

/// A NATS connection to `url`.
pub(crate) async fn connect(url: &str, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(url)
        .await
        .expect("connect to NATS")
}

/// One node: its routing and what it receives.
struct Node {
    routing: Routing,
    inbound: mpsc::Receiver<Inbound>,
}

async fn node(url: &str, name: &str, prefix: &str) -> Node {
    let (tx, inbound) = mpsc::channel(1024);
    let routing = Routing::open(
        connect(url, name).await,
        &config(url, name, prefix),
        name,
        tx,
    )
    .await
    .expect("open routing");
    Node { routing, inbound }
}

impl Node {
    /// The next message from another node, markers of [`Node::sync`] skipped.
    async fn next(&mut self) -> Inbound {
        loop {
            let got = tokio::time::timeout(PATIENCE, self.inbound.recv())
                .await
                .expect("a message from the other node in time")
                .expect("the routing is open");
            if got.message.topic != "marker" {
                return got;
            }
        }
    }

    fn gain(&self, filter: &str) {
        self.routing
            .interest(&TopicFilter::new(filter).unwrap(), Interest::Gained);
    }

    /// Forwards and waits for the outcome.
    async fn forward(&self, message: Message) -> Option<StreamPos> {
        self.routing
            .forward(&Arc::new(message))
            .await
            .expect("forwarded")
    }

    /// Forwards `marker` (QoS 0, a fresh payload) until `to` receives it: interest is
    /// spawned, so the first ones may go before the other node's subscription is in
    /// place. Returns what `to` received before it, older markers left out.
    async fn sync(&self, to: &mut Node, marker: &str) -> Vec<Inbound> {
        let nonce = format!("{:x}", fastrand::u64(..));
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            self.forward(msg(marker, QoS::AtMostOnce, &nonce)).await;
            let wait = Duration::from_millis(300);
            while let Ok(Some(got)) = tokio::time::timeout(wait, to.inbound.recv()).await {
                if got.message.topic != marker {
                    before.push(got);
                } else if got.message.payload == nonce.as_bytes() {
                    return before;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "marker {marker} never arrived"
            );
        }
    }
}

/// A message as a client on the publishing node would have sent it.
pub(crate) fn msg(topic: &str, qos: QoS, payload: &str) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain: false,
        properties: Default::default(),
        expires_at: None,
        origin: "publisher".into(),
    }
}

/// A message with every property a PUBLISH carries between nodes.
fn rich(topic: &str, qos: QoS) -> Message {
    let properties = PublishProperties {
        payload_format_indicator: Some(true),
        content_type: Some("text/plain; charset=utf-8".into()),
        response_topic: Some("reply/to me".into()),
        correlation_data: Some(Bytes::from_static(&[0, 1, 0xff, b'\n'])),
        user_properties: vec![
            ("k=1".into(), "v:2\nline".into()),
            ("k=1".into(), "second ü".into()),
            ("".into(), "".into()),
        ],
        ..PublishProperties::default()
    };
    Message {
        retain: true,
        properties: properties.into(),
        ..msg(topic, qos, "rich")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_between_nodes_once_at_every_qos() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = node(url, "a", "rt1").await;
    let mut b = node(url, "b", "rt1").await;
    // Overlapping filters: `a/b/c` matches three of them, `a` one (`a/#`'s parent).
    for filter in ["a/+/c", "a/#", "+/b/c", "odd/#", "marker", "$share/g/a/b/c"] {
        b.gain(filter);
    }
    assert!(a.sync(&mut b, "marker").await.is_empty());

    let topics = [
        "a/b/c",
        "a",
        "odd/x.y",
        "odd/*",
        "odd/>",
        "odd/sp ace/\ttab",
        "odd//e",
        "odd/",
        "odd/ü€日本/%41",
    ];
    let mut sent = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for topic in topics {
            let message = rich(topic, qos);
            let pos = a.forward(message.clone()).await;
            assert_eq!(pos.is_some(), qos != QoS::AtMostOnce, "{topic} {qos:?}");
            if let Some(pos) = pos {
                assert_eq!(pos.shard, shard_of(topic, SHARDS));
            }
            sent.push((message, pos));
        }
    }
    // Not matched by any filter of b: never arrives.
    a.forward(msg("b/x", QoS::AtLeastOnce, "no")).await;
    a.forward(msg("$SYS/x", QoS::AtMostOnce, "local")).await;

    // The shared group's queue subscription gets its own copy of each `a/b/c`.
    let mut got = Vec::new();
    let mut shared = Vec::new();
    while got.len() < sent.len() || shared.len() < 3 {
        let inbound = b.next().await;
        if inbound.shared.is_some() {
            shared.push(inbound);
        } else {
            got.push(inbound);
        }
    }
    assert!(
        shared.iter().all(|i| i.message.topic == "a/b/c"),
        "{shared:?}"
    );
    // Through different subscriptions and shards, in no particular order: each once.
    let key = |m: &Message| (m.qos, m.topic.to_string());
    got.sort_by_key(|i| key(&i.message));
    sent.sort_by_key(|(m, _)| key(m));
    for (inbound, (message, pos)) in got.iter().zip(&sent) {
        assert_eq!(&inbound.message, message);
        assert_eq!(&inbound.pos, pos);
    }
    // Nothing else (no second copy, no `b/x`, no `$SYS`): the marker comes next.
    assert!(a.sync(&mut b, "marker").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_does_not_receive_its_own_messages() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let mut a = node(url, "a", "rt2").await;
    let mut b = node(url, "b", "rt2").await;
    a.gain("#");
    b.gain("#");
    assert!(b.sync(&mut a, "marker").await.is_empty());
    assert!(a.sync(&mut b, "marker").await.is_empty());

    let pos = a
        .forward(msg("own/1", QoS::AtLeastOnce, "x"))
        .await
        .unwrap();
    a.forward(msg("own/0", QoS::AtMostOnce, "x")).await;
    // b sees both; then a marker from b reaches a after a's own copies would have.
    let mut topics = [b.next().await.message.topic, b.next().await.message.topic];
    topics.sort();
    assert_eq!(topics, ["own/0", "own/1"]);
    let echoed = b.sync(&mut a, "marker").await;
    assert!(echoed.is_empty(), "own messages came back: {echoed:#?}");
    // a did receive its stored message (and dropped it): its watermark counts it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a.routing.watermark().0[usize::from(pos.shard)] < pos.seq {
        assert!(tokio::time::Instant::now() < deadline, "watermark");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.routing.watermark().0[usize::from(pos.shard)], pos.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_interest_stops_delivery() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = node(url, "a", "rt3").await;
    let mut b = node(url, "b", "rt3").await;
    b.gain("u/#");
    b.gain("marker");
    assert!(a.sync(&mut b, "marker").await.is_empty());
    a.forward(msg("u/1", QoS::AtLeastOnce, "1")).await;
    assert_eq!(b.next().await.message.payload, "1".as_bytes());

    b.routing
        .interest(&TopicFilter::new("u/#").unwrap(), Interest::Lost);
    // The unsubscription is spawned: wait until NATS knows no subscriber of `u/1`.
    unsubscribed(url, "rt3.r.0.u.1").await;
    a.forward(msg("u/1", QoS::AtLeastOnce, "2")).await;
    a.forward(msg("u", QoS::AtMostOnce, "3")).await;
    let late = a.sync(&mut b, "marker").await;
    assert!(late.is_empty(), "{late:#?}");

    // Shutting down ends every subscription.
    b.gain("v/+");
    a.sync(&mut b, "marker").await;
    b.routing.shutdown();
    unsubscribed(url, "rt3.r.m.v.1").await;
    unsubscribed(url, "rt3.r.m.marker").await;
}

/// Waits until no subscriber of `subject` is left: a request then fails with "no
/// responders" instead of timing out.
async fn unsubscribed(url: &str, subject: &str) {
    let probe = connect(url, "probe").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let request = probe.request(subject.to_owned(), Bytes::new());
        match tokio::time::timeout(Duration::from_millis(200), request).await {
            Ok(Err(err)) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => {
                return;
            }
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "{subject}: still subscribed"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_forward_resolves_once_the_stream_has_it() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = node(url, "a", "rt4").await;
    let js = async_nats::jetstream::new(connect(url, "check").await);
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let message = rich("stored/x.y", qos);
        let pos = a.forward(message.clone()).await.expect("a position");
        let stream = js
            .get_stream(shard_stream("rt4", pos.shard))
            .await
            .expect("the shard stream");
        let stored = stream
            .get_raw_message(pos.seq)
            .await
            .expect("the message is stored at its position");
        assert_eq!(
            stored.subject.as_str(),
            format!("rt4.q.{}.stored.x%2Ey", pos.shard)
        );
        assert_eq!(stored.payload, message.payload);
        assert_eq!(
            stored.headers.get("Mqtt-Qos").map(|v| v.as_str()),
            Some(if qos == QoS::AtLeastOnce { "1" } else { "2" })
        );
    }
    // Opening again on existing streams is fine (a second node, a restart).
    let again = node(url, "a2", "rt4").await;
    assert!(
        again
            .forward(msg("t", QoS::AtLeastOnce, "x"))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_that_nats_cannot_take_are_refused() {
    let mut cluster = NatsCluster::start().await;
    let url = cluster.urls()[0].clone();
    let a = node(&url, "a", "rt5").await;
    let forward = |message: Message| {
        let fut = a.routing.forward(&Arc::new(message));
        async move {
            tokio::time::timeout(PATIENCE, fut)
                .await
                .expect("resolves, never hangs")
        }
    };
    let max = a.routing.client().server_info().max_payload;
    let big = Message {
        payload: Bytes::from(vec![b'x'; max]),
        ..msg("big", QoS::AtLeastOnce, "")
    };
    let refused = forward(big.clone()).await.expect_err("too large");
    assert_eq!(refused.reason, ReasonCode::PacketTooLarge);
    let big0 = Message {
        qos: QoS::AtMostOnce,
        ..big
    };
    assert_eq!(
        forward(big0).await.expect_err("too large").reason,
        ReasonCode::PacketTooLarge
    );
    let long = ".".repeat(1500);
    let refused = forward(msg(&long, QoS::AtLeastOnce, "x"))
        .await
        .expect_err("subject too long");
    assert_eq!(refused.reason, ReasonCode::TopicNameInvalid);
    assert!(
        !a.routing
            .filter_fits(&TopicFilter::new(long.as_str()).unwrap())
    );
    assert!(a.routing.filter_fits(&TopicFilter::new("a/+/#").unwrap()));

    for i in 0..3 {
        cluster.kill(i);
    }
    let refused = forward(msg("t", QoS::AtLeastOnce, "x"))
        .await
        .expect_err("nothing stores it");
    assert_eq!(refused.reason, ReasonCode::UnspecifiedError, "{refused:?}");
    assert!(forward(msg("t", QoS::ExactlyOnce, "x")).await.is_err());
    assert_eq!(forward(msg("t", QoS::AtMostOnce, "x")).await, Ok(None));
    let _: Checkpoint = a.routing.watermark();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_what_was_stored_after_the_checkpoint() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = node(url, "a", "rt6").await;
    let mut b = node(url, "b", "rt6").await;
    b.gain("#");
    assert!(a.sync(&mut b, "marker").await.is_empty());
    let filters: Vec<TopicFilter> = ["s/+", "s/#", "$share/g/other"]
        .iter()
        .map(|f| TopicFilter::new(*f).unwrap())
        .collect();
    // The highest position of every shard so far, from the acknowledgements.
    let mut top = vec![0u64; usize::from(SHARDS)];
    fn note(top: &mut [u64], pos: Option<StreamPos>) -> Option<StreamPos> {
        if let Some(pos) = pos {
            let seq = &mut top[usize::from(pos.shard)];
            *seq = (*seq).max(pos.seq);
        }
        pos
    }
    // Before the checkpoint.
    for i in 0..8 {
        let pos = a
            .forward(msg(&format!("s/{i}"), QoS::AtLeastOnce, "old"))
            .await;
        note(&mut top, pos);
    }
    let checkpoint = Checkpoint(top.clone());
    // After it: QoS 1/2 stored (a QoS 0 one is not), some matching, some not.
    let mut want = Vec::new();
    for (topic, qos) in [
        ("s/a", QoS::AtLeastOnce),
        ("s/b/c", QoS::ExactlyOnce),
        ("s", QoS::AtLeastOnce),
        ("other", QoS::AtLeastOnce),
        ("t/x", QoS::AtLeastOnce),
        ("s/zero", QoS::AtMostOnce),
    ] {
        let message = rich(topic, qos);
        let pos = note(&mut top, a.forward(message.clone()).await);
        if topic != "t/x" && qos != QoS::AtMostOnce {
            want.push((message, pos));
        }
    }
    let mut got = b
        .routing
        .replay(&checkpoint, &filters)
        .await
        .expect("replay");
    let key = |m: &Message| m.topic.to_string();
    got.sort_by_key(|i| key(&i.message));
    want.sort_by_key(|(m, _)| key(m));
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (inbound, (message, pos)) in got.iter().zip(&want) {
        assert_eq!(&inbound.message, message);
        assert_eq!(&inbound.pos, pos);
    }
    // From an empty checkpoint: every matching one, the old ones too, each once.
    let all = b
        .routing
        .replay(&Checkpoint::default(), &filters)
        .await
        .expect("replay");
    assert_eq!(all.len(), 8 + want.len(), "{all:#?}");
    // b saw every stored message (it listens on `#`): its watermark reaches the top of
    // every shard, and nothing lies after it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while b.routing.watermark().0 != top {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watermark {:?}, stored {top:?}",
            b.routing.watermark()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latest = b
        .routing
        .replay(&b.routing.watermark(), &filters)
        .await
        .unwrap();
    assert!(latest.is_empty(), "{latest:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_forward_survives_the_loss_of_its_nats_server() {
    let mut cluster = NatsCluster::start().await;
    let urls = cluster.urls();
    // A client that knows every server, so it reconnects to another.
    let client = async_nats::ConnectOptions::new()
        .name("a")
        .connect(urls.clone())
        .await
        .expect("connect");
    let cfg = ClusterConfig {
        publish_timeout_ms: 20_000,
        ..config(&urls[0], "a", "rt7")
    };
    let (tx, _inbound) = mpsc::channel(16);
    let a = Routing::open(client.clone(), &cfg, "a", tx).await.unwrap();
    let first = a
        .forward(&Arc::new(msg("k/1", QoS::AtLeastOnce, "1")))
        .await
        .expect("stored");
    let victim = cluster.index_of(&client.server_info().server_name);
    cluster.kill(victim);
    let second = a
        .forward(&Arc::new(msg("k/1", QoS::AtLeastOnce, "2")))
        .await
        .expect("stored through another server")
        .expect("a position");
    assert_eq!(second.shard, first.unwrap().shard);
    // Stored once, even if an attempt was retried.
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(shard_stream("rt7", second.shard))
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    assert_eq!(
        stream.get_raw_message(second.seq).await.unwrap().payload,
        "2".as_bytes()
    );
}
