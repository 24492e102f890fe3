//! Recovery time of a bridge after its remote comes back, for `docs/bridges.md`.
//!
//! ```text
//! bridge_recovery BROKER_SERVER_BIN MOSQUITTO_BIN N [RESTART_MS]
//! ```
//!
//! Starts a mosquitto (persistence on, one loopback listener on a free port) and a
//! `broker-server` (embedded store in a temporary directory) with a bridge
//! `bench/# out 1` to it, backoff fixed at `RESTART_MS` (default 100) without jitter.
//! A persistent-session subscriber on mosquitto subscribes to `bench/#` at QoS 1 and
//! leaves. Then mosquitto is stopped, `N` QoS 1 messages (64 bytes) are published to
//! `broker-server` (each acknowledged: it is in the durable outbox), and mosquitto is
//! started again: the clock starts when its process is spawned. The subscriber
//! connects as soon as mosquitto listens and reads until it has `N` messages.
//!
//! Prints one JSON object: the time to the first and the last message, the drain rate
//! (from first to last), and whether every message arrived once and in order. Plain
//! TCP; the clock is `Instant` in this process only; both brokers are stopped at the
//! end.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use native_client::{Client, ConnectOptions, QoS, ReasonCode};
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A child process killed and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something listens on `addr`.
fn wait_listening(addr: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn spawn_mosquitto(bin: &Path, conf: &Path, log: &Path) -> Result<Process, Error> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Process(child))
}

/// The persistent subscriber's options.
fn reader(url: &str) -> ConnectOptions {
    ConnectOptions::new(url)
        .client_id("recovery-reader")
        .clean_start(false)
        .session_expiry(3600)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, broker_bin, mosquitto_bin, n, rest @ ..] = &args[..] else {
        return Err("usage: bridge_recovery BROKER_SERVER_BIN MOSQUITTO_BIN N [RESTART_MS]".into());
    };
    let n: usize = n.parse()?;
    let restart_ms: u64 = rest.first().map_or(Ok(100), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("bridge-recovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(
        Path::new(broker_bin),
        Path::new(mosquitto_bin),
        n,
        restart_ms,
        &dir,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", result?);
    Ok(())
}

async fn run(
    broker_bin: &Path,
    mosquitto_bin: &Path,
    n: usize,
    restart_ms: u64,
    dir: &Path,
) -> Result<serde_json::Value, Error> {
    let remote_port = free_port()?;
    let remote = SocketAddr::from(([127, 0, 0, 1], remote_port));
    let conf: PathBuf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             autosave_interval 0\nmax_queued_messages {}\nmax_inflight_messages 100\n\
             listener {remote_port} 127.0.0.1\n",
            dir.display(),
            n + 100
        ),
    )?;
    let log = dir.join("mosquitto.log");
    let mut mosquitto = spawn_mosquitto(mosquitto_bin, &conf, &log)?;
    wait_listening(remote)?;

    let local_port = free_port()?;
    let local = SocketAddr::from(([127, 0, 0, 1], local_port));
    let bridge = format!(
        "bridges=[{{name=\"recovery\", address=[\"{remote}\"], restart_initial_ms={restart_ms}, \
         restart_max_ms={restart_ms}, restart_jitter=0.0, outbox_max_messages={}, \
         topics=[\"bench/# out 1\"]}}]",
        n + 100
    );
    let _broker = Process(
        Command::new(broker_bin)
            .args(["--tcp", &local.to_string()])
            .arg("--set")
            .arg(format!(
                "storage.dir={:?}",
                dir.join("data").display().to_string()
            ))
            .args(["--set", "http.listeners=[]", "--set", "log.level=\"warn\""])
            .args(["--set", "limits.max_queued_messages=1000000"])
            .args(["--set", &bridge])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_listening(local)?;

    let remote_url = format!("mqtt://{remote}");
    let first = Client::connect(reader(&remote_url)).await?;
    first.subscribe("bench/#", QoS::AtLeastOnce).await?;
    first.disconnect(ReasonCode::Success).await?;

    let here = Client::connect(ConnectOptions::new(format!("mqtt://{local}"))).await?;
    let mut state = here
        .subscribe("$SYS/broker/bridges/recovery/state", QoS::AtMostOnce)
        .await?;
    while state.recv().await.ok_or("no state")?.payload != "connected".as_bytes() {}

    // The remote goes away; the outbox fills.
    let _ = Command::new("kill")
        .args(["-TERM", &mosquitto.0.id().to_string()])
        .status()?;
    mosquitto.0.wait()?;
    while state.recv().await.ok_or("no state")?.payload != "disconnected".as_bytes() {}
    // One at a time, so the outbox holds them in publication order.
    for i in 0..n {
        let payload = format!("{i:064}");
        here.publish(format!("bench/{}", i % 8), payload, QoS::AtLeastOnce)
            .await?;
    }

    // The remote comes back: the clock starts.
    let started = Instant::now();
    let _mosquitto = spawn_mosquitto(mosquitto_bin, &conf, &log)?;
    wait_listening(remote)?;
    let reader_client = loop {
        match Client::connect(reader(&remote_url)).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    let mut messages = reader_client.subscribe("bench/#", QoS::AtLeastOnce).await?;
    let mut first_at = None;
    let mut in_order = true;
    let mut got = 0usize;
    while got < n {
        let message = tokio::time::timeout(Duration::from_secs(60), messages.recv())
            .await
            .map_err(|_| format!("only {got} of {n} messages arrived"))?
            .ok_or("subscription closed")?;
        first_at.get_or_insert_with(|| started.elapsed());
        let index: usize = message
            .payload_str()
            .unwrap_or("")
            .parse()
            .unwrap_or(usize::MAX);
        in_order &= index == got;
        got += 1;
    }
    let last_at = started.elapsed();
    let first_at = first_at.unwrap_or(last_at);
    let extra = tokio::time::timeout(Duration::from_millis(500), messages.recv())
        .await
        .is_ok();
    reader_client.disconnect(ReasonCode::Success).await?;
    here.disconnect(ReasonCode::Success).await?;
    let drain = (last_at - first_at).as_secs_f64();
    Ok(json!({
        "messages": n,
        "qos": 1,
        "restart_ms": restart_ms,
        "first_ms": first_at.as_secs_f64() * 1000.0,
        "last_ms": last_at.as_secs_f64() * 1000.0,
        "drain_msgs_per_s": if drain > 0.0 { (n as f64 - 1.0) / drain } else { 0.0 },
        "once_in_order": in_order && !extra,
    }))
}
