//! Reconnection in a real browser: the broker restarts under a connected client (xtask's
//! harness stops and starts it), and the client comes back by itself. A persistent
//! session gets the messages published to it meanwhile; a clean one subscribes again;
//! what the page published while offline goes out after the reconnect.
//!
//! The tests here restart the shared broker. wasm-bindgen-test runs the tests of a binary
//! one at a time, so no test of the other modules has a connection open meanwhile.

use std::time::Duration;

use crate::common::{broker, connect, harness, next, options, spawn, unique, wait_event, within};
use wasm_bindgen_test::wasm_bindgen_test;
use web_client::{
    DisconnectReason, Event, ProtocolVersion, PublishOptions, QoS, ReasonCode, ReconnectOptions,
};

/// A backoff long enough for the broker to restart and a peer to publish before the
/// client is back, so that those messages wait in the broker's session queue.
fn slow_reconnect() -> ReconnectOptions {
    ReconnectOptions {
        jitter: 0.0,
        ..ReconnectOptions::backoff(Duration::from_secs(2), Duration::from_secs(2))
    }
}

#[wasm_bindgen_test]
async fn a_persistent_session_survives_a_broker_restart_with_what_was_published_meanwhile() {
    let Some(url) = broker() else { return };
    let topic = unique("web/restart");
    let id = unique("persistent");
    let client = connect(
        options(url, &id, ProtocolVersion::V5)
            .session_expiry(300)
            .reconnect(slow_reconnect()),
    )
    .await;
    let mut subscription = client
        .subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    let mut events = client.events();

    harness("stop").await;
    let reason = wait_event(&mut events, "the disconnection", |event| match event {
        Event::Disconnected {
            reason,
            will_reconnect: true,
        } => Some(reason.clone()),
        _ => None,
    })
    .await;
    // A graceful broker shutdown tells MQTT 5 clients why (0x8B).
    assert!(
        matches!(
            reason,
            DisconnectReason::Server {
                reason_code: ReasonCode::ServerShuttingDown,
                ..
            }
        ),
        "got {reason}"
    );
    assert!(!client.is_connected());

    // Published by the page while offline: waits in the offline queue.
    let offline = spawn({
        let client = client.clone();
        let topic = format!("{topic}/offline");
        async move {
            client
                .publish(topic, "from the page", QoS::AtLeastOnce)
                .await
        }
    });

    harness("start").await;
    // Another client publishes to the persistent session while our client waits out
    // its backoff.
    let peer = connect(options(url, &unique("peer"), ProtocolVersion::V5)).await;
    let mut echo = peer
        .subscribe(format!("{topic}/offline"), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    for n in 0..3 {
        peer.publish(topic.clone(), format!("meanwhile {n}"), QoS::AtLeastOnce)
            .await
            .expect("published");
    }

    let session_present = wait_event(&mut events, "the reconnection", |event| match event {
        Event::Connected { session_present } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(
        session_present,
        "the broker kept the session across its restart"
    );
    for n in 0..3 {
        let message = next(&mut subscription).await;
        assert_eq!(
            message.payload_str(),
            Some(format!("meanwhile {n}").as_str())
        );
    }
    within("the offline publication", offline)
        .await
        .expect("acknowledged after the reconnect");
    assert_eq!(next(&mut echo).await.payload_str(), Some("from the page"));
    client
        .disconnect(ReasonCode::Success)
        .await
        .expect("disconnects");
}

#[wasm_bindgen_test]
async fn a_clean_session_subscribes_again_after_a_restart() {
    let Some(url) = broker() else { return };
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let topic = unique("web/resubscribe");
        let client = connect(options(url, &unique("clean"), version)).await;
        let mut subscription = client
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .expect("subscribed");
        let mut events = client.events();

        harness("restart").await;
        let session_present = wait_event(&mut events, "the reconnection", |event| match event {
            Event::Connected { session_present } => Some(*session_present),
            _ => None,
        })
        .await;
        assert!(!session_present, "a clean session is not kept");

        // The SUBSCRIBE goes out right after CONNACK; publish until it is in place.
        let peer = connect(options(url, &unique("peer"), version)).await;
        let message = within("a message after resubscribing", async {
            loop {
                peer.publish(topic.clone(), "again", QoS::AtLeastOnce)
                    .await
                    .expect("published");
                if let Some(message) = subscription.try_recv() {
                    return message;
                }
                crate::common::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert_eq!(message.payload_str(), Some("again"));
    }
}

#[wasm_bindgen_test]
async fn a_dropped_connection_resumes_the_session_and_resends() {
    let Some(url) = broker() else { return };
    let topic = unique("web/drop");
    let client = connect(
        options(url, &unique("dropper"), ProtocolVersion::V5)
            .session_expiry(60)
            .reconnect(slow_reconnect()),
    )
    .await;
    let mut subscription = client
        .subscribe(topic.clone(), QoS::ExactlyOnce)
        .await
        .expect("subscribed");
    let mut events = client.events();
    client.drop_connection();
    let reason = wait_event(&mut events, "the drop", |event| match event {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::Dropped);
    let (attempt, delay) = wait_event(&mut events, "the backoff", |event| match event {
        Event::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
        _ => None,
    })
    .await;
    assert_eq!((attempt, delay), (1, Duration::from_secs(2)));

    let peer = connect(options(url, &unique("peer"), ProtocolVersion::V5)).await;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        peer.publish(
            topic.clone(),
            format!("{qos:?} while away"),
            PublishOptions::new(qos),
        )
        .await
        .expect("published");
    }
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let message = next(&mut subscription).await;
        assert_eq!(
            message.payload_str(),
            Some(format!("{qos:?} while away").as_str())
        );
    }
    assert!(client.is_connected());
}
