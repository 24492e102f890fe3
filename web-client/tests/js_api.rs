//! The JavaScript API as a web page uses it: the example page (`examples/index.html`,
//! a plain `<script type="module">` over wasm-bindgen's `--target web` output) runs its
//! self-check against the real broker in headless Chromium, driven over WebDriver, and
//! this test reads the outcome from the page.
//!
//! `cargo xtask test browser` builds the page's module (release wasm, `wasm-bindgen
//! --target web` into `examples/pkg`), starts the broker, and runs this test with
//! `MQTT_WS_URL`, `WEB_CLIENT_EXAMPLE_DIR` and `CHROMEDRIVER` set. Without them (a plain
//! `cargo test`) it passes without running and says so.
//!
//! The page is served by a small static file server on a free port, and chromedriver
//! is started on another; both only on 127.0.0.1.

#![cfg(not(target_arch = "wasm32"))]

use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the self-check may take (it waits out one reconnect backoff).
const PATIENCE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn the_example_page_passes_its_self_check() {
    let (Some(dir), Some(ws_url), Some(driver)) = (
        std::env::var_os("WEB_CLIENT_EXAMPLE_DIR"),
        std::env::var("MQTT_WS_URL").ok(),
        std::env::var_os("CHROMEDRIVER"),
    ) else {
        eprintln!(
            "skipped: needs WEB_CLIENT_EXAMPLE_DIR, MQTT_WS_URL and CHROMEDRIVER; run `cargo xtask test browser`"
        );
        return;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("pkg/web_client.js").exists(),
        "{} has no pkg/web_client.js: build it with wasm-bindgen --target web (see index.html)",
        dir.display()
    );

    let site = serve(dir).await;
    let driver = ChromeDriver::start(&driver).await;
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities())
        .connect(&driver.url)
        .await
        .expect("a headless Chromium session");

    let page = format!("http://{site}/index.html?selfcheck=1&url={ws_url}");
    client.goto(&page).await.expect("the page loads");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        let summary = client
            .find(Locator::Css("#summary"))
            .await
            .expect("the page has #summary");
        match summary
            .attr("data-status")
            .await
            .expect("readable")
            .as_deref()
        {
            Some(status @ ("passed" | "failed")) => break status.to_owned(),
            _ if Instant::now() > deadline => break "timed out".to_owned(),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let checks = client
        .find(Locator::Css("#checks"))
        .await
        .expect("the page has #checks");
    let report = checks.text().await.expect("readable");
    let summary = client
        .find(Locator::Css("#summary"))
        .await
        .expect("the page has #summary")
        .text()
        .await
        .expect("readable");
    // For whoever looks into a failure: the page as it ended.
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-page.png");
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(&screenshot, png);
    }
    let _ = client.close().await;
    println!(
        "{report}\n{summary}\n(screenshot: {})",
        screenshot.display()
    );
    assert_eq!(status, "passed", "the self-check: {summary}\n{report}");
}

/// Chromium's options from the workspace's `webdriver.json` (flags for running as root
/// in a container), plus headless.
fn capabilities() -> serde_json::Map<String, serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../webdriver.json");
    let text = std::fs::read_to_string(&path).expect("webdriver.json at the workspace root");
    let mut capabilities: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("webdriver.json is a JSON object");
    let options = capabilities
        .entry("goog:chromeOptions")
        .or_insert_with(|| serde_json::json!({}));
    let args = options
        .as_object_mut()
        .expect("goog:chromeOptions is an object")
        .entry("args")
        .or_insert_with(|| serde_json::json!([]));
    args.as_array_mut()
        .expect("args is an array")
        .push("--headless=new".into());
    capabilities
}

/// chromedriver on a free loopback port; killed when dropped.
struct ChromeDriver {
    url: String,
    child: tokio::process::Child,
}

impl ChromeDriver {
    async fn start(binary: &std::ffi::OsStr) -> Self {
        let port = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver does not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Serves the files of `root` on a free loopback port, for as long as the test runs.
async fn serve(root: PathBuf) -> std::net::SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_file(stream, root.clone()));
        }
    });
    addr
}

/// Answers one GET with the file it names (no directory listings, nothing outside
/// `root`), then closes the connection.
async fn serve_file(mut stream: TcpStream, root: PathBuf) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    let file = (!path.split('/').any(|part| part == ".."))
        .then(|| root.join(path.trim_start_matches('/')))
        .and_then(|file| std::fs::read(file).ok());
    let response = match file {
        Some(body) => {
            let mime = match Path::new(path).extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("wasm") => "application/wasm",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            head.extend_from_slice(&body);
            head
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}
