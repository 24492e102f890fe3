//! Cluster mode: several broker nodes sharing sessions, subscriptions and messages through
//! a NATS JetStream cluster (the backplane). Not wired to behaviour yet: the embedded
//! single node is what runs.
//!
//! # Layout
//!
//! - [`config`]: the `[cluster]` section and its checks.
//! - [`subject`]: MQTT topics and filters ↔ NATS subjects, exact and reversible.
pub mod config;
// Used by the NATS backplane, which is not wired yet; tested on its own meanwhile.
#[allow(dead_code)]
pub(crate) mod subject;
