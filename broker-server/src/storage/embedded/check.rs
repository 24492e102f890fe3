//! Reading every record of a store and judging it: what the broker does before it
//! accepts a store at start, and what `broker-server store check` / `store repair` do.
//!
//! Every table is scanned from both ends: a damaged page stops a scan, so the records
//! on its far side are reached from the other end. Every record is verified against
//! its checksum (see [`codec`]) and decoded; then references are checked (a queue
//! entry's body and session must exist).
//!
//! What counts as damage (the broker refuses to start, `store check` fails):
//! - a record that fails its checksum or does not decode, a table that cannot be read;
//! - a queue entry whose message body is missing or damaged (a message would be lost);
//! - an inbound QoS 2 id of 0.
//!
//! What counts as orphaned (logged as a WARN with counts, then removed): queue entries
//! and inbound ids of a session incarnation that no session record has, and bodies no
//! queue entry references. These are left when the broker stops between two commits
//! that belong together (a session replaced, then its old incarnation dropped). A
//! damaged key cannot make one: the record checksum covers the key, so it is damage.
//! Expired retained messages are removed as before, without a warning.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};

use bytestring::ByteString;
use redb::{ReadTransaction, ReadableTable, TableDefinition};

use super::{FORMAT, INBOUND, MESSAGES, META, QUEUE, RETAINED, SESSIONS};
use crate::message::Message;
use crate::storage::codec;
use crate::storage::{QueueEntry, SessionRecord};

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `None` without printing it: redb may panic on a
/// damaged file (its debug assertions, or a page that is not what the tree says), and
/// the user is told what is wrong with the store, not shown a backtrace. Only panics on
/// this thread inside `quietly` are silenced; every other panic is printed as usual.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.ok()
}

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The table.
    pub table: &'static str,
    /// Which record (its key as a person reads it), or which part of the table.
    pub record: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.table, self.record, self.why)
    }
}

/// What nothing references any more (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct Orphans {
    /// Queue entries of session incarnations that have no record.
    pub queue: Vec<(u64, u64)>,
    /// Inbound QoS 2 ids of session incarnations that have no record.
    pub inbound: Vec<(u64, u16)>,
    /// Message bodies no queue entry references.
    pub bodies: Vec<u64>,
}

impl Orphans {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.inbound.is_empty() && self.bodies.is_empty()
    }
}

/// Every record that is intact, decoded.
#[derive(Debug, Default)]
pub(super) struct Contents {
    /// `meta` `format` (`None`: a new store, or a meta table that could not be read).
    pub(super) format: Option<u64>,
    /// Retained messages by topic.
    pub(super) retained: Vec<(String, Arc<Message>)>,
    /// Session records by client id.
    pub(super) sessions: Vec<(ByteString, SessionRecord)>,
    /// Message bodies by id, for the queue entries that reference them.
    pub(super) bodies: HashMap<u64, Arc<Message>>,
    /// Queue entries by (session incarnation, position), in key order.
    pub(super) queue: Vec<((u64, u64), QueueEntry)>,
    /// Inbound QoS 2 ids by (session incarnation, packet id).
    pub(super) inbound: Vec<(u64, u16)>,
    /// Records per table, intact (checked or written before checksums).
    pub(super) intact: [u64; 5],
    /// Of those, records written before checksums (version 1).
    pub(super) unchecked: u64,
}

/// Table names in the order of [`Contents::intact`].
pub(super) const TABLES: [&str; 5] = ["retained", "sessions", "messages", "queue", "inbound"];

/// Scans one table from both ends, calling `each` for every entry read; a read error or
/// a panic ends a direction and is recorded as damage.
fn scan<K, V>(
    txn: &ReadTransaction,
    table: TableDefinition<'_, K, V>,
    name: &'static str,
    damage: &mut Vec<Damage>,
    mut each: impl FnMut(K::SelfType<'_>, V::SelfType<'_>),
) where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let opened = quietly(|| txn.open_table(table));
    let table = match opened {
        Some(Ok(table)) => table,
        Some(Err(redb::TableError::TableDoesNotExist(_))) => return,
        Some(Err(err)) => {
            damage.push(Damage {
                table: name,
                record: "(the table)".into(),
                why: format!("cannot be opened: {err}"),
            });
            return;
        }
        None => {
            damage.push(Damage {
                table: name,
                record: "(the table)".into(),
                why: "cannot be opened: its pages are damaged".into(),
            });
            return;
        }
    };
    // Forward until the end or the first error.
    let mut last_forward: Option<Vec<u8>> = None;
    let mut broken: Option<String> = None;
    let forward = quietly(|| -> Result<(), String> {
        for item in table.iter().map_err(|e| e.to_string())? {
            let (key, value) = item.map_err(|e| e.to_string())?;
            last_forward = Some(K::as_bytes(&key.value()).as_ref().to_vec());
            each(key.value(), value.value());
        }
        Ok(())
    });
    match forward {
        Some(Ok(())) => return,
        Some(Err(err)) => broken = Some(err),
        None => {}
    }
    let why = broken.unwrap_or_else(|| "its pages are damaged".into());
    // Backward from the end down to where the forward scan stopped.
    let mut backward_count = 0u64;
    let backward = quietly(|| -> Result<(), String> {
        for item in table.iter().map_err(|e| e.to_string())?.rev() {
            let (key, value) = item.map_err(|e| e.to_string())?;
            if last_forward.as_deref() == Some(K::as_bytes(&key.value()).as_ref()) {
                break;
            }
            backward_count += 1;
            each(key.value(), value.value());
        }
        Ok(())
    });
    let reached = if matches!(backward, Some(Ok(()))) {
        "(the rest was read from the other end)"
    } else {
        "(records between the damaged pages are lost)"
    };
    damage.push(Damage {
        table: name,
        record: "(part of the table)".into(),
        why: format!("cannot be read: {why} {reached}; {backward_count} read from the end"),
    });
}

fn quoted(key: &str) -> String {
    format!("{key:?}")
}

/// Reads every record of the store `txn` sees: the intact ones decoded, the rest as
/// [`Damage`].
pub(super) fn read_contents(txn: &ReadTransaction) -> (Contents, Vec<Damage>) {
    let mut c = Contents::default();
    let mut damage = Vec::new();
    let mut records = Vec::new();
    let mut bad = |table: &'static str, record: String, err: codec::CodecError| {
        records.push(Damage {
            table,
            record,
            why: err.why,
        });
    };

    scan(txn, META, "meta", &mut damage, |name, value| {
        if name == "format" {
            c.format = Some(value);
        }
    });
    scan(
        txn,
        RETAINED,
        "retained",
        &mut damage,
        |topic, body| match codec::decode_message(body, topic.as_bytes()) {
            Ok(message) => {
                c.intact[0] += 1;
                c.unchecked += u64::from(!codec::is_checked(body));
                c.retained.push((topic.to_string(), Arc::new(message)));
            }
            Err(err) => bad("retained", quoted(topic), err),
        },
    );
    scan(
        txn,
        SESSIONS,
        "sessions",
        &mut damage,
        |client_id, value| match codec::decode_session(value, client_id.as_bytes()) {
            Ok(record) => {
                c.intact[1] += 1;
                c.unchecked += u64::from(!codec::is_checked(value));
                c.sessions.push((ByteString::from(client_id), record));
            }
            Err(err) => bad("sessions", quoted(client_id), err),
        },
    );
    scan(
        txn,
        MESSAGES,
        "messages",
        &mut damage,
        |id, body| match codec::decode_message(body, &codec::message_key(id)) {
            Ok(message) => {
                c.intact[2] += 1;
                c.unchecked += u64::from(!codec::is_checked(body));
                c.bodies.insert(id, Arc::new(message));
            }
            Err(err) => bad("messages", format!("body {id}"), err),
        },
    );
    scan(
        txn,
        QUEUE,
        "queue",
        &mut damage,
        |(session, seq), value| match codec::decode_entry(value, &codec::queue_key(session, seq)) {
            Ok(entry) => {
                c.intact[3] += 1;
                c.unchecked += u64::from(!codec::is_checked(value));
                c.queue.push(((session, seq), entry));
            }
            Err(err) => bad("queue", queue_name(session, seq), err),
        },
    );
    scan(
        txn,
        INBOUND,
        "inbound",
        &mut damage,
        |(session, packet_id), ()| {
            if packet_id == 0 {
                bad(
                    "inbound",
                    format!("session {session} packet id 0"),
                    codec::CodecError {
                        what: "inbound",
                        why: "packet id 0".into(),
                    },
                );
            } else {
                c.intact[4] += 1;
                c.inbound.push((session, packet_id));
            }
        },
    );
    // A scan that read only part of a table visits its entries out of order.
    c.queue.sort_unstable_by_key(|(key, _)| *key);
    c.queue.dedup_by_key(|(key, _)| *key);
    damage.extend(records);
    (c, damage)
}

fn queue_name(session: u64, seq: u64) -> String {
    format!("(session {session}, position {seq})")
}

/// Checks references between the records read: a queue entry needs its body (else a
/// message is lost: damage) and its session (else it is an orphan, like an inbound id
/// without a session and a body without a queue entry). `damaged_sessions`: whether a
/// session record failed to read, in which case queue entries without a session may
/// be that session's, and count as lost with it rather than as orphans.
pub(super) fn check_references(c: &Contents, damage: &mut Vec<Damage>) -> Orphans {
    let sessions: HashSet<u64> = c.sessions.iter().map(|(_, r)| r.id).collect();
    let sessions_damaged = damage.iter().any(|d| d.table == "sessions");
    let mut orphans = Orphans::default();
    let mut referenced = HashSet::new();
    for ((session, seq), entry) in &c.queue {
        if !sessions.contains(session) {
            if sessions_damaged {
                damage.push(Damage {
                    table: "queue",
                    record: queue_name(*session, *seq),
                    why: "its session record is damaged or missing".into(),
                });
            } else {
                orphans.queue.push((*session, *seq));
            }
            continue;
        }
        if !c.bodies.contains_key(&entry.message) {
            damage.push(Damage {
                table: "queue",
                record: queue_name(*session, *seq),
                why: format!("its message body {} is damaged or missing", entry.message),
            });
            continue;
        }
        referenced.insert(entry.message);
    }
    for (session, packet_id) in &c.inbound {
        if !sessions.contains(session) {
            orphans.inbound.push((*session, *packet_id));
        }
    }
    orphans.bodies = c
        .bodies
        .keys()
        .filter(|id| !referenced.contains(id))
        .copied()
        .collect();
    orphans.bodies.sort_unstable();
    if let Some(format) = c.format
        && format > FORMAT
    {
        damage.push(Damage {
            table: "meta",
            record: "format".into(),
            why: format!("store format {format}, this broker reads up to {FORMAT}"),
        });
    }
    orphans
}

/// The first few damaged records, for an error message.
pub(super) fn summary(damage: &[Damage]) -> String {
    const SHOWN: usize = 5;
    let mut text = damage
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if damage.len() > SHOWN {
        text.push_str(&format!("; and {} more", damage.len() - SHOWN));
    }
    text
}
