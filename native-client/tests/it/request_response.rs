//! MQTT 5 request/response on an MQTT 3.1.1 connection (the rest is in the scenario
//! set).

use std::time::Duration;

use crate::common::{TestBroker, options};
use native_client::{Client, Error, ProtocolVersion, ReasonCode};

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
