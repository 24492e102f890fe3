//! Node heartbeats and dead nodes ([`Sessions::nodes`], the reaping in
//! `cluster/nodes.rs`) against a real 3-node NATS cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use broker_server::Release;
use broker_server::cluster::sessions::{Detach, SessionEvent, Sessions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::sessions::{PATIENCE, config, next_event, open, open_with, update, will};
use crate::nats::NatsCluster;

/// Waits until `sessions` sees exactly `expected` alive.
pub(super) async fn wait_alive(sessions: &Sessions, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let alive: BTreeSet<String> = sessions.nodes().into_iter().map(|n| n.name).collect();
        if alive == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} sees {alive:?}, expected {expected:?}",
            sessions.node()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node lists every node alive; a second broker with a name already alive is
/// refused with a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_list_every_node_and_a_duplicate_name_is_refused() {
    let cluster = NatsCluster::start().await;
    let (a, _a_events) = open(&config(&cluster, "hb", "a")).await;
    let (b, _b_events) = open(&config(&cluster, "hb", "b")).await;
    wait_alive(&a, &["a", "b"]).await;
    wait_alive(&b, &["a", "b"]).await;

    let twin = config(&cluster, "hb", "a");
    let client = super::sessions::connect(cluster.urls(), "twin").await;
    let (events, _received) = mpsc::channel(4);
    let err = Sessions::open(client, &twin, "a", events)
        .await
        .expect_err("a second node named a")
        .to_string();
    assert!(err.contains("cluster.node = \"a\""), "{err}");
    assert!(err.contains("every broker needs its own"), "{err}");
    // The refused twin did not disturb the real a.
    wait_alive(&b, &["a", "b"]).await;
}

/// A node stops heartbeating (its tasks end with its `Sessions`): exactly one of the
/// two survivors takes its sessions over, and each will comes out once: the immediate
/// one at once, the delayed ones when due, none twice, none whose client came back in
/// time; offline sessions without a will are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_reaped_once_and_its_wills_come_out_once() {
    let cluster = NatsCluster::start().await;
    let (a, mut a_events) = open(&config(&cluster, "reap", "a")).await;
    let (b, mut b_events) = open(&config(&cluster, "reap", "b")).await;
    let (c, _c_events) = open(&config(&cluster, "reap", "c")).await;
    c.claim("now", update(Some(will("wills/now", None))))
        .await
        .unwrap();
    c.claim("later", update(Some(will("wills/later", Some(1)))))
        .await
        .unwrap();
    // Delayed longer: one comes back in time, one does not.
    c.claim("back", update(Some(will("wills/back", Some(2)))))
        .await
        .unwrap();
    c.claim("gone", update(Some(will("wills/gone", Some(3)))))
        .await
        .unwrap();
    c.claim("quiet", update(None)).await.unwrap();
    c.claim("away", update(Some(will("wills/away", None))))
        .await
        .unwrap();
    let away = c.get("away").await.unwrap().unwrap();
    assert_eq!(
        c.release("away", away.epoch, Release::Detached, Detach::default())
            .await,
        Ok(true)
    );
    wait_alive(&a, &["a", "b", "c"]).await;
    wait_alive(&b, &["a", "b", "c"]).await;
    drop(c);

    // The first NodeDied comes from whichever survivor won.
    let first = async {
        tokio::select! {
            Some(event) = a_events.recv() => ("a", event),
            Some(event) = b_events.recv() => ("b", event),
        }
    };
    let (reaper, event) = tokio::time::timeout(PATIENCE, first)
        .await
        .expect("no NodeDied from either survivor");
    let SessionEvent::NodeDied { node, wills } = event else {
        panic!("expected NodeDied, got {event:?}");
    };
    assert_eq!(node, "c");
    assert_eq!(wills, vec![("now".to_string(), will("wills/now", None))]);
    let (survivor, mut reaper_rx, mut other_rx) = if reaper == "a" {
        (&a, a_events, b_events)
    } else {
        (&b, b_events, a_events)
    };

    // The client of a will delayed by 2 s comes back (on the other survivor) before
    // its delay is over: its will is never published.
    let elsewhere = if reaper == "a" { &b } else { &a };
    let previous = elsewhere
        .claim("back", update(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(previous.node, reaper);
    assert_eq!(
        previous.will,
        Some(will("wills/back", Some(2))),
        "still waiting"
    );

    // The delayed wills, later, from the same reaper, without their delay: 1 s, then
    // 3 s (the 2 s one, cancelled, would have come between them).
    for (client_id, topic) in [("later", "wills/later"), ("gone", "wills/gone")] {
        match next_event(&mut reaper_rx, "a delayed will").await {
            SessionEvent::NodeDied { node, wills } => {
                assert_eq!(node, "c");
                assert_eq!(wills, vec![(client_id.to_string(), will(topic, None))]);
            }
            other => panic!("expected the delayed will of {client_id}, got {other:?}"),
        }
    }
    // The other survivor lost the race at the same time as the reaper won it, seconds
    // before the last delayed will came: had it reaped too, its event would be here.
    assert!(
        other_rx.try_recv().is_err(),
        "the other survivor emitted an event too"
    );

    let taken = survivor.get("now").await.unwrap().expect("kept offline");
    assert_eq!(taken.node, reaper);
    assert!(!taken.connected);
    assert_eq!(taken.will, None);
    let quiet = survivor.get("quiet").await.unwrap().unwrap();
    assert_eq!((quiet.node.as_str(), quiet.connected), (reaper, false));
    let left = survivor.get("away").await.unwrap().unwrap();
    assert_eq!(
        left.node, "c",
        "an offline session without a will is not touched"
    );
    wait_alive(survivor, &["a", "b"]).await;

    // A will published by the reaper is no longer in the record.
    let previous = elsewhere
        .claim("later", update(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(previous.node, reaper);
    assert_eq!(previous.will, None, "published, so no longer waiting");
}

/// A node cut off from NATS for longer than `node_ttl_secs` is reaped by a survivor
/// (its connected client's will comes out); when it is back, it learns it lost its
/// sessions (TakenOver for each, from the survivor's takeover) and carries on as a new
/// run that the others see alive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_is_reaped_and_learns_it_when_back() {
    let mut cluster = NatsCluster::start().await;
    // c reaches NATS through one server only, a and b through the two others.
    let meta_leader = cluster.meta_leader().await;
    let lone = (0..3)
        .find(|&i| format!("n{}", i + 1) != meta_leader)
        .expect("a server that does not lead");
    let urls = cluster.urls();
    let others: Vec<String> = (0..3)
        .filter(|&i| i != lone)
        .map(|i| urls[i].clone())
        .collect();
    let on = |node: &str, urls: Vec<String>| {
        let mut cfg = config(&cluster, "back", node);
        cfg.nats.urls = urls;
        cfg
    };
    let (a, mut a_events) = open(&on("a", others.clone())).await;
    let (b, mut b_events) = open(&on("b", others)).await;
    // Without the servers it would learn of, and trying again quickly once its server
    // is back.
    let lone_client = async_nats::ConnectOptions::new()
        .name("test-c")
        .ignore_discovered_servers()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(urls[lone].clone())
        .await
        .expect("connect to one server");
    let (c, mut c_events) = open_with(&on("c", vec![urls[lone].clone()]), lone_client).await;
    c.claim("dev/c", update(Some(will("wills/c", None))))
        .await
        .unwrap();
    wait_alive(&a, &["a", "b", "c"]).await;
    wait_alive(&b, &["a", "b", "c"]).await;

    cluster.kill(lone);
    let first = async {
        tokio::select! {
            Some(event) = a_events.recv() => ("a", event),
            Some(event) = b_events.recv() => ("b", event),
        }
    };
    let (reaper, event) = tokio::time::timeout(PATIENCE, first)
        .await
        .expect("no NodeDied from either survivor");
    match event {
        SessionEvent::NodeDied { node, wills } => {
            assert_eq!(node, "c");
            assert_eq!(wills, vec![("dev/c".to_string(), will("wills/c", None))]);
        }
        other => panic!("expected NodeDied, got {other:?}"),
    }

    cluster.restart(lone).await;
    match next_event(&mut c_events, "TakenOver after coming back").await {
        SessionEvent::TakenOver { client_id, by } => {
            assert_eq!(client_id, "dev/c");
            assert_eq!(by, reaper);
        }
        other => panic!("expected TakenOver, got {other:?}"),
    }
    wait_alive(&a, &["a", "b", "c"]).await;
    let since = c.nodes().into_iter().find(|n| n.name == "c").unwrap().since;
    let seen = a.nodes().into_iter().find(|n| n.name == "c").unwrap().since;
    assert_eq!(seen, since, "the others see c's new run");
}

/// A node that crashed and starts again at once (its heartbeat key still fresh) waits
/// for the old key to age instead of refusing to start, then cleans up after its
/// previous run itself: with no other node around, nobody else would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_cleans_up_after_its_previous_run() {
    let cluster = NatsCluster::start().await;
    let cfg = config(&cluster, "again", "solo");
    let (first, _first_events) = open(&cfg).await;
    first
        .claim("dev/solo", update(Some(will("wills/solo", None))))
        .await
        .unwrap();
    let before = first.nodes()[0].since;
    drop(first);

    let (second, mut events) = open(&cfg).await;
    assert!(second.nodes()[0].since > before, "a new run");
    match next_event(&mut events, "NodeDied of the previous run").await {
        SessionEvent::NodeDied { node, wills } => {
            assert_eq!(node, "solo");
            assert_eq!(
                wills,
                vec![("dev/solo".to_string(), will("wills/solo", None))]
            );
        }
        other => panic!("expected NodeDied, got {other:?}"),
    }
    let record = second.get("dev/solo").await.unwrap().unwrap();
    assert!(!record.connected);
    assert_eq!(record.will, None);
}
