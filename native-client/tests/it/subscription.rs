//! Local subscriptions: routing to overlapping filters, unsubscribing on drop.

use crate::common::{self, TestBroker, next, options};
use native_client::{Client, Error, ProtocolVersion, QoS, ReasonCode};

async fn overlapping(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let client = Client::connect(options(&broker.url(), "overlap").version(version))
        .await
        .unwrap();
    let mut all = client.subscribe("home/#", QoS::AtLeastOnce).await.unwrap();
    let mut kitchen = client
        .subscribe("home/kitchen/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("home/kitchen/temp", "21", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("home/hall/temp", "19", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut all).await.topic(), "home/kitchen/temp");
    assert_eq!(next(&mut all).await.topic(), "home/hall/temp");
    assert_eq!(next(&mut kitchen).await.topic(), "home/kitchen/temp");
    // Exactly once each: the marker is the next thing both see.
    client
        .publish("home/kitchen/end", "", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut all).await.topic(), "home/kitchen/end");
    assert_eq!(next(&mut kitchen).await.topic(), "home/kitchen/end");
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn overlapping_filters_each_get_a_message_once_over_mqtt5() {
    overlapping(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn overlapping_filters_each_get_a_message_once_over_mqtt311() {
    overlapping(ProtocolVersion::V3_1_1).await;
}

#[tokio::test]
async fn dropping_the_last_subscription_of_a_filter_unsubscribes() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "dropper").await;
    let first = client.subscribe("drop/t", QoS::AtLeastOnce).await.unwrap();
    let mut second = client.subscribe("drop/t", QoS::AtLeastOnce).await.unwrap();
    drop(first);
    let outcome = client
        .publish("drop/t", "still", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(outcome.reason_code, ReasonCode::Success);
    assert_eq!(next(&mut second).await.payload_str(), Some("still"));
    drop(second);
    let outcome = client
        .publish("drop/t", "nobody", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(outcome.reason_code, ReasonCode::NoMatchingSubscribers);
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn invalid_filters_and_topics_are_refused_before_sending() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "strict").await;
    assert!(matches!(
        client.subscribe("a/#/b", QoS::AtMostOnce).await,
        Err(Error::Topic(_))
    ));
    assert!(matches!(
        client.publish("a/+", "x", QoS::AtMostOnce).await,
        Err(Error::Topic(_))
    ));
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}
