//! Publish and subscribe at QoS 0, 1 and 2, over MQTT 5 and 3.1.1.

mod common;

use common::{TestBroker, next, options};
use native_client::{Client, ProtocolVersion, PublishOptions, QoS, ReasonCode};

async fn round_trip(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let url = broker.url();
    let subscriber = Client::connect(options(&url, "sub").version(version))
        .await
        .unwrap();
    let publisher = Client::connect(options(&url, "pub").version(version))
        .await
        .unwrap();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("qos/{}", qos as u8);
        let mut subscription = subscriber.subscribe(topic.as_str(), qos).await.unwrap();
        assert_eq!(subscription.granted_qos(), qos);
        let outcome = publisher
            .publish(topic.as_str(), format!("at {qos:?}"), qos)
            .await
            .unwrap();
        assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
        let message = next(&mut subscription).await;
        assert_eq!(message.topic(), topic);
        assert_eq!(message.payload_str(), Some(format!("at {qos:?}").as_str()));
        assert_eq!(message.qos, qos);
        assert!(!message.retain);
    }
    publisher.disconnect(ReasonCode::Success).await.unwrap();
    subscriber.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn messages_arrive_at_every_qos_over_mqtt5() {
    round_trip(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn messages_arrive_at_every_qos_over_mqtt311() {
    round_trip(ProtocolVersion::V3_1_1).await;
}

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
