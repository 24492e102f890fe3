//! Cluster mode against a real 3-node NATS JetStream cluster ([`crate::nats`]): the
//! backplane's parts on their own, then broker nodes end to end.
mod bridge;
mod e2e;
mod failover;
mod nodes;
mod retained;
mod routing;
mod sessions;
