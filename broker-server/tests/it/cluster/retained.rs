//! Retained messages shared through the cluster ([`RetainedStore`]) over a real 3-node
//! NATS JetStream cluster: what one node stores, another finds by filter.

use std::time::Duration;

use broker_server::cluster::retained::{RetainedStore, retained_stream};
use broker_server::internals::message::Message;
use bytes::Bytes;
use protocol::{PublishProperties, QoS, ReasonCode, TopicFilter};
use web_time::Instant;

use super::routing::{config, connect, msg};
use crate::nats::NatsCluster;

async fn store(url: &str, node: &str, prefix: &str) -> RetainedStore {
    RetainedStore::open(connect(url, node).await, &config(url, node, prefix))
        .await
        .expect("open the retained store")
}

fn retained(topic: &str, payload: &str) -> Message {
    Message {
        retain: true,
        ..msg(topic, QoS::AtLeastOnce, payload)
    }
}

/// The topics `filter` finds, sorted.
async fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
    let mut found: Vec<String> = store
        .matching(&TopicFilter::new(filter).unwrap(), Instant::now())
        .await
        .expect("matching")
        .into_iter()
        .map(|m| m.topic.to_string())
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_set_found_by_filter_and_cleared() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = store(url, "a", "rs1").await;
    let b = store(&cluster.urls()[1], "b", "rs1").await;

    let all = [
        "home/kitchen/temp",
        "home/kitchen.light",
        "home/hall/temp",
        "home",
        "home//temp",
        "x/*",
        "x/>",
        "sp ace/ü€",
        "$app/state",
        "$SYS/broker/uptime",
    ];
    for topic in all {
        a.set(&retained(topic, "v1")).await.expect("stored");
    }
    // A second value replaces the first (one message per topic).
    let rich = Message {
        properties: PublishProperties {
            user_properties: vec![("k=".into(), "v\n:".into())],
            correlation_data: Some(Bytes::from_static(&[0, 0xff])),
            ..PublishProperties::default()
        }
        .into(),
        ..retained("home/kitchen/temp", "v2")
    };
    a.set(&rich).await.expect("stored");

    let found = b
        .matching(
            &TopicFilter::new("home/kitchen/temp").unwrap(),
            Instant::now(),
        )
        .await
        .unwrap();
    assert_eq!(found, vec![rich.clone()], "exact filter: the latest value");
    assert_eq!(
        topics(&b, "home/#").await,
        [
            "home",
            "home//temp",
            "home/hall/temp",
            "home/kitchen.light",
            "home/kitchen/temp"
        ]
    );
    assert_eq!(
        topics(&b, "home/+/temp").await,
        ["home//temp", "home/hall/temp", "home/kitchen/temp"]
    );
    assert_eq!(topics(&b, "x/+").await, ["x/*", "x/>"]);
    assert_eq!(topics(&b, "x/>").await, ["x/>"]);
    assert_eq!(topics(&b, "+/ü€").await, ["sp ace/ü€"]);
    assert_eq!(topics(&b, "$share/g/x/*").await, ["x/*"]);
    assert!(topics(&b, "nothing/#").await.is_empty());
    assert!(topics(&b, "nothing").await.is_empty());
    // `#` and `+/...` do not see `$` topics [MQTT-4.7.2-1]; `$SYS` is never stored.
    let everything = topics(&b, "#").await;
    assert_eq!(everything.len(), 8, "{everything:?}");
    assert!(everything.iter().all(|t| !t.starts_with('$')));
    assert!(topics(&b, "+/state").await.is_empty());
    assert_eq!(topics(&b, "$app/#").await, ["$app/state"]);
    assert!(topics(&b, "$SYS/#").await.is_empty());

    // An empty payload clears the topic, from any node.
    b.set(&retained("home/kitchen/temp", ""))
        .await
        .expect("cleared");
    assert_eq!(
        topics(&a, "home/+/temp").await,
        ["home//temp", "home/hall/temp"]
    );
    assert!(topics(&a, "home/kitchen/temp").await.is_empty());
    // The stream keeps one message per subject: a replaced value is gone from it.
    let js = async_nats::jetstream::new(connect(url, "check").await);
    let mut stream = js.get_stream(retained_stream("rs1")).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 8);
    // The lookups' consumers do not stay behind: deleted when a lookup ends, or, if the
    // client recreated one under another name (a missed heartbeat on a busy machine),
    // removed by the server after the ordered consumers' 30 s inactivity threshold.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while stream.info().await.unwrap().state.consumer_count > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumers left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_retained_messages_are_not_returned() {
    let cluster = NatsCluster::start().await;
    let url = &cluster.urls()[0];
    let a = store(url, "a", "rs2").await;
    let now = Instant::now();
    let expiring = Message {
        expires_at: Some(now + Duration::from_secs(60)),
        ..retained("e/1", "soon")
    };
    a.set(&expiring).await.unwrap();
    a.set(&retained("e/2", "forever")).await.unwrap();
    let filter = TopicFilter::new("e/+").unwrap();
    let found = a.matching(&filter, now).await.unwrap();
    assert_eq!(found.len(), 2);
    // An hour later (the store compares with the `now` it is given).
    let later = a
        .matching(&filter, now + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].topic, "e/2");
    let exact = a
        .matching(
            &TopicFilter::new("e/1").unwrap(),
            now + Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert!(exact.is_empty());

    let long = ".".repeat(1500);
    assert_eq!(
        a.set(&retained(&long, "x")).await.unwrap_err().reason,
        ReasonCode::TopicNameInvalid
    );
}
