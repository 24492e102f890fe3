//! The history file, `<storage.dir>/history.redb`: one redb table, written by one
//! thread that commits what queued up about once a second.
//!
//! | table | key | value |
//! |---|---|---|
//! | `samples` | (topic, seq) | time (u64 little-endian, ms since the epoch), then the payload |
//!
//! A topic's samples are adjacent and in order (`seq` increases over the file's life),
//! so dropping a topic's oldest samples is one range. The file is apart from the
//! broker's store (`broker.redb`) on purpose: history is a convenience, so it never
//! joins a commit an acknowledgement waits for, and a file that cannot be opened (or
//! damage) is moved aside (`history.redb.damaged`) with a WARN and history starts
//! empty, instead of stopping the broker.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::Stored;

/// The history file's name inside `storage.dir`.
pub(crate) const FILE_NAME: &str = "history.redb";

/// The samples, keyed by (topic, seq).
const SAMPLES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("samples");

/// Operations queued for the writer at most (beyond, samples are not written and
/// counted): at ~1 commit per second, the recorded messages per second the disk keeps
/// up with before any is left out.
const QUEUE: usize = 65_536;

/// redb's page cache for the history file: the file is written, and read only at
/// start, so a small cache does (redb's default would grow to the file's size).
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// How long the writer gathers operations before it commits them.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What the broker asks of the writer thread.
#[derive(Debug)]
enum Op {
    /// Writes one sample.
    Insert {
        topic: ByteString,
        seq: u64,
        time_ms: u64,
        payload: Bytes,
    },
    /// Deletes a topic's samples up to `seq`, inclusive.
    RemoveThrough { topic: ByteString, seq: u64 },
    /// Commits what is queued, then stops and says so.
    Close(mpsc::Sender<()>),
}

/// The handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The bounded queue to the thread.
    tx: mpsc::SyncSender<Op>,
    /// The thread, joined at close.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Queues a sample for the file; false if the queue is full (it is not written).
    pub(crate) fn insert(&self, topic: ByteString, seq: u64, time_ms: u64, payload: Bytes) -> bool {
        let op = Op::Insert {
            topic,
            seq,
            time_ms,
            payload,
        };
        self.tx.try_send(op).is_ok()
    }

    /// Queues the removal of a topic's samples up to `seq`. If the queue is full it is
    /// left out: the samples stay in the file until the next start drops them (the
    /// bounds are applied to what is loaded).
    pub(crate) fn remove_through(&self, topic: ByteString, seq: u64) {
        let _ = self.tx.try_send(Op::RemoveThrough { topic, seq });
    }

    /// Commits what is queued and stops the thread. Blocks.
    pub(crate) fn close(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Op::Close(done)).is_ok() {
            let _ = wait.recv();
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// Opens (or creates) the history file in `dir`: the samples it holds, in key order,
/// and its writer. `None` for the writer when no file can be had (logged): history
/// is then kept in memory only.
pub(crate) fn open(dir: &Path) -> (Vec<(ByteString, Stored)>, Option<Writer>) {
    let path = dir.join(FILE_NAME);
    let opened = std::fs::create_dir_all(dir)
        .map_err(|err| err.to_string())
        .and_then(|()| open_and_read(&path));
    let (db, samples) = match opened {
        Ok(opened) => opened,
        Err(why) => {
            let aside = path.with_extension("redb.damaged");
            tracing::warn!(path = %path.display(), %why, aside = %aside.display(), "the history file cannot be read: moved aside, history starts empty");
            let moved = std::fs::rename(&path, &aside);
            match moved
                .map_err(|err| err.to_string())
                .and_then(|()| open_and_read(&path))
            {
                Ok(opened) => opened,
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "no history file: history is kept in memory only");
                    return (Vec::new(), None);
                }
            }
        }
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || write_loop(&db, &rx));
    match thread {
        Ok(thread) => (
            samples,
            Some(Writer {
                tx,
                thread: Mutex::new(Some(thread)),
            }),
        ),
        Err(err) => {
            tracing::warn!(%err, "cannot start the history writer: history is kept in memory only");
            (samples, None)
        }
    }
}

/// The samples stored as `key → value`; `None` for a record that is not one.
fn decode(value: &[u8]) -> Option<(u64, &[u8])> {
    let (time, payload) = value.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*time), payload))
}

/// Opens `path` (creating the table) and reads every sample.
fn open_and_read(path: &Path) -> Result<(Database, Vec<(ByteString, Stored)>), String> {
    // redb may panic on a damaged file: that is damage, not a broker bug.
    let guarded = std::panic::catch_unwind(|| -> Result<_, String> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|err| err.to_string())?;
        let txn = db.begin_write().map_err(|err| err.to_string())?;
        txn.open_table(SAMPLES).map_err(|err| err.to_string())?;
        txn.commit().map_err(|err| err.to_string())?;
        let mut samples = Vec::new();
        let read = db.begin_read().map_err(|err| err.to_string())?;
        let table = read.open_table(SAMPLES).map_err(|err| err.to_string())?;
        for row in table.iter().map_err(|err| err.to_string())? {
            let (key, value) = row.map_err(|err| err.to_string())?;
            let (topic, seq) = key.value();
            let Some((time_ms, payload)) = decode(value.value()) else {
                continue;
            };
            samples.push((
                ByteString::from(topic),
                Stored {
                    seq,
                    time_ms,
                    payload: payload.into(),
                },
            ));
        }
        drop(table);
        drop(read);
        Ok((db, samples))
    });
    guarded.unwrap_or_else(|_| Err("redb failed on the file (damaged?)".into()))
}

/// The writer thread: gathers operations for [`COMMIT_EVERY`], commits them in one
/// transaction, until it is closed (or the broker drops the handle).
fn write_loop(db: &Database, rx: &mpsc::Receiver<Op>) {
    let mut failed = false;
    loop {
        let Ok(first) = rx.recv() else {
            return;
        };
        let deadline = Instant::now() + COMMIT_EVERY;
        let mut batch = vec![first];
        let mut closing = None;
        loop {
            if let Some(Op::Close(done)) = batch.last() {
                closing = Some(done.clone());
                batch.pop();
                break;
            }
            // A batch holds at most a queue's worth, so memory stays bounded at any rate.
            if batch.len() >= QUEUE {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if !failed && let Err(why) = commit(db, batch) {
            // History is a convenience: stop writing, keep serving from memory.
            tracing::warn!(%why, "writing the history file failed: history is no longer written");
            failed = true;
        }
        if let Some(done) = closing {
            let _ = done.send(());
            return;
        }
    }
}

/// Applies `batch` in one transaction. Removals are merged per topic (the furthest
/// wins) and applied after the inserts, and an insert that a removal of the same batch
/// covers is skipped: at a steady rate every sample recorded pushes one out, and this
/// turns a batch's many range deletions into one per topic.
fn commit(db: &Database, batch: Vec<Op>) -> Result<(), String> {
    let mut through: std::collections::HashMap<ByteString, u64> = Default::default();
    for op in &batch {
        if let Op::RemoveThrough { topic, seq } = op {
            let furthest = through.entry(topic.clone()).or_insert(*seq);
            *furthest = (*furthest).max(*seq);
        }
    }
    let txn = db.begin_write().map_err(|err| err.to_string())?;
    {
        let mut table = txn.open_table(SAMPLES).map_err(|err| err.to_string())?;
        let mut value = Vec::new();
        for op in batch {
            let Op::Insert {
                topic,
                seq,
                time_ms,
                payload,
            } = op
            else {
                continue;
            };
            if through.get(&topic).is_some_and(|&last| seq <= last) {
                continue;
            }
            value.clear();
            value.extend_from_slice(&time_ms.to_le_bytes());
            value.extend_from_slice(&payload);
            table
                .insert((&*topic, seq), value.as_slice())
                .map_err(|err| err.to_string())?;
        }
        for (topic, seq) in &through {
            table
                .retain_in((&**topic, 0_u64)..=(&**topic, *seq), |_, _| false)
                .map_err(|err| err.to_string())?;
        }
    }
    txn.commit().map_err(|err| err.to_string())
}
