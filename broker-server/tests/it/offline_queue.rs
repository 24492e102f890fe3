//! Messages for a persistent session whose client is offline wait in its queue
//! (§3.1.2.4, §4.1): QoS 1 and 2 always, QoS 0 only with
//! `sessions.queue_qos0_offline`; the queue is bounded by `limits.max_queued_messages`
//! and a full queue drops by `limits.queue_drop_policy`, counting each drop in
//! `messages_dropped`.

use crate::common;
use crate::peer;

use broker_server::Config;
use broker_server::config::DropPolicy;
use common::{TestBroker, test_config};
use peer::*;
use protocol::{ProtocolVersion, Publish, QoS};

/// Connects `sub` with a persistent session, subscribes it to `q/#` at QoS 2, and
/// disconnects it.
async fn offline_subscriber(broker: &TestBroker, version: ProtocolVersion) {
    let (mut sub, present) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    assert!(!present);
    sub.subscribe(1, "q/#", QoS::ExactlyOnce).await;
    sub.disconnect().await;
}

/// Publishes `(payload, qos)` on `q/{payload}` from another client, each flow completed.
async fn publish_all(broker: &TestBroker, version: ProtocolVersion, messages: &[(&str, QoS)]) {
    let (mut publisher, _) = Peer::connected(broker.addr, clean(version, "pub")).await;
    for (n, (payload, qos)) in (1u16..).zip(messages) {
        let id = (*qos != QoS::AtMostOnce).then_some(n);
        publisher
            .publish(message(&format!("q/{payload}"), payload, *qos, id))
            .await;
    }
    publisher.disconnect().await;
}

/// Reconnects `sub` (Session Present) and returns what it is sent, acknowledged.
async fn reconnect_and_receive(broker: &TestBroker, version: ProtocolVersion) -> Vec<Publish> {
    let (mut sub, present) = Peer::connected(broker.addr, persistent(version, "sub", 600)).await;
    assert!(present, "the session was kept");
    let got = sub.receive_all().await;
    sub.disconnect().await;
    got
}

fn payloads_and_qos(got: &[Publish]) -> Vec<(&str, QoS)> {
    got.iter().map(|p| (text(p), p.qos)).collect()
}

async fn qos1_and_qos2_wait_for_the_client_and_qos0_does_not(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    offline_subscriber(&broker, version).await;
    publish_all(
        &broker,
        version,
        &[
            ("one", QoS::AtLeastOnce),
            ("zero", QoS::AtMostOnce),
            ("two", QoS::ExactlyOnce),
        ],
    )
    .await;
    assert_eq!(broker.broker().session("sub").unwrap().queue_len(), 2);

    let got = reconnect_and_receive(&broker, version).await;
    assert_eq!(
        payloads_and_qos(&got),
        [("one", QoS::AtLeastOnce), ("two", QoS::ExactlyOnce)]
    );
    assert!(got.iter().all(|p| !p.dup), "first delivery attempts: DUP 0");
    assert!(got.iter().all(|p| !p.retain), "live messages: RETAIN 0");
    broker.stop().await;
}
each_version!(qos1_and_qos2_wait_for_the_client_and_qos0_does_not);

async fn clean_start_discards_the_queued_messages(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    offline_subscriber(&broker, version).await;
    publish_all(&broker, version, &[("one", QoS::AtLeastOnce)]).await;
    let (mut sub, present) = Peer::connected(broker.addr, clean(version, "sub")).await;
    assert!(!present);
    let got = sub.receive_all().await;
    assert!(got.is_empty(), "the queue went with the session: {got:?}");
    broker.stop().await;
}
each_version!(clean_start_discards_the_queued_messages);

async fn qos0_waits_too_when_configured(version: ProtocolVersion) {
    let mut config = test_config();
    config.sessions.queue_qos0_offline = true;
    let broker = TestBroker::with_config(config).await;
    offline_subscriber(&broker, version).await;
    publish_all(
        &broker,
        version,
        &[
            ("one", QoS::AtLeastOnce),
            ("zero", QoS::AtMostOnce),
            ("two", QoS::ExactlyOnce),
        ],
    )
    .await;
    let got = reconnect_and_receive(&broker, version).await;
    assert_eq!(
        payloads_and_qos(&got),
        [
            ("one", QoS::AtLeastOnce),
            ("zero", QoS::AtMostOnce),
            ("two", QoS::ExactlyOnce)
        ],
        "in publish order"
    );
    broker.stop().await;
}
each_version!(qos0_waits_too_when_configured);

fn limited(policy: DropPolicy) -> Config {
    let mut config = test_config();
    config.limits.max_queued_messages = 2;
    config.limits.queue_drop_policy = policy;
    config
}

const THREE: [(&str, QoS); 3] = [
    ("m1", QoS::AtLeastOnce),
    ("m2", QoS::AtLeastOnce),
    ("m3", QoS::AtLeastOnce),
];

async fn full_queue_drops_the_newest_and_counts_it(version: ProtocolVersion) {
    let broker = TestBroker::with_config(limited(DropPolicy::DropNewest)).await;
    offline_subscriber(&broker, version).await;
    let dropped = broker.broker().metrics.messages_dropped.get();
    publish_all(&broker, version, &THREE).await;
    assert_eq!(broker.broker().metrics.messages_dropped.get(), dropped + 1);

    let got = reconnect_and_receive(&broker, version).await;
    assert_eq!(
        payloads_and_qos(&got),
        [("m1", QoS::AtLeastOnce), ("m2", QoS::AtLeastOnce)],
        "what was queued keeps its order; m3 was refused"
    );
    broker.stop().await;
}
each_version!(full_queue_drops_the_newest_and_counts_it);

async fn full_queue_drops_the_oldest_when_configured(version: ProtocolVersion) {
    let broker = TestBroker::with_config(limited(DropPolicy::DropOldest)).await;
    offline_subscriber(&broker, version).await;
    let dropped = broker.broker().metrics.messages_dropped.get();
    publish_all(&broker, version, &THREE).await;
    assert_eq!(broker.broker().metrics.messages_dropped.get(), dropped + 1);

    let got = reconnect_and_receive(&broker, version).await;
    assert_eq!(
        payloads_and_qos(&got),
        [("m2", QoS::AtLeastOnce), ("m3", QoS::AtLeastOnce)],
        "m1 made room for m3"
    );
    broker.stop().await;
}
each_version!(full_queue_drops_the_oldest_when_configured);

/// A queued message whose Message Expiry Interval ran out while the client was offline
/// is not delivered; one still valid is, with what is left of its interval (§3.3.2.3.3).
async fn messages_expire_in_the_queue(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    offline_subscriber(&broker, version).await;
    let (mut publisher, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "pub")).await;
    for (n, (payload, expiry)) in (1u16..).zip([("short", 10), ("long", 100)]) {
        let mut p = message(&format!("q/{payload}"), payload, QoS::AtLeastOnce, Some(n));
        p.properties.message_expiry_interval = Some(expiry);
        publisher.publish(p).await;
    }
    publisher.disconnect().await;

    advance_secs(30).await;
    let got = reconnect_and_receive(&broker, version).await;
    assert_eq!(payloads_and_qos(&got), [("long", QoS::AtLeastOnce)]);
    let expected = version.is_v5().then_some(70);
    assert_eq!(got[0].properties.message_expiry_interval, expected);
    broker.stop().await;
}
each_version!(paused messages_expire_in_the_queue);
