//! The topic history (`[history]`, docs/history.md): messages to the configured filters
//! are recorded with the bounds applied and returned over MQTT 5 request/response on
//! `$history/query`, oldest first; the embedded store keeps them across a restart; a
//! client gets only what the ACL lets it subscribe to and receive; a bad request and a
//! broker without history answer with a reason.

use std::path::Path;
use std::time::Duration;

use broker_server::Config;
use broker_server::config::{Backend, StorageConfig};
use native_client::{
    Client, ConnectOptions, Error, HistoryError, HistoryQuery, HistoryReply, ProtocolVersion, QoS,
    ReasonCode,
};

use crate::common::{PATIENCE, TestBroker, test_config};

/// A broker configuration keeping `samples` samples per topic of `iot/5/+/+/+`.
fn config(samples: usize) -> Config {
    let mut config = test_config();
    config.history.samples_per_topic = samples;
    config
}

/// The same, on the embedded store in `dir`.
fn durable(dir: &Path, samples: usize) -> Config {
    let mut config = config(samples);
    config.storage = StorageConfig {
        backend: Backend::Redb,
        dir: dir.to_path_buf(),
        ..StorageConfig::default()
    };
    config
}

async fn client(broker: &TestBroker, id: &str, user: Option<&str>) -> Client {
    let mut options = ConnectOptions::new(format!("mqtt://{}", broker.addr)).client_id(id);
    if let Some(user) = user {
        options = options.credentials(user, "");
    }
    Client::connect(options).await.expect("client connects")
}

/// Publishes each `(topic, payload)` at QoS 1: acknowledged, so routed and recorded.
async fn publish_all(client: &Client, messages: &[(&str, &str)]) {
    for (topic, payload) in messages {
        client
            .publish(*topic, payload.to_string(), QoS::AtLeastOnce)
            .await
            .expect("published");
    }
}

/// The reply as `topic: [payload, ...]`, in the order received.
fn shown(reply: &HistoryReply) -> Vec<(String, Vec<String>)> {
    reply
        .topics
        .iter()
        .map(|topic| {
            let payloads = topic.samples.iter();
            let payloads = payloads.map(|s| s.payload_str().unwrap().to_owned());
            (topic.topic.clone(), payloads.collect())
        })
        .collect()
}

fn owned(topic: &str, payloads: &[&str]) -> (String, Vec<String>) {
    (
        topic.into(),
        payloads.iter().map(|p| p.to_string()).collect(),
    )
}

#[tokio::test]
async fn samples_are_returned_in_order_with_the_bounds_applied() {
    let broker = TestBroker::with_config(config(3)).await;
    let device = client(&broker, "device", None).await;
    publish_all(
        &device,
        &[
            ("iot/5/d1/env/temp", "20"),
            ("iot/5/d1/env/hum", "40"),
            ("iot/5/d1/env/temp", "21"),
            ("iot/5/d1/$state", "ready"),
            ("iot/5/d1/env/temp", "22"),
            ("elsewhere/d1/env/temp", "99"),
            ("iot/5/d1/env/temp", "23"),
            ("iot/5/d1/env/temp", "24"),
        ],
    )
    .await;
    let reader = client(&broker, "reader", None).await;
    let reply = reader
        .history(&HistoryQuery::new("iot/5/#"), PATIENCE)
        .await
        .expect("history");
    assert!(!reply.truncated);
    assert_eq!(
        shown(&reply),
        vec![
            owned("iot/5/d1/env/hum", &["40"]),
            owned("iot/5/d1/env/temp", &["22", "23", "24"]),
        ]
    );
    let times: Vec<u64> = reply.topics[1].samples.iter().map(|s| s.time_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // `limit` keeps the newest; a range that ends before the first sample has none.
    let mut query = HistoryQuery::new("iot/5/d1/env/temp");
    query.limit = Some(1);
    let reply = reader.history(&query, PATIENCE).await.unwrap();
    assert_eq!(shown(&reply), vec![owned("iot/5/d1/env/temp", &["24"])]);
    query.limit = None;
    query.to = Some(times[0] - 1);
    let reply = reader.history(&query, PATIENCE).await.unwrap();
    assert_eq!(shown(&reply), vec![]);
    broker.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::with_config(durable(dir.path(), 100)).await;
    let device = client(&broker, "device", None).await;
    publish_all(
        &device,
        &[("iot/5/d1/env/temp", "20.5"), ("iot/5/d1/env/temp", "21.5")],
    )
    .await;
    device.disconnect(ReasonCode::Success).await.ok();
    broker.stop().await;
    assert!(dir.path().join("history.redb").exists());

    let broker = TestBroker::with_config(durable(dir.path(), 100)).await;
    let device = client(&broker, "device", None).await;
    publish_all(&device, &[("iot/5/d1/env/temp", "22.5")]).await;
    let reply = device
        .history(&HistoryQuery::new("iot/5/+/+/+"), PATIENCE)
        .await
        .expect("history");
    assert_eq!(
        shown(&reply),
        vec![owned("iot/5/d1/env/temp", &["20.5", "21.5", "22.5"])]
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_acl_limits_history_to_what_the_client_may_subscribe_to() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.conf");
    std::fs::write(
        &acl,
        "user writer\ntopic readwrite #\n\nuser alice\ntopic read iot/5/alice/#\ntopic read res/alice\n",
    )
    .unwrap();
    let mut config = config(10);
    config.auth.acl_file = Some(acl);
    let broker = TestBroker::with_config(config).await;
    let writer = client(&broker, "writer", Some("writer")).await;
    publish_all(&writer, &[("iot/5/alice/n/p", "1"), ("iot/5/bob/n/p", "2")]).await;
    let alice = client(&broker, "alice", Some("alice")).await;
    let refused = alice
        .history(&HistoryQuery::new("iot/5/bob/#"), PATIENCE)
        .await;
    assert!(
        matches!(refused, Err(Error::History(HistoryError::NotAuthorized(_)))),
        "{refused:?}"
    );
    let refused = alice.history(&HistoryQuery::new("#"), PATIENCE).await;
    assert!(
        matches!(refused, Err(Error::History(HistoryError::NotAuthorized(_)))),
        "{refused:?}"
    );
    let reply = alice
        .history(&HistoryQuery::new("iot/5/alice/#"), PATIENCE)
        .await
        .expect("her own history");
    assert_eq!(shown(&reply), vec![owned("iot/5/alice/n/p", &["1"])]);
    // The writer may read everything, so it sees both.
    let reply = writer
        .history(&HistoryQuery::new("iot/5/+/+/+"), PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply.topics.len(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn a_bad_request_and_a_broker_without_history_answer_with_a_reason() {
    let mut config = config(10);
    let broker = TestBroker::with_config(config.clone()).await;
    let asker = client(&broker, "asker", None).await;
    let answer = asker
        .request("$history/query", "{not json", PATIENCE)
        .await
        .expect("an answer");
    let refused = native_client::HistoryReply::decode(&answer.payload);
    assert!(
        matches!(refused, Err(HistoryError::BadRequest(_))),
        "{refused:?}"
    );
    let refused = asker.history(&HistoryQuery::new("iot/#/x"), PATIENCE).await;
    assert!(
        matches!(refused, Err(Error::History(HistoryError::BadRequest(_)))),
        "{refused:?}"
    );
    broker.stop().await;

    config.history.enabled = false;
    let broker = TestBroker::with_config(config).await;
    let asker = client(&broker, "asker", None).await;
    let refused = asker.history(&HistoryQuery::new("iot/#"), PATIENCE).await;
    assert!(
        matches!(refused, Err(Error::History(HistoryError::Disabled(_)))),
        "{refused:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_3_clients_cannot_ask() {
    let broker = TestBroker::with_config(config(10)).await;
    let options = ConnectOptions::new(format!("mqtt://{}", broker.addr))
        .client_id("old")
        .version(ProtocolVersion::V3_1_1);
    let old = Client::connect(options).await.unwrap();
    let refused = old
        .history(&HistoryQuery::new("iot/#"), Duration::from_secs(1))
        .await;
    assert!(matches!(refused, Err(Error::NeedsV5(_))), "{refused:?}");
    broker.stop().await;
}
