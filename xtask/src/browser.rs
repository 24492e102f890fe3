//! The `browser` step's harness: a real `broker-server` for the in-browser tests, and a
//! control endpoint that lets those tests restart it.
//!
//! ```text
//!  xtask ─spawn─► broker-server  --tcp 127.0.0.1:T  http.listeners 127.0.0.1:H  storage.dir
//!    │                ▲ ws://127.0.0.1:H/mqtt
//!    │                │
//!    ├─ cargo test -p web-client --target wasm32 ──► headless Chromium ─┘
//!    │       MQTT_WS_URL, MQTT_HARNESS_URL (compile-time, `option_env!`)    │
//!    │                                                                      │ fetch POST /broker/restart
//!    └─ control thread on 127.0.0.1:C ◄─────────────────────────────────────┘
//! ```
//!
//! Tests in a browser cannot start processes, so xtask starts the broker before the
//! test commands and stops it after them. Every port is picked free by the OS; the broker
//! keeps its ports across restarts, so the clients under test reconnect to the same URL.
//! Its store lives in a fresh directory under the target directory, so a persistent
//! session survives a restart as it would in production.
//!
//! The control endpoint answers `POST /broker/stop` (SIGTERM, as an operator's restart;
//! MQTT 5 clients get DISCONNECT 0x8B), `POST /broker/start` (returns once the broker
//! listens again) and `POST /broker/restart` (both), with `Access-Control-Allow-Origin:
//! *` because the test page comes from another origin. It binds 127.0.0.1 only.

use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Context;

/// How long the broker may take to listen, or to stop gracefully.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running broker and its control endpoint; stops both when dropped.
#[derive(Debug)]
pub(crate) struct Harness {
    broker: Arc<Mutex<Broker>>,
    /// `ws://127.0.0.1:H/mqtt`.
    pub(crate) ws_url: String,
    /// `http://127.0.0.1:C`.
    pub(crate) control_url: String,
    control_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    control: Option<thread::JoinHandle<()>>,
}

impl Harness {
    /// Starts the built `broker-server` on free ports, and the control endpoint.
    pub(crate) fn start(ctx: &Context) -> Result<Self> {
        let binary = ctx.target_dir().join("debug").join("broker-server");
        if !binary.exists() {
            bail!("{} is missing: build it first", binary.display());
        }
        let dir = ctx.target_dir().join("browser-harness");
        let data = dir.join("data");
        // A fresh store and log: nothing of an earlier run leaks into this one.
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(dir.join("broker.log"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut broker = Broker {
            binary,
            tcp: free_port()?,
            http: free_port()?,
            data,
            log: dir.join("broker.log"),
            child: None,
        };
        broker.start()?;
        let ws_url = format!("ws://127.0.0.1:{}/mqtt", broker.http);
        let broker = Arc::new(Mutex::new(broker));

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let control_addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let control = {
            let broker = broker.clone();
            let stopping = stopping.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &broker);
                    }
                }
            })
        };
        println!(
            "harness: broker-server at {ws_url} (log: {}), control at http://{control_addr}",
            dir.join("broker.log").display()
        );
        Ok(Self {
            broker,
            ws_url,
            control_url: format!("http://{control_addr}"),
            control_addr,
            stopping,
            control: Some(control),
        })
    }

    /// The last `lines` lines of the broker's log, for a failed test's report.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let log = match self.broker.lock() {
            Ok(broker) => std::fs::read_to_string(&broker.log).unwrap_or_default(),
            Err(_) => String::new(),
        };
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The environment the test commands get.
    pub(crate) fn env(&self) -> [(&'static str, String); 2] {
        [
            ("MQTT_WS_URL", self.ws_url.clone()),
            ("MQTT_HARNESS_URL", self.control_url.clone()),
        ]
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.control_addr);
        if let Some(control) = self.control.take() {
            let _ = control.join();
        }
        if let Ok(mut broker) = self.broker.lock() {
            broker.stop();
        }
    }
}

/// The broker process and what it needs to start again on the same ports.
#[derive(Debug)]
struct Broker {
    binary: PathBuf,
    tcp: u16,
    http: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--tcp")
            .arg(format!("127.0.0.1:{}", self.tcp))
            .arg("--set")
            .arg(format!("http.listeners=[\"127.0.0.1:{}\"]", self.http))
            .arg("--set")
            .arg("http.dashboard=false")
            .arg("--set")
            .arg(format!("storage.dir={:?}", self.data.display().to_string()))
            .arg("--set")
            .arg("sys.interval_secs=0")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.http)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "broker-server exited with {status} before listening (see {})",
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "broker-server did not listen on port {} (see {})",
                    self.http,
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (graceful: clients are told, the store is closed), then SIGKILL if it
    /// takes too long.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Answers one request of the control endpoint.
fn serve(stream: TcpStream, broker: &Mutex<Broker>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are not needed, but must be read before answering.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let result = match (method, path) {
        ("OPTIONS", _) => Ok("".to_owned()),
        ("POST", "/broker/stop") => lock(broker).map(|mut b| {
            b.stop();
            "stopped".to_owned()
        }),
        ("POST", "/broker/start") => lock(broker)
            .and_then(|mut b| b.start())
            .map(|()| "started".to_owned()),
        ("POST", "/broker/restart") => lock(broker)
            .and_then(|mut b| {
                b.stop();
                b.start()
            })
            .map(|()| "restarted".to_owned()),
        _ => Err(anyhow::anyhow!("unknown request {method} {path}")),
    };
    let (status, body) = match result {
        Ok(body) => ("200 OK", body),
        Err(err) => ("500 Internal Server Error", format!("{err:#}")),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nAccess-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: POST\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn lock(broker: &Mutex<Broker>) -> Result<std::sync::MutexGuard<'_, Broker>> {
    broker
        .lock()
        .map_err(|_| anyhow::anyhow!("the harness panicked"))
}

/// A port the OS says is free now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
