//! A bridge in a cluster runs on one node at a time: two nodes configured with the same
//! bridge to one real mosquitto; one holds the bridge's lease and connects, the other
//! stands by; messages published on either node reach mosquitto once; when the holder
//! stops (cleanly, or killed with SIGKILL: then its lease expires), the other takes
//! over and what is published after reaches mosquitto.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use native_client::{ProtocolVersion, QoS, ReasonCode, Subscription};

use super::e2e::node_config;
use crate::bridge::{
    Mosquitto, client, figure, next, nothing_more, url_of, wait_state, with_bridge,
};
use crate::common::{KillOnDrop, PATIENCE, TestBroker};
use crate::nats::NatsCluster;

/// `(active, connected)` of bridge `up` on `node`, from its `/metrics`.
fn running(node: &TestBroker) -> (u64, u64) {
    (
        figure(node, "mqtt_bridge_active", "up"),
        figure(node, "mqtt_bridge_connected", "up"),
    )
}

/// Publishes numbered probes on `from` until one reaches `remote` (the holder's
/// outbox subscription has reached every node), then checks that none arrived twice.
async fn wait_forwarded(from: &native_client::Client, remote: &mut Subscription, tag: &str) {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = HashSet::new();
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "nothing from {tag} reaches mosquitto"
        );
        from.publish(
            format!("up/probe/{tag}"),
            format!("{tag}-{n}"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), remote.recv()).await
        {
            assert!(
                seen.insert(message.payload.clone()),
                "a probe arrived twice"
            );
            break;
        }
    }
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(700), remote.recv()).await
    {
        assert!(seen.insert(message.payload), "a probe arrived twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_runs_the_bridge_and_another_takes_over() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let remote = Mosquitto::start(dir.path(), "allow_anonymous true");
    let node = |name: &str| {
        let mut config = node_config(&nats, "bridged", name);
        with_bridge(&mut config, "up", remote.addr(), "", &["up/# out 1"]);
        config
    };
    let b1 = TestBroker::with_config(node("b1")).await;
    let b2 = TestBroker::with_config(node("b2")).await;
    let on_b1 = client(&url_of(&b1), "on-b1", ProtocolVersion::V5).await;
    let on_b2 = client(&url_of(&b2), "on-b2", ProtocolVersion::V5).await;
    let there = client(&remote.url(), "there", ProtocolVersion::V5).await;
    let mut remote_sub = there.subscribe("up/#", QoS::AtLeastOnce).await.unwrap();

    // One node takes the lease and connects; the other stands by.
    let deadline = Instant::now() + PATIENCE;
    let (holder, standby, on_holder, on_standby) = loop {
        assert!(Instant::now() < deadline, "no node runs the bridge");
        match (running(&b1), running(&b2)) {
            ((1, 1), (0, 0)) => break (b1, b2, on_b1, on_b2),
            ((0, 0), (1, 1)) => break (b2, b1, on_b2, on_b1),
            ((1, _), (1, _)) => panic!("both nodes run the bridge"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // A standby keeps trying every heartbeat; it still stands by after a few.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((running(&holder), running(&standby)), ((1, 1), (0, 0)));

    // Messages published on either node reach mosquitto once (two running bridges
    // would deliver each twice).
    wait_forwarded(&on_standby, &mut remote_sub, "standby").await;
    on_holder
        .publish("up/a", "from the holder", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut remote_sub).await.payload,
        "from the holder".as_bytes()
    );
    nothing_more(&mut remote_sub).await;

    // The holder stops (and gives its lease up): the standby takes over.
    on_holder.disconnect(ReasonCode::Success).await.unwrap();
    holder.stop().await;
    wait_state(&on_standby, "up", "connected").await;
    assert_eq!(running(&standby), (1, 1));
    on_standby
        .publish("up/b", "after the takeover", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut remote_sub).await.payload,
        "after the takeover".as_bytes()
    );
    nothing_more(&mut remote_sub).await;

    on_standby.disconnect(ReasonCode::Success).await.unwrap();
    there.disconnect(ReasonCode::Success).await.unwrap();
    standby.stop().await;
}

/// The `broker-server` binary as node `node` of the cluster on `nats`, with the bridge
/// `up` (`up/# out 1`) to `remote`; killed with SIGKILL when dropped.
async fn spawn_node(
    nats: &NatsCluster,
    node: &str,
    remote: SocketAddr,
    dir: &Path,
) -> (KillOnDrop, SocketAddr) {
    let bridge = format!(
        "bridges=[{{name=\"up\", address=[\"{remote}\"], restart_initial_ms=100, \
         restart_max_ms=300, topics=[\"up/# out 1\"]}}]"
    );
    super::failover::spawn_node(nats, "bridgekill", node, dir, &[&bridge]).await
}

/// Waits until `$SYS/broker/bridges/up/role` on `node` says `role`.
async fn wait_role(node: &native_client::Client, role: &str) {
    let mut roles = node
        .subscribe("$SYS/broker/bridges/up/role", QoS::AtMostOnce)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, roles.recv())
            .await
            .unwrap_or_else(|_| panic!("never {role}"))
            .unwrap();
        if message.payload == role.as_bytes() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_of_a_killed_holder_expires_and_another_node_takes_over() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let remote = Mosquitto::start(dir.path(), "allow_anonymous true");
    let there = client(&remote.url(), "there", ProtocolVersion::V5).await;
    let mut remote_sub = there.subscribe("up/#", QoS::AtLeastOnce).await.unwrap();
    let (first, first_addr) = spawn_node(&nats, "k1", remote.addr(), dir.path()).await;
    let on_first = client(
        &format!("mqtt://{first_addr}"),
        "on-k1",
        ProtocolVersion::V5,
    )
    .await;
    wait_role(&on_first, "holder").await;
    let (_second, second_addr) = spawn_node(&nats, "k2", remote.addr(), dir.path()).await;
    let on_second = client(
        &format!("mqtt://{second_addr}"),
        "on-k2",
        ProtocolVersion::V5,
    )
    .await;
    wait_role(&on_second, "standby").await;

    drop(first); // SIGKILL: the lease is not given up, it expires.
    wait_role(&on_second, "holder").await;
    wait_state(&on_second, "up", "connected").await;
    on_second
        .publish("up/after", "after the kill", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut remote_sub).await.payload,
        "after the kill".as_bytes()
    );
    nothing_more(&mut remote_sub).await;
    on_second.disconnect(ReasonCode::Success).await.unwrap();
    there.disconnect(ReasonCode::Success).await.unwrap();
    drop(on_first);
}
