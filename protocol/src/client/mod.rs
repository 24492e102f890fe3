//! What the two MQTT clients (`native-client` on tokio, `web-client` in the browser)
//! share above [`ClientSession`](crate::ClientSession): the application-facing types
//! and the adapter state that does not depend on a runtime.
//!
//! Like the rest of this crate it is sans-IO: no tasks, no sockets, no clock reads.
//! Time and randomness are arguments (`now` on every call of [`Connection`], a seed
//! for the reconnect jitter), and the channel types a client delivers into are its own
//! ([`Channels`]). The calls of a client handle ([`Handle`]) are `async`, but await
//! only what the client's [`Port`] gives them (its oneshot channels, its clock). Each
//! client re-exports these types under its own name, so `native_client::Message` and
//! `web_client::Message` are the same type.
//!
//! # Layout
//!
//! - [`connection`]: [`Connection`], the client's state machine: session events,
//!   commands, the offline queue, publications in flight, request correlation,
//!   reconnect backoff. Its module docs give the driving contract the adapters follow.
//! - [`command`]: [`Command`], what a client's handles ask of the connection, with
//!   [`Outgoing`] and [`PublishOutcome`].
//! - [`handle`]: [`Handle`], what the calls of a client handle do (`publish`,
//!   `subscribe`, `request`, `disconnect`) over a [`Port`] (how a client reaches its
//!   connection and waits), and [`LocalSubscription`].
//! - [`calls`]: [`client_calls!`](crate::client_calls), the public calls of both
//!   clients' `Client` over a `Handle`, written once (signatures and docs included)
//!   and expanded in each client.
//! - [`channels`]: [`Channels`], the channel types a client fills in.
//! - [`error`]: [`Error`] (an operation failed) and [`ConnectFailure`] (the first
//!   connection failed above the transport).
//! - [`message`]: [`Message`], an application message received.
//! - [`event`]: [`Event`], [`DisconnectReason`], [`DropSource`]: what happens to a
//!   client's connection.
//! - [`options`]: [`ConnectOptions`], [`ReconnectOptions`] (exponential backoff with
//!   jitter), [`OfflineQueueOptions`] and [`DropPolicy`], [`PublishOptions`],
//!   [`SubscribeOptions`].
//! - [`subscription`]: [`SubscriptionRegistry`], local subscriptions over shared
//!   filters, Subscription Identifiers and routing of incoming messages.
//! - [`history`] (feature `history`): the broker history request and reply
//!   (`$history/query`, docs/history.md), encoded and decoded.
//! - [`small_map`]: [`SmallMap`], the insertion-ordered table the registry (and the
//!   browser client's other small tables) use.

pub mod calls;
pub mod channels;
pub mod command;
pub mod connection;
pub mod error;
pub mod event;
pub mod handle;
#[cfg(feature = "history")]
pub mod history;
pub mod message;
pub mod options;
pub mod small_map;
pub mod subscription;
mod text;

pub use channels::Channels;
pub use command::{Command, Outgoing, PublishOutcome, correlation_data};
pub use connection::{Connection, LinkAction};
pub use error::{ConnectFailure, Error};
pub use event::{DisconnectReason, DropSource, Event};
pub use handle::{Handle, LocalSubscription, Port};
pub use message::Message;
pub use options::{
    ConnectOptions, DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions,
    SubscribeOptions,
};
pub use small_map::SmallMap;
pub use subscription::{SubscriptionRegistry, UnknownIdRouting};
pub use text::reason_hex;
