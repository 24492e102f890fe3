//! Cluster mode: several broker nodes sharing sessions, subscriptions and messages through
//! a NATS JetStream cluster (the backplane). Not wired to behaviour yet: the embedded
//! single node is what runs.
//!
//! # Layout
//!
//! - [`config`]: the `[cluster]` section and its checks.
//! - [`subject`]: MQTT topics and filters ↔ NATS subjects, exact and reversible.
pub mod config;
pub mod subject;
