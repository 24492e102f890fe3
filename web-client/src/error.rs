//! [`ConnectError`]: why the first connection failed, layered over the URL and
//! WebSocket failures of this client and `protocol`'s [`ConnectFailure`]. [`Error`]
//! (an operation on a connected client failed) is `protocol::client`'s, shared with
//! `native-client`.

pub use protocol::client::{ConnectFailure, Error};

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL (or a path on the page's host).
    #[error("invalid broker URL `{url}`: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The WebSocket could not be opened or closed before CONNACK. Browsers do not tell
    /// pages why (refused, DNS, TLS, a proxy): the text holds what is known.
    #[error("the WebSocket failed: {0}")]
    Transport(String),
    /// No CONNACK within the connect timeout, or the broker refused the connection or
    /// closed it before accepting it.
    #[error(transparent)]
    Handshake(#[from] ConnectFailure),
}

impl ConnectError {
    protocol::client_calls!(ConnectError);
}
