//! Keep alive and the other timers, on the simulated clock of `pair/mod.rs`: the
//! client's PINGREQ after a keep alive without sending, its ping and connect timeouts,
//! Server Keep Alive, and the server's 1.5 × keep alive timeout; and the server's
//! PINGRESP in order behind the requests that came before its PINGREQ.

use std::time::Duration;

use crate::pair::{Dir, Pair, RawClient, both_versions, pid};
use protocol::session::{
    ClientEvent, ClientOptions, CloseReason, LostReason, ServerEvent, ServerOptions,
};
use protocol::{Disconnect, Packet, PacketType, ProtocolVersion, Publish, QoS, ReasonCode};

#[test]
fn the_client_pings_after_a_keep_alive_without_sending() {
    let client = ClientOptions::new("c1").keep_alive(Duration::from_secs(10));
    let mut pair = Pair::connected(client, ServerOptions::default());
    pair.advance(Duration::from_secs(5));
    pair.publish("t", "x", QoS::AtMostOnce); // sending resets the keep alive
    pair.advance(Duration::from_secs(9));
    assert_eq!(
        pair.count(Dir::ToServer, PacketType::PingReq),
        0,
        "t=14: 9 s since the last send"
    );
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.count(Dir::ToServer, PacketType::PingReq),
        1,
        "t=15: 10 s since the last send"
    );
    assert!(pair.client_events.contains(&ClientEvent::Pong));
    pair.advance(Duration::from_secs(60));
    assert_eq!(pair.count(Dir::ToServer, PacketType::PingReq), 7);
    assert!(pair.client.is_connected() && pair.server.is_connected());
}

#[test]
fn a_missing_pingresp_ends_the_connection_on_the_client() {
    let client = ClientOptions::new("c1").keep_alive(Duration::from_secs(10));
    let mut pair = Pair::connected(client, ServerOptions::default());
    pair.drop_next(Dir::ToClient, PacketType::PingResp);
    pair.advance(Duration::from_secs(14));
    assert!(
        pair.client.is_connected(),
        "ping at 10 s, its timeout (5 s) not yet over"
    );
    pair.advance(Duration::from_secs(1));
    assert!(
        pair.client_events
            .contains(&ClientEvent::ConnectionLost(LostReason::PingTimeout))
    );
    assert!(!pair.client.is_open());
}

#[test]
fn the_server_keep_alive_overrides_the_clients() {
    let server = ServerOptions {
        max_keep_alive: Some(5),
        ..ServerOptions::default()
    };
    let client = ClientOptions::new("c1").keep_alive(Duration::from_secs(60));
    let mut pair = Pair::connected(client, server);
    let Packet::ConnAck(connack) = &pair.to_client[0] else {
        panic!()
    };
    assert_eq!(connack.properties.server_keep_alive, Some(5));
    pair.advance(Duration::from_secs(5));
    assert_eq!(
        pair.count(Dir::ToServer, PacketType::PingReq),
        1,
        "the client uses 5 s [MQTT-3.2.2-21]"
    );
}

#[test]
fn the_server_closes_a_silent_client_after_one_and_a_half_keep_alives() {
    for options in both_versions() {
        let v5 = options.version.is_v5();
        let client = ClientOptions {
            ping_timeout: Some(Duration::from_secs(600)),
            ..options
        }
        .keep_alive(Duration::from_secs(10));
        let mut pair = Pair::connected(client, ServerOptions::default());
        pair.blackhole_to_server = true;
        pair.advance(Duration::from_millis(14_999));
        assert!(pair.server.is_connected(), "not before 15 s");
        pair.advance(Duration::from_millis(1));
        assert_eq!(
            pair.broker.closed,
            [(CloseReason::KeepAliveTimeout, true)],
            "the will applies"
        );
        if v5 {
            assert!(
                pair.client_events
                    .contains(&ClientEvent::Disconnected(Disconnect::new(
                        ReasonCode::KeepAliveTimeout
                    )))
            );
        } else {
            assert!(
                pair.client_events
                    .contains(&ClientEvent::ConnectionLost(LostReason::Transport))
            );
        }
    }
}

#[test]
fn the_connect_timeout_fires_without_connack() {
    let mut pair = Pair::new(ClientOptions::new("c1"), ServerOptions::default());
    pair.broker.auto_accept = false;
    pair.connect();
    pair.advance(Duration::from_secs(30));
    assert!(
        pair.client_events
            .contains(&ClientEvent::ConnectionLost(LostReason::ConnectTimeout))
    );
}

/// A PINGREQ that arrives in one read behind a SUBSCRIBE is answered after the SUBACK
/// (and whatever the broker sends with it), not before: clients see their requests
/// answered in order, and may use a PINGREQ as a barrier, as with mosquitto.
#[test]
fn a_pingreq_behind_a_subscribe_is_answered_after_its_suback() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut raw = RawClient::new(ServerOptions::default(), version);
        raw.connect(|_| {});
        let subscribe = Packet::Subscribe(protocol::Subscribe {
            packet_id: pid(1),
            subscriptions: vec![protocol::Subscription {
                filter: protocol::TopicFilter::new("t/#").expect("filter"),
                options: protocol::SubscriptionOptions::new(QoS::AtMostOnce),
            }],
            properties: Default::default(),
        });
        let out = raw.send(&[subscribe, Packet::PingReq]);
        assert!(
            out.is_empty(),
            "{version}: nothing before the broker answers: {out:?}"
        );
        assert!(matches!(
            raw.server.poll_event(),
            Some(ServerEvent::Subscribe(_))
        ));
        raw.server
            .suback(pid(1), vec![ReasonCode::GRANTED_QOS_0], Default::default())
            .expect("suback");
        let retained = Publish::new("t/r".to_owned(), "kept");
        raw.server.send_publish(retained).expect("publish");
        assert_eq!(raw.server.poll_event(), None);
        let types: Vec<PacketType> = raw.transmitted().iter().map(Packet::packet_type).collect();
        assert_eq!(
            types,
            [
                PacketType::SubAck,
                PacketType::Publish,
                PacketType::PingResp
            ],
            "{version}"
        );
        // With nothing queued, a PINGREQ is answered at once.
        let out = raw.send(&[Packet::PingReq]);
        assert_eq!(out, [Packet::PingResp], "{version}");
    }
}
