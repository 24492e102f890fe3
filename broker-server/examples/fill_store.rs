//! Fills a store for timing recovery: `SESSIONS` persistent sessions, each subscribed
//! to `fill/<n>/#` and holding `PER_SESSION` queued QoS 1 messages of `BYTES` bytes.
//!
//! ```sh
//! cargo run --release -p broker-server --example fill_store -- /tmp/store 1000 1000 64
//! broker-server --set storage.dir='"/tmp/store"' --set limits.max_queued_messages=1000000
//! # the log line "store recovered ... ms=..." (and $SYS/broker/store/recovery/milliseconds)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use broker_server::config::{Backend, FsyncPolicy, StorageConfig};
use broker_server::internals::session::{Owner, StoredSubscription};
use broker_server::internals::storage::{self, Op, QueueEntry, SessionRecord, StoredRef};
use protocol::{QoS, SubscriptionOptions, TopicFilter};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "fill-store".into()));
    let mut number = |default: u64| -> anyhow::Result<u64> {
        Ok(args
            .next()
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (sessions, per_session, bytes) = (number(1000)?, number(1000)?, number(64)?);
    let config = StorageConfig {
        backend: Backend::Redb,
        dir: dir.clone(),
        fsync: FsyncPolicy::Never,
        ..StorageConfig::default()
    };
    let store = storage::open(&config)?;
    let mut next = store.load()?.next_id;
    let started = std::time::Instant::now();
    let payload = vec![b'x'; bytes as usize];
    for s in 0..sessions {
        let id = next;
        next += 1;
        let filter = TopicFilter::new(format!("fill/{s}/#"))?;
        let subscription = StoredSubscription {
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            id: None,
        };
        store.submit(Op::PutSession {
            client_id: format!("fill-{s}").into(),
            record: Box::new(SessionRecord {
                id,
                expiry_interval: u32::MAX,
                expires_at: None,
                subscriptions: vec![(filter, subscription)],
                will: None,
                owner: Owner::Anonymous,
            }),
        });
        for m in 0..per_session {
            let topic = format!("fill/{s}/{m}");
            let message =
                storage::codec::plain_message(&topic, payload.clone(), QoS::AtLeastOnce, false);
            let at = StoredRef {
                session: id,
                seq: next,
                message: next + 1,
            };
            next += 2;
            let entry = QueueEntry {
                message: at.message,
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Default::default(),
                shared_group: None,
                packet_id: None,
                released: false,
            };
            store.submit(Op::Enqueue {
                at,
                entry,
                message: Arc::clone(&message),
            });
        }
        // Bounded memory: wait for the writer every session.
        let barrier = store.barrier();
        barrier.blocking_recv()??;
    }
    store.close();
    let size = std::fs::metadata(dir.join(storage::embedded::FILE_NAME))?.len();
    println!(
        "{} sessions x {per_session} messages of {bytes} B in {:.1} s; {} MiB at {}",
        sessions,
        started.elapsed().as_secs_f64(),
        size / (1024 * 1024),
        dir.display()
    );
    Ok(())
}
