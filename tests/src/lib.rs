//! Cross-crate end-to-end tests of mqtt-web: real clients against a real broker, and the
//! built dashboard driven in a real browser. Each test file under `tests/` is named after
//! the behaviour it checks (`retained.rs`, `will_delay.rs`, ...).
//!
//! It holds no tests yet: the first ones arrive with the broker-server issue, since every
//! end-to-end path goes through the broker.
//!
//! # Layout
//!
//! - `src/lib.rs`: shared helpers for the tests (starting a broker on port 0, connecting
//!   clients); empty so far.
//! - `tests/*.rs`: one file per behaviour, each binding only port 0.
