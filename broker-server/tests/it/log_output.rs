//! What the broker writes to its log when stderr is not a terminal (a file, journald, a
//! pipe): plain text, no ANSI colour codes.

use std::process::Stdio;

use crate::common;

#[tokio::test]
async fn a_log_file_gets_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .args(["--tcp", "127.0.0.1:0"])
        .args(["--set", "http.listeners=[]", "--set", "sys.interval_secs=0"])
        .args(["--set", "storage.backend=memory", "--log-level", "info"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("broker-server starts");
    let _process = common::KillOnDrop(child);
    common::bound_addr(&log).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log has its level names: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "the log holds escape sequences: {text:?}"
    );
}
