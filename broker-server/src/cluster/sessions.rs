//! Session records in the `<P>_SESSIONS` key-value bucket: which node holds a client's
//! session, claimed by compare-and-set; the handoff of a session between nodes.
//!
//! # The record and its epoch
//!
//! One key per client id, `s.<16 hex digits of FNV-1a 64 of the client id>` (KV keys
//! admit only a small character set; the record carries the client id itself), value a
//! [`Record`] (versioned binary, see [`record`]). The bucket keeps one revision per key
//! (history 1) on `cluster.replicas` servers.
//!
//! [`Sessions::claim`] reads the record and writes the new one with the read revision
//! as the expected last revision (create when absent): of two nodes claiming at once,
//! one write fails and that node reads again and retries (a few times, then 0x89). The
//! new epoch is `max(previous epoch, read revision) + 1`. A record's epoch never exceeds
//! the revision it was written at, so epochs strictly increase for a client id, also
//! across a delete (the delete marker's revision is above every earlier one).
//!
//! # Losing a session
//!
//! Every node watches the whole bucket and keeps the sessions it holds ([`Sessions`]
//! remembers each claim until the session ends or is taken). A write by another node
//! with a higher epoch on such a key means the session was taken: the node emits
//! [`SessionEvent::TakenOver`] (the lead kicks the client with 0x8E). The same happens
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
//! each becomes a [`SessionEvent::Handoff`] with a reply the lead answers with its
//! opaque bytes; no answer within the timeout is answered empty ("not here").
//! [`Sessions::request_handoff`] asks another node.

mod record;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt as _;
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

pub use record::Record;

/// The handoff request's header saying whether the new connection continues the
/// session (`1`) or starts clean (`0`).
const CONTINUES_HEADER: &str = "Mqtt-Continues";
/// How long [`Sessions::open`] waits for a new bucket's replicas to elect a leader.
const LEADER_PATIENCE: Duration = Duration::from_secs(10);
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
    /// Another node asks for this client's session state: answer with the lead's opaque
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
}

/// A compare-and-set write that did not happen.
#[derive(Debug)]
pub(super) enum WriteError {
    /// Another write came first (wrong expected revision).
    Lost,
    /// NATS failed or did not answer.
    Failed(String),
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

/// The bucket names for a prefix: `<P>_SESSIONS`, `<P>_NODES`, `<P>_REAPED`.
pub(super) fn bucket(prefix: &str, name: &str) -> String {
    format!("{}_{name}", prefix.to_ascii_uppercase())
}

pub(super) fn unavailable(detail: impl Into<String>) -> Refused {
    Refused {
        reason: ReasonCode::ServerUnavailable,
        detail: detail.into(),
    }
}

impl Sessions {
    /// Creates (or updates) the buckets, registers this node's heartbeat (refused if a
    /// node of this name is alive), starts the watch, the handoff service, the
    /// heartbeats and the dead-node detection. Events go to `events`.
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
        let watch = inner
            .kv
            .watch_all()
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
                        Ok(_) => {
                            inner.hold(&key, client_id, record.epoch);
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
                        "claiming {client_id:?}: other nodes wrote its record {CAS_TRIES} times in a row"
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

    /// The record of `client_id` as stored now (`None`: no session), for the admin API
    /// and tests.
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
        match tokio::time::timeout(patience + Duration::from_millis(100), asked).await {
            Err(_) => Ok(None),
            Ok(Ok(answer)) if answer.payload.is_empty() => Ok(None),
            Ok(Ok(answer)) => Ok(Some(answer.payload)),
            Ok(Err(err)) => match err.kind() {
                async_nats::RequestErrorKind::NoResponders
                | async_nats::RequestErrorKind::TimedOut => Ok(None),
                _ => Err(anyhow::anyhow!("handoff request to {node}: {err}")),
            },
        }
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

/// Whether a JetStream write failed on its expected revision. async-nats 0.52 maps only
/// the error code 10071 to `WrongLastSequence`; servers since 2.12 answer 10164 (the
/// same refusal, constant text), which it reports as "other": so the JetStream error
/// is looked for along the error's sources.
pub(super) fn wrong_revision(err: &(dyn std::error::Error + 'static)) -> bool {
    use jetstream::ErrorCode;
    const WRONG_LAST_SEQUENCE: [ErrorCode; 2] = [
        ErrorCode::STREAM_WRONG_LAST_SEQUENCE,
        ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT,
    ];
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(js) = err.downcast_ref::<jetstream::Error>()
            && WRONG_LAST_SEQUENCE.contains(&js.error_code())
        {
            return true;
        }
        if let Some(publish) = err.downcast_ref::<jetstream::context::PublishError>()
            && publish.kind() == jetstream::context::PublishErrorKind::WrongLastSequence
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// `<p>.ctl.<node>.handoff`.
fn handoff_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.ctl.{node}.handoff")
}

/// Opens a bucket, creating it (or updating its settings) as configured, and waits
/// until its replicas elected a leader: before that, every write fails. JetStream may
/// refuse for a moment what it takes a moment to do (two nodes creating the bucket at
/// once, a server not yet known as a peer): retried for up to [`LEADER_PATIENCE`].
pub(super) async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> anyhow::Result<kv::Store> {
    let name = config.bucket.clone();
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    let store = loop {
        match js.create_or_update_key_value(config.clone()).await {
            Ok(store) => break store,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("creating the NATS key-value bucket {name}: {err}")
            }
            Err(err) => {
                tracing::debug!(%err, bucket = name, "creating a bucket: trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    loop {
        let info = store.stream.get_info().await;
        if let Ok(info) = &info
            && info.cluster.as_ref().is_none_or(|c| c.leader.is_some())
        {
            return Ok(store);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the NATS key-value bucket {name} has no leader (no JetStream quorum?)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Inner {
    /// Runs `call` within the operation timeout; a timeout is 0x88.
    pub(super) async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, Refused>>,
    ) -> Result<T, Refused> {
        match tokio::time::timeout(self.op_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!(
                "session {what}: no answer from NATS JetStream within {} ms",
                self.op_timeout.as_millis()
            ))),
        }
    }

    /// The record under `key` and the revision to write against (0: none ever, or
    /// expired without a trace). A deleted record reads as `None` with the delete's
    /// revision; a damaged one too (it is then overwritten, with a warning).
    pub(super) async fn read(&self, key: &str) -> Result<(Option<Record>, u64), Refused> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|err| unavailable(format!("reading session {key}: {err}")))?;
        let Some(entry) = entry else {
            return Ok((None, 0));
        };
        if entry.operation != kv::Operation::Put {
            return Ok((None, entry.revision));
        }
        match Record::decode(&entry.value) {
            Ok(record) => Ok((Some(record), entry.revision)),
            Err(err) => {
                tracing::warn!(key, %err, "damaged cluster session record: replaced");
                Ok((None, entry.revision))
            }
        }
    }

    /// Writes `value` under `key` if its last revision is still `revision` (0: the key
    /// has no value), with a per-record TTL in seconds. The raw JetStream publish, since
    /// async-nats 0.52 has no KV update with a TTL: headers
    /// `Nats-Expected-Last-Subject-Sequence` and `Nats-TTL` on `$KV.<bucket>.<key>`.
    pub(super) async fn write(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
        ttl: Option<u64>,
    ) -> Result<u64, WriteError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
        if let Some(ttl) = ttl {
            headers.insert(
                async_nats::header::NATS_MESSAGE_TTL,
                ttl.max(1).to_string().as_str(),
            );
        }
        let subject = format!(
            "{}{key}",
            self.kv.put_prefix.as_ref().unwrap_or(&self.kv.prefix)
        );
        let ack = self
            .js
            .publish_with_headers(subject, headers, value)
            .await
            .map_err(|err| WriteError::Failed(err.to_string()))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(err) if wrong_revision(&err) => Err(WriteError::Lost),
            Err(err) => Err(WriteError::Failed(err.to_string())),
        }
    }

    /// Deletes `key` if its last revision is still `revision`.
    async fn delete(&self, key: &str, revision: u64) -> Result<(), WriteError> {
        match self.kv.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(err) if wrong_revision(&err) => Err(WriteError::Lost),
            Err(err) => Err(WriteError::Failed(err.to_string())),
        }
    }

    /// The TTL of an offline record: its expiry (at most the offline retention), plus
    /// `node_ttl_secs` so that a reaper's will timer runs before the record goes.
    pub(super) fn offline_ttl(&self, record: &Record) -> u64 {
        u64::from(record.expiry_interval).min(self.offline_retention) + self.node_ttl
    }

    fn hold(&self, key: &str, client_id: &str, epoch: u64) {
        self.held.lock().insert(
            key.to_owned(),
            Held {
                client_id: client_id.to_owned(),
                epoch,
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

/// Follows every write to the bucket; a write by another node above the epoch of a
/// session this node holds is a takeover. The watch is an ordered consumer: it resumes
/// by itself after a reconnect; if it fails for good, it is started again after the
/// last revision seen.
async fn watch_sessions(inner: Arc<Inner>, mut watch: kv::Watch) {
    let mut last = 0;
    loop {
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::warn!(%err, "cluster session watch failed");
                    break;
                }
            };
            last = entry.revision;
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let held = inner.held.lock().get(&entry.key).cloned();
            let Some(held) = held else { continue };
            let record = match Record::decode(&entry.value) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(key = entry.key, %err, "damaged cluster session record");
                    continue;
                }
            };
            if record.node != inner.node && record.epoch > held.epoch {
                inner.unhold(&entry.key, held.epoch);
                let event = SessionEvent::TakenOver {
                    client_id: held.client_id,
                    by: record.node,
                };
                if inner.events.send(event).await.is_err() {
                    return;
                }
            }
        }
        loop {
            tokio::time::sleep(inner.op_timeout).await;
            match inner.kv.watch_all_from_revision(last + 1).await {
                Ok(again) => {
                    watch = again;
                    break;
                }
                Err(err) => tracing::warn!(%err, "restarting the cluster session watch"),
            }
        }
    }
}

/// Answers handoff requests: each goes to the broker as [`SessionEvent::Handoff`]; its
/// answer (or, after the timeout, an empty one) goes back to the requester.
async fn serve_handoffs(inner: Arc<Inner>, mut requests: async_nats::Subscriber) {
    while let Some(request) = requests.next().await {
        let Some(reply_to) = request.reply.clone() else {
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let client_id = String::from_utf8_lossy(&request.payload).into_owned();
            // Absent (an older node): the session continues.
            let continues = request
                .headers
                .as_ref()
                .and_then(|h| h.get(CONTINUES_HEADER))
                .is_none_or(|v| v.as_str() != "0");
            let (reply, answer) = oneshot::channel();
            let asked = async {
                inner
                    .events
                    .send(SessionEvent::Handoff {
                        client_id,
                        continues,
                        reply,
                    })
                    .await
                    .ok()?;
                answer.await.ok()
            };
            let payload = tokio::time::timeout(inner.op_timeout, asked)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            if let Err(err) = inner.client.publish(reply_to, payload).await {
                tracing::debug!(%err, "answering a handoff request");
            }
        });
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
