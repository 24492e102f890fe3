//! The `mqtt` command line against the in-process broker, interoperating with
//! `mosquitto_pub` / `mosquitto_sub` (Debian mosquitto-clients) in both directions,
//! over MQTT 3.1.1 and 5 with properties; exit codes and error messages.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Forwarder, Outside, Pki, TestBroker, next};
use native_client::{QoS, ReasonCode};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const MQTT: &str = env!("CARGO_BIN_EXE_mqtt");

/// Whether mosquitto's clients are installed. Without them a plain `cargo test` skips
/// these tests with a note; under `cargo xtask test` (which sets
/// `MQTT_WEB_REQUIRE_TOOLS`, having installed them) a missing tool fails the test.
fn mosquitto_available() -> bool {
    let found = std::process::Command::new("mosquitto_sub")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        let message = "mosquitto_sub is not installed (cargo xtask setup installs it)";
        assert!(
            std::env::var_os("MQTT_WEB_REQUIRE_TOOLS").is_none(),
            "{message}"
        );
        eprintln!("skipped: {message}");
    }
    found
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs to completion (failing the test after the patience runs out).
async fn run(program: &str, args: &[&str]) -> Output {
    common::within(
        &format!("{program} {args:?}"),
        command(program, args).output(),
    )
    .await
    .unwrap()
}

/// Runs `publish` every 100 ms until `subscriber` exits (it was started with `-C 1`),
/// so that the test does not depend on when the subscriber's SUBSCRIBE is processed.
async fn publish_until_received(mut subscriber: Child, publish: impl Fn() -> Command) -> Output {
    for _ in 0..100 {
        let status = publish().status().await.unwrap();
        assert!(status.success(), "publisher failed: {status}");
        if subscriber.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::within("the subscriber to exit", subscriber.wait_with_output())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn mqtt_pub_reaches_mosquitto_sub_over_mqtt311_and_mqtt5() {
    if !mosquitto_available() {
        return;
    }
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    for (ours, theirs) in [("311", "mqttv311"), ("mqttv5", "mqttv5")] {
        let topic = format!("cli/to-mosquitto/{theirs}");
        let subscriber = command(
            "mosquitto_sub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                theirs,
                "-t",
                &topic,
                "-q",
                "1",
                "-C",
                "1",
                "-F",
                "%t|%p|%q",
            ],
        )
        .spawn()
        .unwrap();
        let output = publish_until_received(subscriber, || {
            command(
                MQTT,
                &[
                    "pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-V",
                    ours,
                    "-t",
                    &topic,
                    "-m",
                    "hello",
                    "-q",
                    "1",
                ],
            )
        })
        .await;
        assert_eq!(
            text(&output.stdout).trim(),
            format!("{topic}|hello|1"),
            "{}",
            text(&output.stderr)
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn mqtt5_properties_from_mqtt_pub_reach_mosquitto_sub() {
    if !mosquitto_available() {
        return;
    }
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let subscriber = command(
        "mosquitto_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv5",
            "-t",
            "cli/props",
            "-C",
            "1",
            "-F",
            "%p|%C|%R|%D|%E|%P",
        ],
    )
    .spawn()
    .unwrap();
    let output = publish_until_received(subscriber, || {
        command(
            MQTT,
            &[
                "pub",
                "-L",
                &format!("mqtt://127.0.0.1:{port}/cli/props"),
                "-m",
                "{}",
                "--content-type",
                "application/json",
                "--response-topic",
                "cli/reply",
                "--correlation-data",
                "abc",
                "--message-expiry",
                "60",
                "--user-property",
                "site",
                "lab",
            ],
        )
    })
    .await;
    let line = text(&output.stdout);
    let fields: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(
        fields[..4],
        ["{}", "application/json", "cli/reply", "abc"],
        "{line}"
    );
    let expiry: u32 = fields[4].parse().unwrap();
    assert!((1..=60).contains(&expiry), "{line}");
    assert_eq!(fields[5], "site:lab", "{line}");
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_mqtt_sub_as_json_lines_and_topic_lines() {
    if !mosquitto_available() {
        return;
    }
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let subscriber = command(
        MQTT,
        &[
            "sub",
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "-t",
            "cli/json/+",
            "-C",
            "1",
            "--format",
            "json",
            "-q",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    let output = publish_until_received(subscriber, || {
        command(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                "mqttv5",
                "-t",
                "cli/json/a",
                "-m",
                "21.5",
                "-q",
                "1",
                "-D",
                "publish",
                "user-property",
                "unit",
                "C",
                "-D",
                "publish",
                "content-type",
                "text/plain",
                "-D",
                "publish",
                "response-topic",
                "cli/back",
                "-D",
                "publish",
                "correlation-data",
                "x1",
            ],
        )
    })
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["topic"], "cli/json/a");
    assert_eq!(json["payload"], "21.5");
    assert_eq!(json["qos"], 1);
    assert_eq!(json["properties"]["content_type"], "text/plain");
    assert_eq!(json["properties"]["response_topic"], "cli/back");
    assert_eq!(json["properties"]["correlation_data"], "x1");
    assert_eq!(
        json["properties"]["user_properties"],
        serde_json::json!([["unit", "C"]])
    );

    let subscriber = command(
        MQTT,
        &[
            "sub",
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "-V",
            "mqttv311",
            "-t",
            "cli/v/#",
            "-v",
            "-C",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    let output = publish_until_received(subscriber, || {
        command(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                "mqttv311",
                "-t",
                "cli/v/x",
                "-m",
                "on",
            ],
        )
    })
    .await;
    assert_eq!(text(&output.stdout), "cli/v/x on\n");
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_pub_sends_files_stdin_and_stdin_lines() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let client = common::connect(&broker.url(), "reader").await;
    let mut messages = client
        .subscribe("cli/in/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    let file = std::env::temp_dir().join(format!("native-client-payload-{}", std::process::id()));
    std::fs::write(&file, b"from a file").unwrap();
    let output = run(
        MQTT,
        &[
            "pub",
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "-t",
            "cli/in/file",
            "-f",
            file.to_str().unwrap(),
            "-q",
            "1",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(next(&mut messages).await.payload_str(), Some("from a file"));
    let _ = std::fs::remove_file(&file);

    for (flag, input, expected) in [
        ("-s", "all\nof it\n", vec!["all\nof it\n"]),
        ("-l", "one\ntwo\n\nthree\n", vec!["one", "two", "three"]),
    ] {
        let mut child = command(
            MQTT,
            &[
                "pub",
                "-p",
                &port,
                "-h",
                "127.0.0.1",
                "-t",
                "cli/in/stdin",
                flag,
                "-q",
                "1",
            ],
        )
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let output = common::within("mqtt pub", child.wait_with_output())
            .await
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        for payload in expected {
            assert_eq!(
                next(&mut messages).await.payload_str(),
                Some(payload),
                "{flag}"
            );
        }
    }
    client.disconnect(ReasonCode::Success).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_pub_and_sub_speak_tls_with_a_ca_file_and_client_certificate() {
    let broker = TestBroker::start().await;
    let pki = Pki::generate();
    let dir = pki.write_files("cli-tls");
    let tls = Forwarder::start(broker.addr, Outside::Tls(pki.server_config(true))).await;
    let port = tls.addr.port().to_string();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let subscriber = command(
        MQTT,
        &[
            "sub",
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            "cli/tls",
            "-C",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    let output = publish_until_received(subscriber, || {
        command(
            MQTT,
            &[
                "pub",
                "-h",
                "localhost",
                "-p",
                &port,
                "--cafile",
                &ca,
                "--cert",
                &cert,
                "--key",
                &key,
                "-t",
                "cli/tls",
                "-m",
                "sealed",
            ],
        )
    })
    .await;
    assert_eq!(text(&output.stdout), "sealed\n", "{}", text(&output.stderr));

    // Without the client certificate the connection fails, exit code 1.
    let output = run(
        MQTT,
        &[
            "pub",
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-t",
            "cli/tls",
            "-m",
            "x",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).starts_with("mqtt: cannot connect"),
        "{}",
        text(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    tls.stop().await;
    broker.stop().await;
}
