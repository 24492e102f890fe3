//! Which subscribers get a message: `+`, `#` (including the parent level), `$` topics
//! and leading wildcards, exact filters, empty levels; overlapping subscriptions (one
//! copy, highest QoS, every Subscription Identifier); UNSUBSCRIBE; SUBSCRIBE replacing a
//! subscription. 3.1.1 and 5.0.
//!
//! "Not delivered" is asserted without waiting: the non-matching messages are published
//! first and a matching marker last, from one connection, so the marker being the next
//! PUBLISH the subscriber reads proves nothing came before it.

use crate::common;

use std::num::NonZeroU32;

use common::*;
use protocol::{
    Packet, ProtocolVersion, PubAck, PubComp, PubRec, Publish, QoS, ReasonCode, Subscribe,
    SubscribeProperties, Subscription, SubscriptionOptions, Unsubscribe,
};

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Publishes every topic in `topics` (QoS 0), then `marker`, and asserts that the
/// subscriber receives exactly `expected` (in order) and then the marker.
async fn assert_routes(
    publisher: &mut Peer,
    subscriber: &mut Peer,
    topics: &[&str],
    expected: &[&str],
    marker: &str,
) {
    for topic in topics {
        publisher
            .send_publish(publish(topic, topic, QoS::AtMostOnce, None))
            .await;
    }
    publisher
        .send_publish(publish(marker, "marker", QoS::AtMostOnce, None))
        .await;
    let mut got = Vec::new();
    loop {
        let p = subscriber.recv_publish().await;
        if &p.payload[..] == b"marker" {
            assert_eq!(&p.topic[..], marker);
            break;
        }
        got.push(p.topic.to_string());
    }
    assert_eq!(got, expected, "delivered before the marker {marker}");
}

async fn subscribe_with_id(client: &mut Peer, packet_id: u16, filter_: &str, qos: QoS, id: u32) {
    client
        .send(&Packet::Subscribe(Subscribe {
            packet_id: pid(packet_id),
            subscriptions: vec![Subscription {
                filter: filter(filter_),
                options: SubscriptionOptions::new(qos),
            }],
            properties: SubscribeProperties {
                subscription_identifier: NonZeroU32::new(id),
                ..Default::default()
            },
        }))
        .await;
    assert!(matches!(client.recv().await, Packet::SubAck(ack) if ack.packet_id == pid(packet_id)));
}

async fn unsubscribe(client: &mut Peer, packet_id: u16, filters: &[&str]) -> Vec<ReasonCode> {
    client
        .send(&Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(packet_id),
            filters: filters.iter().map(|f| filter(f)).collect(),
            properties: Default::default(),
        }))
        .await;
    match client.recv().await {
        Packet::UnsubAck(ack) => {
            assert_eq!(ack.packet_id, pid(packet_id));
            ack.reason_codes
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

/// Completes the subscriber's side of a QoS 1 or 2 delivery.
async fn acknowledge(client: &mut Peer, p: &Publish) {
    let Some(id) = p.packet_id else { return };
    match p.qos {
        QoS::AtLeastOnce => client.send(&Packet::PubAck(PubAck::new(id))).await,
        QoS::ExactlyOnce => {
            client.send(&Packet::PubRec(PubRec::new(id))).await;
            assert!(matches!(client.recv().await, Packet::PubRel(r) if r.packet_id == id));
            client.send(&Packet::PubComp(PubComp::new(id))).await;
        }
        QoS::AtMostOnce => {}
    }
}

#[tokio::test]
async fn single_level_wildcard_matches_exactly_one_level() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(1, &[("a/+/c", QoS::AtMostOnce), ("+", QoS::AtMostOnce)])
            .await;
        let mut publisher = broker.client(version, "pub").await;
        assert_routes(
            &mut publisher,
            &mut sub,
            &["a/b/c", "a/b/x/c", "a/c", "a/b/c/d", "x", "x/y", "a//c"],
            &["a/b/c", "x", "a//c"],
            "a/m/c",
        )
        .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn multi_level_wildcard_matches_the_parent_level_and_everything_below() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(1, &[("a/#", QoS::AtMostOnce)]).await;
        let mut publisher = broker.client(version, "pub").await;
        assert_routes(
            &mut publisher,
            &mut sub,
            &["a", "a/b", "a/b/c/d", "ab", "b/a", "a/"],
            &["a", "a/b", "a/b/c/d", "a/"],
            "a/marker",
        )
        .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn leading_wildcards_do_not_match_dollar_topics() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut wild = broker.client(version, "wild").await;
        wild.subscribe_many(1, &[("#", QoS::AtMostOnce), ("+/status", QoS::AtMostOnce)])
            .await;
        let mut dollar = broker.client(version, "dollar").await;
        dollar
            .subscribe_many(
                1,
                &[("$app/#", QoS::AtMostOnce), ("$app/+", QoS::AtMostOnce)],
            )
            .await;
        let mut publisher = broker.client(version, "pub").await;
        publisher
            .send_publish(publish("$app/status", "sys", QoS::AtMostOnce, None))
            .await;
        // `$app/#` and `$app/+` overlap: one copy.
        let got = dollar.recv_publish().await;
        assert_eq!(
            (&got.topic[..], &got.payload[..]),
            ("$app/status", &b"sys"[..])
        );
        assert_routes(
            &mut publisher,
            &mut wild,
            &["$app/status", "$x"],
            &[],
            "dev/status",
        )
        .await;
        // `dollar` also got the `$app/status` published for `wild` above, once.
        assert_routes(
            &mut publisher,
            &mut dollar,
            &["app/status"],
            &["$app/status"],
            "$app/marker",
        )
        .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn exact_filter_matches_only_its_own_topic() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(1, &[("home/kitchen/temp", QoS::AtMostOnce)])
            .await;
        let mut publisher = broker.client(version, "pub").await;
        assert_routes(
            &mut publisher,
            &mut sub,
            &[
                "home/kitchen",
                "home/kitchen/temp/x",
                "Home/kitchen/temp",
                "home/kitchen/temp/",
                "/home/kitchen/temp",
            ],
            &[],
            "home/kitchen/temp",
        )
        .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn empty_levels_are_levels_of_their_own() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(
            1,
            &[
                ("/+", QoS::AtMostOnce),
                ("a//b", QoS::AtMostOnce),
                ("c/+/d", QoS::AtMostOnce),
            ],
        )
        .await;
        let mut publisher = broker.client(version, "pub").await;
        assert_routes(
            &mut publisher,
            &mut sub,
            &["/x", "x", "/", "a//b", "a/b", "a///b", "c//d", "c/d"],
            &["/x", "/", "a//b", "c//d"],
            "/marker",
        )
        .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(
            1,
            &[
                ("o/#", QoS::AtMostOnce),
                ("o/+", QoS::ExactlyOnce),
                ("o/x", QoS::AtLeastOnce),
            ],
        )
        .await;
        let mut publisher = broker.client(version, "pub").await;
        publisher
            .send_publish(publish("o/x", "one", QoS::ExactlyOnce, Some(1)))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubRec(_)));
        let got = sub.recv_publish().await;
        assert_eq!(
            (got.qos, &got.payload[..]),
            (QoS::ExactlyOnce, &b"one"[..]),
            "{version}"
        );
        acknowledge(&mut sub, &got).await;
        // Only `o/#` matches `o/y/z`: QoS 0.
        assert_routes(&mut publisher, &mut sub, &[], &[], "o/y/z").await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn overlapping_v5_subscriptions_deliver_one_copy_with_every_subscription_identifier() {
    let broker = TestBroker::start().await;
    let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
    subscribe_with_id(&mut sub, 1, "s/#", QoS::AtMostOnce, 11).await;
    subscribe_with_id(&mut sub, 2, "s/+", QoS::AtLeastOnce, 22).await;
    subscribe_with_id(&mut sub, 3, "s/x", QoS::AtMostOnce, 33).await;
    subscribe_with_id(&mut sub, 4, "other/#", QoS::AtMostOnce, 44).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    publisher
        .send_publish(publish("s/x", "hello", QoS::ExactlyOnce, Some(1)))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(_)));
    let got = sub.recv_publish().await;
    assert_eq!(
        got.qos,
        QoS::AtLeastOnce,
        "QoS is the best of the matching subscriptions"
    );
    let mut ids: Vec<u32> = got
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [11, 22, 33]);
    acknowledge(&mut sub, &got).await;
    // Exactly one copy: the next message is the next one published.
    publisher
        .send_publish(publish("s/q/r", "deep", QoS::AtMostOnce, None))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"deep");
    assert_eq!(
        got.properties.subscription_identifiers,
        [NonZeroU32::new(11).unwrap()]
    );
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        sub.subscribe_many(1, &[("u/+", QoS::AtLeastOnce), ("keep", QoS::AtMostOnce)])
            .await;
        let mut publisher = broker.client(version, "pub").await;
        assert_routes(&mut publisher, &mut sub, &["u/1"], &["u/1"], "keep").await;
        let codes = unsubscribe(&mut sub, 2, &["u/+"]).await;
        if version.is_v5() {
            assert_eq!(codes, [ReasonCode::Success]);
        }
        assert_routes(&mut publisher, &mut sub, &["u/1", "u/2"], &[], "keep").await;
        // An unsubscribed filter's QoS 1 PUBLISH is not delivered either.
        publisher
            .send_publish(publish("u/3", "q1", QoS::AtLeastOnce, Some(5)))
            .await;
        let ack = publisher.recv().await;
        if version.is_v5() {
            assert!(
                matches!(&ack, Packet::PubAck(a) if a.reason_code == ReasonCode::NoMatchingSubscribers),
                "{ack:?}"
            );
        }
        assert_routes(&mut publisher, &mut sub, &[], &[], "keep").await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn v5_unsuback_says_no_subscription_existed_per_filter() {
    let broker = TestBroker::start().await;
    let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("a/b", QoS::AtMostOnce)]).await;
    let codes = unsubscribe(&mut sub, 2, &["never", "a/b", "a/+"]).await;
    assert_eq!(
        codes,
        [
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted
        ]
    );
    // Unsubscribing twice: the second finds nothing.
    assert_eq!(
        unsubscribe(&mut sub, 3, &["a/b"]).await,
        [ReasonCode::NoSubscriptionExisted]
    );
    broker.stop().await;
}

#[tokio::test]
async fn subscribing_again_to_a_filter_replaces_its_options() {
    for version in VERSIONS {
        let broker = TestBroker::start().await;
        let mut sub = broker.client(version, "sub").await;
        subscribe_with_id(&mut sub, 1, "r/+", QoS::AtMostOnce, 1).await;
        subscribe_with_id(&mut sub, 2, "r/+", QoS::AtLeastOnce, 2).await;
        let mut publisher = broker.client(version, "pub").await;
        publisher
            .send_publish(publish("r/1", "up", QoS::AtLeastOnce, Some(1)))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        let got = sub.recv_publish().await;
        assert_eq!(
            got.qos,
            QoS::AtLeastOnce,
            "the new subscription's QoS applies"
        );
        if version.is_v5() {
            assert_eq!(
                got.properties.subscription_identifiers,
                [NonZeroU32::new(2).unwrap()]
            );
        }
        acknowledge(&mut sub, &got).await;
        // Downgrade again: one subscription, QoS 0.
        subscribe_with_id(&mut sub, 3, "r/+", QoS::AtMostOnce, 3).await;
        publisher
            .send_publish(publish("r/2", "down", QoS::AtLeastOnce, Some(2)))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
        let got = sub.recv_publish().await;
        assert_eq!((got.qos, &got.payload[..]), (QoS::AtMostOnce, &b"down"[..]));
        assert_routes(&mut publisher, &mut sub, &[], &[], "r/marker").await;
        broker.stop().await;
    }
}
