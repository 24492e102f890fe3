//! Protocol violations that our own client never commits, sent as raw packets to a
//! server session (and a few to a client session): each closes the connection with the
//! right reason code and never panics.

use std::num::{NonZeroU16, NonZeroU32};

use crate::pair::{RawClient, decode_all, encode_all, pid, publish};
use bytes::BytesMut;
use protocol::session::{
    AcceptOptions, ClientEvent, ClientOptions, ClientSession, CloseReason, LostReason,
    ProtocolViolation, ServerEvent, ServerOptions, SessionState,
};
use protocol::{
    ConnAck, Connect, DecodeError, Disconnect, Packet, ProtocolVersion, PubAck, PubRel, QoS,
    ReasonCode,
};

fn disconnect(reason: ReasonCode) -> Packet {
    Packet::Disconnect(Disconnect::new(reason))
}

#[test]
fn connect_must_be_the_first_packet() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    let out = raw.send(&[Packet::PingReq]);
    assert!(
        out.is_empty(),
        "no CONNACK: the version is unknown [MQTT-3.1.0-1]"
    );
    let events = raw.events();
    assert_eq!(
        RawClient::closed(&events),
        Some(&CloseReason::ProtocolViolation(
            ProtocolViolation::FirstPacketNotConnect(protocol::PacketType::PingReq)
        ))
    );
    assert!(raw.server.is_closed());
    assert!(
        raw.send(&[Packet::PingReq]).is_empty(),
        "input after closing is ignored"
    );
}

#[test]
fn a_second_connect_is_a_protocol_error() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut raw = RawClient::new(ServerOptions::default(), version);
        raw.connect(|_| {});
        let out = raw.send(&[Packet::Connect(Box::new(Connect::new(version, "raw")))]);
        if version.is_v5() {
            assert_eq!(out, [disconnect(ReasonCode::ProtocolError)]);
        } else {
            assert!(out.is_empty(), "3.1.1 just closes");
        }
        let events = raw.events();
        assert_eq!(
            RawClient::closed(&events),
            Some(&CloseReason::ProtocolViolation(
                ProtocolViolation::SecondConnect
            ))
        );
    }
}

#[test]
fn a_malformed_connect_is_answered_in_its_own_version() {
    // Protocol level 5, reserved flag set: MQTT 5 CONNACK 0x81.
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    let bytes = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x03, 0, 60, 0, 0, 0,
    ];
    let out = raw.send_bytes(BytesMut::from(&bytes[..]));
    assert_eq!(
        out,
        [Packet::ConnAck(ConnAck::new(ReasonCode::MalformedPacket))]
    );

    // Protocol level 6: the 3.1.1 CONNACK "unacceptable protocol version".
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V3_1_1);
    let bytes = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 0,
    ];
    let out = raw.send_bytes(BytesMut::from(&bytes[..]));
    assert_eq!(
        out,
        [Packet::ConnAck(ConnAck::new(
            ReasonCode::UnsupportedProtocolVersion
        ))]
    );
    let events = raw.events();
    assert!(matches!(
        RawClient::closed(&events),
        Some(CloseReason::ProtocolViolation(ProtocolViolation::Decode(
            DecodeError::UnsupportedProtocolLevel(6)
        )))
    ));
}

#[test]
fn packets_pipelined_after_connect_wait_for_accept() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    let out = raw.send(&[
        Packet::Connect(Box::new(Connect::new(ProtocolVersion::V5, "raw"))),
        Packet::Publish(publish("a", QoS::AtMostOnce, 1)),
    ]);
    assert!(out.is_empty());
    assert!(
        matches!(raw.events().as_slice(), [ServerEvent::Connect(_)]),
        "PUBLISH held back"
    );
    raw.server
        .accept(AcceptOptions::default(), None)
        .expect("accept");
    let events = raw.events();
    assert!(
        matches!(events.as_slice(), [ServerEvent::Publish(p)] if p.topic == "a"),
        "{events:?}"
    );
}

#[test]
fn the_session_refuses_connects_it_cannot_serve() {
    // An empty client identifier without clean session in 3.1.1 [MQTT-3.1.3-8].
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V3_1_1);
    let mut connect = Connect::new(ProtocolVersion::V3_1_1, "");
    connect.clean_start = false;
    let out = raw.send(&[Packet::Connect(Box::new(connect))]);
    assert_eq!(
        out,
        [Packet::ConnAck(ConnAck::new(
            ReasonCode::ClientIdentifierNotValid
        ))]
    );
    assert!(raw.server.is_closed());

    // A will above the maximum QoS [MQTT-3.2.2-12].
    let options = ServerOptions {
        maximum_qos: QoS::AtLeastOnce,
        ..ServerOptions::default()
    };
    let mut raw = RawClient::new(options, ProtocolVersion::V5);
    let mut connect = Connect::new(ProtocolVersion::V5, "raw");
    connect.will = Some(protocol::Will {
        topic: protocol::TopicName::new("will").expect("topic"),
        payload: "gone".into(),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: Default::default(),
    });
    let out = raw.send(&[Packet::Connect(Box::new(connect))]);
    assert_eq!(
        out,
        [Packet::ConnAck(ConnAck::new(ReasonCode::QoSNotSupported))]
    );
    let events = raw.events();
    assert_eq!(events.len(), 1, "no Connect event: {events:?}");
    assert!(matches!(
        &events[0],
        ServerEvent::Closed {
            reason: CloseReason::Rejected(_),
            publish_will: false
        }
    ));
}

#[test]
fn exceeding_the_receive_maximum_is_0x93() {
    let options = ServerOptions {
        receive_maximum: NonZeroU16::new(2).expect("2"),
        ..ServerOptions::default()
    };
    let mut raw = RawClient::new(options, ProtocolVersion::V5);
    raw.connect(|_| {});
    // The broker never acknowledges: three in flight is one too many.
    let out = raw.send(&[
        Packet::Publish(publish("t", QoS::AtLeastOnce, 1)),
        Packet::Publish(publish("t", QoS::ExactlyOnce, 2)),
        Packet::Publish(publish("t", QoS::AtLeastOnce, 3)),
    ]);
    assert_eq!(out, [disconnect(ReasonCode::ReceiveMaximumExceeded)]);
    let events = raw.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Publish(_)))
            .count(),
        2
    );
    assert_eq!(
        RawClient::closed(&events),
        Some(&CloseReason::ProtocolViolation(
            ProtocolViolation::ReceiveMaximumExceeded(2)
        ))
    );
}

#[test]
fn a_duplicate_qos2_publish_is_answered_but_not_surfaced_twice() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    raw.connect(|_| {});
    raw.send(&[Packet::Publish(publish("t", QoS::ExactlyOnce, 9))]);
    raw.server
        .ack_publish(pid(9), ReasonCode::Success)
        .expect("ack");
    assert_eq!(
        raw.transmitted(),
        [Packet::PubRec(protocol::PubRec::new(pid(9)))]
    );
    let mut again = publish("t", QoS::ExactlyOnce, 9);
    again.dup = true;
    let out = raw.send(&[Packet::Publish(again)]);
    assert_eq!(out, [Packet::PubRec(protocol::PubRec::new(pid(9)))]);
    let out = raw.send(&[Packet::PubRel(PubRel::new(pid(9)))]);
    assert_eq!(out, [Packet::PubComp(protocol::PubComp::new(pid(9)))]);
    let events = raw.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Publish(_)))
            .count(),
        1
    );
    assert!(events.contains(&ServerEvent::Released { packet_id: pid(9) }));
}

#[test]
fn topic_alias_violations_close_the_connection() {
    let options = ServerOptions {
        topic_alias_maximum: 2,
        ..ServerOptions::default()
    };
    let mut raw = RawClient::new(options.clone(), ProtocolVersion::V5);
    raw.connect(|_| {});
    let mut aliased = publish("t", QoS::AtMostOnce, 1);
    aliased.properties.topic_alias = NonZeroU16::new(3);
    assert_eq!(
        raw.send(&[Packet::Publish(aliased)]),
        [disconnect(ReasonCode::TopicAliasInvalid)]
    );

    let mut raw = RawClient::new(options, ProtocolVersion::V5);
    raw.connect(|_| {});
    let mut unknown = publish("", QoS::AtMostOnce, 1);
    unknown.properties.topic_alias = NonZeroU16::new(1);
    assert_eq!(
        raw.send(&[Packet::Publish(unknown)]),
        [disconnect(ReasonCode::ProtocolError)]
    );
}

#[test]
fn qos_and_retain_beyond_what_the_server_advertised() {
    let options = ServerOptions {
        maximum_qos: QoS::AtLeastOnce,
        retain_available: false,
        ..ServerOptions::default()
    };
    let mut raw = RawClient::new(options.clone(), ProtocolVersion::V5);
    let out = raw.connect(|_| {});
    let [Packet::ConnAck(connack)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(connack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(connack.properties.retain_available, Some(false));
    let out = raw.send(&[Packet::Publish(publish("t", QoS::ExactlyOnce, 1))]);
    assert_eq!(out, [disconnect(ReasonCode::QoSNotSupported)]);

    let mut raw = RawClient::new(options, ProtocolVersion::V5);
    raw.connect(|_| {});
    let mut retained = publish("t", QoS::AtMostOnce, 1);
    retained.retain = true;
    assert_eq!(
        raw.send(&[Packet::Publish(retained)]),
        [disconnect(ReasonCode::RetainNotSupported)]
    );
}

#[test]
fn an_oversized_packet_is_0x95() {
    let options = ServerOptions {
        maximum_packet_size: NonZeroU32::new(100).expect("100"),
        ..ServerOptions::default()
    };
    let mut raw = RawClient::new(options, ProtocolVersion::V5);
    raw.connect(|_| {});
    let mut big = publish("t", QoS::AtMostOnce, 1);
    big.payload = vec![0u8; 200].into();
    // Only the fixed header is needed to refuse it.
    let mut bytes = encode_all(&[Packet::Publish(big)], ProtocolVersion::V5);
    bytes.truncate(4);
    assert_eq!(
        raw.send_bytes(bytes),
        [disconnect(ReasonCode::PacketTooLarge)]
    );
}

/// An acknowledgement for a packet identifier no flow has is not a protocol error (the
/// spec names none; mosquitto ignores it): PUBACK and PUBCOMP are ignored, PUBREC and
/// PUBREL answered with 0x92 (§3.6.2.1, §3.7.2.1), and each is reported for counting.
#[test]
fn acknowledgements_for_identifiers_not_in_flight_are_ignored_or_answered() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut raw = RawClient::new(ServerOptions::default(), version);
        raw.connect(|_| {});
        let out = raw.send(&[
            Packet::PubAck(PubAck::new(pid(4))),
            Packet::PubComp(protocol::PubComp::new(pid(5))),
            Packet::PubRec(protocol::PubRec::new(pid(6))),
            Packet::PubRel(PubRel::new(pid(7))),
        ]);
        let not_found = if version.is_v5() {
            ReasonCode::PacketIdentifierNotFound
        } else {
            ReasonCode::Success // 3.x acknowledgements carry no reason code
        };
        assert_eq!(
            out,
            [
                Packet::PubRel(PubRel::with_reason(pid(6), not_found)),
                Packet::PubComp(protocol::PubComp::with_reason(pid(7), not_found)),
            ],
            "{version:?}"
        );
        assert!(!raw.server.is_closed(), "{version:?}");
        let reported: Vec<_> = raw
            .events()
            .into_iter()
            .filter_map(|event| match event {
                ServerEvent::AckNotInFlight { packet, packet_id } => {
                    Some((packet, packet_id.get()))
                }
                _ => None,
            })
            .collect();
        use protocol::PacketType as T;
        assert_eq!(
            reported,
            [
                (T::PubAck, 4),
                (T::PubComp, 5),
                (T::PubRec, 6),
                (T::PubRel, 7)
            ]
        );
        // The connection goes on.
        assert_eq!(raw.send(&[Packet::PingReq]), [Packet::PingResp]);
    }
}

/// An acknowledgement of the wrong kind for a flow in flight shows the two sides'
/// state disagree: still a protocol error, as in mosquitto.
#[test]
fn an_acknowledgement_of_the_wrong_kind_is_a_protocol_error() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    raw.connect(|_| {});
    raw.server
        .send_publish(publish("t", QoS::ExactlyOnce, 1))
        .expect("sent");
    let sent = raw.transmitted();
    let Some(Packet::Publish(sent)) = sent.first() else {
        panic!("{sent:?}");
    };
    let id = sent.packet_id.expect("QoS 2");
    assert_eq!(
        raw.send(&[Packet::PubAck(PubAck::new(id))]),
        [disconnect(ReasonCode::ProtocolError)]
    );
    let events = raw.events();
    assert!(matches!(
        RawClient::closed(&events),
        Some(CloseReason::ProtocolViolation(
            ProtocolViolation::UnknownPacketId { .. }
        ))
    ));
}

#[test]
fn unexpected_packets_are_protocol_errors() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    raw.connect(|_| {});
    assert_eq!(
        raw.send(&[Packet::PingResp]),
        [disconnect(ReasonCode::ProtocolError)]
    );
}

/// MQTT 3.1 sets DUP on a re-sent PUBREL; after a reconnect the server may no longer
/// know its flow, and must still answer PUBCOMP, or the client's flow never ends.
#[test]
fn a_3_1_pubrel_with_dup_is_answered_with_pubcomp() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V3_1);
    raw.connect(|_| {});
    // Known flow: PUBLISH QoS 2, PUBREC, then PUBREL re-sent with DUP.
    raw.send(&[Packet::Publish(publish("t", QoS::ExactlyOnce, 3))]);
    raw.server
        .ack_publish(pid(3), ReasonCode::Success)
        .expect("ack");
    assert_eq!(
        raw.transmitted(),
        [Packet::PubRec(protocol::PubRec::new(pid(3)))]
    );
    let out = raw.send_bytes(bytes::BytesMut::from(&[0x6A, 0x02, 0x00, 0x03][..]));
    assert_eq!(out, [Packet::PubComp(protocol::PubComp::new(pid(3)))]);
    // Unknown flow (the server lost it): answered all the same.
    let out = raw.send_bytes(bytes::BytesMut::from(&[0x6A, 0x02, 0x00, 0x09][..]));
    assert_eq!(out, [Packet::PubComp(protocol::PubComp::new(pid(9)))]);
    assert!(!raw.server.is_closed());
}

#[test]
fn session_expiry_in_disconnect_after_zero_is_a_protocol_error() {
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    raw.connect(|_| {});
    let mut bye = Disconnect::new(ReasonCode::Success);
    bye.properties.session_expiry_interval = Some(60);
    assert_eq!(
        raw.send(&[Packet::Disconnect(bye)]),
        [disconnect(ReasonCode::ProtocolError)]
    );
    let events = raw.events();
    assert!(matches!(
        events.last(),
        Some(ServerEvent::Closed {
            reason: CloseReason::ProtocolViolation(ProtocolViolation::SessionExpiryAfterZero),
            publish_will: true
        })
    ));
}

#[test]
fn garbage_never_panics_the_server_session() {
    // Every prefix of some valid and some invalid streams, fed byte by byte and at once.
    let mut streams = vec![
        encode_all(
            &[Packet::Connect(Box::new(Connect::new(
                ProtocolVersion::V5,
                "x",
            )))],
            ProtocolVersion::V5,
        ),
        BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF][..]),
        BytesMut::from(&[0x10u8, 0xFF, 0xFF, 0xFF, 0x7F][..]),
    ];
    let mut connected = encode_all(
        &[Packet::Connect(Box::new(Connect::new(
            ProtocolVersion::V5,
            "x",
        )))],
        ProtocolVersion::V5,
    );
    connected.extend_from_slice(&[0x30, 0x05, 0x00, 0x00, 0x00, 0x23, 0x00]);
    streams.push(connected);
    for stream in streams {
        for cut in 0..=stream.len() {
            let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
            for byte in &stream[..cut] {
                raw.send_bytes(BytesMut::from(&[*byte][..]));
                if raw
                    .events()
                    .iter()
                    .any(|e| matches!(e, ServerEvent::Connect(_)))
                {
                    let _ = raw.server.accept(AcceptOptions::default(), None);
                }
            }
            raw.server.handle_connection_lost();
            let _ = raw.server.take_state();
        }
    }
}

#[test]
fn stored_state_with_nonsense_is_sanitised_on_resume() {
    let mut state = SessionState::default();
    let mut good = publish("t", QoS::AtLeastOnce, 5);
    good.dup = true;
    state
        .outbound
        .push(protocol::session::OutboundMessage::Publish(good.clone()));
    state
        .outbound
        .push(protocol::session::OutboundMessage::Publish(good)); // same id twice
    state
        .outbound
        .push(protocol::session::OutboundMessage::Publish(publish(
            "t",
            QoS::AtMostOnce,
            1,
        )));
    let mut raw = RawClient::new(ServerOptions::default(), ProtocolVersion::V5);
    let mut connect = Connect::new(ProtocolVersion::V5, "raw");
    connect.clean_start = false;
    raw.send(&[Packet::Connect(Box::new(connect))]);
    raw.events();
    raw.server
        .accept(AcceptOptions::default(), Some(state))
        .expect("accept");
    let out = raw.transmitted();
    assert_eq!(out.len(), 2, "CONNACK and one PUBLISH: {out:?}");
    let Packet::ConnAck(connack) = &out[0] else {
        panic!()
    };
    assert!(connack.session_present);
    let Packet::Publish(resent) = &out[1] else {
        panic!()
    };
    assert!(resent.dup && resent.packet_id == Some(pid(5)));
}

/// A client session fed raw server packets.
fn raw_server(options: ClientOptions) -> ClientSession {
    let version = options.version;
    let mut client = ClientSession::new(options);
    client.connect(web_time::Instant::now()).expect("connect");
    let mut out = BytesMut::new();
    client.poll_transmit(web_time::Instant::now(), &mut out);
    let mut connack = encode_all(
        &[Packet::ConnAck(ConnAck::new(ReasonCode::Success))],
        version,
    );
    client.handle_bytes(&mut connack);
    assert!(client.is_connected());
    client
}

#[test]
fn the_client_disconnects_a_server_that_breaks_the_protocol() {
    let mut client = raw_server(ClientOptions::new("c"));
    // A SUBACK for a SUBSCRIBE never sent.
    let suback = protocol::SubAck {
        packet_id: pid(77),
        reason_codes: vec![ReasonCode::Success],
        properties: Default::default(),
    };
    let mut bytes = encode_all(&[Packet::SubAck(suback)], ProtocolVersion::V5);
    client.handle_bytes(&mut bytes);
    let mut out = BytesMut::new();
    client.poll_transmit(web_time::Instant::now(), &mut out);
    assert_eq!(
        decode_all(out, ProtocolVersion::V5),
        [disconnect(ReasonCode::ProtocolError)]
    );
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(ClientEvent::ConnectionLost(LostReason::ProtocolViolation(
            ProtocolViolation::UnknownPacketId { .. }
        )))
    ));
    assert!(!client.is_open());

    // An alias the client never allowed.
    let mut client = raw_server(ClientOptions::new("c"));
    let mut aliased = publish("t", QoS::AtMostOnce, 1);
    aliased.properties.topic_alias = NonZeroU16::new(1);
    let mut bytes = encode_all(&[Packet::Publish(aliased)], ProtocolVersion::V5);
    client.handle_bytes(&mut bytes);
    let mut out = BytesMut::new();
    client.poll_transmit(web_time::Instant::now(), &mut out);
    assert_eq!(
        decode_all(out, ProtocolVersion::V5),
        [disconnect(ReasonCode::TopicAliasInvalid)]
    );
}

#[test]
fn the_client_refuses_packets_only_clients_send_from_their_first_byte() {
    let subscribe = Packet::Subscribe(protocol::Subscribe {
        packet_id: pid(1),
        subscriptions: vec![protocol::Subscription {
            filter: protocol::TopicFilter::new("t").expect("filter"),
            options: protocol::SubscriptionOptions::new(QoS::AtMostOnce),
        }],
        properties: Default::default(),
    });
    let whole = encode_all(&[subscribe, Packet::PingReq], ProtocolVersion::V5);
    // The whole SUBSCRIBE, PINGREQ, and a CONNECT of which only the first byte came.
    let cases: [(&[u8], protocol::PacketType); 3] = [
        (&whole[..], protocol::PacketType::Subscribe),
        (&[0xC0, 0x00], protocol::PacketType::PingReq),
        (&[0x10], protocol::PacketType::Connect),
    ];
    for (bytes, packet_type) in cases {
        let mut client = raw_server(ClientOptions::new("c"));
        client.handle_bytes(&mut BytesMut::from(bytes));
        let mut out = BytesMut::new();
        client.poll_transmit(web_time::Instant::now(), &mut out);
        assert_eq!(
            decode_all(out, ProtocolVersion::V5),
            [disconnect(ReasonCode::ProtocolError)],
            "{packet_type}"
        );
        let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
        assert_eq!(
            events.last(),
            Some(&ClientEvent::ConnectionLost(LostReason::ProtocolViolation(
                ProtocolViolation::UnexpectedPacket(packet_type)
            ))),
        );
        assert!(!client.is_open());
    }
}

#[test]
fn the_client_enforces_its_receive_maximum() {
    let options = ClientOptions {
        receive_maximum: NonZeroU16::new(1).expect("1"),
        ..ClientOptions::new("c")
    };
    let mut client = raw_server(options);
    let mut bytes = encode_all(
        &[
            Packet::Publish(publish("t", QoS::ExactlyOnce, 1)),
            Packet::Publish(publish("t", QoS::ExactlyOnce, 2)),
        ],
        ProtocolVersion::V5,
    );
    client.handle_bytes(&mut bytes);
    let mut out = BytesMut::new();
    client.poll_transmit(web_time::Instant::now(), &mut out);
    let sent = decode_all(out, ProtocolVersion::V5);
    assert_eq!(
        sent.last(),
        Some(&disconnect(ReasonCode::ReceiveMaximumExceeded)),
        "{sent:?}"
    );
}
