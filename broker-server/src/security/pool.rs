//! Password checks, a few at a time, with a bounded queue.
//!
//! An argon2id check costs tens of milliseconds of CPU and `m` KiB of memory (19 MiB
//! at the default cost), by design. Run on tokio's blocking pool (up to 512 threads),
//! a flood of bad logins ran hundreds of checks at once: 60 parallel refusals took the
//! broker from 9 MB to 944 MB resident, 350 to 6.2 GB, and a good login then waited
//! seconds for the CPU. Here:
//!
//! - at most `auth.password_workers` checks (default one per core) run at once, each
//!   in a worker's argon2 memory, allocated once and reused: the pool's memory is
//!   bounded by workers × the largest `m` in use, whatever the load;
//! - at most `auth.password_queue` checks wait for a worker; a login beyond that is
//!   refused at once ([`PoolError::Busy`]: CONNACK 0x9F Connection rate exceeded, 3.x
//!   return code 3) and counted in `mqtt_limit_hits_total{limit="password_queue"}`,
//!   rather than queued for longer than a client would wait;
//! - a login abandoned while it waits for a worker is never checked;
//! - a worker is held only while it hashes: the failed-login delay is waited by the
//!   connection task afterwards, so it costs a timer, not a worker.
//!
//! Unknown users are checked against a decoy hash on the same pool, so they cost (and
//! are refused in) the same way as a wrong password.
//!
//! 0x9F rather than 0x88 Server unavailable: the broker is up, and it is the rate of
//! logins that is over the limit; 0x9F tells a well-behaved client to back off and
//! retry, as it does for the connection-rate limits (`crate::limits`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::Block;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::passwd::{self, Credential};

/// A password check the pool could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("password checks: queue full")]
    Busy,
    /// The check did not complete (its task panicked).
    #[error("password checks: the check failed")]
    Failed,
}

/// The workers' slots, the queue's, and the workers' argon2 memories.
///
/// A check runs on tokio's blocking pool (so a paused test clock waits for it, as for
/// any blocking task) while it holds a worker slot; at most `workers` run at once, so
/// at most `workers` memories exist. The blocking task itself gives the memory back
/// and then the slot, so a login abandoned mid-check frees neither early.
#[derive(Debug)]
pub(crate) struct PasswordPool {
    /// Checks admitted: running or waiting for a worker (`workers + queue` permits).
    admitted: Arc<Semaphore>,
    /// Checks running (`workers` permits).
    running: Arc<Semaphore>,
    /// Argon2 working memories of the workers not running a check now.
    memories: Arc<Mutex<Vec<Vec<Block>>>>,
    /// How many checks may run at once.
    workers: usize,
}

impl PasswordPool {
    /// A pool running `workers` checks at once (0: one per core), with `queue` more
    /// waiting for a worker.
    pub(crate) fn new(workers: usize, queue: usize) -> Self {
        let workers = match workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Self {
            admitted: Arc::new(Semaphore::new(workers.saturating_add(queue))),
            running: Arc::new(Semaphore::new(workers)),
            memories: Arc::default(),
            workers,
        }
    }

    /// How many checks may run at once.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Whether `password` matches `credential` (`None`: an unknown user, checked
    /// against the decoy and never matching), checked on a worker; [`PoolError::Busy`]
    /// at once when every worker is busy and the queue is full.
    pub(crate) async fn verify(
        &self,
        credential: Option<Credential>,
        password: Bytes,
    ) -> Result<bool, PoolError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Busy)?;
        // Never closed: the pool owns the semaphore.
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Failed)?;
        let memories = self.memories.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = memories.lock().pop().unwrap_or_default();
            let matches = match &credential {
                Some(credential) => credential.verify_in(&password, &mut memory),
                None => {
                    passwd::decoy_verify(&password, &mut memory);
                    false
                }
            };
            memories.lock().push(memory);
            drop(running);
            drop(admitted);
            matches
        })
        .await
        .map_err(|_| PoolError::Failed)
    }

    /// How long the slowest of `credentials` takes to check a wrong password, timed
    /// here and now (on the calling thread, in a worker's memory; milliseconds to
    /// tens of milliseconds each).
    pub(crate) fn slowest_check(&self, credentials: &[Credential]) -> Duration {
        let mut memory = self.memories.lock().pop().unwrap_or_default();
        let slowest = credentials
            .iter()
            .map(|credential| {
                let started = Instant::now();
                let _ = credential.verify_in(b"\0 not the password", &mut memory);
                started.elapsed()
            })
            .max()
            .unwrap_or_default();
        self.memories.lock().push(memory);
        slowest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_and_a_full_queue_refuses_at_once() {
        let credential = Credential::argon2id(b"pw").unwrap();
        let pool = PasswordPool::new(1, 1);
        assert_eq!(pool.workers(), 1);
        assert_eq!(
            pool.verify(Some(credential.clone()), Bytes::from_static(b"pw"))
                .await,
            Ok(true)
        );
        assert_eq!(
            pool.verify(None, Bytes::from_static(b"pw")).await,
            Ok(false)
        );
        // One check hashing, one queued: the next ones are refused without waiting.
        let checks: Vec<_> = (0..8)
            .map(|_| pool.verify(Some(credential.clone()), Bytes::from_static(b"no")))
            .collect();
        let results = futures::future::join_all(checks).await;
        assert!(results.contains(&Err(PoolError::Busy)), "{results:?}");
        assert!(results.contains(&Ok(false)), "{results:?}");
    }
}
