//! `cargo xtask dev`: the dashboard's development loop. `trunk watch` rebuilds the
//! dashboard (debug) into `<target>/dev-dist` whenever `index.html`, `dashboard/`,
//! `web-client/` or `protocol/` change, and a debug `broker-server` serves that directory
//! (`http.dashboard_dir`, read on every request) next to its `/mqtt`, so the page and the
//! broker share one origin exactly as in production. `device-sim` publishes a few devices.
//! The URL it prints ends in `?dev`, which makes the page reload itself after each
//! rebuild (`dashboard/src/dev_reload.rs`).
//!
//! ```text
//!  trunk watch ──writes──► <target>/dev-dist ◄──reads── broker-server :8080 ◄── browser
//!                                                        ├─ /      the dashboard
//!  device-sim ──MQTT/TCP :1883──────────────────────────►└─ /mqtt  MQTT over WebSocket
//! ```
//!
//! Why not `trunk serve` with its `[[proxy]]` for `/mqtt`: trunk 0.21's WebSocket proxy
//! does not send the `Sec-WebSocket-Protocol: mqtt` answer back, and a browser that asked
//! for a subprotocol fails a handshake whose answer names none. Serving the build from the
//! broker needs no proxy at all.
//!
//! `--check` is the same loop on free ports, for the `browser-dev` step of `cargo xtask
//! test`: once the first build is served it runs the `dev_loop` module of
//! `dashboard/tests/browser/` (headless Chromium opens the page and must see the broker's
//! devices), then stops everything.

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    cmd::{self, Context},
    setup,
};

/// How long the first dashboard build may take (a cold debug build on 2 busy cores).
const FIRST_BUILD: Duration = Duration::from_secs(30 * 60);
/// How long the broker may take to listen.
const PATIENCE: Duration = Duration::from_secs(30);

/// `cargo xtask dev`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The broker's HTTP port (the page and `/mqtt`). Default 8080, as `cargo xtask run`.
    http: u16,
    /// The broker's MQTT over TCP port. Default 1883.
    mqtt: u16,
    /// How many simulated devices `device-sim` runs (0: no device-sim). Default 5.
    devices: u32,
    /// `--check`: free ports, run the dev-loop browser test once the page is served, stop.
    check: bool,
}

impl Options {
    /// Parses `[--http-port N] [--mqtt-port N] [--devices N] [--check]`.
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            http: 8080,
            mqtt: 1883,
            devices: 5,
            check: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .with_context(|| format!("{name} needs a value"))
                    .cloned()
            };
            match arg.as_str() {
                "--http-port" => options.http = value(arg)?.parse().context("--http-port")?,
                "--mqtt-port" => options.mqtt = value(arg)?.parse().context("--mqtt-port")?,
                "--devices" => options.devices = value(arg)?.parse().context("--devices")?,
                "--check" => options.check = true,
                other => bail!("`cargo xtask dev`: unknown argument `{other}`"),
            }
        }
        Ok(options)
    }
}

/// Runs the development loop until Ctrl-C (or, with `--check`, until the test ends).
pub(crate) fn dev(ctx: &Context, options: &Options) -> Result<ExitCode> {
    setup::setup(ctx)?;
    // As a CI step (`--check`), the binaries of CI's one native build; otherwise just the
    // two binaries the loop runs.
    let mut build = if options.check {
        crate::test::native_build(ctx)
    } else {
        ctx.cargo(&[
            "build",
            "-p",
            "broker-server",
            "-p",
            "native-client",
            "--bin",
            "broker-server",
            "--bin",
            "device-sim",
        ])
    };
    cmd::run(&mut build)?;
    let debug = ctx.target_dir().join("debug");
    let dir = ctx.target_dir().join("dev");
    let dist = ctx.target_dir().join("dev-dist");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // A build from an earlier session must not pass for this one's.
    let _ = std::fs::remove_dir_all(&dist);
    let (http, mqtt) = if options.check {
        (free_port()?, free_port()?)
    } else {
        (options.http, options.mqtt)
    };

    let mut children = Children {
        own_groups: options.check,
        list: Vec::new(),
    };
    let mut trunk = ctx.trunk(&["watch", "--dist"]);
    trunk.arg(&dist);
    children.spawn("trunk watch", trunk)?;

    let mut broker = Command::new(debug.join("broker-server"));
    broker
        .arg("--config")
        .arg(ctx.root.join("broker-server/broker.toml"))
        .args(["--tcp", &format!("127.0.0.1:{mqtt}")])
        .arg("--set")
        .arg(format!("http.listeners=[\"127.0.0.1:{http}\"]"))
        .arg("--set")
        .arg(format!(
            "http.dashboard_dir={:?}",
            dist.display().to_string()
        ))
        .arg("--set")
        .arg(format!(
            "storage.dir={:?}",
            dir.join("data").display().to_string()
        ))
        .arg("--set")
        .arg("sys.interval_secs=2")
        .stdout(log_file(&dir.join("broker.log"))?)
        .stderr(log_file(&dir.join("broker.log"))?);
    children.spawn("broker-server", broker)?;
    children.wait_for_port(http, "broker-server", PATIENCE)?;
    children.wait_for_port(mqtt, "broker-server", PATIENCE)?;

    if options.devices > 0 {
        let mut sim = Command::new(debug.join("device-sim"));
        sim.args(["-L", &format!("mqtt://127.0.0.1:{mqtt}")])
            .args(["--devices", &options.devices.to_string(), "--rate", "1"])
            .stdout(log_file(&dir.join("device-sim.log"))?)
            .stderr(log_file(&dir.join("device-sim.log"))?);
        children.spawn("device-sim", sim)?;
    }

    println!("\ncargo xtask dev: waiting for trunk's first build of the dashboard…");
    children.wait_for_file(&dist.join("index.html"), FIRST_BUILD)?;
    // `?dev`: the page reloads itself when trunk has written a new build.
    let url = format!("http://127.0.0.1:{http}/?dev");
    if options.check {
        // Only the `dev_loop` module of the dashboard's browser tests: the others need the
        // `browser` step's builds and skip themselves here anyway.
        let mut test = ctx.cargo(&[
            "test",
            // `--workspace`: the same build as `native_build`'s, not one with the
            // dashboard's features alone.
            "--workspace",
            "--test",
            "browser",
            "--",
            "dev_loop::",
        ]);
        test.env("DASHBOARD_DEV_URL", &url);
        if let Some(driver) = crate::test::chromedriver(ctx) {
            test.env("CHROMEDRIVER", driver);
        }
        let result = cmd::run(&mut test);
        children.stop();
        if result.is_err() {
            println!("--- broker log: {}", dir.join("broker.log").display());
        }
        return result.map(|()| ExitCode::SUCCESS);
    }

    println!("\nthe dashboard's development loop is up (loopback only):");
    println!("  dashboard:            {url}   (reloads itself after each rebuild)");
    println!("  MQTT over WebSocket:  ws://127.0.0.1:{http}/mqtt");
    println!("  MQTT over TCP:        mqtt://127.0.0.1:{mqtt}");
    println!(
        "  logs:                 {} and device-sim.log",
        dir.join("broker.log").display()
    );
    println!("  trunk rebuilds into   {}", dist.display());
    println!("  stop everything: Ctrl-C\n");
    // Ctrl-C reaches every child (they share the terminal's process group); if one of
    // them ends by itself, the loop is broken: stop the others and say which.
    let ended = children.wait_any();
    children.stop();
    match ended {
        Some((name, status)) if status.code().is_some() && !status.success() => {
            bail!("{name} exited with {status}")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The processes of the loop; stopped when dropped.
#[derive(Debug)]
struct Children {
    /// `--check`: each child leads a process group of its own, so that stopping it also
    /// stops what it started (trunk's cargo and wasm-bindgen). Interactively they stay in
    /// the terminal's group so Ctrl-C reaches them.
    own_groups: bool,
    /// By name.
    list: Vec<(&'static str, Child)>,
}

impl Children {
    fn spawn(&mut self, name: &'static str, mut command: Command) -> Result<()> {
        use std::os::unix::process::CommandExt as _;
        if self.own_groups {
            command.process_group(0);
        }
        println!("$ {}", cmd::display(&command));
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.list.push((name, child));
        Ok(())
    }

    /// The first child that has exited, if any, and how.
    fn exited(&mut self) -> Option<(&'static str, std::process::ExitStatus)> {
        self.list.iter_mut().find_map(|(name, child)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| (*name, status))
        })
    }

    /// Waits until a child exits (`None` if none is running).
    fn wait_any(&mut self) -> Option<(&'static str, std::process::ExitStatus)> {
        while !self.list.is_empty() {
            if let Some(ended) = self.exited() {
                return Some(ended);
            }
            thread::sleep(Duration::from_millis(200));
        }
        None
    }

    fn wait_for_port(&mut self, port: u16, what: &str, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some((name, status)) = self.exited() {
                bail!("{name} exited with {status} before {what} listened on port {port}");
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} does not listen on port {port} (is something else there? \
                     `cargo xtask dev --http-port N --mqtt-port N` picks others)"
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn wait_for_file(&mut self, path: &Path, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        while !path.exists() {
            if let Some((name, status)) = self.exited() {
                bail!(
                    "{name} exited with {status} before {} was written",
                    path.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} was not written in {patience:?}", path.display());
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// SIGTERM to each (its group with `own_groups`), then SIGKILL after a grace period.
    fn stop(&mut self) {
        for (_, child) in &self.list {
            let target = if self.own_groups {
                format!("-{}", child.id())
            } else {
                child.id().to_string()
            };
            let _ = Command::new("kill")
                .args(["-TERM", "--", &target])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + PATIENCE;
        for (_, child) in &mut self.list {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                if self.own_groups {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .status();
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.list.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A log file, appended to.
fn log_file(path: &PathBuf) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// A port the OS says is free now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
