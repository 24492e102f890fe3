//! Retained messages and will messages.

mod common;

use common::{TestBroker, next, options};
use native_client::{Client, PublishOptions, QoS, ReasonCode, Will};

#[tokio::test]
async fn a_later_subscriber_gets_the_retained_message_flagged_retain() {
    let broker = TestBroker::start().await;
    let publisher = common::connect(&broker.url(), "retainer").await;
    publisher
        .publish(
            "retained/t",
            "kept",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    let subscriber = common::connect(&broker.url(), "late").await;
    let mut subscription = subscriber
        .subscribe("retained/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut subscription).await;
    assert_eq!(
        (message.topic(), message.payload_str()),
        ("retained/t", Some("kept"))
    );
    assert!(message.retain);
    // An empty retained payload clears it: a new subscription then gets nothing old,
    // only what is published after.
    publisher
        .publish(
            "retained/t",
            "",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    let mut fresh = subscriber
        .subscribe("retained/t", QoS::AtLeastOnce)
        .await
        .unwrap();
    publisher
        .publish("retained/t", "live", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut fresh).await;
    assert_eq!(message.payload_str(), Some("live"));
    assert!(!message.retain);
    publisher.disconnect(ReasonCode::Success).await.unwrap();
    subscriber.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn the_will_is_published_retained_when_the_connection_drops() {
    let broker = TestBroker::start().await;
    let url = broker.url();
    let watcher = common::connect(&url, "watcher").await;
    let mut states = watcher
        .subscribe("iot/5/dev/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let device = Client::connect(options(&url, "dev").will(
        "iot/5/dev/$state",
        "lost",
        QoS::AtLeastOnce,
        true,
    ))
    .await
    .unwrap();
    device
        .publish(
            "iot/5/dev/$state",
            "ready",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut states).await.payload_str(), Some("ready"));
    device.abort();
    let will = next(&mut states).await;
    assert_eq!(will.payload_str(), Some("lost"));
    // Retained: a new subscriber sees `lost` too.
    let mut again = watcher
        .subscribe("iot/5/+/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut again).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("lost"), true)
    );
    watcher.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_with_will_message_publishes_the_will() {
    let broker = TestBroker::start().await;
    let url = broker.url();
    let watcher = common::connect(&url, "watcher").await;
    let mut wills = watcher
        .subscribe("wills/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let will = Will {
        topic: "wills/a".parse().unwrap(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    let client = Client::connect(options(&url, "a").will_message(will))
        .await
        .unwrap();
    client
        .disconnect(ReasonCode::DisconnectWithWillMessage)
        .await
        .unwrap();
    assert_eq!(next(&mut wills).await.payload_str(), Some("gone"));
    assert!(client.is_closed());
    watcher.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}
