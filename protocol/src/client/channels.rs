//! [`Channels`]: the channel types of one client, the only thing of a runtime the
//! sans-IO [`Connection`](super::Connection) and
//! [`SubscriptionRegistry`](super::SubscriptionRegistry) touch. `native-client` fills
//! them with tokio channels, `web-client` with its single-threaded queues, the tests
//! with plain cells.

use std::fmt;

use super::{ConnectFailure, Error, Message};

/// The channel types of one client: how messages reach a local subscription and how
/// calls are answered. Implemented by a marker type in each client.
pub trait Channels: fmt::Debug + Sized {
    /// The sending end of one local subscription's message buffer.
    type Sender: fmt::Debug;
    /// The answer to one call (`publish`, `subscribe`, `request`, `disconnect`): the
    /// sending end of a oneshot channel.
    type Reply<T: fmt::Debug>: fmt::Debug;
    /// The client's `ConnectError`: what `Client::connect` fails with.
    type ConnectError: From<ConnectFailure> + fmt::Debug;
    /// `Client::connect` waiting for the first CONNACK.
    type Ready: fmt::Debug;

    /// Hands `message` to `sender`. Returns `false` only when it was dropped because
    /// the buffer was full (a reader that is gone is not a loss to report).
    fn deliver(sender: &Self::Sender, message: Message) -> bool;
    /// Answers a call (an answer nobody waits for any more is dropped).
    fn answer<T: fmt::Debug>(reply: Self::Reply<T>, result: Result<T, Error>);
    /// Answers `Client::connect`.
    fn ready(ready: Self::Ready, result: Result<(), Self::ConnectError>);
}
