//! # native-client
//!
//! The mqtt-web client for native programs, the TCP twin of `web-client`: a tokio
//! adapter over [`protocol`]'s sans-IO [`ClientSession`](protocol::ClientSession). No
//! second MQTT implementation lives here: this crate moves bytes and time between a
//! socket and the session, and turns session events into futures and streams.
//!
//! ```text
//!   Client (clone per task) ──commands──► driver task ◄──► TCP / TLS / WebSocket
//!   Subscription streams ◄──messages───   │  ClientSession (protocol)
//!   events() receivers   ◄──Event─────    │  one timer, one write buffer
//! ```
//!
//! - MQTT 3.1.1 and 5.0 (and 3.1), QoS 0, 1 and 2, retained messages, will,
//!   user name and password.
//! - `mqtt://` (TCP), `mqtts://` (TLS with rustls: system roots or a CA file, client
//!   certificates), `ws://` / `wss://` with the default `websocket` feature.
//! - Reconnects with exponential backoff and jitter; a persistent session is resumed
//!   (the session re-sends unacknowledged messages), and subscriptions are restored
//!   when the broker lost the session. Publications made while disconnected wait in a
//!   bounded offline queue with a [`DropPolicy`].
//! - MQTT 5 request/response ([`Client::request`], [`Client::respond`]).
//!
//! # Example: a device loop
//!
//! Read a sensor, publish it, and react to commands (the full program is
//! `examples/device_loop.rs`):
//!
//! ```no_run
//! use std::time::Duration;
//! use native_client::{Client, ConnectOptions, PublishOptions, QoS};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = ConnectOptions::new("mqtt://localhost:1883")
//!     .client_id("thermo-1")
//!     .will("iot/5/thermo-1/$state", "lost", QoS::AtLeastOnce, true);
//! let client = Client::connect(options).await?;
//! client.publish("iot/5/thermo-1/$state", "ready", PublishOptions::new(QoS::AtLeastOnce).retain(true)).await?;
//! let mut commands = client.subscribe("iot/5/thermo-1/+/+/set", QoS::AtLeastOnce).await?;
//! let mut tick = tokio::time::interval(Duration::from_secs(5));
//! loop {
//!     tokio::select! {
//!         _ = tick.tick() => {
//!             let celsius = 21.5; // read the sensor here
//!             client.publish("iot/5/thermo-1/env/temperature", celsius.to_string(), QoS::AtMostOnce).await?;
//!         }
//!         Some(command) = commands.recv() => {
//!             println!("{} = {:?}", command.topic(), command.payload_str());
//!             if command.response_topic().is_some() {
//!                 client.respond(&command, r#"{"ok":true}"#, QoS::AtMostOnce.into()).await?;
//!             }
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! # Layout
//!
//! All MQTT client behaviour (session events, commands, the offline queue, request
//! correlation, reconnect backoff) is `protocol::client::Connection`, sans-IO, and the
//! calls of [`Client`] and [`Subscription`] are `protocol::client::Handle`'s (their
//! signatures and docs expanded from `protocol::client_calls!`), all of it
//! shared with `web-client`; this crate is its tokio glue.
//!
//! - [`client`](Client): [`Client`] (the cloneable handle), [`Subscription`], and the
//!   `Port` over the driver task's channel that their `Handle` calls through.
//! - `options`: [`ConnectOptions`] (`protocol::client::ConnectOptions` with
//!   [`TlsOptions`] as its transport part, set with [`ConnectOptionsExt::tls`]);
//!   [`SubscribeOptions`], [`ReconnectOptions`], [`OfflineQueueOptions`],
//!   [`DropPolicy`] and [`PublishOptions`] are `protocol::client`'s.
//! - `driver` (private): the task that owns the socket and the `Connection`: the
//!   `select!` loop (`driver/link.rs`) and the tokio channels it answers through.
//! - `transport` (private): opening TCP, TLS and WebSocket streams, and
//!   [`TransportError`].
//! - `tls`: [`TlsOptions`] and the rustls configuration.
//! - `url`: [`BrokerUrl`] parsing.
//! - `error`: [`ConnectError`]. [`Error`], [`ConnectFailure`], [`Event`],
//!   [`Message`] and [`PublishOutcome`] are `protocol::client`'s (the same types as
//!   `web_client`'s).
//! - `bin/mqtt/`: the `mqtt pub` / `mqtt sub` command line.
//! - `bin/device-sim/`: simulated devices following the Homie 5 topic convention.

#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod options;
mod tls;
pub mod transport;
mod url;

pub use client::{Client, Subscription};
pub use error::{ConnectError, ConnectFailure, Error};
pub use options::{
    ConnectOptions, ConnectOptionsExt, DropPolicy, OfflineQueueOptions, PublishOptions,
    ReconnectOptions, SubscribeOptions,
};
pub use protocol::client::history::{
    HistoryError, HistoryQuery, HistoryReply, QUERY_TOPIC as HISTORY_QUERY_TOPIC,
    Sample as HistorySample, TopicHistory,
};
pub use protocol::client::{DisconnectReason, DropSource, Event, Message, PublishOutcome};
pub use tls::{TlsConfigError, TlsOptions};
pub use transport::TransportError;
pub use url::{BrokerUrl, Scheme, UrlError};

pub use protocol::{
    ProtocolVersion, PublishProperties, PublishProps, QoS, ReasonCode, RetainHandling, TopicFilter,
    TopicName, Will, WillProperties,
};
