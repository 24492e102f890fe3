//! The durable outbox: a bridge's outbox is a persistent session of the store, so the
//! QoS 1 and 2 messages waiting for the remote survive a crash (`kill -9`) of this
//! broker as a persistent subscriber's queue does.
//!
//! - At start ([`persist`]), before the outbox subscribes, its session record is written
//!   with a reserved client identifier (`\0bridge:{name}`: a NUL, which no client may
//!   send [MQTT-1.5.4-2]) and no expiry. From then on the broker records every QoS 1/2
//!   delivery routed to it ([`crate::storage::Storage::enqueue`]) before the
//!   publisher's acknowledgement leaves, as for any stored session.
//! - A delivery leaves the store when it leaves the outbox for good
//!   ([`finished`]): the remote acknowledged it (PUBACK / PUBCOMP), refused it, or it
//!   expired. A full outbox's drops are deleted by the broker's delivery path.
//! - At the next start recovery hands the stored outbox to its bridge
//!   ([`restore`]) instead of registering it as a client's session: its entries go back
//!   into the outbox, in order, ahead of anything new. The outbox of a bridge no longer
//!   configured is deleted, with a warning giving how many messages it held.
//!
//! QoS 0 deliveries wait in the outbox too but are not stored (at most once), nor are
//! the retained messages queued at start (they are queued again at every start).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use web_time::Instant;

use super::BridgeStatus;
use crate::broker::Broker;
use crate::message::Delivery;
use crate::storage::{StoredRef, StoredSession};

/// The client identifier of a bridge's outbox: reserved, no client can send it.
pub(super) fn client_id(bridge: &str) -> String {
    format!("\u{0}bridge:{bridge}")
}

/// Whether `client_id` is the reserved identifier of some bridge's outbox.
pub(crate) fn is_outbox(client_id: &str) -> bool {
    client_id.starts_with("\u{0}bridge:")
}

/// Makes `status`'s outbox a stored session (a new incarnation, or the one recovery
/// restored). Before it subscribes: what is routed to it from then on is stored.
pub(super) fn persist(broker: &Broker, status: &BridgeStatus) {
    broker
        .storage
        .put_session(&status.outbox, u32::MAX, None, None);
}

/// A delivery left the outbox for good (acknowledged, refused, expired): deleted from
/// the store.
pub(super) fn finished(broker: &Broker, delivery: &Delivery) {
    broker.storage.discarded(delivery);
}

/// Restores a stored outbox found at start into its bridge, or deletes it if no bridge
/// of this configuration owns it. Returns the number of messages restored.
pub(crate) fn restore(broker: &Arc<Broker>, stored: StoredSession, now: Instant) -> usize {
    let StoredSession {
        client_id,
        record,
        queue,
        ..
    } = stored;
    let Some(status) = broker
        .bridges
        .list()
        .iter()
        .find(|status| status.outbox.client_id == client_id)
    else {
        tracing::warn!(
            outbox = %client_id.trim_start_matches('\u{0}'),
            messages = queue.len(),
            "the stored outbox of a bridge that is no longer configured is deleted with the messages it held"
        );
        broker.storage.drop_stored(client_id, record.id);
        return 0;
    };
    status.outbox.log.set_id(record.id);
    let mut restored = Vec::with_capacity(queue.len());
    for (seq, entry, message) in queue {
        let delivery = Delivery {
            message,
            qos: entry.qos,
            retain: entry.retain,
            subscription_ids: entry.subscription_ids,
            shared_group: entry.shared_group,
            stored: Some(StoredRef {
                session: record.id,
                seq,
                message: entry.message,
            }),
        };
        if delivery.message.is_expired(now) {
            broker.storage.discarded(&delivery);
            continue;
        }
        restored.push(delivery);
    }
    let count = restored.len();
    status.outbox.requeue_front(restored.into_iter());
    tracing::info!(bridge = %status.config.name, messages = count, "bridge outbox restored");
    count
}

/// Counts a delivery a full outbox dropped against its bridge (`session` is the
/// outbox); nothing for any other session.
pub(crate) fn count_drop(broker: &Broker, client_id: &str) {
    if !is_outbox(client_id) {
        return;
    }
    if let Some(status) = broker
        .bridges
        .list()
        .iter()
        .find(|status| status.outbox.client_id == client_id)
    {
        status.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
