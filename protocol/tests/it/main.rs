//! The protocol crate's integration tests, one binary.
//!
//! - codec: `codec_fixtures` (packets captured from mosquitto, in `tests/fixtures/`),
//!   `codec_vectors` (spec vectors), `codec_malformed`, `codec_roundtrip` (proptest),
//!   `small_packets` (type sizes), with the packet builders of `common`;
//! - sessions: `pair` joins a client and a server session by an in-memory link with a
//!   simulated clock; `session_pair`, `session_keepalive`, `session_violations`,
//!   `client_connection`.

mod client_connection;
mod codec_fixtures;
mod codec_malformed;
mod codec_roundtrip;
mod codec_vectors;
#[rustfmt::skip] // hand-aligned byte tables
mod common;
mod pair;
mod session_keepalive;
mod session_pair;
mod session_violations;
mod small_packets;
