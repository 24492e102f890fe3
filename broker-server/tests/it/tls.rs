//! TLS with certificates generated here (rcgen): MQTT over TLS, HTTPS and WSS on the
//! HTTP listener, mutual TLS with the certificate's Common Name as user name, refused
//! clients, and reloading the certificate (what SIGHUP does) without dropping open
//! connections.

use crate::common;
use crate::http_support;

use std::net::SocketAddr;

use broker_server::RunningBroker;
use common::*;
use http_support::*;
use protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_config(pki: &Pki, mtls: bool) -> broker_server::Config {
    let mut config = test_config();
    config.listeners.tls = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.tls_listeners = vec!["127.0.0.1:0".parse().unwrap()];
    pki.configure(&mut config, mtls);
    config
}

fn running(broker: &TestBroker) -> &RunningBroker {
    broker.running.as_ref().unwrap()
}

fn tls_addr(broker: &TestBroker) -> SocketAddr {
    running(broker).tls_addrs[0]
}

type TlsClient = Peer<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn mqtt_client(pki: &Pki, addr: SocketAddr, identity: Option<(&str, &str)>) -> TlsClient {
    let stream = pki
        .connect(addr, pki.client_config(identity))
        .await
        .expect("TLS handshake");
    Peer::new(stream, ProtocolVersion::V5)
}

fn server_cert(client: &TlsClient) -> Vec<u8> {
    let (_, connection) = client.stream.get_ref();
    connection.peer_certificates().expect("server certificate")[0].to_vec()
}

#[tokio::test]
async fn mqtt_over_tls_and_https_share_the_certificate() {
    let pki = Pki::generate();
    let broker = TestBroker::with_config(tls_config(&pki, false)).await;
    let mut client = mqtt_client(&pki, tls_addr(&broker), None).await;
    let connack = client
        .handshake(protocol::Connect::new(ProtocolVersion::V5, "tls-1"))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client
        .send(&subscribe(1, &[("tls/t", QoS::AtLeastOnce)]))
        .await;
    assert!(matches!(client.next().await, Some(Packet::SubAck(_))));
    client
        .send(&Packet::Publish(publish(
            "tls/t",
            "secret",
            QoS::AtMostOnce,
            None,
        )))
        .await;
    match client.next().await {
        Some(Packet::Publish(p)) => assert_eq!(p.payload, "secret"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    let entry = broker.broker().clients.get("tls-1").unwrap();
    assert_eq!(entry.meta.transport.as_str(), "tls");

    let https = running(&broker).https_addrs[0];
    let mut stream = pki.connect(https, pki.client_config(None)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_over_wss_reaches_the_broker() {
    let pki = Pki::generate();
    let broker = TestBroker::with_config(tls_config(&pki, false)).await;
    let https = running(&broker).https_addrs[0];
    let tls = pki.connect(https, pki.client_config(None)).await.unwrap();
    let request = ws_request("wss://localhost/mqtt", &["mqtt"]);
    let (ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("WSS upgrade");
    let mut client = WsClient::new(ws, ProtocolVersion::V3_1_1);
    assert_eq!(
        client.connect("wss-1").await.reason_code,
        ReasonCode::Success
    );
    let entry = broker.broker().clients.get("wss-1").unwrap();
    assert_eq!(entry.meta.transport.as_str(), "wss");
    broker.stop().await;
}

#[tokio::test]
async fn mutual_tls_makes_the_certificate_common_name_the_user_name() {
    let pki = Pki::generate();
    let mut config = tls_config(&pki, true);
    config.tls.cert_cn_as_username = true;
    let broker = TestBroker::with_config(config).await;
    let identity = (pki.client_cert_pem.as_str(), pki.client_key_pem.as_str());
    let mut client = mqtt_client(&pki, tls_addr(&broker), Some(identity)).await;
    let mut connect = protocol::Connect::new(ProtocolVersion::V5, "mtls-1");
    connect.username = Some("mallory".into());
    client.send(&Packet::Connect(Box::new(connect))).await;
    assert!(matches!(client.next().await, Some(Packet::ConnAck(_))));
    let entry = broker.broker().clients.get("mtls-1").unwrap();
    assert_eq!(entry.username.as_deref(), Some("device-1"));
    broker.stop().await;
}

/// Whether a client presenting `identity` gets an MQTT session (the server checks a
/// TLS 1.3 client certificate after the client's side of the handshake is done, so a
/// refusal shows as the connection closing).
async fn accepted(pki: &Pki, addr: SocketAddr, identity: Option<(&str, &str)>) -> bool {
    let Ok(stream) = pki.connect(addr, pki.client_config(identity)).await else {
        return false;
    };
    let mut client = Peer::new(stream, ProtocolVersion::V5);
    let connect = protocol::Connect::new(ProtocolVersion::V5, "mtls-probe");
    client.send(&Packet::Connect(Box::new(connect))).await;
    matches!(client.next().await, Some(Packet::ConnAck(_)))
}

#[tokio::test]
async fn clients_without_a_trusted_certificate_are_refused() {
    let pki = Pki::generate();
    let broker = TestBroker::with_config(tls_config(&pki, true)).await;
    let addr = tls_addr(&broker);
    let trusted = (pki.client_cert_pem.as_str(), pki.client_key_pem.as_str());
    let rogue = (pki.rogue_cert_pem.as_str(), pki.rogue_key_pem.as_str());
    assert!(!accepted(&pki, addr, Some(rogue)).await);
    assert!(!accepted(&pki, addr, None).await);
    assert!(accepted(&pki, addr, Some(trusted)).await);
    broker.stop().await;
}

#[tokio::test]
async fn an_optional_client_certificate_may_be_left_out_but_not_be_untrusted() {
    let pki = Pki::generate();
    let mut config = tls_config(&pki, true);
    config.tls.require_client_cert = false;
    let broker = TestBroker::with_config(config).await;
    let addr = tls_addr(&broker);
    let rogue = (pki.rogue_cert_pem.as_str(), pki.rogue_key_pem.as_str());
    assert!(accepted(&pki, addr, None).await);
    assert!(!accepted(&pki, addr, Some(rogue)).await);
    broker.stop().await;
}

#[tokio::test]
async fn reload_gives_new_connections_the_new_certificate_and_keeps_open_ones() {
    let pki = Pki::generate();
    let broker = TestBroker::with_config(tls_config(&pki, false)).await;
    let addr = tls_addr(&broker);
    let mut old = mqtt_client(&pki, addr, None).await;
    old.handshake(protocol::Connect::new(ProtocolVersion::V5, "before-reload"))
        .await;
    let first = server_cert(&old);

    let second = pki.issue_server_cert("server-2");
    running(&broker).reload_tls().expect("reload");
    let mut new = mqtt_client(&pki, addr, None).await;
    new.handshake(protocol::Connect::new(ProtocolVersion::V5, "after-reload"))
        .await;
    assert_eq!(server_cert(&new), second);
    assert_ne!(first, second);

    // The connection from before the reload still works.
    old.send(&Packet::PingReq).await;
    assert!(matches!(old.recv().await, Packet::PingResp));

    // A reload that fails keeps the certificate in force.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    let err = running(&broker).reload_tls().unwrap_err().to_string();
    assert!(err.contains("tls.key"), "{err}");
    let mut third = mqtt_client(&pki, addr, None).await;
    third
        .handshake(protocol::Connect::new(
            ProtocolVersion::V5,
            "after-failed-reload",
        ))
        .await;
    assert_eq!(server_cert(&third), second);
    broker.stop().await;
}

#[tokio::test]
async fn a_tls_listener_without_a_certificate_stops_the_start() {
    let mut config = test_config();
    config.listeners.tls = vec!["127.0.0.1:0".parse().unwrap()];
    let err = broker_server::start(config).await.unwrap_err().to_string();
    assert!(err.contains("tls.cert"), "{err}");
}
