//! paho-mqtt for Python over its websockets transport against `/mqtt`, MQTT 3.1.1 and
//! 5.0: subscribe, publish at QoS 0, 1 and 2, receive everything back. `cargo xtask
//! setup` installs paho-mqtt; without it the tests fail, they never skip.

use crate::common;
use crate::http_support;

use common::*;
use http_support::*;

async fn round_trip(version: &str) -> Vec<String> {
    let broker = TestBroker::with_config(http_config()).await;
    let addr = broker.running.as_ref().unwrap().http_addrs[0];
    let script = peer_script("paho_ws.py").display().to_string();
    let port = addr.port().to_string();
    // `-B`: no `__pycache__` in the source tree.
    let args = ["-B", script.as_str(), "127.0.0.1", port.as_str(), version];
    let output = run_peer("python3", &args, &[]).await;
    broker.stop().await;
    output.got()
}

fn expected(version: &str) -> Vec<String> {
    (0..3)
        .map(|qos| format!("paho/ws/v{version}/{qos} qos={qos} payload=hello {qos}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_v311_over_websocket() {
    assert_eq!(round_trip("4").await, expected("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_v5_over_websocket() {
    assert_eq!(round_trip("5").await, expected("5"));
}
