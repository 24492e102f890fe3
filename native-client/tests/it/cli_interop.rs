//! The `mqtt` command line against the in-process broker, interoperating with
//! `mosquitto_pub` / `mosquitto_sub` (Debian mosquitto-clients) in both directions,
//! over MQTT 3.1.1 and 5 with properties; exit codes and error messages; and the
//! figures of `mqtt bench` (its JSON reports must add up).

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::{self, Forwarder, Outside, Pki, TestBroker, next};
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

// `mqtt bench`: the load tool's figures against the in-process broker. Tiny counts, so
// the broker's default queue limits drop nothing and every figure must add up.

/// Runs `mqtt bench ARGS --json` and parses its report.
async fn bench(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--timeout", "20"]);
    let output = run(MQTT, &all).await;
    assert!(output.status.success(), "{all:?}: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{all:?}: not JSON ({err}): {}", text(&output.stdout)))
}

/// Asserts that every message sent was acknowledged and delivered once to each of
/// `subscribers`, and that each delivery was timed.
fn assert_all_delivered(report: &serde_json::Value, sent: u64, subscribers: u64) {
    let traffic = &report["traffic"];
    assert_eq!(traffic["sent"], sent, "{report}");
    assert_eq!(traffic["acked"], sent, "{report}");
    assert_eq!(traffic["expected"], sent * subscribers, "{report}");
    assert_eq!(traffic["received"], sent * subscribers, "{report}");
    assert_eq!(traffic["lost"], 0, "{report}");
    assert_eq!(traffic["duplicates"], 0, "{report}");
    assert_eq!(
        traffic["latency_us"]["count"],
        sent * subscribers,
        "{report}"
    );
    assert!(traffic["pub_rate"].as_f64().unwrap() > 0.0, "{report}");
}

#[tokio::test]
async fn mqtt_bench_fanin_and_fanout_deliver_every_message_at_qos_1_and_2() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    for version in ["5", "311"] {
        let report = bench(&[
            "fanin", "-p", &port, "-V", version, "-c", "4", "-m", "150", "-q", "1",
        ])
        .await;
        assert_eq!(report["publishers"], 4);
        assert_eq!(report["subscribers"], 1);
        assert_all_delivered(&report, 600, 1);
        assert_eq!(
            report["traffic"]["ack_latency_us"]["count"], 600,
            "{report}"
        );
    }
    let report = bench(&["fanout", "-p", &port, "-c", "3", "-m", "100", "-q", "2"]).await;
    assert_all_delivered(&report, 100, 3);
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_bench_sub_url_puts_the_subscribers_on_another_broker() {
    let publishers_broker = TestBroker::start().await;
    let other = TestBroker::start().await;
    let port = publishers_broker.addr.port().to_string();
    let same = format!("127.0.0.1:{port}");
    // Subscribers named on the publishers' broker: everything arrives.
    let report = bench(&[
        "fanout",
        "-p",
        &port,
        "--sub-url",
        &same,
        "-c",
        "2",
        "-m",
        "50",
        "-q",
        "1",
    ])
    .await;
    assert_all_delivered(&report, 50, 2);
    // One of two subscribers on an unrelated broker: it gets nothing, so half is lost.
    let elsewhere = format!("{same},mqtt://127.0.0.1:{}", other.addr.port());
    let report = bench(&[
        "fanout",
        "-p",
        &port,
        "--sub-url",
        &elsewhere,
        "-c",
        "2",
        "-m",
        "50",
        "-q",
        "1",
        "--drain",
        "0.5",
    ])
    .await;
    assert_eq!(report["traffic"]["received"], 50, "{report}");
    assert_eq!(report["traffic"]["lost"], 50, "{report}");
    publishers_broker.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn mqtt_bench_fanin_speaks_tls_and_websocket() {
    let broker = TestBroker::start().await;
    let pki = Pki::generate();
    let dir = pki.write_files("bench-tls");
    let ca = dir.join("ca.pem").to_str().unwrap().to_owned();
    let tls = Forwarder::start(broker.addr, Outside::Tls(pki.server_config(false))).await;
    let ws = Forwarder::start(broker.addr, Outside::WebSocket).await;
    let tls_url = format!("mqtts://localhost:{}", tls.addr.port());
    let ws_url = format!("ws://127.0.0.1:{}/mqtt", ws.addr.port());
    for url in [&tls_url, &ws_url] {
        let report = bench(&[
            "fanin", "-L", url, "--cafile", &ca, "-c", "2", "-m", "100", "-q", "1",
        ])
        .await;
        assert_all_delivered(&report, 200, 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
    tls.stop().await;
    ws.stop().await;
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_bench_pub_and_sub_in_two_processes_count_the_same_messages() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let mut subscriber = command(
        MQTT,
        &[
            "bench",
            "sub",
            "-p",
            &port,
            "-t",
            "load/#",
            "-c",
            "2",
            "-m",
            "300",
            "-q",
            "1",
            "--json",
            "--timeout",
            "20",
        ],
    )
    .spawn()
    .unwrap();
    // The subscriber says on stderr when its subscriptions are in place.
    let mut stderr = tokio::io::BufReader::new(subscriber.stderr.take().unwrap());
    let mut line = String::new();
    common::within("the bench subscribers", async {
        use tokio::io::AsyncBufReadExt;
        stderr.read_line(&mut line).await.unwrap();
    })
    .await;
    assert!(line.contains("2 subscribers ready"), "{line}");

    let published = bench(&[
        "pub", "-p", &port, "-t", "load", "-c", "3", "-m", "100", "-q", "1",
    ])
    .await;
    assert_eq!(published["traffic"]["sent"], 300, "{published}");
    assert_eq!(published["traffic"]["acked"], 300, "{published}");
    assert_eq!(published["traffic"]["ack_latency_us"]["count"], 300);

    let output = common::within("the bench subscribers", subscriber.wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let received: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(received["subscribers"], 2);
    assert_eq!(received["traffic"]["received"], 600, "{received}");
    assert_eq!(received["traffic"]["duplicates"], 0, "{received}");
    assert_eq!(received["traffic"]["latency_us"]["count"], 600);
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_bench_conn_opens_holds_and_times_every_connection() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let report = bench(&[
        "conn",
        "-p",
        &port,
        "-c",
        "40",
        "--rate",
        "0",
        "--concurrency",
        "10",
        "--hold",
        "0.2",
    ])
    .await;
    let connections = &report["connections"];
    assert_eq!(connections["requested"], 40, "{report}");
    assert_eq!(connections["connected"], 40, "{report}");
    assert_eq!(connections["refused"], 0, "{report}");
    assert_eq!(connections["errors"], 0, "{report}");
    assert_eq!(connections["held"], 40, "{report}");
    assert_eq!(connections["connack_latency_us"]["count"], 40, "{report}");
    assert!(connections["time_to_all_ms"].as_f64().unwrap() > 0.0);
    broker.stop().await;
}

/// `storm --persistent`: the sessions are established, every connection dropped without
/// DISCONNECT, and each client that storms back finds its session (MQTT 5 and 3.1.1);
/// a clean storm finds none.
#[tokio::test]
async fn mqtt_bench_storm_resumes_every_persistent_session() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    for version in ["5", "311"] {
        let report = bench(&[
            "storm",
            "-p",
            &port,
            "-V",
            version,
            "-c",
            "30",
            "--persistent",
            "--pause",
            "0.2",
            "--hold",
            "0.1",
        ])
        .await;
        let connections = &report["connections"];
        let storm = &report["storm"];
        assert_eq!(connections["connected"], 30, "{report}");
        assert_eq!(connections["held"], 30, "{report}");
        assert_eq!(connections["connack_latency_us"]["count"], 30, "{report}");
        assert_eq!(storm["setup_connected"], 30, "{report}");
        assert_eq!(storm["session_present"], 30, "{report}");
        assert_eq!(storm["connect_to_connack_us"]["count"], 30, "{report}");
        for reason in [
            "tcp_refused",
            "tcp_reset",
            "connack_refused",
            "timeout",
            "other",
        ] {
            assert_eq!(storm["failures"][reason], 0, "{reason}: {report}");
        }
    }
    let report = bench(&["storm", "-p", &port, "-c", "30", "--hold", "0.1"]).await;
    assert_eq!(report["connections"]["connected"], 30, "{report}");
    assert_eq!(report["storm"]["session_present"], 0, "{report}");
    broker.stop().await;
}

#[tokio::test]
async fn mqtt_bench_latency_times_only_what_follows_the_warmup_and_waits_for_the_last() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    // A rate high enough that messages are still on their way when sending stops: the
    // subscriber must wait for them rather than stop with the publisher.
    let report = bench(&[
        "latency",
        "-p",
        &port,
        "-r",
        "5000",
        "--warmup",
        "0.1",
        "--duration",
        "0.3",
        "-q",
        "1",
    ])
    .await;
    let traffic = &report["traffic"];
    let sent = traffic["sent"].as_u64().unwrap();
    // 5000 msgs/s for 0.4 s: about 2000, fewer if this machine stalls the publisher.
    assert!((200..=2001).contains(&sent), "{report}");
    assert_eq!(traffic["acked"], sent, "{report}");
    assert_eq!(traffic["received"], sent, "{report}");
    assert_eq!(traffic["lost"], 0, "{report}");
    let timed = traffic["latency_us"]["count"].as_u64().unwrap();
    assert!(timed > 0 && timed < sent, "{report}");
    broker.stop().await;
}
