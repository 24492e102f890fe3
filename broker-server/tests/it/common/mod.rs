//! Test harness: the broker in-process on port 0, and a raw MQTT client that speaks
//! packets (through the `protocol` codec) or bytes over a real TCP socket.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use broker_server::{Config, RunningBroker};
use bytes::BytesMut;
use protocol::{
    ConnAck, Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen before failing. A failure
/// guard only: no test asserts on timing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A broker configuration for tests: loopback, port 0, no HTTP listener, no `$SYS`
/// chatter, nothing stored. With `MQTT_WEB_TEST_STORAGE=redb` (the `test-redb` step of
/// `cargo xtask test`) every test runs on the embedded store instead, in a fresh
/// directory under the system's temporary directory (left there).
pub fn test_config() -> Config {
    let mut config = memory_config();
    if stores_on_disk() {
        config.storage.backend = broker_server::config::Backend::Redb;
        config.storage.dir = tempfile::tempdir().expect("temp dir").keep();
    }
    config
}

/// [`test_config`] on the in-memory store whatever `MQTT_WEB_TEST_STORAGE` says: for
/// tests under tokio's paused clock that resume a session. The redb store reads on a
/// thread of its own, which the paused clock does not wait for: it jumps ahead to the
/// next timer (the test's receive timeout) while the read is still running.
pub fn memory_config() -> Config {
    let mut config = Config::default();
    config.listeners.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.listeners = Vec::new();
    config.sys.interval_secs = 0;
    config.storage = broker_server::config::StorageConfig::memory();
    config
}

/// Whether this run puts [`test_config`]'s brokers on the embedded store.
pub fn stores_on_disk() -> bool {
    std::env::var("MQTT_WEB_TEST_STORAGE").is_ok_and(|v| v == "redb")
}

/// A broker running in this test's runtime.
pub struct TestBroker {
    pub running: Option<RunningBroker>,
    pub addr: SocketAddr,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: Config) -> Self {
        let running = broker_server::start(config).await.expect("broker starts");
        let addr = running.tcp_addrs[0];
        Self {
            running: Some(running),
            addr,
        }
    }

    pub fn broker(&self) -> &broker_server::Broker {
        &self.running.as_ref().unwrap().broker
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// A raw client connected at the TCP level (nothing sent yet).
    pub async fn raw(&self, version: ProtocolVersion) -> RawClient {
        RawClient::open(self.addr, version).await
    }

    /// A raw client that completed CONNECT / CONNACK with `client_id`.
    pub async fn client(&self, version: ProtocolVersion, client_id: &str) -> RawClient {
        let mut client = self.raw(version).await;
        let connack = client.connect(Connect::new(version, client_id)).await;
        assert_eq!(
            connack.reason_code,
            protocol::ReasonCode::Success,
            "{connack:?}"
        );
        client
    }
}

pub fn pid(n: u16) -> PacketId {
    NonZeroU16::new(n).unwrap()
}

pub fn filter(f: &str) -> TopicFilter {
    TopicFilter::new(f.to_string()).unwrap()
}

pub fn subscribe(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(packet_id),
        subscriptions: filters
            .iter()
            .map(|(f, qos)| Subscription {
                filter: filter(f),
                options: SubscriptionOptions::new(*qos),
            })
            .collect(),
        properties: Default::default(),
    })
}

pub fn publish(topic: &str, payload: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    let mut p = Publish::new(topic.to_string(), payload.to_string());
    p.qos = qos;
    p.packet_id = packet_id.map(pid);
    p
}

/// A client that sends and receives whole packets (or raw bytes).
pub struct RawClient {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    buf: BytesMut,
}

impl RawClient {
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.expect("TCP connect");
        Self::from_stream(stream, version)
    }

    /// A client on a socket connected already (e.g. from a chosen source address).
    pub fn from_stream(stream: TcpStream, version: ProtocolVersion) -> Self {
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            version,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        protocol::encode(packet, self.version, &mut out).expect("encodes");
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet; panics if none arrives within [`PATIENCE`] or the connection
    /// closes.
    pub async fn recv(&mut self) -> Packet {
        match self.try_recv(PATIENCE).await {
            Ok(Some(packet)) => packet,
            Ok(None) => panic!("connection closed while waiting for a packet"),
            Err(()) => panic!("no packet within {PATIENCE:?}"),
        }
    }

    /// The next packet, `Ok(None)` if the broker closed the connection, `Err` if
    /// nothing came within `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let limits = protocol::Limits {
            version: self.version,
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(packet) =
                protocol::decode(&mut self.buf, &limits).expect("broker sends valid packets")
            {
                return Ok(Some(packet));
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await;
            match read {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing arrives within `wait` (used with paused time, or short
    /// real waits for "nothing more is sent").
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(packet) = self.try_recv(wait).await {
            panic!("expected nothing, got {packet:?}");
        }
    }

    /// Reads until the broker closes the connection; returns what arrived before.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        loop {
            match self.try_recv(PATIENCE).await {
                Ok(Some(packet)) => seen.push(packet),
                Ok(None) => return seen,
                Err(()) => panic!("connection still open after {PATIENCE:?}; got {seen:?}"),
            }
        }
    }

    pub async fn connect(&mut self, connect: Connect) -> ConnAck {
        self.send(&Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(&str, QoS)],
    ) -> Vec<protocol::ReasonCode> {
        self.send(&subscribe(packet_id, filters)).await;
        match self.recv().await {
            Packet::SubAck(ack) => {
                assert_eq!(ack.packet_id, pid(packet_id));
                ack.reason_codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn publish(&mut self, publish: Publish) {
        self.send(&Packet::Publish(publish)).await;
    }

    /// The next PUBLISH, acknowledging nothing.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// The MQTT over TCP address a `broker-server` process started with `--tcp
/// 127.0.0.1:0` (and at least `broker_server::transport=info` logging) bound, read
/// from its log file. Port 0 keeps parallel tests from taking each other's ports.
pub async fn bound_addr(log: &std::path::Path) -> SocketAddr {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find("listening") {
            let line = &text[at..];
            if let Some(start) = line.find("127.0.0.1:") {
                let port: String = line[start + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(port) = port.parse::<u16>() {
                    return SocketAddr::from(([127, 0, 0, 1], port));
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not start listening: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The MQTT over TCP and HTTP addresses a `broker-server` binary logged to `log` (it
/// needs `broker_server::transport=info,broker_server::http=info` logging).
pub async fn logged_addresses(log: &std::path::Path) -> (SocketAddr, SocketAddr) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let find = |marker: &str| {
            let line = text.lines().find(|l| l.contains(marker))?;
            let at = line.find("127.0.0.1:")?;
            let port: String = line[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)))
        };
        if let (Some(mqtt), Some(http)) = (find("MQTT over TCP listening"), find("HTTP listening"))
        {
            return (mqtt, http);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not start: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A child process (the `broker-server` binary, usually) that is killed with SIGKILL
/// and reaped when dropped, also when a check fails, so no process outlives its test.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
