//! The first connection's failures, each named by its cause.

use std::time::Duration;

use bytes::BytesMut;
use native_client::{
    Client, ConnectError, ConnectFailure, ConnectOptions, ProtocolVersion, ReasonCode,
    TransportError,
};
use protocol::{ConnAck, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers the first CONNECT with `connack` and holds the connection.
async fn fake_broker(
    connack: ConnAck,
    version: ProtocolVersion,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        let mut out = BytesMut::new();
        protocol::encode(&Packet::ConnAck(connack), version, &mut out).unwrap();
        let _ = socket.write_all(&out).await;
        let _ = socket.read(&mut buf).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_refused_connack_is_reported_with_its_reason_code() {
    for (version, code) in [
        (ProtocolVersion::V5, ReasonCode::NotAuthorized),
        (ProtocolVersion::V5, ReasonCode::BadUserNameOrPassword),
        (ProtocolVersion::V3_1_1, ReasonCode::NotAuthorized),
        (ProtocolVersion::V3_1_1, ReasonCode::BadUserNameOrPassword),
    ] {
        let (url, server) = fake_broker(ConnAck::new(code), version).await;
        let err = Client::connect(ConnectOptions::new(url).client_id("x").version(version))
            .await
            .unwrap_err();
        assert_eq!(err.reason_code(), Some(code), "{err}");
        assert!(
            err.to_string().contains(&format!("0x{:02X}", code as u8)),
            "{err}"
        );
        server.abort();
    }
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::connect(ConnectOptions::new(format!("mqtt://{addr}")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Transport(TransportError::Refused { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://{}", listener.local_addr().unwrap());
    let mut options = ConnectOptions::new(url);
    options.session.connect_timeout = Duration::from_millis(200);
    let err = Client::connect(options).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Handshake(ConnectFailure::Timeout(_))),
        "{err}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_malformed_url_says_what_is_wrong() {
    let err = Client::connect(ConnectOptions::new("localhost:1883"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Url(_)), "{err}");
    assert!(err.to_string().contains("mqtt://"), "{err}");
}
