//! Reading the store at start: every record verified ([`check`]) into a [`Snapshot`];
//! damage refuses the store before anything is written. Then the writes redb held
//! back are applied, and one write transaction removes what nothing references any
//! more (orphans, with a WARN) and expired retained messages, then the file is
//! compacted when much of it is free.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, ReadableDatabase};

use super::overlay::Overlay;
use super::{FORMAT, INBOUND, MESSAGES, META, QUEUE, RETAINED, SESSIONS, check, error, io_error};
use crate::storage::{Snapshot, StorageError, StoredSession};

/// Compact when the free space inside the file is more than this share of it...
const COMPACT_FREE_SHARE: u64 = 2;
/// ... and the file is at least this large.
const COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Loads everything; returns the database (for the writer), the snapshot and each
/// stored body's reference count. `overlay`: redb's held-back writes, applied once the
/// store is found intact (dropped with the database otherwise).
pub(super) fn load(
    mut db: Database,
    overlay: Option<&Overlay>,
    path: &Path,
) -> Result<(Database, Snapshot, HashMap<u64, u32>), StorageError> {
    let e = |err: redb::Error| error(path, err);
    let (contents, mut damage) = {
        let txn = db.begin_read().map_err(|x| e(x.into()))?;
        check::read_contents(&txn)
    };
    let orphans = check::check_references(&contents, &mut damage);
    if !damage.is_empty() {
        return Err(StorageError::Corrupt {
            path: path.into(),
            detail: check::summary(&damage),
        });
    }
    // Intact: from here on the broker writes.
    if let Some(overlay) = overlay {
        overlay.apply().map_err(|err| io_error(path, &err))?;
    }
    // Create the tables of a new store, and mark the format.
    {
        let txn = db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
            if contents.format != Some(FORMAT) {
                meta.insert("format", FORMAT).map_err(|x| e(x.into()))?;
            }
            txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
            txn.open_table(INBOUND).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))?;
    }
    if contents.unchecked > 0 {
        tracing::info!(
            records = contents.unchecked,
            "store: records written before checksums (format 1) are read without one; they \
             get one when rewritten"
        );
    }

    let now = crate::clock::now();
    let mut snapshot = Snapshot::default();
    let mut garbage = Garbage {
        queue: orphans.queue.clone(),
        bodies: orphans.bodies.clone(),
        inbound: orphans.inbound.clone(),
        retained: Vec::new(),
    };
    let mut max_id = 0u64;
    for (topic, message) in contents.retained {
        if message.is_expired(now) {
            garbage.retained.push(topic);
        } else {
            snapshot.retained.push(message);
        }
    }
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    for (client_id, record) in contents.sessions {
        max_id = max_id.max(record.id);
        by_id.insert(record.id, snapshot.sessions.len());
        snapshot.sessions.push(StoredSession {
            client_id,
            record,
            queue: Vec::new(),
            inbound: Vec::new(),
        });
    }
    max_id = max_id.max(contents.bodies.keys().copied().max().unwrap_or(0));
    let mut refs: HashMap<u64, u32> = HashMap::new();
    for ((session, seq), entry) in contents.queue {
        max_id = max_id.max(seq);
        let (Some(&index), Some(body)) = (by_id.get(&session), contents.bodies.get(&entry.message))
        else {
            continue; // an orphan (checked above), collected below
        };
        *refs.entry(entry.message).or_insert(0) += 1;
        let body = body.clone();
        snapshot.sessions[index].queue.push((seq, entry, body));
    }
    for (session, packet_id) in contents.inbound {
        if let (Some(&index), Some(id)) = (by_id.get(&session), protocol::PacketId::new(packet_id))
        {
            snapshot.sessions[index].inbound.push(id);
        }
    }
    snapshot.next_id = max_id.saturating_add(1);
    if !orphans.is_empty() {
        tracing::warn!(
            path = %path.display(),
            queue = orphans.queue.len(),
            inbound = orphans.inbound.len(),
            bodies = orphans.bodies.len(),
            "store: removing orphaned records (queue entries and inbound ids of sessions that \
             are gone, bodies nothing references: left by a stop between two commits that \
             belong together)"
        );
    }
    if !garbage.is_empty() {
        tracing::debug!(
            retained = garbage.retained.len(),
            "store: removing expired retained messages"
        );
        garbage.remove(&db).map_err(e)?;
    }
    compact_if_worth_it(&mut db, path)?;
    Ok((db, snapshot, refs))
}

/// What loading found that nothing references or that expired.
#[derive(Debug, Default)]
struct Garbage {
    queue: Vec<(u64, u64)>,
    bodies: Vec<u64>,
    inbound: Vec<(u64, u16)>,
    retained: Vec<String>,
}

impl Garbage {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
            && self.bodies.is_empty()
            && self.inbound.is_empty()
            && self.retained.is_empty()
    }

    fn remove(&self, db: &Database) -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut queue = txn.open_table(QUEUE)?;
            for key in &self.queue {
                queue.remove(key)?;
            }
            let mut messages = txn.open_table(MESSAGES)?;
            for id in &self.bodies {
                messages.remove(id)?;
            }
            let mut inbound = txn.open_table(INBOUND)?;
            for key in &self.inbound {
                inbound.remove(key)?;
            }
            let mut retained = txn.open_table(RETAINED)?;
            for topic in &self.retained {
                retained.remove(topic.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Compacts the file when more than half of it is free space (what deleted messages
/// left behind), so a store that once held a large backlog shrinks again.
fn compact_if_worth_it(db: &mut Database, path: &Path) -> Result<(), StorageError> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    if size < COMPACT_MIN_BYTES {
        return Ok(());
    }
    let stats = {
        let txn = db.begin_write().map_err(|x| error(path, x))?;
        let stats = txn.stats().map_err(|x| error(path, x))?;
        txn.abort().map_err(|x| error(path, x))?;
        stats
    };
    let used = stats.allocated_pages() * stats.page_size() as u64;
    if size.saturating_sub(used) * COMPACT_FREE_SHARE < size {
        return Ok(());
    }
    let started = std::time::Instant::now();
    db.compact().map_err(|x| error(path, x))?;
    tracing::info!(
        before = size,
        after = std::fs::metadata(path).map_or(0, |m| m.len()),
        ms = started.elapsed().as_millis() as u64,
        "store compacted"
    );
    Ok(())
}
