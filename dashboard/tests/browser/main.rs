//! The dashboard's native browser tests, in one binary: the built dashboard (`trunk
//! build`) served by a real `broker-server`, `device-sim` devices, headless Chromium
//! driven over WebDriver (fantoccini). One binary links fantoccini, tokio and hyper once
//! instead of once per file, which keeps CI's build and `target/` smaller.
//!
//! Each module is one part of the dashboard as a user sees it; `support` starts the
//! broker, device-sim and chromedriver on free loopback ports (each test its own) and has
//! the WebDriver helpers. Without `DASHBOARD_DIST`, `DASHBOARD_BROKER`, `DEVICE_SIM` and
//! `CHROMEDRIVER` (a plain `cargo test`) every test passes without running and says so;
//! `cargo xtask test browser` builds what they need and runs them.
//!
//! Run one module with `cargo test -p dashboard --test browser -- e2e::`. Two modules
//! need more than the `browser` step gives: `dev_loop` runs against `cargo xtask dev
//! --check` (`DASHBOARD_DEV_URL`), and `load` is a benchmark that runs only with
//! `DASHBOARD_LOAD` set. The in-browser component tests (`tests/devices.rs`) are a
//! separate, wasm32-only target.

#![cfg(not(target_arch = "wasm32"))]

mod support;

mod bridges;
mod connection_state;
mod dev_loop;
mod e2e;
mod ha;
mod history_backfill;
mod lists;
mod load;
mod navigation;
mod operator;
mod truthful_views;
