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
//! Every node watches the bucket (a KV watch: the last beat of each key, then every
//! beat). A node's run is dead when its key shows another start time (it restarted), or
//! when no beat of it came for `node_ttl_secs` (an expired key sends nothing: its
//! silence is the sign). Silence is judged only by a node whose own beats have
//! succeeded for `node_ttl_secs + heartbeat_secs` without a break, and only up to its
//! own last beat seen in the watch (the watch delivers in order, so a stalled watch
//! stops the clock rather than silencing everyone): a node cut off from NATS judges
//! nobody, and after the bucket itself was away (a NATS server lost, a leader election:
//! every key aged meanwhile) every node gets that long to beat again. A beat gives up
//! after one heartbeat period, so one lost beat leaves a gap of two periods: with the
//! default `node_ttl_secs` of three periods, not a death.
//!
//! The survivors then race to create `reap.<node>.<started>` in `<P>_REAPED` (kept
//! `offline_session_retention_secs`); the one that creates it lists the session records
//! that node held in that or an earlier run, connected or with a will waiting, and takes
//! each over by compare-and-set (epoch up, held by the reaper, offline, TTL of its
//! expiry). It emits [`NodeDied`] once, with the wills due now (possibly none). Listing reads every key of the bucket (one read per session): fine for
//! thousands of sessions, slow for millions.
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
//! [`TakenOver`] (the broker kicks those clients; their wills came out from the
//! reaper). Either way it registers again with a new start time, so a later
//! death is a new run to reap, and the old run is never reaped twice.
//!
//! While cut off, the node still serves its clients: closing them when NATS has been
//! away for `node_ttl_secs − heartbeat_secs` (ARCHITECTURE.md §10) is the broker's, which
//! sees its cluster calls refused.
//!
//! Not covered: a node that died while no other node was running, and that starts again
//! only after its key expired (or never), leaves its records "connected": the next claim
//! of each client replaces them, but their wills are not published.
//!
//! [`NodeDied`]: super::sessions::SessionEvent::NodeDied
//! [`TakenOver`]: super::sessions::SessionEvent::TakenOver

use std::collections::HashMap;
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
use super::sessions::{Inner, bucket, ensure_bucket, last_value, removed, wrong_revision};

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
    /// Runs of other nodes replaced by a newer run: over, to be reaped.
    replaced: Mutex<Vec<(String, u64)>>,
    /// When this node's own beat of its current run last came through the watch: what
    /// the watch has shown of the others is complete up to then.
    own_seen: Mutex<Option<TokioInstant>>,
}

impl fmt::Debug for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liveness")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Another node as last seen in the watch.
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

    /// Takes in a beat of `name`'s run `started` at `revision`, from the watch.
    fn saw(&self, name: &str, started: u64, revision: u64) {
        let now = TokioInstant::now();
        if name == self.node {
            if started == self.started() {
                *self.own_seen.lock() = Some(now);
            }
            return;
        }
        let mut others = self.others.lock();
        let fresh = Seen {
            started,
            revision,
            changed: now,
            settled: false,
        };
        match others.get_mut(name) {
            // A watch started again delivers the last beats again: not news.
            Some(seen) if revision <= seen.revision => {}
            Some(seen) if seen.started == started => {
                seen.revision = revision;
                seen.changed = now;
            }
            Some(seen) => {
                if !seen.settled {
                    self.replaced.lock().push((name.to_owned(), seen.started));
                }
                *seen = fresh;
            }
            None => {
                others.insert(name.to_owned(), fresh);
            }
        }
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
    // JetStream refuses for a moment what a new bucket cannot serve yet (its replicas
    // answer direct reads a little after its leader is elected): tried again.
    let mut failure = String::new();
    let revision = loop {
        if TokioInstant::now() >= deadline {
            if existing.is_some() {
                return Err(duplicate());
            }
            anyhow::bail!("registering node {node:?} in {}: {failure}", nodes.name);
        }
        let create = nodes.create(node, encode_beat(started));
        match tokio::time::timeout(op_timeout, create).await {
            Ok(Ok(revision)) => break revision,
            Ok(Err(err)) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                match tokio::time::timeout(op_timeout, last_value(&nodes, node)).await {
                    Ok(Ok(Some(beat))) if !removed(&beat) => {
                        match existing {
                            Some(revision) if revision != beat.sequence => {
                                return Err(duplicate());
                            }
                            _ => existing = Some(beat.sequence),
                        }
                        previous = beat_started(&beat.payload).or(previous);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => failure = err.to_string(),
                    Err(_) => failure = "NATS did not answer".into(),
                }
            }
            Ok(Err(err)) => failure = err.to_string(),
            Err(_) => failure = "NATS did not answer".into(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let liveness = Arc::new(Liveness {
        started: AtomicU64::new(started),
        node: node.to_owned(),
        ttl,
        others: Mutex::new(HashMap::new()),
        replaced: Mutex::new(Vec::new()),
        own_seen: Mutex::new(None),
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
    /// Spawns the watch of the nodes bucket and the heartbeat and detection task.
    pub(super) fn spawn(self, inner: Arc<Inner>) -> Vec<JoinHandle<()>> {
        let watch = follow(inner.liveness.clone(), self.nodes.clone(), self.heartbeat);
        vec![tokio::spawn(watch), tokio::spawn(self.run(inner))]
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
            for (node, started) in self.judge(&inner, judge_silence) {
                reaps.spawn(reap::reap(
                    inner.clone(),
                    self.reaped.clone(),
                    node,
                    started,
                ));
            }
        }
    }

    /// How long a beat may take: at most one heartbeat period (and the operation
    /// timeout), so that the next beat is sent on time and one lost beat leaves a gap
    /// of two periods, less than the node TTL with the default three.
    fn beat_timeout(&self, inner: &Inner) -> Duration {
        self.heartbeat.min(inner.op_timeout)
    }

    /// Updates this node's key (or creates it again if it lapsed).
    async fn beat(&mut self, inner: &Inner) -> Beat {
        if self.lapsed {
            return self.register_again(inner).await;
        }
        let node = &inner.node;
        let started = inner.liveness.started();
        let update = self.nodes.update(node, encode_beat(started), self.revision);
        match tokio::time::timeout(self.beat_timeout(inner), update).await {
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
        match tokio::time::timeout(self.beat_timeout(inner), create).await {
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

    /// The runs found dead (each once): replaced by a new run of their node, or, if
    /// `judge_silence`, silent for `node_ttl_secs`.
    ///
    /// Silence is measured up to the moment this node's own last beat came through the
    /// watch, not up to now: the watch delivers in the bucket's order, so every beat
    /// written before that one has been seen. A watch that stalls (its consumer lost
    /// with a NATS server, a slow machine) then stops the clock instead of making
    /// everyone look silent.
    fn judge(&self, inner: &Inner, judge_silence: bool) -> Vec<(String, u64)> {
        let liveness = &inner.liveness;
        let mut dead = std::mem::take(&mut *liveness.replaced.lock());
        let own_seen = *liveness.own_seen.lock();
        if let Some(own_seen) = own_seen.filter(|_| judge_silence) {
            let mut others = liveness.others.lock();
            for (name, seen) in others.iter_mut() {
                if !seen.settled && own_seen.saturating_duration_since(seen.changed) >= liveness.ttl
                {
                    seen.settled = true;
                    dead.push((name.clone(), seen.started));
                }
            }
        }
        dead
    }
}

/// Follows every beat in the nodes bucket (the last of each key first), into
/// `liveness`. A key that expires sends nothing: its silence is what
/// [`NodeTasks::judge`] looks for. Started again if it fails.
async fn follow(liveness: Arc<Liveness>, nodes: kv::Store, heartbeat: Duration) {
    loop {
        match nodes.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(Ok(entry)) = watch.next().await {
                    if entry.operation == kv::Operation::Put
                        && let Some(started) = beat_started(&entry.value)
                    {
                        liveness.saw(&entry.key, started, entry.revision);
                    }
                }
                tracing::warn!("the watch of cluster heartbeats ended: starting it again");
            }
            Err(err) => tracing::warn!(%err, "watching cluster heartbeats"),
        }
        tokio::time::sleep(heartbeat).await;
    }
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
