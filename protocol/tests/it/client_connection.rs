//! The clients' shared core, `protocol::client::Connection`, against a server session
//! on the simulated link and clock of `pair/mod.rs`. Both clients (`native-client`,
//! `web-client`) run this state machine; what is tested here is tested once for both.
//! Each test that covers a behaviour the two clients used to disagree on says which
//! one it keeps.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::pair::{ClientPair, Slot};
use bytes::Bytes;
use protocol::client::{
    Command, ConnectOptions, DisconnectReason, DropPolicy, DropSource, Error, Event, Outgoing,
    PublishOptions, ReconnectOptions, correlation_data,
};
use protocol::session::ServerOptions;
use protocol::{ProtocolVersion, Publish, PublishProperties, QoS, ReasonCode};

fn options() -> ConnectOptions<()> {
    ConnectOptions::new("mqtt://pair").client_id("c1")
}

fn connected(options: ConnectOptions<()>) -> ClientPair {
    let pair = ClientPair::connected(options, ServerOptions::default(), 7);
    assert_eq!(*pair.ready.borrow(), Some(Ok(())), "{:?}", pair.events);
    pair
}

/// A message from the broker with `properties`.
fn message(topic: &str, payload: &'static str, properties: PublishProperties) -> Publish {
    let mut publish = Publish::new(topic.to_owned(), payload);
    publish.properties = properties.into();
    publish
}

fn reconnecting_delays(events: &[Event]) -> Vec<(u32, Duration)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
            _ => None,
        })
        .collect()
}

/// Correlation, the drift fixed: `web-client` matched a response against the topic of
/// its request, which may name its own Response Topic; `native-client` replaced that
/// topic with the client's and compared with it, so such a request never got its
/// answer. The core keeps the request's own topic.
#[test]
fn a_response_on_the_requests_own_topic_answers_it_and_no_other_topic_does() {
    let mut pair = connected(options());
    let own_topic = PublishProperties {
        response_topic: Some("replies/dev-1".into()),
        ..PublishProperties::default()
    };
    let request_options = PublishOptions::new(QoS::AtLeastOnce).properties(own_topic);
    let outgoing =
        Outgoing::request(ProtocolVersion::V5, "svc/dev-1/do", "go", request_options).unwrap();
    let correlation = correlation_data(42);
    let reply: Slot<_> = Slot::default();
    pair.conn.handle_command(Command::Request {
        outgoing,
        correlation: correlation.clone(),
        reply: reply.clone(),
    });
    pair.drive();

    assert!(
        pair.broker
            .subscriptions
            .iter()
            .any(|(filter, _)| filter.as_str() == "replies/dev-1"),
        "the client subscribes to the response topic it asks on: {:?}",
        pair.broker.subscriptions
    );
    let sent = pair.broker.received.last().expect("the request went out");
    let properties = sent.properties.clone().into_inner();
    assert_eq!(properties.response_topic.as_deref(), Some("replies/dev-1"));
    assert_eq!(properties.correlation_data.as_ref(), Some(&correlation));

    let with_correlation = || PublishProperties {
        correlation_data: Some(correlation.clone()),
        ..PublishProperties::default()
    };
    pair.broker_sends(message("res/c1", "elsewhere", with_correlation()));
    assert!(
        reply.borrow().is_none(),
        "the client's own response topic is not this request's"
    );
    pair.broker_sends(message("replies/dev-1", "done", with_correlation()));
    let answer = reply
        .borrow_mut()
        .take()
        .expect("answered")
        .expect("a response");
    assert_eq!(answer.payload_str(), Some("done"));
}

/// Unknown Subscription Identifiers, the drift fixed: `native-client` matched the
/// topic of a message whose identifiers name no filter it holds, `web-client` routed
/// it nowhere. A broker that sends one copy per matching subscription (§3.3.4) sends
/// the overlapping filter its own copy, so matching the topic again hands the reader a
/// duplicate: the core routes such a message nowhere.
#[test]
fn a_message_naming_only_a_dropped_filter_is_not_a_second_copy_for_another() {
    let mut pair = connected(options());
    let (_, wide, granted) = pair.subscribe("t/#", QoS::AtMostOnce);
    assert_eq!(*granted.borrow(), Some(Ok(QoS::AtMostOnce)));
    let (narrow, narrow_inbox, _) = pair.subscribe("t/a", QoS::AtMostOnce);
    pair.conn
        .handle_command(Command::Unsubscribe { local: narrow });
    pair.drive();

    // Identifiers are handed out in order: 1 for `t/#`, 2 for `t/a`.
    let ids = |id: u32| PublishProperties {
        subscription_identifiers: vec![NonZeroU32::new(id).unwrap()],
        ..PublishProperties::default()
    };
    pair.broker_sends(message("t/a", "for t/#", ids(1)));
    pair.broker_sends(message("t/a", "for the dropped t/a", ids(2)));

    let received: Vec<_> = wide.borrow().iter().map(|m| m.payload.clone()).collect();
    assert_eq!(received, [Bytes::from("for t/#")]);
    assert!(narrow_inbox.borrow().is_empty());
}

/// A refused resubscription, the drift fixed: after a reconnect to a broker that lost
/// the session the client subscribes again by itself; when the broker refuses,
/// `native-client` logged it and `web-client` said nothing. The core reports it to the
/// application as an event.
#[test]
fn a_filter_refused_on_resubscription_is_reported() {
    let mut pair = connected(options());
    let (_, _, granted) = pair.subscribe("alerts/#", QoS::AtLeastOnce);
    assert_eq!(*granted.borrow(), Some(Ok(QoS::AtLeastOnce)));

    pair.broker.refused_filters.push("alerts/#".into());
    pair.cut();
    pair.advance(Duration::from_secs(1));

    assert!(pair.conn.is_connected(), "{:?}", pair.events);
    assert!(
        pair.events.contains(&Event::SubscriptionRefused {
            filter: "alerts/#".into(),
            reason_code: ReasonCode::NotAuthorized,
        }),
        "{:?}",
        pair.events
    );
}

/// Reconnect backoff: doubling per failed attempt, jitter drawn from the seed (so the
/// same seed gives the same delays), reset by a CONNACK.
#[test]
fn reconnects_back_off_with_seeded_jitter_until_connack_resets_them() {
    let run = || {
        let reconnect =
            ReconnectOptions::backoff(Duration::from_millis(100), Duration::from_secs(1));
        let mut pair = connected(options().reconnect(reconnect));
        pair.refuse_open = true;
        pair.cut();
        assert!(matches!(
            &pair.events[1],
            Event::Disconnected { reason: DisconnectReason::Transport(text), will_reconnect: true }
                if text == "cut"
        ));
        for _ in 0..2 {
            let (_, delay) = *reconnecting_delays(&pair.events).last().unwrap();
            pair.advance(delay);
        }
        pair.refuse_open = false;
        let (_, delay) = *reconnecting_delays(&pair.events).last().unwrap();
        pair.advance(delay);
        assert!(pair.conn.is_connected(), "{:?}", pair.events);
        pair.cut();
        (pair.opens, reconnecting_delays(&pair.events))
    };
    let (opens, delays) = run();
    assert_eq!(opens, 4, "the first connection and three attempts");
    let attempts: Vec<u32> = delays.iter().map(|(attempt, _)| *attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 1], "CONNACK resets the count");
    for (attempt, delay) in &delays {
        let base = Duration::from_millis(100) * (1 << (attempt - 1));
        assert!(*delay <= base && *delay >= base / 2, "{attempt}: {delay:?}");
    }
    assert_eq!(run().1, delays, "the same seed gives the same jitter");
}

/// The offline queue: publications made while disconnected wait, the drop policy
/// makes room and reports it, and the queue drains at the next CONNACK.
#[test]
fn offline_publications_wait_for_the_next_connection_within_the_queue() {
    let mut pair = connected(options().offline_queue(1, DropPolicy::DropOldest));
    pair.refuse_open = true;
    pair.cut();
    let first = pair.publish("t", "1", QoS::AtLeastOnce);
    let second = pair.publish("t", "2", QoS::AtLeastOnce);
    assert_eq!(*first.borrow(), Some(Err(Error::Dropped)));
    assert!(second.borrow().is_none());
    assert!(pair.events.contains(&Event::MessagesDropped {
        count: 1,
        source: DropSource::OfflineQueue,
    }));

    pair.refuse_open = false;
    pair.advance(Duration::from_secs(1));
    let outcome = second
        .borrow_mut()
        .take()
        .expect("answered")
        .expect("published");
    assert!(outcome.packet_id.is_some());
    let payloads: Vec<_> = pair
        .broker
        .received
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    assert_eq!(payloads, [Bytes::from("2")]);
}

/// QoS 0 is done once its bytes are written; at the end every waiter hears so.
#[test]
fn qos0_resolves_when_written_and_disconnect_ends_everything() {
    let mut pair = connected(options());
    let sent = pair.publish("t", "x", QoS::AtMostOnce);
    assert_eq!(
        sent.borrow_mut().take().unwrap().unwrap().reason_code,
        ReasonCode::Success
    );
    let (_, _, _) = pair.subscribe("t", QoS::AtMostOnce);
    let done: Slot<()> = Slot::default();
    pair.conn.handle_command(Command::Disconnect {
        reason: ReasonCode::Success,
        done: done.clone(),
    });
    pair.drive();
    assert!(pair.conn.is_finished());
    assert_eq!(*done.borrow(), Some(Ok(())));
    let late = pair.publish("t", "late", QoS::AtLeastOnce);
    assert_eq!(*late.borrow(), Some(Err(Error::Closed)));
    assert!(matches!(
        pair.events.last(),
        Some(Event::Disconnected {
            reason: DisconnectReason::Local,
            will_reconnect: false
        })
    ));
}
