//! `storage.backend = "redb"`: the broker's state in one redb file,
//! `<storage.dir>/broker.redb`, written by one thread that group-commits.
//!
//! Tables (keys → values; values encoded by [`super::codec`], each with a checksum of
//! key and value):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64 (`format` = 2; 1: records without checksums) |
//! | `retained` | topic | message body |
//! | `sessions` | client id | session record |
//! | `messages` | body id | message body, stored once for every queue entry that references it |
//! | `queue` | (session incarnation, position) | queue entry (body id, QoS, packet id, ...) |
//! | `inbound` | (session incarnation, packet id) | () : inbound QoS 2 awaiting PUBREL |
//!
//! # Opening: verify first, write after
//!
//! A store is accepted only once all of it has been read and found intact, and nothing
//! is written to the file before that:
//!
//! 1. No file: a new store. An empty (0-byte) file is refused: it is not a store, and
//!    starting empty on it would hide whatever emptied it.
//! 2. redb opens the file through an [`overlay`] that holds back every write redb makes
//!    while opening (redb writes even to a clean file: it marks it open; after an
//!    unclean shutdown it repairs it and commits). The open runs redb's integrity check
//!    (`set_check_integrity_on_open`): every page of the committed trees is verified
//!    against its checksum, so a damaged page is an error instead of a panic or wrong
//!    data. If the newest commit fails its checksums redb falls back to the commit
//!    before: after a crash that is the commit the crash tore (its fsync never returned,
//!    so nothing acknowledged under `fsync = "always"` is lost), and the start goes on
//!    with a WARN; in a file that was closed cleanly it is damage.
//! 3. Every record is read and verified against its own checksum, and references are
//!    checked ([`check`]). Damage stops the start with the path, the damaged records
//!    and what to do (`broker-server store check` / `store repair`); the held writes
//!    are dropped, so the file is as it was. Orphaned records are removed with a WARN.
//! 4. Only then are the held writes applied to the file, in redb's order with its
//!    syncs, and the broker writes from then on.
//!
//! A panic inside redb on a damaged file is caught and reported as damage without a
//! backtrace ([`check::quietly`]).
//!
//! Loading then collects orphans and expired retained messages and compacts the file
//! when more than half of it is free space.
//!
//! - `overlay`: the backend that holds writes back until the store is verified.
//! - `check`: reading and judging every record; `store check` and `store repair`.
//! - `load`: building the snapshot at start, garbage collection, compaction.
//! - `writer`: the writer thread (group commit, fsync policy, error handling).

pub mod check;
mod load;
mod overlay;
pub mod tool;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::oneshot;

use super::{Barrier, Op, Snapshot, StorageError, Store, StoreStats};
use crate::config::{FsyncPolicy, StorageConfig};

/// The store file's name inside `storage.dir`.
pub const FILE_NAME: &str = "broker.redb";

/// Version of the layout below, in `meta` under `format`. 2: records carry checksums
/// (version 1 stores are read, and marked 2 once opened: new records have checksums).
/// A broker that reads only format 1 refuses a format 2 store with a clear error
/// rather than failing on the first record with a checksum.
const FORMAT: u64 = 2;

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
    /// A group opens: no batch ends until it closes ([`Store::open_group`]).
    OpenGroup,
    /// A group closes.
    CloseGroup,
    Barrier(oneshot::Sender<Result<(), StorageError>>),
    Close(oneshot::Sender<()>),
}

/// The open database, between `open` and `load` (which hands it to the writer).
#[derive(Debug)]
struct Pending {
    db: Database,
    /// The writes redb made while opening, held back until the store is verified
    /// (`None`: a new store, nothing to verify).
    overlay: Option<overlay::Overlay>,
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
    /// without writing to an existing file: redb's writes (its repair if the broker did
    /// not stop cleanly) are held back until [`Store::load`] has verified the store.
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        let started = std::time::Instant::now();
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(|err| io_error(dir, &err))?;
        let path = dir.join(FILE_NAME);
        let (db, overlay) = open_held(&path)?;
        let (tx, rx) = mpsc::channel();
        Ok(Self {
            path,
            policy: config.fsync,
            interval: std::time::Duration::from_millis(config.fsync_interval_ms.max(1)),
            tx,
            pending: Mutex::new(Some(Pending {
                db,
                overlay,
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

/// Opens the store file for the broker: a new one if there is none, else the existing
/// one verified by redb and with its writes held back (see the module docs).
fn open_held(path: &Path) -> Result<(Database, Option<overlay::Overlay>), StorageError> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let db = check::quietly(|| Database::builder().create(path))
                .ok_or_else(|| library_failed(path))?
                .map_err(|err| error(path, err))?;
            return Ok((db, None));
        }
        Err(err) => return Err(io_error(path, &err)),
        Ok(meta) if meta.len() == 0 => return Err(empty_file(path)),
        Ok(_) => {}
    }
    let opened = open_verifying(path, true)?;
    if opened.rolled_back {
        if !opened.unclean {
            return Err(StorageError::Corrupt {
                path: path.into(),
                detail: "redb's integrity check: the newest commit fails its checksums (the \
                         file was closed cleanly, so this is damage, not a write a crash tore)"
                    .into(),
            });
        }
        tracing::warn!(
            path = %path.display(),
            "the store was not closed cleanly and its last commit was incomplete: it is rolled \
             back (that commit's fsync never returned, so nothing it held was acknowledged \
             under fsync = \"always\")"
        );
    } else if opened.unclean {
        tracing::warn!(path = %path.display(), "the store was not closed cleanly: repairing it");
    }
    Ok((opened.db, Some(opened.overlay)))
}

/// A store opened through an [`overlay::Overlay`] with redb's integrity check.
struct Verified {
    db: Database,
    overlay: overlay::Overlay,
    /// redb found the file not closed cleanly (a read-only open refused it as needing
    /// repair).
    unclean: bool,
    /// The newest commit failed its checksums and redb fell back to the one before.
    rolled_back: bool,
}

/// Opens `path` (which exists) with every write held back and the integrity check on.
/// With `explain`, damage redb finds is reported with what [`check`] can tell about
/// the records.
fn open_verifying(path: &Path, explain_damage: bool) -> Result<Verified, StorageError> {
    // A read-only open accepts only a file closed cleanly, and writes nothing.
    let (clean, unclean) = match check::quietly(|| Database::builder().open_read_only(path)) {
        Some(Ok(db)) => {
            drop(db);
            (true, false)
        }
        Some(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(StorageError::Locked { path: path.into() });
        }
        Some(Err(redb::DatabaseError::RepairAborted)) => (false, true),
        _ => (false, false),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| io_error(path, &err))?;
    let (overlay, backend) = overlay::Overlay::new(file).map_err(|err| io_error(path, &err))?;
    let fell_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = fell_back.clone();
    let opened = check::quietly(move || {
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(true);
        builder.set_repair_callback(move |session| {
            // redb reports 0.3 only when the primary commit failed verification and it
            // falls back to the secondary (see `Database::do_repair`).
            if (session.progress() - 0.3).abs() < 1e-9 {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        builder.create_with_backend(backend)
    });
    match opened {
        Some(Ok(db)) => Ok(Verified {
            db,
            overlay,
            unclean,
            rolled_back: fell_back.load(std::sync::atomic::Ordering::Relaxed),
        }),
        Some(Err(err)) => match error(path, err) {
            StorageError::Corrupt { path, detail } => {
                let detail = format!("redb's integrity check: {detail}");
                Err(explain(path, detail, clean && explain_damage))
            }
            other => Err(other),
        },
        None => Err(explain(
            path.into(),
            "redb's integrity check: the database library failed reading it".into(),
            clean && explain_damage,
        )),
    }
}

/// Corruption redb found, with the damaged records [`check`] can name (read through a
/// read-only open, which a file closed cleanly allows).
fn explain(path: PathBuf, detail: String, clean: bool) -> StorageError {
    let mut detail = detail;
    if clean {
        let records = check::quietly(|| {
            let db = Database::builder().open_read_only(&path).ok()?;
            let txn = db.begin_read().ok()?;
            let (contents, mut damage) = check::read_contents(&txn);
            check::check_references(&contents, &mut damage);
            Some(damage)
        })
        .flatten();
        if let Some(damage) = records.filter(|d| !d.is_empty()) {
            detail = format!("{detail}; {}", check::summary(&damage));
        }
    }
    StorageError::Corrupt { path, detail }
}

fn empty_file(path: &Path) -> StorageError {
    StorageError::Corrupt {
        path: path.into(),
        detail: "the file is empty (0 bytes): that is not a store, and the broker does not \
                 start a new one over it (it starts a new one only where there is no file)"
            .into(),
    }
}

fn library_failed(path: &Path) -> StorageError {
    StorageError::Corrupt {
        path: path.into(),
        detail: "the database library failed reading it".into(),
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
        let Pending {
            db,
            overlay,
            rx,
            opened_in,
        } = pending;
        let path = self.path.clone();
        let loaded = check::quietly(|| load::load(db, overlay.as_ref(), &path));
        let (db, snapshot, refs) = loaded.ok_or_else(|| library_failed(&self.path))??;
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

    fn open_group(&self) {
        let _ = self.tx.send(Command::OpenGroup);
    }

    fn close_group(&self) {
        let _ = self.tx.send(Command::CloseGroup);
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
