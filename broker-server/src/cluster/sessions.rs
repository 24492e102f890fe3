//! Session records in the `<P>_SESSIONS` key-value bucket: which node holds a client's
//! session, claimed by compare-and-set; the handoff of a session between nodes.
//!
//! # The record and its epoch
//!
//! One key per client id, `s.<16 hex digits of FNV-1a 64 of the client id>` (KV keys
//! admit only a small character set; the record carries the client id itself), value a
//! [`Record`] (versioned binary, laid out in `sessions/record.rs`). The bucket keeps
//! one revision per key (history 1) on `cluster.replicas` servers.
//!
//! [`Sessions::claim`] reads the record and writes the new one with the read revision
//! as the expected last revision (create when absent): of two nodes claiming at once,
//! one write fails and that node reads again and retries (a few times, then 0x89). The
//! new epoch is `max(previous epoch, read revision) + 1`. A record's epoch never exceeds
//! the revision it was written at, so epochs strictly increase for a client id, also
//! across a delete (the delete marker's revision is above every earlier one). Records
//! are read from the stream's leader: a replica may lag behind the last write.
//!
//! An offline record (released [`Release::Detached`]) carries a per-message TTL
//! (`Nats-TTL`; the bucket allows them and leaves a marker when one runs out): its
//! Session Expiry Interval, at most `offline_session_retention_secs`, plus
//! `node_ttl_secs`. The server ends forgotten sessions by itself.
//!
//! Two client ids with the same 64-bit hash would share a key: a claim then replaces
//! the other client's record, returning no previous record (the record's client id
//! differs). With FNV-1a 64 this takes billions of client ids to become likely.
//!
//! # Losing a session
//!
//! Every node watches the whole bucket and keeps the sessions it holds ([`Sessions`]
//! remembers each claim until the session ends or is taken). A write by another node
//! on such a key after this node's claim (at a higher revision: a watch that lags
//! behind still delivers older writes) means the session was taken: the node emits
//! [`SessionEvent::TakenOver`] (the broker kicks the client with 0x8E). The same happens
//! when a reaper ([`super::nodes`]) took this node's sessions because it was taken for
//! dead: a node that lost NATS for longer than `node_ttl_secs` learns of it this way,
//! session by session, once its watch catches up.
//!
//! # Failures
//!
//! Every call is bounded by `cluster.publish_timeout_ms`; a NATS error or timeout (no
//! quorum, no server) is [`Refused`] with 0x88 Server unavailable, never a hang. A
//! claim whose write timed out may still have been applied: the record then names this
//! node with an epoch nobody holds, which the next claim of that client replaces.
//!
//! # Handoff
//!
//! A node serves core requests on `<p>.ctl.<node>.handoff` (payload: the client id):
//! each becomes a [`SessionEvent::Handoff`] with a reply the broker answers with its
//! opaque bytes; no answer within the timeout is answered empty ("not here").
//! [`Sessions::request_handoff`] asks another node.

mod control;
mod record;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use parking_lot::Mutex;
use protocol::{ReasonCode, Will};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use web_time::Instant;

use super::Checkpoint;
use super::config::ClusterConfig;
use super::nodes::{self, Liveness, NodeInfo};
use crate::broker::backplane::{Refused, Release};
use crate::session::Owner;

use control::{handoff_subject, serve_handoffs, watch_sessions};
pub use record::Record;
pub(super) use store::{
    WriteError, bucket, ensure_bucket, last_value, removed, unavailable, wrong_revision,
};

/// The handoff request's header saying whether the new connection continues the
/// session (`1`) or starts clean (`0`).
const CONTINUES_HEADER: &str = "Mqtt-Continues";
/// Claim attempts lost to another node's write before the claim gives up (0x89).
const CAS_TRIES: usize = 5;

/// What the cluster tells the broker about its sessions.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A session this node holds (connected or offline) was claimed by another node, or
    /// taken by a reaper while this node was out of touch: kick the client (0x8E) and
    /// forget the local session (answer a handoff request for it first, if one comes).
    TakenOver {
        /// The client identifier.
        client_id: String,
        /// The node that has it now.
        by: String,
    },
    /// Another node asks for this client's session state: answer with the broker's opaque
    /// bytes (an empty answer means "not here"). Unanswered after the timeout, the
    /// requester gets the empty answer.
    Handoff {
        /// The client identifier.
        client_id: String,
        /// The new connection resumes the session (no Clean Start): a 3.x will of the
        /// connection kicked here is not published.
        continues: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Bytes>,
    },
    /// A node died and this node won the right to clean up after it: publish these
    /// wills now, each exactly once cluster-wide. Their delay is already waited out (it
    /// is removed from the wills): wills without a delay come at once, each delayed will
    /// later in an event of its own, when due, unless its client came back first.
    NodeDied {
        /// The dead node.
        node: String,
        /// Client identifier and will, due now.
        wills: Vec<(String, Will)>,
    },
}

/// What a claim writes besides the node and epoch.
#[derive(Debug, Clone, Default)]
pub struct ClaimUpdate {
    /// The user the connection acts as (the session's owner from now on).
    pub owner: Owner,
    /// The connection's Session Expiry Interval (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// The connection's will, with its delay in its properties.
    pub will: Option<Will>,
    /// Clean Start: the new record does not keep the previous one's subscriptions and
    /// checkpoint (the previous record is still returned). A previous record that is
    /// offline past its `expires_at` is not kept either.
    pub clean_start: bool,
    /// The checkpoint a new session starts from (usually the routing watermark); a
    /// resumed session keeps its own.
    pub checkpoint: Checkpoint,
}

/// The state a session leaves in its record when its connection ends
/// ([`Release::Detached`]; ignored for [`Release::Ended`]).
///
/// A will kept with its due time is the holding node's to publish when due; once it
/// has, it clears it with [`Sessions::update`] (`will = None`, `will_due = None`).
/// Until then the record says the will waits: if the node dies first, the reaper
/// publishes it (once, when due).
#[derive(Debug, Clone, Default)]
pub struct Detach {
    /// The will waits out its delay until then; `None`: no will any more (published,
    /// or there was none).
    pub will_due: Option<Instant>,
    /// The stream positions taken care of; `None` keeps the record's.
    pub checkpoint: Option<Checkpoint>,
}

/// The session records of the cluster, as one node sees and claims them. Cheap to
/// clone; the background tasks (watch, handoff service, heartbeats) stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

/// The background tasks, aborted on drop.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What the calls and the tasks share.
pub(super) struct Inner {
    /// For core requests (handoff).
    pub(super) client: async_nats::Client,
    /// The JetStream context (publishes with an expected revision).
    pub(super) js: jetstream::Context,
    /// `<P>_SESSIONS`.
    pub(super) kv: kv::Store,
    /// This node's name.
    pub(super) node: String,
    /// `cluster.nats.prefix`, for the control subjects.
    pub(super) prefix: String,
    /// Bound of every call.
    pub(super) op_timeout: Duration,
    /// `cluster.offline_session_retention_secs`: the longest TTL of an offline record.
    pub(super) offline_retention: u64,
    /// `cluster.node_ttl_secs`, added to offline TTLs so a reaper's will timer runs
    /// before the record goes.
    pub(super) node_ttl: u64,
    /// The sessions this node holds, by key.
    held: Mutex<HashMap<String, Held>>,
    /// To the broker.
    pub(super) events: mpsc::Sender<SessionEvent>,
    /// The nodes this node sees alive.
    pub(super) liveness: Arc<Liveness>,
}

/// A session this node holds.
#[derive(Debug, Clone)]
struct Held {
    client_id: String,
    /// The epoch of this node's claim.
    epoch: u64,
    /// The revision this node's claim was written at: a write by another node after it
    /// (the bucket's revisions only rise) took the session.
    revision: u64,
}

/// The KV key of a client id's record.
pub fn session_key(client_id: &str) -> String {
    format!("s.{:016x}", fnv1a64(client_id.as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Sessions {
    /// Creates (or updates) the buckets, registers this node's heartbeat (refused if a
    /// node of this name is alive), starts the watch, the handoff service, the
    /// heartbeats and the dead-node detection. Events go to `events`.
    ///
    /// If this node's previous run crashed less than `node_ttl_secs` ago, its key is
    /// still there: `open` waits for it to age (up to `node_ttl_secs + heartbeat_secs +
    /// 1 s`), then cleans up after that run (a [`SessionEvent::NodeDied`] for this
    /// node's own name may follow).
    pub async fn open(
        client: async_nats::Client,
        cfg: &ClusterConfig,
        node: &str,
        events: mpsc::Sender<SessionEvent>,
    ) -> anyhow::Result<Self> {
        let op_timeout = Duration::from_millis(cfg.publish_timeout_ms.max(1));
        let mut js = jetstream::new(client.clone());
        js.set_timeout(op_timeout);
        let prefix = cfg.nats.prefix.clone();
        let kv = ensure_bucket(
            &js,
            kv::Config {
                bucket: bucket(&prefix, "SESSIONS"),
                description: "MQTT sessions: holder node, epoch, subscriptions, will".into(),
                history: 1,
                num_replicas: cfg.replicas.into(),
                // Per-record TTLs (offline sessions), markers when one runs out.
                limit_markers: Some(Duration::from_secs(cfg.node_ttl_secs.max(1) * 10)),
                ..kv::Config::default()
            },
        )
        .await?;
        let (liveness, node_tasks) = nodes::start(&js, cfg, node).await?;
        let inner = Arc::new(Inner {
            client: client.clone(),
            js,
            kv,
            node: node.to_owned(),
            prefix,
            op_timeout,
            offline_retention: cfg.offline_session_retention_secs,
            node_ttl: cfg.node_ttl_secs,
            held: Mutex::new(HashMap::new()),
            events,
            liveness,
        });
        let mut tasks = Vec::new();
        // Started before `open` returns, so no claim precedes the watch.
        let watch = store::retrying(|| inner.kv.watch_all())
            .await
            .map_err(|err| anyhow::anyhow!("watching {}: {err}", inner.kv.name))?;
        tasks.push(tokio::spawn(watch_sessions(inner.clone(), watch)));
        let handoffs = client
            .subscribe(handoff_subject(&inner.prefix, node))
            .await
            .map_err(|err| anyhow::anyhow!("subscribing to handoff requests: {err}"))?;
        // The server has the subscription before `open` returns (the other servers of
        // the cluster learn of it a moment later).
        client
            .flush()
            .await
            .map_err(|err| anyhow::anyhow!("subscribing to handoff requests: {err}"))?;
        tasks.push(tokio::spawn(serve_handoffs(inner.clone(), handoffs)));
        tasks.extend(node_tasks.spawn(inner.clone()));
        Ok(Self {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Claims `client_id`'s session for this node: connected, epoch above the previous
    /// one, the rest from `update`. Returns the previous record (`None` if none), or
    /// [`Refused`] 0x88 if the bucket does not answer in time, 0x89 if other nodes kept
    /// winning the race.
    pub async fn claim(
        &self,
        client_id: &str,
        update: ClaimUpdate,
    ) -> Result<Option<Record>, Refused> {
        let inner = &self.inner;
        let key = session_key(client_id);
        inner
            .bounded("claim", async {
                for _ in 0..CAS_TRIES {
                    let (previous, revision) = inner.read(&key).await?;
                    let previous = previous.filter(|p| p.client_id == client_id);
                    let kept = previous.as_ref().filter(|p| {
                        !update.clean_start
                            && (p.connected || p.expires_at.is_none_or(|at| at > Instant::now()))
                    });
                    let record = Record {
                        client_id: client_id.into(),
                        node: inner.node.clone(),
                        node_started: inner.liveness.started(),
                        epoch: next_epoch(previous.as_ref(), revision),
                        connected: true,
                        owner: update.owner.clone(),
                        expiry_interval: update.expiry_interval,
                        expires_at: None,
                        will: update.will.clone(),
                        will_due: None,
                        subscriptions: kept.map(|p| p.subscriptions.clone()).unwrap_or_default(),
                        checkpoint: kept
                            .map_or_else(|| update.checkpoint.clone(), |p| p.checkpoint.clone()),
                    };
                    match inner.write(&key, record.encode(), revision, None).await {
                        Ok(written) => {
                            inner.hold(&key, client_id, record.epoch, written);
                            return Ok(previous);
                        }
                        Err(WriteError::Lost) => continue,
                        Err(WriteError::Failed(err)) => {
                            return Err(unavailable(format!("claiming {client_id:?}: {err}")));
                        }
                    }
                }
                Err(Refused {
                    reason: ReasonCode::ServerBusy,
                    detail: format!(
                        "claiming {client_id:?}: {CAS_TRIES} writes in a row failed \
                         (other nodes wrote the record, or the bucket had no leader)"
                    ),
                })
            })
            .await
    }

    /// The connection holding `client_id` (claimed at `epoch`) ended. `Detached`: the
    /// record stays, offline, with `detach`'s will due time and checkpoint, and a TTL of
    /// its expiry (at most `offline_session_retention_secs`); `Ended`: the record is
    /// deleted. Only if it is still this node's claim at `epoch`: `Ok(false)` otherwise.
    pub async fn release(
        &self,
        client_id: &str,
        epoch: u64,
        how: Release,
        detach: Detach,
    ) -> Result<bool, Refused> {
        let inner = &self.inner;
        let key = session_key(client_id);
        if how == Release::Ended {
            inner.unhold(&key, epoch);
        }
        let done = inner
            .bounded("release", async {
                for _ in 0..CAS_TRIES {
                    let (Some(mut record), revision) = inner.read(&key).await? else {
                        return Ok(false);
                    };
                    if record.node != inner.node || record.epoch != epoch {
                        return Ok(false);
                    }
                    let written = match how {
                        Release::Ended => inner.delete(&key, revision).await,
                        Release::Detached => {
                            record.connected = false;
                            record.expires_at = expires_at(record.expiry_interval);
                            record.will_due = detach.will_due;
                            if detach.will_due.is_none() {
                                record.will = None;
                            }
                            if let Some(checkpoint) = &detach.checkpoint {
                                record.checkpoint = checkpoint.clone();
                            }
                            let ttl = inner.offline_ttl(&record);
                            inner
                                .write(&key, record.encode(), revision, Some(ttl))
                                .await
                                .map(drop)
                        }
                    };
                    match written {
                        Ok(()) => return Ok(true),
                        Err(WriteError::Lost) => continue,
                        Err(WriteError::Failed(err)) => {
                            return Err(unavailable(format!("releasing {client_id:?}: {err}")));
                        }
                    }
                }
                Err(unavailable(format!(
                    "releasing {client_id:?}: its record kept changing"
                )))
            })
            .await;
        if matches!(done, Ok(false)) {
            inner.unhold(&key, epoch);
        }
        done
    }

    /// Changes `client_id`'s record with `change` (subscriptions, will, checkpoint) if
    /// it is still this node's claim at `epoch` (`Ok(false)` otherwise). `change` may run
    /// more than once (a concurrent write makes the update start again from the new
    /// record); node, epoch and client id are kept whatever it does.
    pub async fn update(
        &self,
        client_id: &str,
        epoch: u64,
        mut change: impl FnMut(&mut Record) + Send,
    ) -> Result<bool, Refused> {
        let inner = &self.inner;
        let key = session_key(client_id);
        inner
            .bounded("update", async {
                for _ in 0..CAS_TRIES {
                    let (Some(mut record), revision) = inner.read(&key).await? else {
                        return Ok(false);
                    };
                    if record.node != inner.node || record.epoch != epoch {
                        return Ok(false);
                    }
                    let kept = (
                        record.node.clone(),
                        record.node_started,
                        record.epoch,
                        record.client_id.clone(),
                    );
                    change(&mut record);
                    (
                        record.node,
                        record.node_started,
                        record.epoch,
                        record.client_id,
                    ) = kept;
                    let ttl = (!record.connected).then(|| inner.offline_ttl(&record));
                    match inner.write(&key, record.encode(), revision, ttl).await {
                        Ok(_) => return Ok(true),
                        Err(WriteError::Lost) => continue,
                        Err(WriteError::Failed(err)) => {
                            return Err(unavailable(format!("updating {client_id:?}: {err}")));
                        }
                    }
                }
                Err(unavailable(format!(
                    "updating {client_id:?}: its record kept changing"
                )))
            })
            .await
    }

    /// The record of `client_id` as stored now (`None`: no session), read from the
    /// bucket's leader, for the admin API and tests.
    pub async fn get(&self, client_id: &str) -> Result<Option<Record>, Refused> {
        let inner = &self.inner;
        let key = session_key(client_id);
        inner
            .bounded("read", async {
                let (record, _) = inner.read(&key).await?;
                Ok(record.filter(|r| r.client_id == client_id))
            })
            .await
    }

    /// Asks `node` to hand over `client_id`'s session (request on
    /// `<p>.ctl.<node>.handoff`). `Ok(None)` when nobody serves that subject (a dead
    /// node), it does not answer in time, or answers empty ("not here").
    pub async fn request_handoff(
        &self,
        node: &str,
        client_id: &str,
        continues: bool,
    ) -> anyhow::Result<Option<Bytes>> {
        let inner = &self.inner;
        // The serving node waits `op_timeout` for its broker, then answers empty.
        let patience = inner.op_timeout * 2 + Duration::from_millis(500);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CONTINUES_HEADER, if continues { "1" } else { "0" });
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(Bytes::copy_from_slice(client_id.as_bytes()))
            .timeout(Some(patience));
        let asked = inner
            .client
            .send_request(handoff_subject(&inner.prefix, node), request);
        let why = match tokio::time::timeout(patience + Duration::from_millis(100), asked).await {
            Ok(Ok(answer)) if !answer.payload.is_empty() => return Ok(Some(answer.payload)),
            Ok(Ok(_)) => "not here",
            Ok(Err(err)) => match err.kind() {
                async_nats::RequestErrorKind::NoResponders => "no responders",
                async_nats::RequestErrorKind::TimedOut => "timed out",
                _ => return Err(anyhow::anyhow!("handoff request to {node}: {err}")),
            },
            Err(_) => "timed out",
        };
        tracing::debug!(node, client_id, why, "handoff request without a session");
        Ok(None)
    }

    /// The epoch of this node's claim of `client_id`'s session, while it holds it.
    pub fn held_epoch(&self, client_id: &str) -> Option<u64> {
        let key = session_key(client_id);
        self.inner.held.lock().get(&key).map(|held| held.epoch)
    }

    /// The nodes alive now (this one included), by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.inner.liveness.alive()
    }
}

/// `max(previous epoch, read revision) + 1` (see the module docs).
pub(super) fn next_epoch(previous: Option<&Record>, revision: u64) -> u64 {
    previous.map_or(0, |p| p.epoch).max(revision) + 1
}

/// When an offline session with this Session Expiry Interval expires.
pub(super) fn expires_at(expiry_interval: u32) -> Option<Instant> {
    (expiry_interval != u32::MAX)
        .then(|| Instant::now() + Duration::from_secs(expiry_interval.into()))
}

impl Inner {
    fn hold(&self, key: &str, client_id: &str, epoch: u64, revision: u64) {
        self.held.lock().insert(
            key.to_owned(),
            Held {
                client_id: client_id.to_owned(),
                epoch,
                revision,
            },
        );
    }

    /// Forgets the session under `key` if it is still held at `epoch`.
    fn unhold(&self, key: &str, epoch: u64) {
        let mut held = self.held.lock();
        if held.get(key).is_some_and(|h| h.epoch == epoch) {
            held.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys_and_stable() {
        assert_eq!(session_key(""), "s.cbf29ce484222325");
        assert_eq!(session_key("a"), "s.af63dc4c8601ec8c");
        let key = session_key("dev/1 ü.*>");
        assert_eq!(key.len(), 2 + 16);
        assert!(key[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn epochs_rise_above_epoch_and_revision() {
        assert_eq!(next_epoch(None, 0), 1);
        assert_eq!(next_epoch(None, 41), 42);
        let record = |epoch| Record {
            client_id: "c".into(),
            node: "n".into(),
            node_started: 1,
            epoch,
            connected: true,
            owner: Owner::Anonymous,
            expiry_interval: 0,
            expires_at: None,
            will: None,
            will_due: None,
            subscriptions: Vec::new(),
            checkpoint: Checkpoint::default(),
        };
        assert_eq!(next_epoch(Some(&record(7)), 3), 8);
        assert_eq!(next_epoch(Some(&record(7)), 30), 31);
    }
}
