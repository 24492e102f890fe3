//! The broker's integration tests, in one binary: linking the whole broker once instead
//! of once per file keeps CI faster and `target/` smaller.
//!
//! Each module is named after the behaviour it covers. `common` starts a broker in the
//! test's process (or the real binary as a child process) on port 0; `peer` is the raw
//! MQTT client (whole packets or bytes over TCP, TLS or WebSocket streams) whose waits
//! never park the runtime, so tests on a paused clock do not depend on timing;
//! `http_support` has the HTTP, WebSocket and TLS helpers and external peers.
//!
//! `cargo xtask test` runs them 8 at a time (they wait on sockets, timers, child
//! processes and NATS far more than they compute), except the tests in a module named
//! `alone` (such as `auth_password::alone`): those measure time or memory, and run
//! afterwards, one at a time, with the machine to themselves.
//!
//! Run one module with `cargo test -p broker-server --test it acl::`.

mod common;
mod http_support;
#[macro_use]
mod peer;

mod acl;
mod auth_jwt;
mod auth_password;
mod auth_scram;
mod bridge;
mod cluster;
mod crash;
mod durability;
mod enhanced_auth;
mod history;
mod hostile;
mod http_api;
mod keepalive;
mod limits;
mod log_output;
mod malformed;
mod mqtt5_properties;
mod mqttjs;
mod nats;
mod offline_queue;
mod paho_websocket;
mod qos;
mod rate_limits;
mod redelivery;
mod retained;
mod routing;
mod sessions;
mod shared;
mod startup;
mod storage_errors;
mod sys;
mod tls;
mod topic_alias;
mod websocket;
mod will;
