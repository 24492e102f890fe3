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
    /// The sending end of a oneshot channel: how a call (`publish`, `subscribe`,
    /// `request`, `disconnect`) is answered ([`Reply`]), and `Client::connect`
    /// ([`Ready`]).
    type Oneshot<T: fmt::Debug>: fmt::Debug;
    /// The client's `ConnectError`: what `Client::connect` fails with.
    type ConnectError: From<ConnectFailure> + fmt::Debug;

    /// Hands `message` to `sender`. Returns `false` only when it was dropped because
    /// the buffer was full (a reader that is gone is not a loss to report).
    fn deliver(sender: &Self::Sender, message: Message) -> bool;
    /// Sends `value` (a value nobody waits for any more is dropped).
    fn send_once<T: fmt::Debug>(oneshot: Self::Oneshot<T>, value: T);

    /// Answers a call.
    fn answer<T: fmt::Debug>(reply: Reply<Self, T>, result: Result<T, Error>) {
        Self::send_once(reply, result);
    }

    /// Answers `Client::connect`.
    fn ready(ready: Ready<Self>, result: Result<(), Self::ConnectError>) {
        Self::send_once(ready, result);
    }
}

/// How one call of a client with channels `C` is answered.
pub type Reply<C, T> = <C as Channels>::Oneshot<Result<T, Error>>;

/// How `Client::connect` of a client with channels `C` learns the first connection's
/// outcome.
pub type Ready<C> = <C as Channels>::Oneshot<Result<(), <C as Channels>::ConnectError>>;
