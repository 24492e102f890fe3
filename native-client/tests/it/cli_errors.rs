//! The `mqtt` command line's failures: each names its cause and exits with the
//! documented code (1: usage or connection, 2: timeout).

use std::process::{Output, Stdio};

use crate::common::{self, TestBroker};
use native_client::ReasonCode;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const MQTT: &str = env!("CARGO_BIN_EXE_mqtt");

async fn run(program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    common::within(&format!("{program} {args:?}"), command.output())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn mqtt_sub_times_out_with_exit_code_2() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    let output = run(
        MQTT,
        &[
            "sub",
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "-t",
            "cli/silence",
            "-C",
            "3",
            "-W",
            "1",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("timed out after 1s with 0 of 3 messages"),
        "{}",
        text(&output.stderr)
    );
    broker.stop().await;
}

/// A server that refuses every CONNECT with `code` (MQTT 5) / its 3.1.1 return code.
async fn refusing_server(
    code: ReasonCode,
    version: protocol::ProtocolVersion,
) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let mut out = bytes::BytesMut::new();
            protocol::encode(
                &protocol::Packet::ConnAck(protocol::ConnAck::new(code)),
                version,
                &mut out,
            )
            .unwrap();
            let _ = socket.write_all(&out).await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn connection_errors_name_their_cause_with_exit_code_1() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let output = run(
        MQTT,
        &["pub", "-h", "127.0.0.1", "-p", &port, "-t", "t", "-m", "x"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("connection refused"),
        "{}",
        text(&output.stderr)
    );

    for (version, flag, code, words) in [
        (
            protocol::ProtocolVersion::V5,
            "5",
            ReasonCode::NotAuthorized,
            "Not authorized (0x87)",
        ),
        (
            protocol::ProtocolVersion::V3_1_1,
            "311",
            ReasonCode::BadUserNameOrPassword,
            "Bad User Name or Password (0x86)",
        ),
    ] {
        let (port, server) = refusing_server(code, version).await;
        let port = port.to_string();
        let output = run(
            MQTT,
            &[
                "sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                flag,
                "-t",
                "t",
                "-u",
                "u",
                "-P",
                "p",
            ],
        )
        .await;
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains(words),
            "{}",
            text(&output.stderr)
        );
        server.abort();
    }

    let output = run(MQTT, &["pub", "-t", "a/+", "-m", "x"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("topic `a/+`"),
        "{}",
        text(&output.stderr)
    );
    let output = run(MQTT, &["pub", "-t", "t"]).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "a payload option is required"
    );
}
