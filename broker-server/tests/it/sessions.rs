//! Sessions across connections (§4.1, §3.1.2.4, §3.1.3.1, §3.1.4): Clean Session /
//! Clean Start, Session Present, the MQTT 5 Session Expiry Interval (in CONNECT and in
//! DISCONNECT), session takeover, assigned client identifiers, and MQTT 3.1.

use crate::common;
use crate::peer;

use common::TestBroker;
use peer::*;
use protocol::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};

/// Whether a QoS 1 message published on `topic` now reaches `subscriber`: it is published
/// by a separate client, then `subscriber` either gets it or is idle.
async fn reaches(broker: &TestBroker, subscriber: &mut Peer, topic: &str) -> bool {
    let (mut publisher, _) =
        Peer::connected(broker.addr, clean(ProtocolVersion::V5, "probe-publisher")).await;
    publisher
        .publish(message(topic, "probe", QoS::AtLeastOnce, Some(1)))
        .await;
    publisher.disconnect().await;
    let got = subscriber.drain().await;
    for p in &got {
        assert_eq!((p.topic.as_ref(), text(p)), (topic, "probe"));
        subscriber.acknowledge(p).await;
    }
    assert!(got.len() <= 1, "one copy: {got:?}");
    got.len() == 1
}

async fn persistent_session_is_resumed_with_its_subscriptions(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut c, present) = Peer::connected(broker.addr, persistent(version, "c", 600)).await;
    assert!(!present, "no session existed yet");
    c.subscribe(1, "s/t", QoS::AtLeastOnce).await;
    c.disconnect().await;

    let (mut c, present) = Peer::connected(broker.addr, persistent(version, "c", 600)).await;
    assert!(present, "Session Present on resume [MQTT-3.2.2-3]");
    assert!(reaches(&broker, &mut c, "s/t").await, "subscription kept");
    c.disconnect().await;
    broker.stop().await;
}
each_version!(persistent_session_is_resumed_with_its_subscriptions);

async fn clean_start_discards_the_stored_session(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut c, _) = Peer::connected(broker.addr, persistent(version, "c", 600)).await;
    c.subscribe(1, "s/t", QoS::AtLeastOnce).await;
    c.disconnect().await;

    let (mut c, present) = Peer::connected(broker.addr, clean(version, "c")).await;
    assert!(!present, "Clean Start: Session Present 0 [MQTT-3.2.2-2]");
    assert!(
        !reaches(&broker, &mut c, "s/t").await,
        "old subscription gone"
    );
    c.disconnect().await;

    // The clean session itself ended with its connection.
    let (c, present) = Peer::connected(broker.addr, persistent(version, "c", 600)).await;
    assert!(!present, "a clean session does not outlive its connection");
    c.disconnect().await;
    broker.stop().await;
}
each_version!(clean_start_discards_the_stored_session);

#[tokio::test]
async fn v5_session_expiry_zero_ends_the_session_at_disconnect() {
    let broker = TestBroker::start().await;
    for expiry in [None, Some(0)] {
        let mut connect = persistent(ProtocolVersion::V5, "c", 0);
        connect.properties.session_expiry_interval = expiry;
        let (mut c, present) = Peer::connected(broker.addr, connect).await;
        assert!(!present);
        c.subscribe(1, "s/t", QoS::AtLeastOnce).await;
        c.disconnect().await;
        assert!(broker.broker().session("c").is_none(), "session ended");

        let (mut c, present) =
            Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 600)).await;
        assert!(
            !present,
            "expiry {expiry:?}: the session ended at disconnect"
        );
        assert!(!reaches(&broker, &mut c, "s/t").await);
        c.disconnect_with(session_expiry(0)).await;
    }
    broker.stop().await;
}

/// A normal DISCONNECT that sets the Session Expiry Interval.
fn session_expiry(secs: u32) -> Disconnect {
    let mut disconnect = Disconnect::new(ReasonCode::Success);
    disconnect.properties.session_expiry_interval = Some(secs);
    disconnect
}

#[tokio::test(start_paused = true)]
async fn v5_session_survives_its_expiry_interval_and_then_ends() {
    let broker = TestBroker::start().await;
    let (mut c, _) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 30)).await;
    c.subscribe(1, "s/t", QoS::AtLeastOnce).await;
    c.disconnect().await;

    advance_secs(29).await;
    let (mut c, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 30)).await;
    assert!(present, "29 s into a 30 s expiry the session is there");
    assert!(reaches(&broker, &mut c, "s/t").await);
    c.disconnect().await;

    // The interval counts again from this disconnect.
    advance_secs(29).await;
    assert!(
        broker.broker().session("c").is_some(),
        "not expired after 29 s"
    );
    advance_secs(1).await;
    wait_until("session expired", || broker.broker().session("c").is_none()).await;
    let (mut c, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 30)).await;
    assert!(!present, "expired after 30 s");
    assert!(
        !reaches(&broker, &mut c, "s/t").await,
        "subscriptions went with it"
    );
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_session_expiry_of_u32_max_never_expires() {
    let broker = TestBroker::start().await;
    let (c, _) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", u32::MAX)).await;
    c.disconnect().await;
    // Longer than u32::MAX seconds is more than a century: a few years stand in for it.
    for _ in 0..5 {
        advance_secs(365 * 24 * 3600).await;
    }
    let (c, present) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 0)).await;
    assert!(
        present,
        "0xFFFFFFFF: the session does not expire (§3.1.2.11.2)"
    );
    c.disconnect().await;
    broker.stop().await;
}

#[tokio::test]
async fn v5_disconnect_with_expiry_zero_ends_a_persistent_session() {
    let broker = TestBroker::start().await;
    let (mut c, _) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 600)).await;
    c.subscribe(1, "s/t", QoS::AtLeastOnce).await;
    c.disconnect_with(session_expiry(0)).await;
    let (c, present) =
        Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 600)).await;
    assert!(!present, "DISCONNECT set the expiry to 0");
    c.disconnect().await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_disconnect_can_lengthen_the_session_expiry() {
    let broker = TestBroker::start().await;
    let (c, _) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 10)).await;
    c.disconnect_with(session_expiry(100)).await;
    advance_secs(99).await;
    let (c, present) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 10)).await;
    assert!(
        present,
        "the DISCONNECT's 100 s replaced the CONNECT's 10 s"
    );
    c.disconnect().await;
    advance_secs(10).await;
    wait_until("session expired", || broker.broker().session("c").is_none()).await;
    broker.stop().await;
}

#[tokio::test]
async fn v5_disconnect_cannot_give_a_zero_expiry_session_an_expiry() {
    let broker = TestBroker::start().await;
    let (mut c, _) = Peer::connected(broker.addr, persistent(ProtocolVersion::V5, "c", 0)).await;
    c.send(&Packet::Disconnect(session_expiry(60))).await;
    // [MQTT-3.14.2-2]: a Protocol Error; the server answers with DISCONNECT 0x82.
    match c.expect_closed().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT 0x82 then close, got {other:?}"),
    }
    assert!(broker.broker().session("c").is_none(), "session ended");
    broker.stop().await;
}

async fn second_connection_takes_the_session_over(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut old, _) = Peer::connected(broker.addr, persistent(version, "dup", 600)).await;
    old.subscribe(1, "s/t", QoS::AtLeastOnce).await;

    let (mut new, present) = Peer::connected(broker.addr, persistent(version, "dup", 600)).await;
    assert!(present, "the new connection continues the session");
    let seen = old.expect_closed().await;
    if version.is_v5() {
        match seen.as_slice() {
            [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
            other => panic!("expected DISCONNECT 0x8E then close, got {other:?}"),
        }
    } else {
        assert!(seen.is_empty(), "3.x has no server DISCONNECT: {seen:?}");
    }
    assert!(
        reaches(&broker, &mut new, "s/t").await,
        "subscription carried over"
    );
    new.disconnect().await;
    broker.stop().await;
}
each_version!(second_connection_takes_the_session_over);

/// The old connection's session had no expiry (clean session / expiry 0), so it ended
/// with the takeover: the new connection must not be handed it (§3.1.4 non-normative
/// note, §4.1).
async fn taking_over_a_clean_session_does_not_resume_it(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let (mut old, _) = Peer::connected(broker.addr, clean(version, "dup")).await;
    old.subscribe(1, "s/t", QoS::AtLeastOnce).await;

    let (mut new, present) = Peer::connected(broker.addr, persistent(version, "dup", 600)).await;
    old.expect_closed().await;
    assert!(!present, "the clean session ended with the old connection");
    assert!(
        !reaches(&broker, &mut new, "s/t").await,
        "its subscription ended too"
    );
    new.disconnect().await;
    broker.stop().await;
}
each_version!(taking_over_a_clean_session_does_not_resume_it);

#[tokio::test]
async fn v5_empty_client_id_gets_an_assigned_identifier() {
    let broker = TestBroker::start().await;
    let mut ids = Vec::new();
    for clean_start in [true, false] {
        let mut connect = persistent(ProtocolVersion::V5, "", 600);
        connect.clean_start = clean_start;
        let (peer, connack) = Peer::connect(broker.addr, connect).await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
        let id = connack
            .properties
            .assigned_client_identifier
            .clone()
            .expect("Assigned Client Identifier [MQTT-3.2.2-16]");
        assert!(!id.is_empty());
        assert!(broker.broker().session(&id).is_some(), "session under {id}");
        ids.push((peer, id));
    }
    assert_ne!(ids[0].1, ids[1].1, "each client gets its own identifier");
    for (mut peer, _) in ids {
        peer.ping().await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v311_empty_client_id_with_clean_session_is_accepted() {
    let broker = TestBroker::start().await;
    let (mut first, present) =
        Peer::connected(broker.addr, clean(ProtocolVersion::V3_1_1, "")).await;
    assert!(!present);
    let (mut second, _) = Peer::connected(broker.addr, clean(ProtocolVersion::V3_1_1, "")).await;
    // Distinct identifiers: neither took the other over.
    first.ping().await;
    second.ping().await;
    assert_eq!(broker.broker().session_count(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn v311_empty_client_id_without_clean_session_is_refused_with_return_code_2() {
    let broker = TestBroker::start().await;
    let mut peer = Peer::open(broker.addr, ProtocolVersion::V3_1_1).await;
    let connect = persistent(ProtocolVersion::V3_1_1, "", 0);
    peer.send(&Packet::Connect(Box::new(connect))).await;
    // CONNACK, Session Present 0, return code 2 "identifier rejected" [MQTT-3.1.3-8],
    // then the connection is closed [MQTT-3.2.2-5].
    assert_eq!(peer.raw_until_closed().await, [0x20, 0x02, 0x00, 0x02]);
    assert_eq!(broker.broker().session_count(), 0);
    broker.stop().await;
}

/// CONNECT of MQTT 3.1: protocol name `MQIsdp`, level 3, clean session, keep alive 0,
/// client id `old`.
const MQTT31_CONNECT: &[u8] = &[
    0x10, 17, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 0, 0, 3, b'o', b'l', b'd',
];

#[tokio::test]
async fn mqtt_3_1_connect_is_accepted() {
    let broker = TestBroker::start().await;
    let mut old = Peer::open(broker.addr, ProtocolVersion::V3_1).await;
    old.send_bytes(MQTT31_CONNECT).await;
    match old.recv().await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            assert!(!ack.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // A working connection: subscribe and receive.
    old.subscribe(1, "s/31", QoS::AtLeastOnce).await;
    assert!(reaches(&broker, &mut old, "s/31").await);
    assert!(broker.broker().session("old").is_some());
    old.disconnect().await;
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_3_1_empty_client_id_is_refused() {
    let broker = TestBroker::start().await;
    let (mut peer, connack) = Peer::connect(broker.addr, clean(ProtocolVersion::V3_1, "")).await;
    // 3.1 requires 1 to 23 characters: return code 2.
    assert_eq!(connack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(peer.expect_closed().await.is_empty());
    broker.stop().await;
}
