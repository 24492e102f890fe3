//! The library against a real Eclipse Mosquitto broker, for behaviour every broker
//! shares: QoS 0/1/2, retained messages, wills, session resumption across a restart of
//! a broker with persistence, TLS and MQTT 5 request/response.
//!
//! Each test starts its own `/usr/sbin/mosquitto` (Debian package `mosquitto`,
//! installed by `cargo xtask setup`) from a generated configuration: one plain or TLS
//! listener on a free loopback port (`listener <port> 127.0.0.1`), anonymous access,
//! and never a WebSocket listener. A system mosquitto service, if the package started
//! one on port 1883, is not used. Without mosquitto these tests fail: they do not skip.

mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PATIENCE, Pki, TempDir, next, options, wait_event};
use native_client::{
    Client, ConnectError, ConnectFailure, ConnectOptionsExt, Event, ProtocolVersion,
    PublishOptions, QoS, ReasonCode, TlsOptions, TransportError,
};

/// Where Debian's `mosquitto` package puts the broker.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

fn mosquitto_binary() -> PathBuf {
    let debian = PathBuf::from(MOSQUITTO);
    if debian.is_file() {
        return debian;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the mosquitto broker is not installed ({MOSQUITTO} is missing and no \
                 `mosquitto` is on PATH): run `cargo xtask setup`, which installs the \
                 Debian package mosquitto"
            )
        })
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process with a generated configuration in `dir`; killed when dropped.
struct Mosquitto {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto on `port` with the listener options `listener_options` and the
    /// global options `global_options`, and waits until it accepts connections.
    fn start(dir: &Path, port: u16, global_options: &str, listener_options: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        // `user root`: run as root, mosquitto would switch to the `mosquitto` user, who
        // cannot read the test's files; as any other user the option has no effect.
        let text = format!(
            "allow_anonymous true\n\
             user root\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             {global_options}\n\
             listener {port} 127.0.0.1\n\
             {listener_options}\n"
        );
        std::fs::write(&conf, text).unwrap();
        let mut broker = Self {
            child: None,
            port,
            conf,
            log,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = mosquitto_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{} does not start: {err}", binary.display()));
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        let addr = self.addr();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "mosquitto exited ({status}) before listening on {addr}:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto does not listen on {addr}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self) -> String {
        format!("mqtt://{}", self.addr())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops mosquitto with SIGTERM, as a service manager does: with persistence it
    /// writes its database before exiting.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill -TERM mosquitto: {status}");
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mosquitto does not stop on SIGTERM:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the same configuration again (same port, same persistence directory).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "stop mosquitto before restarting it");
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A mosquitto with one plain listener and no persistence.
fn plain(dir: &TempDir) -> Mosquitto {
    Mosquitto::start(dir.path(), free_port(), "persistence false", "")
}

async fn round_trip(version: ProtocolVersion) {
    let dir = TempDir::new("mosquitto-qos");
    let broker = plain(&dir);
    let url = broker.url();
    let subscriber = Client::connect(options(&url, "sub").version(version))
        .await
        .unwrap();
    let publisher = Client::connect(options(&url, "pub").version(version))
        .await
        .unwrap();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("qos/{}", qos as u8);
        let mut subscription = subscriber.subscribe(topic.as_str(), qos).await.unwrap();
        assert_eq!(subscription.granted_qos(), qos);
        let outcome = publisher
            .publish(topic.as_str(), format!("at {qos:?}"), qos)
            .await
            .unwrap();
        assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
        let message = next(&mut subscription).await;
        assert_eq!(message.topic(), topic);
        assert_eq!(message.payload_str(), Some(format!("at {qos:?}").as_str()));
        assert_eq!(message.qos, qos);
        assert!(!message.retain);
    }
    publisher.disconnect(ReasonCode::Success).await.unwrap();
    subscriber.disconnect(ReasonCode::Success).await.unwrap();
}

#[tokio::test]
async fn messages_arrive_at_every_qos_over_mqtt5() {
    round_trip(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn messages_arrive_at_every_qos_over_mqtt311() {
    round_trip(ProtocolVersion::V3_1_1).await;
}

#[tokio::test]
async fn a_later_subscriber_gets_the_retained_message_flagged_retain() {
    let dir = TempDir::new("mosquitto-retained");
    let broker = plain(&dir);
    let url = broker.url();
    let publisher = common::connect(&url, "retainer").await;
    publisher
        .publish(
            "retained/t",
            "kept",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    let subscriber = common::connect(&url, "late").await;
    let mut subscription = subscriber
        .subscribe("retained/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut subscription).await;
    assert_eq!(
        (message.topic(), message.payload_str(), message.retain),
        ("retained/t", Some("kept"), true)
    );
    // An empty retained payload clears it: a new subscription gets only what follows.
    publisher
        .publish(
            "retained/t",
            "",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    let mut fresh = subscriber
        .subscribe("retained/t", QoS::AtLeastOnce)
        .await
        .unwrap();
    publisher
        .publish("retained/t", "live", QoS::AtLeastOnce)
        .await
        .unwrap();
    // The fresh subscription gets no retained copy: its first message is the live one.
    let message = next(&mut fresh).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("live"), false)
    );
    publisher.disconnect(ReasonCode::Success).await.unwrap();
    subscriber.disconnect(ReasonCode::Success).await.unwrap();
}

#[tokio::test]
async fn the_will_is_published_retained_when_the_connection_drops() {
    let dir = TempDir::new("mosquitto-will");
    let broker = plain(&dir);
    let url = broker.url();
    let watcher = common::connect(&url, "watcher").await;
    let mut states = watcher
        .subscribe("iot/5/dev/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let device = Client::connect(options(&url, "dev").will(
        "iot/5/dev/$state",
        "lost",
        QoS::AtLeastOnce,
        true,
    ))
    .await
    .unwrap();
    device
        .publish(
            "iot/5/dev/$state",
            "ready",
            PublishOptions::new(QoS::AtLeastOnce).retain(true),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut states).await.payload_str(), Some("ready"));
    device.abort();
    assert_eq!(next(&mut states).await.payload_str(), Some("lost"));
    let mut again = watcher
        .subscribe("iot/5/+/$state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let message = next(&mut again).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("lost"), true)
    );
    watcher.disconnect(ReasonCode::Success).await.unwrap();
}

#[tokio::test]
async fn a_persistent_session_resumes_after_mosquitto_restarts() {
    let dir = TempDir::new("mosquitto-persistence");
    let location = format!("{}/", dir.path().display());
    let mut broker = Mosquitto::start(
        dir.path(),
        free_port(),
        &format!("persistence true\npersistence_location {location}"),
        "",
    );
    let url = broker.url();
    // clean_start=false with a session expiry: the session outlives the connection.
    let device = Client::connect(
        options(&url, "resumer")
            .clean_start(false)
            .session_expiry(300),
    )
    .await
    .unwrap();
    let mut inbox = device
        .subscribe("resume/in", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut events = device.events();

    broker.stop().await;
    wait_event(&mut events, "disconnected", |event| {
        matches!(event, Event::Disconnected { .. }).then_some(())
    })
    .await;
    assert!(
        dir.path().join("mosquitto.db").is_file(),
        "mosquitto saved no database:\n{}",
        broker.log_text()
    );

    broker.restart();
    // Not retained: it reaches the device only through the restored subscription
    // (queued for the offline session if the device has not reconnected yet).
    let peer = common::connect(&url, "peer").await;
    peer.publish("resume/in", "after restart", QoS::AtLeastOnce)
        .await
        .unwrap();
    let present = wait_event(&mut events, "reconnected", |event| match event {
        Event::Connected { session_present } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(present, "mosquitto restored the session from its database");
    let message = next(&mut inbox).await;
    assert_eq!(
        (message.payload_str(), message.retain),
        (Some("after restart"), false)
    );
    device.disconnect(ReasonCode::Success).await.unwrap();
    peer.disconnect(ReasonCode::Success).await.unwrap();
}

/// Writes the PKI's server side into `dir` and starts a TLS mosquitto;
/// `require_certificate`: mutual TLS.
fn tls_broker(dir: &TempDir, pki: &Pki, require_certificate: bool) -> Mosquitto {
    let path = |name: &str| dir.path().join(name);
    for (name, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("server.pem", &pki.server_cert_pem),
        ("server.key", &pki.server_key_pem),
    ] {
        let mut file = std::fs::File::create(path(name)).unwrap();
        file.write_all(pem.as_bytes()).unwrap();
    }
    Mosquitto::start(
        dir.path(),
        free_port(),
        "persistence false",
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}",
            path("ca.pem").display(),
            path("server.pem").display(),
            path("server.key").display(),
        ),
    )
}

async fn tls_round_trip(client: &Client) {
    let mut subscription = client.subscribe("tls/t", QoS::AtLeastOnce).await.unwrap();
    client
        .publish("tls/t", "secret", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut subscription).await.payload_str(), Some("secret"));
}

#[tokio::test]
async fn mqtts_to_mosquitto_works_with_a_custom_ca() {
    let dir = TempDir::new("mosquitto-tls");
    let pki = Pki::generate();
    let broker = tls_broker(&dir, &pki, false);
    let trust = TlsOptions::default().ca_pem(pki.ca_pem.clone());
    // The certificate names `localhost` and 127.0.0.1; mosquitto listens on 127.0.0.1.
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let client = Client::connect(options(&url, "tls").tls(trust.clone()))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();

    let client = Client::connect(options(&url, "named").tls(trust.server_name("localhost")))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();

    let other = Pki::generate();
    let err = Client::connect(
        options(&url, "wary").tls(TlsOptions::default().ca_pem(other.ca_pem.clone())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::Transport(TransportError::Tls { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_tls_with_mosquitto_needs_the_client_certificate() {
    let dir = TempDir::new("mosquitto-mtls");
    let pki = Pki::generate();
    let broker = tls_broker(&dir, &pki, true);
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let trust = TlsOptions::default().ca_pem(pki.ca_pem.clone());

    let refused = Client::connect(
        options(&url, "anonymous")
            .tls(trust.clone())
            .reconnect(native_client::ReconnectOptions::disabled()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            refused,
            ConnectError::Transport(TransportError::Tls { .. })
                | ConnectError::Handshake(ConnectFailure::Closed(_))
        ),
        "{refused}"
    );

    let with_cert = trust.client_auth(pki.client_cert_pem.clone(), pki.client_key_pem.clone());
    let client = Client::connect(options(&url, "device-1").tls(with_cert))
        .await
        .unwrap();
    tls_round_trip(&client).await;
    client.disconnect(ReasonCode::Success).await.unwrap();
}

#[tokio::test]
async fn a_request_to_a_responder_through_mosquitto_gets_its_response() {
    let dir = TempDir::new("mosquitto-request");
    let broker = plain(&dir);
    let url = broker.url();
    let responder = common::connect(&url, "responder").await;
    let mut requests = responder
        .subscribe("svc/upper", QoS::AtLeastOnce)
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let answer = request.payload_str().unwrap_or_default().to_uppercase();
            responder
                .respond(&request, answer, PublishOptions::new(QoS::AtLeastOnce))
                .await
                .unwrap();
        }
    });
    let requester = common::connect(&url, "requester").await;
    for word in ["hello", "world"] {
        let response = requester
            .request("svc/upper", word, PATIENCE)
            .await
            .unwrap();
        assert_eq!(response.payload_str(), Some(word.to_uppercase().as_str()));
        assert_eq!(response.topic(), "res/requester");
        assert_eq!(response.correlation_data().map(|c| c.len()), Some(16));
    }
    let timeout = Duration::from_millis(200);
    assert_eq!(
        requester.request("svc/none", "?", timeout).await,
        Err(native_client::Error::Timeout(timeout))
    );
    requester.disconnect(ReasonCode::Success).await.unwrap();
    server.abort();
}
