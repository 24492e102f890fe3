//! `cargo xtask run --cluster [N]`: a local cluster to try on one machine: three NATS
//! JetStream servers, N `broker-server` nodes sharing them, `device-sim` publishing to
//! the first node and the dashboard of the second, so what devices send on one node
//! shows on another.
//!
//! ```text
//!              nats1 ──── nats2 ──── nats3         NATS cluster "mqtt-local", JetStream
//!   client     4222       4223       4224          (routes 6222-6224, monitor 8222-8224)
//!                 \         |         /
//!   broker        n1        n2  ...  nN            MQTT 1884.., HTTP 8081..
//!                 ^         |
//!        device-sim         dashboard http://127.0.0.1:8082/
//! ```
//!
//! Everything listens on 127.0.0.1 only. A preferred port that is taken is replaced by a
//! free one, and the summary prints the ports in use. Configurations, stores and NATS
//! logs go to `<target>/cluster/`, emptied at every start and kept after the run for a
//! look. Broker logs are shown on the terminal, each line prefixed with its node.
//!
//! Children run in their own process group, so Ctrl-C reaches only xtask, which stops
//! them in order (device-sim, the brokers, then NATS: SIGTERM, then SIGKILL after
//! [`STOP_PATIENCE`] or a second Ctrl-C). An error or a panic on the way kills and reaps
//! them all ([`Processes`]'s `Drop`). A child that exits while the cluster runs (a node
//! killed to watch failover) is reported, and the others keep running.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Context;
use crate::{run, setup};

mod plan;

use plan::{Plan, Ports};

/// Broker nodes when `--cluster` comes without a number.
pub(crate) const DEFAULT_NODES: usize = 3;
/// Most broker nodes: their preferred HTTP ports (8081..) stay below NATS's monitor
/// ports, and more would not fit a laptop anyway.
const MAX_NODES: usize = 16;
/// NATS servers: the smallest cluster whose JetStream survives the loss of one.
const NATS_SERVERS: usize = 3;
/// How long the NATS cluster, then each broker, may take to come up.
const START_PATIENCE: Duration = Duration::from_secs(60);
/// How long a child has to exit after SIGTERM before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(15);
/// Where everything listens.
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Simulated devices publishing to the first node.
const DEVICES: &str = "5";

/// The cluster's size from `cargo xtask run`'s arguments: `None` without `--cluster`
/// (the single broker), else the node count (`--cluster`, `--cluster N`,
/// `--cluster=N`; 2 to [`MAX_NODES`]).
pub(crate) fn parse_args(args: &[String]) -> Result<Option<usize>> {
    let mut nodes = None;
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--cluster") {
            Some("") => args
                .next_if(|next| !next.starts_with('-'))
                .map(String::as_str),
            Some(rest) if rest.starts_with('=') => Some(&rest[1..]),
            _ => bail!("`cargo xtask run` takes only `--cluster [N]`, got `{arg}`"),
        };
        let count = match value {
            None => DEFAULT_NODES,
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| (2..=MAX_NODES).contains(n))
                .with_context(|| {
                    format!("--cluster {text}: give a node count from 2 to {MAX_NODES}")
                })?,
        };
        nodes = Some(count);
    }
    Ok(nodes)
}

/// `cargo xtask run --cluster N`: setup, the release builds `cargo xtask run` makes,
/// then the cluster until Ctrl-C.
pub(crate) fn run(ctx: &Context, nodes: usize) -> Result<()> {
    // Until the signal handlers below, Ctrl-C ends xtask and the builds it runs at once.
    setup::setup(ctx)?;
    let artifacts = run::build(ctx)?;
    let dir = ctx.target_dir().join("cluster");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot empty {} (left by a last run)", dir.display()))?;
    }
    let plan = {
        let mut ports = Ports::default();
        Plan::new(dir, nodes, |preferred| ports.pick(preferred))?
        // `ports` drops here: the children bind what it held.
    };
    plan.write(&artifacts.dist)?;

    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("cannot handle Ctrl-C")?;
    }
    let mut processes = Processes::new(Arc::clone(&interrupted));
    start(ctx, &artifacts, &plan, &mut processes)?;
    print_summary(&plan, &processes);
    processes.supervise();
    processes.stop();
    println!("cluster stopped; its files stay in {}", plan.dir.display());
    Ok(())
}

/// Starts NATS, waits for JetStream, starts the first node, then the others, then
/// `device-sim` on the first node.
fn start(
    ctx: &Context,
    artifacts: &run::Artifacts,
    plan: &Plan,
    processes: &mut Processes,
) -> Result<()> {
    println!(
        "\nstarting {NATS_SERVERS} NATS servers ({}), files in {}",
        ctx.nats_server.display(),
        plan.dir.display()
    );
    for (i, server) in plan.nats.iter().enumerate() {
        let mut command = Command::new(&ctx.nats_server);
        command
            .arg("-c")
            .arg(plan.nats_config_path(i))
            .arg("-l")
            .arg(plan.nats_dir(i).join("nats.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        processes.spawn(&server.name, Tier::Nats, command, None)?;
    }
    processes.wait_until("the NATS cluster elects a JetStream leader", || {
        nats_ready(plan)
    })?;

    let broker = artifacts.binary("broker-server")?;
    for (i, node) in plan.nodes.iter().enumerate() {
        println!(
            "starting {}: broker-server --config {}",
            node.name,
            plan.node_config_path(i).display()
        );
        let mut command = Command::new(&broker);
        command
            .arg("--config")
            .arg(plan.node_config_path(i))
            .current_dir(plan.node_dir(i));
        processes.spawn(&node.name, Tier::Broker, command, Some(&node.name))?;
        // The first node creates the streams and buckets alone; the others find them.
        if i == 0 || i + 1 == plan.nodes.len() {
            let nodes = &plan.nodes[..=i];
            processes.wait_until("the broker nodes listen", || {
                nodes
                    .iter()
                    .all(|node| [node.mqtt, node.http].into_iter().all(listening))
            })?;
        }
    }

    let mut sim = Command::new(artifacts.binary("device-sim")?);
    sim.args(["--devices", DEVICES, "--rate", "1", "-L"])
        .arg(format!("mqtt://127.0.0.1:{}", plan.nodes[0].mqtt))
        .stdout(file(&plan.dir.join("device-sim.log"))?)
        .stderr(file(&plan.dir.join("device-sim.log"))?);
    processes.spawn("device-sim", Tier::Client, sim, None)?;
    Ok(())
}

/// Every address and command a user needs, once everything is up.
fn print_summary(plan: &Plan, processes: &Processes) {
    let mut out = String::new();
    let first = &plan.nodes[0];
    let second = &plan.nodes[1];
    let last = &plan.nodes[plan.nodes.len() - 1];
    let _ = writeln!(
        out,
        "\nthe cluster is up, on 127.0.0.1 only (files: {})",
        plan.dir.display()
    );
    let _ = writeln!(out, "  NATS     client                  monitoring");
    for server in &plan.nats {
        let _ = writeln!(
            out,
            "  {:<8} nats://127.0.0.1:{:<5}  http://127.0.0.1:{}/jsz   (pid {})",
            server.name,
            server.client,
            server.monitor,
            processes.pid(&server.name),
        );
    }
    let _ = writeln!(
        out,
        "  node     MQTT over TCP           HTTP (dashboard, /mqtt WebSocket, /metrics)"
    );
    for node in &plan.nodes {
        let _ = writeln!(
            out,
            "  {:<8} mqtt://127.0.0.1:{:<5}  http://127.0.0.1:{}/   (pid {})",
            node.name,
            node.mqtt,
            node.http,
            processes.pid(&node.name),
        );
    }
    let _ = writeln!(
        out,
        "\n  {DEVICES} simulated devices publish to {} under iot/{DEVICES}/# (log: {})",
        first.name,
        plan.dir.join("device-sim.log").display()
    );
    let _ = writeln!(
        out,
        "  watch them on {}'s dashboard:  http://127.0.0.1:{}/",
        second.name, second.http
    );
    let _ = writeln!(out, "  a message across nodes:");
    let _ = writeln!(
        out,
        "    mosquitto_sub -p {} -t 'demo/#' -v &          # subscribed on {}",
        first.mqtt, first.name
    );
    let _ = writeln!(
        out,
        "    mosquitto_pub -p {} -t demo/hi -m hello -q 1  # published on {}",
        last.mqtt, last.name
    );
    let _ = writeln!(
        out,
        "  failover: `kill <pid>` a node or one NATS server; the rest keep running"
    );
    let _ = writeln!(out, "  stop everything: Ctrl-C\n");
    print!("{out}");
}

/// `true` when something accepts connections on `port` at 127.0.0.1.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&(LOCALHOST, port).into(), Duration::from_millis(200)).is_ok()
}

/// `true` when every NATS server reports JetStream healthy and they all name the same
/// meta leader (`/healthz` alone says "ok" before a leader is elected).
fn nats_ready(plan: &Plan) -> bool {
    let mut leaders = Vec::new();
    for server in &plan.nats {
        match http_get(server.monitor, "/healthz?js-enabled-only=true") {
            Some((200, _)) => {}
            _ => return false,
        }
        match http_get(server.monitor, "/jsz").and_then(|(_, body)| meta_leader(&body)) {
            Some(leader) => leaders.push(leader),
            None => return false,
        }
    }
    leaders.windows(2).all(|pair| pair[0] == pair[1])
}

/// The meta leader's name in a `/jsz` answer, if one is elected.
fn meta_leader(jsz: &str) -> Option<String> {
    let meta = &jsz[jsz.find("\"meta_cluster\"")?..];
    let rest = meta[meta.find("\"leader\"")? + "\"leader\"".len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let name = &rest[..rest.find('"')?];
    (!name.is_empty()).then(|| name.to_owned())
}

/// A plain HTTP/1.0 GET on 127.0.0.1: the status and the body, `None` on any failure.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&(LOCALHOST, port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// What a child is, which decides the order of shutdown: clients first, NATS last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// A NATS server.
    Nats,
    /// A broker node.
    Broker,
    /// `device-sim`.
    Client,
}

/// One child process.
#[derive(Debug)]
struct Process {
    /// `nats1`, `n1`, `device-sim`: in messages.
    name: String,
    tier: Tier,
    child: Child,
    /// Set once it exited and was reaped.
    exited: Option<ExitStatus>,
}

/// Every process of the cluster. Dropping it kills and reaps those still running, so an
/// error or a panic never leaves orphans; [`Processes::stop`] is the gentle way.
#[derive(Debug)]
struct Processes {
    list: Vec<Process>,
    /// Set by SIGINT, SIGTERM or SIGHUP.
    interrupted: Arc<AtomicBool>,
}

impl Processes {
    fn new(interrupted: Arc<AtomicBool>) -> Self {
        Self {
            list: Vec::new(),
            interrupted,
        }
    }

    /// Starts `command` in its own process group (Ctrl-C reaches xtask only), its stdin
    /// closed; with `prefix` its output is shown on the terminal line by line behind
    /// `prefix | `, else it goes where `command` sends it.
    fn spawn(
        &mut self,
        name: &str,
        tier: Tier,
        mut command: Command,
        prefix: Option<&str>,
    ) -> Result<()> {
        command.process_group(0).stdin(Stdio::null());
        if prefix.is_some() {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        if let Some(prefix) = prefix {
            let prefix = format!("{prefix:>3} | ");
            if let Some(out) = child.stdout.take() {
                show_lines(prefix.clone(), out);
            }
            if let Some(err) = child.stderr.take() {
                show_lines(prefix, err);
            }
        }
        self.list.push(Process {
            name: name.to_owned(),
            tier,
            child,
            exited: None,
        });
        Ok(())
    }

    fn pid(&self, name: &str) -> u32 {
        self.list
            .iter()
            .find(|process| process.name == name)
            .map_or(0, |process| process.child.id())
    }

    /// Reaps what exited since the last call; returns their names and statuses.
    fn reap(&mut self) -> Vec<(String, ExitStatus)> {
        let mut exited = Vec::new();
        for process in self.list.iter_mut().filter(|p| p.exited.is_none()) {
            if let Ok(Some(status)) = process.child.try_wait() {
                process.exited = Some(status);
                exited.push((process.name.clone(), status));
            }
        }
        exited
    }

    /// Polls `ready` until it holds; fails when a child exits, on Ctrl-C, or after
    /// [`START_PATIENCE`].
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some((name, status)) = self.reap().into_iter().next() {
                bail!("{name} exited ({status}) while waiting until {what}");
            }
            if self.interrupted.load(Ordering::Relaxed) {
                bail!("interrupted while waiting until {what}");
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {START_PATIENCE:?} waiting until {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs until Ctrl-C (or SIGTERM, SIGHUP), or until every child has exited; reports
    /// each child that exits on the way.
    fn supervise(&mut self) {
        while !self.interrupted.load(Ordering::Relaxed) {
            for (name, status) in self.reap() {
                println!("xtask: {name} exited ({status}); the others keep running");
            }
            if self.list.iter().all(|process| process.exited.is_some()) {
                println!("xtask: every process has exited");
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("\nxtask: stopping the cluster (Ctrl-C again to kill at once)");
    }

    /// Stops the children tier by tier, clients first: SIGTERM, then SIGKILL for those
    /// still running after [`STOP_PATIENCE`] or at a second Ctrl-C.
    fn stop(&mut self) {
        self.interrupted.store(false, Ordering::Relaxed);
        for tier in [Tier::Client, Tier::Broker, Tier::Nats] {
            self.reap();
            let running = |p: &&mut Process| p.tier == tier && p.exited.is_none();
            for process in self.list.iter_mut().filter(running) {
                // `kill(1)`: std sends only SIGKILL, and the workspace forbids `unsafe`.
                let _ = Command::new("kill")
                    .args(["-s", "TERM", &process.child.id().to_string()])
                    .status();
            }
            let deadline = Instant::now() + STOP_PATIENCE;
            while self.list.iter_mut().any(|p| running(&p)) {
                self.reap();
                if Instant::now() >= deadline || self.interrupted.load(Ordering::Relaxed) {
                    self.kill(Some(tier));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILLs and reaps every running child (of `tier`, or all).
    fn kill(&mut self, tier: Option<Tier>) {
        for process in &mut self.list {
            if process.exited.is_none() && tier.is_none_or(|tier| tier == process.tier) {
                let _ = process.child.kill();
                process.exited = process.child.wait().ok();
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.kill(None);
    }
}

/// Copies `stream` to stdout line by line behind `prefix`, on its own thread, until
/// the child closes it.
fn show_lines(prefix: String, stream: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            println!("{prefix}{}", text.trim_end_matches(['\r', '\n']));
            line.clear();
        }
    });
}

#[cfg(test)]
mod tests;
