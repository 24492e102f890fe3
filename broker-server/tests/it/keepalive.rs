//! Keep alive (§3.1.2.10, §4.13): the broker closes a client it has heard nothing from
//! for 1.5 times the keep alive (MQTT 5: DISCONNECT 0x8D first), and not before; PINGREQ
//! keeps a connection alive; MQTT 5 Server Keep Alive from `limits.max_keep_alive_secs`;
//! and the connect timeout for sockets that never send CONNECT. All on a paused clock, but
//! the test of the keep-alive wheel's ticks, which needs the real one.

use crate::common;
use crate::peer;

use std::time::Duration;

use common::{TestBroker, test_config};
use peer::*;
use protocol::{Connect, Packet, ProtocolVersion, ReasonCode};

/// Asserts that the broker closed `client` for keep alive: MQTT 5 gets DISCONNECT 0x8D
/// first, 3.x nothing [MQTT-3.1.2-24].
async fn expect_keep_alive_timeout(client: &mut Peer) {
    let seen = client.expect_closed().await;
    if client.version.is_v5() {
        match seen.as_slice() {
            [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::KeepAliveTimeout),
            other => panic!("expected DISCONNECT 0x8D then close, got {other:?}"),
        }
    } else {
        assert!(
            seen.is_empty(),
            "3.x: closed without a packet, got {seen:?}"
        );
    }
}

fn with_keep_alive(mut connect: Connect, secs: u16) -> Connect {
    connect.keep_alive = secs;
    connect
}

async fn silent_client_is_closed_after_one_and_a_half_keep_alives(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut client, _) =
        Peer::connected(broker.addr, with_keep_alive(clean(version, "c"), 10)).await;
    // Silent for just under 15 s: still open, and PINGREQ is answered.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(14_999)).await;
        client.ping().await;
    }
    // Each PINGREQ restarted the clock; 15 s of silence ends the connection.
    tokio::time::advance(Duration::from_millis(14_999)).await;
    assert!(broker.broker().session("c").is_some_and(|s| s.is_online()));
    tokio::time::advance(Duration::from_millis(1)).await;
    expect_keep_alive_timeout(&mut client).await;
    assert!(
        broker.broker().session("c").is_none(),
        "clean session ended"
    );
    broker.stop().await;
}
each_version!(paused silent_client_is_closed_after_one_and_a_half_keep_alives);

async fn any_packet_counts_as_a_sign_of_life(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut client, _) =
        Peer::connected(broker.addr, with_keep_alive(clean(version, "c"), 10)).await;
    for n in 1..=3 {
        advance_secs(14).await;
        client.subscribe(n, "t", protocol::QoS::AtMostOnce).await;
    }
    advance_secs(15).await;
    expect_keep_alive_timeout(&mut client).await;
    broker.stop().await;
}
each_version!(paused any_packet_counts_as_a_sign_of_life);

async fn keep_alive_zero_never_times_out(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut client, _) = Peer::connected(broker.addr, clean(version, "c")).await;
    advance_secs(24 * 3600).await;
    client.ping().await;
    broker.stop().await;
}
each_version!(paused keep_alive_zero_never_times_out);

/// With `max_keep_alive_secs = 20`, a v5 client asking for `asked` gets Server Keep
/// Alive `told` in CONNACK, and the broker times it out after 1.5 × `enforced`.
/// Silent clients whose deadlines fall in neighbouring ticks of the broker's keep-alive
/// wheel, on the real clock (its task wakes a little after each tick, never exactly on
/// it): every one is closed. A wheel that counted a late wake as the next tick woke that
/// tick's connections early, and they waited for a wake that never came, open for good.
#[tokio::test]
async fn silent_clients_in_neighbouring_ticks_are_all_closed() {
    let broker = TestBroker::start().await;
    let mut clients = Vec::new();
    for i in 0..8 {
        let connect = with_keep_alive(clean(ProtocolVersion::V5, &format!("c{i}")), 1);
        clients.push(Peer::connected(broker.addr, connect).await.0);
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    for client in &mut clients {
        expect_keep_alive_timeout(client).await;
    }
    broker.stop().await;
}

async fn v5_keep_alive(asked: u16, told: Option<u16>, enforced: u64) {
    let mut config = test_config();
    config.limits.max_keep_alive_secs = 20;
    let broker = TestBroker::with_config(config).await;
    let connect = with_keep_alive(clean(ProtocolVersion::V5, "c"), asked);
    let (mut client, connack) = Peer::connect(broker.addr, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        connack.properties.server_keep_alive, told,
        "keep alive {asked} [MQTT-3.2.2-21]"
    );
    let limit = Duration::from_secs(enforced * 3 / 2);
    tokio::time::advance(limit - Duration::from_millis(1)).await;
    client.ping().await;
    tokio::time::advance(limit).await;
    expect_keep_alive_timeout(&mut client).await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_server_keep_alive_lowers_a_longer_client_keep_alive() {
    v5_keep_alive(60, Some(20), 20).await;
}

#[tokio::test(start_paused = true)]
async fn v5_server_keep_alive_replaces_a_zero_client_keep_alive() {
    v5_keep_alive(0, Some(20), 20).await;
}

#[tokio::test(start_paused = true)]
async fn v5_client_keep_alive_within_the_maximum_is_kept() {
    v5_keep_alive(10, None, 10).await;
}

/// Opens a TCP connection and waits until the broker's connection task for it runs (its
/// connect timeout counts from then).
async fn open_accepted(broker: &TestBroker, version: ProtocolVersion) -> Peer {
    let accepted = broker.broker().metrics.connections_total.get();
    let peer = Peer::open(broker.addr, version).await;
    wait_until("accepted", || {
        broker.broker().metrics.connections_total.get() > accepted
    })
    .await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    peer
}

async fn socket_without_connect_is_closed_after_the_connect_timeout(version: ProtocolVersion) {
    let mut config = test_config();
    config.limits.connect_timeout_secs = 5;
    let broker = TestBroker::with_config(config).await;
    let mut silent = open_accepted(&broker, version).await;
    let mut partial = open_accepted(&broker, version).await;
    let mut connect_bytes = bytes::BytesMut::new();
    let connect = Packet::Connect(Box::new(clean(version, "slow")));
    protocol::encode(&connect, version, &mut connect_bytes).unwrap();
    partial.send_bytes(&connect_bytes[..5]).await;
    let mut late = open_accepted(&broker, version).await;

    // Just before the timeout a CONNECT is still accepted.
    tokio::time::advance(Duration::from_millis(4_999)).await;
    late.send(&Packet::Connect(Box::new(clean(version, "late"))))
        .await;
    match late.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        silent.expect_closed().await.is_empty(),
        "closed, nothing sent"
    );
    assert!(
        partial.expect_closed().await.is_empty(),
        "half a CONNECT is no CONNECT"
    );
    late.ping().await;
    broker.stop().await;
}
each_version!(paused socket_without_connect_is_closed_after_the_connect_timeout);
