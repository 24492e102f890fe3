//! MQTT.js (npm `mqtt`, run by Node) against `/mqtt` over `ws://` and `wss://`, MQTT
//! 3.1.1 and 5.0: subscribe, publish at QoS 0, 1 and 2, receive everything back (MQTT 5
//! with its user properties and content type).
//!
//! `cargo xtask setup` installs MQTT.js into the tools directory (`$MQTT_WEB_TOOLS_DIR`,
//! default `~/.cache/mqtt-web/tools`); without Node or MQTT.js these tests fail and say
//! so, they never skip.

use crate::common;
use crate::http_support;

use std::path::PathBuf;

use common::*;
use http_support::*;

/// The `node_modules` directory holding MQTT.js; panics with what to do if missing.
fn mqttjs_modules() -> PathBuf {
    let modules = tools_dir().join("node_modules");
    assert!(
        modules.join("mqtt/package.json").is_file(),
        "MQTT.js is not installed in {}: run `cargo xtask setup` (it installs npm mqtt \
         there), or set MQTT_WEB_TOOLS_DIR to a directory whose node_modules has it",
        modules.display()
    );
    modules
}

async fn round_trip(version: &str, secure: bool) -> Vec<String> {
    let modules = mqttjs_modules();
    let pki = Pki::generate();
    let mut config = http_config();
    config.http.tls_listeners = vec!["127.0.0.1:0".parse().unwrap()];
    pki.configure(&mut config, false);
    let broker = TestBroker::with_config(config).await;
    let running = broker.running.as_ref().unwrap();
    let url = if secure {
        format!("wss://127.0.0.1:{}/mqtt", running.https_addrs[0].port())
    } else {
        format!("ws://127.0.0.1:{}/mqtt", running.http_addrs[0].port())
    };
    let ca = pki.path("ca.pem");
    let mut args = vec![
        peer_script("mqttjs_roundtrip.cjs").display().to_string(),
        modules.display().to_string(),
        url,
        version.to_string(),
    ];
    if secure {
        args.push(ca.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_peer("node", &args, &[]).await;
    broker.stop().await;
    output.got()
}

fn expected(version: &str) -> Vec<String> {
    (0..3)
        .map(|qos| {
            let mut line = format!("mqttjs/v{version}/{qos} qos={qos} payload=hello {qos}");
            if version == "5" {
                line.push_str(r#" content_type=text/plain user={"source":"mqtt.js"}"#);
            }
            line
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_v311_over_ws() {
    assert_eq!(round_trip("4", false).await, expected("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_v5_over_ws() {
    assert_eq!(round_trip("5", false).await, expected("5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_v311_over_wss() {
    assert_eq!(round_trip("4", true).await, expected("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_v5_over_wss() {
    assert_eq!(round_trip("5", true).await, expected("5"));
}
