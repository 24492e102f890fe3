//! Durable state: what the broker acknowledged survives a restart or a crash.
//!
//! # What is stored, and when it is durable
//!
//! | state | written when | durable before |
//! |---|---|---|
//! | retained message (set or cleared; not `$SYS/...`) | the PUBLISH is routed | its PUBACK / PUBREC (QoS 1/2) |
//! | QoS 1/2 message routed to a persistent session (expiry > 0) | the PUBLISH is routed | the publisher's PUBACK / PUBREC |
//! | inbound QoS 2 packet id of a persistent publisher | the PUBLISH is routed | its PUBREC (exactly once across a restart) |
//! | ... its release (PUBREL) | PUBREL arrives | the PUBCOMP leaves |
//! | outbound QoS 2: the packet id a queued message got | it is handed to the client's session | the PUBLISH leaves |
//! | outbound QoS 2: PUBREC received (message no longer needed) | PUBREC arrives | the PUBREL leaves |
//! | outbound QoS 1/2 flow finished (PUBACK / PUBCOMP) | the acknowledgement arrives | (next commit; losing it means one re-send) |
//! | a persistent session: expiry, subscriptions, owner (user name) | CONNECT, SUBSCRIBE, UNSUBSCRIBE | CONNACK, SUBACK, UNSUBACK |
//! | its disconnect time and a will waiting out its delay | the connection ends | (next commit) |
//!
//! Non-persistent sessions (expiry 0) and QoS 0 cost nothing here: the hot path of a
//! clean-session publish at any QoS never touches the store (except a retained one).
//! A message body is stored once, however many session queues reference it; the
//! writer counts references and deletes the body with its last queue entry.
//!
//! # Group commit
//!
//! Connection tasks never write to disk. They hand [`Op`]s to the [`Store`] (a channel)
//! and, where an acknowledgement depends on them, ask for a [`Barrier`]: a oneshot that
//! resolves once everything submitted before it is durable. One writer thread takes
//! every operation that queued up while the previous commit was being written and
//! applies them in one transaction with one fsync. The more clients wait, the more each
//! fsync carries, so durable QoS 1 throughput stays high. A connection does not stop
//! reading while it waits: it keeps routing the client's next publishes and sends the
//! acknowledgements, in order [MQTT-4.6.0-2], as their barriers resolve.
//!
//! # The backends
//!
//! - `redb` (default, [`embedded`]): [redb](https://www.redb.org), a pure-Rust embedded
//!   B-tree database in one file (`<dir>/broker.redb`). Chosen over fjall because it is
//!   small, has no background threads and no dependencies, commits are ACID with
//!   checksummed, copy-on-write commit slots (a crash leaves the last commit, never a
//!   torn one), and it compacts in place. An LSM tree (fjall) writes faster under heavy
//!   load, but here one writer thread already batches every operation into one
//!   transaction per fsync, which is what an LSM journal would buy; and redb's single
//!   file is easier to back up, report and repair.
//! - `memory` ([`memory`]): stores nothing; for tests and for users who want no disk.
//!
//! Later, a NATS JetStream backplane implements [`Store`] too: retained messages map
//! to a key-value bucket, session queues to streams, barriers to publish acks.
//!
//! # fsync policy (`storage.fsync`)
//!
//! - `always` (default): every commit that carries operations is fsynced before any
//!   acknowledgement that waits on it is sent. Nothing acknowledged is lost, even on
//!   power loss. Costs one fsync per group commit (shared by every waiting client).
//! - `periodic`: commits are not fsynced; an fsync every `storage.fsync_interval_ms`.
//!   Acknowledgements leave as soon as the operation is applied in memory, so a crash
//!   of the process or the machine can lose up to one interval of acknowledged
//!   messages. For higher throughput when some loss is acceptable.
//! - `never`: only a clean shutdown persists; a crash loses everything since start. For
//!   caches and tests.
//!
//! # Recovery
//!
//! At start the store is read before any listener opens ([`recovery`]): retained
//! messages, sessions with their subscriptions, queues (messages in flight are re-sent
//! with DUP and their packet id, QoS 2 messages past PUBREC get their PUBREL again),
//! inbound QoS 2 ids and wills waiting out their delay. What expired while the broker
//! was down is dropped (a will whose delay or session ended is published), orphaned
//! records are removed with a WARN giving their counts, and the file is compacted when
//! much of it is free. A session that was connected when the broker stopped counts as
//! disconnected at restart. Before any of that the whole store is verified (a checksum
//! per record, redb's page checksums) without writing to it: see [`embedded`].
//!
//! # Errors
//!
//! A store that cannot be opened stops the broker with the path and what to do: a
//! damaged one (a record that fails its checksum, a page redb's integrity check
//! rejects, an empty file) before anything is written to it, naming the damaged
//! records and the commands that report and repair it (`broker-server store check` /
//! `store repair`, see [`embedded`]). A
//! write that fails (disk full, I/O error) fails every barrier of its commit: the
//! publishers get PUBACK / PUBREC 0x97 Quota exceeded (disk full) or 0x80 Unspecified
//! error (MQTT 5), or are disconnected (3.x, which has no negative acknowledgement),
//! so they keep and re-send the message: nothing acknowledged is lost silently. The
//! message may still have reached subscribers online at the time. A failed commit is
//! final until the broker restarts: its operations are lost, so no later barrier can
//! be true (one publish's operation and its barrier may land in different batches),
//! and the writer answers every later barrier with the first error and writes nothing
//! more (see [`embedded`]'s writer).
//!
//! # Layout
//!
//! - this module: the [`Store`] trait, [`Op`], [`Snapshot`], errors, configuration.
//! - [`codec`]: the on-disk encoding of messages, queue entries and session records.
//! - [`embedded`]: the redb backend and its writer thread.
//! - [`memory`]: the backend that stores nothing.
//! - [`journal`]: the broker's side: which events become which operations.
//! - [`acks`]: a connection's acknowledgements waiting for their barrier.
//! - [`recovery`]: loading a [`Snapshot`] into a starting broker.

pub(crate) mod acks;
pub mod codec;
pub mod embedded;
pub(crate) mod journal;
pub(crate) mod memory;
pub(crate) mod recovery;

use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;
use protocol::{PacketId, QoS, ReasonCode, TopicFilter, Will};
use smallvec::SmallVec;
use tokio::sync::oneshot;
use web_time::Instant;

use crate::message::Message;
use crate::session::StoredSubscription;

pub(crate) use journal::{SessionLog, Storage};

use crate::config::{Backend, StorageConfig};

/// Why something could not be stored or loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The data directory or file cannot be created, opened or written.
    #[error("{path}: {message}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The disk (or the file size limit) is full.
    #[error("{path}: no space left: {message}")]
    Full {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The file is damaged or not a store of this broker. Raised before anything is
    /// written to it (see [`embedded`]), so "nothing was changed" is true.
    #[error(
        "{path}: the store is corrupt: {detail}. Nothing was changed. `broker-server store \
         check --dir {dir}` reports what is intact and what is not; `broker-server store \
         repair --dir {dir}` writes a new store with everything intact and keeps this file \
         renamed. Or restore the file from a backup, or move it aside to start with an empty \
         store (stored sessions, queued and retained messages are then lost)",
        dir = shown_dir(.path)
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Nothing in the store can be read, so `store repair` has nothing to keep.
    #[error(
        "{path}: nothing in the store can be read ({detail}); restore it from a backup, or move \
         it aside to start with an empty store"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Another process (another broker?) has the store open.
    #[error("{path}: the store is in use by another process; stop it or use another storage.dir")]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The writer stopped (the broker is shutting down, or it failed before).
    #[error("the store is closed")]
    Closed,
}

/// The directory of a store file, as the user passes it to `--dir`.
fn shown_dir(path: &std::path::Path) -> String {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(std::path::Path::new("."));
    let text = dir.display().to_string();
    if text.contains(char::is_whitespace) {
        format!("{text:?}")
    } else {
        text
    }
}

impl StorageError {
    /// The MQTT 5 reason code for a PUBACK / PUBREC refused because of this error:
    /// 0x97 Quota exceeded for a full disk, else 0x80 Unspecified error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Full { .. } => ReasonCode::QuotaExceeded,
            _ => ReasonCode::UnspecifiedError,
        }
    }
}

/// Resolves when every operation submitted before it is durable (or failed).
pub(crate) type Barrier = oneshot::Receiver<Result<(), StorageError>>;

/// Where one queued delivery lives in the store: its session's storage id, its
/// position in the queue and the stored message body it references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRef {
    /// The session incarnation ([`SessionLog::id`]).
    pub session: u64,
    /// Position in the session's queue (increasing over the store's life).
    pub seq: u64,
    /// The message body's id.
    pub message: u64,
}

/// One entry of a persistent session's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The stored message body.
    pub message: u64,
    /// Delivery QoS (1 or 2).
    pub qos: QoS,
    /// Retain flag as sent.
    pub retain: bool,
    /// MQTT 5 Subscription Identifiers.
    pub subscription_ids: SmallVec<[NonZeroU32; 1]>,
    /// The shared subscription that chose this session, if any.
    pub shared_group: Option<TopicFilter>,
    /// QoS 2: the packet id it was sent with (recorded before the PUBLISH left).
    pub packet_id: Option<PacketId>,
    /// QoS 2: the client acknowledged it with PUBREC; only PUBREL remains.
    pub released: bool,
}

/// A persistent session as stored (its queue and inbound QoS 2 ids are stored apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session incarnation: queue entries and inbound ids are keyed by it, so a
    /// session replaced by a Clean Start never mixes with its successor.
    pub id: u64,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// When it expires; `None` while a client was connected, or never.
    pub expires_at: Option<Instant>,
    /// Subscriptions by filter.
    pub subscriptions: Vec<(TopicFilter, StoredSubscription)>,
    /// A will waiting out its Will Delay Interval, and when it is due.
    pub will: Option<(Instant, Will)>,
    /// The user the session belongs to ([`crate::session::Owner`]), so a restart does
    /// not let another user take it over. [`Owner::Unknown`] in records written before
    /// owners were stored.
    ///
    /// [`Owner::Unknown`]: crate::session::Owner::Unknown
    pub owner: crate::session::Owner,
}

/// An operation on the stored state. Applied in submission order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// Sets a topic's retained message (non-empty payload).
    Retain(Arc<Message>),
    /// Clears a topic's retained message.
    Unretain(ByteString),
    /// Writes a session record (replacing the previous one of this client).
    PutSession {
        /// The client identifier.
        client_id: ByteString,
        /// The record (boxed: the rare large operation).
        record: Box<SessionRecord>,
    },
    /// Deletes session incarnation `id` of `client_id`: record (if still that
    /// incarnation's), queue and inbound ids.
    DropSession {
        /// The client identifier.
        client_id: ByteString,
        /// The incarnation.
        id: u64,
    },
    /// Appends to a session's queue; stores the body unless stored already.
    Enqueue {
        /// Where.
        at: StoredRef,
        /// The entry.
        entry: QueueEntry,
        /// The body `at.message` refers to.
        message: Arc<Message>,
    },
    /// Records the packet id a QoS 2 queue entry was sent with.
    Assign {
        /// Session incarnation.
        session: u64,
        /// Queue position.
        seq: u64,
        /// The packet id.
        packet_id: PacketId,
    },
    /// Records that the client answered a QoS 2 entry with PUBREC.
    Release {
        /// Session incarnation.
        session: u64,
        /// Queue position.
        seq: u64,
    },
    /// Removes a queue entry (delivered, dropped or expired).
    Dequeue {
        /// Session incarnation.
        session: u64,
        /// Queue position.
        seq: u64,
    },
    /// Records an inbound QoS 2 packet id acknowledged with PUBREC.
    Received {
        /// Session incarnation.
        session: u64,
        /// The packet id.
        packet_id: PacketId,
    },
    /// Forgets an inbound QoS 2 packet id (PUBREL arrived).
    Forget {
        /// Session incarnation.
        session: u64,
        /// The packet id.
        packet_id: PacketId,
    },
}

/// A stored session with everything keyed by its incarnation.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// The client identifier.
    pub client_id: ByteString,
    /// The record.
    pub record: SessionRecord,
    /// Its queue in order, each entry with its position and body.
    pub queue: Vec<(u64, QueueEntry, Arc<Message>)>,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub inbound: Vec<PacketId>,
}

/// Everything stored, as read at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Retained messages.
    pub retained: Vec<Arc<Message>>,
    /// Persistent sessions.
    pub sessions: Vec<StoredSession>,
    /// Larger than every id in the store (sessions, queue positions, bodies).
    pub next_id: u64,
}

/// Figures for `/metrics` and `$SYS/broker/store/...`, updated by the backend.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Size of the store file in bytes.
    pub size_bytes: AtomicU64,
    /// Message bodies stored.
    pub messages: AtomicU64,
    /// Queue entries stored (messages waiting for or in flight to sessions).
    pub queued: AtomicU64,
    /// Commits (transactions) written.
    pub commits: AtomicU64,
    /// Operations applied.
    pub operations: AtomicU64,
    /// Batches that failed: the commit that failed, then every later batch, each
    /// refusing the acknowledgements waiting on it (see the module docs).
    pub errors: AtomicU64,
    /// Milliseconds the last start spent opening, repairing and loading the store.
    pub recovery_ms: AtomicU64,
    /// Sessions recovered at start.
    pub recovered_sessions: AtomicU64,
    /// Queued messages recovered at start.
    pub recovered_messages: AtomicU64,
}

impl StoreStats {
    /// Reads one figure.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A place the broker's durable state goes. Implementations apply [`Op`]s in the order
/// they were submitted and resolve a [`Barrier`] only when everything submitted before
/// it is durable under the configured fsync policy (or failed).
pub trait Store: Send + Sync + fmt::Debug {
    /// The backend's name, for logs and `$SYS/broker/store/backend`.
    fn kind(&self) -> &'static str;
    /// Whether anything is stored. `false`: the broker skips every storage step.
    fn is_durable(&self) -> bool;
    /// Everything stored. Called once, at start, before any operation.
    fn load(&self) -> Result<Snapshot, StorageError>;
    /// Queues one operation.
    fn submit(&self, op: Op);
    /// Opens a group: the operations submitted from now until [`Store::close_group`]
    /// (also those other threads submit meanwhile) are applied in one transaction, so
    /// that after a crash the store holds all of them or none ([`Storage::group`]).
    /// Groups may overlap; a transaction then spans them all.
    fn open_group(&self);
    /// Closes the group [`Store::open_group`] opened.
    fn close_group(&self);
    /// A barrier behind every operation submitted so far.
    fn barrier(&self) -> Barrier;
    /// Figures for metrics (shared with the backend, which keeps them current).
    fn stats(&self) -> Arc<StoreStats>;
    /// Applies what is queued, makes it durable and stops (clean shutdown). Blocks.
    fn close(&self);
}

/// Opens the store `config` asks for. The redb backend creates `config.dir`.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StorageError> {
    match config.backend {
        Backend::Memory => Ok(Arc::new(memory::MemoryStore::default())),
        Backend::Redb => Ok(Arc::new(embedded::RedbStore::open(config)?)),
    }
}

/// The `$SYS/broker/store/...` topics (relative to `$SYS/broker/`) and values.
pub fn sys_topics(storage: &Storage) -> Vec<(String, String)> {
    let stats = storage.stats();
    let get = StoreStats::get;
    vec![
        ("store/backend".into(), storage.kind().into()),
        ("store/bytes".into(), get(&stats.size_bytes).to_string()),
        ("store/messages".into(), get(&stats.messages).to_string()),
        ("store/queued".into(), get(&stats.queued).to_string()),
        ("store/commits".into(), get(&stats.commits).to_string()),
        ("store/errors".into(), get(&stats.errors).to_string()),
        (
            "store/recovery/milliseconds".into(),
            get(&stats.recovery_ms).to_string(),
        ),
        (
            "store/recovery/sessions".into(),
            get(&stats.recovered_sessions).to_string(),
        ),
        (
            "store/recovery/messages".into(),
            get(&stats.recovered_messages).to_string(),
        ),
    ]
}
