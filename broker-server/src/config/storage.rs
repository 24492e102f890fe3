//! `[storage]`: the plain configuration of the store ([`crate::storage`] documents
//! what is stored and when).

use std::path::PathBuf;

use serde::Deserialize;

/// Which backend stores the broker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded redb database in `storage.dir` (default).
    #[default]
    Redb,
    /// Nothing is stored: a restart starts empty.
    Memory,
}

/// When commits are flushed to the disk (see the module docs for the trade-offs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before any acknowledgement that depends on the commit (default).
    #[default]
    Always,
    /// Every `fsync_interval_ms`.
    Periodic,
    /// Only at a clean shutdown.
    Never,
}

/// `[storage]`: where and how the broker keeps what must survive a restart.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `redb` (default) or `memory`.
    pub backend: Backend,
    /// Data directory of the `redb` backend, created if missing. Default `data`
    /// (relative to the working directory).
    pub dir: PathBuf,
    /// `always` (default), `periodic` or `never`.
    pub fsync: FsyncPolicy,
    /// With `fsync = "periodic"`: milliseconds between fsyncs. Default 1000.
    pub fsync_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Redb,
            dir: PathBuf::from("data"),
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
        }
    }
}

impl StorageConfig {
    /// The in-memory configuration (tests, and users who want no disk).
    pub fn memory() -> Self {
        Self {
            backend: Backend::Memory,
            ..Self::default()
        }
    }
}
