//! Leases: one node of the cluster at a time does a job (runs a bridge,
//! `crate::bridge`), the others stand by and take over when it goes.
//!
//! Bucket `<P>_LEASES` (history 1, `cluster.replicas`, `max_age = node_ttl_secs`): one
//! key per job, value the holder's `cluster.node`. A node takes a free lease by
//! creating its key (create fails while the key exists: compare-and-set on "absent"),
//! renews it every `heartbeat_secs` by an update with the revision it last wrote, and
//! deletes it (with that revision) when it stops. Since the bucket's age limit applies
//! to the last write, a holder that died or lost NATS loses the lease `node_ttl_secs`
//! after its last renewal, and a standby's next attempt takes it.
//!
//! A holder whose renewal is refused (another revision: the key expired and another
//! node took it) has lost the lease at once; one whose renewals fail (NATS away) gives
//! it up by itself when `node_ttl_secs − heartbeat_secs` passed since its last good
//! renewal, before anyone else can take it, so two holders never overlap as long as
//! the clocks' rates agree. A node that restarts after a crash finds its own name in a
//! key that has not expired yet and takes it back at once.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

use super::config::ClusterConfig;
use super::sessions::{bucket, ensure_bucket, last_value, removed, wrong_revision};

/// The leases of this node in `<P>_LEASES`.
#[derive(Debug, Clone)]
pub struct Leases {
    store: kv::Store,
    /// This node's name: the value of the keys it holds.
    node: String,
    /// Between renewals (`cluster.heartbeat_secs`).
    pub renew_every: Duration,
    /// A lease not renewed for this long is gone (`cluster.node_ttl_secs`).
    pub ttl: Duration,
    /// One NATS call's patience (`cluster.publish_timeout_ms`).
    op_timeout: Duration,
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still held, at this revision.
    Held(u64),
    /// Another node holds it now (or nobody): stop the job.
    Lost,
    /// NATS failed or did not answer: still held until the TTL runs out.
    Failed(String),
}

impl Leases {
    /// Opens (creating if needed) `<P>_LEASES` with `client`, for node `node`.
    pub async fn open(
        client: async_nats::Client,
        cfg: &ClusterConfig,
        node: &str,
    ) -> anyhow::Result<Self> {
        let js = jetstream::new(client);
        let ttl = Duration::from_secs(cfg.node_ttl_secs.max(1));
        let store = ensure_bucket(
            &js,
            kv::Config {
                bucket: bucket(&cfg.nats.prefix, "LEASES"),
                description: "MQTT broker: which node runs each bridge".into(),
                history: 1,
                num_replicas: cfg.replicas.into(),
                max_age: ttl,
                ..kv::Config::default()
            },
        )
        .await?;
        Ok(Self {
            store,
            node: node.to_owned(),
            renew_every: Duration::from_secs(cfg.heartbeat_secs.max(1)),
            ttl,
            op_timeout: Duration::from_millis(cfg.publish_timeout_ms.max(1)),
        })
    }

    /// Tries to take lease `key`: `Ok(Ok(revision))` if this node holds it now,
    /// `Ok(Err(holder))` if another node does (its name; empty if it just went), `Err`
    /// if NATS failed.
    pub async fn acquire(&self, key: &str) -> Result<Result<u64, String>, String> {
        let value = Bytes::from(self.node.clone());
        match self.bounded(self.store.create(key, value.clone())).await? {
            Ok(revision) => return Ok(Ok(revision)),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(err.to_string()),
        }
        let Some(last) = self.bounded(last_value(&self.store, key)).await?? else {
            // Gone between the two calls: the next attempt creates it.
            return Ok(Err(String::new()));
        };
        let holder = String::from_utf8_lossy(&last.payload).into_owned();
        if removed(&last) || holder != self.node {
            return Ok(Err(holder));
        }
        // This node's previous run held it (crashed, restarted): taken back.
        match self
            .bounded(self.store.update(key, value, last.sequence))
            .await?
        {
            Ok(revision) => Ok(Ok(revision)),
            Err(err) if wrong_revision(&err) => Ok(Err(String::new())),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Renews lease `key`, held at `revision`.
    pub async fn renew(&self, key: &str, revision: u64) -> Renewal {
        let value = Bytes::from(self.node.clone());
        // Bounded by the renewal period too: a renewal must not outlast the lease.
        let patience = self.op_timeout.min(self.renew_every);
        let update = self.store.update(key, value, revision);
        match tokio::time::timeout(patience, update)
            .await
            .map_err(|_| "NATS did not answer".to_owned())
        {
            Ok(Ok(revision)) => Renewal::Held(revision),
            Ok(Err(err)) if wrong_revision(&err) => Renewal::Lost,
            Ok(Err(err)) => Renewal::Failed(err.to_string()),
            Err(err) => Renewal::Failed(err),
        }
    }

    /// Gives lease `key` (held at `revision`) up, so a standby takes it at once.
    pub async fn release(&self, key: &str, revision: u64) {
        let delete = self.store.delete_expect_revision(key, Some(revision));
        if let Ok(Err(err)) = tokio::time::timeout(self.op_timeout, delete).await {
            tracing::debug!(%err, key, "releasing a lease");
        }
    }

    /// Runs `call` within the operation timeout.
    async fn bounded<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T, String> {
        tokio::time::timeout(self.op_timeout, call)
            .await
            .map_err(|_| "NATS did not answer".to_owned())
    }
}
