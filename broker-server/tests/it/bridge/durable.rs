//! What waits for the remote or is in flight to it is neither lost nor duplicated:
//!
//! - the durable outbox: the real `broker-server` binary, with a data directory and a
//!   bridge `out` rule to a real mosquitto, is killed with SIGKILL while its outbox
//!   holds QoS 1 messages the remote has not had yet, and restarted on the same
//!   directory: once mosquitto is back, its subscriber gets every message exactly
//!   once, in order;
//! - QoS 2 across a reconnect: with a persistent remote session (`clean_start =
//!   false`) the bridge resumes it, so messages in flight when mosquitto went away
//!   are completed, not sent again as new ones.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use native_client::{Client, ConnectOptions, ProtocolVersion, QoS, ReasonCode};

use super::{Mosquitto, client, next, nothing_more, url_of, wait_state, with_bridge};
use crate::common::{self, KillOnDrop, TestBroker, test_config};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_in_flight_across_a_reconnect_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let persistence = format!(
        "allow_anonymous true\npersistence true\npersistence_location {}/\n\
         autosave_interval 0\nmax_queued_messages 100000\nmax_inflight_messages 100",
        dir.path().display()
    );
    let mut remote = Mosquitto::start(dir.path(), &persistence);
    let mut config = test_config();
    with_bridge(
        &mut config,
        "resume",
        remote.addr(),
        "clean_start = false\nsession_expiry_secs = 3600\nrestart_max_ms = 300",
        &["exact/# out 2"],
    );
    let local = TestBroker::with_config(config).await;
    let here = client(&url_of(&local), "here", ProtocolVersion::V5).await;
    wait_state(&here, "resume", "connected").await;
    let options = ConnectOptions::new(remote.url())
        .client_id("reader")
        .clean_start(false)
        .session_expiry(3600)
        .reconnect(native_client::ReconnectOptions::backoff(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_millis(200),
        ));
    let reader = Client::connect(options).await.expect("reader connects");
    let mut exact = reader.subscribe("exact/#", QoS::ExactlyOnce).await.unwrap();

    // A stream of QoS 2 messages; mosquitto stops three times in the middle of it,
    // while the bridge has a window of them in flight, and comes back. (Without the
    // resumed session a message whose PUBCOMP was lost went out again as a new one;
    // a stop catches one in that state often, not every time.)
    let count = 600u32;
    let publisher = here.clone();
    let publishing = tokio::spawn(async move {
        for n in 1..=count {
            publisher
                .publish(format!("exact/{n}"), n.to_string(), QoS::ExactlyOnce)
                .await
                .unwrap();
        }
    });
    let mut got = Vec::new();
    for outage_at in [100, 250, 400] {
        while got.len() < outage_at {
            let message = next(&mut exact).await;
            got.push(String::from_utf8(message.payload.to_vec()).unwrap());
        }
        remote.stop().await;
        remote.spawn();
    }
    while got.len() < count as usize {
        let message = next(&mut exact).await;
        got.push(String::from_utf8(message.payload.to_vec()).unwrap());
    }
    publishing.await.unwrap();
    let sent: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
    assert_eq!(got, sent, "every message once, in order");
    nothing_more(&mut exact).await;
    reader.disconnect(ReasonCode::Success).await.unwrap();
    here.disconnect(ReasonCode::Success).await.unwrap();
    local.stop().await;
}
