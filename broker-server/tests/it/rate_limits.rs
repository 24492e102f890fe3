//! Abuse limits as clients see them (`broker_server::limits`): open sockets per IP
//! (closed before CONNECT), connection rates (CONNACK 0x9F; 3.1.1 return code 3),
//! publish rate (throttled; a pipelined flood gets DISCONNECT 0x96, 3.1.1 a closed
//! socket), inbound bandwidth (throttled, nothing lost), packet size (0x95, refused from
//! the fixed header alone), the connect timeout against a CONNECT or an HTTP request
//! trickled in byte by byte, the TLS handshake timeout, subscriptions per client; the
//! WebSocket listener applies the same admission limits. Each hit is counted under its
//! limit, as `/metrics` shows it.

use crate::common;
use crate::http_support;

use std::time::Duration;

use broker_server::Config;
use broker_server::internals::limits::Limit;
use bytes::BytesMut;
use common::*;
use http_support::*;
use protocol::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn broker_with(configure: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = test_config();
    configure(&mut config);
    TestBroker::with_config(config).await
}

fn hits(broker: &TestBroker, limit: Limit) -> u64 {
    broker.broker().metrics.limit_hits.get(limit)
}

/// Whether the broker closes `stream` (end of stream or reset) within [`PATIENCE`],
/// whatever it sent first.
async fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Connects `client_id` until the broker accepts it (a readiness poll while a freed
/// slot is being given back), bounded by [`PATIENCE`].
async fn connect_when_allowed(broker: &TestBroker, client_id: &str) -> Peer {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut client = broker.raw(ProtocolVersion::V5).await;
        client
            .send(&Packet::Connect(Box::new(Connect::new(
                ProtocolVersion::V5,
                client_id,
            ))))
            .await;
        if let Ok(Some(Packet::ConnAck(ack))) = client.try_recv(PATIENCE).await
            && ack.reason_code == ReasonCode::Success
        {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{client_id} never let in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sockets_beyond_max_connections_per_ip_are_closed_before_connect() {
    let broker = broker_with(|c| c.limits.max_connections_per_ip = 2).await;
    // Two sockets that sent nothing yet hold the address's two places.
    let mut first = broker.raw(ProtocolVersion::V5).await;
    let _second = broker.raw(ProtocolVersion::V3_1_1).await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut refused = broker.raw(version).await;
        // The CONNECT may or may not reach the socket before it closes; no CONNACK comes.
        let _ = refused
            .stream
            .write_all(&{
                let mut out = BytesMut::new();
                let connect = Packet::Connect(Box::new(Connect::new(version, "over")));
                protocol::encode(&connect, version, &mut out).unwrap();
                out
            })
            .await;
        assert_eq!(refused.try_recv(PATIENCE).await, Ok(None), "{version}");
    }
    assert_eq!(hits(&broker, Limit::ConnectionsPerIp), 2);

    // The sockets let in are served.
    let ack = first
        .handshake(Connect::new(ProtocolVersion::V5, "first"))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // A closed socket gives its place back.
    drop(first);
    let _third = connect_when_allowed(&broker, "third").await;
    broker.stop().await;
}

/// Opens `n` sockets at once, then sends each a CONNECT: the CONNACK reason codes.
async fn connect_many(broker: &TestBroker, version: ProtocolVersion, n: usize) -> Vec<ReasonCode> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(broker.raw(version).await);
    }
    let mut codes = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let ack = client
            .handshake(Connect::new(version, format!("c{i}-{version}")))
            .await;
        codes.push(ack.reason_code);
    }
    codes
}

#[tokio::test]
async fn connections_over_the_connection_rate_get_connack_0x9f() {
    for per_ip in [false, true] {
        let broker = broker_with(|c| {
            if per_ip {
                c.limits.max_connections_per_sec_per_ip = 1;
            } else {
                c.limits.max_connections_per_sec = 1;
            }
        })
        .await;
        let limit = if per_ip {
            Limit::ConnectionRatePerIp
        } else {
            Limit::ConnectionRate
        };
        // One a second: of ten opened at once, the first is let in (a full bucket) and
        // most of the others are refused.
        let codes = connect_many(&broker, ProtocolVersion::V5, 10).await;
        assert_eq!(codes[0], ReasonCode::Success);
        let refused = codes
            .iter()
            .filter(|c| **c == ReasonCode::ConnectionRateExceeded)
            .count();
        assert!(refused >= 1, "{codes:?}");
        assert!(
            codes
                .iter()
                .all(|c| matches!(c, ReasonCode::Success | ReasonCode::ConnectionRateExceeded)),
            "{codes:?}"
        );
        let codes_v3 = connect_many(&broker, ProtocolVersion::V3_1_1, 10).await;
        let refused_v3 = codes_v3
            .iter()
            .filter(|c| **c == ReasonCode::ServerUnavailable)
            .count();
        assert!(refused_v3 >= 1, "{codes_v3:?}");
        assert_eq!(hits(&broker, limit), (refused + refused_v3) as u64);
        broker.stop().await;
    }
}

fn publish_packets(topic: &str, n: usize, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    for i in 0..n {
        let packet = Packet::Publish(publish(topic, &format!("m{i}"), QoS::AtMostOnce, None));
        protocol::encode(&packet, version, &mut out).unwrap();
    }
    out
}

#[tokio::test]
async fn a_pipelined_publish_flood_is_disconnected_with_0x96() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let broker = broker_with(|c| {
            c.limits.max_publish_per_sec = 1;
            c.limits.publish_burst = 5;
        })
        .await;
        let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
        sub.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
        let mut flooder = broker.client(version, "flooder").await;
        flooder
            .send_bytes(&publish_packets("flood", 50, version))
            .await;
        let seen = flooder.expect_closed().await;
        if version.is_v5() {
            assert!(
                matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::MessageRateTooHigh),
                "{seen:?}"
            );
        } else {
            assert!(seen.is_empty(), "{seen:?}");
        }
        assert_eq!(hits(&broker, Limit::PublishFlood), 1);
        // The burst and the further burst of debt went through; the rest did not.
        for i in 0..10 {
            assert_eq!(sub.recv_publish().await.payload, format!("m{i}").as_bytes());
        }
        // Another client has its own budget.
        let mut other = broker.client(version, "other").await;
        other
            .send_publish(publish("after", "ok", QoS::AtMostOnce, None))
            .await;
        let got = sub.recv_publish().await;
        assert_eq!((&got.topic[..], &got.payload[..]), ("after", &b"ok"[..]));
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_client_over_the_publish_rate_is_throttled_and_loses_nothing() {
    let broker = broker_with(|c| {
        c.limits.max_publish_per_sec = 50;
        c.limits.publish_burst = 20;
    })
    .await;
    let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("t", QoS::AtLeastOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    // Thirty at once: ten over the burst, within the flood allowance (a further 20).
    publisher
        .send_bytes(&publish_packets("t", 30, ProtocolVersion::V5))
        .await;
    // Ten more, which the broker reads once the budget allows: over the rate, but not
    // by more than a further burst in all.
    for i in 30..40 {
        publisher
            .send_publish(publish("t", &format!("m{i}"), QoS::AtLeastOnce, Some(i)))
            .await;
    }
    for i in 0..40 {
        let got = sub.recv_publish().await;
        assert_eq!(got.payload, format!("m{i}").as_bytes());
        if let Some(id) = got.packet_id {
            sub.send(&Packet::PubAck(protocol::PubAck::new(id))).await;
        }
    }
    for _ in 30..40 {
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    assert!(hits(&broker, Limit::PublishRate) >= 1);
    assert_eq!(hits(&broker, Limit::PublishFlood), 0);
    broker.stop().await;
}

#[tokio::test]
async fn inbound_bandwidth_over_the_limit_is_throttled_and_loses_nothing() {
    let broker = broker_with(|c| c.limits.max_inbound_bytes_per_sec = 100_000).await;
    let mut sub = broker.client(ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(1, &[("big", QoS::AtMostOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    let payload: String = (0..250_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    publisher
        .send_publish(publish("big", &payload, QoS::AtMostOnce, None))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(got.payload, payload.as_bytes());
    assert!(hits(&broker, Limit::InboundBandwidth) >= 1);
    // Still connected and served.
    publisher
        .send_publish(publish("big", "small", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"small");
    broker.stop().await;
}

#[tokio::test]
async fn a_packet_over_max_packet_size_is_refused_from_its_fixed_header() {
    let broker = broker_with(|c| c.limits.max_packet_size = 1024).await;
    // v5: DISCONNECT 0x95 for a whole oversized PUBLISH.
    let mut client = broker.client(ProtocolVersion::V5, "big").await;
    let payload = "x".repeat(2000);
    client
        .send_publish(publish("t", &payload, QoS::AtMostOnce, None))
        .await;
    let seen = client.expect_closed().await;
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PacketTooLarge),
        "{seen:?}"
    );
    // 3.1.1: the fixed header alone, announcing 200 MB, closes the connection: nothing
    // of it is buffered.
    let mut client = broker.client(ProtocolVersion::V3_1_1, "header").await;
    client.send_bytes(&[0x30, 0x80, 0x80, 0x80, 0x64]).await;
    assert!(client.expect_closed().await.is_empty());
    // A v5 CONNECT over the limit: CONNACK 0x95.
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut connect = Connect::new(ProtocolVersion::V5, "huge");
    connect.username = Some("u".repeat(2000).into());
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::PacketTooLarge
    );
    assert!(client.expect_closed().await.is_empty());
    assert_eq!(hits(&broker, Limit::PacketSize), 3);
    broker.stop().await;
}

/// Trickles `bytes` into `stream` one every 50 ms until the broker closes it; `true`
/// if it did before all were sent.
async fn trickle_until_closed(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    let mut sink = [0u8; 1024];
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut sink)).await
        {
            match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    }
    false
}

#[tokio::test]
async fn a_connect_trickled_byte_by_byte_is_cut_off_at_the_connect_timeout() {
    let broker = broker_with(|c| {
        c.limits.connect_timeout_secs = 1;
        c.http.listeners = vec!["127.0.0.1:0".parse().unwrap()];
    })
    .await;
    // A CONNECT that would take far longer than the timeout at this pace.
    let mut connect = Connect::new(ProtocolVersion::V5, "slow");
    connect.username = Some("u".repeat(1000).into());
    let mut bytes = BytesMut::new();
    protocol::encode(
        &Packet::Connect(Box::new(connect)),
        ProtocolVersion::V5,
        &mut bytes,
    )
    .unwrap();
    let mut slow = TcpStream::connect(broker.addr).await.unwrap();
    assert!(trickle_until_closed(&mut slow, &bytes).await);
    assert_eq!(hits(&broker, Limit::ConnectTimeout), 1);

    // The same for the HTTP request that would open /mqtt.
    let http = broker.running.as_ref().unwrap().http_addrs[0];
    let request =
        "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".repeat(20);
    let mut slow = TcpStream::connect(http).await.unwrap();
    assert!(trickle_until_closed(&mut slow, request.as_bytes()).await);
    assert_eq!(hits(&broker, Limit::ConnectTimeout), 2);

    // A socket that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(broker.addr).await.unwrap();
    assert!(closed_by_broker(&mut silent).await);
    // And a prompt client is served.
    let mut client = broker.client(ProtocolVersion::V5, "prompt").await;
    client.subscribe_many(1, &[("t", QoS::AtMostOnce)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn refused_subscriptions_are_counted_under_their_limit() {
    let broker = broker_with(|c| c.limits.max_subscriptions_per_client = 1).await;
    let mut client = broker.client(ProtocolVersion::V5, "c").await;
    let codes = client
        .subscribe_many(1, &[("a", QoS::AtMostOnce), ("b", QoS::AtMostOnce)])
        .await;
    assert_eq!(
        codes,
        [ReasonCode::GRANTED_QOS_0, ReasonCode::QuotaExceeded]
    );
    assert_eq!(hits(&broker, Limit::Subscriptions), 1);
    let text = broker_server::internals::http::render(broker.broker());
    assert!(
        text.contains("mqtt_limit_hits_total{limit=\"max_subscriptions_per_client\"} 1\n"),
        "{text}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn websocket_and_tls_connections_meet_the_same_admission_limits() {
    let pki = Pki::generate();
    let mut config = http_config();
    config.listeners.tls = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls.handshake_timeout_secs = 1;
    config.limits.max_connections_per_sec_per_ip = 1;
    pki.configure(&mut config, false);
    let broker = TestBroker::with_config(config).await;
    let running = broker.running.as_ref().unwrap();
    let (http, tls) = (running.http_addrs[0], running.tls_addrs[0]);
    // Page loads and scrapes are not MQTT connections: they take nothing from the rate.
    for _ in 0..3 {
        let mut http_client = TcpStream::connect(http).await.unwrap();
        http_client
            .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        http_client.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    }
    // Over /mqtt: of five WebSockets opened at once, the first is let in and at least
    // one of the others is refused with 0x9F.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(ws_connect(http, ProtocolVersion::V5).await);
    }
    let mut codes = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        codes.push(client.connect(&format!("ws-{i}")).await.reason_code);
    }
    assert_eq!(codes[0], ReasonCode::Success, "{codes:?}");
    let refused = codes
        .iter()
        .filter(|c| **c == ReasonCode::ConnectionRateExceeded)
        .count();
    assert!(refused >= 1, "{codes:?}");
    assert_eq!(hits(&broker, Limit::ConnectionRatePerIp), refused as u64);

    // A TLS client that never starts its handshake is cut off at the handshake timeout.
    let mut silent = TcpStream::connect(tls).await.unwrap();
    assert!(closed_by_broker(&mut silent).await);
    assert_eq!(hits(&broker, Limit::TlsHandshakeTimeout), 1);
    broker.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_at_the_write_timeout() {
    let broker = broker_with(|c| c.limits.write_timeout_secs = 1).await;
    let mut deaf = broker.client(ProtocolVersion::V5, "deaf").await;
    deaf.subscribe_many(1, &[("t", QoS::AtMostOnce)]).await;
    // From here on `deaf` reads nothing: the kernel's buffers fill, then the broker's
    // write to it stalls.
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    let payload = "x".repeat(60_000);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hits(&broker, Limit::WriteTimeout) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled write was never given up"
        );
        publisher
            .send_publish(publish("t", &payload, QoS::AtMostOnce, None))
            .await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Its connection ended (and with it its session, which had expiry 0).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while broker.broker().session("deaf").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "deaf still online");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Everyone else is still served.
    let mut listener = broker.client(ProtocolVersion::V5, "listener").await;
    listener
        .subscribe_many(1, &[("after", QoS::AtMostOnce)])
        .await;
    publisher
        .send_publish(publish("after", "ok", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&listener.recv_publish().await.payload[..], b"ok");
    drop(deaf);
    broker.stop().await;
}

/// A subscriber on a socket with a small receive buffer that reads `read_bytes` every
/// `tick` (`None`: nothing at all) until `run_for` has passed or the broker ends its
/// connection. Returns when the broker ended it (counted from its SUBACK; seen in the
/// broker's client list, as the bytes it had sent may still be on their way), `None` if
/// it did not, and the client, still open.
async fn subscriber_reading(
    broker: &TestBroker,
    client_id: &str,
    read_bytes: Option<usize>,
    tick: Duration,
    run_for: Duration,
) -> (Option<Duration>, Peer) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = socket.connect(broker.addr).await.unwrap();
    let mut client = Peer::from_tcp(stream, ProtocolVersion::V5);
    let connack = client
        .handshake(Connect::new(ProtocolVersion::V5, client_id))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client
        .subscribe_many(1, &[("flood", QoS::AtMostOnce)])
        .await;
    let start = tokio::time::Instant::now();
    let Some(want) = read_bytes else {
        tokio::time::sleep(run_for).await;
        return (None, client);
    };
    let mut buf = vec![0u8; want];
    let mut ticks = tokio::time::interval(tick);
    while start.elapsed() < run_for {
        ticks.tick().await;
        if broker.broker().clients.get(client_id).is_none() {
            return (Some(start.elapsed()), client);
        }
        let mut got = 0;
        while got < want {
            match client.stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => return (Some(start.elapsed()), client),
                Ok(n) => got += n,
            }
        }
    }
    (None, client)
}

/// `write_timeout_secs` measures a lack of progress, not the time to drain a backlog:
/// with a publisher offering ~1 MB/s of QoS 0, a subscriber that reads a steady 50 KB/s
/// through a small socket buffer stays connected for several times the timeout, while
/// the queue drops what it cannot take (counted); one that stops reading is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_reader_stays_connected_under_a_flood() {
    let broker = broker_with(|c| {
        c.limits.write_timeout_secs = 2;
        c.limits.max_queued_messages = 20;
    })
    .await;
    let write_timeout = Duration::from_secs(2);
    let run_for = write_timeout * 4;
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut publisher = broker.client(ProtocolVersion::V5, "pub").await;
    let publishing = {
        let flooding = flooding.clone();
        tokio::spawn(async move {
            let payload = "x".repeat(10 * 1024);
            // ~100 messages of 10 KB a second.
            let mut ticks = tokio::time::interval(Duration::from_millis(10));
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                ticks.tick().await;
                publisher
                    .send_publish(publish("flood", &payload, QoS::AtMostOnce, None))
                    .await;
            }
            publisher
        })
    };
    let tick = Duration::from_millis(200);
    let ((steady, _steady), (_, _deaf)) = tokio::join!(
        subscriber_reading(&broker, "steady", Some(10 * 1024), tick, run_for),
        subscriber_reading(&broker, "deaf", None, tick, run_for),
    );
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let _publisher = publishing.await.unwrap();
    assert_eq!(
        steady, None,
        "the steady reader was disconnected after {steady:?} (write timeout {write_timeout:?})"
    );
    assert!(broker.broker().clients.get("steady").is_some());
    assert!(
        broker.broker().clients.get("deaf").is_none(),
        "the reader that stopped was not disconnected"
    );
    assert_eq!(
        hits(&broker, Limit::WriteTimeout),
        1,
        "only the deaf reader"
    );
    assert!(
        broker.broker().metrics.messages_dropped.get() > 0,
        "the overflow is dropped and counted"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_connection_sending_too_much_before_connect_is_closed() {
    let broker = broker_with(|c| c.limits.max_bytes_before_connect = 4096).await;
    // A CONNECT announcing 1 MB (within max_packet_size), then its first 8 KiB.
    let mut big = TcpStream::connect(broker.addr).await.unwrap();
    let mut bytes = vec![0x10, 0x80, 0x80, 0x40];
    bytes.extend(std::iter::repeat_n(0u8, 8192));
    let _ = big.write_all(&bytes).await;
    assert!(closed_by_broker(&mut big).await);
    assert_eq!(hits(&broker, Limit::BytesBeforeConnect), 1);
    // An ordinary CONNECT is far below it.
    let mut client = broker.client(ProtocolVersion::V3_1_1, "small").await;
    client.subscribe_many(1, &[("t", QoS::AtMostOnce)]).await;
    broker.stop().await;
}
