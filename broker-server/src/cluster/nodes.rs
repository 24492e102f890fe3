//! Node liveness by heartbeat keys, and what the survivors do when a node dies.
//!
//! # Heartbeats
//!
//! Bucket `<P>_NODES` (history 1, `cluster.replicas`, `max_age = node_ttl_secs`): one
//! key per node, its name, value `started | last beat` (unix ms). Each node updates its
//! key every `heartbeat_secs` with the revision it last wrote. Since the bucket's age
//! limit applies to the last write, a key disappears `node_ttl_secs` after its node's
//! last beat.
//!
//! At start a node creates its key. If the key exists, a node of that name may be
//! alive: the new node watches the key up to `node_ttl_secs + heartbeat_secs`; a new
//! beat means a second broker with the same `cluster.node` runs, and the start is
//! refused (a configuration error). A key that only ages is the previous run of this
//! node (crashed and restarted): it expires, the start goes on, and that previous run
//! is reaped like any dead node (the new node competes for it too, so a one-node
//! cluster cleans up after itself).
//!
//! # Dead nodes
//!
//! Every node reads the bucket at each heartbeat (only while its own beat succeeds: a
//! node cut off from NATS judges nobody). A node is dead when its key is gone, has
//! another start time (it restarted), or has not changed for `node_ttl_secs`. The
//! survivors then race to create `reap.<node>.<started>` in `<P>_REAPED` (kept
//! `offline_session_retention_secs`); the one that creates it lists the session records
//! that node held in that or an earlier run, connected or with a will waiting, and takes
//! each over by compare-and-set (epoch up, held by the reaper, offline, TTL of its
//! expiry). It emits [`SessionEvent::NodeDied`] once with the wills due now.
//!
//! # Will delay
//!
//! A will's Will Delay Interval (capped by the Session Expiry Interval, as MQTT ends the
//! wait with the session) counts from the moment the reaper takes the session, which is
//! up to `node_ttl_secs + heartbeat_secs` after the connection really died: nobody
//! knows that moment. A will of a session already offline keeps the due time its node
//! wrote. A delayed will stays in the record (`will_due`) while its timer runs on the
//! reaper; when due, the reaper clears it by compare-and-set and only then emits
//! `NodeDied` with it. If the client came back first (the record was claimed), nothing
//! is published. If the reaper dies meanwhile, the next reaper finds the will in the
//! record (held by the dead reaper, will waiting) and takes it over with its due time.
//! A crash between the clearing and the publish loses the will (at most once).
//!
//! # A node that comes back
//!
//! A node cut off from NATS longer than `node_ttl_secs` finds its key gone (its next
//! update fails on the revision). It then races for its own reap key: if it creates it,
//! nobody reaped it, and its sessions stay as they are; if the key exists, a survivor
//! took its sessions, and the session watch reports each as
//! [`SessionEvent::TakenOver`] (the broker kicks those clients; their wills came out
//! from the reaper). Either way it registers again with a new start time, so a later
//! death is a new run to reap, and the old run is never reaped twice.
//!
//! Not covered: a node whose key expired while no other node was running and that
//! never starts again leaves its records "connected"; the next claim of each client
//! replaces them, but their wills are not published.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant as TokioInstant;

mod reap;

use super::config::ClusterConfig;
use super::sessions::{Inner, bucket, ensure_bucket, wrong_revision};

/// A node seen alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its `cluster.node`.
    pub name: String,
    /// When it started (this run).
    pub since: SystemTime,
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A heartbeat value: `version u8 (1) | started u64 | beat u64`.
fn encode_beat(started: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(17);
    out.put_u8(1);
    out.put_u64_le(started);
    out.put_u64_le(now_ms());
    out.freeze()
}

/// The start time in a heartbeat value.
fn beat_started(value: &[u8]) -> Option<u64> {
    match value {
        [1, rest @ ..] if rest.len() == 16 => Some(u64::from_le_bytes(rest[..8].try_into().ok()?)),
        _ => None,
    }
}

/// `reap.<node>.<started>`.
fn reap_key(node: &str, started: u64) -> String {
    format!("reap.{node}.{started}")
}

/// What this node knows of the others.
pub(super) struct Liveness {
    /// This node's start time (unix ms); a new one after it re-registers.
    started: AtomicU64,
    /// This node's name.
    node: String,
    /// `node_ttl_secs`.
    ttl: Duration,
    /// The other nodes by name.
    others: Mutex<HashMap<String, Seen>>,
}

impl fmt::Debug for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liveness")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Another node as last read.
#[derive(Debug, Clone)]
struct Seen {
    /// Its start time.
    started: u64,
    /// Its key's revision.
    revision: u64,
    /// When the revision last changed (this node's clock).
    changed: TokioInstant,
    /// The run `started` was reaped (or the race for it decided): not judged again.
    settled: bool,
}

impl Liveness {
    /// This node's current start time (unix ms).
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// This node and the others whose key changed within `node_ttl_secs`.
    pub(super) fn alive(&self) -> Vec<NodeInfo> {
        let since = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let mut nodes = vec![NodeInfo {
            name: self.node.clone(),
            since: since(self.started()),
        }];
        let others = self.others.lock();
        nodes.extend(
            others
                .iter()
                .filter(|(_, seen)| !seen.settled && seen.changed.elapsed() < self.ttl)
                .map(|(name, seen)| NodeInfo {
                    name: name.clone(),
                    since: since(seen.started),
                }),
        );
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }
}

/// The heartbeat and detection state, before its task is spawned.
pub(super) struct NodeTasks {
    nodes: kv::Store,
    reaped: kv::Store,
    /// The revision of this node's key.
    revision: u64,
    /// A previous run of this node whose key was still there at start.
    previous: Option<u64>,
    /// Between every beat.
    heartbeat: Duration,
    /// This node's key lapsed: the next beat creates it again (a new run).
    lapsed: bool,
}

/// What a heartbeat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// This node's key is updated.
    Written,
    /// This node's key had lapsed and is created again, for a new run.
    Registered,
    /// NATS failed or did not answer.
    Failed,
}

/// Opens `<P>_NODES` and `<P>_REAPED` and registers this node (see the module docs).
pub(super) async fn start(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
    node: &str,
) -> anyhow::Result<(Arc<Liveness>, NodeTasks)> {
    let prefix = &cfg.nats.prefix;
    let heartbeat = Duration::from_secs(cfg.heartbeat_secs.max(1));
    let ttl = Duration::from_secs(cfg.node_ttl_secs.max(1));
    let op_timeout = Duration::from_millis(cfg.publish_timeout_ms.max(1));
    let nodes = ensure_bucket(
        js,
        kv::Config {
            bucket: bucket(prefix, "NODES"),
            description: "MQTT broker nodes: heartbeats".into(),
            history: 1,
            num_replicas: cfg.replicas.into(),
            max_age: ttl,
            ..kv::Config::default()
        },
    )
    .await?;
    let reaped = ensure_bucket(
        js,
        kv::Config {
            bucket: bucket(prefix, "REAPED"),
            description: "MQTT broker nodes taken for dead, and who cleaned up".into(),
            history: 1,
            num_replicas: cfg.replicas.into(),
            max_age: Duration::from_secs(cfg.offline_session_retention_secs.max(1)),
            ..kv::Config::default()
        },
    )
    .await?;
    let started = now_ms();
    let duplicate = || {
        anyhow::anyhow!(
            "cluster.node = {node:?}: a broker with this node name is running in the cluster \
             (its heartbeat in {} is fresh); every broker needs its own cluster.node",
            nodes.name
        )
    };
    let deadline = TokioInstant::now() + ttl + heartbeat + Duration::from_secs(1);
    let mut existing: Option<u64> = None;
    let mut previous = None;
    let revision = loop {
        let created = tokio::time::timeout(op_timeout, nodes.create(node, encode_beat(started)))
            .await
            .map_err(|_| anyhow::anyhow!("registering node {node:?}: NATS did not answer"))?;
        match created {
            Ok(revision) => break revision,
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => anyhow::bail!("registering node {node:?} in {}: {err}", nodes.name),
        }
        let entry = tokio::time::timeout(op_timeout, nodes.entry(node))
            .await
            .map_err(|_| anyhow::anyhow!("registering node {node:?}: NATS did not answer"))?
            .map_err(|err| anyhow::anyhow!("registering node {node:?}: {err}"))?;
        if let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) {
            match existing {
                Some(revision) if revision != entry.revision => return Err(duplicate()),
                _ => existing = Some(entry.revision),
            }
            previous = beat_started(&entry.value).or(previous);
        }
        if TokioInstant::now() >= deadline {
            return Err(duplicate());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let liveness = Arc::new(Liveness {
        started: AtomicU64::new(started),
        node: node.to_owned(),
        ttl,
        others: Mutex::new(HashMap::new()),
    });
    let tasks = NodeTasks {
        nodes,
        reaped,
        revision,
        previous,
        heartbeat,
        lapsed: false,
    };
    Ok((liveness, tasks))
}

impl NodeTasks {
    /// Spawns the heartbeat and detection task.
    pub(super) fn spawn(self, inner: Arc<Inner>) -> Vec<JoinHandle<()>> {
        vec![tokio::spawn(self.run(inner))]
    }

    /// Beats, then judges the others, every `heartbeat_secs`; reaps in the background.
    async fn run(mut self, inner: Arc<Inner>) {
        let mut reaps = JoinSet::new();
        // Runs whose reap key could not be raced for (NATS failing): again next beat.
        let mut again: Vec<(String, u64)> = self
            .previous
            .take()
            .map(|previous| (inner.node.clone(), previous))
            .into_iter()
            .collect();
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when this node's beats succeed without a break (none: the last failed).
        let mut healthy_since = Some(TokioInstant::now());
        loop {
            ticks.tick().await;
            while let Some(done) = reaps.try_join_next() {
                again.extend(done.ok().flatten());
            }
            for (node, started) in again.drain(..) {
                reaps.spawn(reap::reap(
                    inner.clone(),
                    self.reaped.clone(),
                    node,
                    started,
                ));
            }
            match self.beat(&inner).await {
                Beat::Failed => {
                    healthy_since = None;
                    continue;
                }
                Beat::Registered => healthy_since = Some(TokioInstant::now()),
                Beat::Written => {
                    healthy_since.get_or_insert_with(TokioInstant::now);
                }
            }
            // Silence is a death only after a whole node TTL (and a beat) of this node's
            // own beats succeeding: when the bucket itself was away (a NATS server lost,
            // a leader election), every key aged, and every node gets that long to beat
            // again before anyone takes it for dead.
            let judge_silence = healthy_since
                .is_some_and(|since| since.elapsed() >= inner.liveness.ttl + self.heartbeat);
            for (node, started) in self.judge(&inner, judge_silence).await {
                reaps.spawn(reap::reap(
                    inner.clone(),
                    self.reaped.clone(),
                    node,
                    started,
                ));
            }
        }
    }

    /// Updates this node's key (or creates it again if it lapsed).
    async fn beat(&mut self, inner: &Inner) -> Beat {
        if self.lapsed {
            return self.register_again(inner).await;
        }
        let node = &inner.node;
        let started = inner.liveness.started();
        let update = self.nodes.update(node, encode_beat(started), self.revision);
        match tokio::time::timeout(inner.op_timeout, update).await {
            Ok(Ok(revision)) => {
                self.revision = revision;
                return Beat::Written;
            }
            Ok(Err(err)) if wrong_revision(&err) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, "cluster heartbeat failed");
                return Beat::Failed;
            }
            Err(_) => {
                tracing::warn!("cluster heartbeat: NATS did not answer");
                return Beat::Failed;
            }
        }
        // The key expired (or was replaced): the others may have taken this node for
        // dead. Whoever creates this run's reap key decides.
        let claim = self
            .reaped
            .create(reap_key(node, started), Bytes::from(node.clone()));
        match tokio::time::timeout(inner.op_timeout, claim).await {
            Ok(Ok(_)) => tracing::warn!(
                "this node's heartbeat lapsed, nobody took it for dead: it carries on"
            ),
            Ok(Err(err)) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                tracing::error!(
                    "this node was taken for dead and its sessions were taken over: \
                     their clients are disconnected"
                );
            }
            _ => return Beat::Failed,
        }
        // A new run: the old one is settled, whoever created its reap key.
        inner.liveness.started.store(now_ms(), Ordering::Relaxed);
        self.lapsed = true;
        self.register_again(inner).await
    }

    /// Creates this node's key again after it lapsed, with the current start time.
    async fn register_again(&mut self, inner: &Inner) -> Beat {
        let started = inner.liveness.started();
        let create = self.nodes.create(&inner.node, encode_beat(started));
        match tokio::time::timeout(inner.op_timeout, create).await {
            Ok(Ok(revision)) => {
                self.revision = revision;
                self.lapsed = false;
                Beat::Registered
            }
            Ok(Err(err)) => {
                tracing::error!(
                    %err,
                    "cluster heartbeat: cannot register this node again \
                     (another broker with this cluster.node?)"
                );
                Beat::Failed
            }
            Err(_) => Beat::Failed,
        }
    }

    /// Reads every node's key; returns the runs found dead (each once): replaced by a
    /// new run of their node, or, if `judge_silence`, silent for `node_ttl_secs`.
    async fn judge(&self, inner: &Inner, judge_silence: bool) -> Vec<(String, u64)> {
        let Some(keys) = read_nodes(&self.nodes, inner.op_timeout).await else {
            return Vec::new();
        };
        let present: HashSet<String> = keys.keys().cloned().collect();
        let now = TokioInstant::now();
        let liveness = &inner.liveness;
        let mut others = liveness.others.lock();
        let mut dead = Vec::new();
        for (name, seen) in others.iter_mut() {
            match keys.get(name) {
                Some(&(started, _)) if started != seen.started => {
                    if !seen.settled {
                        dead.push((name.clone(), seen.started));
                    }
                }
                Some(&(_, revision)) if revision != seen.revision => {}
                _ => {
                    if judge_silence
                        && !seen.settled
                        && now.duration_since(seen.changed) >= liveness.ttl
                    {
                        seen.settled = true;
                        dead.push((name.clone(), seen.started));
                    }
                }
            }
        }
        for (name, (started, revision)) in keys {
            if name == inner.node {
                continue;
            }
            let seen = others.entry(name).or_insert(Seen {
                started,
                revision,
                changed: now,
                settled: false,
            });
            if seen.started != started || seen.revision != revision {
                *seen = Seen {
                    started,
                    revision,
                    changed: now,
                    settled: false,
                };
            }
        }
        // A run settled and gone from the bucket needs no more watching.
        others.retain(|name, seen| !seen.settled || present.contains(name));
        dead
    }
}

/// Every node key with its start time and revision; `None` if NATS fails.
async fn read_nodes(
    nodes: &kv::Store,
    op_timeout: Duration,
) -> Option<HashMap<String, (u64, u64)>> {
    let read = async {
        let names: Vec<String> = nodes
            .keys()
            .await
            .ok()?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .ok()?;
        let mut keys = HashMap::new();
        for name in names {
            if let Some(entry) = nodes.entry(name.as_str()).await.ok()?
                && entry.operation == kv::Operation::Put
                && let Some(started) = beat_started(&entry.value)
            {
                keys.insert(name, (started, entry.revision));
            }
        }
        Some(keys)
    };
    tokio::time::timeout(op_timeout * 2, read)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_carry_their_start() {
        assert_eq!(beat_started(&encode_beat(1234)), Some(1234));
        assert_eq!(beat_started(b""), None);
        assert_eq!(beat_started(&[2; 17]), None);
        assert_eq!(beat_started(&[1; 16]), None);
    }
}
