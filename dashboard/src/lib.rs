//! The mqtt-web dashboard: a Leptos client-side-rendered app that shows devices (Homie 5
//! convention, see `docs/ARCHITECTURE.md`, "Device topic convention"), a topic explorer
//! and a broker view, and talks MQTT only through `web-client`.
//!
//! `trunk build` from the workspace root builds it (`index.html` links this crate and
//! `dashboard/style.css`); `cargo xtask dev` rebuilds it on every change and serves it
//! from a local broker. What is done and what remains: `dashboard/STATUS.md`.
//!
//! # Layout
//!
//! - `lib.rs`: [`App`], the root component that `main.rs` mounts on `<body>`: the header
//!   (status, connection banner, theme, navigation; it stays in view) and the current
//!   [`Page`], a signal kept in step with the URL by [`route`].
//! - [`dev_reload`]: with `?dev` in the URL (`cargo xtask dev`), reload on a new build.
//! - [`route`]: deep links (`#/device/{id}`, `#/explorer?topic=…`, …), Back and Forward.
//! - [`connection`]: the one `web_client::Client`, its status, the indicator, and the
//!   banner that says when the page is not live, why, and what to do.
//! - [`settings`]: connection profiles (broker URL, credentials, client id, topic root),
//!   one active, shown in the header; secrets only for the session unless remembered.
//! - [`devices`]: discovery, the device list, a device's page (`devices/page.rs`) and the
//!   Homie 5 parsing (`devices/homie.rs`, pure, unit-tested natively).
//! - [`theme`]: dark mode (OS preference, toggle).
//! - `main.rs`: a few lines: panic hook, mount.
//! - [`explorer`]: every topic (`#`, subscribed while its page is shown) as a tree,
//!   batched per animation frame; payload
//!   viewer, diff, retained deletion, search, publish panel.
//! - [`history`]: backfill of device charts and the explorer's selected topic from the
//!   broker's history (`$history/query`).
//! - [`broker`]: `$SYS` figures and live charts; the operator login and views over the
//!   admin API (clients, retained messages).
//! - [`keyed`]: a map of signals by key, owned by the page that made it.
//! - [`components`]: what several pages use: the chart, and [`components::FrameBatch`]
//!   (network updates applied once per animation frame).
//!
//! Everything a test touches has a `data-testid`.

pub mod broker;
pub mod components;
pub mod connection;
pub mod dev_reload;
pub mod devices;
pub mod explorer;
pub mod history;
pub mod keyed;
pub mod route;
pub mod settings;
pub mod theme;

use leptos::prelude::*;

use broker::{BrokerPage, BrokerStats};
use connection::{Connection, ConnectionBanner, StatusIndicator};
use devices::page::DevicePage;
use devices::{DeviceList, Registry};
use explorer::Explorer;
use explorer::view::ExplorerPage;
use settings::{Settings, SettingsPanel};
use theme::ThemeToggle;

/// The product name shown in the header. "mqtt-web" is a placeholder name.
pub const PRODUCT_NAME: &str = "mqtt-web dashboard";

/// Which page the app shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The device list.
    Devices,
    /// One device's page, by id.
    Device(String),
    /// The topic explorer.
    Explorer,
    /// The broker's `$SYS` figures.
    Broker,
    /// The settings form.
    Settings,
}

/// The root component: provides the settings, connection, device registry and page as
/// context, connects, and renders the shell.
#[component]
pub fn App() -> impl IntoView {
    let settings = RwSignal::new(Settings::load());
    let connection = Connection::new();
    let registry = Registry::new();
    let explorer = Explorer::new(settings);
    let stats = BrokerStats::new();
    let admin = broker::admin::AdminSession::load();
    let (initial_page, initial_topic) = route::initial();
    let page = RwSignal::new(initial_page);
    let explorer_topic = route::ExplorerTopic(RwSignal::new(initial_topic));
    provide_context(settings);
    provide_context(connection);
    provide_context(registry);
    provide_context(explorer);
    provide_context(stats);
    provide_context(admin);
    provide_context(page);
    provide_context(explorer_topic);
    route::sync(page, explorer_topic);
    dev_reload::watch();
    devices::discover(connection, settings, registry);
    explorer::watch(connection, explorer, page);
    history::backfill_explorer(connection, explorer, explorer_topic, settings);
    explorer.expose_counters();
    broker::watch(connection, stats);
    connection.connect(&settings.get_untracked());

    let nav = move |target: Page, label: &'static str, testid: &'static str| {
        let active = {
            let target = target.clone();
            move || page.with(|p| std::mem::discriminant(p) == std::mem::discriminant(&target))
        };
        view! {
            <button
                class="nav"
                class:active=active
                data-testid=testid
                on:click=move |_| page.set(target.clone())
            >
                {label}
            </button>
        }
    };

    view! {
        <header class="top">
            <h1 data-testid="product-name">{PRODUCT_NAME}</h1>
            <button
                class="profile"
                title="The active connection profile (Settings)"
                data-testid="profile-name"
                on:click=move |_| page.set(Page::Settings)
            >
                {move || settings.with(|s| s.name.clone())}
            </button>
            <nav>
                {nav(Page::Devices, "Devices", "nav-devices")}
                {nav(Page::Explorer, "Explorer", "nav-explorer")}
                {nav(Page::Broker, "Broker", "nav-broker")}
                {nav(Page::Settings, "Settings", "nav-settings")}
            </nav>
            <StatusIndicator />
            <ThemeToggle />
            <ConnectionBanner />
        </header>
        <main data-testid="app">
            {move || match page.get() {
                Page::Devices => view! { <DeviceList /> }.into_any(),
                Page::Device(id) => view! { <DevicePage id /> }.into_any(),
                Page::Explorer => view! { <ExplorerPage /> }.into_any(),
                Page::Broker => view! { <BrokerPage /> }.into_any(),
                Page::Settings => view! { <SettingsPanel /> }.into_any(),
            }}
        </main>
    }
}
