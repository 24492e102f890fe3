//! The broker against paho-mqtt for Python (PyPI `paho-mqtt` 2.x), MQTT 3.1.1 and 5.0.
//!
//! Each scenario is a script under `tests/interop/` run as
//! `python3 -B <script> 127.0.0.1 <port>` against a broker of its own. A script checks
//! what it observes itself (exit status 1 and the reason on stderr when wrong) and prints
//! one `got ...` line per observation, which the test here compares exactly: a scenario
//! passes only if the script says so and it saw what this file expects.

use std::ffi::OsStr;
use std::path::Path;

use e2e_tests::broker::TestBroker;
use e2e_tests::peer::Peer;

/// Runs `tests/interop/<script>` against a fresh broker; returns its `got` lines.
async fn run_scenario(script: &str) -> Vec<String> {
    let broker = TestBroker::start().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(script);
    let (host, port) = (broker.host(), broker.port().to_string());
    // `-B`: no `__pycache__` in the source tree.
    let args = [
        OsStr::new("-B"),
        path.as_os_str(),
        OsStr::new(&host),
        OsStr::new(&port),
    ];
    let finished = Peer::spawn("python3", args).finish().await;
    finished.assert_success();
    finished
        .stdout
        .iter()
        .filter_map(|line| line.strip_prefix("got "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_qos_0_1_2_round_trip() {
    assert_eq!(
        run_scenario("v311_qos.py").await,
        [
            "interop/paho/qos/0 qos=0 payload=zero",
            "interop/paho/qos/1 qos=1 payload=one: ünïcödé",
            "interop/paho/qos/2 qos=2 payload=two: exactly once",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_properties_request_response_and_message_expiry() {
    assert_eq!(
        run_scenario("v5_properties.py").await,
        [
            "user_properties=[('unit', 'celsius'), ('source', 'sensor-1'), ('unit', 'kelvin')]",
            "content_type=text/plain payload_format=1 payload=21.5",
            r"request payload=ping response_topic=interop/paho/response/paho-requester correlation=b'\x00corr-7\xff'",
            r"response topic=interop/paho/response/paho-requester payload=pong: ping correlation=b'\x00corr-7\xff'",
            "after expiry payload=long-lived",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_shared_subscription_splits_messages_without_duplicates() {
    assert_eq!(
        run_scenario("v5_shared_subscription.py").await,
        ["total=10 distinct=10 every_worker_got_some=True"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_topic_alias_from_publisher_reaches_subscriber_as_full_topic() {
    assert_eq!(
        run_scenario("v5_topic_alias.py").await,
        [
            "broker allows topic aliases: True",
            "interop/paho/alias/first sets alias 1",
            "interop/paho/alias/first uses alias 1",
            "interop/paho/alias/first uses alias 1 again",
            "interop/paho/alias/second remaps alias 1",
            "interop/paho/alias/second uses the new alias 1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_messages_queued_while_offline() {
    let mut expected = Vec::new();
    for version in ["v311", "v5"] {
        expected.push(format!("{version} session_present=True"));
        for n in 1..=3 {
            expected.push(format!(
                "{version} interop/paho/persistent/{version} qos=1 payload=queued {n}"
            ));
        }
    }
    assert_eq!(run_scenario("persistent_session.py").await, expected);
}
