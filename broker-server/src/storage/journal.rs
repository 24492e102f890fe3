//! The broker's side of storage: [`Storage`] turns what happens to sessions and
//! messages into [`Op`]s, and [`SessionLog`] remembers, per session, where its
//! deliveries live in the store.
//!
//! Every method returns at once. Those that return `true` submitted an operation that
//! an acknowledgement (or a packet) depends on: the caller gets a [`Barrier`] before
//! sending it. With a store that is not durable every method is a no-op returning
//! `false`, so the in-memory broker pays one branch.
//!
//! Storage records; it never delivers. The broker ([`crate::broker`]) decides where a
//! message goes and pushes it into the mailboxes, asking [`Storage::enqueue`] first to
//! record what must be durable.
//!
//! Ordering: a queue entry is submitted before its delivery enters the mailbox, so its
//! `Dequeue` (submitted by whichever connection acknowledges it later) always follows
//! its `Enqueue` in the writer's single queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::{PacketId, QoS, Will};
use web_time::Instant;

use super::{
    Barrier, Op, QueueEntry, SessionRecord, Snapshot, StorageError, Store, StoreStats, StoredRef,
    memory::MemoryStore,
};
use crate::message::{Delivery, Message};
use crate::session::Session;

/// Where a session's deliveries live in the store.
#[derive(Debug, Default)]
pub struct SessionLog {
    /// The stored incarnation; 0 while the session is not stored (expiry 0).
    id: AtomicU64,
    /// Stored deliveries handed to the protocol session, by packet id: finished by
    /// `Delivered`, released by a PUBREC. The map is allocated with the first one:
    /// most sessions track nothing (in-memory store, clean sessions), and an empty map
    /// in every `Session` would cost each connection 48 bytes.
    #[allow(clippy::box_collection)] // on purpose, see above
    inflight: Mutex<Option<Box<HashMap<PacketId, StoredRef>>>>,
}

impl SessionLog {
    /// The stored incarnation, if the session is stored.
    pub fn id(&self) -> Option<u64> {
        match self.id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Marks the session stored as incarnation `id`.
    pub fn set_id(&self, id: u64) {
        self.id.store(id, Ordering::Release);
    }

    /// Records that stored delivery `at` is in the protocol session as `packet_id`.
    pub fn track(&self, packet_id: PacketId, at: StoredRef) {
        let mut inflight = self.inflight.lock();
        inflight
            .get_or_insert_with(Default::default)
            .insert(packet_id, at);
    }

    /// The stored delivery sent as `packet_id`, if any.
    pub fn tracked(&self, packet_id: PacketId) -> Option<StoredRef> {
        self.inflight.lock().as_ref()?.get(&packet_id).copied()
    }

    /// Forgets `packet_id`, returning its stored delivery.
    pub fn untrack(&self, packet_id: PacketId) -> Option<StoredRef> {
        let mut inflight = self.inflight.lock();
        // Most sessions track nothing (in-memory or clean): no map, no hashing.
        let map = inflight.as_mut()?;
        let at = map.remove(&packet_id);
        if map.is_empty() {
            *inflight = None;
        }
        at
    }

    fn clear(&self) -> Option<u64> {
        *self.inflight.lock() = None;
        match self.id.swap(0, Ordering::AcqRel) {
            0 => None,
            id => Some(id),
        }
    }
}

/// An open [`Storage::group`]; it closes when dropped.
#[derive(Debug)]
#[must_use = "the group closes when this is dropped"]
pub struct OpGroup {
    /// The group's store (`None` when nothing is stored).
    store: Option<Arc<dyn Store>>,
}

impl Drop for OpGroup {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            store.close_group();
        }
    }
}

/// The store, as the broker uses it.
#[derive(Debug)]
pub struct Storage {
    store: Arc<dyn Store>,
    durable: bool,
    /// Source of session incarnations, queue positions and body ids.
    next_id: AtomicU64,
}

impl Storage {
    /// Uses `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            durable: store.is_durable(),
            store,
            next_id: AtomicU64::new(1),
        }
    }

    /// No storage at all.
    pub fn memory() -> Self {
        Self::new(Arc::new(MemoryStore::default()))
    }

    /// Whether anything is stored.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The backend's name.
    pub fn kind(&self) -> &'static str {
        self.store.kind()
    }

    /// The backend's figures.
    pub fn stats(&self) -> Arc<StoreStats> {
        self.store.stats()
    }

    /// Reads everything stored (once, at start); later ids continue after it.
    pub fn load(&self) -> Result<Snapshot, StorageError> {
        let snapshot = self.store.load()?;
        self.next_id.fetch_max(snapshot.next_id, Ordering::Relaxed);
        Ok(snapshot)
    }

    /// A barrier behind everything submitted so far.
    pub fn barrier(&self) -> Barrier {
        self.store.barrier()
    }

    /// Submits `op` (durable stores only).
    pub fn submit(&self, op: Op) {
        if self.durable {
            self.store.submit(op);
        }
    }

    /// Opens a group of operations that are committed in one transaction: everything
    /// submitted until the returned guard drops. For what a crash must not split: an
    /// inbound QoS 2 PUBLISH's queue entries and the record of its packet id (with the
    /// entries alone, the client's re-send after a restart would be routed, and
    /// delivered, a second time). Operations still go to the store in the order they
    /// are submitted, so a queue entry still reaches it before anything that follows
    /// its delivery. Keep a group short: the store commits nothing while one is open.
    pub fn group(&self) -> OpGroup {
        let store = self.durable.then(|| {
            self.store.open_group();
            self.store.clone()
        });
        OpGroup { store }
    }

    /// Flushes and stops the store (clean shutdown). Blocks.
    pub fn close(&self) {
        self.store.close();
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A retained publish (call with the retained store locked, so the stored order is
    /// the routing order). `$SYS` topics are not stored: they are rebuilt at start.
    pub fn retain(&self, message: &Arc<Message>) -> bool {
        if !self.durable || message.topic.starts_with("$SYS/") {
            return false;
        }
        let op = if message.payload.is_empty() {
            Op::Unretain(message.topic.clone())
        } else {
            Op::Retain(message.clone())
        };
        self.store.submit(op);
        true
    }

    /// Records queued `delivery` for the session stored as `log` says, if it must be
    /// durable: a QoS 1 or 2 delivery to a stored session with a durable store. `body`
    /// is the message's body id, shared by every delivery of one message (allocated by
    /// the first one stored). Sets [`Delivery::stored`] (cleared when nothing is
    /// stored) and returns whether an operation was submitted. Touches no mailbox: the
    /// broker delivers ([`crate::broker`]).
    pub fn enqueue(
        &self,
        log: &SessionLog,
        delivery: &mut Delivery,
        body: &mut Option<u64>,
    ) -> bool {
        let stored = match log.id() {
            Some(id) if self.durable && delivery.qos != QoS::AtMostOnce => id,
            _ => {
                delivery.stored = None;
                return false;
            }
        };
        let message = *body.get_or_insert_with(|| self.next_id());
        let at = StoredRef {
            session: stored,
            seq: self.next_id(),
            message,
        };
        delivery.stored = Some(at);
        self.store.submit(Op::Enqueue {
            at,
            entry: QueueEntry {
                message,
                qos: delivery.qos,
                retain: delivery.retain,
                subscription_ids: delivery.subscription_ids.clone(),
                shared_group: delivery.shared_group.clone(),
                packet_id: None,
                released: false,
            },
            message: delivery.message.clone(),
        });
        true
    }

    fn dequeue(&self, at: StoredRef) {
        self.store.submit(Op::Dequeue {
            session: at.session,
            seq: at.seq,
        });
    }

    /// Deletes the queue entry at `at`, if any: the mailbox refused the delivery
    /// recorded there.
    pub fn forget(&self, at: Option<StoredRef>) {
        if let Some(at) = at {
            self.dequeue(at);
        }
    }

    /// A stored delivery left without reaching the client (expired, too large for it,
    /// dropped from a full queue).
    pub fn discarded(&self, delivery: &Delivery) {
        if let Some(at) = delivery.stored {
            self.dequeue(at);
        }
    }

    /// `delivery` was handed to `session`'s protocol session as `packet_id`. For QoS 2
    /// the packet id is stored; `true`: the PUBLISH must not leave before a barrier.
    pub fn sent(&self, session: &Session, delivery: &Delivery, packet_id: PacketId) -> bool {
        let Some(at) = delivery.stored else {
            return false;
        };
        session.log.track(packet_id, at);
        if delivery.qos != QoS::ExactlyOnce {
            return false;
        }
        self.store.submit(Op::Assign {
            session: at.session,
            seq: at.seq,
            packet_id,
        });
        true
    }

    /// The client finished outbound flow `packet_id` (PUBACK, PUBCOMP, error PUBREC).
    pub fn delivered(&self, session: &Session, packet_id: PacketId) {
        if let Some(at) = session.log.untrack(packet_id) {
            self.dequeue(at);
        }
    }

    /// The client answered outbound QoS 2 `packet_id` with PUBREC; `true`: the PUBREL
    /// must not leave before a barrier.
    pub fn released(&self, session: &Session, packet_id: PacketId) -> bool {
        let Some(at) = session.log.tracked(packet_id) else {
            return false;
        };
        self.store.submit(Op::Release {
            session: at.session,
            seq: at.seq,
        });
        true
    }

    /// Inbound QoS 2 `packet_id` from a stored session is about to be acknowledged with
    /// PUBREC: stored so that its re-send after a restart is not delivered again.
    pub fn inbound_received(&self, session: &Session, packet_id: PacketId) -> bool {
        match session.log.id() {
            Some(id) if self.durable => {
                self.store.submit(Op::Received {
                    session: id,
                    packet_id,
                });
                true
            }
            _ => false,
        }
    }

    /// PUBREL arrived for inbound `packet_id`; `true`: the PUBCOMP must not leave before
    /// a barrier (a packet id left stored would swallow the client's next message
    /// with it).
    pub fn inbound_released(&self, session: &Session, packet_id: PacketId) -> bool {
        match session.log.id() {
            Some(id) if self.durable => {
                self.store.submit(Op::Forget {
                    session: id,
                    packet_id,
                });
                true
            }
            _ => false,
        }
    }

    /// Writes `session`'s record: it is stored from now on (a new incarnation unless it
    /// already is). `expires_at`: `None` while connected. Returns whether it wrote.
    pub fn put_session(
        &self,
        session: &Session,
        expiry_interval: u32,
        expires_at: Option<Instant>,
        will: Option<(Instant, Will)>,
    ) -> bool {
        if !self.durable {
            return false;
        }
        let id = session.log.id().unwrap_or_else(|| {
            let id = self.next_id();
            session.log.set_id(id);
            id
        });
        let subscriptions = session
            .subscriptions
            .lock()
            .iter()
            .map(|(filter, sub)| (filter.clone(), sub.clone()))
            .collect();
        self.store.submit(Op::PutSession {
            client_id: session.client_id.clone(),
            record: Box::new(SessionRecord {
                id,
                expiry_interval,
                expires_at,
                subscriptions,
                will,
                owner: session.owner(),
            }),
        });
        true
    }

    /// Deletes `session` from the store (it ended, or became non-persistent).
    pub fn drop_session(&self, session: &Session) {
        if let Some(id) = session.log.clear() {
            self.submit(Op::DropSession {
                client_id: session.client_id.clone(),
                id,
            });
        }
    }

    /// Deletes a stored session that recovery found expired.
    pub fn drop_stored(&self, client_id: ByteString, id: u64) {
        self.submit(Op::DropSession { client_id, id });
    }
}
