//! The durable outbox: the real `broker-server` binary, with a data directory and a
//! bridge `out` rule to a real mosquitto, is killed with SIGKILL while its outbox holds
//! QoS 1 messages the remote has not had yet, and restarted on the same directory:
//! once mosquitto is back, its subscriber gets every message exactly once, in order.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use native_client::{Client, ConnectOptions, ProtocolVersion, QoS, ReasonCode};

use super::{Mosquitto, client, next, nothing_more, wait_state};
use crate::common::{self, KillOnDrop};

/// `broker-server` as a child process with its store in `dir/data` and one bridge
/// `durable` (`queued/# out 1`) to `remote`; killed with SIGKILL when dropped.
struct Local {
    _process: KillOnDrop,
    addr: SocketAddr,
}

impl Local {
    async fn start(dir: &Path, remote: SocketAddr, run: usize) -> Self {
        let log_path = dir.join(format!("broker-{run}.log"));
        let log = std::fs::File::create(&log_path).expect("log");
        let bridge = format!(
            "bridges=[{{name=\"durable\", address=[\"{remote}\"], restart_initial_ms=100, \
             restart_max_ms=300, topics=[\"queued/# out 1\"]}}]"
        );
        let child = Command::new(env!("CARGO_BIN_EXE_broker-server"))
            .arg("--tcp")
            .arg("127.0.0.1:0")
            .arg("--set")
            .arg(format!(
                "storage.dir={:?}",
                dir.join("data").display().to_string()
            ))
            .args(["--set", "http.listeners=[]", "--set", "sys.interval_secs=0"])
            .args(["--set", &bridge])
            .args(["--log-level", "warn,broker_server::transport=info"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("broker-server starts");
        let process = KillOnDrop(child);
        let addr = common::bound_addr(&log_path).await;
        Self {
            _process: process,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// A persistent session on mosquitto subscribed to `queued/#` at QoS 1: mosquitto keeps
/// what arrives for it while it is away, and across its own restart.
async fn reader(remote: &Mosquitto) -> (Client, native_client::Subscription) {
    let options = ConnectOptions::new(remote.url())
        .client_id("reader")
        .clean_start(false)
        .session_expiry(3600);
    let reader = Client::connect(options).await.expect("reader connects");
    let queued = reader
        .subscribe("queued/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    (reader, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_kill_9_and_delivers_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let persistence = format!(
        "allow_anonymous true\npersistence true\npersistence_location {}/\n\
         autosave_interval 0\nmax_queued_messages 100000",
        dir.path().display()
    );
    let mut remote = Mosquitto::start(dir.path(), &persistence);
    let local = Local::start(dir.path(), remote.addr(), 0).await;
    let here = client(&local.url(), "here", ProtocolVersion::V5).await;
    wait_state(&here, "durable", "connected").await;
    let (reader_client, mut queued) = reader(&remote).await;
    // One message crosses while all is up; the remote's PUBACK takes it out of the
    // store, so the restart below must not send it again.
    here.publish("queued/0", "0", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut queued).await.payload, "0".as_bytes());
    reader_client.disconnect(ReasonCode::Success).await.unwrap();

    remote.stop().await;
    wait_state(&here, "durable", "disconnected").await;
    // Each PUBACK means the message is in the stored outbox.
    let count = 300u32;
    for n in 1..=count {
        here.publish(format!("queued/{n}"), n.to_string(), QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    drop(here);
    drop(local); // SIGKILL

    let local = Local::start(dir.path(), remote.addr(), 1).await;
    remote.spawn();
    let (reader_client, mut queued) = reader(&remote).await;
    let mut got = Vec::new();
    while got.len() < count as usize {
        let message = next(&mut queued).await;
        got.push(String::from_utf8(message.payload.to_vec()).unwrap());
    }
    let sent: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
    assert_eq!(got, sent, "every message once, in order");
    nothing_more(&mut queued).await;
    reader_client.disconnect(ReasonCode::Success).await.unwrap();
    drop(local);
}
