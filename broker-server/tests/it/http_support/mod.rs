//! Helpers for the HTTP, WebSocket and TLS tests: a broker with an HTTP listener on
//! `127.0.0.1:0`, a throwaway PKI written to a temporary directory, a raw WebSocket
//! MQTT client, `oneshot` requests against [`broker_server::internals::http::app`], and external
//! peers (Node + MQTT.js, Python + paho-mqtt) as child processes.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use broker_server::Config;
use broker_server::internals::http::{HttpState, app};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use protocol::{Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tower::ServiceExt;

use crate::common::{PATIENCE, test_config};

/// [`test_config`] plus a plain HTTP listener on `127.0.0.1:0`.
pub fn http_config() -> Config {
    let mut config = test_config();
    config.http.listeners = vec!["127.0.0.1:0".parse().unwrap()];
    config
}

/// Sends `request` to the HTTP app of `broker` without a socket.
pub async fn oneshot(
    broker: &Arc<broker_server::Broker>,
    request: Request<Body>,
) -> Response<Bytes> {
    let (_tx, rx) = watch::channel(false);
    oneshot_with(HttpState::new(broker.clone(), rx), request).await
}

/// Sends `request` to the HTTP app with `state`; the body is collected.
pub async fn oneshot_with(state: HttpState, request: Request<Body>) -> Response<Bytes> {
    let response = app(state).oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Response::from_parts(parts, bytes)
}

/// A GET request.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A raw MQTT client over a WebSocket: packets are encoded with the `protocol` codec
/// and written as binary frames (one packet per frame unless a test sends bytes).
pub struct WsClient<S> {
    pub ws: WebSocketStream<S>,
    pub version: ProtocolVersion,
    buf: BytesMut,
}

/// A WebSocket upgrade request for `url` offering `protocols` (none if empty).
pub fn ws_request(
    url: &str,
    protocols: &[&str],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    request
}

/// Opens `ws://{addr}/mqtt` with subprotocol `mqtt`.
pub async fn ws_connect(
    addr: SocketAddr,
    version: ProtocolVersion,
) -> WsClient<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = ws_request(&format!("ws://{addr}/mqtt"), &["mqtt"]);
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("WebSocket upgrade");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    WsClient::new(ws, version)
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    pub fn new(ws: WebSocketStream<S>, version: ProtocolVersion) -> Self {
        Self {
            ws,
            version,
            buf: BytesMut::new(),
        }
    }

    pub fn encode(&self, packet: &Packet) -> BytesMut {
        let mut out = BytesMut::new();
        protocol::encode(packet, self.version, &mut out).expect("encodes");
        out
    }

    /// Sends `bytes` as one binary frame.
    pub async fn send_frame(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .expect("send frame");
    }

    pub async fn send(&mut self, packet: &Packet) {
        let bytes = self.encode(packet);
        self.send_frame(&bytes).await;
    }

    /// The next MQTT packet (frames are a byte stream); `None` if the connection
    /// closed. Panics after [`PATIENCE`].
    pub async fn recv(&mut self) -> Option<Packet> {
        let limits = protocol::Limits {
            version: self.version,
            ..Default::default()
        };
        loop {
            if let Some(packet) = protocol::decode(&mut self.buf, &limits).expect("valid packet") {
                return Some(packet);
            }
            match self.next_message().await? {
                Message::Binary(data) => self.buf.extend_from_slice(&data),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next WebSocket message, whatever its kind; `None` at the end.
    pub async fn next_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(PATIENCE, self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("nothing from the broker within {PATIENCE:?}"),
        }
    }

    pub async fn connect(&mut self, client_id: &str) -> protocol::ConnAck {
        let connect = protocol::Connect::new(self.version, client_id);
        self.send(&Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Some(Packet::ConnAck(connack)) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}

/// A throwaway PKI: a CA, a server certificate for `localhost` and `127.0.0.1`, a
/// client certificate (CN `device-1`) from the CA and one from an unknown CA, as PEM
/// files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub rogue_cert_pem: String,
    pub rogue_key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert, Issuer::new(params, key))
}

fn client_cert(cn: &str, issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> (String, String) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca_cert, issuer) = ca("mqtt-web test CA");
        let (_, rogue_issuer) = ca("rogue CA");
        let (client_cert_pem, client_key_pem) = client_cert("device-1", &issuer);
        let (rogue_cert_pem, rogue_key_pem) = client_cert("device-1", &rogue_issuer);
        let pki = Self {
            dir,
            ca_pem: ca_cert.pem(),
            client_cert_pem,
            client_key_pem,
            rogue_cert_pem,
            rogue_key_pem,
            issuer,
        };
        std::fs::write(pki.path("ca.pem"), &pki.ca_pem).unwrap();
        pki.issue_server_cert("server-1");
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a new server certificate (Common Name `cn`) and key over `server.pem`
    /// and `server.key`; returns the certificate's DER.
    pub fn issue_server_cert(&self, cn: &str) -> Vec<u8> {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("server.key"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    /// `config` with the server certificate and, if `mtls`, the client CA required.
    pub fn configure(&self, config: &mut Config, mtls: bool) {
        config.tls.cert = Some(self.path("server.pem"));
        config.tls.key = Some(self.path("server.key"));
        if mtls {
            config.tls.client_ca = Some(self.path("ca.pem"));
        }
    }

    /// A client configuration trusting the test CA, presenting `identity` (cert and
    /// key PEM) if given.
    pub fn client_config(&self, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }

    /// A TLS connection to `addr` as `localhost`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
    }
}

/// Where `cargo xtask setup` installs npm tools (MQTT.js): `$MQTT_WEB_TOOLS_DIR`, else
/// `$XDG_CACHE_HOME/mqtt-web/tools`, else `~/.cache/mqtt-web/tools` (as xtask decides).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MQTT_WEB_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(cache).join("mqtt-web/tools");
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/mqtt-web/tools")
}

/// A peer script under `tests/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// What a peer process printed.
#[derive(Debug)]
pub struct PeerOutput {
    pub stdout: String,
    pub stderr: String,
}

impl PeerOutput {
    /// The `got ...` lines, without the prefix.
    pub fn got(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix("got "))
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `program args` to completion (killed after a generous guard); panics with its
/// output unless it exits with status 0.
pub async fn run_peer(program: &str, args: &[&str], envs: &[(&str, &Path)]) -> PeerOutput {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let shown = format!("{program} {}", args.join(" "));
    let child = command.spawn().unwrap_or_else(|err| {
        panic!("cannot start `{shown}`: {err} (`cargo xtask setup` installs it)")
    });
    let output = tokio::time::timeout(PATIENCE * 6, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{shown}` did not finish"))
        .expect("peer output");
    let result = PeerOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "`{shown}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        result.stdout,
        result.stderr
    );
    result
}
