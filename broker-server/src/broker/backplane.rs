//! The seam where a cluster plugs in: what this node asks of the world beyond it.
//!
//! A broker node routes to its own sessions itself ([`crate::router`]); a cluster
//! (ARCHITECTURE.md §10: NATS JetStream) adds what lies beyond the node. The broker
//! calls its [`Backplane`] at exactly these points, and nowhere else:
//!
//! | when | call | a cluster would |
//! |---|---|---|
//! | a local publish was accepted (retained, routed locally) | [`Backplane::forward`] | publish it to the other nodes' interest; for QoS 1/2, answer once it is durable there |
//! | the local subscriptions gain a filter, or lose its last subscriber | [`Backplane::interest`] | hold one reference-counted remote subscription per distinct filter |
//! | a new subscription looks up retained messages | [`Backplane::retained`] | fetch the retained messages stored elsewhere |
//! | a connection attaches to a session (connect, takeover) | [`Backplane::claim`] | take ownership of the session record (owner, epoch), or refuse |
//! | a session goes offline, or ends | [`Backplane::release`] | mark the record disconnected, or delete it |
//!
//! The single node uses [`Local`], which does nothing beyond this node and answers at
//! once, so today's behaviour and figures are the baseline. The broker holds its
//! backplane by value as the concrete type [`Plane`]: no allocation and no virtual call
//! per publish. A cluster backend will make [`Plane`] an enum of `Local` and itself,
//! still dispatched statically.
//!
//! Planned, not wired yet (nothing returns them today): the connection task holding a
//! QoS 1/2 acknowledgement until [`Backplane::forward`]'s future resolves (beside the
//! store's barrier in `storage::acks`), and messages arriving from other nodes entering
//! the local router (they must then not be forwarded again).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytestring::ByteString;
use protocol::{ReasonCode, TopicFilter};
use web_time::Instant;

use crate::message::Message;
use crate::session::Owner;

/// The backplane this build uses. Only [`Local`] exists yet; a cluster makes this an
/// enum (static dispatch, see the module docs).
pub(crate) type Plane = Local;

/// Why the world beyond this node did not take a message or a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refused {
    /// What the client is told (v5 reason code; 3.x gets the closest return code), e.g.
    /// 0x89 Server busy while the cluster has no quorum.
    pub reason: ReasonCode,
    /// Why, for the log.
    pub detail: String,
}

/// A change in the set of filters this node's sessions subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The first local subscription to the filter.
    Gained,
    /// The last local subscription to the filter went.
    Lost,
}

/// What [`Backplane::claim`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The session is this node's to serve.
    Claimed,
    /// Not now: the connection is refused with this reason.
    Refused(Refused),
}

/// Why a session is released ([`Backplane::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Its connection ended; the session stays (persistent), offline, on this node.
    Detached,
    /// The session ended (expiry 0, expired, replaced by a clean start).
    Ended,
}

/// What lies beyond this node. Every method is called on the broker's path and must
/// return at once; work that takes time is the returned future's.
pub trait Backplane: Send + Sync + fmt::Debug {
    /// Resolves when the world beyond this node has the message (for a cluster: once it
    /// is durable there, for QoS 1/2).
    type Forwarded: Future<Output = Result<(), Refused>> + Send + Unpin;

    /// A publish was accepted on this node (already retained and routed locally):
    /// forward it beyond. Node-local topics (`$SYS/...`) are the backplane's to skip.
    fn forward(&self, message: &Arc<Message>) -> Self::Forwarded;

    /// The local subscriptions gained `filter` (its first subscriber on this node) or
    /// lost it (its last). Reference counting is the broker's: one call per change of
    /// the set, not per subscriber. A shared filter (`$share/{group}/...`) counts per
    /// group.
    fn interest(&self, filter: &TopicFilter, change: Interest);

    /// Adds to `out` the retained messages matching `filter` that are kept beyond this
    /// node (the local ones are in the router's retained store already).
    fn retained(&self, filter: &TopicFilter, now: Instant, out: &mut Vec<Arc<Message>>);

    /// A connection acting as `owner` attaches to `client_id`'s session (a connect or
    /// a takeover, once any previous connection let go).
    fn claim(&self, client_id: &ByteString, owner: &Owner) -> Claim;

    /// `client_id`'s session was let go by its connection, or ended.
    fn release(&self, client_id: &ByteString, why: Release);
}

/// The single node: nothing lies beyond it. Every call returns at once and does
/// nothing; [`Backplane::forward`]'s future is ready immediately.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Backplane for Local {
    type Forwarded = std::future::Ready<Result<(), Refused>>;

    #[inline]
    fn forward(&self, _message: &Arc<Message>) -> Self::Forwarded {
        std::future::ready(Ok(()))
    }

    #[inline]
    fn interest(&self, _filter: &TopicFilter, _change: Interest) {}

    #[inline]
    fn retained(&self, _filter: &TopicFilter, _now: Instant, _out: &mut Vec<Arc<Message>>) {}

    #[inline]
    fn claim(&self, _client_id: &ByteString, _owner: &Owner) -> Claim {
        Claim::Claimed
    }

    #[inline]
    fn release(&self, _client_id: &ByteString, _why: Release) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_forwards_at_once_and_claims_every_session() {
        let message = Arc::new(Message {
            topic: "t".into(),
            payload: bytes::Bytes::from_static(b"x"),
            qos: protocol::QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        });
        let forwarded = Local.forward(&message);
        assert_eq!(futures::FutureExt::now_or_never(forwarded), Some(Ok(())));
        assert_eq!(Local.claim(&"c".into(), &Owner::Anonymous), Claim::Claimed);
        assert_eq!(std::mem::size_of::<Plane>(), 0, "costs the broker nothing");
    }
}
