//! Reading the store at start: every table into a [`Snapshot`], then one write
//! transaction that removes what nothing references any more (queue entries and
//! inbound ids of sessions that are gone, unreferenced bodies, expired retained
//! messages), then compaction when much of the file is free.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytestring::ByteString;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{FORMAT, INBOUND, MESSAGES, META, QUEUE, RETAINED, SESSIONS, error};
use crate::message::Message;
use crate::storage::codec::{self, CodecError};
use crate::storage::{Snapshot, StorageError, StoredSession};

/// Compact when the free space inside the file is more than this share of it...
const COMPACT_FREE_SHARE: u64 = 2;
/// ... and the file is at least this large.
const COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;

fn corrupt(path: &Path, err: CodecError) -> StorageError {
    StorageError::Corrupt {
        path: path.into(),
        detail: err.to_string(),
    }
}

/// Loads everything; returns the database (for the writer), the snapshot and each
/// stored body's reference count.
pub(super) fn load(
    mut db: Database,
    path: &Path,
) -> Result<(Database, Snapshot, HashMap<u64, u32>), StorageError> {
    let e = |err: redb::Error| error(path, err);
    // Create the tables of a new store, and check the format of an old one.
    {
        let txn = db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
            let format = meta
                .get("format")
                .map_err(|x| e(x.into()))?
                .map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(|x| e(x.into()))?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(StorageError::Corrupt {
                        path: path.into(),
                        detail: format!("store format {other}, this broker reads {FORMAT}"),
                    });
                }
            }
            txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
            txn.open_table(INBOUND).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))?;
    }

    let now = crate::clock::now();
    let mut snapshot = Snapshot::default();
    let mut max_id = 0u64;
    let mut garbage = Garbage::default();
    let mut refs: HashMap<u64, u32> = HashMap::new();
    {
        let txn = db.begin_read().map_err(|x| e(x.into()))?;
        let retained = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
        for item in retained.iter().map_err(|x| e(x.into()))? {
            let (topic, body) = item.map_err(|x| e(x.into()))?;
            let message = codec::decode_message(body.value()).map_err(|x| corrupt(path, x))?;
            if message.is_expired(now) {
                garbage.retained.push(topic.value().into());
            } else {
                snapshot.retained.push(Arc::new(message));
            }
        }

        let sessions = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        for item in sessions.iter().map_err(|x| e(x.into()))? {
            let (client_id, value) = item.map_err(|x| e(x.into()))?;
            let record = codec::decode_session(value.value()).map_err(|x| corrupt(path, x))?;
            max_id = max_id.max(record.id);
            by_id.insert(record.id, snapshot.sessions.len());
            snapshot.sessions.push(StoredSession {
                client_id: ByteString::from(client_id.value()),
                record,
                queue: Vec::new(),
                inbound: Vec::new(),
            });
        }

        let messages = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
        let mut bodies: HashMap<u64, Arc<Message>> = HashMap::with_capacity(
            usize::try_from(messages.len().map_err(|x| e(x.into()))?).unwrap_or(0),
        );
        for item in messages.iter().map_err(|x| e(x.into()))? {
            let (id, body) = item.map_err(|x| e(x.into()))?;
            let id = id.value();
            max_id = max_id.max(id);
            let message = codec::decode_message(body.value()).map_err(|x| corrupt(path, x))?;
            bodies.insert(id, Arc::new(message));
        }

        let queue = txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
        for item in queue.iter().map_err(|x| e(x.into()))? {
            let (key, value) = item.map_err(|x| e(x.into()))?;
            let (session, seq) = key.value();
            max_id = max_id.max(seq);
            let entry = codec::decode_entry(value.value()).map_err(|x| corrupt(path, x))?;
            let (Some(&index), Some(body)) = (by_id.get(&session), bodies.get(&entry.message))
            else {
                garbage.queue.push((session, seq));
                continue;
            };
            *refs.entry(entry.message).or_insert(0) += 1;
            snapshot.sessions[index]
                .queue
                .push((seq, entry, body.clone()));
        }
        let referenced: HashSet<u64> = refs.keys().copied().collect();
        garbage
            .bodies
            .extend(bodies.keys().filter(|id| !referenced.contains(id)));

        let inbound = txn.open_table(INBOUND).map_err(|x| e(x.into()))?;
        for item in inbound.iter().map_err(|x| e(x.into()))? {
            let (key, _) = item.map_err(|x| e(x.into()))?;
            let (session, packet_id) = key.value();
            match (by_id.get(&session), protocol::PacketId::new(packet_id)) {
                (Some(&index), Some(id)) => snapshot.sessions[index].inbound.push(id),
                _ => garbage.inbound.push((session, packet_id)),
            }
        }
    }
    snapshot.next_id = max_id.saturating_add(1);
    if !garbage.is_empty() {
        tracing::info!(
            queue = garbage.queue.len(),
            bodies = garbage.bodies.len(),
            inbound = garbage.inbound.len(),
            retained = garbage.retained.len(),
            "store: removing orphaned and expired data"
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
