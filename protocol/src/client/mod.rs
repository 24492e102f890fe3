//! What the two MQTT clients (`native-client` on tokio, `web-client` in the browser)
//! share above [`ClientSession`](crate::ClientSession): the application-facing types
//! and the adapter state that does not depend on a runtime.
//!
//! Like the rest of this crate it is sans-IO: no tasks, no sockets, no clock reads.
//! Time and randomness are arguments ([`ReconnectOptions::delay`]), and the channel
//! types a client delivers into are its own ([`SubscriptionChannels`]). Each client
//! re-exports these types under its own name, so `native_client::Message` and
//! `web_client::Message` are the same type.
//!
//! # Layout
//!
//! - [`message`]: [`Message`], an application message received.
//! - [`event`]: [`Event`], [`DisconnectReason`], [`DropSource`]: what happens to a
//!   client's connection.
//! - [`options`]: [`ReconnectOptions`] (exponential backoff with jitter),
//!   [`OfflineQueueOptions`] and [`DropPolicy`], [`PublishOptions`].
//! - [`subscription`]: [`SubscriptionRegistry`], local subscriptions over shared
//!   filters, Subscription Identifiers and routing of incoming messages.
//! - [`small_map`]: [`SmallMap`], the insertion-ordered table the registry (and the
//!   browser client's other small tables) use.

pub mod event;
pub mod message;
pub mod options;
pub mod small_map;
pub mod subscription;

pub use event::{DisconnectReason, DropSource, Event};
pub use message::Message;
pub use options::{DropPolicy, OfflineQueueOptions, PublishOptions, ReconnectOptions};
pub use small_map::SmallMap;
pub use subscription::{SubscriptionChannels, SubscriptionRegistry, UnknownIdRouting};
