//! Loading a [`Snapshot`] into a broker that is about to serve.
//!
//! - Retained messages go back into the router's retained store.
//! - Each stored session becomes a detached [`Session`] with its subscriptions in the
//!   router. Its queue splits where the connection task left it: QoS 2 entries that had
//!   a packet id are the protocol session's outbound flows (re-sent with DUP and the
//!   same id, or as PUBREL once the client had answered PUBREC), everything else goes
//!   back into the mailbox in order. Inbound QoS 2 ids awaiting PUBREL are restored, so
//!   a client's re-send is acknowledged but not delivered twice.
//! - A session keeps the user that owns it ([`crate::session::Owner`]; unknown for a
//!   record stored before owners were), which a takeover by another user is checked
//!   against; its in-flight messages are checked against the read rules of whoever
//!   resumes it (`connection::lifecycle`).
//! - A session that was connected when the broker stopped counts as disconnected now:
//!   its expiry starts at this start.
//! - A bridge's outbox (`crate::bridge::outbox`) goes back to its bridge.
//! - A session that expired while the broker was down is deleted, and its pending will
//!   published; a will whose delay passed is published by the session's timer, which
//!   fires at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::session::OutboundMessage;
use protocol::{Publish, SessionState};
use web_time::Instant;

use super::{Snapshot, Storage, StorageError, StoredRef, StoredSession};
use crate::broker::Broker;
use crate::clock;
use crate::connection::SharedInflight;
use crate::message::Delivery;
use crate::router::SubEntry;
use crate::session::Session;

/// What recovery restored, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Recovered {
    /// Retained messages.
    pub retained: usize,
    /// Sessions restored.
    pub sessions: usize,
    /// Queued messages restored.
    pub messages: usize,
    /// Sessions that had expired while the broker was down.
    pub expired: usize,
}

/// Restores `snapshot` into `broker` (before any listener opens).
pub(crate) fn restore(broker: &Arc<Broker>, snapshot: Snapshot) -> Recovered {
    let now = clock::now();
    let mut recovered = Recovered::default();
    {
        let mut retained = broker.router.retained_mut();
        for message in snapshot.retained {
            retained.restore(message);
            recovered.retained += 1;
        }
    }
    let mut wills = Vec::new();
    for stored in snapshot.sessions {
        if stored.record.expires_at.is_some_and(|at| at <= now) {
            recovered.expired += 1;
            if let Some((_, will)) = stored.record.will {
                wills.push((will, stored.client_id.clone()));
            }
            broker
                .storage
                .drop_stored(stored.client_id, stored.record.id);
            continue;
        }
        recovered.sessions += 1;
        if crate::bridge::outbox::is_outbox(&stored.client_id) {
            // A bridge's outbox: back to its bridge, not a client's session.
            recovered.messages += crate::bridge::outbox::restore(broker, stored, now);
            continue;
        }
        recovered.messages += stored.queue.len();
        restore_session(broker, stored, now);
    }
    for (will, client_id) in wills {
        broker.publish_will(will, &client_id);
    }
    recovered
}

fn restore_session(broker: &Arc<Broker>, stored: StoredSession, now: Instant) {
    let StoredSession {
        client_id,
        record,
        queue,
        inbound,
    } = stored;
    let session = Arc::new(Session::new(client_id, broker.queue_limits()));
    session.set_owner(record.owner.clone());
    session.log.set_id(record.id);
    {
        let mut subscriptions = session.subscriptions.lock();
        for (filter, subscription) in &record.subscriptions {
            let entry = SubEntry {
                session: session.clone(),
                options: subscription.options,
                id: subscription.id,
            };
            broker.subscribe(filter, entry);
            subscriptions.insert(filter.clone(), subscription.clone());
        }
    }

    let mut outbound = Vec::new();
    let mut shared_inflight = SharedInflight::default();
    let mut mailbox = Vec::new();
    let mut last_packet_id = None;
    for (seq, entry, message) in queue {
        let at = StoredRef {
            session: record.id,
            seq,
            message: entry.message,
        };
        let delivery = Delivery {
            message,
            qos: entry.qos,
            retain: entry.retain,
            subscription_ids: entry.subscription_ids,
            shared_group: entry.shared_group,
            stored: Some(at),
        };
        let Some(packet_id) = entry.packet_id else {
            mailbox.push(delivery);
            continue;
        };
        last_packet_id = Some(packet_id);
        session.log.track(packet_id, at);
        shared_inflight.sent(packet_id, &delivery);
        if entry.released {
            outbound.push(OutboundMessage::Release(packet_id));
        } else {
            outbound.push(OutboundMessage::Publish(resend(&delivery, packet_id, now)));
        }
    }
    session.requeue_front(mailbox.into_iter());

    let expires_at = match record.expires_at {
        Some(at) => Some(at),
        None if record.expiry_interval == u32::MAX => None,
        None => Some(now + Duration::from_secs(u64::from(record.expiry_interval))),
    };
    if record.expires_at.is_none() && expires_at.is_some() {
        broker.storage.put_session(
            &session,
            record.expiry_interval,
            expires_at,
            record.will.clone(),
        );
    }
    let generation = {
        let mut detached = session.detached();
        detached.protocol = Some(SessionState {
            outbound,
            inbound_awaiting_release: inbound,
            next_packet_id: last_packet_id
                .map(|id| id.checked_add(1).unwrap_or(protocol::PacketId::MIN)),
        });
        detached.shared_inflight = shared_inflight;
        detached.expiry_interval = record.expiry_interval;
        detached.expires_at = expires_at;
        detached.pending_will = record.will.map(Box::new);
        detached.generation += 1;
        detached.generation
    };
    broker.restore_session(session.clone());
    crate::expiry::arm(broker.clone(), session, generation);
}

/// The PUBLISH re-sent for a stored QoS 2 message that had gone out as `packet_id`.
fn resend(delivery: &Delivery, packet_id: protocol::PacketId, now: Instant) -> Publish {
    let message = &delivery.message;
    let properties = message.delivery_properties(&delivery.subscription_ids, now);
    Publish {
        dup: true,
        qos: delivery.qos,
        retain: delivery.retain,
        topic: message.topic.clone(),
        packet_id: Some(packet_id),
        payload: message.payload.clone(),
        properties,
    }
}

/// Opens the store `config` asks for, builds the broker on it and restores what the
/// store holds. Errors name the store's path and what to do.
pub(crate) fn open(
    config: crate::Config,
    security: crate::security::Security,
    plane: crate::broker::backplane::Plane,
) -> Result<Arc<Broker>, StorageError> {
    let started = std::time::Instant::now();
    let store = super::open(&config.storage)?;
    let storage = Storage::new(store);
    let snapshot = storage.load()?;
    let mut broker = Broker::with_parts(config, storage, security);
    if broker.storage.is_durable() {
        let history = &broker.config.history;
        broker.history = crate::history::History::open(history, &broker.config.storage.dir);
    }
    // Before the sessions are restored: their subscriptions are the node's interest.
    broker.backplane = plane;
    let broker = Arc::new(broker);
    let recovered = restore(&broker, snapshot);
    if broker.storage.is_durable() {
        let stats = broker.storage.stats();
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        stats.recovery_ms.store(ms, Ordering::Relaxed);
        tracing::info!(
            backend = broker.storage.kind(),
            dir = %broker.config.storage.dir.display(),
            retained = recovered.retained,
            sessions = recovered.sessions,
            messages = recovered.messages,
            expired = recovered.expired,
            ms,
            "store recovered"
        );
    }
    Ok(broker)
}

/// At shutdown, once the connection tasks have ended (and stored their sessions):
/// applies everything queued, fsyncs and closes the store.
pub(crate) async fn close(broker: Arc<Broker>) {
    let history = broker.clone();
    let _ = tokio::task::spawn_blocking(move || history.history.close()).await;
    if !broker.storage.is_durable() {
        return;
    }
    let closing = broker.clone();
    let _ = tokio::task::spawn_blocking(move || closing.storage.close()).await;
}
