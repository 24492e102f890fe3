//! # web-client
//!
//! The mqtt-web client for browsers: a browser WebSocket and timers driving
//! [`protocol`]'s sans-IO [`ClientSession`](protocol::ClientSession). No second MQTT
//! implementation lives here: this crate moves bytes and time between a WebSocket and
//! the session, and turns session events into futures and streams. It is the twin of
//! `native-client` (tokio over TCP/TLS), with the same API.
//!
//! ```text
//!   Client (clone) ──commands──► driver ◄──► WebSocket (subprotocol "mqtt", binary frames)
//!   Subscription streams ◄─────  │ ClientSession (protocol)
//!   events() streams ◄─────────  │ one timer, in a Web Worker ◄──► postMessage
//!   JavaScript: MqttClient ────► the same Client, through wasm-bindgen
//! ```
//!
//! - MQTT 3.1.1 and 5.0 (and 3.1), QoS 0, 1 and 2, retained messages, will, user name
//!   and password or a token (JWT) in the password field.
//! - Reconnects with exponential backoff and jitter; a persistent session is resumed
//!   (the session re-sends unacknowledged messages) and subscriptions are restored when
//!   the broker lost the session. Publications made while offline wait in a bounded
//!   queue whose [`DropPolicy`] reports what it drops.
//! - Keep alive that survives background-tab timer throttling: the timer runs in a Web
//!   Worker ([`TimerMode`]), with a main-thread fallback.
//! - The broker's CONNACK limits (Maximum QoS, Retain Available, Maximum Packet Size,
//!   Receive Maximum) are honoured and outbound topic aliases chosen by the session.
//! - MQTT 5 request/response ([`Client::request`], [`Client::respond`]).
//! - A JavaScript API close to MQTT.js ([`js::MqttClient`]), with TypeScript types.
//!
//! # Layout
//!
//! All MQTT client behaviour (session events, commands, the offline queue, request
//! correlation, reconnect backoff) is `protocol::client::Connection`, sans-IO, and the
//! calls of [`Client`] and [`Subscription`] are `protocol::client::Handle`'s (their
//! signatures and docs expanded from `protocol::client_calls!`), all of it
//! shared with `native-client`; this crate is its browser glue.
//!
//! - [`client`](Client): [`Client`] (the cloneable handle), [`Subscription`],
//!   [`EventStream`], and the `Port` over the driver's inbox that their `Handle` calls
//!   through.
//! - `options`: [`ConnectOptions`] (`protocol::client::ConnectOptions` with
//!   [`TimerMode`] as its transport part, set with [`ConnectOptionsExt::timer`]);
//!   [`SubscribeOptions`], [`ReconnectOptions`], [`OfflineQueueOptions`],
//!   [`DropPolicy`] and [`PublishOptions`] are `protocol::client`'s.
//! - `driver` (private): the state that owns the WebSocket, the timer and the
//!   `Connection`, fed one input at a time (`driver/link.rs`: the WebSocket and the
//!   timer), with this crate's queues as the connection's channels.
//! - `socket` (private): the `web_sys::WebSocket` adapter.
//! - `timer` (private): timers in a Web Worker or on the main thread.
//! - `text` (private): the texts of the JavaScript API's errors and close events; with
//!   the `terse-errors` feature (the npm package) short phrases built without `core::fmt`.
//! - `queue` (private): the single-threaded bounded queues behind the streams.
//! - `error`: [`ConnectError`]. [`Error`], [`ConnectFailure`], [`Event`],
//!   [`Message`] and [`PublishOutcome`] are `protocol::client`'s (the same types as
//!   `native_client`'s); the small tables use `protocol::client::SmallMap`.
//! - [`js`]: the `#[wasm_bindgen]` JavaScript API.
//! - `examples/`: a page using the JavaScript API from a plain `<script type="module">`.
//! - `npm/`: the npm package `@mqtt-web/client` around the JavaScript API (entry points
//!   for browsers and Node, an MQTT.js-compatible `compat` entry, its README and tests),
//!   built by `cargo xtask package`.
//! - `tests/`: `wasm-bindgen-test` tests that run in headless Chromium against a real
//!   broker (started by `cargo xtask test`), and `js_api.rs`, a native test that drives
//!   the example page there over WebDriver.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod driver;
mod error;
pub mod js;
mod options;
mod queue;
mod socket;
mod text;
mod timer;

pub use client::{Client, EventStream, Subscription};
pub use error::{ConnectError, ConnectFailure, Error};
pub use options::{
    ConnectOptions, ConnectOptionsExt, DropPolicy, OfflineQueueOptions, PublishOptions,
    ReconnectOptions, SubscribeOptions, TimerMode,
};
pub use protocol::client::history::{
    HistoryError, HistoryQuery, HistoryReply, QUERY_TOPIC as HISTORY_QUERY_TOPIC,
    Sample as HistorySample, TopicHistory,
};
pub use protocol::client::{DisconnectReason, DropSource, Event, Message, PublishOutcome};

pub use protocol::{
    ProtocolVersion, PublishProperties, PublishProps, QoS, ReasonCode, RetainHandling,
    SessionError, TopicFilter, TopicName, Will, WillProperties,
};
