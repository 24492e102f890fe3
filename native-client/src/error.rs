//! [`ConnectError`]: why the first connection failed, layered over the URL, TLS and
//! transport errors of this client and `protocol`'s [`ConnectFailure`]. [`Error`] (an
//! operation on a connected client failed) is `protocol::client`'s, shared with
//! `web-client`.

pub use protocol::client::{ConnectFailure, Error};

use crate::tls::TlsConfigError;
use crate::transport::TransportError;
use crate::url::UrlError;

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The TLS options are unusable (unreadable PEM, key not matching the certificate).
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// The transport could not be opened: resolution, refused, unreachable, TLS.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No CONNACK within the connect timeout, or the broker refused the connection or
    /// closed it before accepting it.
    #[error(transparent)]
    Handshake(#[from] ConnectFailure),
}

impl ConnectError {
    protocol::client_calls!(ConnectError);
}
