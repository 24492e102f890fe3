//! Password-file login: users written by `broker-server passwd` (argon2id) and by
//! Debian's `mosquitto_passwd` (PBKDF2-SHA512), every refusal at MQTT 3.1.1 and 5.0
//! (wire return codes and reason codes), anonymous access, the failure counter, real
//! peers (`mosquitto_pub`/`mosquitto_sub`), and reloading users without dropping
//! connections (in-process and by SIGHUP to the binary).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use common::*;
use protocol::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Runs `broker-server passwd FILE ARGS...`, the password on stdin; panics on failure.
async fn passwd(file: &Path, args: &[&str], password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .arg("passwd")
        .arg(file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("broker-server passwd starts");
    let mut stdin = child.stdin.take().unwrap();
    // `delete` reads no password and may have exited already: a closed pipe is fine
    // (the exit status below says whether the command worked).
    if let Err(err) = stdin.write_all(format!("{password}\n").as_bytes()).await {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "passwd {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A password file with `alice`/`wonderland` (argon2id, by `broker-server passwd`),
/// `mosq`/`from-mosquitto` (`$7$`) and `old`/`from-mosquitto-1.6` (`$6$`), both by
/// Debian's `mosquitto_passwd -b`.
async fn password_file(dir: &Path) -> PathBuf {
    let mosquitto = dir.join("mosquitto.passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&mosquitto)
        .args(["mosq", "from-mosquitto"])
        .status()
        .await
        .expect("mosquitto_passwd runs (Debian package mosquitto; `cargo xtask setup`)");
    assert!(status.success());
    // Mosquitto 1.6's format, still written with `-H sha512`.
    let status = Command::new("mosquitto_passwd")
        .args(["-H", "sha512", "-b"])
        .arg(&mosquitto)
        .args(["old", "from-mosquitto-1.6"])
        .status()
        .await
        .expect("mosquitto_passwd runs");
    assert!(status.success());
    let mosquitto_line = std::fs::read_to_string(&mosquitto).unwrap();
    assert!(mosquitto_line.starts_with("mosq:$7$"), "{mosquitto_line}");
    assert!(mosquitto_line.contains("\nold:$6$"), "{mosquitto_line}");
    let file = dir.join("passwd");
    std::fs::write(&file, &mosquitto_line).unwrap();
    passwd(&file, &["add", "alice"], "wonderland").await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("alice:$argon2id$"), "{text}");
    assert!(text.starts_with(&mosquitto_line), "{text}");
    file
}

fn auth_config(file: &Path) -> broker_server::Config {
    let mut config = test_config();
    config.auth.password_file = Some(file.to_path_buf());
    config.auth.failed_login_delay_ms = 0;
    config
}

/// A CONNECT with its own client identifier (no takeovers between logins).
fn login(version: ProtocolVersion, user: Option<&str>, password: Option<&str>) -> Connect {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut connect = Connect::new(version, format!("c{n}").as_str());
    connect.username = user.map(Into::into);
    connect.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    connect
}

async fn connack(broker: &TestBroker, connect: Connect) -> ReasonCode {
    let mut client = broker.raw(connect.protocol).await;
    client.handshake(connect).await.reason_code
}

/// The 3.1.1 CONNACK as bytes on the wire, for a CONNECT with `user`/`password`.
async fn v311_connack_bytes(
    broker: &TestBroker,
    user: Option<&str>,
    password: Option<&str>,
) -> [u8; 4] {
    let mut client = broker.raw(V311).await;
    client
        .send(&Packet::Connect(Box::new(login(V311, user, password))))
        .await;
    let mut bytes = [0u8; 4];
    tokio::time::timeout(PATIENCE, client.stream.read_exact(&mut bytes))
        .await
        .expect("CONNACK in time")
        .expect("CONNACK");
    bytes
}

#[tokio::test]
async fn passwords_from_both_tools_log_in_and_every_refusal_has_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let broker = TestBroker::with_config(auth_config(&file)).await;

    for version in [V311, V5] {
        let ok = [
            ("alice", "wonderland"),
            ("mosq", "from-mosquitto"),
            ("old", "from-mosquitto-1.6"),
        ];
        for (user, password) in ok {
            assert_eq!(
                connack(&broker, login(version, Some(user), Some(password))).await,
                ReasonCode::Success,
                "{version} {user}"
            );
        }
        let bad_password = [
            (Some("alice"), Some("Wonderland")),
            (Some("mosq"), Some("wonderland")),
            (Some("old"), Some("from-mosquitto")),
            (Some("nobody"), Some("wonderland")),
            (Some("alice"), None),
            (Some(""), Some("wonderland")),
        ];
        for (user, password) in bad_password {
            assert_eq!(
                connack(&broker, login(version, user, password)).await,
                ReasonCode::BadUserNameOrPassword,
                "{version} {user:?} {password:?}"
            );
        }
        // Anonymous access is off once a password file is configured.
        assert_eq!(
            connack(&broker, login(version, None, None)).await,
            ReasonCode::NotAuthorized,
            "{version} anonymous"
        );
    }
    // MQTT 5 allows a password without a user name; the password file needs one.
    assert_eq!(
        connack(&broker, login(V5, None, Some("wonderland"))).await,
        ReasonCode::BadUserNameOrPassword
    );
    // 3.1.1 return codes on the wire: 4 bad user name or password, 5 not authorized.
    assert_eq!(
        v311_connack_bytes(&broker, Some("alice"), Some("nope")).await,
        [0x20, 0x02, 0x00, 0x04]
    );
    assert_eq!(
        v311_connack_bytes(&broker, None, None).await,
        [0x20, 0x02, 0x00, 0x05]
    );
    assert_eq!(
        v311_connack_bytes(&broker, Some("mosq"), Some("from-mosquitto")).await,
        [0x20, 0x02, 0x00, 0x00]
    );
    // 2 × 6 bad passwords, 2 anonymous, 1 v5 without user name, 2 on the wire.
    assert_eq!(broker.broker().metrics.auth_failures.get(), 17);
    broker.stop().await;
}

#[tokio::test]
async fn allow_anonymous_lets_clients_without_credentials_in_but_not_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let mut config = auth_config(&file);
    config.auth.allow_anonymous = Some(true);
    let broker = TestBroker::with_config(config).await;
    for version in [V311, V5] {
        assert_eq!(
            connack(&broker, login(version, None, None)).await,
            ReasonCode::Success
        );
        assert_eq!(
            connack(&broker, login(version, Some("alice"), Some("x"))).await,
            ReasonCode::BadUserNameOrPassword
        );
        // A user name alone is a claim without proof.
        assert_eq!(
            connack(&broker, login(version, Some("alice"), None)).await,
            ReasonCode::BadUserNameOrPassword
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_broken_password_file_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    std::fs::write(&file, "# users\nalice:plaintext\n").unwrap();
    let err = broker_server::start(auth_config(&file))
        .await
        .expect_err("refuses to start")
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("unknown credential"), "{err}");
}

/// Runs a mosquitto client; returns whether it exited with success, and its stderr.
async fn mosquitto(program: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(
        PATIENCE,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} did not finish"))
    .unwrap_or_else(|err| panic!("{program}: {err} (Debian mosquitto-clients)"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout),
    )
}

#[tokio::test]
async fn mosquitto_clients_log_in_with_the_password_and_are_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let broker = TestBroker::with_config(auth_config(&file)).await;
    let port = broker.addr.port().to_string();
    let mut sub = broker.raw(V5).await;
    let ack = sub
        .handshake(login(V5, Some("alice"), Some("wonderland")))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    sub.subscribe_many(1, &[("t/#", QoS::AtLeastOnce)]).await;

    for version in ["mqttv311", "mqttv5"] {
        let base = ["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1"];
        let (ok, out) = mosquitto(
            "mosquitto_pub",
            &[
                &base[..],
                &[
                    "-u",
                    "mosq",
                    "-P",
                    "from-mosquitto",
                    "-t",
                    "t/ok",
                    "-m",
                    version,
                ],
            ]
            .concat(),
        )
        .await;
        assert!(ok, "{out}");
        let publish = sub.recv_publish().await;
        assert_eq!(&publish.payload[..], version.as_bytes());

        let (ok, out) = mosquitto(
            "mosquitto_pub",
            &[
                &base[..],
                &["-u", "mosq", "-P", "wrong", "-t", "t/no", "-m", "x"],
            ]
            .concat(),
        )
        .await;
        assert!(!ok, "{out}");
        assert!(
            out.to_lowercase().contains("bad user name or password"),
            "{out}"
        );
        let (ok, out) = mosquitto(
            "mosquitto_sub",
            &[&base[..], &["-t", "t/#", "-C", "1", "-W", "5"]].concat(),
        )
        .await;
        assert!(!ok, "{out}");
        assert!(out.to_lowercase().contains("not authori"), "{out}");
    }
    sub.expect_silence(std::time::Duration::from_millis(200))
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn reloading_the_file_changes_logins_and_keeps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let broker = TestBroker::with_config(auth_config(&file)).await;
    let mut alice = broker.raw(V5).await;
    let ack = alice
        .handshake(login(V5, Some("alice"), Some("wonderland")))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);

    passwd(&file, &["delete", "alice"], "").await;
    passwd(&file, &["add", "bob"], "builder").await;
    // Not yet reloaded: the old users count.
    assert_eq!(
        connack(&broker, login(V5, Some("bob"), Some("builder"))).await,
        ReasonCode::BadUserNameOrPassword
    );
    broker.running.as_ref().unwrap().reload_security().unwrap();
    assert_eq!(
        connack(&broker, login(V5, Some("bob"), Some("builder"))).await,
        ReasonCode::Success
    );
    assert_eq!(
        connack(&broker, login(V5, Some("alice"), Some("wonderland"))).await,
        ReasonCode::BadUserNameOrPassword
    );
    // A broken file keeps the previous users.
    std::fs::write(&file, "bob:garbage\n").unwrap();
    assert!(broker.running.as_ref().unwrap().reload_security().is_err());
    assert_eq!(
        connack(&broker, login(V5, Some("bob"), Some("builder"))).await,
        ReasonCode::Success
    );
    // alice's connection is still up.
    alice.send(&Packet::PingReq).await;
    assert!(matches!(alice.recv().await, Packet::PingResp));
    broker.stop().await;
}

#[tokio::test]
async fn sighup_reloads_users_in_the_running_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path()).await;
    let log_path = dir.path().join("broker.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .args(["--tcp", "127.0.0.1:0", "--set", "http.listeners=[]"])
        .args([
            "--set",
            "sys.interval_secs=0",
            "--set",
            "storage.backend=memory",
        ])
        .args(["--set", "auth.failed_login_delay_ms=0"])
        .arg("--set")
        .arg(format!(
            "auth.password_file={:?}",
            file.display().to_string()
        ))
        .args(["--log-level", "info"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("broker-server starts");
    let process = common::KillOnDrop(child);
    let addr = bound_addr(&log_path).await;
    let try_login = |user: &'static str, password: &'static str| async move {
        let mut client = Peer::open(addr, V5).await.parking();
        client
            .handshake(login(V5, Some(user), Some(password)))
            .await
            .reason_code
    };
    let mut alice = Peer::open(addr, V5).await.parking();
    let ack = alice
        .handshake(login(V5, Some("alice"), Some("wonderland")))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        try_login("bob", "builder").await,
        ReasonCode::BadUserNameOrPassword
    );

    passwd(&file, &["add", "bob"], "builder").await;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Readiness poll: the reload is logged once done.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("users and keys reloaded")
    {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(try_login("bob", "builder").await, ReasonCode::Success);
    alice.send(&Packet::PingReq).await;
    assert!(matches!(alice.recv().await, Packet::PingResp));
    drop(process);
}

/// The refusal waits `failed_login_delay_ms` (on the paused test clock: no real
/// waiting, and no assertion on real time); a good login does not wait.
#[tokio::test(start_paused = true)]
async fn refusals_wait_the_failed_login_delay_and_successes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    std::fs::write(
        &file,
        "alice:$7$101$MLBwQKmznUVlRGf1$9KW98ZtRVx+9e1p2jjWOn9gklt5pMNy4nUrpGaW+8vEOxjc0bnFitgxaXAFen7esij7MNrRwhC96E7YOetcifw==\n",
    )
    .unwrap();
    let mut config = auth_config(&file);
    config.auth.failed_login_delay_ms = 5_000;
    let broker = TestBroker::with_config(config).await;
    let delay = std::time::Duration::from_secs(5);
    for (password, code) in [
        ("secret", ReasonCode::Success),
        ("guess", ReasonCode::BadUserNameOrPassword),
    ] {
        for version in [V311, V5] {
            let mut client = broker.raw(version).await;
            let started = tokio::time::Instant::now();
            client
                .send(&Packet::Connect(Box::new(login(
                    version,
                    Some("alice"),
                    Some(password),
                ))))
                .await;
            // Our own guard, far beyond the delay, so the paused clock reaches the
            // broker's timer first.
            let packet = client
                .try_recv(std::time::Duration::from_secs(3600))
                .await
                .expect("CONNACK in time")
                .expect("CONNACK before the close");
            let Packet::ConnAck(ack) = packet else {
                panic!("expected CONNACK, got {packet:?}");
            };
            assert_eq!(ack.reason_code, code, "{version}");
            let waited = started.elapsed();
            if code == ReasonCode::Success {
                assert!(waited < delay, "{version}: a good login waited {waited:?}");
            } else {
                assert!(waited >= delay, "{version}: refused after {waited:?}");
            }
        }
    }
    assert_eq!(broker.broker().metrics.auth_failures.get(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn allow_anonymous_false_without_users_refuses_everyone() {
    let mut config = test_config();
    config.auth.allow_anonymous = Some(false);
    config.auth.failed_login_delay_ms = 0;
    let broker = TestBroker::with_config(config).await;
    for version in [V311, V5] {
        assert_eq!(
            connack(&broker, login(version, None, None)).await,
            ReasonCode::NotAuthorized
        );
        assert_eq!(
            connack(&broker, login(version, Some("alice"), Some("any"))).await,
            ReasonCode::BadUserNameOrPassword
        );
    }
    broker.stop().await;
}

/// The tests that measure time or memory under a flood: `cargo xtask test` runs them
/// alone, after the rest (see `tests/it/main.rs`).
mod alone;
