//! A client session and a server session on a simulated link and clock (see
//! `pair/mod.rs`): handshake, QoS 0/1/2 in both directions, re-delivery after lost
//! acknowledgements, flow control, topic aliases, keep alive and packet size limits.

use std::num::{NonZeroU16, NonZeroU32};

use crate::pair::{Dir, Pair, both_versions, persistent_v5, persistent_v311};
use protocol::session::{ClientEvent, ClientOptions, CloseReason, SendOutcome, ServerOptions};
use protocol::{Disconnect, Packet, PacketType, Publish, QoS, ReasonCode, SessionError};

#[test]
fn connects_with_v311_and_v5() {
    for options in both_versions() {
        let version = options.version;
        let pair = Pair::connected(options, ServerOptions::default());
        let [Packet::Connect(connect)] = pair.to_server.as_slice() else {
            panic!("{:?}", pair.to_server)
        };
        assert_eq!(connect.protocol, version);
        let [Packet::ConnAck(connack)] = pair.to_client.as_slice() else {
            panic!("{:?}", pair.to_client)
        };
        assert_eq!(connack.reason_code, ReasonCode::Success);
        assert!(!connack.session_present);
        if version.is_v5() {
            // Our limits differ from the spec's defaults, so CONNACK advertises them.
            assert_eq!(connack.properties.receive_maximum, NonZeroU16::new(32));
            assert_eq!(
                connack.properties.maximum_packet_size,
                NonZeroU32::new(1 << 20)
            );
            assert_eq!(connack.properties.topic_alias_maximum, Some(16));
            assert_eq!(connack.properties.maximum_qos, None, "QoS 2 is the default");
        }
        assert!(matches!(
            pair.client_events.as_slice(),
            [ClientEvent::Connected { .. }]
        ));
        assert_eq!(pair.broker.connects.len(), 1);
        assert!(pair.server.is_connected());
    }
}

#[test]
fn an_empty_client_id_gets_the_assigned_one_for_reconnects() {
    let mut pair = Pair::connected(ClientOptions::new(""), ServerOptions::default());
    assert_eq!(pair.client.options().client_id, "assigned-1");
    pair.reconnect();
    assert_eq!(pair.broker.connects[1].client_id, "assigned-1");
}

#[test]
fn qos_0_1_2_round_trip_in_both_directions() {
    for options in both_versions() {
        let mut pair = Pair::connected(options, ServerOptions::default());
        pair.subscribe("t/#", QoS::ExactlyOnce);
        assert_eq!(pair.publish("t/0", "zero", QoS::AtMostOnce), None);
        let one = pair
            .publish("t/1", "one", QoS::AtLeastOnce)
            .expect("QoS 1 has an id");
        let two = pair
            .publish("t/2", "two", QoS::ExactlyOnce)
            .expect("QoS 2 has an id");

        let received: Vec<_> = pair
            .broker
            .received
            .iter()
            .map(|p| (p.topic.to_string(), p.qos))
            .collect();
        assert_eq!(
            received,
            [
                ("t/0".into(), QoS::AtMostOnce),
                ("t/1".into(), QoS::AtLeastOnce),
                ("t/2".into(), QoS::ExactlyOnce)
            ]
        );
        let messages: Vec<_> = pair
            .client_messages()
            .iter()
            .map(|p| (p.topic.to_string(), p.qos))
            .collect();
        assert_eq!(messages, received, "looped back at the same QoS");
        assert_eq!(
            pair.client_acks(),
            [(one, ReasonCode::Success), (two, ReasonCode::Success)]
        );
        assert_eq!(
            pair.broker.delivered.len(),
            2,
            "both outbound flows completed"
        );
        assert_eq!(
            pair.broker.released.len(),
            1,
            "the QoS 2 message was released"
        );
        for dir in [Dir::ToServer, Dir::ToClient] {
            assert_eq!(pair.count(dir, PacketType::PubRel), 1);
            assert_eq!(pair.count(dir, PacketType::PubComp), 1);
        }
        assert_eq!(pair.client.pending_publishes(), 0);
        assert_eq!(pair.server.inflight(), 0);
    }
}

#[test]
fn acknowledgement_waits_for_the_broker_to_store_the_message() {
    let mut pair = Pair::connected(ClientOptions::new("c1"), ServerOptions::default());
    pair.broker.auto_ack = false;
    let id = pair.publish("t", "x", QoS::AtLeastOnce).expect("id");
    assert_eq!(pair.broker.received.len(), 1, "surfaced at once");
    assert_eq!(
        pair.count(Dir::ToClient, PacketType::PubAck),
        0,
        "not acknowledged before storing"
    );
    assert_eq!(pair.server.unacknowledged(), 1);
    pair.ack_all();
    assert_eq!(pair.count(Dir::ToClient, PacketType::PubAck), 1);
    assert_eq!(pair.client_acks(), [(id, ReasonCode::Success)]);
}

#[test]
fn lost_puback_is_redelivered_with_dup_after_reconnect() {
    for options in [persistent_v5("c1"), persistent_v311("c1")] {
        let mut pair = Pair::connected(options, ServerOptions::default());
        pair.drop_next(Dir::ToClient, PacketType::PubAck);
        let id = pair.publish("t", "x", QoS::AtLeastOnce).expect("id");
        assert!(pair.client_acks().is_empty());
        pair.reconnect();

        let sent = pair.publishes(Dir::ToServer);
        assert_eq!(sent.len(), 2);
        assert!(
            !sent[0].dup && sent[1].dup,
            "re-sent with DUP [MQTT-3.3.1-1]"
        );
        assert_eq!(sent[1].packet_id, Some(id), "with its original identifier");
        let [Packet::ConnAck(_), .., Packet::ConnAck(connack), _] = pair.to_client.as_slice()
        else {
            panic!("{:?}", pair.to_client)
        };
        assert!(connack.session_present);
        assert_eq!(pair.client_acks(), [(id, ReasonCode::Success)]);
        assert_eq!(pair.broker.received.len(), 2, "QoS 1 is at least once");
    }
}

#[test]
fn lost_pubrec_from_the_server_still_delivers_qos2_exactly_once() {
    for options in [persistent_v5("c1"), persistent_v311("c1")] {
        let mut pair = Pair::connected(options, ServerOptions::default());
        pair.drop_next(Dir::ToClient, PacketType::PubRec);
        let id = pair.publish("t", "once", QoS::ExactlyOnce).expect("id");
        pair.reconnect();

        let sent = pair.publishes(Dir::ToServer);
        assert_eq!(sent.len(), 2);
        assert!(sent[1].dup);
        assert_eq!(
            pair.broker.received.len(),
            1,
            "the re-send only gets its PUBREC again"
        );
        assert_eq!(pair.client_acks(), [(id, ReasonCode::Success)]);
        assert_eq!(pair.broker.released, [id]);
    }
}

#[test]
fn lost_pubcomp_is_recovered_by_resending_pubrel() {
    let mut pair = Pair::connected(persistent_v5("c1"), ServerOptions::default());
    pair.drop_next(Dir::ToClient, PacketType::PubComp);
    let id = pair.publish("t", "once", QoS::ExactlyOnce).expect("id");
    pair.reconnect();

    assert_eq!(
        pair.count(Dir::ToServer, PacketType::PubRel),
        2,
        "PUBREL re-sent [MQTT-4.4.0-1]"
    );
    assert_eq!(
        pair.publishes(Dir::ToServer).len(),
        1,
        "the PUBLISH itself is not re-sent"
    );
    assert_eq!(pair.broker.received.len(), 1);
    // The server had completed the flow: its PUBCOMP says so (not an error during
    // recovery, §3.7.2.1), and the client's flow ends.
    assert_eq!(
        pair.client_acks(),
        [(id, ReasonCode::PacketIdentifierNotFound)]
    );
    assert_eq!(pair.client.pending_publishes(), 0);
}

#[test]
fn qos2_to_the_client_is_delivered_once_despite_a_lost_pubrec() {
    for options in [persistent_v5("c1"), persistent_v311("c1")] {
        let mut pair = Pair::connected(options, ServerOptions::default());
        pair.subscribe("t", QoS::ExactlyOnce);
        pair.drop_next(Dir::ToServer, PacketType::PubRec);
        pair.publish("t", "once", QoS::ExactlyOnce);
        assert_eq!(pair.client_messages().len(), 1);
        assert!(
            pair.broker.delivered.is_empty(),
            "the server never saw the PUBREC"
        );
        pair.reconnect();

        let to_client = pair.publishes(Dir::ToClient);
        assert_eq!(to_client.len(), 2);
        assert!(to_client[1].dup, "the server re-sends with DUP");
        assert_eq!(
            pair.client_messages().len(),
            1,
            "the client does not deliver it twice"
        );
        assert_eq!(pair.broker.delivered.len(), 1);
        assert_eq!(pair.server.inflight(), 0);
    }
}

#[test]
fn qos2_to_the_client_recovers_a_lost_pubcomp() {
    let mut pair = Pair::connected(persistent_v5("c1"), ServerOptions::default());
    pair.subscribe("t", QoS::ExactlyOnce);
    pair.drop_next(Dir::ToServer, PacketType::PubComp);
    pair.publish("t", "once", QoS::ExactlyOnce);
    pair.reconnect();
    assert_eq!(pair.count(Dir::ToClient, PacketType::PubRel), 2);
    assert_eq!(pair.client_messages().len(), 1);
    let [(_, reason)] = pair.broker.delivered.as_slice() else {
        panic!("{:?}", pair.broker.delivered)
    };
    assert_eq!(*reason, ReasonCode::PacketIdentifierNotFound);
}

#[test]
fn a_lost_session_discards_started_flows_and_reports_it() {
    let mut pair = Pair::connected(persistent_v5("c1"), ServerOptions::default());
    pair.drop_next(Dir::ToClient, PacketType::PubAck);
    let id = pair.publish("t", "x", QoS::AtLeastOnce).expect("id");
    pair.cut();
    let queued = pair
        .client
        .publish("t", "later", QoS::AtLeastOnce, false, Default::default())
        .unwrap();
    pair.broker.stored = None; // the broker lost the session (expired, restarted, ...)
    pair.reconnect();

    assert!(pair.client_events.iter().any(
        |e| matches!(e, ClientEvent::SessionLost { discarded } if discarded.as_slice() == [id])
    ));
    let sent = pair.publishes(Dir::ToServer);
    assert_eq!(
        sent.len(),
        2,
        "the started flow is not re-sent, the queued one is sent"
    );
    assert_eq!(sent[1].payload, "later");
    assert!(!sent[1].dup);
    assert_eq!(
        pair.client_acks(),
        [(queued.expect("id"), ReasonCode::Success)]
    );
}

#[test]
fn the_servers_receive_maximum_holds_the_third_qos1_message_until_an_ack() {
    let server = ServerOptions {
        receive_maximum: NonZeroU16::new(2).expect("2"),
        ..ServerOptions::default()
    };
    let mut pair = Pair::connected(ClientOptions::new("c1"), server);
    pair.broker.auto_ack = false;
    for payload in ["1", "2", "3"] {
        pair.publish("t", payload, QoS::AtLeastOnce);
    }
    assert_eq!(pair.publishes(Dir::ToServer).len(), 2, "the window is full");
    assert_eq!(pair.client.pending_publishes(), 3);

    let first = pair.broker.unacked.remove(0);
    pair.server
        .ack_publish(first, ReasonCode::Success)
        .expect("ack");
    pair.drive();
    let sent = pair.publishes(Dir::ToServer);
    assert_eq!(sent.len(), 3, "an ack frees a slot");
    assert_eq!(sent[2].payload, "3");
    pair.ack_all();
    assert_eq!(pair.client.pending_publishes(), 0);
    assert!(
        !pair.server.is_closed(),
        "the client never exceeded the window"
    );
}

#[test]
fn the_clients_receive_maximum_queues_outbound_messages_in_the_server() {
    let client = ClientOptions {
        receive_maximum: NonZeroU16::new(2).expect("2"),
        ..ClientOptions::new("c1")
    };
    let mut pair = Pair::connected(client, ServerOptions::default());
    let outcomes: Vec<_> = ["1", "2", "3"]
        .into_iter()
        .map(|payload| {
            let mut publish = Publish::new("t", payload);
            publish.qos = QoS::AtLeastOnce;
            pair.server.send_publish(publish).expect("send")
        })
        .collect();
    assert!(matches!(
        outcomes[0],
        SendOutcome::Sent { packet_id: Some(_) }
    ));
    assert!(matches!(
        outcomes[1],
        SendOutcome::Sent { packet_id: Some(_) }
    ));
    let SendOutcome::Queued { packet_id: third } = outcomes[2] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(pair.server.send_quota(), 0);
    pair.drive();
    let payloads: Vec<_> = pair
        .client_messages()
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    assert_eq!(payloads, ["1", "2", "3"], "in order, as acks freed slots");
    assert!(pair.broker.delivered.iter().any(|&(id, _)| id == third));
    assert_eq!(pair.server.send_quota(), 2);
}

#[test]
fn topic_aliases_are_used_in_both_directions() {
    let client = ClientOptions {
        topic_alias_maximum: 4,
        ..ClientOptions::new("c1")
    };
    let mut pair = Pair::connected(client, ServerOptions::default());
    pair.subscribe("sensors/#", QoS::AtMostOnce);
    pair.publish("sensors/kitchen/temperature", "20", QoS::AtMostOnce);
    pair.publish("sensors/kitchen/temperature", "21", QoS::AtMostOnce);

    for dir in [Dir::ToServer, Dir::ToClient] {
        let sent = pair.publishes(dir);
        assert_eq!(
            sent[0].topic, "sensors/kitchen/temperature",
            "{dir:?}: first use carries the topic"
        );
        assert!(sent[0].properties.topic_alias.is_some());
        assert_eq!(sent[1].topic, "", "{dir:?}: later uses only the alias");
        assert_eq!(
            sent[1].properties.topic_alias,
            sent[0].properties.topic_alias
        );
    }
    for publish in pair.broker.received.iter().chain(pair.client_messages()) {
        assert_eq!(
            publish.topic, "sensors/kitchen/temperature",
            "aliases are resolved"
        );
        assert_eq!(publish.properties.topic_alias, None, "and removed");
    }
}

#[test]
fn aliases_are_not_carried_over_to_a_new_connection() {
    let mut pair = Pair::connected(persistent_v5("c1"), ServerOptions::default());
    pair.publish("a/b", "1", QoS::AtMostOnce);
    pair.reconnect();
    pair.publish("a/b", "2", QoS::AtMostOnce);
    let sent = pair.publishes(Dir::ToServer);
    assert_eq!(
        sent[1].topic, "a/b",
        "the new connection establishes the alias again [MQTT-3.3.2-7]"
    );
    assert_eq!(pair.broker.received.len(), 2);
}

#[test]
fn the_client_refuses_to_publish_beyond_the_servers_limits() {
    let server = ServerOptions {
        maximum_packet_size: NonZeroU32::new(64).expect("64"),
        maximum_qos: QoS::AtLeastOnce,
        retain_available: false,
        ..ServerOptions::default()
    };
    let mut pair = Pair::connected(ClientOptions::new("c1"), server);
    let too_big = pair.client.publish(
        "t",
        vec![0u8; 100],
        QoS::AtMostOnce,
        false,
        Default::default(),
    );
    assert!(
        matches!(
            too_big,
            Err(SessionError::PacketTooLarge { maximum: 64, .. })
        ),
        "{too_big:?}"
    );
    let qos2 = pair
        .client
        .publish("t", "x", QoS::ExactlyOnce, false, Default::default());
    assert!(
        matches!(qos2, Err(SessionError::QoSNotSupported { .. })),
        "{qos2:?}"
    );
    let retained = pair
        .client
        .publish("t", "x", QoS::AtMostOnce, true, Default::default());
    assert_eq!(retained, Err(SessionError::RetainNotSupported));
    assert!(
        pair.client
            .publish("t", "fits", QoS::AtLeastOnce, false, Default::default())
            .is_ok()
    );
    pair.drive();
    assert_eq!(pair.broker.received.len(), 1);
    assert!(!pair.server.is_closed());
}

#[test]
fn the_server_drops_what_exceeds_the_clients_maximum_packet_size() {
    let client = ClientOptions {
        maximum_packet_size: NonZeroU32::new(64),
        ..ClientOptions::new("c1")
    };
    let mut pair = Pair::connected(client, ServerOptions::default());
    pair.subscribe("t", QoS::AtLeastOnce);
    pair.client
        .publish(
            "t",
            vec![b'x'; 100],
            QoS::AtLeastOnce,
            false,
            Default::default(),
        )
        .unwrap();
    pair.publish("t", "small", QoS::AtLeastOnce);
    assert!(
        matches!(
            pair.broker.sent[0],
            SendOutcome::Dropped { maximum: 64, .. }
        ),
        "{:?}",
        pair.broker.sent
    );
    let payloads: Vec<_> = pair
        .client_messages()
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    assert_eq!(
        payloads,
        ["small"],
        "the large one is discarded [MQTT-3.1.2-25]"
    );
    assert!(pair.client.is_connected());
}

#[test]
fn client_disconnect_decides_the_will() {
    for (reason, will) in [
        (ReasonCode::NORMAL_DISCONNECTION, false),
        (ReasonCode::DisconnectWithWillMessage, true),
    ] {
        let mut pair = Pair::connected(ClientOptions::new("c1"), ServerOptions::default());
        pair.client
            .disconnect(Disconnect::new(reason))
            .expect("disconnect");
        pair.drive();
        assert_eq!(
            pair.broker.closed,
            [(
                CloseReason::ClientDisconnected(Disconnect::new(reason)),
                will
            )]
        );
        assert!(!pair.client.is_open());
    }
    let mut pair = Pair::connected(ClientOptions::new("c1"), ServerOptions::default());
    pair.cut();
    assert_eq!(pair.broker.closed, [(CloseReason::ConnectionLost, true)]);
}

#[test]
fn messages_published_offline_go_out_after_connack() {
    let mut pair = Pair::new(persistent_v5("c1"), ServerOptions::default());
    let id = pair
        .client
        .publish("t", "early", QoS::AtLeastOnce, false, Default::default())
        .unwrap();
    assert_eq!(
        pair.client
            .publish("t", "x", QoS::AtMostOnce, false, Default::default()),
        Err(SessionError::NotConnected)
    );
    pair.connect();
    assert_eq!(pair.broker.received.len(), 1);
    assert_eq!(pair.client_acks(), [(id.expect("id"), ReasonCode::Success)]);
}
