//! SCRAM-SHA-256 over MQTT 5 AUTH (§4.12) with the credentials `broker-server passwd
//! --scram` writes: a client written here from RFC 5802 speaking raw packets (login,
//! the server's signature, re-authentication, every failure), and MQTT.js as a real
//! peer.

use crate::common;
use crate::http_support;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use http_support::*;
use protocol::{Auth, AuthProperties, Connect, Packet, ProtocolVersion, ReasonCode};
use sha2::{Digest, Sha256};

const METHOD: &str = "SCRAM-SHA-256";
const V5: ProtocolVersion = ProtocolVersion::V5;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The client side of one SCRAM-SHA-256 exchange.
struct ScramClient {
    password: String,
    client_first_bare: String,
    nonce: String,
    auth_message: String,
    server_key: Vec<u8>,
}

impl ScramClient {
    fn new(user: &str, password: &str, nonce: &str) -> Self {
        Self {
            password: password.into(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.into(),
            auth_message: String::new(),
            server_key: Vec::new(),
        }
    }

    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// client-final for `server_first`.
    fn client_final(&mut self, server_first: &str) -> String {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {server_first}"))
                .to_string()
        };
        let nonce = field("r=");
        assert!(nonce.starts_with(&self.nonce), "{server_first}");
        let salt = STANDARD.decode(field("s=")).unwrap();
        let iterations: u32 = field("i=").parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        self.server_key = hmac(&salted, b"Server Key");
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", STANDARD.encode(proof))
    }

    /// The server-final the broker must send: `v=` its signature.
    fn expected_server_final(&self) -> String {
        let signature = hmac(&self.server_key, self.auth_message.as_bytes());
        format!("v={}", STANDARD.encode(signature))
    }
}

fn auth(reason_code: ReasonCode, data: String) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(METHOD.into()),
            authentication_data: Some(Bytes::from(data)),
            ..Default::default()
        }
        .into(),
    })
}

fn auth_data(packet: &Packet, reason: ReasonCode) -> String {
    match packet {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, reason, "{a:?}");
            assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
            String::from_utf8(a.properties.authentication_data.clone().unwrap().to_vec()).unwrap()
        }
        other => panic!("expected AUTH {reason:?}, got {other:?}"),
    }
}

/// A password file with `carol`/`s3cret` (password and SCRAM lines) and `dan`/`pw`
/// (password only), written by `broker-server passwd`.
fn password_file(dir: &Path) -> PathBuf {
    let file = dir.join("passwd");
    for args in [
        &["add", "carol", "--scram", "--password", "s3cret"][..],
        &["add", "dan", "--password", "pw"][..],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
            .arg("passwd")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    file
}

async fn scram_broker(dir: &Path) -> TestBroker {
    let mut config = http_config();
    config.auth.password_file = Some(password_file(dir));
    config.auth.failed_login_delay_ms = 0;
    TestBroker::with_config(config).await
}

/// Starts a SCRAM login: sends CONNECT with client-first.
async fn begin(broker: &TestBroker, client_id: &str, scram: &ScramClient) -> Peer {
    let mut client = broker.raw(V5).await;
    let mut connect = Connect::new(V5, client_id);
    connect.properties.authentication_method = Some(METHOD.into());
    connect.properties.authentication_data = Some(Bytes::from(scram.client_first()));
    client.send(&Packet::Connect(Box::new(connect))).await;
    client
}

/// A full SCRAM login as `user`; the CONNACK.
async fn scram_login(
    broker: &TestBroker,
    client_id: &str,
    user: &str,
    password: &str,
) -> (Peer, protocol::ConnAck, ScramClient) {
    let mut scram = ScramClient::new(user, password, "fyko+d2lbbFgONRv9qkxdawL");
    let mut client = begin(broker, client_id, &scram).await;
    let server_first = auth_data(&client.recv().await, ReasonCode::ContinueAuthentication);
    let client_final = scram.client_final(&server_first);
    client
        .send(&auth(ReasonCode::ContinueAuthentication, client_final))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => (client, ack, scram),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn scram_login_succeeds_proves_the_server_and_reauthenticates() {
    let dir = tempfile::tempdir().unwrap();
    let broker = scram_broker(dir.path()).await;
    let (mut client, ack, scram) = scram_login(&broker, "scram-ok", "carol", "s3cret").await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(METHOD)
    );
    let server_final = ack.properties.authentication_data.clone().unwrap();
    assert_eq!(&server_final[..], scram.expected_server_final().as_bytes());
    // CONNECT had no user name: the exchange named the user.
    assert_eq!(
        broker
            .broker()
            .clients
            .get("scram-ok")
            .unwrap()
            .username
            .as_deref(),
        Some("carol")
    );

    // Re-authentication (§4.12.1) as the same user.
    let mut again = ScramClient::new("carol", "s3cret", "second-nonce");
    client
        .send(&auth(ReasonCode::ReAuthenticate, again.client_first()))
        .await;
    let server_first = auth_data(&client.recv().await, ReasonCode::ContinueAuthentication);
    let client_final = again.client_final(&server_first);
    client
        .send(&auth(ReasonCode::ContinueAuthentication, client_final))
        .await;
    let server_final = auth_data(&client.recv().await, ReasonCode::Success);
    assert_eq!(server_final, again.expected_server_final());
    client.send(&Packet::PingReq).await;
    assert!(matches!(client.recv().await, Packet::PingResp));
    assert_eq!(broker.broker().metrics.auth_failures.get(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn scram_refuses_wrong_passwords_unknown_users_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let broker = scram_broker(dir.path()).await;
    let refusals = [
        ("carol", "wrong"),
        ("nobody", "s3cret"),
        // dan has a password line but no SCRAM line.
        ("dan", "pw"),
    ];
    for (n, (user, password)) in refusals.iter().enumerate() {
        let (mut client, ack, _) = scram_login(&broker, &format!("bad-{n}"), user, password).await;
        assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword, "{user}");
        assert!(ack.properties.authentication_data.is_none());
        client.expect_closed().await;
    }
    // A client-final with another nonce than the server's (a replay).
    let mut scram = ScramClient::new("carol", "s3cret", "nonce-one");
    let mut client = begin(&broker, "replay", &scram).await;
    let server_first = auth_data(&client.recv().await, ReasonCode::ContinueAuthentication);
    let client_final = scram.client_final(&server_first);
    let replayed = client_final.replace(
        &server_first[2..server_first.find(',').unwrap()],
        "nonce-oneXYZ",
    );
    client
        .send(&auth(ReasonCode::ContinueAuthentication, replayed))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Channel binding is not offered.
    let mut client = broker.raw(V5).await;
    let mut connect = Connect::new(V5, "binding");
    connect.properties.authentication_method = Some(METHOD.into());
    connect.properties.authentication_data =
        Some(Bytes::from_static(b"p=tls-unique,,n=carol,r=abc"));
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::NotAuthorized
    );
    // A CONNECT naming a user other than the exchange's.
    let scram = ScramClient::new("carol", "s3cret", "abc");
    let mut client = broker.raw(V5).await;
    let mut connect = Connect::new(V5, "mismatch");
    connect.username = Some("dan".into());
    connect.properties.authentication_method = Some(METHOD.into());
    connect.properties.authentication_data = Some(Bytes::from(scram.client_first()));
    assert_eq!(
        client.handshake(connect).await.reason_code,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(broker.broker().metrics.auth_failures.get(), 6);
    // The password lines still work for plain logins, at 3.1.1 too.
    for version in [ProtocolVersion::V3_1_1, V5] {
        let mut client = broker.raw(version).await;
        let mut connect = Connect::new(version, "plain");
        connect.username = Some("carol".into());
        connect.password = Some(Bytes::from_static(b"s3cret"));
        assert_eq!(
            client.handshake(connect).await.reason_code,
            ReasonCode::Success
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn reauthentication_cannot_switch_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker-server"))
        .arg("passwd")
        .arg(&file)
        .args(["change", "dan", "--scram", "--password", "pw"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut config = test_config();
    config.auth.password_file = Some(file);
    config.auth.failed_login_delay_ms = 0;
    let broker = TestBroker::with_config(config).await;
    let (mut client, ack, _) = scram_login(&broker, "switch", "carol", "s3cret").await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let mut as_dan = ScramClient::new("dan", "pw", "n2");
    client
        .send(&auth(ReasonCode::ReAuthenticate, as_dan.client_first()))
        .await;
    let server_first = auth_data(&client.recv().await, ReasonCode::ContinueAuthentication);
    let client_final = as_dan.client_final(&server_first);
    client
        .send(&auth(ReasonCode::ContinueAuthentication, client_final))
        .await;
    let closing = client.expect_closed().await;
    assert!(
        matches!(closing.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::NotAuthorized),
        "{closing:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn without_scram_credentials_the_method_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    std::fs::write(&file, "").unwrap();
    let mut config = test_config();
    config.auth.password_file = Some(file);
    config.auth.failed_login_delay_ms = 0;
    let broker = TestBroker::with_config(config).await;
    let scram = ScramClient::new("carol", "s3cret", "abc");
    let mut client = begin(&broker, "nomethod", &scram).await;
    match client.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn mqttjs_logs_in_with_scram_and_is_refused_with_a_wrong_password() {
    let modules = tools_dir().join("node_modules");
    assert!(
        modules.join("mqtt/package.json").is_file(),
        "MQTT.js is not installed in {}: run `cargo xtask setup`",
        modules.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let broker = scram_broker(dir.path()).await;
    let url = format!("mqtt://127.0.0.1:{}", broker.addr.port());
    let script = peer_script("mqttjs_scram.cjs").display().to_string();
    let modules = modules.display().to_string();
    let run = |password: &'static str| {
        let args = [
            script.clone(),
            modules.clone(),
            url.clone(),
            "carol".into(),
            password.into(),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_peer("node", &args, &[]).await.got()
        }
    };
    assert_eq!(
        run("s3cret").await,
        ["connected", "server-verified", "echo hello"]
    );
    assert_eq!(run("wrong").await, ["error 134"]);
    assert_eq!(broker.broker().metrics.auth_failures.get(), 1);
    broker.stop().await;
}
