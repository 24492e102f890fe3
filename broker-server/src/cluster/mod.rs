//! Cluster mode: several broker nodes sharing sessions, subscriptions and messages through
//! a NATS JetStream cluster (the backplane). Opt-in by `[cluster] backend = "nats"`; the
//! embedded single node is the default.
//!
//! # Layout
//!
//! - [`config`]: the `[cluster]` section and its checks.
//! - [`subject`]: MQTT topics and filters ↔ NATS subjects, exact and reversible.
//! - [`wire`]: a [`Message`](crate::message::Message) ↔ NATS headers and payload.
//! - [`routing`]: publishing to the other nodes (QoS 0 on core NATS, QoS 1/2 in sharded
//!   JetStream streams) and receiving what this node's subscriptions need.
//! - [`retained`]: retained messages in a stream with one message per subject.
//! - [`sessions`]: session records (owner node, epoch) in a key-value bucket, claimed by
//!   compare-and-set; handoff of a session between nodes.
//! - [`nodes`]: node liveness by heartbeat keys; the wills of a node that died.
//! - [`handover`]: a session's state as it moves from one node to another.
//! - [`lease`]: one node at a time for a job (a bridge), by expiring keys.
//! - [`link`]: the NATS connection.
//! - [`plane`]: this node's backplane, joining the parts above for the broker.
pub mod config;
#[doc(hidden)]
pub mod handover;
#[doc(hidden)]
pub mod lease;
#[doc(hidden)]
pub mod link;
#[doc(hidden)]
pub mod nodes;
#[doc(hidden)]
pub mod plane;
#[doc(hidden)]
pub mod retained;
#[doc(hidden)]
pub mod routing;
#[doc(hidden)]
pub mod sessions;
pub(crate) mod subject;
#[doc(hidden)]
pub mod wire;

/// A position in one of the QoS 1/2 shard streams: what a node has seen, or where a
/// message is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamPos {
    /// The shard (stream `<P>_Q_<shard>`).
    pub shard: u16,
    /// The stream sequence.
    pub seq: u64,
}

/// Per shard, the last stream sequence already taken care of (index = shard; 0: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint(pub Vec<u64>);
