//! The brokers the scenario set runs against: ours (in-process, see
//! [`crate::common::TestBroker`]) and a real Eclipse Mosquitto.
//!
//! Each mosquitto is started by the test from a generated configuration in the test's
//! own directory: `/usr/sbin/mosquitto` (Debian package `mosquitto`, installed by
//! `cargo xtask setup`), one plain or TLS listener on a free loopback port
//! (`listener <port> 127.0.0.1`), anonymous access, and never a WebSocket listener. A
//! system mosquitto service, if the package started one on port 1883, is not used.
//! Without mosquitto these tests fail: they do not skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker_server::Config;

use crate::common::{PATIENCE, Pki, TempDir, TestBroker, test_config};

/// Which broker a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `broker-server`, in this test's runtime.
    Ours,
    /// Eclipse Mosquitto, a child process.
    Mosquitto,
}

/// How the broker under test is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// One plain TCP listener, sessions in memory.
    Plain,
    /// One plain TCP listener, sessions written to disk (they survive a restart).
    Durable,
    /// One TLS listener with the [`Pki`]'s server certificate; `mtls`: clients must
    /// present a certificate issued by its CA.
    Tls { mtls: bool },
}

/// A broker of either [`Kind`], stopped and restarted on the same port and directory.
pub struct Broker {
    setup: Setup,
    dir: TempDir,
    ours: Option<(Config, Option<TestBroker>)>,
    mosquitto: Option<Mosquitto>,
    port: u16,
}

impl Broker {
    /// Starts a broker of `kind` set up as `setup` (with `pki` for TLS).
    pub async fn start(kind: Kind, setup: Setup, pki: Option<&Pki>) -> Self {
        let dir = TempDir::new(&format!("{kind:?}-{setup:?}").to_lowercase());
        let tls_files = match setup {
            Setup::Tls { .. } => Some(
                pki.expect("a TLS broker needs a PKI")
                    .write_server_files(dir.path()),
            ),
            _ => None,
        };
        let mut broker = Self {
            setup,
            dir,
            ours: None,
            mosquitto: None,
            port: 0,
        };
        match kind {
            Kind::Ours => {
                let mut config = test_config("127.0.0.1:0".parse().unwrap());
                match setup {
                    Setup::Plain => {}
                    Setup::Durable => {
                        config.storage = broker_server::config::StorageConfig {
                            backend: broker_server::config::Backend::Redb,
                            dir: broker.dir.path().join("data"),
                            ..Default::default()
                        };
                        std::fs::create_dir_all(&config.storage.dir).unwrap();
                    }
                    Setup::Tls { mtls } => {
                        let [ca, cert, key] = tls_files.unwrap();
                        config.listeners.tcp = Vec::new();
                        config.listeners.tls = vec!["127.0.0.1:0".parse().unwrap()];
                        config.tls.cert = Some(cert);
                        config.tls.key = Some(key);
                        if mtls {
                            config.tls.client_ca = Some(ca);
                            config.tls.require_client_cert = true;
                        }
                    }
                }
                let running = TestBroker::start_with(config.clone()).await;
                broker.port = running.addr.port();
                // A restart binds the port this start was given.
                let listeners = if config.listeners.tcp.is_empty() {
                    &mut config.listeners.tls
                } else {
                    &mut config.listeners.tcp
                };
                *listeners = vec![running.addr];
                broker.ours = Some((config, Some(running)));
            }
            Kind::Mosquitto => {
                let (global, listener) = match setup {
                    Setup::Plain => ("persistence false".to_owned(), String::new()),
                    Setup::Durable => (
                        format!(
                            "persistence true\npersistence_location {}/",
                            broker.dir.path().display()
                        ),
                        String::new(),
                    ),
                    Setup::Tls { mtls } => {
                        let [ca, cert, key] = tls_files.unwrap();
                        (
                            "persistence false".to_owned(),
                            format!(
                                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {mtls}",
                                ca.display(),
                                cert.display(),
                                key.display(),
                            ),
                        )
                    }
                };
                broker.port = free_port();
                broker.mosquitto = Some(Mosquitto::start(
                    broker.dir.path(),
                    broker.port,
                    &global,
                    &listener,
                ));
            }
        }
        broker
    }

    /// A plain broker of `kind`.
    pub async fn plain(kind: Kind) -> Self {
        Self::start(kind, Setup::Plain, None).await
    }

    /// The URL clients connect to: `mqtt://` or, for TLS, `mqtts://127.0.0.1:…` (the
    /// test certificate names `localhost` and 127.0.0.1).
    pub fn url(&self) -> String {
        let scheme = match self.setup {
            Setup::Tls { .. } => "mqtts",
            _ => "mqtt",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the broker as a service manager does (mosquitto: SIGTERM, so it writes its
    /// database; ours: an orderly shutdown).
    pub async fn stop(&mut self) {
        if let Some((_, running)) = &mut self.ours
            && let Some(running) = running.take()
        {
            running.stop().await;
        }
        if let Some(mosquitto) = &mut self.mosquitto {
            mosquitto.stop().await;
        }
    }

    /// Starts the stopped broker again: same port, same configuration, same data.
    pub async fn restart(&mut self) {
        if let Some((config, running)) = &mut self.ours {
            assert!(running.is_none(), "stop the broker before restarting it");
            *running = Some(TestBroker::start_with(config.clone()).await);
        }
        if let Some(mosquitto) = &mut self.mosquitto {
            mosquitto.restart();
        }
    }

    /// What the broker logged, to explain a failure (mosquitto only; ours logs through
    /// the test's output).
    pub fn log_text(&self) -> String {
        self.mosquitto
            .as_ref()
            .map(Mosquitto::log_text)
            .unwrap_or_default()
    }

    /// Stops it and waits for the shutdown (ours; mosquitto is killed when dropped).
    pub async fn finish(mut self) {
        self.stop().await;
    }
}

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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process with a generated configuration in `dir`; killed when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto on `port` with the listener options `listener_options` and the
    /// global options `global_options`, and waits until it accepts connections.
    pub fn start(dir: &Path, port: u16, global_options: &str, listener_options: &str) -> Self {
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

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops mosquitto with SIGTERM, as a service manager does: with persistence it
    /// writes its database before exiting.
    pub async fn stop(&mut self) {
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
    pub fn restart(&mut self) {
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
