//! `storage.backend = "redb"`: the broker's state in one redb file,
//! `<storage.dir>/broker.redb`, written by one thread that group-commits.
//!
//! Tables (keys → values; values encoded by [`super::codec`]):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64 (`format` = 1) |
//! | `retained` | topic | message body |
//! | `sessions` | client id | session record |
//! | `messages` | body id | message body, stored once for every queue entry that references it |
//! | `queue` | (session incarnation, position) | queue entry (body id, QoS, packet id, ...) |
//! | `inbound` | (session incarnation, packet id) | () : inbound QoS 2 awaiting PUBREL |
//!
//! Opening runs redb's own crash repair if the file was not closed cleanly (it walks
//! the whole file, verifying checksums, so its time grows with the store); loading then
//! collects orphans (queue entries of sessions that are gone, bodies nothing references)
//! and compacts the file when more than half of it is free space.
//!
//! - `load`: reading the store at start, garbage collection, compaction.
//! - `writer`: the writer thread (group commit, fsync policy, error handling).

mod load;
mod writer;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, TableDefinition};
use tokio::sync::oneshot;

use super::{Barrier, FsyncPolicy, Op, Snapshot, StorageConfig, StorageError, Store, StoreStats};

/// The store file's name inside `storage.dir`.
pub const FILE_NAME: &str = "broker.redb";

/// Version of the layout below, in `meta` under `format`.
const FORMAT: u64 = 1;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const RETAINED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("retained");
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("messages");
const QUEUE: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("queue");
const INBOUND: TableDefinition<'_, (u64, u16), ()> = TableDefinition::new("inbound");

/// What the broker asks of the writer thread.
#[derive(Debug)]
enum Command {
    Op(Op),
    Barrier(oneshot::Sender<Result<(), StorageError>>),
    Close(oneshot::Sender<()>),
}

/// The open database, between `open` and `load` (which hands it to the writer).
#[derive(Debug)]
struct Pending {
    db: Database,
    rx: mpsc::Receiver<Command>,
    opened_in: std::time::Duration,
}

/// The redb backend.
#[derive(Debug)]
pub struct RedbStore {
    path: PathBuf,
    policy: FsyncPolicy,
    interval: std::time::Duration,
    tx: mpsc::Sender<Command>,
    pending: Mutex<Option<Pending>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<StoreStats>,
}

impl RedbStore {
    /// Creates `config.dir` if needed and opens (or creates) the store file in it,
    /// repairing it if the broker did not stop cleanly.
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        let started = std::time::Instant::now();
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(|err| io_error(dir, &err))?;
        let path = dir.join(FILE_NAME);
        let db = open_database(&path)?;
        let (tx, rx) = mpsc::channel();
        Ok(Self {
            path,
            policy: config.fsync,
            interval: std::time::Duration::from_millis(config.fsync_interval_ms.max(1)),
            tx,
            pending: Mutex::new(Some(Pending {
                db,
                rx,
                opened_in: started.elapsed(),
            })),
            writer: Mutex::new(None),
            stats: Arc::new(StoreStats::default()),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the file; a panic inside redb (its debug builds assert on some damage) is
/// reported as corruption like the errors it returns.
fn open_database(path: &Path) -> Result<Database, StorageError> {
    let owned = path.to_path_buf();
    let opened = catch_unwind(AssertUnwindSafe(move || {
        let mut builder = Database::builder();
        let shown = owned.clone();
        builder.set_repair_callback(move |session| {
            if session.progress() == 0.0 {
                tracing::warn!(path = %shown.display(), "the store was not closed cleanly: repairing it");
            }
        });
        builder.create(&owned)
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(err)) => Err(error(path, err)),
        Err(_) => Err(StorageError::Corrupt {
            path: path.into(),
            detail: "the database library failed reading it".into(),
        }),
    }
}

impl Store for RedbStore {
    fn kind(&self) -> &'static str {
        "redb"
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn load(&self) -> Result<Snapshot, StorageError> {
        let started = std::time::Instant::now();
        let pending = self
            .pending
            .lock()
            .map_err(|_| StorageError::Closed)?
            .take()
            .ok_or(StorageError::Closed)?;
        let Pending { db, rx, opened_in } = pending;
        let path = self.path.clone();
        let loaded = catch_unwind(AssertUnwindSafe(|| load::load(db, &path)));
        let (db, snapshot, refs) = match loaded {
            Ok(result) => result?,
            Err(_) => {
                return Err(StorageError::Corrupt {
                    path: self.path.clone(),
                    detail: "the database library failed reading it".into(),
                });
            }
        };
        let stats = &self.stats;
        let set = |counter: &std::sync::atomic::AtomicU64, value: u64| {
            counter.store(value, std::sync::atomic::Ordering::Relaxed);
        };
        let queued: usize = snapshot.sessions.iter().map(|s| s.queue.len()).sum();
        set(&stats.messages, refs.len() as u64);
        set(&stats.queued, queued as u64);
        set(&stats.recovered_sessions, snapshot.sessions.len() as u64);
        set(&stats.recovered_messages, queued as u64);
        set(
            &stats.recovery_ms,
            u64::try_from((opened_in + started.elapsed()).as_millis()).unwrap_or(u64::MAX),
        );
        set(&stats.size_bytes, file_size(&self.path));
        let writer = writer::Writer {
            db,
            path: self.path.clone(),
            policy: self.policy,
            interval: self.interval,
            refs,
            stats: self.stats.clone(),
            failed: None,
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|err| io_error(&self.path, &err))?;
        if let Ok(mut slot) = self.writer.lock() {
            *slot = Some(handle);
        }
        Ok(snapshot)
    }

    fn submit(&self, op: Op) {
        // A stopped writer fails the next barrier; nothing to do here.
        let _ = self.tx.send(Command::Op(op));
    }

    fn barrier(&self) -> Barrier {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Command::Barrier(tx))) = self.tx.send(Command::Barrier(tx)) {
            let _ = tx.send(Err(StorageError::Closed));
        }
        rx
    }

    fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).is_ok() {
            let _ = rx.blocking_recv();
        }
        let handle = self.writer.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn is_full(err: &io::Error) -> bool {
    // ENOSPC, EFBIG (a file size limit), EDQUOT.
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(27 | 28 | 122))
}

fn io_error(path: &Path, err: &io::Error) -> StorageError {
    if is_full(err) {
        StorageError::Full {
            path: path.into(),
            message: err.to_string(),
        }
    } else {
        StorageError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

/// A redb error as ours, naming `path`.
fn error(path: &Path, err: impl Into<redb::Error>) -> StorageError {
    match err.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StorageError::Locked { path: path.into() }
        }
        redb::Error::Corrupted(detail) => StorageError::Corrupt {
            path: path.into(),
            detail,
        },
        redb::Error::UpgradeRequired(version) => StorageError::Corrupt {
            path: path.into(),
            detail: format!("file format {version} needs an upgrade this broker cannot do"),
        },
        redb::Error::RepairAborted => StorageError::Corrupt {
            path: path.into(),
            detail: "repair failed".into(),
        },
        redb::Error::Io(err) if err.kind() == io::ErrorKind::InvalidData => StorageError::Corrupt {
            path: path.into(),
            detail: err.to_string(),
        },
        redb::Error::Io(err) => io_error(path, &err),
        other => StorageError::Io {
            path: path.into(),
            message: other.to_string(),
        },
    }
}
