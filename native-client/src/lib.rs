//! The mqtt-web client for native programs: the TCP twin of `web-client`.
//!
//! A tokio adapter (TCP and TLS sockets, tokio timers) over [`protocol`]'s sans-IO client
//! session, for Rust programs on devices, plus two binaries that are part of the product:
//! `mqtt` (publish and subscribe from a shell, like `mosquitto_pub`/`mosquitto_sub`) and
//! `device-sim` (simulated Homie 5 devices publishing over TCP).
//!
//! This crate is a placeholder until the native-client issue lands; both binaries only
//! answer `--help` and `--version`.
//!
//! # Layout
//!
//! The layout this crate grows into (see `ARCHITECTURE.md`):
//!
//! - `client`: the async `Client` API and its `ClientOptions` builder.
//! - `transport`: TCP and TLS connect, generic over the byte stream.
//! - `driver`: the task that moves bytes and timers between the socket and the session.
//! - `bin/mqtt.rs`: the `mqtt pub` / `mqtt sub` command line.
//! - `bin/device-sim.rs`: simulated devices following the Homie 5 topic convention.
