//! The mqtt-web dashboard: a Leptos client-side-rendered app that shows devices (Homie 5
//! convention, see `ARCHITECTURE.md`), a topic explorer and a broker view, and talks MQTT
//! only through `web-client`.
//!
//! `trunk build` from the workspace root builds it (`index.html` links this crate); `trunk
//! serve` serves it with `/mqtt` proxied to a broker on `127.0.0.1:8080`. For now it is
//! the app shell only: the device views arrive with the dashboard issue.
//!
//! # Layout
//!
//! - `lib.rs`: [`App`], the root component that `main.rs` mounts on `<body>`.
//! - `main.rs`: a few lines: panic hook, mount.
//!
//! The layout this crate grows into: one module per feature (`devices/`, `explorer/`,
//! `broker/`), `data-testid` on everything a test touches.

use leptos::prelude::*;

/// The product name shown in the header. "mqtt-web" is a placeholder name.
pub const PRODUCT_NAME: &str = "mqtt-web dashboard";

/// The root component: the app shell every view will live in.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <main data-testid="app">
            <h1 data-testid="product-name">{PRODUCT_NAME}</h1>
            <p data-testid="status">"The device views arrive with the dashboard issue."</p>
        </main>
    }
}
