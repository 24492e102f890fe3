//! Bridges: this broker as an MQTT client of other brokers, one task per
//! `[[bridges]]` entry ([`crate::config::BridgeConfig`]).
//!
//! ```text
//!  local publishers ─► Broker::publish ─► Router ─► outbox (an internal Session) ─┐
//!                                                                                  ▼
//!                                     bridge task: native_client::Client ◄──► remote broker
//!                                                                                  │
//!  local subscribers ◄── Router ◄── Broker::publish (renamed, origin = outbox) ◄──┘
//! ```
//!
//! - **Out.** Each `out` / `both` rule subscribes the bridge's outbox, a [`Session`]
//!   no client can attach to, to the rule's local filter (No Local, Retain As
//!   Published, at most the rule's QoS). The router fills it like any subscriber's
//!   mailbox, bounded by `outbox_max_messages` / `outbox_max_bytes` and the drop
//!   policy. The task takes at most `max_inflight` deliveries at a time, publishes
//!   them renamed, and a delivery leaves the outbox for good only once the remote
//!   acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP, QoS 0: written); when the
//!   connection is lost the unacknowledged ones go back to the front, in order.
//! - **In.** Each `in` / `both` rule is a subscription on the remote (No Local and
//!   Retain As Published on MQTT 5); what arrives is renamed and published here with
//!   the outbox as its origin, so the outbox's No Local keeps it from going back out.
//! - **Loops.** On MQTT 5 every message sent out carries a user property
//!   [`HOP_PROPERTY`] naming this broker ([`BridgeRegistry::node`]); a message that
//!   comes back carrying it, through any path, is dropped by [`Broker::publish`]
//!   ([`BridgeRegistry::looped`]) and counted.
//! - **Reconnect.** Each connection is a fresh client; a failed attempt moves to the
//!   next address; delays grow exponentially with jitter (`restart_*` keys).
//! - **Durable.** With a durable store the outbox is a stored session: QoS 1/2
//!   messages waiting for the remote survive a crash of this broker (`outbox`).
//! - **Cluster.** One node runs each bridge: the holder of its lease in NATS
//!   (`lease`); the others stand by and take over when it goes.
//! - **Status.** `$SYS/broker/bridges/{name}/state` (retained: `connected` /
//!   `disconnected`), `/metrics` (`mqtt_bridge_*`), `GET /api/bridges`.
//!
//! # Layout
//!
//! - this module: [`BridgeRegistry`] and [`BridgeStatus`] (shared with `/metrics` and
//!   the admin API), the loop check, [`start_all`];
//! - `lease`: on a cluster node, who runs the bridge;
//! - `link`: the task: connect, fail over, back off, publish the state;
//! - `outbox`: the outbox in the store: written at start, restored by recovery;
//! - `forward`: one connection's work: the outbox to the remote, the remote's messages
//!   into the broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::{QoS, SubscriptionOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::{BridgeConfig, Config};
use crate::message::{Delivery, Message};
use crate::router::SubEntry;
use crate::session::{QueueLimits, Session};

mod forward;
mod lease;
mod link;
pub(crate) mod outbox;

/// The MQTT 5 user property that marks a message as forwarded by a bridge of the
/// broker it names (one property per broker passed).
pub(crate) const HOP_PROPERTY: &str = "x-bridge-hop";

/// Whether this node runs a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A single node: it runs every bridge.
    Single,
    /// A cluster node that holds the bridge's lease: it runs the bridge.
    Holder,
    /// A cluster node that stands by while another holds the lease.
    Standby,
}

impl Role {
    /// As shown in `$SYS` and the admin API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Holder => "holder",
            Self::Standby => "standby",
        }
    }
}

/// What one bridge is doing, for `$SYS`, `/metrics` and the admin API.
#[derive(Debug)]
pub(crate) struct BridgeStatus {
    /// The configuration it runs.
    pub(crate) config: BridgeConfig,
    /// Messages for the remote waiting here: the outbox. Its client identifier holds a
    /// NUL, which no MQTT client may send [MQTT-1.5.4-2], so no client attaches to it.
    pub(crate) outbox: Arc<Session>,
    /// Connected to a remote broker now.
    pub(crate) connected: AtomicBool,
    /// Whether this node runs the bridge, and the cluster node that does (if known).
    pub(crate) role: Mutex<(Role, Option<String>)>,
    /// The address of the current (or last) remote.
    pub(crate) remote: Mutex<Option<String>>,
    /// Why the last attempt or connection failed.
    pub(crate) last_error: Mutex<Option<String>>,
    /// Connection attempts made.
    pub(crate) connect_attempts: AtomicU64,
    /// Messages received from the remote and published here.
    pub(crate) messages_in: AtomicU64,
    /// Messages the remote acknowledged (QoS 0: written).
    pub(crate) messages_out: AtomicU64,
    /// Messages lost on the way: a full outbox, a remote that refused them (reason
    /// code ≥ 0x80), QoS 2 messages whose remote session was lost.
    pub(crate) dropped: AtomicU64,
    /// Messages dropped because they had passed this broker before (a loop).
    pub(crate) loops: AtomicU64,
}

/// Every bridge of this broker, and this broker's name in hop markers.
#[derive(Debug)]
pub(crate) struct BridgeRegistry {
    /// This broker in [`HOP_PROPERTY`]: `cluster.node` when set, else a random name
    /// drawn at start (a marker only has to be recognised by the broker that wrote it).
    node: ByteString,
    bridges: Vec<Arc<BridgeStatus>>,
    /// Messages dropped anywhere because they carried this broker's hop marker.
    looped: AtomicU64,
}

impl BridgeRegistry {
    /// The bridges of `config`, not started, each with its empty outbox.
    pub(crate) fn new(config: &Config) -> Self {
        let node = config
            .cluster
            .node
            .clone()
            .unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)));
        let clustered = config.cluster.backend == crate::cluster::config::ClusterBackend::Nats;
        let bridges = config
            .bridges
            .iter()
            .map(|bridge| {
                let limits = QueueLimits {
                    max_messages: bridge.outbox_max_messages,
                    max_bytes: bridge.outbox_max_bytes,
                    queue_qos0_offline: true,
                    policy: bridge.outbox_drop_policy,
                };
                let id = ByteString::from(outbox::client_id(&bridge.name));
                let outbox = Arc::new(Session::new(id, limits));
                // Always "online": the mailbox wakes the bridge task, and QoS 0 waits
                // while the remote is away as QoS 1 and 2 do.
                outbox.set_online(true);
                Arc::new(BridgeStatus {
                    config: bridge.clone(),
                    outbox,
                    connected: AtomicBool::new(false),
                    // A cluster node stands by until it holds the bridge's lease.
                    role: Mutex::new((
                        if clustered {
                            Role::Standby
                        } else {
                            Role::Single
                        },
                        None,
                    )),
                    remote: Mutex::new(None),
                    last_error: Mutex::new(None),
                    connect_attempts: AtomicU64::new(0),
                    messages_in: AtomicU64::new(0),
                    messages_out: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    loops: AtomicU64::new(0),
                })
            })
            .collect();
        Self {
            node: node.into(),
            bridges,
            looped: AtomicU64::new(0),
        }
    }

    /// This broker's name in hop markers.
    pub(crate) fn node(&self) -> &ByteString {
        &self.node
    }

    /// Every bridge, in configuration order.
    pub(crate) fn list(&self) -> &[Arc<BridgeStatus>] {
        &self.bridges
    }

    /// Whether `message` was forwarded by one of this broker's bridges before: it went
    /// round a loop and is dropped. Costs nothing for a message without properties.
    pub(crate) fn looped(&self, message: &Message) -> bool {
        !self.bridges.is_empty()
            && message.properties.is_allocated()
            && message
                .properties
                .user_properties
                .iter()
                .any(|(key, value)| key == HOP_PROPERTY && *value == self.node)
    }

    /// Counts a looped message, also against the bridge whose outbox is `origin` if it
    /// came in through one of ours.
    pub(crate) fn count_loop(&self, origin: &str) {
        self.looped.fetch_add(1, Ordering::Relaxed);
        if let Some(bridge) = self.bridges.iter().find(|b| b.outbox.client_id == origin) {
            bridge.loops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages dropped because they carried this broker's hop marker.
    pub(crate) fn looped_count(&self) -> u64 {
        self.looped.load(Ordering::Relaxed)
    }
}

/// Starts one task per configured bridge on `tasks`; each ends at `shutdown`.
pub(crate) async fn start_all(
    broker: &Arc<Broker>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    for status in broker.bridges.list() {
        outbox::persist(broker, status);
        tasks.spawn(lease::run(broker.clone(), status.clone(), shutdown.clone()));
    }
}

/// Subscribes the outbox to the local filter of every rule that sends, and queues the
/// retained messages they match (the remote gets them as retained, as a new
/// subscriber would).
async fn subscribe_outbox(broker: &Broker, status: &BridgeStatus) {
    let now = crate::clock::now();
    for rule in status.config.topics.iter().filter(|r| r.direction.sends()) {
        let options = SubscriptionOptions {
            no_local: true,
            retain_as_published: true,
            ..SubscriptionOptions::new(rule.qos)
        };
        let entry = SubEntry {
            session: status.outbox.clone(),
            options,
            id: None,
        };
        broker.subscribe(&rule.local_filter, entry);
        for message in broker.retained_matching(&rule.local_filter, now).await {
            let qos = message.qos.min(rule.qos);
            let delivery = Delivery {
                message,
                qos,
                retain: true,
                subscription_ids: Default::default(),
                shared_group: None,
                stored: None,
            };
            if status.outbox.deliver(delivery).dropped_one() {
                status.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Unsubscribes the outbox from the rules' local filters (a cluster node that lost the
/// bridge's lease). What it holds stays, for the next time this node runs the bridge.
fn unsubscribe_outbox(broker: &Broker, status: &BridgeStatus) {
    for rule in status.config.topics.iter().filter(|r| r.direction.sends()) {
        broker.unsubscribe(&rule.local_filter, &status.outbox.client_id);
    }
}

/// Publishes the bridge's state, retained, on `$SYS/broker/bridges/{name}/state`
/// (`connected` / `disconnected`) and, if configured, `1` / `0` on its notification
/// topic.
fn publish_state(broker: &Broker, status: &BridgeStatus, connected: bool) {
    status.connected.store(connected, Ordering::Release);
    let name = &status.config.name;
    let state = if connected {
        "connected"
    } else {
        "disconnected"
    };
    let mut topics = vec![(format!("$SYS/broker/bridges/{name}/state"), state)];
    if let Some(topic) = &status.config.notification_topic {
        topics.push((topic.clone(), if connected { "1" } else { "0" }));
    }
    for (topic, payload) in topics {
        broker.publish(Message {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            expires_at: None,
            origin: ByteString::new(),
        });
    }
}
