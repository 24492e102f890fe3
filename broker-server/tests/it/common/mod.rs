//! Test harness: the broker in-process on port 0 (or the real binary as a child
//! process), with raw clients ([`Peer`]) connected to it, and packet builders.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use broker_server::{Config, RunningBroker};
use protocol::{
    Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter,
};
use tokio::io::DuplexStream;

pub use crate::peer::Peer;

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

    /// A raw client on an in-memory pipe to the broker (nothing sent yet): no socket,
    /// no port (`RunningBroker::connect_in_process`).
    pub async fn in_process(&self, version: ProtocolVersion) -> Peer<DuplexStream> {
        let stream = self.running.as_ref().unwrap().connect_in_process();
        Peer::new(stream, version)
    }

    /// An in-process raw client that completed CONNECT / CONNACK with `client_id`.
    pub async fn in_process_client(
        &self,
        version: ProtocolVersion,
        client_id: &str,
    ) -> Peer<DuplexStream> {
        let mut client = self.in_process(version).await;
        let connack = client.handshake(Connect::new(version, client_id)).await;
        assert_eq!(
            connack.reason_code,
            protocol::ReasonCode::Success,
            "{connack:?}"
        );
        client
    }

    /// A raw client connected at the TCP level (nothing sent yet).
    pub async fn raw(&self, version: ProtocolVersion) -> Peer {
        Peer::open(self.addr, version).await.parking()
    }

    /// A raw client that completed CONNECT / CONNACK with `client_id`.
    pub async fn client(&self, version: ProtocolVersion, client_id: &str) -> Peer {
        let mut client = self.raw(version).await;
        let connack = client.handshake(Connect::new(version, client_id)).await;
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
