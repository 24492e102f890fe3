//! A connection's acknowledgements that wait for the store ("acknowledge after
//! persist"), and its write barrier.
//!
//! PUBACK / PUBREC go out in the order the PUBLISHes came [MQTT-4.6.0-2], so once one
//! waits, every later one queues behind it even if it needed no storage. The
//! connection task pushes each acknowledgement as it routes the PUBLISH; at the end of
//! each burst of events it [`seal`](AckQueue::seal)s what it pushed behind one
//! [`Barrier`], and it sends each group when its barrier resolves, while it goes on
//! reading. One fsync thus covers a whole burst of every connection that is waiting.
//!
//! The write barrier covers packets the protocol session queued itself after an
//! operation the broker submitted: an outbound QoS 2 PUBLISH (its packet id is stored
//! first), a PUBREL (the PUBREC is stored first) and a PUBCOMP (the released inbound
//! id is deleted first). Such a write waits for a barrier; nothing else does.

use std::collections::VecDeque;

use protocol::{PacketId, ReasonCode};

use super::{Barrier, Storage, StorageError};

/// Acknowledgements waiting for the store, in PUBLISH order.
#[derive(Debug, Default)]
pub(crate) struct AckQueue {
    /// Groups behind a barrier, oldest first.
    sealed: VecDeque<(Barrier, Vec<(PacketId, ReasonCode)>)>,
    /// Pushed since the last seal.
    open: Vec<(PacketId, ReasonCode)>,
    /// Whether something in `open` was stored (else its barrier is already resolved).
    open_stored: bool,
    /// A queued packet depends on a submitted operation.
    hold_writes: bool,
}

/// A group of acknowledgements whose barrier resolved.
pub(crate) type Settled = (Result<(), StorageError>, Vec<(PacketId, ReasonCode)>);

impl AckQueue {
    /// An acknowledgement for `packet_id`; `stored`: its PUBLISH submitted operations.
    /// Returns it back when it can be sent at once (nothing waits before it).
    pub(crate) fn push(
        &mut self,
        packet_id: PacketId,
        reason: ReasonCode,
        stored: bool,
    ) -> Option<(PacketId, ReasonCode)> {
        if !stored && self.sealed.is_empty() && self.open.is_empty() {
            return Some((packet_id, reason));
        }
        self.open.push((packet_id, reason));
        self.open_stored |= stored;
        None
    }

    /// Puts what was pushed since the last seal behind one barrier.
    pub(crate) fn seal(&mut self, storage: &Storage) {
        if self.open.is_empty() {
            return;
        }
        let barrier = if self.open_stored {
            storage.barrier()
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(Ok(()));
            rx
        };
        self.sealed
            .push_back((barrier, std::mem::take(&mut self.open)));
        self.open_stored = false;
    }

    /// Whether acknowledgements are waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    /// The oldest group, once its barrier resolves; never resolves when none waits.
    /// Cancel safe: a group leaves the queue only when returned.
    pub(crate) async fn next(&mut self) -> Settled {
        let Some((barrier, _)) = self.sealed.front_mut() else {
            return std::future::pending().await;
        };
        let result = barrier.await.unwrap_or(Err(StorageError::Closed));
        let acks = self.sealed.pop_front().map(|(_, acks)| acks);
        (result, acks.unwrap_or_default())
    }

    /// The oldest group if its barrier has resolved already.
    pub(crate) fn ready(&mut self) -> Option<Settled> {
        let (barrier, _) = self.sealed.front_mut()?;
        let result = match barrier.try_recv() {
            Ok(result) => result,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Err(StorageError::Closed),
        };
        let acks = self.sealed.pop_front().map(|(_, acks)| acks);
        Some((result, acks.unwrap_or_default()))
    }

    /// The next write carries a packet that depends on a submitted operation.
    pub(crate) fn hold_writes(&mut self) {
        self.hold_writes = true;
    }

    /// Waits, if the next write must, until what it depends on is stored; `false`: the
    /// store failed and the write must not happen.
    pub(crate) async fn writes_allowed(&mut self, storage: &Storage) -> bool {
        if !std::mem::take(&mut self.hold_writes) {
            return true;
        }
        match storage.barrier().await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::error!(%err, "store failed: closing the connection instead of sending what depends on it");
                false
            }
            Err(_) => false,
        }
    }
}
