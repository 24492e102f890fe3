//! JWT bearer tokens: HS256, RS256 and ES256 from a secret, a PEM key or a JWKS file;
//! the token in CONNECT's password field (raw 3.1.1 and 5.0, `mosquitto_pub`) or in
//! the WebSocket upgrade's `Authorization` header or cookie; expired, badly signed,
//! wrong-audience and otherwise bad tokens refused.

use crate::common;
use crate::http_support;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::*;
use http_support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use protocol::{Connect, ProtocolVersion, ReasonCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const SECRET: &str = "test-secret-of-enough-length-for-hs256";
const AUDIENCE: &str = "mqtt-broker";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `user`, valid for an hour, for our audience.
fn claims(user: &str) -> serde_json::Value {
    json!({ "sub": user, "aud": AUDIENCE, "exp": now() + 3600 })
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn jwt_config() -> broker_server::Config {
    let mut config = http_config();
    config.auth.jwt.hmac_secret = Some(SECRET.into());
    config.auth.jwt.audience = Some(AUDIENCE.into());
    config.auth.jwt.leeway_secs = 0;
    config.auth.failed_login_delay_ms = 0;
    config
}

/// A CONNECT with `token` as the password (and `user`, if any), with its own client
/// identifier.
fn with_token(version: ProtocolVersion, user: Option<&str>, token: &str) -> Connect {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut connect = Connect::new(version, format!("jwt{n}").as_str());
    connect.username = user.map(Into::into);
    connect.password = Some(Bytes::copy_from_slice(token.as_bytes()));
    connect
}

/// Logs in with `connect`; the CONNACK's reason code and, on success, the user name
/// the broker lists for the client.
async fn login(broker: &TestBroker, connect: Connect) -> (ReasonCode, Option<String>) {
    let client_id = connect.client_id.clone();
    let mut client = broker.raw(connect.protocol).await;
    let code = client.handshake(connect).await.reason_code;
    let user = broker
        .broker()
        .clients
        .get(&client_id)
        .and_then(|c| c.username.as_deref().map(str::to_owned));
    (code, user)
}

#[tokio::test]
async fn hs256_tokens_in_the_password_field_log_in_and_bad_ones_are_refused() {
    let broker = TestBroker::with_config(jwt_config()).await;
    let good = hs256(&claims("alice"), SECRET);
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 60);
    let mut wrong_audience = claims("alice");
    wrong_audience["aud"] = json!("another-service");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_user = claims("alice");
    no_user.as_object_mut().unwrap().remove("sub");
    // "alg": "none" with the signature stripped.
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
        format!("{header}.{body}.")
    };
    let bad: Vec<(&str, String)> = vec![
        ("expired", hs256(&expired, SECRET)),
        (
            "badly signed",
            hs256(&claims("alice"), "another-secret-entirely-0000000"),
        ),
        ("wrong audience", hs256(&wrong_audience, SECRET)),
        ("without exp", hs256(&no_exp, SECRET)),
        ("without user", hs256(&no_user, SECRET)),
        ("unsigned", unsigned),
        ("tampered", {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(claims("mallory").to_string());
            parts.join(".")
        }),
    ];
    for version in [V311, V5] {
        assert_eq!(
            login(&broker, with_token(version, Some("alice"), &good)).await,
            (ReasonCode::Success, Some("alice".into())),
            "{version}"
        );
        for (what, token) in &bad {
            assert_eq!(
                login(&broker, with_token(version, Some("alice"), token))
                    .await
                    .0,
                ReasonCode::BadUserNameOrPassword,
                "{version}: {what}"
            );
        }
        // The CONNECT may not claim another user than the token.
        assert_eq!(
            login(&broker, with_token(version, Some("bob"), &good))
                .await
                .0,
            ReasonCode::BadUserNameOrPassword,
            "{version}"
        );
        // JWT configured: no anonymous access.
        let mut anonymous = Connect::new(version, "anon");
        anonymous.clean_start = true;
        assert_eq!(login(&broker, anonymous).await.0, ReasonCode::NotAuthorized);
    }
    // MQTT 5: the token alone, without a user name, names the user.
    assert_eq!(
        login(&broker, with_token(V5, None, &good)).await,
        (ReasonCode::Success, Some("alice".into()))
    );
    assert_eq!(
        broker.broker().metrics.auth_failures.get(),
        2 * (bad.len() as u64 + 2)
    );
    broker.stop().await;
}

#[tokio::test]
async fn rs256_and_es256_tokens_check_against_pem_keys() {
    let rsa_private = std::fs::read(fixture("jwt-rsa-private.pem")).unwrap();
    let rsa_key = EncodingKey::from_rsa_pem(&rsa_private).unwrap();
    let mut config = jwt_config();
    config.auth.jwt.hmac_secret = None;
    config.auth.jwt.public_key_file = Some(fixture("jwt-rsa-public.pem"));
    let broker = TestBroker::with_config(config).await;
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims("rita"), &rsa_key).unwrap();
    assert_eq!(
        login(&broker, with_token(V5, None, &token)).await,
        (ReasonCode::Success, Some("rita".into()))
    );
    // An HS256 token made with the public key as the secret (algorithm confusion).
    let public = std::fs::read_to_string(fixture("jwt-rsa-public.pem")).unwrap();
    let confused = hs256(&claims("rita"), &public);
    assert_eq!(
        login(&broker, with_token(V5, None, &confused)).await.0,
        ReasonCode::BadUserNameOrPassword
    );
    broker.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let ec = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("ec.pem"), ec.public_key_pem()).unwrap();
    let ec_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let mut config = jwt_config();
    config.auth.jwt.hmac_secret = None;
    config.auth.jwt.public_key_file = Some(dir.path().join("ec.pem"));
    let broker = TestBroker::with_config(config).await;
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("eve"), &ec_key).unwrap();
    assert_eq!(
        login(&broker, with_token(V311, Some("eve"), &token)).await,
        (ReasonCode::Success, Some("eve".into()))
    );
    let other = rcgen::KeyPair::generate().unwrap();
    let other_key = EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap();
    let forged =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("eve"), &other_key).unwrap();
    assert_eq!(
        login(&broker, with_token(V311, Some("eve"), &forged))
            .await
            .0,
        ReasonCode::BadUserNameOrPassword
    );
    broker.stop().await;
}

#[tokio::test]
async fn jwks_keys_are_picked_by_kid_and_reload_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let ec = rcgen::KeyPair::generate().unwrap();
    let point = ec.public_key_raw();
    assert_eq!(point[0], 4, "uncompressed P-256 point");
    let jwks = |with_ec: bool| {
        let mut keys = vec![json!({
            "kty": "oct", "kid": "hs-1", "alg": "HS256",
            "k": URL_SAFE_NO_PAD.encode(SECRET),
        })];
        if with_ec {
            keys.push(json!({
                "kty": "EC", "kid": "ec-1", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }));
        }
        json!({ "keys": keys }).to_string()
    };
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(true)).unwrap();
    let mut config = jwt_config();
    config.auth.jwt.hmac_secret = None;
    config.auth.jwt.jwks_file = Some(path.clone());
    let broker = TestBroker::with_config(config).await;

    let ec_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let ec_token = jsonwebtoken::encode(&header, &claims("erin"), &ec_key).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs-1".into());
    let hs_token = jsonwebtoken::encode(
        &header,
        &claims("hal"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    header.kid = Some("unknown".into());
    let unknown_kid = jsonwebtoken::encode(
        &header,
        &claims("hal"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        login(&broker, with_token(V5, None, &ec_token)).await,
        (ReasonCode::Success, Some("erin".into()))
    );
    assert_eq!(
        login(&broker, with_token(V5, None, &hs_token)).await,
        (ReasonCode::Success, Some("hal".into()))
    );
    assert_eq!(
        login(&broker, with_token(V5, None, &unknown_kid)).await.0,
        ReasonCode::BadUserNameOrPassword
    );
    // The EC key is retired: after a reload its tokens no longer work.
    std::fs::write(&path, jwks(false)).unwrap();
    broker.running.as_ref().unwrap().reload_security().unwrap();
    assert_eq!(
        login(&broker, with_token(V5, None, &ec_token)).await.0,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        login(&broker, with_token(V5, None, &hs_token)).await.0,
        ReasonCode::Success
    );
    broker.stop().await;
}

/// Opens `/mqtt` with extra upgrade headers and sends a CONNECT without credentials.
async fn ws_login(
    broker: &TestBroker,
    headers: &[(&'static str, String)],
    client_id: &str,
) -> ReasonCode {
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    let mut request = ws_request(&format!("ws://{addr}/mqtt"), &["mqtt"]);
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("WebSocket upgrade");
    let mut client = WsClient::new(ws, V5);
    client.connect(client_id).await.reason_code
}

#[tokio::test]
async fn websocket_upgrades_carry_the_token_in_a_header_or_cookie() {
    let mut config = jwt_config();
    config.auth.jwt.cookie = Some("mqtt_token".into());
    let broker = TestBroker::with_config(config).await;
    let good = hs256(&claims("webuser"), SECRET);
    let mut expired = claims("webuser");
    expired["exp"] = json!(now() - 60);
    let expired = hs256(&expired, SECRET);

    let bearer = [("authorization", format!("Bearer {good}"))];
    assert_eq!(
        ws_login(&broker, &bearer, "ws-a").await,
        ReasonCode::Success
    );
    assert_eq!(
        broker
            .broker()
            .clients
            .get("ws-a")
            .unwrap()
            .username
            .as_deref(),
        Some("webuser")
    );
    let cookie = [("cookie", format!("theme=dark; mqtt_token={good}"))];
    assert_eq!(
        ws_login(&broker, &cookie, "ws-b").await,
        ReasonCode::Success
    );

    let refused = [
        [("authorization", format!("Bearer {expired}"))],
        [("cookie", format!("mqtt_token={expired}"))],
        [("cookie", format!("other_cookie={good}"))],
    ];
    assert_eq!(
        ws_login(&broker, &refused[0], "ws-c").await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        ws_login(&broker, &refused[1], "ws-d").await,
        ReasonCode::BadUserNameOrPassword
    );
    // No token at all (the cookie has another name): anonymous, which is off.
    assert_eq!(
        ws_login(&broker, &refused[2], "ws-e").await,
        ReasonCode::NotAuthorized
    );
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_logs_in_with_a_token_as_its_password() {
    let broker = TestBroker::with_config(jwt_config()).await;
    let port = broker.addr.port().to_string();
    let good = hs256(&claims("device-7"), SECRET);
    let mut expired = claims("device-7");
    expired["exp"] = json!(now() - 60);
    let expired = hs256(&expired, SECRET);
    for (token, ok) in [(&good, true), (&expired, false)] {
        for version in ["mqttv311", "mqttv5"] {
            let output = tokio::time::timeout(
                PATIENCE,
                tokio::process::Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &port, "-V", version])
                    .args([
                        "-u", "device-7", "-P", token, "-t", "t", "-m", "x", "-q", "1",
                    ])
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("mosquitto_pub finishes")
            .expect("mosquitto_pub runs (Debian mosquitto-clients)");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.success(), ok, "{version}: {stderr}");
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_websocket_logs_in_with_a_header_cookie_or_password_token() {
    let mut config = jwt_config();
    config.auth.jwt.cookie = Some("mqtt_token".into());
    let broker = TestBroker::with_config(config).await;
    let port = broker.running.as_ref().unwrap().http_addrs[0]
        .port()
        .to_string();
    let script = peer_script("paho_jwt_ws.py").display().to_string();
    let good = hs256(&claims("webuser"), SECRET);
    let mut wrong_audience = claims("webuser");
    wrong_audience["aud"] = json!("another-service");
    let wrong_audience = hs256(&wrong_audience, SECRET);
    for version in ["4", "5"] {
        for mode in ["header", "cookie", "password"] {
            for (token, expected) in [
                (&good, vec!["connack 0", "echo hello"]),
                (&wrong_audience, vec!["connack 134"]),
            ] {
                // `-B`: no `__pycache__` in the source tree.
                let args = ["-B", &script, "127.0.0.1", &port, version, mode, token];
                let got = run_peer("python3", &args, &[]).await.got();
                assert_eq!(got, expected, "v{version} {mode}");
            }
        }
    }
    broker.stop().await;
}
