//! Logins under a flood and the time a refusal takes: measurements of time and memory,
//! run alone (`cargo xtask test` gives every `alone` module a pass of its own, one test
//! at a time, after the parallel run of the rest), so other tests do not load the
//! machine while they measure.

use std::process::Stdio;

use super::*;

/// The `broker-server` binary with `file` as its password file and an HTTP listener
/// (for `/metrics`), started as a child process so its resident memory can be read.
struct BrokerProcess {
    process: common::KillOnDrop,
    mqtt: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

impl BrokerProcess {
    async fn start(file: &Path, log: &Path, settings: &[&str]) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"));
        command
            .args(["--tcp", "127.0.0.1:0"])
            .args(["--set", "http.listeners=[\"127.0.0.1:0\"]"])
            .args(["--set", "sys.interval_secs=0"])
            .args(["--set", "storage.backend=\"memory\""])
            .arg("--set")
            .arg(format!(
                "auth.password_file={:?}",
                file.display().to_string()
            ));
        for setting in settings {
            command.args(["--set", setting]);
        }
        let child = command
            .args([
                "--log-level",
                "error,broker_server::transport=info,broker_server::http=info",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("broker-server starts");
        let process = common::KillOnDrop(child);
        let (mqtt, http) = common::logged_addresses(log).await;
        Self {
            process,
            mqtt,
            http,
        }
    }

    /// VmRSS of the broker process, from `/proc/<pid>/status`.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .expect("the broker is running");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kb * 1024
    }

    /// The samples of `/metrics` whose line starts with `prefix`, as `(rest, value)`.
    async fn metrics(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut stream = tokio::net::TcpStream::connect(self.http).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: broker\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(rest, n)| (rest.to_string(), n.trim().parse().unwrap()))
            .collect()
    }
}

/// One login over a fresh connection: the CONNACK's code, or `None` if the broker
/// closed the connection or did not answer within [`PATIENCE`].
async fn try_login(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    user: &str,
    password: &str,
) -> Option<ReasonCode> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut client = Peer::from_tcp(stream, version);
    client
        .send(&Packet::Connect(Box::new(login(
            version,
            Some(user),
            Some(password),
        ))))
        .await;
    match client.try_recv(PATIENCE).await {
        Ok(Some(Packet::ConnAck(ack))) => Some(ack.reason_code),
        _ => None,
    }
}

/// Concurrent bad logins (unknown users, and wrong passwords for argon2id, `$7$` and
/// `$6$` users) must not grow the broker's memory: password checks run on a small pool
/// that reuses its argon2 memory, and CONNECTs beyond its queue are refused at once
/// (0x9F, 3.1.1 return code 3) and counted. A good login started during the flood
/// gets in (retrying after a 0x9F, as a client told to back off does) within 2 s.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_login_flood_keeps_memory_flat_and_lets_a_good_login_in() {
    const FLOOD: usize = 500;
    const RSS_GROWTH_BOUND: u64 = 64 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let broker = BrokerProcess::start(
        &file,
        &dir.path().join("broker.log"),
        &[
            "auth.failed_login_delay_ms=300",
            // Fixed, so the bound below holds on any number of cores.
            "auth.password_workers=2",
        ],
    )
    .await;
    let addr = broker.mqtt;
    let before = broker.rss_bytes();

    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (user, password) = match i % 4 {
                0 => ("alice".to_string(), "x"),
                1 => ("mosq".to_string(), "x"),
                2 => ("old".to_string(), "x"),
                _ => (format!("nobody{i}"), "x"),
            };
            let version = if i % 2 == 0 { V5 } else { V311 };
            tokio::spawn(async move { (version, try_login(addr, version, &user, password).await) })
        })
        .collect();
    // The good login, once the flood is under way.
    let good = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs(2);
        let mut busy = 0;
        loop {
            let code = try_login(addr, V5, "alice", "wonderland").await;
            if code == Some(ReasonCode::Success) || std::time::Instant::now() >= deadline {
                return (code, started.elapsed(), busy);
            }
            assert_eq!(code, Some(ReasonCode::ConnectionRateExceeded));
            busy += 1;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let mut peak = before;
    let mut flood = futures::future::join_all(flood);
    let results = loop {
        tokio::select! {
            results = &mut flood => break results,
            () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {
                peak = peak.max(broker.rss_bytes());
                // Fail (and kill the broker) as soon as the bound is passed: without
                // one, the flood takes gigabytes from the machine.
                assert!(
                    peak - before < RSS_GROWTH_BOUND,
                    "RSS grew by {} MiB during {FLOOD} bad logins",
                    (peak - before) >> 20
                );
            }
        }
    };
    peak = peak.max(broker.rss_bytes());
    let (good_code, good_took, good_busy) = good.await.unwrap();

    let (mut refused, mut busy) = (0u64, 0u64);
    for result in results {
        match result.unwrap() {
            (_, Some(ReasonCode::BadUserNameOrPassword)) => refused += 1,
            (V5, Some(ReasonCode::ConnectionRateExceeded)) => busy += 1,
            // 3.1.1 return code 3, Server unavailable.
            (V311, Some(ReasonCode::ServerUnavailable)) => busy += 1,
            other => panic!("a bad login got {other:?}"),
        }
    }
    let growth = peak.saturating_sub(before);
    eprintln!(
        "RSS {} MiB before, {} MiB peak; {refused} refused (0x86), {busy} busy; good login in {good_took:?} after {good_busy} 0x9F",
        before >> 20,
        peak >> 20
    );
    assert_eq!(good_code, Some(ReasonCode::Success), "after {good_took:?}");
    assert!(
        good_took < std::time::Duration::from_secs(2),
        "{good_took:?}"
    );
    assert!(
        growth < RSS_GROWTH_BOUND,
        "RSS grew by {} MiB under {FLOOD} bad logins",
        growth >> 20
    );
    assert!(busy > 0, "the pool's queue never filled");
    let failures = broker.metrics("mqtt_auth_failures_total").await;
    assert_eq!(failures.first().map(|(_, n)| *n), Some(refused));
    let hits = broker
        .metrics("mqtt_limit_hits_total{limit=\"password_queue\"}")
        .await;
    assert_eq!(hits.first().map(|(_, n)| *n), Some(busy + good_busy));
}

/// A wrong password is refused after the same time whether the user is unknown, has
/// an argon2id line, or was imported from mosquitto (`$7$` PBKDF2, `$6$` SHA-512):
/// the refusal is sent at a deadline counted from the CONNECT, not after a delay that
/// starts once the (kind-dependent) hash check is done. Real time, measured as the
/// median of a few tries per kind, interleaved so a busy machine slows them alike; the
/// tolerance is well under the cost of one argon2id check (the gap without the fix).
#[tokio::test]
async fn refusal_time_does_not_tell_whether_or_how_a_user_exists() {
    const TRIES: usize = 7;
    const TOLERANCE: std::time::Duration = std::time::Duration::from_millis(8);
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let mut config = auth_config(&file);
    config.auth.failed_login_delay_ms = 200;
    let broker = TestBroker::with_config(config).await;
    let kinds = ["nobody", "alice", "mosq", "old"];
    let mut times: Vec<Vec<std::time::Duration>> = vec![Vec::new(); kinds.len()];
    for _ in 0..TRIES {
        for (kind, user) in kinds.iter().enumerate() {
            let mut client = broker.raw(V5).await;
            let connect = Packet::Connect(Box::new(login(V5, Some(user), Some("wrong"))));
            let started = std::time::Instant::now();
            client.send(&connect).await;
            let Ok(Some(Packet::ConnAck(ack))) = client.try_recv(PATIENCE).await else {
                panic!("{user}: no CONNACK");
            };
            times[kind].push(started.elapsed());
            assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword, "{user}");
        }
    }
    let medians: Vec<_> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    for (user, t) in kinds.iter().zip(&times) {
        eprintln!(
            "{user}: median {:?}, min {:?}, max {:?}",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    let spread = *medians.iter().max().unwrap() - *medians.iter().min().unwrap();
    assert!(
        spread < TOLERANCE,
        "medians differ by {spread:?}: {:?}",
        kinds.iter().zip(&medians).collect::<Vec<_>>()
    );
    broker.stop().await;
}
