//! Messages between nodes: publishing this node's messages to the others, and receiving
//! what this node's subscriptions need (cluster plan, "Naming").
//!
//! | what | subject | how |
//! |---|---|---|
//! | QoS 0 | `p.r.m.<T>` | core NATS publish: nothing stored, may be lost |
//! | QoS 1/2 | `p.q.<k>.<T>` | JetStream publish to stream `P_Q_<k>` (k = fnv1a64(topic) mod shards), with a `Nats-Msg-Id` |
//! | QoS 1/2, stored | `p.r.<k>.<T>` | the stream republishes what it stored, with `Nats-Sequence` |
//! | interest in filter F | `p.r.*.<F'>` | one core subscription per subject of [`encode_filter`] |
//!
//! `p` is `cluster.nats.prefix`, `P` the same upper-cased, `<T>` the topic as a subject
//! ([`super::subject`]); the message itself travels as [`super::wire`] describes.
//!
//! **Own messages.** Every message names its origin node (`Mqtt-Node`); a node drops its
//! own on receipt, since it routed them locally already (it still counts their stream
//! sequence in its [`Routing::watermark`]).
//!
//! **Once per node.** NATS delivers a message once per matching subscription, and one node
//! may hold overlapping ones (`a/+` and `a/b`, or `$share/g/a/#` and `a/#`). Every received
//! message therefore passes a window of recently seen keys: `(shard, sequence)` for a
//! stored message, the `Nats-Msg-Id` (origin node, boot, counter) for a QoS 0 one, which
//! every forwarded message carries. The twins of one message are sent back to back by the
//! server, so they meet in the window unless this node is [`DEDUPE_WINDOW`] messages
//! behind on one subscription and not on the other.
//!
//! **Shared subscriptions** (`$share/g/f`): for now the node subscribes to `f` like an
//! ordinary filter, so every node with a member of the group receives every message and its
//! own router picks one member among its local ones. TODO(cluster lead): one member
//! cluster-wide (a NATS queue group per share group, or a shard of the group) is not decided.
//!
//! Replay ([`Routing::replay`], a persistent session resumed after its node died) is in
//! [`replay`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytestring::ByteString;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::{QoS, ReasonCode, TopicFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::ClusterConfig;
use super::subject::{encode_filter, encode_topic, fits_control_line};
use super::{Checkpoint, StreamPos, wire};
use crate::broker::backplane::{Interest, Refused};
use crate::message::Message;

mod inbound;
pub mod replay;
pub mod shared;

use inbound::{Seen, receive};

/// How many recently received message keys a node remembers to drop the second copy of
/// a message that reached it through two of its subscriptions.
pub const DEDUPE_WINDOW: usize = 1 << 16;

/// How long [`Routing::open`] waits for a new shard stream to elect its leader (before
/// that, a publish to it gets "no responders").
const LEADER_PATIENCE: Duration = Duration::from_secs(20);

/// The duplicate window of the shard streams (JetStream's default), at most their age.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A message from another node, for this node's router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The message as published on its node.
    pub message: Message,
    /// Where it is stored (QoS 1/2, received from a shard stream); `None` for QoS 0.
    pub pos: Option<StreamPos>,
    /// Received for this shared subscription (`$share/{group}/{filter}`): it goes to one
    /// member of that group here, and to nobody else. `None`: for every ordinary
    /// subscription here.
    pub shared: Option<TopicFilter>,
    /// A shared group's stored message: acknowledged once its member here took care of
    /// it ([`shared`]).
    pub ack: Option<shared::ClusterAck>,
}

/// The FNV-1a 64-bit hash, which picks a topic's shard: stable across nodes, versions
/// and platforms (the shard of a topic must never change while its stream holds it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard of `topic` among `shards` (at least 1).
pub fn shard_of(topic: &str, shards: u16) -> u16 {
    // The remainder is below `shards`, a u16.
    (fnv1a64(topic.as_bytes()) % u64::from(shards.max(1))) as u16
}

/// The NATS queue group of a shared subscription `$share/{group}/{filter}`: one per
/// group and filter cluster-wide, so each message reaches one node of the group, whose
/// router picks one local member. `None` for an ordinary filter.
pub(crate) fn share_queue(filter: &TopicFilter) -> Option<String> {
    let group = filter.share_group()?;
    let key = format!("{group}\0{}", filter.filter());
    Some(format!("share-{:016x}", fnv1a64(key.as_bytes())))
}

/// The name of shard `k`'s stream under `prefix`: `<PREFIX>_Q_<k>`.
pub fn shard_stream(prefix: &str, k: u16) -> String {
    format!("{}_Q_{k}", prefix.to_uppercase())
}

/// Message ids unique to one node and process: `<node>.<boot>.<counter>` (hex), for
/// `Nats-Msg-Id`.
#[derive(Debug)]
pub(crate) struct MsgIds {
    /// The node's name.
    node: String,
    /// Makes this process's ids unique across restarts of the node (unix nanoseconds at
    /// start): a restarted node's ids must not be taken for duplicates of the previous
    /// run's within a stream's duplicate window.
    boot: u64,
    /// The counter.
    next: AtomicU64,
}

impl MsgIds {
    /// The ids of `node`, starting now.
    pub(crate) fn new(node: &str) -> Self {
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            node: node.to_owned(),
            boot,
            next: AtomicU64::new(0),
        }
    }

    /// A new id.
    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}.{:x}.{n:x}", self.node, self.boot)
    }
}

/// The routing of one node: see the module docs. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Routing {
    /// The shared state.
    inner: Arc<Inner>,
}

/// What the clones of a [`Routing`] and its subscription tasks share.
#[derive(Debug)]
struct Inner {
    /// The NATS connection.
    client: async_nats::Client,
    /// JetStream on that connection (publish acks, stream management, replay).
    js: jetstream::Context,
    /// `cluster.nats.prefix`.
    prefix: String,
    /// `cluster.shards`.
    shards: u16,
    /// `cluster.nats.max_control_line`.
    max_control_line: usize,
    /// `cluster.publish_timeout_ms`.
    publish_timeout: Duration,
    /// This node's name (`Mqtt-Node` of what it publishes).
    node: String,
    /// The `Nats-Msg-Id`s of what it publishes.
    ids: MsgIds,
    /// Where received messages go.
    inbound: mpsc::Sender<Inbound>,
    /// One task per filter of interest (key: the whole filter, `$share/g/` included);
    /// cancelling its token ends the task and its NATS subscriptions.
    interest: Mutex<HashMap<ByteString, CancellationToken>>,
    /// Recently received messages, to pass each only once.
    seen: tokio::sync::Mutex<Seen>,
    /// The highest stream sequence received per shard.
    watermark: Vec<AtomicU64>,
    /// QoS 0 messages dropped because the connection's queue was full.
    dropped: AtomicU64,
    /// `cluster.shared_ack_wait_secs`.
    shared_ack_wait: Duration,
}

impl Routing {
    /// Creates or updates the shard streams and waits until each has a leader; starts
    /// nothing else. `inbound` receives every message from OTHER nodes matching this
    /// node's interest ([`Routing::interest`]).
    pub async fn open(
        client: async_nats::Client,
        cfg: &ClusterConfig,
        node: &str,
        inbound: mpsc::Sender<Inbound>,
    ) -> anyhow::Result<Self> {
        let publish_timeout = Duration::from_millis(cfg.publish_timeout_ms);
        let js = jetstream::ContextBuilder::new()
            .timeout(publish_timeout.max(Duration::from_secs(5)))
            .build(client.clone());
        let prefix = cfg.nats.prefix.clone();
        let max_age = Duration::from_secs(cfg.retention_secs);
        for k in 0..cfg.shards {
            let name = shard_stream(&prefix, k);
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.q.{k}.>")],
                storage: stream::StorageType::File,
                num_replicas: usize::from(cfg.replicas),
                max_age,
                duplicate_window: DUPLICATE_WINDOW.min(max_age),
                allow_direct: true,
                republish: Some(stream::Republish {
                    source: format!("{prefix}.q.{k}.>"),
                    destination: format!("{prefix}.r.{k}.>"),
                    headers_only: false,
                }),
                ..Default::default()
            };
            ensure_stream(&js, config).await?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                prefix,
                shards: cfg.shards.max(1),
                max_control_line: cfg.nats.max_control_line,
                publish_timeout,
                node: node.to_owned(),
                ids: MsgIds::new(node),
                inbound,
                interest: Mutex::new(HashMap::new()),
                seen: tokio::sync::Mutex::new(Seen::default()),
                watermark: (0..cfg.shards.max(1)).map(|_| AtomicU64::new(0)).collect(),
                dropped: AtomicU64::new(0),
                shared_ack_wait: Duration::from_secs(cfg.shared_ack_wait_secs.max(1)),
            }),
        })
    }

    /// Forwards a message accepted on this node to the other nodes.
    ///
    /// QoS 0: a core publish; resolves Ok at once (also when NATS is down: QoS 0 may be
    /// lost) with no position. QoS 1/2: a JetStream publish; resolves with the position
    /// once the stream acknowledged it, retrying with the same `Nats-Msg-Id` meanwhile,
    /// or Refused (0x80) when it was not stored within `cluster.publish_timeout_ms` (no
    /// acknowledgement, no responders, an error). Refused at once: a message larger
    /// than the server's `max_payload` (0x95), a topic whose subject does not fit the
    /// control line (0x90). Topics starting with `$` stay on this node: Ok at once.
    pub fn forward(
        &self,
        message: &Arc<Message>,
    ) -> BoxFuture<'static, Result<Option<StreamPos>, Refused>> {
        let inner = &self.inner;
        if message.topic.starts_with('$') {
            return futures::future::ready(Ok(None)).boxed();
        }
        let shard = shard_of(&message.topic, inner.shards);
        let subject = match message.qos {
            QoS::AtMostOnce => encode_topic(&format!("{}.r.m", inner.prefix), &message.topic),
            _ => encode_topic(&format!("{}.q.{shard}", inner.prefix), &message.topic),
        };
        if !fits_control_line(&subject, inner.max_control_line) {
            return refused(
                ReasonCode::TopicNameInvalid,
                format!(
                    "topic {:?}: its NATS subject is longer than the control line allows",
                    message.topic
                ),
            );
        }
        let mut headers = wire::encode(message, &inner.node);
        headers.insert("Nats-Msg-Id", inner.ids.next());
        let size = header_len(&headers) + message.payload.len();
        let max = inner.client.server_info().max_payload;
        if max > 0 && size > max {
            return refused(
                ReasonCode::PacketTooLarge,
                format!("message of {size} bytes: larger than NATS max_payload {max}"),
            );
        }
        let payload = message.payload.clone();
        let timeout = inner.publish_timeout;
        // Handed to the connection's queue right here, in the order the broker accepted
        // the messages (MQTT keeps a publisher's order per topic); only the
        // acknowledgement is waited for later. A full queue (NATS slower than the
        // publishers) refuses the message instead of reordering it. `unconstrained`:
        // tokio's cooperative budget must not make a queue with room look full (the
        // connection task may have used its budget up on a burst of PUBLISHes).
        if message.qos == QoS::AtMostOnce {
            match tokio::task::unconstrained(
                inner.client.publish_with_headers(subject, headers, payload),
            )
            .now_or_never()
            {
                Some(Ok(())) => {}
                Some(Err(err)) => tracing::debug!(%err, "a QoS 0 message was not forwarded"),
                None => {
                    inner.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        "NATS connection queue full: a QoS 0 message was not forwarded"
                    );
                }
            }
            return futures::future::ready(Ok(None)).boxed();
        }
        let sent = tokio::task::unconstrained(inner.js.publish_with_headers(
            subject.clone(),
            headers.clone(),
            payload.clone(),
        ))
        .now_or_never();
        let ack = match sent {
            Some(Ok(ack)) => ack,
            Some(Err(err)) => {
                return refused(
                    ReasonCode::UnspecifiedError,
                    format!("the cluster did not take the message: {err}"),
                );
            }
            None => {
                return refused(
                    ReasonCode::QuotaExceeded,
                    "the connection to the cluster is saturated".into(),
                );
            }
        };
        let stored = store(
            inner.js.clone(),
            Publish {
                subject,
                headers,
                payload,
            },
            timeout,
            Some(ack),
        );
        stored
            .map(move |stored| stored.map(|seq| Some(StreamPos { shard, seq })))
            .boxed()
    }

    /// QoS 0 messages not forwarded because the NATS connection's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Whether a subscription to `filter` can be carried by NATS (its subjects fit the
    /// control line): when not, the broker should refuse it (SUBACK 0x8F).
    pub fn filter_fits(&self, filter: &TopicFilter) -> bool {
        let head = format!("{}.r.*", self.inner.prefix);
        encode_filter(&head, filter.filter()).is_ok_and(|subjects| {
            subjects
                .iter()
                .all(|s| fits_control_line(s, self.inner.max_control_line))
        })
    }

    /// This node gained its first subscription to `filter`, or lost its last: holds or
    /// drops the NATS subscriptions of its subjects (spawned; returns at once). Shared
    /// filters subscribe to their topic filter (see the module docs).
    pub fn interest(&self, filter: &TopicFilter, change: Interest) {
        let mut interest = self.inner.interest.lock();
        match change {
            Interest::Gained => {
                if interest.contains_key(filter.as_str()) {
                    return;
                }
                // A shared group gets its QoS 0 messages through a queue subscription and
                // its stored ones from durable consumers ([`shared`]).
                let head = match filter.is_shared() {
                    false => format!("{}.r.*", self.inner.prefix),
                    true => format!("{}.r.m", self.inner.prefix),
                };
                let subjects: Vec<String> = match encode_filter(&head, filter.filter()) {
                    Ok(subjects) => subjects.iter().map(str::to_owned).collect(),
                    Err(err) => {
                        tracing::warn!(%filter, %err, "filter not subscribed on NATS");
                        return;
                    }
                };
                if let Some(long) = subjects
                    .iter()
                    .find(|s| !fits_control_line(s, self.inner.max_control_line))
                {
                    tracing::warn!(%filter, subject = %long, "filter not subscribed on NATS: subject too long");
                    return;
                }
                // Subscribe right here when the connection's queue has room (it
                // nearly always has): the SUB then goes out before anything this node
                // publishes later. The task subscribes to what did not fit.
                let mut subscribers = Vec::with_capacity(subjects.len());
                let mut later = Vec::new();
                let queue = share_queue(filter);
                for subject in subjects {
                    let subscribed = match &queue {
                        None => {
                            tokio::task::unconstrained(self.inner.client.subscribe(subject.clone()))
                                .now_or_never()
                        }
                        Some(queue) => tokio::task::unconstrained(
                            self.inner
                                .client
                                .queue_subscribe(subject.clone(), queue.clone()),
                        )
                        .now_or_never(),
                    };
                    match subscribed {
                        Some(Ok(subscriber)) => subscribers.push(subscriber),
                        Some(Err(err)) => {
                            tracing::warn!(%filter, %subject, %err, "cannot subscribe on NATS");
                            return;
                        }
                        None => later.push(subject),
                    }
                }
                let since = SystemTime::now();
                let token = CancellationToken::new();
                interest.insert(filter.clone().into_inner(), token.clone());
                let inner = self.inner.clone();
                let filter = filter.clone();
                tokio::spawn(async move {
                    let pulled = filter
                        .is_shared()
                        .then(|| shared::pull(inner.clone(), filter.clone(), since));
                    let received = receive(inner, filter, subscribers, later);
                    token
                        .run_until_cancelled(async move {
                            match pulled {
                                Some(pulled) => drop(tokio::join!(received, pulled)),
                                None => received.await,
                            }
                        })
                        .await;
                });
            }
            Interest::Lost => {
                if let Some(token) = interest.remove(filter.as_str()) {
                    token.cancel();
                }
            }
        }
    }

    /// Ends every subscription of this node (on shutdown): nothing is received after.
    pub fn shutdown(&self) {
        for (_, token) in self.inner.interest.lock().drain() {
            token.cancel();
        }
    }

    /// The highest stream sequence received per shard (index = shard), own messages
    /// included. Messages of lower sequences may still be on their way through other
    /// subscriptions of this node.
    pub fn watermark(&self) -> Checkpoint {
        Checkpoint(
            self.inner
                .watermark
                .iter()
                .map(|seq| seq.load(Ordering::Relaxed))
                .collect(),
        )
    }

    /// The NATS connection (for the replay and tests).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// Resolves once the NATS server has processed everything this node sent before
    /// (its subscriptions of earlier [`Routing::interest`] calls included, unless the
    /// connection's queue was full then).
    pub async fn flush(&self) -> anyhow::Result<()> {
        Ok(self.inner.client.flush().await?)
    }

    /// JetStream on the connection.
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// `cluster.nats.prefix`.
    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// `cluster.shards`.
    pub(crate) fn shards(&self) -> u16 {
        self.inner.shards
    }
}

/// A message for a stream: what [`store`] sends again when an attempt fails.
#[derive(Debug)]
pub(crate) struct Publish {
    /// The subject.
    pub(crate) subject: String,
    /// The headers, `Nats-Msg-Id` included.
    pub(crate) headers: HeaderMap,
    /// The payload.
    pub(crate) payload: bytes::Bytes,
}

/// Publishes to a stream and returns the stream sequence once it is stored; `first` is
/// an attempt already handed to the connection (to keep the broker's order), whose
/// acknowledgement is awaited first. Retries with the same `Nats-Msg-Id` (in the
/// headers: the stream drops a second copy) until `timeout`: an attempt's publish or
/// acknowledgement may be lost when the NATS server the node is connected to dies, or get
/// "no responders" while a stream elects a leader (or before the stream's interest
/// reached this node's server).
pub(crate) async fn store(
    js: jetstream::Context,
    publish: Publish,
    timeout: Duration,
    mut first: Option<jetstream::context::PublishAckFuture>,
) -> Result<u64, Refused> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A few attempts fit in the timeout; each waits long enough for a loaded cluster.
    let attempt_patience = (timeout / 3).max(Duration::from_millis(250));
    loop {
        let attempt = match first.take() {
            Some(ack) => async move { ack.await.map_err(|err| err.to_string()) }.boxed(),
            None => {
                let (js, publish) = (&js, &publish);
                async move {
                    let ack = js
                        .publish_with_headers(
                            publish.subject.clone(),
                            publish.headers.clone(),
                            publish.payload.clone(),
                        )
                        .await
                        .map_err(|err| err.to_string())?;
                    ack.await.map_err(|err| err.to_string())
                }
                .boxed()
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let last_error = match tokio::time::timeout(attempt_patience.min(left), attempt).await {
            Ok(Ok(ack)) => return Ok(ack.sequence),
            Ok(Err(err)) => {
                // Not at once: what failed needs a moment (an election, a reconnect).
                tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                err
            }
            Err(_) => "no acknowledgement".into(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Refused {
                reason: ReasonCode::UnspecifiedError,
                detail: format!(
                    "the cluster did not store the message within {} ms: {last_error}",
                    timeout.as_millis()
                ),
            });
        }
    }
}

/// A refusal, as a ready future.
fn refused(
    reason: ReasonCode,
    detail: String,
) -> BoxFuture<'static, Result<Option<StreamPos>, Refused>> {
    futures::future::ready(Err(Refused { reason, detail })).boxed()
}

/// The size of `headers` on the wire (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`).
pub(crate) fn header_len(headers: &HeaderMap) -> usize {
    let mut len = 12;
    for (name, values) in headers.iter() {
        for value in values {
            len += AsRef::<[u8]>::as_ref(name).len() + 2 + value.as_str().len() + 2;
        }
    }
    len
}

/// Creates the stream `config` describes, or updates it to that configuration, and waits
/// until it has a leader. Retried until [`LEADER_PATIENCE`]: a JetStream API request
/// times out while the cluster is busy or electing its meta leader.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> anyhow::Result<()> {
    let name = config.name.clone();
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        match js.create_or_update_stream(config.clone()).await {
            Ok(_) => break,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("stream {name}: {err}")
            }
            Err(err) => {
                tracing::debug!(%name, %err, "creating the stream again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    wait_for_leader(js, &name).await
}

/// Waits until stream `name` has a leader (a clustered stream takes writes only then).
async fn wait_for_leader(js: &jetstream::Context, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        let info = js.get_stream(name).await.map(|s| s.cached_info().clone());
        match info {
            // No cluster info: a single server, always its own leader.
            Ok(info) if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) => {
                return Ok(());
            }
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => anyhow::bail!("stream {name} elected no leader in {LEADER_PATIENCE:?}"),
            Err(err) => anyhow::bail!("stream {name}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_is_the_reference_hash() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert!((0..100).all(|i| shard_of(&format!("t/{i}"), 8) < 8));
        assert_eq!(shard_stream("mqtt-x", 3), "MQTT-X_Q_3");
    }
}
