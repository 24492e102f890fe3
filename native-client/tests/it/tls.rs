//! The client's side of TLS and WebSocket through a rustls server in the test that
//! forwards to the broker's TCP port (certificates from `rcgen`): an unknown CA is
//! refused unless told to accept it, and `ws://`/`wss://` carry MQTT. TLS against the
//! brokers' own listeners is in the scenario set.

use crate::common::{self, Forwarder, Outside, Pki, TestBroker, next, options};
use native_client::{
    Client, ConnectError, ConnectOptionsExt, QoS, ReasonCode, TlsOptions, TransportError,
};

async fn round_trip(client: &Client) {
    let mut subscription = client.subscribe("tls/t", QoS::AtLeastOnce).await.unwrap();
    client
        .publish("tls/t", "secret", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.payload_str(), Some("secret"));
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_unless_insecure() {
    let broker = TestBroker::start().await;
    let pki = Pki::generate();
    let other = Pki::generate();
    let tls = Forwarder::start(broker.addr, Outside::Tls(pki.server_config(false))).await;
    let url = format!("mqtts://localhost:{}", tls.addr.port());

    let err = Client::connect(
        options(&url, "wary").tls(TlsOptions::default().ca_pem(other.ca_pem.clone())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::Transport(TransportError::Tls { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");

    let insecure = TlsOptions::default().danger_accept_invalid_certs(true);
    let client = Client::connect(options(&url, "reckless").tls(insecure))
        .await
        .unwrap();
    round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    tls.stop().await;
    broker.stop().await;
}

#[cfg(feature = "websocket")]
#[tokio::test]
async fn ws_and_wss_carry_mqtt_in_binary_frames() {
    let broker = TestBroker::start().await;
    let pki = Pki::generate();
    let ws = Forwarder::start(broker.addr, Outside::WebSocket).await;
    let wss = Forwarder::start(broker.addr, Outside::WebSocketTls(pki.server_config(false))).await;

    let client = common::connect(&format!("ws://127.0.0.1:{}/mqtt", ws.addr.port()), "ws").await;
    round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();

    let url = format!("wss://localhost:{}/mqtt", wss.addr.port());
    let client =
        Client::connect(options(&url, "wss").tls(TlsOptions::default().ca_pem(pki.ca_pem.clone())))
            .await
            .unwrap();
    round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();
    ws.stop().await;
    wss.stop().await;
    broker.stop().await;
}
