//! Messages through a real broker and back, in a real browser: QoS 0, 1 and 2, retained
//! messages, MQTT 5 request/response, a 1 MB payload, wills and token authentication,
//! over MQTT 3.1.1 and 5.0.
//!
//! Needs the broker `cargo xtask test browser` starts (see `common`).

use std::time::Duration;

use crate::common::{broker, connect, next, options, unique};
use bytes::Bytes;
use wasm_bindgen_test::wasm_bindgen_test;
use web_client::{
    ConnectOptionsExt, Error, ProtocolVersion, PublishOptions, QoS, ReasonCode, SessionError,
    SubscribeOptions, TimerMode,
};

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

#[wasm_bindgen_test]
async fn every_qos_round_trips_over_both_versions() {
    let Some(url) = broker() else { return };
    for version in VERSIONS {
        let client = connect(options(url, &unique("qos"), version)).await;
        let topic = unique("web/qos");
        let mut subscription = client
            .subscribe(topic.clone(), QoS::ExactlyOnce)
            .await
            .expect("subscribed");
        assert_eq!(subscription.granted_qos(), QoS::ExactlyOnce);
        // Twice per QoS to the same topic: from the second message on, an MQTT 5
        // session sends the topic as an alias, which the broker must resolve.
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for round in 0..2 {
                let payload = format!("{version} {qos:?} {round}");
                let outcome = client
                    .publish(topic.clone(), payload.clone(), qos)
                    .await
                    .unwrap_or_else(|err| panic!("{payload}: {err}"));
                assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
                let message = next(&mut subscription).await;
                assert_eq!(message.topic(), topic);
                assert_eq!(message.payload_str(), Some(payload.as_str()));
                assert_eq!(message.qos, qos, "delivered at the publication's QoS");
            }
        }
        client
            .disconnect(ReasonCode::Success)
            .await
            .expect("disconnects");
        assert!(client.is_closed());
    }
}

#[wasm_bindgen_test]
async fn a_retained_message_reaches_later_subscribers_and_can_be_cleared() {
    let Some(url) = broker() else { return };
    for version in VERSIONS {
        let topic = unique("web/retained");
        let publisher = connect(options(url, &unique("retain-pub"), version)).await;
        publisher
            .publish(
                topic.clone(),
                "kept",
                PublishOptions::new(QoS::AtLeastOnce).retain(true),
            )
            .await
            .expect("retained publication acknowledged");

        let subscriber = connect(options(url, &unique("retain-sub"), version)).await;
        let mut subscription = subscriber
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .expect("subscribed");
        let message = next(&mut subscription).await;
        assert_eq!(message.payload_str(), Some("kept"));
        assert!(
            message.retain,
            "sent because of the subscription: retain set"
        );

        // An empty retained message clears it: a third client gets nothing.
        publisher
            .publish(
                topic.clone(),
                Bytes::new(),
                PublishOptions::new(QoS::AtLeastOnce).retain(true),
            )
            .await
            .expect("cleared");
        let late = connect(options(url, &unique("retain-late"), version)).await;
        let mut nothing = late
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .expect("subscribed");
        publisher
            .publish(topic.clone(), "live", QoS::AtLeastOnce)
            .await
            .expect("published");
        let first = next(&mut nothing).await;
        assert_eq!(
            first.payload_str(),
            Some("live"),
            "no retained message left"
        );
        assert!(!first.retain);
    }
}

#[wasm_bindgen_test]
async fn request_and_response_meet_by_correlation_data() {
    let Some(url) = broker() else { return };
    let topic = unique("web/rpc");
    let responder = connect(options(url, &unique("responder"), ProtocolVersion::V5)).await;
    let mut requests = responder
        .subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    let answering = {
        let responder = responder.clone();
        async move {
            for _ in 0..3 {
                let request = next(&mut requests).await;
                let question = request.payload_str().unwrap_or_default().to_owned();
                responder
                    .respond(&request, format!("re: {question}"), QoS::AtLeastOnce.into())
                    .await
                    .expect("responded");
            }
        }
    };
    wasm_bindgen_futures::spawn_local(answering);

    let requester = connect(options(url, &unique("requester"), ProtocolVersion::V5)).await;
    for question in ["ping", "pong"] {
        let response = requester
            .request(topic.clone(), question, Duration::from_secs(10))
            .await
            .expect("a response");
        assert_eq!(
            response.payload_str(),
            Some(format!("re: {question}").as_str())
        );
        assert!(response.correlation_data().is_some());
    }

    // A request may name its own response topic (one per device in the Homie
    // convention); the response meets it there.
    let mut own = PublishOptions::new(QoS::AtLeastOnce);
    own.properties.response_topic = Some(unique("web/rpc-res/dev-1").into());
    let response = requester
        .request_with(topic.clone(), "own", own, Duration::from_secs(10))
        .await
        .expect("a response on the request's own topic");
    assert_eq!(response.payload_str(), Some("re: own"));

    // Nobody answers on another topic: the request times out.
    let unanswered = requester
        .request(unique("web/rpc-void"), "hello?", Duration::from_millis(300))
        .await;
    assert_eq!(unanswered, Err(Error::Timeout(Duration::from_millis(300))));

    // MQTT 3.1.1 has no response topic.
    let old = connect(options(
        url,
        &unique("requester-311"),
        ProtocolVersion::V3_1_1,
    ))
    .await;
    assert_eq!(
        old.request(topic, "x", Duration::from_secs(1)).await,
        Err(Error::NeedsV5("request/response"))
    );
}

#[wasm_bindgen_test]
async fn a_one_megabyte_payload_arrives_intact() {
    let Some(url) = broker() else { return };
    let payload: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i * 7 % 251) as u8).collect();
    for version in VERSIONS {
        let client = connect(options(url, &unique("big"), version)).await;
        let topic = unique("web/big");
        let mut subscription = client
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .expect("subscribed");
        client
            .publish(topic, payload.clone(), QoS::AtLeastOnce)
            .await
            .expect("acknowledged");
        let message = next(&mut subscription).await;
        assert_eq!(message.payload.len(), payload.len());
        assert!(message.payload == payload, "payload changed on the way");
    }
}

#[wasm_bindgen_test]
async fn a_message_above_the_brokers_maximum_packet_size_is_refused_before_sending() {
    let Some(url) = broker() else { return };
    // The broker's CONNACK advertises its Maximum Packet Size (8 MiB by default): the
    // session refuses a larger PUBLISH instead of sending it and being disconnected.
    let client = connect(options(url, &unique("too-big"), ProtocolVersion::V5)).await;
    let payload = vec![0u8; 9 * 1024 * 1024];
    let refused = client
        .publish(unique("web/too-big"), payload, QoS::AtLeastOnce)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::Session(SessionError::PacketTooLarge { .. }))
        ),
        "got {refused:?}"
    );
    assert!(client.is_connected(), "the connection is unharmed");
    client
        .publish(unique("web/after"), "small", QoS::AtLeastOnce)
        .await
        .expect("the next publication goes through");
}

#[wasm_bindgen_test]
async fn the_will_is_published_when_the_connection_breaks() {
    let Some(url) = broker() else { return };
    for version in VERSIONS {
        let topic = unique("web/will");
        let watcher = connect(options(url, &unique("watcher"), version)).await;
        let mut wills = watcher
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .expect("subscribed");
        let doomed = connect(options(url, &unique("doomed"), version).will(
            &topic,
            "lost",
            QoS::AtLeastOnce,
            false,
        ))
        .await;
        doomed.abort();
        let will = next(&mut wills).await;
        assert_eq!(will.payload_str(), Some("lost"));
    }
}

#[wasm_bindgen_test]
async fn a_token_travels_in_the_password_field() {
    let Some(url) = broker() else { return };
    // The test broker accepts anyone; what matters is that CONNECT with a password
    // and no user name is valid at both versions (3.1.1 gets an empty user name).
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2lnbmF0dXJl";
    for version in VERSIONS {
        let client = connect(options(url, &unique("token"), version).token(token)).await;
        assert!(client.is_connected());
    }
}

#[wasm_bindgen_test]
async fn dropping_a_subscription_unsubscribes() {
    let Some(url) = broker() else { return };
    let topic = unique("web/unsub");
    let client = connect(options(url, &unique("unsub"), ProtocolVersion::V5)).await;
    let first = client
        .subscribe(topic.clone(), SubscribeOptions::new(QoS::AtLeastOnce))
        .await
        .expect("subscribed");
    drop(first);
    // A new subscription to another filter sees our publication; the dropped one's
    // filter no longer brings copies (the broker would otherwise deliver twice to
    // `all` through the overlapping filter and the identifier routing).
    let mut all = client
        .subscribe(format!("{topic}/#"), QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    client
        .publish(topic.clone(), "once", QoS::AtLeastOnce)
        .await
        .expect("published");
    assert_eq!(next(&mut all).await.payload_str(), Some("once"));
    client
        .publish(format!("{topic}/end"), "end", QoS::AtLeastOnce)
        .await
        .expect("published");
    assert_eq!(
        next(&mut all).await.payload_str(),
        Some("end"),
        "exactly one copy of the first message"
    );
}

#[wasm_bindgen_test]
async fn timers_run_in_a_worker_and_keep_the_connection_alive() {
    let Some(url) = broker() else { return };
    // Keep alive 2 s: a PINGREQ after 2 s of silence, its answer awaited 1 s; the broker
    // allows 3 s. Two and a half periods with nothing to send pass only if the pings
    // go out and come back.
    let keep_alive = Duration::from_secs(2);
    for mode in [TimerMode::Worker, TimerMode::MainThread] {
        let client = connect(
            options(url, &unique("keepalive"), ProtocolVersion::V5)
                .keep_alive(keep_alive)
                .timer(mode),
        )
        .await;
        assert_eq!(client.timer_mode(), mode, "headless Chromium runs workers");
        let mut events = client.events();
        crate::common::sleep(Duration::from_millis(5000)).await;
        assert!(client.is_connected(), "{mode:?}");
        assert_eq!(events.try_recv(), None, "{mode:?}: no disconnection");
    }
}
