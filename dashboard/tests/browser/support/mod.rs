//! What the dashboard's browser tests run against: `broker-server` serving the built
//! dashboard, `device-sim`, `mosquitto_sub`, and chromedriver with headless Chromium, each
//! on a free loopback port and stopped when dropped; plus small WebDriver helpers.

use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator, key::Key};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long anything the test waits for may take on a loaded machine.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A port the OS says is free now.
pub(crate) fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on `port`, or panics naming `what`.
pub(crate) async fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on {port}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `broker-server` with MQTT over TCP and HTTP (WebSocket `/mqtt` and the dashboard).
pub(crate) struct Broker {
    /// MQTT over TCP.
    pub(crate) tcp: u16,
    /// HTTP: the dashboard at `/`, MQTT over WebSocket at `/mqtt`.
    pub(crate) http: u16,
    /// The binary and its arguments, to start it again on the same ports.
    command: (PathBuf, Vec<String>),
    /// Its log (appended to by every start).
    log: PathBuf,
    /// The process; `None` while stopped.
    child: Option<Child>,
}

impl Broker {
    /// The dashboard's URL on this broker, with `fragment` (`""`, `"#/broker"`, ...).
    pub(crate) fn page(&self, fragment: &str) -> String {
        format!("http://127.0.0.1:{}/{fragment}", self.http)
    }

    /// Starts `binary` serving `dist`, with its store and log in `dir`.
    pub(crate) async fn start(binary: &Path, dist: &Path, dir: &Path) -> Self {
        Self::start_with(binary, dist, dir, &[]).await
    }

    /// [`Self::start`] with more `--set key=value` settings (e.g. a password file).
    pub(crate) async fn start_with(
        binary: &Path,
        dist: &Path,
        dir: &Path,
        sets: &[String],
    ) -> Self {
        let (tcp, http) = (free_port(), free_port());
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("the broker's directory");
        let mut args = vec![
            "--tcp".to_owned(),
            format!("127.0.0.1:{tcp}"),
            "--set".to_owned(),
            format!("http.listeners=[\"127.0.0.1:{http}\"]"),
            "--set".to_owned(),
            format!("http.dashboard_dir={:?}", dist.display().to_string()),
            "--set".to_owned(),
            format!("storage.dir={:?}", dir.join("data").display().to_string()),
            "--set".to_owned(),
            "sys.interval_secs=1".to_owned(),
            "--log-level".to_owned(),
            "warn".to_owned(),
        ];
        for set in sets {
            args.extend(["--set".to_owned(), set.clone()]);
        }
        let mut broker = Self {
            tcp,
            http,
            command: (binary.to_path_buf(), args),
            log: dir.join("broker.log"),
            child: None,
        };
        broker.start_again().await;
        broker
    }

    /// Starts it (again) on its ports, with its store, and waits until it listens.
    pub(crate) async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the broker is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the broker's log");
        let mut child = Command::new(&self.command.0)
            .args(&self.command.1)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("broker-server starts");
        wait_for_port(self.http, "broker-server", &mut child).await;
        wait_for_port(self.tcp, "broker-server", &mut child).await;
        self.child = Some(child);
    }

    /// Stops it as an operator would (SIGTERM: MQTT 5 clients are told the server is
    /// shutting down) and waits until it has exited.
    pub(crate) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(PATIENCE, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// `device-sim` publishing `devices` devices (`sim-001`, ...) to the broker; its log
/// (info level: rejected commands) goes to `log`.
pub(crate) fn device_sim(binary: &Path, tcp: u16, devices: u32, rate: f64, log: &Path) -> Child {
    device_sim_with(binary, tcp, devices, rate, log, &[])
}

/// [`device_sim`] with more arguments (e.g. `--prefix old`).
pub(crate) fn device_sim_with(
    binary: &Path,
    tcp: u16,
    devices: u32,
    rate: f64,
    log: &Path,
    more: &[&str],
) -> Child {
    let log = std::fs::File::create(log).expect("device-sim's log");
    Command::new(binary)
        .args(more)
        .args(["-L", &format!("mqtt://127.0.0.1:{tcp}")])
        .args([
            "--devices",
            &devices.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("device-sim starts")
}

/// chromedriver on a free loopback port, in a process group of its own with the
/// Chromium it starts: the whole group is killed when dropped, so a failed test (which
/// never closes its session) leaves no browser behind.
pub(crate) struct ChromeDriver {
    /// Its WebDriver URL.
    pub(crate) url: String,
    child: Child,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl ChromeDriver {
    /// A new headless Chromium session on this driver, with the project's capabilities.
    pub(crate) async fn session(&self) -> Client {
        self.session_with_args(&[]).await
    }

    /// [`Self::session`] with more Chromium command-line `args` (e.g.
    /// `--blink-settings=scriptEnabled=false`).
    pub(crate) async fn session_with_args(&self, args: &[&str]) -> Client {
        let mut capabilities = capabilities();
        if let Some(list) = capabilities["goog:chromeOptions"]["args"].as_array_mut() {
            list.extend(args.iter().map(|a| serde_json::Value::from(*a)));
        }
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a headless Chromium session")
    }

    /// Starts `binary`.
    pub(crate) async fn start(binary: &std::ffi::OsStr) -> Self {
        let port = free_port();
        let mut child = Command::new(binary)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        wait_for_port(port, "chromedriver", &mut child).await;
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

/// Chromium's options from the workspace's `webdriver.json`, plus headless and a
/// desktop window size.
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
    let args = args.as_array_mut().expect("args is an array");
    args.push("--headless=new".into());
    args.push("--window-size=1280,1000".into());
    capabilities
}

/// A test's own directory (its broker's store, logs), `name` under cargo's scratch
/// directory for integration tests.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Opens `url` in the browser; `what` names the page if it does not load.
pub(crate) async fn open(client: &Client, url: &str, what: &str) {
    client
        .goto(url)
        .await
        .unwrap_or_else(|error| panic!("{what} does not load: {error}"));
}

/// The text of the first element matching `css`, or `None` if there is none yet.
pub(crate) async fn text(client: &Client, css: &str) -> Option<String> {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.ok(),
        Err(_) => None,
    }
}

/// Polls until the text at `css` satisfies `ok`, and returns it; panics with the last
/// text seen (and saves a screenshot named after `what`) after [`PATIENCE`].
pub(crate) async fn wait_text(
    client: &Client,
    css: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = text(client, css).await;
        if let Some(seen) = seen.as_deref().filter(|t| ok(t)) {
            return seen.to_owned();
        }
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{what}")).await;
            panic!(
                "{what}: `{css}` shows {seen:?} after {PATIENCE:?} (screenshot: {})",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where screenshots go: `$DASHBOARD_SCREENSHOTS`, else the test's scratch directory.
pub(crate) fn screenshot_dir() -> PathBuf {
    std::env::var_os("DASHBOARD_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
        PathBuf::from,
    )
}

/// Saves a PNG of the page as `{name}.png` and returns its path.
pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}.png"));
    match client.screenshot().await {
        Ok(png) => {
            let _ = std::fs::write(&path, png);
        }
        Err(error) => eprintln!("screenshot {name} failed: {error}"),
    }
    path
}

/// Clicks the first element matching `css`, retrying until it exists and takes the
/// click (it may be rendering still), for up to [`PATIENCE`].
pub(crate) async fn click(client: &Client, css: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let outcome = match client.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.map(|_| ()),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("clicking {css}: {error}"),
        }
    }
}

/// Waits until nothing matches `css` (panics after [`PATIENCE`], naming `what`).
pub(crate) async fn wait_gone(client: &Client, css: &str, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while client.find(Locator::Css(css)).await.is_ok() {
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{what}")).await;
            panic!(
                "{what}: `{css}` is still there (screenshot: {})",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The fragment of the page's URL (`#/devices`), or an empty string.
pub(crate) async fn fragment(client: &Client) -> String {
    client
        .current_url()
        .await
        .expect("the page's URL")
        .fragment()
        .map(|f| format!("#{f}"))
        .unwrap_or_default()
}

/// What a scenario with simulated devices needs from the environment (set by `cargo
/// xtask test browser`), or `None` when a variable is missing: the test then passes
/// without running and says so.
pub(crate) struct Setup {
    /// The trunk build to serve (`DASHBOARD_DIST`).
    pub(crate) dist: std::path::PathBuf,
    /// The `broker-server` binary (`DASHBOARD_BROKER`).
    pub(crate) broker: std::path::PathBuf,
    /// The `device-sim` binary (`DEVICE_SIM`).
    pub(crate) device_sim: std::path::PathBuf,
    /// The chromedriver binary (`CHROMEDRIVER`).
    pub(crate) chromedriver: std::ffi::OsString,
}

/// Reads [`Setup`] from the environment, or says the test is skipped and returns `None`;
/// panics if the build it names has no `index.html` (a forgotten `trunk build`).
pub(crate) fn setup() -> Option<Setup> {
    let var = |name| std::env::var_os(name);
    let (Some(dist), Some(broker), Some(device_sim), Some(chromedriver)) = (
        var("DASHBOARD_DIST"),
        var("DASHBOARD_BROKER"),
        var("DEVICE_SIM"),
        var("CHROMEDRIVER"),
    ) else {
        eprintln!(
            "skipped: needs DASHBOARD_DIST, DASHBOARD_BROKER, DEVICE_SIM and CHROMEDRIVER; \
             run `cargo xtask test browser`"
        );
        return None;
    };
    let setup = Setup {
        dist: dist.into(),
        broker: broker.into(),
        device_sim: device_sim.into(),
        chromedriver,
    };
    assert!(
        setup.dist.join("index.html").exists(),
        "{} has no index.html: build it with trunk build",
        setup.dist.display()
    );
    Some(setup)
}

/// An element of a device's row in the list, or of its page: `[data-testid=…]` inside
/// `device-{id}`.
pub(crate) fn device(id: &str, inner: &str) -> String {
    format!("[data-testid=\"device-{id}\"] [data-testid=\"{inner}\"]")
}

/// An element of a property's row on a device page (`env/temperature` is the row
/// `property-env-temperature`).
pub(crate) fn property(path: &str, inner: &str) -> String {
    let testid = path.replace('/', "-");
    format!("[data-testid=\"property-{testid}\"] [data-testid=\"{inner}\"]")
}

/// Clears the input at `css` and types `text` into it. An empty `text` types a space and
/// deletes it: clearing alone fires no `input` event, so the page would not see it.
pub(crate) async fn type_into(client: &Client, css: &str, text: &str) {
    let input = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"));
    input
        .clear()
        .await
        .unwrap_or_else(|error| panic!("clearing {css}: {error}"));
    let keys = if text.is_empty() {
        vec![" ".to_owned(), Key::Backspace.to_string()]
    } else {
        vec![text.to_owned()]
    };
    for keys in keys {
        input
            .send_keys(&keys)
            .await
            .unwrap_or_else(|error| panic!("typing into {css}: {error}"));
    }
}

/// Types `text` over the value the input at `css` shows (select all, type) and presses
/// Enter, as a user changes a number.
pub(crate) async fn type_over(client: &Client, css: &str, text: &str) {
    let input = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"));
    for keys in [Key::Control + "a", text.to_owned(), Key::Enter.to_string()] {
        input
            .send_keys(&keys)
            .await
            .unwrap_or_else(|error| panic!("typing into {css}: {error}"));
    }
}

/// The first message on `topic` (a retained one arrives at once), read by
/// `mosquitto_sub`, without its trailing newline.
pub(crate) async fn mosquitto_sub_one(port: u16, topic: &str) -> String {
    let output = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "30"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("mosquitto_sub runs (cargo xtask setup installs it)");
    assert!(
        output.status.success(),
        "mosquitto_sub on {topic}: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Publishes at QoS 1 with `mosquitto_pub` (`-r` for retained; no payload is `-n`).
pub(crate) async fn mosquitto_pub(port: u16, topic: &str, payload: Option<&str>, retain: bool) {
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic]);
    match payload {
        Some(payload) => command.args(["-m", payload]),
        None => command.arg("-n"),
    };
    if retain {
        command.arg("-r");
    }
    let status = command
        .kill_on_drop(true)
        .status()
        .await
        .expect("mosquitto_pub runs (cargo xtask setup installs it)");
    assert!(status.success(), "mosquitto_pub on {topic}: {status}");
}
