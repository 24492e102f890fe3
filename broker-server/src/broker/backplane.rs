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
//! once, so its behaviour and figures are the baseline. The broker holds its backplane
//! by value as the enum [`Plane`] (`Local`, or a NATS JetStream node): no allocation and
//! no virtual call per publish on a single node.
//!
//! The connection task holds a QoS 1/2 acknowledgement until [`Backplane::forward`]'s
//! future resolves (beside the store's barrier, in `storage::acks`). Messages arriving
//! from other nodes enter the local router through `Broker::publish_remote`, which does
//! not forward them again.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytestring::ByteString;
use futures::future::BoxFuture;
use protocol::{ReasonCode, TopicFilter, Will};
use web_time::Instant;

use crate::message::Message;
use crate::session::Owner;

/// The backplane this node runs: [`Local`] (the default), or a NATS JetStream cluster
/// ([`crate::cluster::plane`]). An enum, so the single node pays no allocation and no
/// virtual call per publish.
#[derive(Debug, Clone, Default)]
pub(crate) enum Plane {
    /// A single node.
    #[default]
    Local,
    /// A node of a cluster.
    Nats(Arc<crate::cluster::plane::NatsPlane>),
}

/// Why the world beyond this node did not take a message or a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refused {
    /// What the client is told (v5 reason code; 3.x gets the closest return code), e.g.
    /// 0x88 Server unavailable while the cluster has no quorum.
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

/// What a connecting client asks of its session, as the backplane records it.
#[derive(Debug, Clone)]
pub struct Connecting {
    /// The user the connection acts as.
    pub owner: Owner,
    /// Clean Start (3.x: Clean Session).
    pub clean_start: bool,
    /// The granted Session Expiry Interval (0: the session ends with the connection).
    pub expiry_interval: u32,
    /// The will, which a surviving node publishes if this node dies.
    pub will: Option<Will>,
    /// Whether this node has the session already (then nothing needs to come from
    /// elsewhere, unless the cluster says another node holds it).
    pub here: bool,
}

/// A session that another node held, handed to this one by [`Backplane::claim`].
#[derive(Debug, Clone, Default)]
pub struct Handover {
    /// Its subscriptions.
    pub subscriptions: Vec<(TopicFilter, crate::session::StoredSubscription)>,
    /// The messages waiting in its mailbox, in order.
    pub messages: Vec<(Arc<Message>, protocol::QoS)>,
    /// Its protocol state: the QoS 1/2 flows in flight, with their packet identifiers.
    pub state: Option<protocol::session::SessionState>,
    /// Rebuilt from the cluster's record (its node is gone): the QoS 1/2 messages its
    /// subscriptions match are replayed from the streams after this checkpoint, once
    /// the subscriptions are live here (so none falls between the two).
    pub replay_from: Option<crate::cluster::Checkpoint>,
}

/// What [`Backplane::claim`] answered.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The session is this node's to serve. `Some`: it lived on another node, which
    /// handed it over (or it was rebuilt from the cluster's record and streams).
    Claimed(Option<Handover>),
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
    /// A publish was accepted on this node (already routed locally): forward it beyond.
    /// `None`: nothing to wait for (QoS 0, a node-local `$` topic, a single node);
    /// otherwise the publisher's acknowledgement waits for the future, which resolves
    /// once the world beyond this node has the message durably.
    fn forward(&self, message: &Arc<Message>) -> Option<BoxFuture<'static, Result<(), Refused>>>;

    /// The local subscriptions gained `filter` (its first subscriber on this node) or
    /// lost it (its last). Reference counting is the broker's: one call per change of
    /// the set, not per subscriber. A shared filter (`$share/{group}/...`) counts per
    /// group.
    fn interest(&self, filter: &TopicFilter, change: Interest);

    /// Whether retained messages are kept beyond this node (then the broker keeps only
    /// node-local `$` topics itself).
    fn retains_beyond(&self) -> bool;

    /// The retained messages matching `filter` that are kept beyond this node.
    fn retained(
        &self,
        filter: &TopicFilter,
        now: Instant,
    ) -> impl Future<Output = Vec<Arc<Message>>> + Send;

    /// A connection attaches to `client_id`'s session (a connect or a takeover, once
    /// any previous local connection let go).
    fn claim(
        &self,
        client_id: &ByteString,
        connecting: &Connecting,
    ) -> impl Future<Output = Claim> + Send;

    /// `client_id`'s session was let go by its connection, or ended.
    fn release(&self, client_id: &ByteString, why: Release);
}

/// The single node: nothing lies beyond it. Every call returns at once and does
/// nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Backplane for Local {
    #[inline]
    fn forward(&self, _message: &Arc<Message>) -> Option<BoxFuture<'static, Result<(), Refused>>> {
        None
    }

    #[inline]
    fn interest(&self, _filter: &TopicFilter, _change: Interest) {}

    #[inline]
    fn retains_beyond(&self) -> bool {
        false
    }

    async fn retained(&self, _filter: &TopicFilter, _now: Instant) -> Vec<Arc<Message>> {
        Vec::new()
    }

    async fn claim(&self, _client_id: &ByteString, _connecting: &Connecting) -> Claim {
        Claim::Claimed(None)
    }

    #[inline]
    fn release(&self, _client_id: &ByteString, _why: Release) {}
}

// The cluster's futures (a NATS request and its reply) are several KiB; awaited inline,
// they would size every CONNECT's and SUBSCRIBE's future on a single node too, which
// then pays for allocating and copying them (9.6 KB of `Broker::attach` came from
// here). Boxed, they cost that only in a cluster, beside a network round trip.
impl Plane {
    /// The QoS 1/2 messages stored in the cluster after `from` whose topics `filters`
    /// match (a session rebuilt after its node died).
    pub(crate) async fn replay(
        &self,
        client_id: &ByteString,
        from: &crate::cluster::Checkpoint,
        filters: &[TopicFilter],
    ) -> Vec<Message> {
        match self {
            Self::Local => Vec::new(),
            Self::Nats(plane) => Box::pin(plane.replay(client_id, from, filters)).await,
        }
    }

    /// A member of a shared group finished the flow of `message` (acknowledged it): a
    /// cluster acknowledges it to the group's durable consumer, so it is not given to
    /// another member.
    pub(crate) fn shared_done(&self, message: &Arc<Message>) {
        if let Self::Nats(plane) = self {
            plane.shared_done(message);
        }
    }

    /// A persistent session's subscriptions changed: a cluster records them with the
    /// session, for the node that rebuilds it if this one dies.
    pub(crate) fn subscriptions_changed(&self, session: &crate::session::Session) {
        if let Self::Nats(plane) = self {
            plane.subscriptions_changed(session);
        }
    }
}

impl Backplane for Plane {
    #[inline]
    fn forward(&self, message: &Arc<Message>) -> Option<BoxFuture<'static, Result<(), Refused>>> {
        match self {
            Self::Local => None,
            Self::Nats(plane) => plane.forward(message),
        }
    }

    #[inline]
    fn interest(&self, filter: &TopicFilter, change: Interest) {
        if let Self::Nats(plane) = self {
            plane.interest(filter, change);
        }
    }

    #[inline]
    fn retains_beyond(&self) -> bool {
        matches!(self, Self::Nats(_))
    }

    async fn retained(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        match self {
            Self::Local => Vec::new(),
            Self::Nats(plane) => Box::pin(plane.retained(filter, now)).await,
        }
    }

    async fn claim(&self, client_id: &ByteString, connecting: &Connecting) -> Claim {
        match self {
            Self::Local => Claim::Claimed(None),
            Self::Nats(plane) => Box::pin(plane.claim(client_id, connecting)).await,
        }
    }

    #[inline]
    fn release(&self, client_id: &ByteString, why: Release) {
        if let Self::Nats(plane) = self {
            plane.release(client_id, why);
        }
    }
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
        assert!(Local.forward(&message).is_none(), "nothing to wait for");
        let connecting = Connecting {
            owner: Owner::Anonymous,
            clean_start: true,
            expiry_interval: 0,
            will: None,
            here: false,
        };
        let claim = futures::FutureExt::now_or_never(Local.claim(&"c".into(), &connecting));
        assert!(matches!(claim, Some(Claim::Claimed(None))));
        assert!(Plane::Local.forward(&message).is_none());
    }

    /// Every CONNECT's handler awaits `Broker::attach`, and the connection moves that
    /// handler's future into a fresh box (`Connection::drive`): its size is copied and
    /// allocated once per CONNECT. The cluster's NATS futures, inline, made it 9.6 KB
    /// (BENCHMARKS.md, "Reconnect storm"); boxed, about 1.4 KB.
    #[tokio::test]
    async fn attaching_a_session_stays_small_without_a_cluster() {
        let broker = crate::broker::Broker::new(crate::config::Config::default());
        let connecting = Connecting {
            owner: Owner::Anonymous,
            clean_start: true,
            expiry_interval: 0,
            will: None,
            here: false,
        };
        let client_id = ByteString::from("c");
        let attach = broker.attach(&client_id, connecting);
        let size = std::mem::size_of_val(&attach);
        assert!(size <= 2048, "the attach future is {size} bytes");
    }
}
