//! Storage that fails: the broker says what and where, and never acknowledges what it
//! could not store.
//!
//! - A data directory that cannot be created (its path goes through a regular file:
//!   this fails for root too, unlike permissions), a corrupt store file and a store in
//!   use by another broker stop the start with the path and what to do.
//! - A full disk: the real binary runs with its data directory on a 1 MiB tmpfs
//!   (mounted by the test; it needs root). Where mounting is not allowed the test uses
//!   a file size limit (`ulimit -f`, RLIMIT_FSIZE, with SIGXFSZ ignored) instead, which
//!   fails writes past the limit with EFBIG the same way. MQTT 5 publishers get
//!   PUBACK 0x97 Quota exceeded, MQTT 3.1.1 publishers are disconnected, and after a
//!   restart with room again every message that was acknowledged is still there.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker_server::storage::{Backend, StorageConfig};
use bytes::BytesMut;
use common::test_config;
use protocol::{Connect, Disconnect, Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config_in(dir: &Path) -> broker_server::Config {
    let mut config = test_config();
    config.storage = StorageConfig {
        backend: Backend::Redb,
        dir: dir.to_path_buf(),
        ..StorageConfig::default()
    };
    config
}

async fn start_error(dir: &Path) -> String {
    match broker_server::start(config_in(dir)).await {
        Ok(_) => panic!("the broker started on {}", dir.display()),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_created_stops_the_start_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("data");
    let err = start_error(&dir).await;
    assert!(err.contains(&dir.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_corrupt_store_stops_the_start_with_its_path_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broker.redb");
    std::fs::write(&path, vec![0xA5; 64 * 1024]).unwrap();
    let err = start_error(tmp.path()).await;
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains("move it aside"), "{err}");
    let untouched = std::fs::read(&path).unwrap();
    assert!(
        untouched.iter().all(|b| *b == 0xA5),
        "the file was not changed"
    );
}

#[tokio::test]
async fn a_store_in_use_by_another_broker_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = broker_server::start(config_in(tmp.path())).await.unwrap();
    let err = start_error(tmp.path()).await;
    assert!(err.contains("in use"), "{err}");
    first.shutdown().await;
    let again = broker_server::start(config_in(tmp.path())).await.unwrap();
    again.shutdown().await;
}

/// How the test limits the space of the data directory.
enum Limit {
    /// A tmpfs mounted on this directory (unmounted on drop).
    Tmpfs(PathBuf),
    /// RLIMIT_FSIZE for the broker process, in KiB.
    FileSize(u64),
}

impl Limit {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        // MQTT_WEB_TEST_NO_TMPFS=1 tries the fallback where mounting works too.
        let mounted = std::env::var_os("MQTT_WEB_TEST_NO_TMPFS").is_none()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
                .arg(dir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if mounted {
            eprintln!("disk full: a 1 MiB tmpfs on {}", dir.display());
            Self::Tmpfs(dir.to_path_buf())
        } else {
            eprintln!("disk full: tmpfs not mountable here; RLIMIT_FSIZE of 1 MiB instead");
            Self::FileSize(1024)
        }
    }

    /// Room again, for the restart.
    fn lift(&self) {
        if let Self::Tmpfs(dir) = self {
            let ok = Command::new("mount")
                .args(["-o", "remount,size=64M"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "remount");
        }
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        if let Self::Tmpfs(dir) = self {
            let _ = Command::new("umount").arg(dir).status();
        }
    }
}

struct Broker(Child);

impl Broker {
    /// Starts the binary on a port the OS picks; returns it with its address.
    async fn start(data: &Path, limit: Option<&Limit>, log: &Path) -> (Self, SocketAddr) {
        let binary = env!("CARGO_BIN_EXE_broker-server");
        let args = format!(
            "--tcp 127.0.0.1:0 --set http.listeners=[] --set sys.interval_secs=0 \
             --set storage.dir={:?} --log-level warn,broker_server::transport=info",
            data.display().to_string()
        );
        let script = match limit {
            Some(Limit::FileSize(kib)) => {
                format!("trap '' XFSZ; ulimit -f {kib}; exec {binary} {args}")
            }
            _ => format!("exec {binary} {args}"),
        };
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let addr = common::bound_addr(log).await;
        (Self(child), addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The running broker's log, shown when it stops answering.
static LOG: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

struct Client {
    stream: TcpStream,
    version: ProtocolVersion,
    buf: BytesMut,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        id: &str,
        persistent: bool,
    ) -> (Self, bool) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut client = Self {
            stream,
            version,
            buf: BytesMut::new(),
        };
        let mut connect = Connect::new(version, id);
        connect.clean_start = !persistent;
        if persistent && version.is_v5() {
            connect.properties.session_expiry_interval = Some(3600);
        }
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::Success => {
                (client, ack.session_present)
            }
            other => panic!("CONNACK expected, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        protocol::encode(&packet, self.version, &mut out).unwrap();
        let _ = self.stream.write_all(&out).await;
    }

    async fn recv(&mut self) -> Option<Packet> {
        let limits = protocol::Limits {
            version: self.version,
            ..Default::default()
        };
        loop {
            if let Some(packet) = protocol::decode(&mut self.buf, &limits).unwrap() {
                return Some(packet);
            }
            let read =
                tokio::time::timeout(Duration::from_secs(20), self.stream.read_buf(&mut self.buf));
            let Ok(read) = read.await else {
                let log = LOG.lock().unwrap().clone().map(std::fs::read_to_string);
                panic!("the broker did not answer; its log: {log:?}");
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn publish(&mut self, n: u16, payload: &[u8]) -> Option<PubAck> {
        let mut publish = Publish::new(format!("full/{n}"), payload.to_vec());
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = Some(common::pid(n));
        self.send(Packet::Publish(publish)).await;
        match self.recv().await? {
            Packet::PubAck(ack) => Some(ack),
            other => panic!("PUBACK expected, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_acknowledgements_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("mnt");
    let limit = Limit::new(&mount);
    let data = mount.join("data");
    let log = tmp.path().join("full.log");
    *LOG.lock().unwrap() = Some(log.clone());
    let (broker, addr) = Broker::start(&data, Some(&limit), &log).await;

    let (mut sub, _) = Client::connect(addr, ProtocolVersion::V5, "sub", true).await;
    sub.send(common::subscribe(1, &[("full/#", QoS::AtLeastOnce)]))
        .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    sub.send(Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());

    let (mut publisher, _) = Client::connect(addr, ProtocolVersion::V5, "pub5", false).await;
    let payload = vec![b'x'; 16 * 1024];
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 1..=1000u16 {
        let ack = publisher
            .publish(n, &payload)
            .await
            .expect("connection stays open");
        if ack.reason_code.is_error() {
            refused = Some(ack.reason_code);
            break;
        }
        acknowledged.push(n);
    }
    // 0x97 when the error says the disk is full; 0x80 for an I/O error that does not.
    assert!(
        matches!(
            refused,
            Some(ReasonCode::QuotaExceeded | ReasonCode::UnspecifiedError)
        ),
        "{refused:?}"
    );
    eprintln!(
        "refused with {refused:?} after {} messages",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty());

    // MQTT 3.1.1 has no negative PUBACK: the publisher is disconnected instead.
    let (mut old, _) = Client::connect(addr, ProtocolVersion::V3_1_1, "pub3", false).await;
    let mut closed = false;
    for n in 2000..3000u16 {
        match old.publish(n, &payload).await {
            Some(ack) => {
                assert!(!ack.reason_code.is_error());
                acknowledged.push(n);
            }
            None => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "3.1.1: closed without PUBACK");

    // SIGKILL, room again, restart: every acknowledged message is there.
    drop(broker);
    limit.lift();
    let log = tmp.path().join("after.log");
    *LOG.lock().unwrap() = Some(log.clone());
    let (_broker, addr) = Broker::start(&data, None, &log).await;
    let (mut sub, present) = Client::connect(addr, ProtocolVersion::V5, "sub", true).await;
    assert!(present);
    let mut got = Vec::new();
    while got.len() < acknowledged.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await;
        let Ok(next) = next else {
            let missing: Vec<u16> = acknowledged
                .iter()
                .copied()
                .filter(|n| !got.contains(n))
                .collect();
            panic!("acknowledged {acknowledged:?}, got {got:?}, missing {missing:?}");
        };
        match next.expect("open") {
            Packet::Publish(p) => {
                let n: u16 = p.topic.rsplit('/').next().unwrap().parse().unwrap();
                got.push(n);
                sub.send(Packet::PubAck(PubAck::new(p.packet_id.unwrap())))
                    .await;
            }
            other => panic!("PUBLISH expected, got {other:?}"),
        }
    }
    let missing: Vec<_> = acknowledged.iter().filter(|n| !got.contains(n)).collect();
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");
}
