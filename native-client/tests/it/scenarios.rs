//! What every MQTT broker must do for the client, run once against each broker
//! ([`Kind::Ours`] and [`Kind::Mosquitto`]): QoS 0/1/2 over MQTT 5 and 3.1.1,
//! retained messages, wills, a persistent session across a broker restart, TLS with a
//! custom CA and mutual TLS, and MQTT 5 request/response.
//!
//! A scenario is an `async fn(Kind)`; [`against_each_broker!`] turns the list into
//! tests `scenarios::ours::<name>` and `scenarios::mosquitto::<name>`, so a difference
//! between our broker and mosquitto shows as one failing half of a pair.

use std::time::Duration;

use native_client::{
    Client, ConnectError, ConnectFailure, ConnectOptionsExt, Error, Event, ProtocolVersion,
    PublishOptions, QoS, ReasonCode, ReconnectOptions, TlsOptions, TransportError, Will,
};

use crate::brokers::{Broker, Kind, Setup};
use crate::common::{self, PATIENCE, Pki, next, options, wait_event};

/// One `#[tokio::test]` per scenario and broker.
macro_rules! against_each_broker {
    ($($scenario:ident),* $(,)?) => {
        mod ours {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Ours).await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Mosquitto).await;
                }
            )*
        }
    };
}

against_each_broker!(
    messages_arrive_at_every_qos_over_mqtt5,
    messages_arrive_at_every_qos_over_mqtt311,
    a_later_subscriber_gets_the_retained_message_flagged_retain,
    the_will_is_published_retained_when_the_connection_drops,
    disconnect_with_will_message_publishes_the_will,
    a_persistent_session_resumes_after_the_broker_restarts,
    mqtts_works_with_a_custom_ca,
    mutual_tls_needs_the_client_certificate,
    a_request_gets_the_response_with_its_correlation_data,
    a_request_without_responder_times_out,
);

async fn round_trip(kind: Kind, version: ProtocolVersion) {
    let broker = Broker::plain(kind).await;
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
    broker.finish().await;
}

async fn messages_arrive_at_every_qos_over_mqtt5(kind: Kind) {
    round_trip(kind, ProtocolVersion::V5).await;
}

async fn messages_arrive_at_every_qos_over_mqtt311(kind: Kind) {
    round_trip(kind, ProtocolVersion::V3_1_1).await;
}

async fn a_later_subscriber_gets_the_retained_message_flagged_retain(kind: Kind) {
    let broker = Broker::plain(kind).await;
    let url = broker.url();
    let publisher = common::connect(&url, "retainer").await;
    let retained = PublishOptions::new(QoS::AtLeastOnce).retain(true);
    publisher
        .publish("retained/t", "kept", retained.clone())
        .await
        .unwrap();
    let subscriber = common::connect(&url, "late").await;
    let mut subscription = subscriber
        .subscribe("retained/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut subscription).await;
    assert_eq!(
        (message.topic(), message.payload_str(), message.retain),
        ("retained/t", Some("kept"), true)
    );
    // An empty retained payload clears it: a new subscription gets only what follows.
    publisher.publish("retained/t", "", retained).await.unwrap();
    let mut fresh = subscriber
        .subscribe("retained/t", QoS::AtLeastOnce)
        .await
        .unwrap();
    publisher
        .publish("retained/t", "live", QoS::AtLeastOnce)
        .await
        .unwrap();
    // The fresh subscription gets no retained copy: its first message is the live one.
    let message = next(&mut fresh).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("live"), false)
    );
    publisher.disconnect(ReasonCode::Success).await.unwrap();
    subscriber.disconnect(ReasonCode::Success).await.unwrap();
    broker.finish().await;
}

async fn the_will_is_published_retained_when_the_connection_drops(kind: Kind) {
    let broker = Broker::plain(kind).await;
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
    assert_eq!(next(&mut states).await.payload_str(), Some("lost"));
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
    broker.finish().await;
}

async fn disconnect_with_will_message_publishes_the_will(kind: Kind) {
    let broker = Broker::plain(kind).await;
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
    broker.finish().await;
}

async fn a_persistent_session_resumes_after_the_broker_restarts(kind: Kind) {
    let mut broker = Broker::start(kind, Setup::Durable, None).await;
    let url = broker.url();
    // clean_start=false with a session expiry: the session outlives the connection.
    let device = Client::connect(
        options(&url, "resumer")
            .clean_start(false)
            .session_expiry(300),
    )
    .await
    .unwrap();
    let mut inbox = device
        .subscribe("resume/in", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut events = device.events();

    broker.stop().await;
    wait_event(&mut events, "disconnected", |event| {
        matches!(event, Event::Disconnected { .. }).then_some(())
    })
    .await;

    // Same port, same data: the session and its subscription come back from disk. The
    // peer's publication is not retained, so it reaches the device only through the
    // restored subscription (queued for the offline session if the device has not
    // reconnected yet).
    broker.restart().await;
    let peer = common::connect(&url, "peer").await;
    peer.publish("resume/in", "after restart", QoS::AtLeastOnce)
        .await
        .unwrap();
    let present = wait_event(&mut events, "reconnected", |event| match event {
        Event::Connected { session_present } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(
        present,
        "the restarted broker restored the session:\n{}",
        broker.log_text()
    );
    // With the session present the client does not resubscribe: the existing stream
    // is fed by the broker's restored subscription.
    let message = next(&mut inbox).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("after restart"), false)
    );
    device.disconnect(ReasonCode::Success).await.unwrap();
    peer.disconnect(ReasonCode::Success).await.unwrap();
    broker.finish().await;
}

async fn tls_round_trip(client: &Client) {
    let mut subscription = client.subscribe("tls/t", QoS::AtLeastOnce).await.unwrap();
    client
        .publish("tls/t", "secret", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.payload_str(), Some("secret"));
}

async fn mqtts_works_with_a_custom_ca(kind: Kind) {
    let pki = Pki::generate();
    let broker = Broker::start(kind, Setup::Tls { mtls: false }, Some(&pki)).await;
    let url = broker.url();
    let trust = TlsOptions::default().ca_pem(pki.ca_pem.clone());
    let client = Client::connect(options(&url, "tls").tls(trust.clone()))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();

    // The name verified can differ from the host connected to.
    let client = Client::connect(options(&url, "named").tls(trust.server_name("localhost")))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();

    let other = Pki::generate();
    let err = Client::connect(
        options(&url, "wary")
            .tls(TlsOptions::default().ca_pem(other.ca_pem.clone()))
            .reconnect(ReconnectOptions::disabled()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::Transport(TransportError::Tls { .. })),
        "{err}"
    );
    broker.finish().await;
}

async fn mutual_tls_needs_the_client_certificate(kind: Kind) {
    let pki = Pki::generate();
    let broker = Broker::start(kind, Setup::Tls { mtls: true }, Some(&pki)).await;
    let url = broker.url();
    let trust = TlsOptions::default().ca_pem(pki.ca_pem.clone());

    let refused = Client::connect(
        options(&url, "anonymous")
            .tls(trust.clone())
            .reconnect(ReconnectOptions::disabled()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            refused,
            ConnectError::Transport(TransportError::Tls { .. })
                | ConnectError::Handshake(ConnectFailure::Closed(_))
        ),
        "{refused}"
    );

    let with_cert = trust.client_auth(pki.client_cert_pem.clone(), pki.client_key_pem.clone());
    let client = Client::connect(options(&url, "device-1").tls(with_cert))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.finish().await;
}

async fn a_request_gets_the_response_with_its_correlation_data(kind: Kind) {
    let broker = Broker::plain(kind).await;
    let url = broker.url();
    let responder = common::connect(&url, "responder").await;
    let mut requests = responder
        .subscribe("svc/upper", QoS::AtLeastOnce)
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let answer = request.payload_str().unwrap_or_default().to_uppercase();
            responder
                .respond(&request, answer, PublishOptions::new(QoS::AtLeastOnce))
                .await
                .unwrap();
        }
    });
    let requester = common::connect(&url, "requester").await;
    for word in ["hello", "world"] {
        let response = requester
            .request("svc/upper", word, PATIENCE)
            .await
            .unwrap();
        assert_eq!(response.payload_str(), Some(word.to_uppercase().as_str()));
        assert_eq!(response.topic(), "res/requester");
        assert_eq!(response.correlation_data().map(|c| c.len()), Some(16));
    }
    requester.disconnect(ReasonCode::Success).await.unwrap();
    server.abort();
    broker.finish().await;
}

async fn a_request_without_responder_times_out(kind: Kind) {
    let broker = Broker::plain(kind).await;
    let requester = common::connect(&broker.url(), "asker").await;
    let timeout = Duration::from_millis(200);
    assert_eq!(
        requester.request("svc/none", "?", timeout).await,
        Err(Error::Timeout(timeout))
    );
    requester.disconnect(ReasonCode::Success).await.unwrap();
    broker.finish().await;
}
