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
//! - A damaged store (a flipped byte in a record, a zeroed page, an empty or truncated
//!   file) stops the start before anything is written to it, naming what is damaged,
//!   without a panic; `broker-server store check` reports it and `store repair` keeps
//!   everything intact, which the broker then serves. A store written before records
//!   had checksums still loads.

use crate::common;
use crate::peer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker_server::config::{Backend, StorageConfig};
use broker_server::internals::session::StoredSubscription;
use broker_server::internals::storage::{self, Op, QueueEntry, SessionRecord, StoredRef};
use bytes::BytesMut;
use common::test_config;
use peer::Peer;
use protocol::{
    Connect, Disconnect, Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode,
    SubscriptionOptions, TopicFilter,
};
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

// ---- damaged stores ----

/// Retained messages `r/<n>` with payload [`retained_payload`] and one persistent
/// session `queued` (subscribed to `q/#`) with [`queued_payload`]s waiting, written
/// through the store API the broker uses.
const RETAINED: usize = 20;
const QUEUED: usize = 10;

fn retained_payload(n: usize) -> String {
    format!("retained-payload-{n:04}-of-the-damaged-store-test")
}

fn queued_payload(n: usize) -> String {
    format!("queued-payload-{n:04}-of-the-damaged-store-test")
}

async fn fill(dir: &Path) {
    let config = config_in(dir).storage;
    tokio::task::spawn_blocking(move || {
        let store = storage::open(&config).unwrap();
        let mut next = store.load().unwrap().next_id;
        for n in 0..RETAINED {
            let topic = format!("r/{n}");
            let message =
                storage::codec::plain_message(&topic, retained_payload(n), QoS::AtLeastOnce, true);
            store.submit(Op::Retain(message));
        }
        let session = next;
        next += 1;
        store.submit(Op::PutSession {
            client_id: "queued".into(),
            record: Box::new(SessionRecord {
                id: session,
                expiry_interval: u32::MAX,
                expires_at: None,
                subscriptions: vec![(
                    TopicFilter::new("q/#").unwrap(),
                    StoredSubscription {
                        options: SubscriptionOptions::new(QoS::AtLeastOnce),
                        id: None,
                    },
                )],
                will: None,
                owner: broker_server::internals::session::Owner::Anonymous,
            }),
        });
        for n in 0..QUEUED {
            let at = StoredRef {
                session,
                seq: next,
                message: next + 1,
            };
            next += 2;
            let topic = format!("q/{n}");
            let message =
                storage::codec::plain_message(&topic, queued_payload(n), QoS::AtLeastOnce, false);
            let entry = queued(&at);
            store.submit(Op::Enqueue { at, entry, message });
        }
        store.barrier().blocking_recv().unwrap().unwrap();
        store.close();
    })
    .await
    .unwrap();
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join(storage::embedded::FILE_NAME)
}

/// Offsets of `needle` in the store file (a record's live page, and maybe stale copies
/// in free pages: the tests damage every one).
fn occurrences(data: &[u8], needle: &str) -> Vec<usize> {
    let needle = needle.as_bytes();
    let found: Vec<usize> = (0..data.len().saturating_sub(needle.len()))
        .filter(|&at| data[at..].starts_with(needle))
        .collect();
    assert!(!found.is_empty(), "{needle:?} is in the store");
    found
}

/// Flips one bit in the middle of every stored copy of `needle`.
fn flip(dir: &Path, needle: &str) {
    let path = store_file(dir);
    let mut data = std::fs::read(&path).unwrap();
    for at in occurrences(&data, needle) {
        data[at + needle.len() / 2] ^= 0x04;
    }
    std::fs::write(&path, data).unwrap();
}

/// Zeroes every 4 KiB page holding a copy of `needle`.
fn zero_page(dir: &Path, needle: &str) {
    let path = store_file(dir);
    let mut data = std::fs::read(&path).unwrap();
    for at in occurrences(&data, needle) {
        let page = at / 4096 * 4096;
        data[page..page + 4096].fill(0);
    }
    std::fs::write(&path, data).unwrap();
}

/// Runs the broker binary with `args` (a subcommand, or none: serve), on `dir`.
fn binary(args: &[&str], dir: &Path) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_broker-server"));
    command
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    if args.is_empty() {
        command.args([
            "--tcp",
            "127.0.0.1:0",
            "--set",
            "http.listeners=[]",
            "--set",
            &format!("storage.dir={:?}", dir.display().to_string()),
        ]);
    } else {
        command.arg("--dir").arg(dir);
    }
    // A broker that started (it should not) is stopped by the test's timeout guard.
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the broker did not stop: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A QoS 1 queue entry for the message stored at `at`, not yet sent.
fn queued(at: &StoredRef) -> QueueEntry {
    QueueEntry {
        message: at.message,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Default::default(),
        shared_group: None,
        packet_id: None,
        released: false,
    }
}

fn assert_refused_with_what_to_do(err: &str, dir: &Path) {
    assert!(
        err.contains(&store_file(dir).display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains("Nothing was changed"), "{err}");
    assert!(
        err.contains(&format!("store check --dir {}", dir.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("store repair --dir {}", dir.display())),
        "{err}"
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_retained_payload_refuses_the_start_naming_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path()).await;
    flip(tmp.path(), &retained_payload(7));
    let damaged = std::fs::read(store_file(tmp.path())).unwrap();

    let err = start_error(tmp.path()).await;
    assert_refused_with_what_to_do(&err, tmp.path());
    assert!(
        err.contains("retained \"r/7\": checksum mismatch"),
        "names the record: {err}"
    );
    assert!(
        std::fs::read(store_file(tmp.path())).unwrap() == damaged,
        "the file was not changed"
    );
}

#[tokio::test]
async fn an_empty_store_file_is_refused_not_started_as_a_new_store() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(store_file(tmp.path()), b"").unwrap();
    let err = start_error(tmp.path()).await;
    assert_refused_with_what_to_do(&err, tmp.path());
    assert!(err.contains("empty (0 bytes)"), "{err}");
    assert_eq!(std::fs::metadata(store_file(tmp.path())).unwrap().len(), 0);
}

#[tokio::test]
async fn a_truncated_store_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path()).await;
    let path = store_file(tmp.path());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let err = start_error(tmp.path()).await;
    assert_refused_with_what_to_do(&err, tmp.path());
    assert!(err.contains("truncated"), "{err}");
    assert!(std::fs::read(&path).unwrap() == full[..full.len() / 2]);
}

/// redb panics on some damaged pages; the user gets the error, not a backtrace.
#[tokio::test]
async fn a_zeroed_page_is_a_clean_error_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path()).await;
    zero_page(tmp.path(), &queued_payload(3));
    let damaged = std::fs::read(store_file(tmp.path())).unwrap();
    let output = binary(&[], tmp.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(!stderr.contains("backtrace"), "no backtrace: {stderr}");
    assert_refused_with_what_to_do(&stderr, tmp.path());
    assert!(
        std::fs::read(store_file(tmp.path())).unwrap() == damaged,
        "the file was not changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_reports_damage_and_store_repair_keeps_everything_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    fill(&dir).await;
    let check = binary(&["store", "check"], &dir);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "intact: {report}");
    assert!(report.contains("result: intact"), "{report}");

    flip(&dir, &retained_payload(7));
    flip(&dir, &queued_payload(4));
    let damaged = std::fs::read(store_file(&dir)).unwrap();
    let check = binary(&["store", "check"], &dir);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "damaged: {report}");
    assert!(
        report.contains("DAMAGED: retained \"r/7\": checksum mismatch"),
        "{report}"
    );
    assert!(report.contains("DAMAGED: messages body"), "{report}");
    assert!(
        report.contains(&format!("retained: {} intact", RETAINED - 1)),
        "{report}"
    );
    assert!(
        std::fs::read(store_file(&dir)).unwrap() == damaged,
        "check writes nothing"
    );

    let repair = binary(&["store", "repair"], &dir);
    let report = String::from_utf8_lossy(&repair.stdout);
    assert!(
        repair.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(
        report.contains(&format!("retained: {} kept", RETAINED - 1)),
        "{report}"
    );
    assert!(
        report.contains(&format!("queue: {} kept", QUEUED - 1)),
        "{report}"
    );
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("broker.redb.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged store is kept");
    assert!(std::fs::read(dir.join(&kept[0])).unwrap() == damaged);

    // The broker starts on the repaired store and serves everything intact.
    let broker = common::TestBroker::with_config(config_in(&dir)).await;
    let (mut reader, _) =
        Peer::connected(broker.addr, peer::clean(ProtocolVersion::V5, "reader")).await;
    reader.subscribe(1, "r/#", QoS::AtMostOnce).await;
    let mut retained: Vec<(String, String)> = reader
        .receive_all()
        .await
        .iter()
        .map(|p| (p.topic.to_string(), peer::text(p).to_string()))
        .collect();
    retained.sort();
    let mut expected: Vec<(String, String)> = (0..RETAINED)
        .filter(|n| *n != 7)
        .map(|n| (format!("r/{n}"), retained_payload(n)))
        .collect();
    expected.sort();
    assert_eq!(retained, expected);

    let (mut queued, present) = Peer::connected(
        broker.addr,
        peer::persistent(ProtocolVersion::V5, "queued", 3600),
    )
    .await;
    assert!(present);
    let got: Vec<String> = queued
        .receive_all()
        .await
        .iter()
        .map(|p| peer::text(p).to_string())
        .collect();
    let expected: Vec<String> = (0..QUEUED)
        .filter(|n| *n != 4)
        .map(queued_payload)
        .collect();
    assert_eq!(got, expected);
    broker.stop().await;
}

/// A store written before records had checksums (format 1, version 1 records) loads,
/// and `store check` tells its records apart from damaged ones.
#[tokio::test]
async fn a_store_written_before_checksums_still_loads() {
    use redb::TableDefinition;
    const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
    const RETAINED_TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("retained");
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(store_file(tmp.path())).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert("format", 1).unwrap();
            let mut retained = txn.open_table(RETAINED_TABLE).unwrap();
            let message =
                storage::codec::plain_message("old/1", "from before", QoS::AtLeastOnce, true);
            // Version 1: the version byte, then the body (no checksum).
            let current = storage::codec::encode_message(&message, b"old/1");
            let mut old = vec![1u8];
            old.extend_from_slice(&current[5..]);
            retained.insert("old/1", old.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let check = binary(&["store", "check"], tmp.path());
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains("written before checksums"), "{report}");

    let broker = common::TestBroker::with_config(config_in(tmp.path())).await;
    let (mut reader, _) =
        Peer::connected(broker.addr, peer::clean(ProtocolVersion::V5, "reader")).await;
    reader.subscribe(1, "old/#", QoS::AtMostOnce).await;
    let got = reader.receive_all().await;
    assert_eq!(
        got.iter().map(peer::text).collect::<Vec<_>>(),
        ["from before"]
    );
    broker.stop().await;
}

/// After a crash redb repairs the file as it opens it, which writes to it. A damaged
/// store left by a crash is refused all the same, and the repair's writes never reach
/// the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_left_by_a_crash_is_refused_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    fill(&dir).await;
    let log = tmp.path().join("crash.log");
    let (broker, _) = Broker::start(&dir, None, &log).await;
    drop(broker); // SIGKILL: the file is left "not closed cleanly"
    flip(&dir, &retained_payload(7));
    let damaged = std::fs::read(store_file(&dir)).unwrap();

    let err = start_error(&dir).await;
    assert_refused_with_what_to_do(&err, &dir);
    assert!(
        std::fs::read(store_file(&dir)).unwrap() == damaged,
        "the file was not changed"
    );
    let check = binary(&["store", "check"], &dir);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(report.contains("not closed cleanly"), "{report}");
    assert!(
        std::fs::read(store_file(&dir)).unwrap() == damaged,
        "check writes nothing"
    );
}

/// A queue entry whose session is gone (a stop between the commit that replaced a
/// session and the one that dropped its old incarnation) is not damage: `store check`
/// counts it as orphaned and passes, and the broker starts and removes it (with a
/// WARN giving the counts).
#[tokio::test]
async fn an_orphaned_queue_entry_is_reported_and_removed_not_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path()).await;
    let config = config_in(tmp.path()).storage;
    tokio::task::spawn_blocking(move || {
        let store = storage::open(&config).unwrap();
        let next = store.load().unwrap().next_id;
        let at = StoredRef {
            session: next + 100, // no session record has this incarnation
            seq: next,
            message: next + 1,
        };
        let entry = queued(&at);
        let message = storage::codec::plain_message("q/x", "orphan", QoS::AtLeastOnce, false);
        store.submit(Op::Enqueue { at, entry, message });
        store.barrier().blocking_recv().unwrap().unwrap();
        store.close();
    })
    .await
    .unwrap();

    let check = binary(&["store", "check"], tmp.path());
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(
        report.contains(
            "orphaned (removed at start, not damage): 1 queue entries, 0 inbound ids, 1 bodies"
        ),
        "{report}"
    );

    let broker = common::TestBroker::with_config(config_in(tmp.path())).await;
    broker.stop().await;
    let check = binary(&["store", "check"], tmp.path());
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(!report.contains("orphaned"), "removed at start: {report}");
    assert!(
        report.contains(&format!("queue: {QUEUED} intact")),
        "{report}"
    );
}
