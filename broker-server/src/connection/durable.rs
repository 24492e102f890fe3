//! The connection task's side of storage ([`crate::storage`]): acknowledgements that
//! wait for their barrier, and what each protocol event means for the stored state.

use protocol::session::SendOutcome;
use protocol::{PacketId, QoS, ReasonCode};
use tracing::{debug, warn};

use super::Connection;
use crate::message::Delivery;
use crate::session::Session;
use crate::storage::Storage;
use crate::storage::acks::{AckQueue, Settled};

/// The connection's [`AckQueue`], allocated while it holds something: most connections
/// have nothing waiting for the store most of the time, and an empty queue would cost
/// every connection task 88 bytes instead of 8.
#[derive(Debug, Default)]
pub(super) struct Acks(Option<Box<AckQueue>>);

impl Acks {
    /// [`AckQueue::push`]; an acknowledgement that can go at once allocates nothing.
    pub(super) fn push(
        &mut self,
        packet_id: PacketId,
        reason: ReasonCode,
        stored: bool,
        forwarded: Option<crate::broker::Forwarded>,
    ) -> Option<(PacketId, ReasonCode)> {
        if self.0.is_none() && !stored && forwarded.is_none() {
            return Some((packet_id, reason));
        }
        let queue = self.0.get_or_insert_with(Default::default);
        queue.push(packet_id, reason, stored, forwarded)
    }

    /// [`AckQueue::seal`].
    pub(super) fn seal(&mut self, storage: &Storage) {
        if let Some(queue) = &mut self.0 {
            queue.seal(storage);
        }
    }

    /// [`AckQueue::is_empty`].
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|queue| queue.is_empty())
    }

    /// [`AckQueue::next`]: never resolves when nothing waits.
    pub(super) async fn next(&mut self) -> Settled {
        match &mut self.0 {
            Some(queue) => queue.next().await,
            None => std::future::pending().await,
        }
    }

    /// [`AckQueue::ready`].
    pub(super) fn ready(&mut self) -> Option<Settled> {
        self.0.as_mut()?.ready()
    }

    /// [`AckQueue::hold_writes`].
    pub(super) fn hold_writes(&mut self) {
        self.0.get_or_insert_with(Default::default).hold_writes();
    }

    /// [`AckQueue::writes_allowed`]; lets the queue go once it is empty (the hold it
    /// may carry was just taken).
    pub(super) async fn writes_allowed(&mut self, storage: &Storage) -> bool {
        let Some(queue) = &mut self.0 else {
            return true;
        };
        let allowed = queue.writes_allowed(storage).await;
        if queue.is_empty() {
            self.0 = None;
        }
        allowed
    }
}

impl Connection {
    fn attached_session(&self) -> Option<std::sync::Arc<Session>> {
        self.attached.as_ref().map(|a| a.session.clone())
    }

    /// Acknowledges inbound `packet_id` now or, if `stored` (or an earlier one waits),
    /// once the store has it.
    pub(super) fn acknowledge(
        &mut self,
        packet_id: PacketId,
        qos: QoS,
        reason: ReasonCode,
        mut stored: bool,
        forwarded: Option<crate::broker::Forwarded>,
    ) {
        if qos == QoS::ExactlyOnce
            && let Some(session) = self.attached_session()
        {
            stored |= self.broker.storage.inbound_received(&session, packet_id);
        }
        if let Some((packet_id, reason)) = self.acks.push(packet_id, reason, stored, forwarded)
            && let Err(err) = self.session.ack_publish(packet_id, reason)
        {
            debug!(client_id = %self.client_id, %err, "ack failed");
        }
    }

    /// Sends a group of acknowledgements whose barrier resolved (and every later group
    /// that is ready too). A failed store refuses them: MQTT 5 with the error's reason
    /// code, MQTT 3.x (no negative acknowledgement) by closing the connection, so the
    /// client keeps and re-sends the messages.
    pub(super) fn settle(&mut self, settled: Settled) {
        let mut next = Some(settled);
        while let Some((result, acks)) = next {
            let reason = match &result {
                Ok(()) => None,
                Err(err) => {
                    warn!(client_id = %self.client_id, %err, count = acks.len(), "messages not stored: acknowledgement refused");
                    Some(err.reason_code())
                }
            };
            for (packet_id, ok_reason) in acks {
                let code = match reason {
                    None => ok_reason,
                    Some(_) if !self.version.is_v5() => {
                        self.session.disconnect(ReasonCode::UnspecifiedError);
                        continue;
                    }
                    Some(code) => code,
                };
                if let Err(err) = self.session.ack_publish(packet_id, code) {
                    debug!(client_id = %self.client_id, %err, "ack failed");
                }
            }
            next = self.acks.ready();
        }
    }

    /// After the connection closed: waits for the acknowledgements still pending, so the
    /// QoS 2 ids they record are in the session state that outlives the connection.
    pub(super) async fn settle_all(&mut self) {
        self.acks.seal(&self.broker.storage);
        while !self.acks.is_empty() {
            let settled = self.acks.next().await;
            self.settle(settled);
        }
    }

    /// What became of a stored delivery handed to the protocol session.
    pub(super) fn stored_outcome(
        &mut self,
        delivery: &Delivery,
        outcome: &Result<SendOutcome, protocol::session::SessionError>,
    ) {
        if delivery.stored.is_none() {
            return;
        }
        let Some(session) = self.attached_session() else {
            return;
        };
        match outcome {
            Ok(SendOutcome::Sent {
                packet_id: Some(packet_id),
            })
            | Ok(SendOutcome::Queued { packet_id }) => {
                if self.broker.storage.sent(&session, delivery, *packet_id) {
                    self.acks.hold_writes();
                }
            }
            _ => self.broker.storage.discarded(delivery),
        }
    }

    /// Outbound flow `packet_id` finished: its stored entry goes.
    pub(super) fn stored_delivered(&mut self, packet_id: PacketId) {
        if let Some(session) = self.attached_session() {
            self.broker.storage.delivered(&session, packet_id);
        }
    }

    /// The client answered outbound QoS 2 `packet_id` with PUBREC.
    pub(super) fn stored_received(&mut self, packet_id: PacketId) {
        if let Some(session) = self.attached_session()
            && self.broker.storage.released(&session, packet_id)
        {
            self.acks.hold_writes();
        }
    }

    /// PUBREL released inbound QoS 2 `packet_id`.
    pub(super) fn stored_released(&mut self, packet_id: PacketId) {
        if let Some(session) = self.attached_session()
            && self.broker.storage.inbound_released(&session, packet_id)
        {
            self.acks.hold_writes();
        }
    }
}

impl Connection {
    /// Stores a persistent session's subscriptions and waits until they are durable;
    /// `false` if the store failed (nothing to do for a non-persistent session).
    pub(super) async fn store_subscriptions(&mut self, session: &Session) -> bool {
        if self.expiry_interval != 0 {
            self.broker.backplane.subscriptions_changed(session);
        }
        if self.expiry_interval == 0
            || !self
                .broker
                .storage
                .put_session(session, self.expiry_interval, None, None)
        {
            return true;
        }
        match self.broker.storage.barrier().await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                warn!(client_id = %self.client_id, %err, "subscriptions not stored");
                false
            }
            Err(_) => false,
        }
    }
}

impl Connection {
    /// At CONNECT: a persistent session is stored (its expiry, its subscriptions if
    /// resumed) before CONNACK; a session that is not persistent (any more) leaves the
    /// store. A store that fails here is logged and the session lives in memory only:
    /// nothing was acknowledged to the client yet that would be lost.
    pub(super) async fn store_session(&mut self, session: &Session) {
        if self.expiry_interval == 0 {
            self.broker.storage.drop_session(session);
            return;
        }
        if !self
            .broker
            .storage
            .put_session(session, self.expiry_interval, None, None)
        {
            return;
        }
        if let Ok(Err(err)) = self.broker.storage.barrier().await {
            tracing::error!(client_id = %self.client_id, %err, "session not stored: it will not survive a restart");
        }
    }
}
