//! `storage.backend = "memory"`: nothing is stored and nothing is recovered. The
//! broker sees [`Store::is_durable`] `false` and skips every storage step, so this
//! backend costs nothing on any path.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Barrier, Op, Snapshot, StorageError, Store, StoreStats};

/// A store that keeps nothing.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    stats: Arc<StoreStats>,
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn load(&self) -> Result<Snapshot, StorageError> {
        Ok(Snapshot {
            next_id: 1,
            ..Snapshot::default()
        })
    }

    fn submit(&self, _op: Op) {}

    fn open_group(&self) {}

    fn close_group(&self) {}

    fn barrier(&self) -> Barrier {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(()));
        rx
    }

    fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    fn close(&self) {}
}
