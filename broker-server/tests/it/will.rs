//! The will message (§3.1.2.5, §3.1.3.2): published when a connection ends other than
//! by a normal DISCONNECT (keep alive timeout, network loss, protocol error, takeover,
//! MQTT 5 DISCONNECT 0x04), not on a normal DISCONNECT, nor (3.x) on a takeover that
//! continues the session; the MQTT 5 Will Delay Interval; the will's QoS and retain
//! flag.

use crate::common;
use crate::peer;

use common::TestBroker;
use peer::*;
use protocol::{Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};

/// A client subscribed to `will/#` at QoS 2.
async fn watcher(broker: &TestBroker, version: ProtocolVersion) -> Peer {
    let (mut watcher, _) = Peer::connected(broker.addr, clean(version, "watcher")).await;
    watcher.subscribe(1, "will/#", QoS::ExactlyOnce).await;
    watcher
}

/// `connect` with the will `will/dying` = `gone` at QoS 1.
fn with_will(mut connect: Connect) -> Connect {
    connect.will = Some(will("will/dying", "gone", QoS::AtLeastOnce, false));
    connect
}

/// `connect` with a will delayed by `delay` seconds (MQTT 5).
fn with_delayed_will(connect: Connect, delay: u32) -> Connect {
    let mut connect = with_will(connect);
    if let Some(will) = &mut connect.will {
        will.properties.will_delay_interval = Some(delay);
    }
    connect
}

/// The will, which must be the one message `watcher` gets now.
async fn expect_will(watcher: &mut Peer) -> Publish {
    let got = watcher.receive_all().await;
    assert_eq!(got.len(), 1, "exactly the will: {got:?}");
    let will = got.into_iter().next().unwrap();
    assert_eq!((will.topic.as_ref(), text(&will)), ("will/dying", "gone"));
    will
}

async fn will_is_published_on_keep_alive_timeout(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let mut connect = with_will(clean(version, "dying"));
    connect.keep_alive = 10;
    let (_dying, _) = Peer::connected(broker.addr, connect).await;
    advance_secs(14).await;
    watcher.expect_idle().await;
    advance_secs(1).await;
    expect_will(&mut watcher).await;
    broker.stop().await;
}
each_version!(paused will_is_published_on_keep_alive_timeout);

async fn will_is_published_when_the_network_connection_is_lost(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let (dying, _) = Peer::connected(broker.addr, with_will(clean(version, "dying"))).await;
    drop(dying);
    expect_will(&mut watcher).await;
    // Also when the session outlives the connection.
    let connect = with_will(persistent(version, "dying", 600));
    let (dying, _) = Peer::connected(broker.addr, connect).await;
    drop(dying);
    expect_will(&mut watcher).await;
    broker.stop().await;
}
each_version!(will_is_published_when_the_network_connection_is_lost);

async fn will_is_published_after_a_protocol_error(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let (mut dying, _) = Peer::connected(broker.addr, with_will(clean(version, "dying"))).await;
    // Packet type 0 is reserved: a malformed packet.
    dying.send_bytes(&[0x00, 0x00]).await;
    let seen = dying.expect_closed().await;
    if version.is_v5() {
        match seen.as_slice() {
            [Packet::Disconnect(d)] => assert!(d.reason_code.is_error(), "{d:?}"),
            other => panic!("expected DISCONNECT with an error code, got {other:?}"),
        }
    } else {
        assert!(seen.is_empty(), "{seen:?}");
    }
    expect_will(&mut watcher).await;
    broker.stop().await;
}
each_version!(will_is_published_after_a_protocol_error);

async fn will_is_published_when_the_connection_is_taken_over(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let (mut dying, _) = Peer::connected(broker.addr, with_will(clean(version, "dying"))).await;
    let (_new, _) = Peer::connected(broker.addr, clean(version, "dying")).await;
    dying.expect_closed().await;
    expect_will(&mut watcher).await;
    broker.stop().await;
}
each_version!(will_is_published_when_the_connection_is_taken_over);

/// A takeover by a connection that continues the session (clean session / clean
/// start 0): MQTT 3.1.1 does not list a takeover among the will's triggers (§3.1.2.5)
/// and mosquitto does not publish the will then, so neither do we; in MQTT 5 the server
/// closes the old connection [MQTT-3.1.4-3] without a DISCONNECT 0x00 from the client,
/// so the will goes out (its delay, if any, is cut short by the resume [MQTT-3.1.3-9]:
/// see `v5_takeover_within_the_will_delay_does_not_publish_the_will`).
async fn a_takeover_continuing_the_session_publishes_the_will_only_in_v5(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let connect = with_will(persistent(version, "dying", 600));
    let (mut old, _) = Peer::connected(broker.addr, connect).await;
    let (new, present) = Peer::connected(broker.addr, persistent(version, "dying", 600)).await;
    assert!(present);
    old.expect_closed().await;
    if version.is_v5() {
        expect_will(&mut watcher).await;
    } else {
        watcher.expect_idle().await;
    }
    // Nor later, when the session ends normally.
    new.disconnect().await;
    let (fresh, _) = Peer::connected(broker.addr, clean(version, "dying")).await;
    fresh.disconnect().await;
    watcher.expect_idle().await;

    // A takeover that ends the session (clean start) publishes it in both versions.
    let connect = with_will(persistent(version, "dying", 600));
    let (mut old, _) = Peer::connected(broker.addr, connect).await;
    let (_new, present) = Peer::connected(broker.addr, clean(version, "dying")).await;
    assert!(!present);
    old.expect_closed().await;
    expect_will(&mut watcher).await;
    broker.stop().await;
}
each_version!(a_takeover_continuing_the_session_publishes_the_will_only_in_v5);

#[tokio::test]
async fn v5_disconnect_with_will_message_publishes_the_will() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (dying, _) =
        Peer::connected(broker.addr, with_will(clean(ProtocolVersion::V5, "dying"))).await;
    dying
        .disconnect_with(Disconnect::new(ReasonCode::DisconnectWithWillMessage))
        .await;
    expect_will(&mut watcher).await;
    broker.stop().await;
}

async fn normal_disconnect_discards_the_will(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let (dying, _) =
        Peer::connected(broker.addr, with_will(persistent(version, "dying", 600))).await;
    dying.disconnect().await;
    watcher.expect_idle().await;
    // Nor does it come later, when the session ends.
    let (dying, _) = Peer::connected(broker.addr, clean(version, "dying")).await;
    dying.disconnect().await;
    watcher.expect_idle().await;
    broker.stop().await;
}
each_version!(normal_disconnect_discards_the_will);

async fn will_qos_and_retain_are_honoured(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, version).await;
    let mut connect = clean(version, "dying");
    connect.will = Some(will("will/dying", "gone", QoS::AtLeastOnce, true));
    let (dying, _) = Peer::connected(broker.addr, connect).await;
    drop(dying);
    let live = expect_will(&mut watcher).await;
    assert_eq!(live.qos, QoS::AtLeastOnce, "the will's QoS");
    assert!(!live.retain, "forwarded live: RETAIN 0 [MQTT-3.3.1-9]");

    let (mut late, _) = Peer::connected(broker.addr, clean(version, "late")).await;
    late.subscribe(1, "will/#", QoS::ExactlyOnce).await;
    let retained = late.receive_all().await;
    assert_eq!(retained.len(), 1, "{retained:?}");
    assert_eq!(
        (text(&retained[0]), retained[0].qos, retained[0].retain),
        ("gone", QoS::AtLeastOnce, true),
        "the will was retained"
    );
    broker.stop().await;
}
each_version!(will_qos_and_retain_are_honoured);

/// Drops `dying`'s connection and waits until the broker has stored its session.
async fn lose(broker: &TestBroker, dying: Peer) {
    drop(dying);
    wait_until("connection lost", || {
        broker
            .broker()
            .session("dying")
            .is_some_and(|s| !s.is_online())
    })
    .await;
}

fn v5_persistent(expiry: u32) -> Connect {
    persistent(ProtocolVersion::V5, "dying", expiry)
}

#[tokio::test(start_paused = true)]
async fn v5_will_waits_out_its_will_delay_interval() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (dying, _) = Peer::connected(broker.addr, with_delayed_will(v5_persistent(600), 30)).await;
    lose(&broker, dying).await;
    watcher.expect_idle().await;
    advance_secs(29).await;
    watcher.expect_idle().await;
    advance_secs(1).await;
    expect_will(&mut watcher).await;
    assert!(
        broker.broker().session("dying").is_some(),
        "the session lives on"
    );
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_will_is_cancelled_when_the_session_resumes_within_the_delay() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (dying, _) = Peer::connected(broker.addr, with_delayed_will(v5_persistent(600), 30)).await;
    lose(&broker, dying).await;
    advance_secs(20).await;
    let (back, present) = Peer::connected(broker.addr, v5_persistent(600)).await;
    assert!(present);
    advance_secs(100).await;
    watcher.expect_idle().await;
    back.disconnect().await;
    advance_secs(100).await;
    watcher.expect_idle().await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_takeover_within_the_will_delay_does_not_publish_the_will() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (mut old, _) =
        Peer::connected(broker.addr, with_delayed_will(v5_persistent(600), 30)).await;
    let (new, present) = Peer::connected(broker.addr, v5_persistent(600)).await;
    assert!(present);
    old.expect_closed().await;
    advance_secs(100).await;
    watcher.expect_idle().await;
    new.disconnect().await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_will_is_published_when_a_clean_start_ends_the_session_within_the_delay() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (dying, _) = Peer::connected(broker.addr, with_delayed_will(v5_persistent(600), 30)).await;
    lose(&broker, dying).await;
    advance_secs(20).await;
    watcher.expect_idle().await;
    let (_fresh, present) = Peer::connected(broker.addr, clean(ProtocolVersion::V5, "dying")).await;
    assert!(!present);
    expect_will(&mut watcher).await;
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v5_will_is_published_when_the_session_expires_before_the_delay() {
    let broker = TestBroker::start().await;
    let mut watcher = watcher(&broker, ProtocolVersion::V5).await;
    let (dying, _) = Peer::connected(broker.addr, with_delayed_will(v5_persistent(10), 60)).await;
    lose(&broker, dying).await;
    advance_secs(9).await;
    watcher.expect_idle().await;
    advance_secs(1).await;
    expect_will(&mut watcher).await;
    wait_until("session ended", || {
        broker.broker().session("dying").is_none()
    })
    .await;
    broker.stop().await;
}
