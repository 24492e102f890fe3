//! Retained messages (§3.3.1.3) and the MQTT 5 subscription options that shape them
//! (§3.8.3.1): store, replace, delete by empty payload, send on subscribe with RETAIN 1,
//! RETAIN 0 on live forwarding unless Retain As Published, Retain Handling, No Local,
//! and message expiry of retained messages.

use crate::common;
use crate::peer;

use common::TestBroker;
use peer::*;
use protocol::{ProtocolVersion, Publish, QoS, RetainHandling, SubscriptionOptions};

fn retained(topic: &str, payload: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    let mut p = message(topic, payload, qos, packet_id);
    p.retain = true;
    p
}

/// A connected client that publishes.
async fn publisher(broker: &TestBroker, version: ProtocolVersion) -> Peer {
    Peer::connected(broker.addr, clean(version, "pub")).await.0
}

/// `(topic, payload, qos, retain)` of each message.
fn summary(got: &[Publish]) -> Vec<(&str, &str, QoS, bool)> {
    got.iter()
        .map(|p| (p.topic.as_ref(), text(p), p.qos, p.retain))
        .collect()
}

/// A new client subscribing to `filter` at `qos`: what it is sent on subscribing.
async fn fresh_subscriber_gets(
    broker: &TestBroker,
    version: ProtocolVersion,
    filter: &str,
    qos: QoS,
) -> Vec<Publish> {
    let (mut sub, _) = Peer::connected(broker.addr, clean(version, "fresh")).await;
    sub.subscribe(1, filter, qos).await;
    let got = sub.receive_all().await;
    sub.disconnect().await;
    got
}

async fn retained_message_is_stored_replaced_and_deleted(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker, version).await;
    publisher
        .publish(retained("r/t", "1", QoS::AtLeastOnce, Some(1)))
        .await;
    let got = fresh_subscriber_gets(&broker, version, "r/t", QoS::AtLeastOnce).await;
    assert_eq!(summary(&got), [("r/t", "1", QoS::AtLeastOnce, true)]);

    publisher
        .publish(retained("r/t", "2", QoS::AtLeastOnce, Some(2)))
        .await;
    let got = fresh_subscriber_gets(&broker, version, "r/#", QoS::AtLeastOnce).await;
    assert_eq!(
        summary(&got),
        [("r/t", "2", QoS::AtLeastOnce, true)],
        "replaced"
    );

    // An empty retained payload deletes [MQTT-3.3.1-6] and is forwarded as usual.
    let (mut current, _) = Peer::connected(broker.addr, clean(version, "current")).await;
    current.subscribe(1, "r/t", QoS::AtLeastOnce).await;
    assert_eq!(current.receive_all().await.len(), 1);
    publisher
        .publish(retained("r/t", "", QoS::AtLeastOnce, Some(3)))
        .await;
    let live = current.receive_all().await;
    assert_eq!(summary(&live), [("r/t", "", QoS::AtLeastOnce, false)]);
    let got = fresh_subscriber_gets(&broker, version, "r/#", QoS::AtLeastOnce).await;
    assert!(got.is_empty(), "deleted: {got:?}");
    assert!(broker.broker().router.retained().is_empty());
    broker.stop().await;
}
each_version!(retained_message_is_stored_replaced_and_deleted);

async fn retained_messages_are_sent_on_subscribe_and_live_ones_are_not_flagged(
    version: ProtocolVersion,
) {
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker, version).await;
    publisher
        .publish(retained("s/a", "a", QoS::ExactlyOnce, Some(1)))
        .await;
    publisher
        .publish(retained("s/b", "b", QoS::AtMostOnce, None))
        .await;
    publisher
        .publish(message("s/c", "not retained", QoS::AtLeastOnce, Some(2)))
        .await;

    let (mut sub, _) = Peer::connected(broker.addr, clean(version, "sub")).await;
    sub.subscribe(1, "s/+", QoS::AtLeastOnce).await;
    let mut got = sub.receive_all().await;
    got.sort_by(|x, y| x.topic.cmp(&y.topic));
    assert_eq!(
        summary(&got),
        [
            // Delivered at min(message QoS, subscription QoS), RETAIN 1 [MQTT-3.3.1-8].
            ("s/a", "a", QoS::AtLeastOnce, true),
            ("s/b", "b", QoS::AtMostOnce, true),
        ]
    );

    // A retained message published to an established subscription: RETAIN 0
    // [MQTT-3.3.1-9] (MQTT 5: Retain As Published is 0).
    publisher
        .publish(retained("s/a", "a2", QoS::AtLeastOnce, Some(3)))
        .await;
    let live = sub.receive_all().await;
    assert_eq!(summary(&live), [("s/a", "a2", QoS::AtLeastOnce, false)]);
    broker.stop().await;
}
each_version!(retained_messages_are_sent_on_subscribe_and_live_ones_are_not_flagged);

#[tokio::test]
async fn v311_resubscribing_sends_the_retained_messages_again() {
    let version = ProtocolVersion::V3_1_1;
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker, version).await;
    publisher
        .publish(retained("r/t", "kept", QoS::AtMostOnce, None))
        .await;
    let (mut sub, _) = Peer::connected(broker.addr, clean(version, "sub")).await;
    for n in 1..=2 {
        sub.subscribe(n, "r/t", QoS::AtMostOnce).await;
        let got = sub.receive_all().await;
        assert_eq!(
            summary(&got),
            [("r/t", "kept", QoS::AtMostOnce, true)],
            "[MQTT-3.8.4-3]"
        );
    }
    broker.stop().await;
}

fn options(retain_handling: RetainHandling) -> SubscriptionOptions {
    let mut options = SubscriptionOptions::new(QoS::AtMostOnce);
    options.retain_handling = retain_handling;
    options
}

/// What a v5 client gets on subscribing to `r/t` twice, then to `r/#`, all with
/// `retain_handling`: the count of retained messages sent each time.
async fn retained_sent_with(retain_handling: RetainHandling) -> [usize; 3] {
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker, ProtocolVersion::V5).await;
    publisher
        .publish(retained("r/t", "kept", QoS::AtMostOnce, None))
        .await;
    let (mut sub, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "sub")).await;
    let mut counts = [0; 3];
    for (n, filter) in ["r/t", "r/t", "r/#"].into_iter().enumerate() {
        let id = u16::try_from(n + 1).unwrap();
        sub.subscribe_with(id, vec![subscription(filter, options(retain_handling))])
            .await;
        let got = sub.receive_all().await;
        assert!(got.iter().all(|p| p.retain && text(p) == "kept"), "{got:?}");
        counts[n] = got.len();
    }
    broker.stop().await;
    counts
}

#[tokio::test]
async fn v5_retain_handling_0_sends_retained_on_every_subscribe() {
    assert_eq!(
        retained_sent_with(RetainHandling::SendOnSubscribe).await,
        [1, 1, 1]
    );
}

#[tokio::test]
async fn v5_retain_handling_1_sends_retained_only_for_a_new_subscription() {
    assert_eq!(
        retained_sent_with(RetainHandling::SendIfNew).await,
        [1, 0, 1]
    );
}

#[tokio::test]
async fn v5_retain_handling_2_never_sends_retained() {
    assert_eq!(
        retained_sent_with(RetainHandling::DoNotSend).await,
        [0, 0, 0]
    );
}

#[tokio::test]
async fn v5_retain_as_published_keeps_the_retain_flag_on_live_messages() {
    let broker = TestBroker::start().await;
    let v5 = ProtocolVersion::V5;
    let (mut plain, _) = Peer::connected(broker.addr, clean(v5, "plain")).await;
    plain.subscribe(1, "rap/#", QoS::AtMostOnce).await;
    let (mut rap, _) = Peer::connected(broker.addr, clean(v5, "rap")).await;
    let mut rap_options = SubscriptionOptions::new(QoS::AtMostOnce);
    rap_options.retain_as_published = true;
    rap.subscribe_with(1, vec![subscription("rap/#", rap_options)])
        .await;

    let mut publisher = publisher(&broker, v5).await;
    publisher
        .publish(retained("rap/t", "r", QoS::AtMostOnce, None))
        .await;
    publisher
        .publish(message("rap/t", "n", QoS::AtMostOnce, None))
        .await;
    let flags = |got: Vec<Publish>| -> Vec<(String, bool)> {
        got.iter()
            .map(|p| (text(p).to_string(), p.retain))
            .collect()
    };
    assert_eq!(
        flags(rap.receive_all().await),
        [("r".to_string(), true), ("n".to_string(), false)],
        "[MQTT-3.3.1-13]"
    );
    assert_eq!(
        flags(plain.receive_all().await),
        [("r".to_string(), false), ("n".to_string(), false)],
        "[MQTT-3.3.1-12]"
    );
    broker.stop().await;
}

async fn own_messages_come_back_unless_no_local(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut me, _) = Peer::connected(broker.addr, clean(version, "me")).await;
    let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
    // 3.1.1 has no No Local: a client gets its own messages.
    options.no_local = version.is_v5();
    me.subscribe_with(1, vec![subscription("nl/#", options)])
        .await;
    me.publish(message("nl/t", "mine", QoS::AtLeastOnce, Some(1)))
        .await;
    let own = me.receive_all().await;
    if version.is_v5() {
        assert!(own.is_empty(), "No Local [MQTT-3.8.3-3]: {own:?}");
    } else {
        assert_eq!(own.iter().map(text).collect::<Vec<_>>(), ["mine"]);
    }

    let mut other = publisher(&broker, version).await;
    other
        .publish(message("nl/t", "theirs", QoS::AtLeastOnce, Some(1)))
        .await;
    let got = me.receive_all().await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["theirs"]);
    broker.stop().await;
}
each_version!(own_messages_come_back_unless_no_local);

/// A retained message with a Message Expiry Interval (set by an MQTT 5 publisher) is
/// sent with what is left of it, and not at all once it ran out (§3.3.2.3.3).
async fn expired_retained_messages_are_not_delivered(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker, ProtocolVersion::V5).await;
    let mut expiring = retained("x/t", "soon gone", QoS::AtLeastOnce, Some(1));
    expiring.properties.message_expiry_interval = Some(10);
    publisher.publish(expiring).await;
    publisher
        .publish(retained("x/u", "stays", QoS::AtLeastOnce, Some(2)))
        .await;

    advance_secs(4).await;
    let mut got = fresh_subscriber_gets(&broker, version, "x/+", QoS::AtLeastOnce).await;
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(
        summary(&got),
        [
            ("x/t", "soon gone", QoS::AtLeastOnce, true),
            ("x/u", "stays", QoS::AtLeastOnce, true)
        ]
    );
    let left = version.is_v5().then_some(6);
    assert_eq!(
        got[0].properties.message_expiry_interval, left,
        "10 s minus the 4 s it was stored [MQTT-3.3.2-6]"
    );
    assert_eq!(got[1].properties.message_expiry_interval, None);

    advance_secs(6).await;
    let got = fresh_subscriber_gets(&broker, version, "x/+", QoS::AtLeastOnce).await;
    assert_eq!(
        summary(&got),
        [("x/u", "stays", QoS::AtLeastOnce, true)],
        "x/t expired"
    );
    broker.stop().await;
}
each_version!(paused expired_retained_messages_are_not_delivered);
