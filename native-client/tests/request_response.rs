//! MQTT 5 request/response: response topic and correlation data.

mod common;

use std::time::Duration;

use common::{TestBroker, options};
use native_client::{Client, Error, ProtocolVersion, PublishOptions, QoS, ReasonCode};

#[tokio::test]
async fn a_request_gets_the_response_with_its_correlation_data() {
    let broker = TestBroker::start().await;
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
            .request("svc/upper", word, common::PATIENCE)
            .await
            .unwrap();
        assert_eq!(response.payload_str(), Some(word.to_uppercase().as_str()));
        assert_eq!(response.topic(), "res/requester");
        assert_eq!(response.correlation_data().map(|c| c.len()), Some(16));
    }
    requester.disconnect(ReasonCode::Success).await.unwrap();
    server.abort();
    broker.stop().await;
}

#[tokio::test]
async fn a_request_without_responder_times_out() {
    let broker = TestBroker::start().await;
    let requester = common::connect(&broker.url(), "asker").await;
    let timeout = Duration::from_millis(200);
    assert_eq!(
        requester.request("svc/none", "?", timeout).await,
        Err(Error::Timeout(timeout))
    );
    requester.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn request_response_needs_mqtt5() {
    let broker = TestBroker::start().await;
    let client = Client::connect(options(&broker.url(), "old").version(ProtocolVersion::V3_1_1))
        .await
        .unwrap();
    assert_eq!(
        client.request("svc", "?", Duration::from_secs(1)).await,
        Err(Error::NeedsV5("request/response"))
    );
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}
