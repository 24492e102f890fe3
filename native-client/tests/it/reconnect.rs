//! Reconnecting: session resumption across a dropped connection and across a restart
//! of a broker with durable (redb) storage, subscriptions restored after a restart of a
//! broker without storage, and the offline queue's drop policies.

use std::time::Duration;

use crate::common::{self, TestBroker, next, options, wait_event};
use native_client::{
    Client, DisconnectReason, DropPolicy, DropSource, Error, Event, QoS, ReasonCode,
    ReconnectOptions,
};

#[tokio::test]
async fn a_persistent_session_resumes_after_the_connection_drops() {
    let broker = TestBroker::start().await;
    let url = broker.url();
    let device = Client::connect(options(&url, "resumer").session_expiry(300).reconnect(
        ReconnectOptions::backoff(Duration::from_millis(300), Duration::from_secs(1)),
    ))
    .await
    .unwrap();
    let mut inbox = device
        .subscribe("resume/in", QoS::AtLeastOnce)
        .await
        .unwrap();
    let peer = common::connect(&url, "peer").await;
    let mut outbox = peer
        .subscribe("resume/out", QoS::AtLeastOnce)
        .await
        .unwrap();

    let mut events = device.events();
    device.drop_connection();
    let reason = wait_event(&mut events, "disconnected", |event| match event {
        Event::Disconnected {
            reason,
            will_reconnect: true,
        } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::Dropped);
    // While the device is away: the broker queues for its session, and the device
    // queues its own publication.
    assert!(!device.is_connected());
    peer.publish("resume/in", "while away", QoS::AtLeastOnce)
        .await
        .unwrap();
    let sent = tokio::spawn({
        let device = device.clone();
        async move {
            device
                .publish("resume/out", "queued offline", QoS::AtLeastOnce)
                .await
        }
    });

    let present = wait_event(&mut events, "reconnected", |event| match event {
        Event::Connected { session_present } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(present, "the broker resumed the session");
    assert_eq!(next(&mut inbox).await.payload_str(), Some("while away"));
    assert_eq!(
        next(&mut outbox).await.payload_str(),
        Some("queued offline")
    );
    sent.await.unwrap().unwrap();
    device.disconnect(ReasonCode::Success).await.unwrap();
    peer.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn subscriptions_are_restored_after_a_broker_restart() {
    let broker = TestBroker::start().await;
    let addr = broker.addr;
    let url = broker.url();
    let device = common::connect(&url, "survivor").await;
    let mut commands = device
        .subscribe("restart/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut events = device.events();

    broker.stop().await;
    let reason = wait_event(&mut events, "disconnected", |event| match event {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(
            reason,
            DisconnectReason::Server {
                reason_code: ReasonCode::ServerShuttingDown,
                ..
            } | DisconnectReason::Transport(_)
        ),
        "{reason:?}"
    );
    wait_event(&mut events, "a reconnect attempt", |event| {
        matches!(event, Event::Reconnecting { .. }).then_some(())
    })
    .await;

    let broker = TestBroker::start_on(addr).await;
    let present = wait_event(&mut events, "reconnected", |event| match event {
        Event::Connected { session_present } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(!present, "a restarted broker has no session");
    // Retained, so it reaches the restored subscription whether it is published
    // before or after the resubscription is processed.
    let peer = common::connect(&url, "peer").await;
    peer.publish(
        "restart/cmd",
        "after restart",
        native_client::PublishOptions::new(QoS::AtLeastOnce).retain(true),
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut commands).await.payload_str(),
        Some("after restart")
    );
    device.disconnect(ReasonCode::Success).await.unwrap();
    peer.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

/// Stops the broker and waits until `client` knows it is disconnected.
async fn go_offline(broker: TestBroker, client: &Client) -> std::net::SocketAddr {
    let addr = broker.addr;
    let mut events = client.events();
    broker.stop().await;
    wait_event(&mut events, "disconnected", |event| {
        matches!(event, Event::Disconnected { .. }).then_some(())
    })
    .await;
    addr
}

#[tokio::test]
async fn a_full_offline_queue_drops_the_oldest_and_reports_it() {
    let broker = TestBroker::start().await;
    let client =
        Client::connect(options(&broker.url(), "queue").offline_queue(2, DropPolicy::DropOldest))
            .await
            .unwrap();
    let addr = go_offline(broker, &client).await;
    let mut events = client.events();
    let publishes = tokio::spawn({
        let client = client.clone();
        async move {
            futures::future::join_all(
                ["one", "two", "three"]
                    .map(|payload| client.publish("queued", payload, QoS::AtLeastOnce)),
            )
            .await
        }
    });
    let (count, source) = wait_event(&mut events, "a drop", |event| match event {
        Event::MessagesDropped { count, source } => Some((*count, source.clone())),
        _ => None,
    })
    .await;
    assert_eq!((count, source), (1, DropSource::OfflineQueue));

    let broker = TestBroker::start_on(addr).await;
    let results = common::within("the queued publications", publishes)
        .await
        .unwrap();
    assert_eq!(results[0], Err(Error::Dropped));
    assert!(results[1].is_ok() && results[2].is_ok(), "{results:?}");
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_full_offline_queue_rejects_or_drops_the_newest_by_policy() {
    for (policy, expected) in [
        (DropPolicy::Reject, Error::QueueFull),
        (DropPolicy::DropNewest, Error::Dropped),
    ] {
        let broker = TestBroker::start().await;
        let client = Client::connect(options(&broker.url(), "queue").offline_queue(1, policy))
            .await
            .unwrap();
        let addr = go_offline(broker, &client).await;
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.publish("queued", "kept", QoS::AtLeastOnce).await }
        });
        // The first publication is queued before the second is made.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = client.publish("queued", "refused", QoS::AtLeastOnce).await;
        assert_eq!(second, Err(expected), "{policy:?}");
        let broker = TestBroker::start_on(addr).await;
        common::within("the kept publication", first)
            .await
            .unwrap()
            .unwrap();
        client.disconnect(ReasonCode::Success).await.unwrap();
        broker.stop().await;
    }
}

#[tokio::test]
async fn without_reconnect_the_client_ends_with_its_connection() {
    let broker = TestBroker::start().await;
    let client =
        Client::connect(options(&broker.url(), "once").reconnect(ReconnectOptions::disabled()))
            .await
            .unwrap();
    let mut subscription = client.subscribe("t", QoS::AtMostOnce).await.unwrap();
    let mut events = client.events();
    broker.stop().await;
    let will_reconnect = wait_event(&mut events, "disconnected", |event| match event {
        Event::Disconnected { will_reconnect, .. } => Some(*will_reconnect),
        _ => None,
    })
    .await;
    assert!(!will_reconnect);
    assert_eq!(
        common::within("the stream to end", subscription.recv()).await,
        None
    );
    assert_eq!(
        client.publish("t", "x", QoS::AtMostOnce).await,
        Err(Error::Closed)
    );
}
