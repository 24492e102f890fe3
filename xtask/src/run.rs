//! `cargo xtask run`: setup, release builds of the native binaries and the dashboard, then
//! the product: `broker-server` with the repository's `broker-server/broker.toml` and
//! `device-sim` publishing five simulated devices to it, and the dashboard served by the
//! broker's HTTP listener at <http://localhost:8080/>.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::{
    cmd::{self, Context},
    setup,
};

/// The native packages `cargo xtask run` builds in release mode...
const PACKAGES: &[&str] = &["broker-server", "native-client"];
/// ...and the binaries they produce.
const BINARIES: &[&str] = &["broker-server", "mqtt", "device-sim"];

/// What [`build`] produced.
#[derive(Debug)]
pub(crate) struct Artifacts {
    /// Release binaries, by name.
    binaries: Vec<(&'static str, PathBuf)>,
    /// trunk's output: the dashboard the broker serves.
    pub(crate) dist: PathBuf,
}

impl Artifacts {
    /// The path of the release binary `name`.
    pub(crate) fn binary(&self, name: &str) -> Result<PathBuf> {
        self.binaries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, path)| path.clone())
            .ok_or_else(|| anyhow::anyhow!("{name} was not built"))
    }
}

pub(crate) fn run(ctx: &Context) -> Result<()> {
    setup::setup(ctx)?;
    let artifacts = build(ctx)?;
    start(ctx, &artifacts)
}

/// Release builds of [`PACKAGES`] and of the dashboard (trunk), shared by the single
/// broker and `--cluster`.
pub(crate) fn build(ctx: &Context) -> Result<Artifacts> {
    let mut cargo = ctx.cargo(&["build", "--release"]);
    for package in PACKAGES {
        cargo.args(["-p", package]);
    }
    let mut trunk = ctx.trunk(&["build", "--release"]);
    for command in [&mut cargo, &mut trunk] {
        let (result, took) = cmd::timed(|| cmd::run(command));
        result?;
        println!("built in {}", cmd::seconds(took));
    }

    let release = ctx.target_dir().join("release");
    let artifacts = Artifacts {
        binaries: BINARIES
            .iter()
            .map(|&name| (name, release.join(name)))
            .collect(),
        dist: ctx.root.join("dist"),
    };
    for path in artifacts
        .binaries
        .iter()
        .map(|(_, path)| path)
        .chain([&artifacts.dist])
    {
        if !path.exists() {
            bail!("the build succeeded but {} is missing", path.display());
        }
    }
    Ok(artifacts)
}

/// Starts the product from the built artifacts: `broker-server` (its log on this
/// terminal; it serves the dashboard from `dist/`) and `device-sim` with a few simulated
/// devices publishing to it, until Ctrl-C, which reaches both and shuts them down
/// gracefully.
fn start(ctx: &Context, artifacts: &Artifacts) -> Result<()> {
    let binary = |name: &str| artifacts.binary(name);
    let config = ctx.root.join("broker-server").join("broker.toml");
    println!("\nstarting broker-server with {}", config.display());
    let mut broker = std::process::Command::new(binary("broker-server")?)
        .arg("--config")
        .arg(&config)
        .arg("--set")
        .arg(format!(
            "http.dashboard_dir={:?}",
            artifacts.dist.display().to_string()
        ))
        .current_dir(&ctx.root)
        .spawn()
        .map_err(|err| anyhow::anyhow!("cannot start broker-server: {err}"))?;
    for port in [1883, 8080] {
        if !wait_for_port(port, &mut broker) {
            let _ = broker.kill();
            bail!(
                "broker-server did not start listening on port {port} (is another broker \
                 running there? Debian's mosquitto service, which `cargo xtask setup` \
                 installs for tests, listens on 1883 on machines with systemd: \
                 `systemctl disable --now mosquitto` stops it)"
            );
        }
    }
    let sim = std::process::Command::new(binary("device-sim")?)
        .args([
            "--devices",
            "5",
            "--rate",
            "1",
            "-L",
            "mqtt://127.0.0.1:1883",
        ])
        .spawn();
    println!("\nthe broker is up (all interfaces): MQTT over TCP on port 1883, HTTP on 8080");
    println!("  dashboard:            http://localhost:8080/");
    println!("  MQTT over WebSocket:  ws://localhost:8080/mqtt");
    println!("  metrics, health:      http://localhost:8080/metrics, /healthz, /readyz");
    println!("  5 simulated devices publish under iot/5/#; watch them:");
    println!(
        "    mosquitto_sub -t 'iot/5/#' -v      (or: target/release/mqtt sub -t 'iot/5/#' -v)"
    );
    println!("  stop everything: Ctrl-C\n");
    let status = broker.wait();
    if let Ok(mut sim) = sim {
        let _ = sim.kill();
        let _ = sim.wait();
    }
    let status = status.map_err(|err| anyhow::anyhow!("broker-server: {err}"))?;
    // Killed by the Ctrl-C that ends a run: not an error.
    if !status.success() && status.code().is_some() {
        bail!("broker-server exited with {status}");
    }
    Ok(())
}

/// Waits until something listens on `port` at localhost, or the broker exits.
fn wait_for_port(port: u16, broker: &mut std::process::Child) -> bool {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = broker.try_wait() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
