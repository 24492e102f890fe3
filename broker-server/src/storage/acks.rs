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

//!
//! In a cluster an acknowledgement also waits until the backplane has the message
//! ([`Forwarded`]): a group's barrier then resolves once the store and every
//! forward of the group have answered, and a refusal refuses the group.

use std::collections::VecDeque;

use protocol::{PacketId, ReasonCode};

use super::{Barrier, Storage, StorageError};
use crate::broker::Forwarded;

/// Acknowledgements waiting for the store, in PUBLISH order.
#[derive(Debug, Default)]
pub(crate) struct AckQueue {
    /// Groups behind a barrier, oldest first.
    sealed: VecDeque<(Gate, Vec<(PacketId, ReasonCode)>)>,
    /// Pushed since the last seal.
    open: Vec<(PacketId, ReasonCode)>,
    /// Whether something in `open` was stored (else its barrier is already resolved).
    open_stored: bool,
    /// What the backplane must confirm for `open` (a cluster only).
    open_forwards: Forwards,
    /// A queued packet depends on a submitted operation.
    hold_writes: bool,
}

/// Backplane confirmations still to come (futures have no `Debug`).
#[derive(Default)]
struct Forwards(Vec<Forwarded>);

impl std::fmt::Debug for Forwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} forwards", self.0.len())
    }
}

/// Why a group of acknowledgements cannot go as they are.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum AckError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The cluster did not take a message (no quorum, timeout).
    #[error("cluster: {detail}")]
    Cluster {
        /// What the client is told (MQTT 5).
        reason: ReasonCode,
        /// Why, for the log.
        detail: String,
    },
}

impl AckError {
    /// The MQTT 5 reason code the refused acknowledgements carry.
    pub(crate) fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Store(err) => err.reason_code(),
            Self::Cluster { reason, .. } => *reason,
        }
    }
}

/// What a sealed group waits for: the store's barrier, or the store and the backplane.
#[derive(Debug)]
enum Gate {
    Store(Barrier),
    Joined(tokio::sync::oneshot::Receiver<Result<(), AckError>>),
}

impl Gate {
    async fn wait(&mut self) -> Result<(), AckError> {
        match self {
            Self::Store(barrier) => Ok(barrier.await.unwrap_or(Err(StorageError::Closed))?),
            Self::Joined(joined) => joined.await.unwrap_or(Err(StorageError::Closed.into())),
        }
    }

    fn try_wait(&mut self) -> Option<Result<(), AckError>> {
        use tokio::sync::oneshot::error::TryRecvError;
        match self {
            Self::Store(barrier) => match barrier.try_recv() {
                Ok(result) => Some(result.map_err(AckError::from)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Closed) => Some(Err(StorageError::Closed.into())),
            },
            Self::Joined(joined) => match joined.try_recv() {
                Ok(result) => Some(result),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Closed) => Some(Err(StorageError::Closed.into())),
            },
        }
    }
}

/// A group of acknowledgements whose barrier resolved.
pub(crate) type Settled = (Result<(), AckError>, Vec<(PacketId, ReasonCode)>);

impl AckQueue {
    /// An acknowledgement for `packet_id`; `stored`: its PUBLISH submitted operations;
    /// `forwarded`: the backplane has yet to confirm it. Returns it back when it can be
    /// sent at once (nothing waits before it).
    pub(crate) fn push(
        &mut self,
        packet_id: PacketId,
        reason: ReasonCode,
        stored: bool,
        forwarded: Option<Forwarded>,
    ) -> Option<(PacketId, ReasonCode)> {
        if !stored && forwarded.is_none() && self.sealed.is_empty() && self.open.is_empty() {
            return Some((packet_id, reason));
        }
        self.open.push((packet_id, reason));
        self.open_stored |= stored;
        self.open_forwards.0.extend(forwarded);
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
        let gate = if self.open_forwards.0.is_empty() {
            Gate::Store(barrier)
        } else {
            let forwards = std::mem::take(&mut self.open_forwards.0);
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let mut result: Result<(), AckError> = barrier
                    .await
                    .unwrap_or(Err(StorageError::Closed))
                    .map_err(Into::into);
                for forwarded in futures::future::join_all(forwards).await {
                    if let (Ok(()), Err(refused)) = (&result, forwarded) {
                        result = Err(AckError::Cluster {
                            reason: refused.reason,
                            detail: refused.detail,
                        });
                    }
                }
                let _ = tx.send(result);
            });
            Gate::Joined(rx)
        };
        self.sealed
            .push_back((gate, std::mem::take(&mut self.open)));
        self.open_stored = false;
    }

    /// Whether acknowledgements are waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    /// The oldest group, once its barrier resolves; never resolves when none waits.
    /// Cancel safe: a group leaves the queue only when returned.
    pub(crate) async fn next(&mut self) -> Settled {
        let Some((gate, _)) = self.sealed.front_mut() else {
            return std::future::pending().await;
        };
        let result = gate.wait().await;
        let acks = self.sealed.pop_front().map(|(_, acks)| acks);
        (result, acks.unwrap_or_default())
    }

    /// The oldest group if its barrier has resolved already.
    pub(crate) fn ready(&mut self) -> Option<Settled> {
        let (gate, _) = self.sealed.front_mut()?;
        let result = gate.try_wait()?;
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
