//! MQTT over WebSocket at `/mqtt`, with a raw client (tokio-tungstenite) on a real
//! loopback socket: frames are a byte stream in both directions (a packet split across
//! frames, several packets in one frame), the subprotocol is negotiated, text frames and
//! unknown subprotocols are refused, pings are answered, and WebSocket and TCP clients
//! talk to each other. Only allowed origins may open `/mqtt`. Frames no library sends
//! (framing violations, oversized frames) are written by hand on a raw socket to check
//! the close codes (RFC 6455 §7.4.1).

use crate::common;
use crate::http_support;

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
    tcp.send_publish(publish("mixed/x", "from tcp", QoS::AtMostOnce, None))
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

/// The development default: with no `http.allowed_origins` any page may connect.
#[tokio::test]
async fn without_a_list_any_page_may_connect() {
    let (broker, addr) = ws_broker().await;
    let origin = [("Origin", "https://elsewhere.example")];
    assert_eq!(upgrade_status(addr, &origin).await, 101);
    broker.stop().await;
}

#[tokio::test]
async fn closing_the_websocket_without_disconnect_publishes_the_will() {
    let (broker, addr) = ws_broker().await;
    let mut watcher = broker.client(ProtocolVersion::V5, "will-watcher").await;
    watcher
        .subscribe_many(1, &[("wills/#", QoS::AtMostOnce)])
        .await;
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
    tcp.send_publish(protocol::Publish::new("big".to_string(), payload.clone()))
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
    let max = broker_server::internals::transport::MAX_WS_MESSAGE;
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= max), "{sizes:?}");
    broker.stop().await;
}

/// Opens `/mqtt` by hand on a raw socket, to write frames no WebSocket library sends.
/// The response head is read byte by byte so no frame byte is consumed with it.
async fn raw_websocket(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("response head"));
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// The first byte of a frame: FIN set, RSV bits clear, `opcode`.
const fn fin(opcode: u8) -> u8 {
    0x80 | opcode
}

/// A frame as written by a client: `first` (FIN, RSV, opcode), the length, then the
/// payload masked with a fixed key; `masked: false` leaves out the key (a violation).
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// Writes `bytes` and returns the payload of the server's Close frame (code and
/// reason), skipping the frames before it; `None` when the connection ends without one.
async fn close_reply(tcp: &mut tokio::net::TcpStream, bytes: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(bytes).await.unwrap();
    let read = async {
        loop {
            let mut header = [0u8; 2];
            tcp.read_exact(&mut header).await.ok()?;
            let len = match header[1] & 0x7f {
                126 => u64::from(tcp.read_u16().await.ok()?),
                127 => tcp.read_u64().await.ok()?,
                n => u64::from(n),
            };
            assert_eq!(header[1] & 0x80, 0, "server frames are not masked");
            let mut payload = vec![0; usize::try_from(len).unwrap()];
            tcp.read_exact(&mut payload).await.ok()?;
            if header[0] & 0x0f == 0x8 {
                return Some(payload);
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("neither a Close frame nor the end of the connection")
}

/// The close code of a Close frame's payload (1005: none given).
fn code_of(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}

/// RFC 6455 §5.5.1: an endpoint that receives a Close frame MUST send a Close frame in
/// response (we echo the code), before the TCP connection closes.
#[tokio::test]
async fn a_close_frame_is_answered_with_a_close_frame_echoing_its_code() {
    let (broker, addr) = ws_broker().await;
    let mut tcp = raw_websocket(addr).await;
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"going away");
    let close = client_frame(fin(0x8), &payload, true);
    let reply = close_reply(&mut tcp, &close)
        .await
        .expect("a Close frame in response");
    assert_eq!(code_of(&reply), 1001);
    // And with an MQTT session on the connection.
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    client.connect("ws-close").await;
    use futures::SinkExt as _;
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    client.ws.send(Message::Close(Some(frame))).await.unwrap();
    loop {
        match client.next_message().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Normal);
                break;
            }
            Some(Message::Close(None)) | None => panic!("no Close frame in response"),
            Some(_) => {}
        }
    }
    broker.stop().await;
}

/// RFC 6455 §5.2, §5.5, §7.4.1: frames that break the framing rules fail the connection
/// with 1002 (protocol error).
#[tokio::test]
async fn frames_that_break_the_websocket_rules_close_with_a_protocol_error() {
    let (broker, addr) = ws_broker().await;
    let mut connect = bytes::BytesMut::new();
    let packet = protocol::Connect::new(ProtocolVersion::V5, "ws-violations");
    protocol::encode(
        &Packet::Connect(Box::new(packet)),
        ProtocolVersion::V5,
        &mut connect,
    )
    .unwrap();
    let cases: [(&str, Vec<u8>); 7] = [
        ("unmasked frame", client_frame(fin(0x2), &connect, false)),
        (
            "RSV1 without an extension",
            client_frame(0xc2, &connect, true),
        ),
        (
            "RSV3 without an extension",
            client_frame(0x92, &connect, true),
        ),
        ("reserved data opcode", client_frame(fin(0x3), b"x", true)),
        (
            "reserved control opcode",
            client_frame(fin(0xb), b"x", true),
        ),
        (
            "ping over 125 bytes",
            client_frame(fin(0x9), &[b'p'; 126], true),
        ),
        ("fragmented ping", client_frame(0x09, b"part", true)),
    ];
    for (case, bytes) in cases {
        let mut tcp = raw_websocket(addr).await;
        let reply = close_reply(&mut tcp, &bytes).await;
        let code = reply.as_deref().map(code_of);
        assert_eq!(code, Some(1002), "{case}: {reply:?}");
    }
    broker.stop().await;
}

/// RFC 6455 §7.4.1: a message too big to process closes with 1009. The limit is the
/// configured packet size plus room for a frame holding a packet and then some.
#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_message_too_big() {
    let mut config = http_config();
    config.limits.max_packet_size = 4096;
    let broker = TestBroker::with_config(config).await;
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    let limit = 4096 + 64 * 1024;
    // The header announcing the frame is enough: the broker refuses before buffering.
    let mut header = vec![fin(0x2), 0x80 | 127];
    header.extend_from_slice(&(limit as u64 + 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut tcp = raw_websocket(addr).await;
    let reply = close_reply(&mut tcp, &header).await;
    assert_eq!(reply.as_deref().map(code_of), Some(1009), "{reply:?}");
    // A frame within the limit is fine.
    let mut client = ws_connect(addr, ProtocolVersion::V5).await;
    client.connect("ws-size").await;
    broker.stop().await;
}
