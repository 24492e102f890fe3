//! The native client's integration tests, one binary (one link of the broker).
//!
//! - [`scenarios`]: what every broker must do, run against ours and against a real
//!   mosquitto ([`brokers`]);
//! - the client's own behaviour against our broker in-process ([`common`]): QoS
//!   details, subscriptions, reconnect and the offline queue, connection errors, TLS
//!   and WebSocket transports, request/response;
//! - the `mqtt` command line and `device-sim` as child processes.

// Items are `pub` for the sibling modules; nothing is exported from a test binary.
#![allow(unreachable_pub)]

mod brokers;
mod cli_errors;
mod cli_interop;
mod common;
mod connect_errors;
mod device_sim;
mod qos;
mod reconnect;
mod request_response;
mod scenarios;
mod subscription;
mod tls;
