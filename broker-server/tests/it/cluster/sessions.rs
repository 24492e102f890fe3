//! Session records in the NATS key-value bucket ([`Sessions`]) against a real 3-node
//! NATS cluster: claim, release and update; two nodes racing for one client; the
//! handoff request; NATS down or missing a server.

use std::num::NonZeroU32;
use std::time::Duration;

use broker_server::cluster::Checkpoint;
use broker_server::cluster::config::{ClusterBackend, ClusterConfig, NatsConfig};
use broker_server::cluster::sessions::{ClaimUpdate, Detach, Record, SessionEvent, Sessions};
use broker_server::internals::session::{Owner, StoredSubscription};
use broker_server::{Refused, Release};
use bytes::Bytes;
use protocol::{
    QoS, ReasonCode, SubscriptionOptions, TopicFilter, TopicName, Will, WillProperties,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::nats::NatsCluster;

/// How long a test waits for something the cluster does by itself (an event, a
/// heartbeat seen): generous, for loaded machines; only a failure waits this long.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);

/// A `[cluster]` section for `node` on `cluster`, with short heartbeats so node tests
/// run in seconds: a beat every second, dead after 3 s (the validation accepts 2; the
/// extra second is slack for a loaded machine, where a beat may take a while).
pub(super) fn config(cluster: &NatsCluster, prefix: &str, node: &str) -> ClusterConfig {
    let config = ClusterConfig {
        backend: ClusterBackend::Nats,
        node: Some(node.into()),
        replicas: 3,
        heartbeat_secs: 1,
        node_ttl_secs: 3,
        publish_timeout_ms: 2000,
        nats: NatsConfig {
            urls: cluster.urls(),
            prefix: prefix.into(),
            ..NatsConfig::default()
        },
        ..ClusterConfig::default()
    };
    config.validate().expect("a valid test configuration");
    config
}

/// A NATS client of `urls`, named after the node.
pub(super) async fn connect(urls: Vec<String>, node: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(format!("test-{node}"))
        .connect(urls)
        .await
        .expect("connect to the NATS cluster")
}

/// Opens node `config.node`'s [`Sessions`] with its own client; events come out of
/// the receiver.
pub(super) async fn open(config: &ClusterConfig) -> (Sessions, mpsc::Receiver<SessionEvent>) {
    let node = config.node.clone().expect("a node name");
    let client = connect(config.nats.urls.clone(), &node).await;
    open_with(config, client).await
}

/// [`open`] with a client of the test's making.
pub(super) async fn open_with(
    config: &ClusterConfig,
    client: async_nats::Client,
) -> (Sessions, mpsc::Receiver<SessionEvent>) {
    let node = config.node.clone().expect("a node name");
    let (events, received) = mpsc::channel(64);
    let sessions = Sessions::open(client, config, &node, events)
        .await
        .unwrap_or_else(|err| panic!("open {node}: {err:#}"));
    (sessions, received)
}

/// The next event, or a panic after [`PATIENCE`] saying what was awaited.
pub(super) async fn next_event(
    events: &mut mpsc::Receiver<SessionEvent>,
    what: &str,
) -> SessionEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within {PATIENCE:?}: expected {what}"))
        .unwrap_or_else(|| panic!("event channel closed: expected {what}"))
}

/// A QoS 1 will on `topic`, delayed by `delay` seconds if given.
pub(super) fn will(topic: &str, delay: Option<u32>) -> Will {
    Will {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..WillProperties::default()
        },
    }
}

/// What a connection of user `alice` with a one-hour session and `will` claims.
pub(super) fn update(will: Option<Will>) -> ClaimUpdate {
    ClaimUpdate {
        owner: Owner::User("alice".into()),
        expiry_interval: 3600,
        will,
        clean_start: false,
        checkpoint: Checkpoint(vec![0; 4]),
    }
}

fn subscription(filter: &str, id: u32) -> (TopicFilter, StoredSubscription) {
    (
        TopicFilter::new(filter).unwrap(),
        StoredSubscription {
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            id: NonZeroU32::new(id),
        },
    )
}

async fn stored(sessions: &Sessions, client_id: &str) -> Option<Record> {
    sessions.get(client_id).await.expect("read the record")
}

/// The whole life of a persistent session on one node: claim, subscribe, go offline,
/// resume (subscriptions and checkpoint kept, epoch up), end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_update_release_round_trip() {
    let cluster = NatsCluster::start().await;
    let (a, _events) = open(&config(&cluster, "rt", "a")).await;

    let previous = a
        .claim("dev/1", update(Some(will("dev/1/state", None))))
        .await;
    assert_eq!(previous, Ok(None), "no session yet");
    let first = stored(&a, "dev/1").await.expect("claimed");
    assert_eq!(first.node, "a");
    assert!(first.connected);
    assert_eq!(first.owner, Owner::User("alice".into()));
    assert_eq!(first.will, Some(will("dev/1/state", None)));
    assert_eq!(first.checkpoint, Checkpoint(vec![0; 4]));

    let subscribed = a
        .update("dev/1", first.epoch, |record| {
            record.subscriptions.push(subscription("cmd/#", 7));
            // Not the caller's to change: kept whatever `change` does.
            record.epoch = 0;
            record.node = "elsewhere".into();
        })
        .await;
    assert_eq!(subscribed, Ok(true));
    let record = stored(&a, "dev/1").await.unwrap();
    assert_eq!(record.subscriptions, vec![subscription("cmd/#", 7)]);
    assert_eq!((record.node.as_str(), record.epoch), ("a", first.epoch));
    assert_eq!(
        a.update("dev/1", first.epoch + 1, |_| {}).await,
        Ok(false),
        "another epoch's update does nothing"
    );

    let detach = Detach {
        will_due: None,
        checkpoint: Some(Checkpoint(vec![3, 0, 9, 1])),
    };
    assert_eq!(
        a.release("dev/1", first.epoch, Release::Detached, detach)
            .await,
        Ok(true)
    );
    let offline = stored(&a, "dev/1").await.expect("kept offline");
    assert!(!offline.connected);
    assert_eq!(offline.will, None, "the will went with the connection");
    assert!(offline.expires_at.is_some());
    assert_eq!(offline.checkpoint, Checkpoint(vec![3, 0, 9, 1]));

    let previous = a.claim("dev/1", update(None)).await.unwrap();
    assert_eq!(previous, Some(offline.clone()));
    let resumed = stored(&a, "dev/1").await.unwrap();
    assert!(
        resumed.epoch > first.epoch,
        "{} > {}",
        resumed.epoch,
        first.epoch
    );
    assert!(resumed.connected);
    assert_eq!(resumed.subscriptions, offline.subscriptions);
    assert_eq!(resumed.checkpoint, offline.checkpoint);

    // A clean start drops what the session had.
    let clean = ClaimUpdate {
        clean_start: true,
        ..update(None)
    };
    a.claim("dev/1", clean).await.unwrap();
    let fresh = stored(&a, "dev/1").await.unwrap();
    assert!(fresh.epoch > resumed.epoch);
    assert!(fresh.subscriptions.is_empty());
    assert_eq!(fresh.checkpoint, Checkpoint(vec![0; 4]));

    assert_eq!(
        a.release("dev/1", resumed.epoch, Release::Ended, Detach::default())
            .await,
        Ok(false),
        "a superseded claim cannot end the session"
    );
    assert_eq!(
        a.release("dev/1", fresh.epoch, Release::Ended, Detach::default())
            .await,
        Ok(true)
    );
    assert_eq!(stored(&a, "dev/1").await, None);
    // After a delete, epochs still rise.
    a.claim("dev/1", update(None)).await.unwrap();
    assert!(stored(&a, "dev/1").await.unwrap().epoch > fresh.epoch);
}

/// Two nodes claim one client id at the same moment: both claims succeed, one after
/// the other (different epochs, the later one sees the earlier as its previous
/// record), and the earlier holder is told it lost the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_win_in_turn_and_the_earlier_holder_is_told() {
    let cluster = NatsCluster::start().await;
    let (a, mut a_events) = open(&config(&cluster, "race", "a")).await;
    let (b, mut b_events) = open(&config(&cluster, "race", "b")).await;

    for round in 0..3 {
        let client_id = format!("racer-{round}");
        let (from_a, from_b) = tokio::join!(
            a.claim(&client_id, update(None)),
            b.claim(&client_id, update(None))
        );
        let (from_a, from_b) = (from_a.expect("a's claim"), from_b.expect("b's claim"));
        let last = stored(&a, &client_id).await.expect("a record");
        let (winner_events, earlier, earlier_node, previous) = if last.node == "a" {
            (&mut b_events, from_b, "b", from_a)
        } else {
            (&mut a_events, from_a, "a", from_b)
        };
        assert_eq!(earlier, None, "the earlier claim found no session");
        let previous = previous.expect("the later claim found the earlier one");
        assert_eq!(previous.node, earlier_node);
        assert!(
            previous.epoch < last.epoch,
            "{} < {}",
            previous.epoch,
            last.epoch
        );
        match next_event(winner_events, "TakenOver").await {
            SessionEvent::TakenOver {
                client_id: taken,
                by,
            } => {
                assert_eq!(taken, client_id);
                assert_eq!(by, last.node);
            }
            other => panic!("expected TakenOver, got {other:?}"),
        }
    }
}

/// A handoff request reaches the holding node's broker and brings back its answer; a
/// node nobody serves, or a broker that does not answer, gives `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_is_answered_or_none() {
    let cluster = NatsCluster::start().await;
    let (a, _a_events) = open(&config(&cluster, "ho", "a")).await;
    let (_b, mut b_events) = open(&config(&cluster, "ho", "b")).await;
    // b's broker: hands over what it has, drops the question for unknown clients.
    let served = tokio::spawn(async move {
        let mut asked = Vec::new();
        while let Some(event) = b_events.recv().await {
            if let SessionEvent::Handoff {
                client_id, reply, ..
            } = event
            {
                if client_id != "unknown" {
                    let _ = reply.send(Bytes::from(format!("state of {client_id}")));
                }
                let last = client_id == "unknown";
                asked.push(client_id);
                if last {
                    return asked;
                }
            }
        }
        asked
    });

    // b's subscription is on its own server when its `open` returns; the other servers
    // of the NATS cluster learn of it a moment later (until then: no responders).
    let deadline = Instant::now() + PATIENCE;
    let answer = loop {
        if let Some(answer) = a
            .request_handoff("b", "dev/7", true)
            .await
            .expect("request")
        {
            break answer;
        }
        assert!(Instant::now() < deadline, "b never answers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer, Bytes::from_static(b"state of dev/7"));
    assert_eq!(
        a.request_handoff("b", "unknown", true)
            .await
            .expect("request"),
        None
    );
    assert_eq!(
        a.request_handoff("nobody", "dev/7", true)
            .await
            .expect("request"),
        None
    );
    assert_eq!(served.await.unwrap(), ["dev/7", "unknown"]);
}

/// With every NATS server gone, a claim is refused with 0x88 within its timeout
/// instead of hanging (the bound is a guard against a hang, not a measurement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_without_nats_is_refused_with_server_unavailable() {
    let mut cluster = NatsCluster::start().await;
    let mut cfg = config(&cluster, "down", "a");
    cfg.publish_timeout_ms = 1000;
    let (a, _events) = open(&cfg).await;
    claim_eventually(&a, "dev/1").await;
    for i in 0..3 {
        cluster.kill(i);
    }
    for operation in ["claim", "release", "update"] {
        let call = async {
            match operation {
                "claim" => a.claim("dev/2", update(None)).await.map(drop),
                "release" => a
                    .release("dev/1", 1, Release::Ended, Detach::default())
                    .await
                    .map(drop),
                _ => a.update("dev/1", 1, |_| {}).await.map(drop),
            }
        };
        let result = tokio::time::timeout(PATIENCE, call)
            .await
            .unwrap_or_else(|_| panic!("{operation} hangs without NATS"));
        match result {
            Err(Refused { reason, detail }) => {
                assert_eq!(
                    reason,
                    ReasonCode::ServerUnavailable,
                    "{operation}: {detail}"
                );
            }
            Ok(()) => panic!("{operation} succeeded without NATS"),
        }
    }
}

/// One NATS server of three dies (the one leading the sessions bucket, the hard case:
/// a new leader is elected): claims work again once it is, and keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_keep_working_with_one_nats_server_down() {
    let mut cluster = NatsCluster::start().await;
    let (a, _events) = open(&config(&cluster, "one", "a")).await;
    a.claim("dev/1", update(None)).await.expect("claim");

    let client = connect(cluster.urls(), "observer").await;
    let js = async_nats::jetstream::new(client);
    let leader = js
        .get_stream("KV_ONE_SESSIONS")
        .await
        .expect("the sessions bucket's stream")
        .get_info()
        .await
        .expect("stream info")
        .cluster
        .and_then(|c| c.leader)
        .expect("a leader");
    let victim = cluster.index_of(&leader);
    cluster.kill(victim);

    claim_eventually(&a, "dev/2").await;
    for i in 0..5 {
        let client_id = format!("after-{i}");
        a.claim(&client_id, update(None))
            .await
            .expect("claim with two servers");
        assert_eq!(stored(&a, &client_id).await.expect("record").node, "a");
    }
}

/// Claims `client_id` on `sessions`, trying again while the claim is refused with 0x88
/// (a NATS cluster electing a leader, a loaded machine), for up to [`PATIENCE`].
async fn claim_eventually(sessions: &Sessions, client_id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match sessions.claim(client_id, update(None)).await {
            Ok(_) => return,
            Err(refused) => {
                assert_eq!(
                    refused.reason,
                    ReasonCode::ServerUnavailable,
                    "{}",
                    refused.detail
                );
                assert!(
                    Instant::now() < deadline,
                    "no claim succeeds: {}",
                    refused.detail
                );
            }
        }
    }
}
