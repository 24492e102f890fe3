//! QoS beyond the round trips of the scenario set: downgrade to the subscription's QoS,
//! the reason code without subscribers, order of many QoS 1 messages.

use crate::common::{self, TestBroker, next};
use native_client::{PublishOptions, QoS, ReasonCode};

#[tokio::test]
async fn delivery_qos_is_the_lower_of_publish_and_subscription_qos() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "downgrade").await;
    let mut subscription = client.subscribe("down/#", QoS::AtLeastOnce).await.unwrap();
    client
        .publish("down/2", "x", QoS::ExactlyOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.qos, QoS::AtLeastOnce);
    client
        .publish("down/0", "y", QoS::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.qos, QoS::AtMostOnce);
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn puback_without_subscribers_reports_no_matching_subscribers() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "lonely").await;
    let outcome = client
        .publish("nobody/listens", "x", PublishOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome.reason_code,
            ReasonCode::Success | ReasonCode::NoMatchingSubscribers
        ),
        "{outcome:?}"
    );
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn many_qos1_messages_arrive_in_order() {
    let broker = TestBroker::start().await;
    let client = common::connect(&broker.url(), "burst").await;
    let mut subscription = client.subscribe("burst", QoS::AtLeastOnce).await.unwrap();
    let publishes = (0..500).map(|n| client.publish("burst", n.to_string(), QoS::AtLeastOnce));
    for result in futures::future::join_all(publishes).await {
        result.unwrap();
    }
    for n in 0..500 {
        assert_eq!(
            next(&mut subscription).await.payload_str(),
            Some(n.to_string().as_str())
        );
    }
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}
