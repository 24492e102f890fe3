//! This node's side of the NATS JetStream cluster: the backplane the broker calls
//! ([`crate::broker::backplane`]), joining the parts that talk to NATS:
//!
//! - [`super::routing`]: messages to and from the other nodes;
//! - [`super::retained`]: the cluster's retained messages;
//! - [`super::sessions`] and [`super::nodes`]: who holds which session, which nodes are
//!   alive, and the wills of those that died.
//!
//! [`NatsPlane::connect`] joins the cluster before the broker serves anyone;
//! [`NatsPlane::run`] then feeds what comes from NATS into the broker: messages from
//! other nodes (routed here, never forwarded again), sessions another node takes over
//! or asks for (handed over with their state, [`super::handover`]), and the wills of
//! dead nodes.
//!
//! # When NATS is unreachable
//!
//! Every call is bounded by `cluster.publish_timeout_ms`. A QoS 1/2 publish that
//! JetStream did not confirm is refused (MQTT 5: the PUBACK/PUBREC carries the reason;
//! 3.x: the connection closes, so the client sends it again), never acknowledged and
//! lost. A persistent session cannot be claimed and its CONNECT is refused with 0x88
//! Server unavailable (3.x: return code 3); a clean, non-persistent session is served
//! by this node alone, so QoS 0 between local clients keeps working. Everything
//! recovers by itself when NATS returns: the client reconnects, subscriptions are
//! restored by the NATS client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::{QoS, TopicFilter};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use web_time::Instant;

use super::config::ClusterConfig;
use super::link::Link;
use super::retained::RetainedStore;
use super::routing::shared::ClusterAck;
use super::routing::{Inbound, Routing};
use super::sessions::{ClaimUpdate, Detach, Record, SessionEvent, Sessions};
use super::{Checkpoint, handover};
use crate::broker::Broker;
use crate::broker::backplane::{Claim, Connecting, Handover, Interest, Refused, Release};
use crate::message::Message;

/// Messages from other nodes waiting to be routed here.
const INBOUND_CAPACITY: usize = 4096;
/// Session events waiting for the broker.
const EVENTS_CAPACITY: usize = 1024;
/// How long a session another node claimed stays here, waiting for that node's handoff
/// request, before it is dropped (the request is the normal path; this is the fallback
/// when it got lost).
const TAKEOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Room kept in a NATS message for the headers of a forwarded MQTT message (its
/// properties travel as headers, see [`super::wire`]).
const HEADER_ALLOWANCE: usize = 16 * 1024;
/// How long shutdown waits for NATS.
const SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// A shared group's message given to a member here: the message (kept alive, its
/// address is the key), its acknowledgement, and since when.
type AwaitingAck = (Arc<Message>, ClusterAck, Instant);

/// Counters of the backplane, for `/metrics` and `$SYS`.
#[derive(Debug, Default)]
pub struct PlaneStats {
    /// Messages published to the other nodes.
    pub forwarded: AtomicU64,
    /// Messages received from the other nodes.
    pub received: AtomicU64,
    /// QoS 1/2 publishes the cluster did not confirm (refused to the publisher).
    pub refused: AtomicU64,
    /// Sessions handed over to another node.
    pub handed_over: AtomicU64,
    /// Sessions taken over from another node.
    pub taken_over: AtomicU64,
    /// Wills published for the sessions of dead nodes.
    pub reaped_wills: AtomicU64,
}

/// What [`NatsPlane::connect`] returns for [`NatsPlane::run`].
#[derive(Debug)]
pub struct Feeds {
    inbound: mpsc::Receiver<Inbound>,
    events: mpsc::Receiver<SessionEvent>,
}

/// A node of the cluster.
#[derive(Debug)]
pub struct NatsPlane {
    /// This node's name (`cluster.node`).
    pub node: String,
    /// The NATS connection.
    pub link: Link,
    routing: Routing,
    retained: RetainedStore,
    sessions: Sessions,
    /// Counters.
    pub stats: Arc<PlaneStats>,
    /// Record updates under way (releases, subscription changes): waited for at
    /// shutdown, so a node that stops leaves its records right.
    updates: tokio_util::task::TaskTracker,
    /// Shared groups' stored messages given to a member here and not acknowledged yet,
    /// by the address of the message (kept alive here).
    awaiting_ack: Mutex<HashMap<usize, AwaitingAck>>,
    /// `cluster.shared_ack_wait_secs`.
    shared_ack_wait: std::time::Duration,
    /// The loops feeding the broker ([`Self::run`]), stopped at shutdown.
    loops: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl NatsPlane {
    /// Connects to NATS, creates or checks the streams and buckets, and announces this
    /// node. Fails (and the broker does not start) when NATS cannot be reached or the
    /// cluster's layout does not match this node's configuration.
    pub async fn connect(config: &ClusterConfig) -> anyhow::Result<(Arc<Self>, Feeds)> {
        let node = config
            .node
            .clone()
            .ok_or_else(|| anyhow::anyhow!("cluster.node is required"))?;
        let link = Link::connect(config, &node).await?;
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let (events_tx, events) = mpsc::channel(EVENTS_CAPACITY);
        let routing = Routing::open(link.client.clone(), config, &node, inbound_tx).await?;
        let retained = RetainedStore::open(link.client.clone(), config).await?;
        let sessions = Sessions::open(link.client.clone(), config, &node, events_tx).await?;
        info!(%node, urls = ?config.nats.urls, "cluster: joined");
        let plane = Arc::new(Self {
            node,
            link,
            routing,
            retained,
            sessions,
            stats: Arc::default(),
            updates: tokio_util::task::TaskTracker::new(),
            awaiting_ack: Mutex::new(HashMap::new()),
            shared_ack_wait: std::time::Duration::from_secs(config.shared_ack_wait_secs.max(1)),
            loops: Mutex::new(Vec::new()),
        });
        Ok((plane, Feeds { inbound, events }))
    }

    /// Feeds what comes from the cluster into `broker` until the feeds close (the
    /// broker stops).
    pub(crate) fn run(self: &Arc<Self>, broker: &Arc<Broker>, feeds: Feeds) {
        let Feeds {
            mut inbound,
            mut events,
        } = feeds;
        let mut loops = self.loops.lock();
        {
            let broker = broker.clone();
            let plane = self.clone();
            let task = tokio::spawn(async move {
                while let Some(Inbound {
                    message,
                    shared,
                    ack,
                    ..
                }) = inbound.recv().await
                {
                    plane.stats.received.fetch_add(1, Ordering::Relaxed);
                    match shared {
                        None => {
                            broker.publish_remote(message);
                        }
                        Some(share) => {
                            plane.deliver_shared(&broker, Arc::new(message), &share, ack)
                        }
                    }
                }
            });
            loops.push(task.abort_handle());
        }
        let broker = broker.clone();
        let plane = self.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                plane.on_event(&broker, event);
            }
        });
        loops.push(task.abort_handle());
    }

    /// At shutdown, once the connections ended: waits (briefly) for the record updates
    /// under way, stops feeding the broker and flushes the NATS connection.
    pub(crate) async fn shutdown(&self) {
        self.updates.close();
        let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, self.updates.wait()).await;
        for task in self.loops.lock().drain(..) {
            task.abort();
        }
        let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, self.link.client.flush()).await;
    }

    fn on_event(self: &Arc<Self>, broker: &Arc<Broker>, event: SessionEvent) {
        match event {
            SessionEvent::Handoff {
                client_id,
                continues,
                reply,
            } => {
                let broker = broker.clone();
                let plane = self.clone();
                tokio::spawn(async move {
                    let handover = broker.hand_over(&client_id, continues).await;
                    let answer = match handover {
                        Some(handover) => {
                            plane.stats.handed_over.fetch_add(1, Ordering::Relaxed);
                            info!(%client_id, "cluster: session handed over to another node");
                            handover::encode(&handover)
                        }
                        None => bytes::Bytes::new(),
                    };
                    let _ = reply.send(answer);
                });
            }
            SessionEvent::TakenOver { client_id, by } => {
                let broker = broker.clone();
                tokio::spawn(async move {
                    // The new owner's handoff request normally takes the session first.
                    tokio::time::sleep(TAKEOVER_GRACE).await;
                    if broker.hand_over(&client_id, false).await.is_some() {
                        info!(%client_id, node = %by, "cluster: session claimed by another node: dropped here");
                    }
                });
            }
            SessionEvent::NodeDied { node, wills } => {
                warn!(%node, wills = wills.len(), "cluster: node died; publishing its clients' wills");
                for (client_id, will) in wills {
                    self.stats.reaped_wills.fetch_add(1, Ordering::Relaxed);
                    broker.publish_will(will, &ByteString::from(client_id));
                }
            }
        }
    }

    /// Publishes `message` to the other nodes (and the cluster's retained store); the
    /// future resolves once JetStream has it. Node-local `$` topics stay here.
    pub(crate) fn forward(
        &self,
        message: &Arc<Message>,
    ) -> Option<BoxFuture<'static, Result<(), Refused>>> {
        if message.topic.starts_with('$') {
            return None;
        }
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        // Sent now (in order); the future only waits for JetStream's answer.
        let routed = self.routing.forward(message);
        let stats = self.stats.clone();
        let count_refusal = move |result: Result<(), Refused>| {
            if result.is_err() {
                stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            result
        };
        if message.retain {
            // The retained store is written whether or not anyone waits for it.
            let store = self.retained.clone();
            let retained = message.clone();
            let handle = tokio::spawn(async move {
                let routed = routed.await.map(drop);
                let stored = store.set(&retained).await;
                count_refusal(routed.and(stored))
            });
            return (message.qos != QoS::AtMostOnce).then(|| {
                Box::pin(async move {
                    handle.await.unwrap_or_else(|err| {
                        Err(Refused {
                            reason: protocol::ReasonCode::UnspecifiedError,
                            detail: format!("forwarding failed: {err}"),
                        })
                    })
                }) as BoxFuture<'static, Result<(), Refused>>
            });
        }
        if message.qos == QoS::AtMostOnce {
            return None;
        }
        Some(Box::pin(
            async move { count_refusal(routed.await.map(drop)) },
        ))
    }

    /// A message of the shared group `share` for one member here. A stored one
    /// (`ack`) is acknowledged to the group's consumer when the member finished its flow
    /// ([`Self::shared_done`]) or took it at QoS 0; refused (NAK) when no member here
    /// could take it, so another node's member gets it.
    fn deliver_shared(
        &self,
        broker: &Broker,
        message: Arc<Message>,
        share: &TopicFilter,
        ack: Option<ClusterAck>,
    ) {
        let Some(ack) = ack else {
            broker.publish_remote_shared(message, share);
            return;
        };
        // Recorded first: the member's connection may finish the flow at once.
        let key = Arc::as_ptr(&message) as usize;
        self.awaiting_ack
            .lock()
            .insert(key, (message.clone(), ack.clone(), crate::clock::now()));
        match broker.publish_remote_shared(message, share) {
            Some(QoS::AtMostOnce) => {
                self.awaiting_ack.lock().remove(&key);
                ack.ack();
            }
            Some(_) => self.sweep_awaiting_ack(),
            None => {
                self.awaiting_ack.lock().remove(&key);
                ack.nak();
            }
        }
    }

    /// A member here finished the flow of a shared group's `message`.
    pub(crate) fn shared_done(&self, message: &Arc<Message>) {
        let key = Arc::as_ptr(message) as usize;
        if let Some((_, ack, _)) = self.awaiting_ack.lock().remove(&key) {
            ack.ack();
        }
    }

    /// Forgets acknowledgements past the group consumers' ack wait: JetStream has given
    /// those messages to another member already (their flow here never finished: a
    /// full mailbox dropped them, or the member's session ended).
    fn sweep_awaiting_ack(&self) {
        let now = crate::clock::now();
        let mut awaiting = self.awaiting_ack.lock();
        if awaiting.len().is_multiple_of(256) {
            let wait = self.shared_ack_wait;
            awaiting.retain(|_, (_, _, since)| now.duration_since(*since) < wait);
        }
    }

    /// Holds (or drops) this node's NATS subscription for `filter`.
    pub(crate) fn interest(&self, filter: &TopicFilter, change: Interest) {
        self.routing.interest(filter, change);
    }

    /// The cluster's retained messages matching `filter`.
    pub(crate) async fn retained(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        match self.retained.matching(filter, now).await {
            Ok(messages) => messages.into_iter().map(Arc::new).collect(),
            Err(err) => {
                warn!(%filter, %err, "cluster: retained messages not fetched");
                Vec::new()
            }
        }
    }

    /// Claims `client_id`'s session for this node; brings it over from the node that
    /// held it (alive: handed over with its state; dead: rebuilt from its record and
    /// the streams).
    pub(crate) async fn claim(&self, client_id: &ByteString, connecting: &Connecting) -> Claim {
        let update = ClaimUpdate {
            owner: connecting.owner.clone(),
            clean_start: connecting.clean_start,
            expiry_interval: connecting.expiry_interval,
            will: connecting.will.clone(),
            checkpoint: self.routing.watermark(),
        };
        let previous = match self.sessions.claim(client_id, update).await {
            Ok(previous) => previous,
            Err(refused) if connecting.expiry_interval == 0 => {
                // Nothing outlives this connection: serve it from this node alone.
                warn!(%client_id, %refused, "cluster: session not recorded; served by this node only");
                return Claim::Claimed(None);
            }
            Err(refused) => return Claim::Refused(refused),
        };
        let Some(previous) = previous else {
            return Claim::Claimed(None);
        };
        let continues = !connecting.clean_start;
        if previous.node == self.node {
            // This node held it: in its registry still, or (after a restart, or as the
            // reaper of a dead node) only in the cluster's record.
            return match (connecting.here, continues) {
                (false, true) => Claim::Claimed(Some(self.rebuild(client_id, previous))),
                _ => Claim::Claimed(None),
            };
        }
        let handed = self
            .sessions
            .request_handoff(&previous.node, client_id, continues)
            .await;
        if !continues {
            return Claim::Claimed(None);
        }
        let handover = match handed {
            Ok(Some(bytes)) if !bytes.is_empty() => match handover::decode(bytes) {
                Ok(handover) => Some(handover),
                Err(err) => {
                    warn!(%client_id, %err, "cluster: handover unreadable; rebuilding the session");
                    None
                }
            },
            Ok(_) => None,
            Err(err) => {
                debug!(%client_id, %err, "cluster: no handover");
                None
            }
        };
        let handover = match handover {
            Some(handover) => handover,
            None => self.rebuild(client_id, previous),
        };
        self.stats.taken_over.fetch_add(1, Ordering::Relaxed);
        Claim::Claimed(Some(handover))
    }

    /// A session whose node is gone: its subscriptions from the record; the QoS 1/2
    /// messages they match are replayed from its checkpoint once they are live here
    /// (at least once: some may have reached the client before its node died).
    fn rebuild(&self, client_id: &ByteString, previous: Record) -> Handover {
        info!(%client_id, node = %previous.node, "cluster: session rebuilt from its record");
        Handover {
            subscriptions: previous.subscriptions,
            messages: Vec::new(),
            state: None,
            replay_from: Some(previous.checkpoint),
        }
    }

    /// The QoS 1/2 messages stored after `from` whose topics `filters` match.
    pub(crate) async fn replay(
        &self,
        client_id: &ByteString,
        from: &Checkpoint,
        filters: &[TopicFilter],
    ) -> Vec<Message> {
        if filters.is_empty() {
            return Vec::new();
        }
        match self.routing.replay(from, filters).await {
            Ok(replayed) => replayed
                .into_iter()
                .map(|inbound| inbound.message)
                .collect(),
            Err(err) => {
                warn!(%client_id, %err, "cluster: messages of the session not replayed");
                Vec::new()
            }
        }
    }

    /// The session's connection let go (it stays, offline, on this node) or it ended.
    pub(crate) fn release(&self, client_id: &ByteString, why: Release) {
        let Some(epoch) = self.sessions.held_epoch(client_id) else {
            return;
        };
        let sessions = self.sessions.clone();
        let client_id = client_id.clone();
        self.updates.spawn(async move {
            if let Err(refused) = sessions
                .release(&client_id, epoch, why, Detach::default())
                .await
            {
                warn!(%client_id, %refused, "cluster: session record not released");
            }
        });
    }

    /// A persistent session's subscriptions changed: its record follows, so a node that
    /// rebuilds it after this node died restores them.
    pub(crate) fn subscriptions_changed(&self, session: &crate::session::Session) {
        let Some(epoch) = self.sessions.held_epoch(&session.client_id) else {
            return;
        };
        let subscriptions: Vec<_> = session
            .subscriptions
            .lock()
            .iter()
            .map(|(filter, stored)| (filter.clone(), stored.clone()))
            .collect();
        let sessions = self.sessions.clone();
        let client_id = session.client_id.clone();
        self.updates.spawn(async move {
            let update = sessions.update(&client_id, epoch, |record| {
                record.subscriptions = subscriptions.clone();
            });
            if let Err(refused) = update.await {
                warn!(%client_id, %refused, "cluster: session record not updated");
            }
        });
    }

    /// The largest MQTT packet whose message fits a NATS message of the servers'
    /// `max_payload`, with room for the headers a message carries between nodes.
    pub(crate) fn max_packet_size(&self) -> u32 {
        let max_payload = self.link.client.server_info().max_payload;
        let fits = max_payload.saturating_sub(HEADER_ALLOWANCE);
        u32::try_from(fits).unwrap_or(u32::MAX).max(1024)
    }

    /// The nodes alive now.
    pub fn nodes(&self) -> Vec<super::nodes::NodeInfo> {
        self.sessions.nodes()
    }

    /// The backplane's figures, for `/metrics` (`mqtt_cluster_<name>`) and `$SYS`
    /// (`$SYS/broker/cluster/<topic>`): (metric name, `$SYS` topic, kind, help, value).
    pub(crate) fn figures(
        &self,
    ) -> Vec<(&'static str, &'static str, &'static str, &'static str, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let s = &self.stats;
        vec![
            (
                "mqtt_cluster_nats_connected",
                "nats/connected",
                "gauge",
                "1 while this node's NATS connection is up.",
                u64::from(self.link.connected()),
            ),
            (
                "mqtt_cluster_nodes",
                "nodes",
                "gauge",
                "Broker nodes alive in the cluster, as this node sees them.",
                self.nodes().len() as u64,
            ),
            (
                "mqtt_cluster_forwarded_total",
                "messages/forwarded",
                "counter",
                "Messages this node published to the other nodes.",
                get(&s.forwarded),
            ),
            (
                "mqtt_cluster_received_total",
                "messages/received",
                "counter",
                "Messages this node received from the other nodes.",
                get(&s.received),
            ),
            (
                "mqtt_cluster_dropped_total",
                "messages/dropped",
                "counter",
                "QoS 0 messages not forwarded because the NATS connection's queue was full.",
                self.routing.dropped(),
            ),
            (
                "mqtt_cluster_refused_total",
                "messages/refused",
                "counter",
                "QoS 1/2 publishes refused because the cluster did not confirm them.",
                get(&s.refused),
            ),
            (
                "mqtt_cluster_sessions_handed_over_total",
                "sessions/handed_over",
                "counter",
                "Sessions this node handed to another node.",
                get(&s.handed_over),
            ),
            (
                "mqtt_cluster_sessions_taken_over_total",
                "sessions/taken_over",
                "counter",
                "Sessions this node took over from another node.",
                get(&s.taken_over),
            ),
            (
                "mqtt_cluster_dead_node_wills_total",
                "wills/dead_nodes",
                "counter",
                "Wills this node published for clients of nodes that died.",
                get(&s.reaped_wills),
            ),
        ]
    }
}
