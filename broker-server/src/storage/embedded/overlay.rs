//! A redb backend that holds back every write until the store has been verified.
//!
//! redb writes to the file as it opens it, even a file that was closed cleanly: it
//! marks the file open, and after an unclean shutdown it repairs it (rebuilds the
//! allocator state and commits). A store that turns out damaged must be left exactly as
//! it was, so the broker opens the file through this backend: reads come from the file
//! (or from what redb wrote meanwhile), writes, length changes and syncs are recorded in
//! memory, in order. Once the store is verified, [`Overlay::apply`] replays them on the
//! file in the same order, each sync where redb asked for it (so the crash safety of
//! redb's own write ordering is kept), and from then on the backend passes everything
//! through. Dropped unapplied, nothing was written. What is held is only what redb
//! writes while opening (a repair commit, the format marker): pages, not the store.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Granularity of the held-back pages (redb's page size).
const BLOCK: u64 = 4096;

/// One recorded change, replayed in order by [`Overlay::apply`].
#[derive(Debug)]
enum Change {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Sync,
}

#[derive(Debug, Default)]
struct Held {
    /// `false` once applied: every call passes through.
    holding: bool,
    /// The length redb sees.
    len: u64,
    /// File bytes from here on read as zeros (the file was shortened, then grown).
    zero_from: u64,
    /// The current content of every block written, by block index.
    blocks: BTreeMap<u64, Vec<u8>>,
    /// Every change, in order.
    log: Vec<Change>,
}

/// The handle that decides: [`Overlay::apply`] the held writes, or drop them.
#[derive(Debug, Clone)]
pub(super) struct Overlay {
    file: Arc<FileBackend>,
    held: Arc<RwLock<Held>>,
}

/// The backend given to redb.
pub(super) struct OverlayBackend {
    file: Arc<FileBackend>,
    held: Arc<RwLock<Held>>,
}

impl fmt::Debug for OverlayBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverlayBackend").finish_non_exhaustive()
    }
}

fn poisoned() -> io::Error {
    io::Error::other("store overlay lock poisoned")
}

impl Overlay {
    /// A backend over `file` (opened read and write, so that it can be applied later,
    /// but written by nobody until then) and the handle that applies it.
    pub(super) fn new(file: std::fs::File) -> io::Result<(Self, OverlayBackend)> {
        let len = file.metadata()?.len();
        let file = Arc::new(FileBackend::new(file).map_err(io::Error::other)?);
        let held = Arc::new(RwLock::new(Held {
            holding: true,
            len,
            zero_from: len,
            ..Held::default()
        }));
        let overlay = Self {
            file: file.clone(),
            held: held.clone(),
        };
        Ok((overlay, OverlayBackend { file, held }))
    }

    /// Writes what was held back to the file, in order, with redb's syncs; from then on
    /// the backend writes through.
    pub(super) fn apply(&self) -> io::Result<()> {
        let mut held = self.held.write().map_err(|_| poisoned())?;
        for change in &held.log {
            match change {
                Change::Write(offset, data) => self.file.write(*offset, data)?,
                Change::SetLen(len) => self.file.set_len(*len)?,
                Change::Sync => self.file.sync_data()?,
            }
        }
        held.log.clear();
        held.blocks.clear();
        held.holding = false;
        Ok(())
    }
}

impl OverlayBackend {
    fn read_file(&self, held: &Held, offset: u64, out: &mut [u8]) -> io::Result<()> {
        // File bytes past `zero_from` were cut off (and may have been grown back as zeros).
        let end = offset + out.len() as u64;
        let from_file = end.min(held.zero_from).saturating_sub(offset);
        let from_file = usize::try_from(from_file)
            .unwrap_or(out.len())
            .min(out.len());
        if from_file > 0 {
            self.file.read(offset, &mut out[..from_file])?;
        }
        out[from_file..].fill(0);
        Ok(())
    }
}

impl StorageBackend for OverlayBackend {
    fn len(&self) -> io::Result<u64> {
        let held = self.held.read().map_err(|_| poisoned())?;
        if held.holding {
            Ok(held.len)
        } else {
            self.file.len()
        }
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let held = self.held.read().map_err(|_| poisoned())?;
        if !held.holding {
            return self.file.read(offset, out);
        }
        if offset + out.len() as u64 > held.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the store",
            ));
        }
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let block = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(out.len() - done);
            match held.blocks.get(&block) {
                Some(data) => out[done..done + n].copy_from_slice(&data[within..within + n]),
                None => self.read_file(&held, at, &mut out[done..done + n])?,
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut held = self.held.write().map_err(|_| poisoned())?;
        if !held.holding {
            drop(held);
            return self.file.set_len(len);
        }
        if len < held.len {
            held.zero_from = held.zero_from.min(len);
            let first_gone = len.div_ceil(BLOCK);
            held.blocks.retain(|block, _| *block < first_gone);
            // The block that now ends the store keeps its bytes up to `len` only.
            if !len.is_multiple_of(BLOCK)
                && let Some(data) = held.blocks.get_mut(&(len / BLOCK))
            {
                data[(len % BLOCK) as usize..].fill(0);
            }
        }
        held.len = len;
        held.log.push(Change::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut held = self.held.write().map_err(|_| poisoned())?;
        if !held.holding {
            drop(held);
            return self.file.sync_data();
        }
        held.log.push(Change::Sync);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut held = self.held.write().map_err(|_| poisoned())?;
        if !held.holding {
            drop(held);
            return self.file.write(offset, data);
        }
        // A write past the end grows the store, as it grows a file.
        let end = offset + data.len() as u64;
        held.len = held.len.max(end);
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let block = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(data.len() - done);
            if !held.blocks.contains_key(&block) {
                let mut page = vec![0; BLOCK as usize];
                let start = block * BLOCK;
                let readable = held.len.saturating_sub(start).min(BLOCK) as usize;
                self.read_file(&held, start, &mut page[..readable])?;
                held.blocks.insert(block, page);
            }
            if let Some(page) = held.blocks.get_mut(&block) {
                page[within..within + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        held.log.push(Change::Write(offset, data.to_vec()));
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase, TableDefinition};

    use super::*;

    const T: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("t");

    fn put(db: &Database, key: u64, value: &[u8]) {
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(key, value).unwrap();
        txn.commit().unwrap();
    }

    fn get(db: &impl ReadableDatabase, key: u64) -> Option<Vec<u8>> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        table.get(key).unwrap().map(|v| v.value().to_vec())
    }

    fn held(path: &std::path::Path) -> (Overlay, Database) {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let (overlay, backend) = Overlay::new(file).unwrap();
        let db = Database::builder().create_with_backend(backend).unwrap();
        (overlay, db)
    }

    /// Everything redb writes through the overlay (the open's own writes and commits,
    /// large ones that grow the file) stays out of the file until applied, and reads
    /// see it; applied, it is all in the file, and later writes go straight there.
    #[test]
    fn writes_reach_the_file_only_once_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        put(&Database::create(&path).unwrap(), 1, b"one");
        let before = std::fs::read(&path).unwrap();

        let (overlay, db) = held(&path);
        put(&db, 2, &vec![7; 100_000]);
        assert_eq!(get(&db, 2).map(|v| v.len()), Some(100_000));
        drop(db);
        drop(overlay);
        assert!(
            std::fs::read(&path).unwrap() == before,
            "dropped: unchanged"
        );

        let (overlay, db) = held(&path);
        put(&db, 2, b"two");
        assert!(std::fs::read(&path).unwrap() == before, "held: unchanged");
        overlay.apply().unwrap();
        put(&db, 3, b"three");
        drop(db);
        let db = Database::builder().open_read_only(&path).unwrap();
        assert_eq!(get(&db, 1).as_deref(), Some(&b"one"[..]));
        assert_eq!(get(&db, 2).as_deref(), Some(&b"two"[..]));
        assert_eq!(get(&db, 3).as_deref(), Some(&b"three"[..]));
    }
}
