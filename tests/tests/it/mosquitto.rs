//! The broker against the mosquitto command-line clients (Debian `mosquitto-clients`),
//! for each protocol version they speak: MQTT 3.1 (`-V mqttv31`), 3.1.1 and 5.0.
//!
//! Every scenario starts its own broker on port 0. Subscribers run as
//! `stdbuf -oL mosquitto_sub -d ...`: `-d` prints `Subscribed (mid: 1): <qos>` once the
//! SUBACK arrives, and line buffering lets the test see it while the client runs, so a
//! test publishes only once the subscription is in place. `-C n` makes the subscriber
//! exit after n messages; `-W` is a failure guard (it then exits with "Timed out" and the
//! assertion shows what did arrive).

use std::path::PathBuf;

use e2e_tests::broker::TestBroker;
use e2e_tests::peer::{Finished, Peer};

/// `mosquitto_sub -W`: seconds before a subscriber gives up (a failure guard, shorter
/// than [`e2e_tests::PATIENCE`] so the subscriber reports what it got).
const SUB_GUARD_SECS: &str = "20";

/// Starts `mosquitto_sub` with `args` against `broker` and waits for its SUBACK.
async fn subscriber(broker: &TestBroker, version: &str, args: &[&str]) -> Peer {
    let mut peer = spawn_subscriber(broker, version, args);
    let granted = peer
        .wait_for_line("the SUBACK", |line| line.starts_with("Subscribed (mid:"))
        .await;
    // A refused subscription shows as 128 (0x80) in the granted list.
    assert!(!granted.contains("128"), "subscription refused: {granted}");
    peer
}

/// Starts `mosquitto_sub` with `args` against `broker`.
fn spawn_subscriber(broker: &TestBroker, version: &str, args: &[&str]) -> Peer {
    let (host, port) = (broker.host(), broker.port().to_string());
    let mut command = vec![
        "-oL",
        "mosquitto_sub",
        "-d",
        "-h",
        &host,
        "-p",
        &port,
        "-V",
        version,
        "-W",
        SUB_GUARD_SECS,
    ];
    command.extend_from_slice(args);
    Peer::spawn("stdbuf", command)
}

/// Runs `mosquitto_pub` with `args` against `broker` to completion; it must succeed.
async fn publish(broker: &TestBroker, version: &str, args: &[&str]) {
    publish_input(broker, version, args, None).await;
}

/// [`publish`] with `input` on mosquitto_pub's stdin (for `-l` and `-s`).
async fn publish_input(broker: &TestBroker, version: &str, args: &[&str], input: Option<Vec<u8>>) {
    let (host, port) = (broker.host(), broker.port().to_string());
    let mut command = vec!["-h", &host, "-p", &port, "-V", version];
    command.extend_from_slice(args);
    Peer::spawn_with_input("mosquitto_pub", command, input)
        .finish()
        .await
        .assert_success();
}

/// What a subscriber printed for its messages: its stdout without the `-d` lines.
fn messages(finished: &Finished) -> Vec<String> {
    finished
        .stdout
        .iter()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed (mid:"))
        .cloned()
        .collect()
}

/// Waits for a subscriber started with `-C n` to exit, and returns its messages.
async fn received(subscriber: Peer) -> Vec<String> {
    let finished = subscriber.finish().await;
    finished.assert_success();
    messages(&finished)
}

/// One test per protocol version for each scenario `fn scenario(version: &str)`.
macro_rules! for_each_version {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mqttv31() {
                super::$scenario("mqttv31").await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mqttv311() {
                super::$scenario("mqttv311").await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mqttv5() {
                super::$scenario("mqttv5").await;
            }
        }
    )*};
}

for_each_version!(
    qos_0_1_2_payloads_arrive_intact,
    retained_message_reaches_later_subscriber_until_deleted,
    will_is_published_when_its_holder_is_killed,
    will_is_not_published_after_a_clean_disconnect,
    persistent_session_receives_messages_queued_while_offline,
    large_payload_arrives_intact,
    burst_of_qos_2_messages_arrives_complete_and_in_order,
);

async fn qos_0_1_2_payloads_arrive_intact(version: &str) {
    let broker = TestBroker::start().await;
    let sub = subscriber(
        &broker,
        version,
        &[
            "-t",
            "interop/qos/#",
            "-q",
            "2",
            "-C",
            "3",
            "-F",
            "%t|%q|%p",
        ],
    )
    .await;
    let sent = [
        ("0", "zero: plain ascii"),
        ("1", "one: ünïcödé ✓ and | pipes"),
        ("2", r#"two: {"json": [1, 2.5, null]}"#),
    ];
    for (qos, payload) in sent {
        let topic = format!("interop/qos/{qos}");
        publish(&broker, version, &["-t", &topic, "-q", qos, "-m", payload]).await;
    }
    let mut got = received(sub).await;
    got.sort();
    // The subscription is QoS 2, so each message keeps the QoS it was published with.
    let expected: Vec<String> = sent
        .iter()
        .map(|(qos, payload)| format!("interop/qos/{qos}|{qos}|{payload}"))
        .collect();
    assert_eq!(got, expected);
}

async fn retained_message_reaches_later_subscriber_until_deleted(version: &str) {
    let broker = TestBroker::start().await;
    // QoS 1: the PUBACK tells mosquitto_pub (and so this test) the broker has it.
    publish(
        &broker,
        version,
        &[
            "-t",
            "interop/retained",
            "-q",
            "1",
            "-r",
            "-m",
            "last known value",
        ],
    )
    .await;
    let later = subscriber(
        &broker,
        version,
        &["-t", "interop/retained", "-C", "1", "-F", "%t|%r|%p"],
    )
    .await;
    assert_eq!(
        received(later).await,
        ["interop/retained|1|last known value"]
    );

    // An empty retained message deletes it.
    publish(
        &broker,
        version,
        &["-t", "interop/retained", "-q", "1", "-r", "-n"],
    )
    .await;
    let after = subscriber(
        &broker,
        version,
        &["-t", "interop/retained", "-C", "1", "-F", "%t|%r|%p"],
    )
    .await;
    // A retained message would arrive on subscribing, before this live one.
    publish(
        &broker,
        version,
        &["-t", "interop/retained", "-q", "1", "-m", "live"],
    )
    .await;
    assert_eq!(received(after).await, ["interop/retained|0|live"]);
}

/// `mosquitto_sub` arguments that give it a will.
const WILL: &[&str] = &[
    "--will-topic",
    "interop/will/holder",
    "--will-payload",
    "holder vanished",
    "--will-qos",
    "1",
    "--will-retain",
];

async fn will_is_published_when_its_holder_is_killed(version: &str) {
    let broker = TestBroker::start().await;
    let watcher = subscriber(
        &broker,
        version,
        &[
            "-t",
            "interop/will/#",
            "-q",
            "1",
            "-C",
            "1",
            "-F",
            "%t|%q|%p",
        ],
    )
    .await;
    let mut holder_args = vec!["-i", "will-holder", "-t", "interop/holder"];
    holder_args.extend_from_slice(WILL);
    let holder = subscriber(&broker, version, &holder_args).await;
    // SIGKILL: no DISCONNECT, the socket just closes.
    holder.kill().await;
    assert_eq!(
        received(watcher).await,
        ["interop/will/holder|1|holder vanished"]
    );
    // `--will-retain`: a later subscriber gets it as a retained message.
    let later = subscriber(
        &broker,
        version,
        &["-t", "interop/will/holder", "-C", "1", "-F", "%t|%r|%p"],
    )
    .await;
    assert_eq!(
        received(later).await,
        ["interop/will/holder|1|holder vanished"]
    );
}

async fn will_is_not_published_after_a_clean_disconnect(version: &str) {
    let broker = TestBroker::start().await;
    let watcher = subscriber(
        &broker,
        version,
        &["-t", "interop/will/#", "-q", "1", "-C", "1", "-F", "%t|%p"],
    )
    .await;
    // `-E`: exit (with DISCONNECT) once the subscription is acknowledged.
    let mut holder_args = vec!["-i", "will-holder", "-t", "interop/holder", "-E"];
    holder_args.extend_from_slice(WILL);
    let holder = subscriber(&broker, version, &holder_args).await;
    holder.finish().await.assert_success();
    broker.wait_client_gone("will-holder").await;
    // Had the will been published, the watcher would have got it before this.
    publish(
        &broker,
        version,
        &[
            "-t",
            "interop/will/sentinel",
            "-q",
            "1",
            "-m",
            "no will before me",
        ],
    )
    .await;
    assert_eq!(
        received(watcher).await,
        ["interop/will/sentinel|no will before me"]
    );
}

async fn persistent_session_receives_messages_queued_while_offline(version: &str) {
    let broker = TestBroker::start().await;
    // `-c`: no clean session (v5: session expiry "never"); `-E`: DISCONNECT once
    // subscribed.
    let session = ["-c", "-i", "mosquitto-persistent", "-q", "1"];
    let mut first = session.to_vec();
    first.extend_from_slice(&["-t", "interop/persistent", "-E"]);
    subscriber(&broker, version, &first)
        .await
        .finish()
        .await
        .assert_success();
    broker.wait_client_gone("mosquitto-persistent").await;
    for payload in ["queued 1", "queued 2"] {
        publish(
            &broker,
            version,
            &["-t", "interop/persistent", "-q", "1", "-m", payload],
        )
        .await;
    }
    // mosquitto_sub always subscribes, but the queued messages come with the session,
    // right after CONNACK: `-C 2` may end it before the SUBACK, so no waiting for that.
    let mut resumed = session.to_vec();
    resumed.extend_from_slice(&["-t", "interop/persistent", "-C", "2", "-F", "%t|%q|%p"]);
    let sub = spawn_subscriber(&broker, version, &resumed);
    assert_eq!(
        received(sub).await,
        [
            "interop/persistent|1|queued 1",
            "interop/persistent|1|queued 2"
        ]
    );
}

/// A file under the target directory's scratch space, removed on drop.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("writing a scratch file");
        Self(path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn large_payload_arrives_intact(version: &str) {
    const LEN: usize = 256 * 1024;
    // Every byte value, in an order that repeats only every 64 KiB or so: a dropped,
    // duplicated or reordered chunk changes what arrives.
    let mut state = 0x2545_f491_u32;
    let payload: Vec<u8> = (0..LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let file = ScratchFile::new(&format!("large-payload-{version}.bin"), &payload);
    let broker = TestBroker::start().await;
    // `%l|%x`: the length, then the payload in hex (binary would not survive lines).
    let sub = subscriber(
        &broker,
        version,
        &["-t", "interop/large", "-q", "1", "-C", "1", "-F", "%l|%x"],
    )
    .await;
    let path = file.0.to_str().expect("a UTF-8 scratch path");
    publish(
        &broker,
        version,
        &["-t", "interop/large", "-q", "1", "-f", path],
    )
    .await;
    let got = received(sub).await;
    assert_eq!(
        got.len(),
        1,
        "one message expected, got {} lines",
        got.len()
    );
    let (len, hex) = got[0].split_once('|').expect("`%l|%x` output");
    assert_eq!(len, LEN.to_string(), "payload length");
    let expected: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    if hex != expected {
        let at = hex
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(hex.len().min(expected.len()));
        panic!("payload differs from byte {} on", at / 2);
    }
}

async fn burst_of_qos_2_messages_arrives_complete_and_in_order(version: &str) {
    // Far more than the inflight window (`limits.max_inflight`, 32) in both directions.
    const COUNT: usize = 1000;
    let broker = TestBroker::start().await;
    let count = COUNT.to_string();
    let sub = subscriber(
        &broker,
        version,
        &["-t", "interop/burst", "-q", "2", "-C", &count],
    )
    .await;
    let lines: Vec<String> = (1..=COUNT).map(|n| format!("message {n}")).collect();
    // `-l`: one message per stdin line, all over one connection.
    let input = format!("{}\n", lines.join("\n")).into_bytes();
    publish_input(
        &broker,
        version,
        &["-t", "interop/burst", "-q", "2", "-l"],
        Some(input),
    )
    .await;
    // One publisher, one topic: the order is kept [MQTT-4.6.0-5].
    assert_eq!(received(sub).await, lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttv5_will_properties_arrive_with_the_will() {
    let broker = TestBroker::start().await;
    let watcher = subscriber(
        &broker,
        "mqttv5",
        &["-t", "interop/will/#", "-C", "1", "-F", "%t|%P|%C|%p"],
    )
    .await;
    let holder = subscriber(
        &broker,
        "mqttv5",
        &[
            "-i",
            "will-holder",
            "-t",
            "interop/holder",
            "--will-topic",
            "interop/will/holder",
            "--will-payload",
            "holder vanished",
            "-D",
            "will",
            "user-property",
            "reason",
            "killed",
            "-D",
            "will",
            "content-type",
            "text/plain",
        ],
    )
    .await;
    holder.kill().await;
    assert_eq!(
        received(watcher).await,
        ["interop/will/holder|reason:killed|text/plain|holder vanished"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttv5_properties_arrive_at_subscriber() {
    let broker = TestBroker::start().await;
    // %P user properties (key:value, space separated), %C content type, %R response
    // topic, %D correlation data, %F payload format indicator, %E message expiry.
    let sub = subscriber(
        &broker,
        "mqttv5",
        &[
            "-t",
            "interop/props",
            "-C",
            "1",
            "-F",
            "%t|%P|%C|%R|%D|%F|%E|%p",
        ],
    )
    .await;
    publish(
        &broker,
        "mqttv5",
        &[
            "-t",
            "interop/props",
            "-q",
            "1",
            "-m",
            "reading: 21.5",
            // Repeated keys are allowed and their order kept [MQTT-3.3.2-18].
            "-D",
            "publish",
            "user-property",
            "unit",
            "celsius",
            "-D",
            "publish",
            "user-property",
            "source",
            "sensor-1",
            "-D",
            "publish",
            "user-property",
            "unit",
            "kelvin",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "interop/reply",
            "-D",
            "publish",
            "correlation-data",
            "req-42",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "3600",
        ],
    )
    .await;
    let got = received(sub).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let fields: Vec<&str> = got[0].splitn(8, '|').collect();
    let [
        topic,
        user,
        content_type,
        response,
        correlation,
        format,
        expiry,
        payload,
    ] = fields[..]
    else {
        panic!("unexpected output {got:?}");
    };
    assert_eq!(
        [
            topic,
            user,
            content_type,
            response,
            correlation,
            format,
            payload
        ],
        [
            "interop/props",
            "unit:celsius source:sensor-1 unit:kelvin",
            "text/plain",
            "interop/reply",
            "req-42",
            "1",
            "reading: 21.5"
        ]
    );
    // The broker forwards the remaining lifetime [MQTT-3.3.2-6]: at most what was sent.
    let expiry: u32 = expiry
        .parse()
        .unwrap_or_else(|_| panic!("message expiry {expiry:?} in {got:?}"));
    assert!((1..=3600).contains(&expiry), "message expiry {expiry}");
}
