//! `broker-server store check` and `store repair`: what is intact in a store and what
//! is not, and a new store holding everything intact.
//!
//! `check` writes nothing (redb's writes while opening are held back and dropped, see
//! [`super::overlay`]). `repair` writes the new store next to the old one
//! (`broker.redb.repairing`), then renames the damaged file to
//! `broker.redb.damaged-<unix seconds>` and the new one to `broker.redb`: at every
//! moment one of the two is complete on disk.
//!
//! Where the records are read from: a file that was closed cleanly through a read-only
//! open of its newest commit, every record verified by its own checksum (so the intact
//! records of a commit whose pages are damaged are kept); a file that was not through
//! redb's repair (held back, as at start), or, if that fails, redb's plain recovery.

use std::fmt;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};

use super::check::{self, Contents, Damage, Orphans, TABLES};
use super::{
    FILE_NAME, FORMAT, INBOUND, MESSAGES, META, QUEUE, RETAINED, SESSIONS, error, io_error,
    open_verifying, overlay,
};
use crate::storage::{StorageError, codec};

/// What `store check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The store file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was not closed cleanly (redb repairs it at the next start).
    pub unclean: bool,
    /// Damage redb's own integrity check found (page checksums, file structure).
    pub file_damage: Option<String>,
    /// Whether the records could be read at all.
    pub readable: bool,
    /// Intact records by table.
    pub intact: Vec<(&'static str, u64)>,
    /// Of those, records written before checksums (not verifiable one by one).
    pub unchecked: u64,
    /// Damaged records.
    pub damage: Vec<Damage>,
    /// Orphaned records (removed at start with a WARN; not damage).
    pub orphans: Orphans,
}

impl CheckReport {
    /// Whether the broker would accept the store.
    pub fn is_intact(&self) -> bool {
        self.file_damage.is_none() && self.readable && self.damage.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store: {} ({} bytes)", self.path.display(), self.size)?;
        if self.unclean {
            writeln!(
                f,
                "not closed cleanly: redb repairs it at the next start (checked on a held-back copy here)"
            )?;
        }
        match &self.file_damage {
            Some(detail) => writeln!(f, "file: DAMAGED: {detail}")?,
            None => writeln!(f, "file: page checksums and structure intact")?,
        }
        if !self.readable {
            writeln!(f, "records: none could be read")?;
        } else {
            for (table, count) in &self.intact {
                writeln!(f, "{table}: {count} intact")?;
            }
            if self.unchecked > 0 {
                writeln!(
                    f,
                    "({} of them written before checksums: read, not verifiable one by one)",
                    self.unchecked
                )?;
            }
        }
        if !self.orphans.is_empty() {
            writeln!(
                f,
                "orphaned (removed at start, not damage): {} queue entries, {} inbound ids, {} bodies",
                self.orphans.queue.len(),
                self.orphans.inbound.len(),
                self.orphans.bodies.len()
            )?;
        }
        for damage in &self.damage {
            writeln!(f, "DAMAGED: {damage}")?;
        }
        if self.is_intact() {
            write!(f, "result: intact")
        } else {
            write!(
                f,
                "result: DAMAGED; `broker-server store repair` writes a new store with everything intact"
            )
        }
    }
}

/// What `store repair` did.
#[derive(Debug)]
pub struct RepairReport {
    /// What was found (before the repair).
    pub check: CheckReport,
    /// Where the damaged file now is (`None`: it was intact, nothing was changed).
    pub damaged_copy: Option<PathBuf>,
    /// Records written to the new store, by table.
    pub kept: Vec<(&'static str, u64)>,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.check)?;
        let Some(copy) = &self.damaged_copy else {
            return write!(f, "repair: the store is intact; nothing was changed");
        };
        writeln!(f, "repair: new store {}", self.check.path.display())?;
        for (table, count) in &self.kept {
            writeln!(f, "  {table}: {count} kept")?;
        }
        writeln!(
            f,
            "lost: {} damaged records (listed above)",
            self.check.damage.len()
        )?;
        if !self.check.orphans.is_empty() {
            writeln!(
                f,
                "dropped orphans: {} queue entries, {} inbound ids, {} bodies",
                self.check.orphans.queue.len(),
                self.check.orphans.inbound.len(),
                self.check.orphans.bodies.len()
            )?;
        }
        write!(f, "the damaged store is kept as {}", copy.display())
    }
}

/// The store file of `dir`.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads and judges the store in `dir`, writing nothing.
pub fn check(dir: &Path) -> Result<CheckReport, StorageError> {
    inspect(&store_path(dir)).map(|(report, _)| report)
}

fn read_with(db: &impl ReadableDatabase) -> Option<(Contents, Vec<Damage>)> {
    let txn = db.begin_read().ok()?;
    Some(check::read_contents(&txn))
}

/// The report, and the intact records when any could be read.
fn inspect(path: &Path) -> Result<(CheckReport, Option<Contents>), StorageError> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) => return Err(io_error(path, &err)),
    };
    let mut report = CheckReport {
        path: path.into(),
        size,
        unclean: false,
        file_damage: None,
        readable: false,
        intact: Vec::new(),
        unchecked: 0,
        damage: Vec::new(),
        orphans: Orphans::default(),
    };
    if size == 0 {
        report.file_damage = Some("the file is empty (0 bytes)".into());
        return Ok((report, None));
    }
    // Read-only (and so only possible for a file closed cleanly): its newest commit.
    let read_only = match check::quietly(|| Database::builder().open_read_only(path)) {
        Some(Ok(db)) => check::quietly(|| read_with(&db)).flatten(),
        Some(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(StorageError::Locked { path: path.into() });
        }
        Some(Err(redb::DatabaseError::RepairAborted)) => {
            report.unclean = true;
            None
        }
        _ => None,
    };
    let verified = open_verifying(path, false);
    let mut read = read_only;
    match verified {
        Ok(verified) => {
            report.unclean |= verified.unclean;
            if verified.rolled_back && !verified.unclean {
                report.file_damage =
                    Some("redb's integrity check: the newest commit fails its checksums".into());
            }
            if read.is_none() {
                read = check::quietly(|| read_with(&verified.db)).flatten();
            }
            // Dropped unapplied: nothing is written.
        }
        Err(StorageError::Corrupt { detail, .. }) => {
            report.file_damage = Some(detail);
            if read.is_none() {
                read = check::quietly(|| plain_read(path)).flatten();
            }
        }
        Err(other) => return Err(other),
    }
    let Some((contents, mut damage)) = read else {
        return Ok((report, None));
    };
    report.orphans = check::check_references(&contents, &mut damage);
    report.readable = true;
    report.intact = TABLES.iter().copied().zip(contents.intact).collect();
    report.unchecked = contents.unchecked;
    report.damage = damage;
    Ok((report, Some(contents)))
}

/// redb's ordinary recovery (no integrity check) on a held-back copy: the last resort
/// for a file not closed cleanly that fails the integrity check.
fn plain_read(path: &Path) -> Option<(Contents, Vec<Damage>)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ok()?;
    let (_overlay, backend) = overlay::Overlay::new(file).ok()?;
    let db = Database::builder().create_with_backend(backend).ok()?;
    read_with(&db)
}

/// Writes a new store with everything intact in the store of `dir`, keeps the damaged
/// one renamed, and reports what was lost. An intact store is left as it is.
pub fn repair(dir: &Path) -> Result<RepairReport, StorageError> {
    let path = store_path(dir);
    let (report, contents) = inspect(&path)?;
    if report.is_intact() {
        return Ok(RepairReport {
            check: report,
            damaged_copy: None,
            kept: Vec::new(),
        });
    }
    let Some(contents) = contents else {
        return Err(StorageError::Unreadable {
            path,
            detail: report.file_damage.unwrap_or_default(),
        });
    };
    let fresh = dir.join(format!("{FILE_NAME}.repairing"));
    let _ = std::fs::remove_file(&fresh);
    let kept = write_store(&fresh, &contents)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let copy = dir.join(format!("{FILE_NAME}.damaged-{stamp}"));
    std::fs::rename(&path, &copy).map_err(|err| io_error(&path, &err))?;
    std::fs::rename(&fresh, &path).map_err(|err| io_error(&fresh, &err))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(RepairReport {
        check: report,
        damaged_copy: Some(copy),
        kept,
    })
}

/// Writes `contents` (what references hold together: queue entries with their session
/// and body, inbound ids with their session) as a new store at `path`.
fn write_store(path: &Path, contents: &Contents) -> Result<Vec<(&'static str, u64)>, StorageError> {
    let e = |err: redb::Error| error(path, err);
    let db = Database::builder().create(path).map_err(|x| e(x.into()))?;
    let mut kept = [0u64; 5];
    let sessions: std::collections::HashSet<u64> =
        contents.sessions.iter().map(|(_, r)| r.id).collect();
    let txn = db.begin_write().map_err(|x| e(x.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
        meta.insert("format", FORMAT).map_err(|x| e(x.into()))?;
        let mut retained = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
        for (topic, message) in &contents.retained {
            let body = codec::encode_message(message, topic.as_bytes());
            retained
                .insert(topic.as_str(), &*body)
                .map_err(|x| e(x.into()))?;
            kept[0] += 1;
        }
        let mut table = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
        for (client_id, record) in &contents.sessions {
            let value = codec::encode_session(record, client_id.as_bytes());
            table
                .insert(&**client_id, value.as_slice())
                .map_err(|x| e(x.into()))?;
            kept[1] += 1;
        }
        let mut messages = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
        let mut queue = txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
        let mut written = std::collections::HashSet::new();
        for ((session, seq), entry) in &contents.queue {
            let Some(body) = contents.bodies.get(&entry.message) else {
                continue;
            };
            if !sessions.contains(session) {
                continue;
            }
            if written.insert(entry.message) {
                let bytes = codec::encode_message(body, &codec::message_key(entry.message));
                messages
                    .insert(entry.message, bytes.as_ref())
                    .map_err(|x| e(x.into()))?;
                kept[2] += 1;
            }
            let value = codec::encode_entry(entry, &codec::queue_key(*session, *seq));
            queue
                .insert((*session, *seq), value.as_slice())
                .map_err(|x| e(x.into()))?;
            kept[3] += 1;
        }
        let mut inbound = txn.open_table(INBOUND).map_err(|x| e(x.into()))?;
        for key in &contents.inbound {
            if sessions.contains(&key.0) {
                inbound.insert(*key, ()).map_err(|x| e(x.into()))?;
                kept[4] += 1;
            }
        }
    }
    txn.commit().map_err(|x| e(x.into()))?;
    db.close().map_err(|x| e(x.into()))?;
    Ok(TABLES.iter().copied().zip(kept).collect())
}
