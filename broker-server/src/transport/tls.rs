//! TLS (rustls, ring provider): MQTT over TLS listeners, and the server configurations
//! that the HTTPS/WSS listener (`crate::http`) shares.
//!
//! ```text
//!  tls.cert, tls.key, tls.client_ca (PEM files)
//!        │ load() at start, reload() on SIGHUP
//!        ▼
//!  TlsStore ── RwLock<Arc<Configs>> ──► acceptor() for each new connection
//!                                        (connections already open keep theirs)
//! ```
//!
//! A reload builds complete new `rustls::ServerConfig`s (certificate, key and client CA
//! verifier) and swaps them in; a handshake in progress keeps the configuration it
//! started with. Rebuilding the whole configuration rather than only resolving the
//! certificate per handshake (`ResolvesServerCert`) means a rotated client CA is picked
//! up too. A reload that fails (a missing file, a key that does not match) keeps the
//! configuration in force and returns the error.
//!
//! With `tls.client_ca`, client certificates are verified against it (mutual TLS); with
//! `tls.cert_cn_as_username` the verified certificate's Common Name becomes the MQTT
//! user name ([`ConnectionMeta::cert_username`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use futures::FutureExt;
use parking_lot::RwLock;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::clients::{ConnectionMeta, Transport};
use crate::config::TlsConfig;
use crate::connection;
use crate::limits::Limit;

/// TLS configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A TLS listener is configured but `tls.cert` or `tls.key` is not.
    #[error("a TLS listener needs both tls.cert and tls.key (PEM files)")]
    MissingCertificate,
    /// A file could not be read.
    #[error("{key} = {path}: {source}")]
    Read {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM expected.
    #[error("{key} = {path}: {message}")]
    Pem {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA verifier could not be built.
    #[error("tls.client_ca: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

/// The server configurations in force: one for MQTT (no ALPN, as MQTT clients rarely
/// send it) and one for HTTP (ALPN `http/1.1`).
#[derive(Debug)]
struct Configs {
    mqtt: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

/// Which listener a handshake is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsUse {
    /// MQTT over TLS.
    Mqtt,
    /// HTTPS and WSS.
    Http,
}

/// The TLS configuration of every TLS listener, reloadable.
#[derive(Debug)]
pub struct TlsStore {
    source: TlsConfig,
    current: RwLock<Arc<Configs>>,
}

impl TlsStore {
    /// Loads the files named by `config`.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let configs = build(config)?;
        Ok(Self {
            source: config.clone(),
            current: RwLock::new(Arc::new(configs)),
        })
    }

    /// Reads the files again and, if they make a valid configuration, uses it for every
    /// new connection. Open connections are not touched. On error the configuration in
    /// force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = build(&self.source)?;
        *self.current.write() = Arc::new(configs);
        info!("TLS certificate reloaded");
        Ok(())
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self, purpose: TlsUse) -> TlsAcceptor {
        let current = self.current.read().clone();
        TlsAcceptor::from(match purpose {
            TlsUse::Mqtt => current.mqtt.clone(),
            TlsUse::Http => current.http.clone(),
        })
    }

    /// Seconds a handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.source.handshake_timeout_secs.max(1))
    }

    /// Runs the server side of a handshake on `tcp`, with the timeout. Returns the
    /// stream and, with `tls.cert_cn_as_username`, the client certificate's Common
    /// Name.
    pub async fn handshake(
        &self,
        purpose: TlsUse,
        tcp: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<ByteString>)> {
        let accept = self.acceptor(purpose).accept(tcp);
        let stream = tokio::time::timeout(self.handshake_timeout(), accept)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
        let username = if self.source.cert_cn_as_username {
            stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| common_name(leaf))
                .map(ByteString::from)
        } else {
            None
        };
        Ok((stream, username))
    }
}

/// The Common Name of a DER certificate's subject, if it has one in UTF-8.
pub(crate) fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let name = cert.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}

fn build(config: &TlsConfig) -> Result<Configs, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&config.cert, &config.key) else {
        return Err(TlsError::MissingCertificate);
    };
    let certs = read_certs("tls.cert", cert_path)?;
    let key = read_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("tls.client_ca", ca_path)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.require_client_cert {
                verifier.build()?
            } else {
                verifier.allow_unauthenticated().build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mqtt = builder.with_single_cert(certs, key)?;
    let mut http = mqtt.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Configs {
        mqtt: Arc::new(mqtt),
        http: Arc::new(http),
    })
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.into(),
        source,
    })
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let pem_error = |message: String| TlsError::Pem {
        key,
        path: path.into(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(err.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE section".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("tls.key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| TlsError::Pem {
        key: "tls.key",
        path: path.into(),
        message: err.to_string(),
    })
}

/// Logs a failed handshake; one that timed out counts as a limit reached
/// ([`Limit::TlsHandshakeTimeout`]).
pub(crate) fn handshake_failed(broker: &Broker, peer: SocketAddr, err: &std::io::Error) {
    if err.kind() == std::io::ErrorKind::TimedOut {
        broker
            .metrics
            .limit_hits
            .hit(Limit::TlsHandshakeTimeout, peer, "");
    } else {
        debug!(%peer, %err, "TLS handshake failed");
    }
}

/// Accepts MQTT over TLS connections on `listener` until `shutdown` turns `true`.
pub(crate) async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    tls: Arc<TlsStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, "MQTT over TLS listening");
    let label: Arc<str> = local.map_or_else(String::new, |a| a.to_string()).into();
    let stats = broker.clients.add_listener(label.clone(), Transport::Tls);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                broker.metrics.connections_total.inc();
                stats.accepted.inc();
                // Over the per-IP limit: closed before the handshake.
                let Ok(admitted) = broker.admission.admit(peer, &broker.metrics.limit_hits) else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                crate::transport::bound_unsent(&tcp);
                // The handshake runs in the connection's task, so a slow client never
                // holds up the accept loop.
                let serve = serve_tls(
                    broker.clone(),
                    tls.clone(),
                    tcp,
                    peer,
                    label.clone(),
                    admitted.refusal,
                );
                tokio::spawn(serve.map(move |()| drop(admitted)));
            }
            Err(err) => {
                warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_tls(
    broker: Arc<Broker>,
    tls: Arc<TlsStore>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    refused_by: Option<Limit>,
) {
    let (stream, cert_username) = match tls.handshake(TlsUse::Mqtt, tcp).await {
        Ok(done) => done,
        Err(err) => {
            handshake_failed(&broker, peer, &err);
            return;
        }
    };
    let meta = ConnectionMeta {
        peer,
        listener,
        transport: Transport::Tls,
        cert_username,
        bearer_token: None,
        refused_by,
    };
    connection::serve_with(broker, stream, meta).await;
}
