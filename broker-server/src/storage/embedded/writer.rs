//! The writer thread: group commit.
//!
//! It blocks for the first command, then takes every command that queued up meanwhile
//! (up to [`MAX_BATCH`]) and applies their operations in one write transaction, then
//! answers every barrier of the batch with the commit's result. While it commits (an
//! fsync takes around a millisecond on an SSD, far more on a disk), new commands pile
//! up for the next batch, so the number of fsyncs adapts to the load instead of growing
//! with it.
//!
//! Reference counts of message bodies live here, in memory (rebuilt from the queue at
//! start): a batch counts into a delta that is merged only once its commit succeeded,
//! so a failed commit leaves the counts matching the file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table};

use super::{Command, INBOUND, MESSAGES, QUEUE, RETAINED, SESSIONS, error, file_size};
use crate::storage::codec;
use crate::storage::{FsyncPolicy, Op, StorageError, StoreStats};

/// Most commands applied in one transaction.
const MAX_BATCH: usize = 16_384;

/// How often the file size figure is refreshed.
const SIZE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Writer {
    pub(super) db: Database,
    pub(super) path: PathBuf,
    pub(super) policy: FsyncPolicy,
    pub(super) interval: Duration,
    /// Queue entries referencing each stored body.
    pub(super) refs: HashMap<u64, u32>,
    pub(super) stats: Arc<StoreStats>,
}

/// The open tables of one transaction, and what the batch changed in the counts.
struct Batch<'t> {
    retained: Table<'t, &'static str, &'static [u8]>,
    sessions: Table<'t, &'static str, &'static [u8]>,
    messages: Table<'t, u64, &'static [u8]>,
    queue: Table<'t, (u64, u64), &'static [u8]>,
    inbound: Table<'t, (u64, u16), ()>,
    refs: &'t HashMap<u64, u32>,
    delta: HashMap<u64, i64>,
    queued: i64,
}

impl Writer {
    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        let mut last_size = Instant::now();
        let mut last_error_log: Option<Instant> = None;
        let mut first_failure: Option<StorageError> = None;
        let mut commands = Vec::new();
        loop {
            let first = if unsynced && self.policy == FsyncPolicy::Periodic {
                match rx.recv_timeout(self.interval.saturating_sub(last_sync.elapsed())) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(command) => Some(command),
                    Err(_) => break,
                }
            };
            commands.extend(first);
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            let mut ops = Vec::with_capacity(commands.len());
            let mut waiters = Vec::new();
            let mut close = None;
            for command in commands.drain(..) {
                match command {
                    Command::Op(op) => ops.push(op),
                    Command::Barrier(tx) => waiters.push(tx),
                    Command::Close(tx) => close = Some(tx),
                }
            }
            let durable = close.is_some()
                || match self.policy {
                    FsyncPolicy::Always => true,
                    FsyncPolicy::Periodic => last_sync.elapsed() >= self.interval,
                    FsyncPolicy::Never => false,
                };
            let mut result = if ops.is_empty() && !(durable && unsynced) {
                Ok(())
            } else {
                self.commit(&ops, durable)
            };
            // After an I/O error redb refuses every commit ("previous I/O error") until
            // it is reopened: report those as the error that caused it.
            match &result {
                Err(err @ StorageError::Full { .. }) => first_failure = Some(err.clone()),
                Err(StorageError::Io { message, .. }) if message.contains("revious I/O") => {
                    if let Some(first) = &first_failure {
                        result = Err(first.clone());
                    }
                }
                Err(err) => first_failure = Some(err.clone()),
                Ok(()) => {}
            }
            match &result {
                Ok(()) if durable => {
                    unsynced = false;
                    last_sync = Instant::now();
                }
                Ok(()) => unsynced |= !ops.is_empty(),
                Err(err) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::error!(%err, operations = ops.len(), "store: commit failed; the acknowledgements waiting on it are refused");
                        last_error_log = Some(Instant::now());
                    }
                }
            }
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
            if last_size.elapsed() >= SIZE_EVERY || close.is_some() {
                last_size = Instant::now();
                self.stats
                    .size_bytes
                    .store(file_size(&self.path), Ordering::Relaxed);
            }
            if let Some(done) = close {
                let _ = done.send(());
                return;
            }
        }
        // Every sender is gone (the broker was dropped without `close`): persist what
        // was applied without an fsync.
        if unsynced {
            let _ = self.commit(&[], true);
        }
    }

    fn commit(&mut self, ops: &[Op], durable: bool) -> Result<(), StorageError> {
        let path = self.path.clone();
        let e = |err: redb::Error| error(&path, err);
        let mut txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(|x| e(x.into()))?;
        let (delta, queued) = {
            let mut batch = Batch {
                retained: txn.open_table(RETAINED).map_err(|x| e(x.into()))?,
                sessions: txn.open_table(SESSIONS).map_err(|x| e(x.into()))?,
                messages: txn.open_table(MESSAGES).map_err(|x| e(x.into()))?,
                queue: txn.open_table(QUEUE).map_err(|x| e(x.into()))?,
                inbound: txn.open_table(INBOUND).map_err(|x| e(x.into()))?,
                refs: &self.refs,
                delta: HashMap::new(),
                queued: 0,
            };
            for op in ops {
                batch.apply(op).map_err(e)?;
            }
            (batch.delta, batch.queued)
        };
        txn.commit().map_err(|x| e(x.into()))?;
        for (id, change) in delta {
            let count = i64::from(self.refs.get(&id).copied().unwrap_or(0)) + change;
            if count > 0 {
                self.refs
                    .insert(id, u32::try_from(count).unwrap_or(u32::MAX));
            } else {
                self.refs.remove(&id);
            }
        }
        let stats = &self.stats;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .operations
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        stats
            .messages
            .store(self.refs.len() as u64, Ordering::Relaxed);
        if queued >= 0 {
            stats.queued.fetch_add(queued as u64, Ordering::Relaxed);
        } else {
            let _ = stats
                .queued
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                    Some(q.saturating_sub(queued.unsigned_abs()))
                });
        }
        Ok(())
    }
}

impl Batch<'_> {
    /// References to body `id` counting this batch's changes.
    fn count(&self, id: u64) -> i64 {
        i64::from(self.refs.get(&id).copied().unwrap_or(0))
            + self.delta.get(&id).copied().unwrap_or(0)
    }

    /// One reference to body `id` went; the body goes with its last one.
    fn unref(&mut self, id: u64) -> Result<(), redb::Error> {
        *self.delta.entry(id).or_insert(0) -= 1;
        if self.count(id) <= 0 {
            self.messages.remove(&id)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), redb::Error> {
        match op {
            Op::Retain(message) => {
                let body = codec::encode_message(message);
                self.retained.insert(&*message.topic, &*body)?;
            }
            Op::Unretain(topic) => {
                self.retained.remove(&**topic)?;
            }
            Op::PutSession { client_id, record } => {
                let value = codec::encode_session(record);
                self.sessions.insert(&**client_id, value.as_slice())?;
            }
            Op::DropSession { client_id, id } => {
                let current = self
                    .sessions
                    .get(&**client_id)?
                    .map(|v| codec::decode_session(v.value()).map(|r| r.id));
                if matches!(current, Some(Ok(current)) if current == *id)
                    || matches!(current, Some(Err(_)))
                {
                    self.sessions.remove(&**client_id)?;
                }
                let mut bodies = Vec::new();
                self.queue
                    .retain_in((*id, 0)..=(*id, u64::MAX), |_, value| {
                        bodies.push(codec::entry_message(value));
                        false
                    })?;
                for body in bodies {
                    self.queued -= 1;
                    if let Ok(body) = body {
                        self.unref(body)?;
                    }
                }
                self.inbound
                    .retain_in((*id, 0)..=(*id, u16::MAX), |_, _| false)?;
            }
            Op::Enqueue { at, entry, message } => {
                if self.count(at.message) <= 0 {
                    let body = codec::encode_message(message);
                    self.messages.insert(at.message, body.as_ref())?;
                }
                *self.delta.entry(at.message).or_insert(0) += 1;
                let value = codec::encode_entry(entry);
                let replaced = self
                    .queue
                    .insert((at.session, at.seq), value.as_slice())?
                    .map(|old| codec::entry_message(old.value()));
                match replaced {
                    Some(Ok(old)) => self.unref(old)?,
                    Some(Err(_)) => {}
                    None => self.queued += 1,
                }
            }
            Op::Assign {
                session,
                seq,
                packet_id,
            } => self.patch((*session, *seq), Some(*packet_id), false)?,
            Op::Release { session, seq } => self.patch((*session, *seq), None, true)?,
            Op::Dequeue { session, seq } => {
                let removed = self
                    .queue
                    .remove((*session, *seq))?
                    .map(|old| codec::entry_message(old.value()));
                if let Some(body) = removed {
                    self.queued -= 1;
                    if let Ok(body) = body {
                        self.unref(body)?;
                    }
                }
            }
            Op::Received { session, packet_id } => {
                self.inbound.insert((*session, packet_id.get()), ())?;
            }
            Op::Forget { session, packet_id } => {
                self.inbound.remove((*session, packet_id.get()))?;
            }
        }
        Ok(())
    }

    /// Records a QoS 2 entry's packet id or its PUBREC; a damaged entry is left as is.
    fn patch(
        &mut self,
        key: (u64, u64),
        packet_id: Option<protocol::PacketId>,
        released: bool,
    ) -> Result<(), redb::Error> {
        let current = self.queue.get(key)?.map(|v| v.value().to_vec());
        if let Some(Ok(patched)) = current.map(|v| codec::patch_entry(&v, packet_id, released)) {
            self.queue.insert(key, patched.as_slice())?;
        }
        Ok(())
    }
}
