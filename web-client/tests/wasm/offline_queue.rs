//! The offline queue in a real browser: publications made while the connection is down
//! wait, at most `capacity` of them, and a full queue follows its policy, reporting
//! what it drops. What is queued goes out after the reconnect, in order.

use std::time::Duration;

use crate::common::{broker, connect, next, options, spawn, unique, wait_event, within};
use wasm_bindgen_test::wasm_bindgen_test;
use web_client::{
    DropPolicy, DropSource, Error, Event, ProtocolVersion, QoS, ReconnectOptions, Subscription,
};

/// Publishes `one`, `two` and `three` while offline through a queue of two with
/// `policy`; returns each publication's result and the messages a peer then receives.
async fn overflow(policy: DropPolicy) -> (Vec<Result<(), Error>>, Vec<String>, Option<u64>) {
    let url = broker().expect("checked by the caller");
    let topic = unique("web/offline");
    let peer = connect(options(url, &unique("peer"), ProtocolVersion::V5)).await;
    let mut received: Subscription = peer
        .subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    let client = connect(
        options(url, &unique("offline"), ProtocolVersion::V5)
            .offline_queue(2, policy)
            .reconnect(ReconnectOptions {
                jitter: 0.0,
                ..ReconnectOptions::backoff(Duration::from_secs(2), Duration::from_secs(2))
            }),
    )
    .await;
    let mut events = client.events();
    client.drop_connection();
    wait_event(&mut events, "the drop", |event| {
        matches!(event, Event::Disconnected { .. }).then_some(())
    })
    .await;

    // In order: each task sends its command when it first runs.
    let publications: Vec<_> = ["one", "two", "three"]
        .into_iter()
        .map(|payload| {
            let client = client.clone();
            let topic = topic.clone();
            spawn(async move {
                client
                    .publish(topic, payload, QoS::AtLeastOnce)
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    let dropped = wait_event(&mut events, "the reconnection", |event| match event {
        Event::MessagesDropped {
            count,
            source: DropSource::OfflineQueue,
        } => Some(Some(*count)),
        Event::Connected { .. } => Some(None),
        _ => None,
    })
    .await;
    let mut results = Vec::new();
    for publication in publications {
        results.push(within("a publication's outcome", publication).await);
    }
    let delivered = results.iter().filter(|result| result.is_ok()).count();
    let mut messages = Vec::new();
    for _ in 0..delivered {
        let message = next(&mut received).await;
        messages.push(message.payload_str().unwrap_or_default().to_owned());
    }
    (results, messages, dropped)
}

#[wasm_bindgen_test]
async fn drop_oldest_keeps_the_freshest_and_reports_the_drop() {
    if broker().is_none() {
        return;
    }
    let (results, messages, dropped) = overflow(DropPolicy::DropOldest).await;
    assert_eq!(results, [Err(Error::Dropped), Ok(()), Ok(())]);
    assert_eq!(messages, ["two", "three"]);
    assert_eq!(dropped, Some(1));
}

#[wasm_bindgen_test]
async fn drop_newest_keeps_what_was_queued_and_reports_the_drop() {
    if broker().is_none() {
        return;
    }
    let (results, messages, dropped) = overflow(DropPolicy::DropNewest).await;
    assert_eq!(results, [Ok(()), Ok(()), Err(Error::Dropped)]);
    assert_eq!(messages, ["one", "two"]);
    assert_eq!(dropped, Some(1));
}

#[wasm_bindgen_test]
async fn reject_refuses_the_publication_without_a_drop_event() {
    if broker().is_none() {
        return;
    }
    let (results, messages, dropped) = overflow(DropPolicy::Reject).await;
    assert_eq!(results, [Ok(()), Ok(()), Err(Error::QueueFull)]);
    assert_eq!(messages, ["one", "two"]);
    assert_eq!(dropped, None, "the caller was told; nothing to report");
}
