//! MQTT over WebSocket at `/mqtt`, with a raw client (tokio-tungstenite) on a real
//! loopback socket: frames are a byte stream in both directions (a packet split across
//! frames, several packets in one frame), the subprotocol is negotiated, text frames and
//! unknown subprotocols are refused, pings are answered, and WebSocket and TCP clients
//! talk to each other.

mod common;
mod http_support;

use bytes::Bytes;
use common::*;
use http_support::*;
use protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn ws_broker() -> (TestBroker, std::net::SocketAddr) {
    let broker = TestBroker::with_config(http_config()).await;
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    (broker, addr)
}

#[tokio::test]
async fn packets_may_be_split_across_frames_and_share_frames() {
    let (broker, addr) = ws_broker().await;
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    // CONNECT split into three frames, one byte at a time at the start.
    let connect = protocol::Connect::new(ProtocolVersion::V5, "ws-split");
    let bytes = client.encode(&Packet::Connect(Box::new(connect)));
    client.send_frame(&bytes[..1]).await;
    client.send_frame(&bytes[1..2]).await;
    client.send_frame(&bytes[2..]).await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // SUBSCRIBE and two PUBLISHes in one frame.
    let mut frame = client.encode(&subscribe(1, &[("ws/t", QoS::AtLeastOnce)]));
    frame.extend_from_slice(&client.encode(&Packet::Publish(publish(
        "ws/t",
        "one",
        QoS::AtLeastOnce,
        Some(2),
    ))));
    frame.extend_from_slice(&client.encode(&Packet::Publish(publish(
        "ws/t",
        "two",
        QoS::AtMostOnce,
        None,
    ))));
    client.send_frame(&frame).await;
    let mut payloads = Vec::new();
    let mut acks = 0;
    while payloads.len() < 2 || acks < 2 {
        match client.recv().await {
            Some(Packet::SubAck(_) | Packet::PubAck(_)) => acks += 1,
            Some(Packet::Publish(p)) => payloads.push(p.payload),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(payloads, [Bytes::from("one"), Bytes::from("two")]);
    broker.stop().await;
}

#[tokio::test]
async fn websocket_and_tcp_clients_exchange_messages() {
    let (broker, addr) = ws_broker().await;
    let mut ws = ws_connect(addr, ProtocolVersion::V3_1_1).await;
    ws.connect("ws-sub").await;
    ws.send(&subscribe(1, &[("mixed/#", QoS::AtMostOnce)]))
        .await;
    assert!(matches!(ws.recv().await, Some(Packet::SubAck(_))));
    let mut tcp = broker.client(ProtocolVersion::V5, "tcp-pub").await;
    tcp.publish(publish("mixed/x", "from tcp", QoS::AtMostOnce, None))
        .await;
    match ws.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(p.payload, "from tcp"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    let clients = broker.broker().clients.list();
    let entry = clients.iter().find(|c| c.client_id == "ws-sub").unwrap();
    assert_eq!(entry.meta.transport.as_str(), "ws");
    broker.stop().await;
}

#[tokio::test]
async fn a_text_frame_closes_the_connection_with_a_protocol_error() {
    let (broker, addr) = ws_broker().await;
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    client.connect("ws-text").await;
    use futures::SinkExt;
    client.ws.send(Message::text("hello")).await.unwrap();
    loop {
        match client.next_message().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Protocol);
                break;
            }
            Some(Message::Close(None)) | None => panic!("closed without a protocol error"),
            Some(_) => {}
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn an_unknown_subprotocol_is_refused_and_mqttv31_is_accepted() {
    let (broker, addr) = ws_broker().await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = ws_request(&format!("ws://{addr}/mqtt"), &["wamp"]);
    match tokio_tungstenite::client_async(request, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = ws_request(&format!("ws://{addr}/mqtt"), &["wamp", "mqttv3.1"]);
    let (_ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade with mqttv3.1");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "mqttv3.1"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong() {
    let (broker, addr) = ws_broker().await;
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    client.connect("ws-ping").await;
    use futures::SinkExt;
    client
        .ws
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    loop {
        match client.next_message().await {
            Some(Message::Pong(data)) => {
                assert_eq!(data, "are you there");
                break;
            }
            Some(Message::Binary(_)) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    broker.stop().await;
}

/// The status of a `/mqtt` upgrade carrying `headers` (a header given replaces the
/// client's own, e.g. `Host`): 101 when accepted.
async fn upgrade_status(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::http::HeaderName;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = ws_request(&format!("ws://{addr}/mqtt"), &["mqtt"]);
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(name.parse::<HeaderName>().unwrap(), value.parse().unwrap());
    }
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{headers:?}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn pages_from_origins_not_allowed_are_refused() {
    let mut config = http_config();
    config.http.allowed_origins = vec!["https://app.example.com".into()];
    let broker = TestBroker::with_config(config).await;
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    for (origin, status) in [
        (Some("https://evil.example"), 403),
        (Some("https://app.example.com"), 101),
        // Case and the default port are normalised.
        (Some("HTTPS://App.Example.COM:443"), 101),
        // The scheme and the port are part of the origin.
        (Some("http://app.example.com"), 403),
        (Some("https://app.example.com:8443"), 403),
        // Not a browser page.
        (None, 101),
    ] {
        let headers: Vec<_> = origin.map(|o| ("Origin", o)).into_iter().collect();
        assert_eq!(upgrade_status(addr, &headers).await, status, "{origin:?}");
    }
    broker.stop().await;
}

/// DNS rebinding: a page of `http://evil.example` whose name now resolves to the
/// broker sends `Host: evil.example`; matching `Origin` against `Host` let it in.
#[tokio::test]
async fn a_rebound_host_name_is_not_the_brokers_own_origin() {
    let mut config = http_config();
    config.http.allowed_origins = vec!["https://app.example.com".into()];
    let broker = TestBroker::with_config(config).await;
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    let rebinding = [("Host", "evil.example"), ("Origin", "http://evil.example")];
    assert_eq!(upgrade_status(addr, &rebinding).await, 403);
    let with_port = format!("evil.example:{}", addr.port());
    let origin = format!("http://evil.example:{}", addr.port());
    let rebinding = [("Host", with_port.as_str()), ("Origin", origin.as_str())];
    assert_eq!(upgrade_status(addr, &rebinding).await, 403);
    broker.stop().await;
}

/// With no `http.allowed_origins` only the broker's own pages (its address as the
/// socket sees it, and loopback pages such as `cargo xtask run`'s dashboard) may
/// open `/mqtt`, never a page named by the `Host` the client sent.
#[tokio::test]
async fn without_a_list_only_the_brokers_own_and_loopback_pages_may_connect() {
    let (broker, addr) = ws_broker().await;
    let port = addr.port();
    let own = format!("http://127.0.0.1:{port}");
    let localhost = format!("http://localhost:{port}");
    let other_port = format!("http://localhost:{}", port.wrapping_add(1));
    let evil = format!("http://evil.example:{port}");
    let evil_host = format!("evil.example:{port}");
    let lan = format!("http://10.11.12.13:{port}");
    for (headers, status) in [
        (vec![("Origin", own.as_str())], 101),
        (vec![("Origin", localhost.as_str())], 101),
        (vec![("Origin", other_port.as_str())], 101),
        (vec![], 101),
        (
            vec![("Host", evil_host.as_str()), ("Origin", evil.as_str())],
            403,
        ),
        (vec![("Origin", "https://evil.example")], 403),
        (vec![("Origin", lan.as_str())], 403),
        (vec![("Origin", "null")], 403),
    ] {
        assert_eq!(upgrade_status(addr, &headers).await, status, "{headers:?}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn closing_the_websocket_without_disconnect_publishes_the_will() {
    let (broker, addr) = ws_broker().await;
    let mut watcher = broker.client(ProtocolVersion::V5, "will-watcher").await;
    watcher.subscribe(1, &[("wills/#", QoS::AtMostOnce)]).await;
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    let mut connect = protocol::Connect::new(ProtocolVersion::V5, "ws-will");
    connect.will = Some(protocol::Will {
        topic: protocol::TopicName::new("wills/ws-will").unwrap(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    client.send(&Packet::Connect(Box::new(connect))).await;
    assert!(matches!(client.recv().await, Some(Packet::ConnAck(_))));
    client.ws.close(None).await.unwrap();
    let will = watcher.recv_publish().await;
    assert_eq!(will.payload, "gone");
    broker.stop().await;
}

#[tokio::test]
async fn a_large_write_goes_out_as_several_bounded_messages() {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let (broker, addr) = ws_broker().await;
    let mut ws = ws_connect(addr, ProtocolVersion::V5).await;
    ws.connect("ws-big").await;
    ws.send(&subscribe(1, &[("big", QoS::AtMostOnce)])).await;
    assert!(matches!(ws.recv().await, Some(Packet::SubAck(_))));
    let payload = Bytes::from(vec![7u8; 300 * 1024]);
    let mut tcp = broker.client(ProtocolVersion::V5, "big-pub").await;
    tcp.publish(protocol::Publish::new("big".to_string(), payload.clone()))
        .await;
    // Read the raw WebSocket messages until they hold the whole PUBLISH.
    let mut sizes = Vec::new();
    let mut bytes = bytes::BytesMut::new();
    let limits = protocol::Limits {
        version: ProtocolVersion::V5,
        ..Default::default()
    };
    let packet = loop {
        if let Some(packet) = protocol::decode(&mut bytes, &limits).expect("valid packet") {
            break packet;
        }
        match ws.ws.next().await {
            Some(Ok(Message::Binary(data))) => {
                sizes.push(data.len());
                bytes.extend_from_slice(&data);
            }
            other => panic!("expected a binary message, got {other:?}"),
        }
    };
    match packet {
        Packet::Publish(p) => assert_eq!(p.payload, payload),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    let max = broker_server::transport::ws::MAX_WS_MESSAGE;
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= max), "{sizes:?}");
    broker.stop().await;
}
