//! The writer thread: group commit.
//!
//! It blocks for the first command, then takes every command that queued up meanwhile
//! (up to [`MAX_BATCH`]) and applies their operations in one write transaction, then
//! answers every barrier of the batch with the commit's result. While it commits (an
//! fsync takes around a millisecond on an SSD, far more on a disk), new commands pile
//! up for the next batch, so the number of fsyncs adapts to the load instead of growing
//! with it.
//!
//! A failed commit is final: from then on every batch fails with its error, without
//! writing, until the broker restarts (see `Writer::apply_batch` for why).
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
use crate::config::FsyncPolicy;
use crate::storage::codec;
use crate::storage::{Op, StorageError, StoreStats};

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
    /// The error of the first commit that failed: every later barrier fails with it.
    pub(super) failed: Option<StorageError>,
}

/// Where a batch of `commands` may end: after the last command at which every group
/// opened so far is closed, or after a close of the store. `None`: a group is open from
/// the first command to the last, so the batch must wait for more. A batch that starts
/// has no group open: it starts where the previous one ended.
fn cut_point(commands: &[Command]) -> Option<usize> {
    let mut open = 0usize;
    let mut cut = 0;
    for (i, command) in commands.iter().enumerate() {
        match command {
            Command::OpenGroup => open += 1,
            Command::CloseGroup => open = open.saturating_sub(1),
            Command::Close(_) => return Some(i + 1),
            Command::Op(_) | Command::Barrier(_) => {}
        }
        if open == 0 {
            cut = i + 1;
        }
    }
    (cut > 0 || commands.is_empty()).then_some(cut)
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
            // A batch never ends inside a group: wait for the rest of an open one, and
            // leave what follows the last complete one to the next batch.
            let cut = loop {
                if let Some(cut) = cut_point(&commands) {
                    break cut;
                }
                match rx.recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break commands.len(),
                }
            };
            let rest = commands.split_off(cut);
            let mut ops = Vec::with_capacity(commands.len());
            let mut waiters = Vec::new();
            let mut close = None;
            for command in commands.drain(..) {
                match command {
                    Command::Op(op) => ops.push(op),
                    Command::Barrier(tx) => waiters.push(tx),
                    Command::Close(tx) => close = Some(tx),
                    Command::OpenGroup | Command::CloseGroup => {}
                }
            }
            commands = rest;
            let durable = close.is_some()
                || match self.policy {
                    FsyncPolicy::Always => true,
                    FsyncPolicy::Periodic => last_sync.elapsed() >= self.interval,
                    FsyncPolicy::Never => false,
                };
            let result = self.apply_batch(&ops, durable, unsynced);
            match &result {
                Ok(()) if durable => {
                    unsynced = false;
                    last_sync = Instant::now();
                }
                Ok(()) => unsynced |= !ops.is_empty(),
                Err(err) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::error!(%err, operations = ops.len(), "store failed: acknowledgements that depend on it are refused until the broker restarts");
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
        if unsynced && self.failed.is_none() {
            let _ = self.commit(&[], true);
        }
    }

    /// Applies one batch: its operations in one transaction, durable if `durable` (or
    /// only an fsync of earlier commits when `unsynced` and there are none); the result
    /// answers every barrier of the batch.
    ///
    /// A failed commit is final. Its operations are lost, so no later barrier can
    /// truthfully say "everything submitted before me is durable": the barrier of a
    /// publish whose operation was in the failed batch may well arrive in the next one
    /// (the connection submits the operation, then the barrier, and the writer can take
    /// a batch in between). Neither an empty next batch nor a later commit that happens
    /// to succeed (redb does not fail every later write after every error, e.g. not
    /// after a failed flush of its write buffer) may resolve it. So from the first
    /// failure on, the writer writes nothing more and answers every barrier with that
    /// error, until the broker is restarted (which reopens and repairs the file).
    pub(super) fn apply_batch(
        &mut self,
        ops: &[Op],
        durable: bool,
        unsynced: bool,
    ) -> Result<(), StorageError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if ops.is_empty() && !(durable && unsynced) {
            return Ok(());
        }
        let result = self.commit(ops, durable);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
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
                let body = codec::encode_message(message, message.topic.as_bytes());
                self.retained.insert(&*message.topic, &*body)?;
            }
            Op::Unretain(topic) => {
                self.retained.remove(&**topic)?;
            }
            Op::PutSession { client_id, record } => {
                let value = codec::encode_session(record, client_id.as_bytes());
                self.sessions.insert(&**client_id, value.as_slice())?;
            }
            Op::DropSession { client_id, id } => {
                let current = self
                    .sessions
                    .get(&**client_id)?
                    .map(|v| codec::session_id(v.value()));
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
                    let body = codec::encode_message(message, &codec::message_key(at.message));
                    self.messages.insert(at.message, body.as_ref())?;
                }
                *self.delta.entry(at.message).or_insert(0) += 1;
                let value = codec::encode_entry(entry, &codec::queue_key(at.session, at.seq));
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
        let patched = current
            .map(|v| codec::patch_entry(&v, &codec::queue_key(key.0, key.1), packet_id, released));
        if let Some(Ok(patched)) = patched {
            self.queue.insert(key, patched.as_slice())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::AtomicBool;

    use protocol::QoS;
    use redb::StorageBackend;
    use redb::backends::InMemoryBackend;

    use super::*;
    use crate::storage::codec::plain_message;
    use crate::storage::{QueueEntry, StoredRef};

    /// A database in memory whose writes fail with ENOSPC while `full` is set.
    #[derive(Debug)]
    struct Disk {
        inner: InMemoryBackend,
        full: Arc<AtomicBool>,
    }

    impl Disk {
        fn check(&self) -> io::Result<()> {
            if self.full.load(Ordering::Relaxed) {
                Err(io::Error::from_raw_os_error(28))
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for Disk {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    fn writer(full: &Arc<AtomicBool>) -> Writer {
        let disk = Disk {
            inner: InMemoryBackend::new(),
            full: full.clone(),
        };
        Writer {
            db: Database::builder().create_with_backend(disk).unwrap(),
            path: "memory".into(),
            policy: FsyncPolicy::Always,
            interval: Duration::from_secs(1),
            refs: HashMap::new(),
            stats: Arc::default(),
            failed: None,
        }
    }

    fn enqueue(n: u64) -> Op {
        Op::Enqueue {
            at: StoredRef {
                session: 1,
                seq: n,
                message: n,
            },
            entry: QueueEntry {
                message: n,
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Default::default(),
                shared_group: None,
                packet_id: None,
                released: false,
            },
            message: plain_message("a", vec![b'x'; 1024], QoS::AtLeastOnce, false),
        }
    }

    /// The race behind a lost acknowledgement on a full disk: a publish's operation is
    /// taken into a batch whose commit fails, its barrier arrives only for the next
    /// batch. That barrier must fail too, whether the next batch is empty or commits.
    #[test]
    fn after_a_failed_commit_every_later_barrier_fails_with_its_error() {
        let full = Arc::new(AtomicBool::new(false));
        let mut writer = writer(&full);
        assert!(writer.apply_batch(&[enqueue(1)], true, false).is_ok());

        full.store(true, Ordering::Relaxed);
        let failed = writer.apply_batch(&[enqueue(2)], true, false);
        assert!(
            matches!(failed, Err(StorageError::Full { .. })),
            "{failed:?}"
        );

        // Room again: the lost operation stays lost, so nothing after it is durable.
        full.store(false, Ordering::Relaxed);
        let barrier_only = writer.apply_batch(&[], true, false);
        assert!(
            matches!(barrier_only, Err(StorageError::Full { .. })),
            "{barrier_only:?}"
        );
        let next = writer.apply_batch(&[enqueue(3)], true, false);
        assert!(matches!(next, Err(StorageError::Full { .. })), "{next:?}");
    }

    /// A batch ends only where no group is open: a publish's operations and the record
    /// of its packet id are never split by a commit (and so by a crash), whatever other
    /// connections submit in between.
    #[test]
    fn a_batch_never_ends_inside_a_group() {
        use Command::{CloseGroup as C, OpenGroup as O};
        use tokio::sync::oneshot;
        let op = || Command::Op(enqueue(1));
        let barrier = || Command::Barrier(oneshot::channel().0);
        assert_eq!(cut_point(&[]), Some(0));
        assert_eq!(cut_point(&[op(), op()]), Some(2));
        // A group open to the end: what precedes it is a batch, the group waits.
        assert_eq!(cut_point(&[op(), barrier(), O, op()]), Some(2));
        assert_eq!(cut_point(&[O, op(), barrier()]), None);
        // Two groups that overlap (two connections): the batch ends after both.
        assert_eq!(
            cut_point(&[O, op(), O, op(), C, op(), C, barrier()]),
            Some(8)
        );
        assert_eq!(cut_point(&[O, op(), O, C, op()]), None);
        // A close ends the batch even inside a group (a clean shutdown, no crash).
        assert_eq!(
            cut_point(&[O, op(), Command::Close(oneshot::channel().0)]),
            Some(3)
        );
    }
}
