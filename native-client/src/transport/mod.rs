//! Opening the byte stream to the broker: TCP, TLS over TCP, and (feature `websocket`)
//! WebSocket over either. Everything above this module sees one boxed
//! `AsyncRead + AsyncWrite` stream, so the driver is the same for every transport.
//!
//! Public for programs that speak MQTT bytes themselves over the same transports (the
//! `mqtt bench` load tool): [`open`] gives the stream, [`crate::TlsOptions::client_config`]
//! the TLS configuration to share between many connections.

#[cfg(feature = "websocket")]
mod ws;

use std::io;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::url::{BrokerUrl, Scheme};

/// A byte stream to the broker.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An open transport, whatever its kind.
pub type BoxIo = Box<dyn Io>;

/// Why the transport could not be opened. Each variant names the cause the way a person
/// debugging a connection needs it: name resolution, refused port, unreachable network,
/// TLS, WebSocket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name did not resolve.
    #[error("cannot resolve host `{host}`: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// Nothing listens on the port (TCP RST).
    #[error("connection refused by {addr}: is a broker listening there?")]
    Refused {
        /// The address tried last.
        addr: String,
    },
    /// No route to the host or network.
    #[error("host {addr} is unreachable: {source}")]
    Unreachable {
        /// The address tried last.
        addr: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another TCP connect failure.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, no client
    /// certificate, ...).
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The server name verified.
        host: String,
        /// rustls' error.
        source: io::Error,
    },
    /// The host is not a valid TLS server name.
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    /// The WebSocket upgrade failed.
    #[error("WebSocket handshake with {url} failed: {reason}")]
    WebSocket {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A `ws://` or `wss://` URL in a build without the `websocket` feature.
    #[error("ws:// and wss:// need native-client's `websocket` feature")]
    WebSocketDisabled,
}

impl TransportError {
    /// Whether a retry may succeed later (everything but configuration mistakes).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::ServerName(_) | Self::WebSocketDisabled)
    }
}

/// Opens a transport to `url`. `tls` is the configuration for `mqtts` and `wss`, and
/// `server_name` overrides the name its certificate is checked against.
pub async fn open(
    url: &BrokerUrl,
    tls: Option<&Arc<ClientConfig>>,
    server_name: Option<&str>,
) -> Result<BoxIo, TransportError> {
    let tcp = connect_tcp(url).await?;
    let stream: BoxIo = match (url.scheme.is_tls(), tls) {
        (true, Some(config)) => Box::new(handshake_tls(url, config, server_name, tcp).await?),
        _ => Box::new(tcp),
    };
    match url.scheme {
        Scheme::Mqtt | Scheme::Mqtts => Ok(stream),
        Scheme::Ws | Scheme::Wss => websocket(url, stream).await,
    }
}

#[cfg(feature = "websocket")]
async fn websocket(url: &BrokerUrl, stream: BoxIo) -> Result<BoxIo, TransportError> {
    Ok(Box::new(ws::handshake(url, stream).await?))
}

#[cfg(not(feature = "websocket"))]
async fn websocket(_url: &BrokerUrl, _stream: BoxIo) -> Result<BoxIo, TransportError> {
    Err(TransportError::WebSocketDisabled)
}

async fn connect_tcp(url: &BrokerUrl) -> Result<TcpStream, TransportError> {
    let authority = url.authority();
    let addrs = tokio::net::lookup_host(&authority)
        .await
        .map_err(|source| TransportError::Resolve {
            host: url.host.clone(),
            source,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // MQTT packets are small and latency matters more than segment count;
                // the driver already batches what is ready into one write.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = Some((addr.to_string(), err)),
        }
    }
    Err(match last {
        None => TransportError::Resolve {
            host: url.host.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
        Some((addr, source)) => match source.kind() {
            io::ErrorKind::ConnectionRefused => TransportError::Refused { addr },
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                TransportError::Unreachable { addr, source }
            }
            _ => TransportError::Connect { addr, source },
        },
    })
}

async fn handshake_tls(
    url: &BrokerUrl,
    config: &Arc<ClientConfig>,
    server_name: Option<&str>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TransportError> {
    let host = server_name.unwrap_or(&url.host).to_owned();
    let name =
        ServerName::try_from(host.clone()).map_err(|_| TransportError::ServerName(host.clone()))?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|source| TransportError::Tls { host, source })
}
