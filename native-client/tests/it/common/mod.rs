//! Test harness: our broker in-process on port 0, client helpers, and a TCP forwarder
//! (optionally TLS or WebSocket on the outside) in front of the broker.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker_server::{Config, RunningBroker};
use native_client::{Client, ConnectOptions, Event, Message, ReconnectOptions, Subscription};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

/// How long a test waits for something that should happen before failing. A failure
/// guard only: no test asserts on timing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A broker configuration for tests: loopback, `addr` (port 0 by default), no `$SYS`.
pub fn test_config(addr: SocketAddr) -> Config {
    let mut config = Config::default();
    config.listeners.tcp = vec![addr];
    config.http.listeners = Vec::new();
    config.sys.interval_secs = 0;
    config.storage = broker_server::config::StorageConfig::memory();
    config
}

/// A broker running in this test's runtime.
pub struct TestBroker {
    running: Option<RunningBroker>,
    pub addr: SocketAddr,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on `addr` (used to restart on the port a stopped broker had). Retries
    /// briefly while the old listener's port is released.
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::start_with(test_config(addr)).await
    }

    /// Starts on `addr` with durable redb storage in `dir` (a restart on the same
    /// `addr` and `dir` recovers the sessions).
    pub async fn start_durable(addr: SocketAddr, dir: &std::path::Path) -> Self {
        let mut config = test_config(addr);
        config.storage = broker_server::config::StorageConfig {
            backend: broker_server::config::Backend::Redb,
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        Self::start_with(config).await
    }

    /// Starts with `config`; [`TestBroker::addr`] is its first TCP listener, or its
    /// first TLS listener if it has no TCP one. Retries briefly while a stopped
    /// broker's port is released.
    pub async fn start_with(config: Config) -> Self {
        let mut last = None;
        for _ in 0..50 {
            match broker_server::start(config.clone()).await {
                Ok(running) => {
                    let addr = *running
                        .tcp_addrs
                        .first()
                        .or(running.tls_addrs.first())
                        .expect("the test broker has an MQTT listener");
                    return Self {
                        running: Some(running),
                        addr,
                    };
                }
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("broker does not start: {last:?}");
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A fresh directory under the system temp directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "native-client-{name}-{}-{n}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        Self(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options for this broker with `client_id` and a fast reconnect.
pub fn options(url: &str, client_id: &str) -> ConnectOptions {
    ConnectOptions::new(url)
        .client_id(client_id)
        .reconnect(ReconnectOptions::backoff(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
}

pub async fn connect(url: &str, client_id: &str) -> Client {
    Client::connect(options(url, client_id))
        .await
        .unwrap_or_else(|err| panic!("{client_id} connects: {err}"))
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The next message of `subscription`.
pub async fn next(subscription: &mut Subscription) -> Message {
    within(
        &format!("a message on {}", subscription.filter()),
        subscription.recv(),
    )
    .await
    .expect("subscription open")
}

/// Waits for the first event that `pick` accepts.
pub async fn wait_event<T>(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("events closed waiting for {what}")
                }
            }
        }
    })
    .await
}

/// How the forwarder's outside speaks.
pub enum Outside {
    Tcp,
    Tls(Arc<rustls::ServerConfig>),
    WebSocket,
    WebSocketTls(Arc<rustls::ServerConfig>),
}

/// Forwards connections accepted on a loopback port to `target` (the broker), with TLS
/// or WebSocket on the outside. Stops with [`Forwarder::stop`] or when dropped.
pub struct Forwarder {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarder {
    pub async fn start(target: SocketAddr, outside: Outside) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let outside = Arc::new(outside);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { break };
                        let outside = outside.clone();
                        let mut stopped = stopped.clone();
                        connections.spawn(async move {
                            tokio::select! {
                                _ = forward(socket, target, &outside) => {}
                                _ = stopped.changed() => {}
                            }
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
            connections.shutdown().await;
        });
        Self {
            addr,
            stop,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn forward(socket: TcpStream, target: SocketAddr, outside: &Outside) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    match outside {
        Outside::Tcp => {
            let mut socket = socket;
            let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
        }
        Outside::Tls(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
        }
        Outside::WebSocket => websocket::forward(socket, upstream).await,
        Outside::WebSocketTls(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            if let Ok(tls) = acceptor.accept(socket).await {
                websocket::forward(tls, upstream).await;
            }
        }
    }
}

mod websocket {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    /// Accepts a WebSocket (answering subprotocol `mqtt` if asked) and relays binary
    /// frames to and from the broker's TCP port.
    pub async fn forward<S: AsyncRead + AsyncWrite + Unpin>(socket: S, upstream: TcpStream) {
        // The error type is tungstenite's; its size is not ours to choose.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, mut response: Response| {
            let asks_mqtt = request
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.split(',').any(|p| p.trim() == "mqtt"));
            if asks_mqtt {
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
            }
            Ok(response)
        };
        let Ok(ws) = tokio_tungstenite::accept_hdr_async(socket, callback).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        let (mut up_read, mut up_write) = upstream.into_split();
        let inbound = async {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Binary(data) = message
                    && up_write.write_all(&data).await.is_err()
                {
                    break;
                }
            }
        };
        let outbound = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match up_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
                        if sink.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        tokio::select! {
            () = inbound => {}
            () = outbound => {}
        }
    }
}

/// A throwaway PKI: a CA, a server certificate for `localhost` and 127.0.0.1, and a
/// client certificate, all PEM.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mqtt-web test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["device-1".into()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "device-1");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// A rustls server configuration with the server certificate; `mtls`: require a
    /// client certificate issued by the CA.
    pub fn server_config(&self, mtls: bool) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// Writes the server side (`ca.pem`, `server.pem`, `server.key`) into `dir`, for a
    /// broker that reads its certificate from files; returns the three paths.
    pub fn write_server_files(&self, dir: &std::path::Path) -> [std::path::PathBuf; 3] {
        [
            ("ca.pem", &self.ca_pem),
            ("server.pem", &self.server_cert_pem),
            ("server.key", &self.server_key_pem),
        ]
        .map(|(name, pem)| {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
            path
        })
    }

    /// Writes the PEM files into a fresh directory (for the command line tests).
    pub fn write_files(&self, name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("native-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, pem) in [
            ("ca.pem", &self.ca_pem),
            ("client.pem", &self.client_cert_pem),
            ("client.key", &self.client_key_pem),
        ] {
            std::fs::write(dir.join(file), pem).unwrap();
        }
        dir
    }
}
