//! Cross-crate end-to-end tests of mqtt-web: real clients against a real broker, and the
//! built dashboard driven in a real browser. Each test file under `tests/` is named after
//! the behaviour or the peer it checks (`interop_mosquitto.rs`, ...); `README.md` says
//! what each suite covers and how to run one.
//!
//! ```text
//!  test (tokio) ──start(port 0)──► broker-server, in process
//!       │                               ▲
//!       └──spawn──► peer process ──TCP──┘   mosquitto_pub/sub, python3 + paho-mqtt
//!                   (stdout lines back to the test, killed on drop)
//! ```
//!
//! # Layout
//!
//! - [`broker`]: the broker in the test's own runtime, listening on `127.0.0.1:0`.
//! - [`peer`]: an external MQTT client as a child process: its stdout as lines, a
//!   failure guard on every wait, killed when dropped.
//! - `tests/*.rs`: one file per behaviour or peer, each binding only port 0.
//! - `interop/*.py`: the paho-mqtt scenarios that `tests/interop_paho.rs` runs.
//!
//! Timeouts here are failure guards only ([`PATIENCE`]): no test asserts on timing.

pub mod broker;
pub mod peer;

use std::time::Duration;

/// How long a test waits for something that should happen before it fails. Generous,
/// because the machine may be busy building other crates; a passing test never waits
/// this long.
pub const PATIENCE: Duration = Duration::from_secs(30);
