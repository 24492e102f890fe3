//! web-client's in-browser tests, one wasm test binary (one page, one Chromium) for all
//! of them: the byte bridge between JavaScript and Rust (`js_bytes`), messages through a
//! real broker and back (`round_trip`), the offline queue (`offline_queue`) and
//! reconnection across broker restarts (`reconnect`).
//!
//! Run by `cargo xtask test browser`, which starts `broker-server` on free ports and
//! builds these tests with its URLs (see `common`); `cargo test -p web-client --target
//! wasm32-unknown-unknown` alone runs the tests that need no broker and says which it
//! skipped. The cargo runner is `wasm-bindgen-test-runner`. On a native target this
//! binary compiles to nothing: plain `#[test]`s would be silently skipped on wasm32, so
//! every test here is a `#[wasm_bindgen_test]`.

#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::wasm_bindgen_test_configure;

wasm_bindgen_test_configure!(run_in_browser);

mod common;
mod js_bytes;
mod offline_queue;
mod reconnect;
mod round_trip;
