//! `$SYS` topics every `sys.interval_secs` (paused time): the broker's version, uptime,
//! connected clients, message counts and load averages; and `$SYS` topics are only for
//! filters that name them (`#` does not match them [MQTT-4.7.2-1]).

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use protocol::{Connect, ProtocolVersion, QoS};

async fn sys_broker(interval_secs: u64) -> TestBroker {
    let mut config = test_config();
    config.sys.interval_secs = interval_secs;
    TestBroker::with_config(config).await
}

/// A client without keep alive (the tests advance the clock).
async fn client(broker: &TestBroker, version: ProtocolVersion, id: &str) -> Peer {
    let mut client = broker.raw(version).await;
    let mut connect = Connect::new(version, id);
    connect.keep_alive = 0;
    client.handshake(connect).await;
    client
}

/// Advances the clock by one interval and collects the `$SYS` messages published then
/// (not retained copies), until every topic in `wanted` is in.
async fn next_snapshot(sub: &mut Peer, wanted: &[&str]) -> HashMap<String, String> {
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut values = HashMap::new();
    for _ in 0..1000 {
        if wanted.iter().all(|t| values.contains_key(*t)) {
            return values;
        }
        let p = sub.recv_publish().await;
        assert!(p.topic.starts_with("$SYS/"), "{p:?}");
        if !p.retain {
            let value = String::from_utf8(p.payload.to_vec()).expect("text values");
            values.insert(p.topic.to_string(), value);
        }
    }
    panic!("missing some of {wanted:?} in {values:?}");
}

const VERSION: &str = "$SYS/broker/version";
const UPTIME: &str = "$SYS/broker/uptime";
const CONNECTED: &str = "$SYS/broker/clients/connected";
const RECEIVED: &str = "$SYS/broker/messages/received";
const SENT: &str = "$SYS/broker/messages/sent";
const LOADS: [&str; 4] = [
    "$SYS/broker/load/messages/received/1min",
    "$SYS/broker/load/messages/sent/5min",
    "$SYS/broker/load/bytes/received/15min",
    "$SYS/broker/load/connections/1min",
];

#[tokio::test(start_paused = true)]
async fn sys_topics_report_the_broker_every_interval() {
    let broker = sys_broker(1).await;
    let mut sub = client(&broker, ProtocolVersion::V5, "sys-watcher").await;
    sub.subscribe_many(1, &[("$SYS/#", QoS::AtMostOnce)]).await;
    let mut publisher = client(&broker, ProtocolVersion::V3_1_1, "pub").await;
    let other = client(&broker, ProtocolVersion::V5, "other").await;
    for n in 0..2 {
        publisher
            .send_publish(publish("app/data", &n.to_string(), QoS::AtMostOnce, None))
            .await;
    }

    let mut wanted = vec![VERSION, UPTIME, CONNECTED, RECEIVED, SENT];
    wanted.extend(LOADS);
    let values = next_snapshot(&mut sub, &wanted).await;
    assert!(
        values[VERSION].starts_with("broker-server "),
        "{}",
        values[VERSION]
    );
    let uptime: u64 = values[UPTIME]
        .strip_suffix(" seconds")
        .expect("`<n> seconds`")
        .parse()
        .unwrap();
    assert!(uptime >= 1, "{uptime}");
    assert_eq!(values[CONNECTED], "3");
    assert_eq!(
        values[RECEIVED], "2",
        "the two PUBLISH packets from clients"
    );
    assert!(values[SENT].parse::<u64>().unwrap() > 0);
    for load in LOADS {
        let average: f64 = values[load]
            .parse()
            .unwrap_or_else(|_| panic!("{load}: {}", values[load]));
        assert!(average >= 0.0);
    }
    let received_load: f64 = values[LOADS[0]].parse().unwrap();
    assert!(received_load > 0.0, "two messages in the last interval");

    // A client leaves: the next reports say so.
    drop(other);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while broker.broker().metrics.clients_connected.get() != 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let values = next_snapshot(&mut sub, &[CONNECTED, UPTIME]).await;
    assert_eq!(values[CONNECTED], "2");
    let later: u64 = values[UPTIME]
        .strip_suffix(" seconds")
        .unwrap()
        .parse()
        .unwrap();
    assert!(later > uptime, "{later} > {uptime}");
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_late_subscriber_gets_the_last_values_retained() {
    let broker = sys_broker(1).await;
    let _warm = client(&broker, ProtocolVersion::V5, "first").await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut sub = client(&broker, ProtocolVersion::V3_1_1, "late").await;
    sub.subscribe_many(1, &[("$SYS/broker/version", QoS::AtMostOnce)])
        .await;
    let got = sub.recv_publish().await;
    assert!(got.retain);
    assert!(got.payload.starts_with(b"broker-server "));
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn leading_wildcards_do_not_deliver_sys_topics() {
    let broker = sys_broker(1).await;
    let mut everything = client(&broker, ProtocolVersion::V5, "everything").await;
    everything
        .subscribe_many(
            1,
            &[("#", QoS::AtMostOnce), ("+/broker/#", QoS::AtMostOnce)],
        )
        .await;
    let mut sys = client(&broker, ProtocolVersion::V5, "sys").await;
    sys.subscribe_many(1, &[("$SYS/broker/uptime", QoS::AtMostOnce)])
        .await;
    for _ in 0..3 {
        // `sys` seeing a fresh report proves one was published.
        tokio::time::advance(Duration::from_secs(1)).await;
        loop {
            let p = sys.recv_publish().await;
            if !p.retain {
                break;
            }
        }
    }
    let mut publisher = client(&broker, ProtocolVersion::V5, "pub").await;
    publisher
        .send_publish(publish("app/marker", "m", QoS::AtMostOnce, None))
        .await;
    let got = everything.recv_publish().await;
    assert_eq!(&got.topic[..], "app/marker", "no $SYS message before it");
    broker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn no_sys_topics_when_the_interval_is_zero() {
    let broker = sys_broker(0).await;
    let mut sub = client(&broker, ProtocolVersion::V5, "sub").await;
    sub.subscribe_many(
        1,
        &[("$SYS/#", QoS::AtMostOnce), ("app/#", QoS::AtMostOnce)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(30)).await;
    let mut publisher = client(&broker, ProtocolVersion::V5, "pub").await;
    publisher
        .send_publish(publish("app/marker", "m", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&sub.recv_publish().await.topic[..], "app/marker");
    broker.stop().await;
}
