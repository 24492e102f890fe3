//! The plan of a local cluster: names, ports and directories, and the configuration
//! files made from them. Pure but for [`Plan::write`] and [`Ports`], so its tests check
//! the files without starting anything.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::{LOCALHOST, NATS_SERVERS};

/// The ports, names and directories of one local cluster: everything the configuration
/// files are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Where configurations, stores and logs go (`<target>/cluster`).
    pub(super) dir: PathBuf,
    /// The NATS servers, `nats1`..`nats3`.
    pub(super) nats: Vec<NatsServer>,
    /// The broker nodes, `n1`..`nN`.
    pub(super) nodes: Vec<Node>,
}

/// One NATS server's name and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NatsServer {
    /// Its `server_name`, as JetStream reports leaders and peers.
    pub(super) name: String,
    /// Client port: what the brokers connect to.
    pub(super) client: u16,
    /// Cluster route port: the servers connect to one another here.
    pub(super) route: u16,
    /// HTTP monitoring port (`/healthz`, `/jsz`), which [`nats_ready`] polls.
    pub(super) monitor: u16,
}

/// One broker node's name and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// `cluster.node`.
    pub(super) name: String,
    /// `listeners.tcp`.
    pub(super) mqtt: u16,
    /// `http.listeners`: dashboard, `/mqtt`, `/metrics`.
    pub(super) http: u16,
}

impl Plan {
    /// Names everything for `nodes` broker nodes; `port` turns each preferred port into
    /// the one to use (the port itself when free).
    pub(super) fn new(
        dir: PathBuf,
        nodes: usize,
        mut port: impl FnMut(u16) -> Result<u16>,
    ) -> Result<Self> {
        let mut nats = Vec::with_capacity(NATS_SERVERS);
        for i in 0..NATS_SERVERS as u16 {
            nats.push(NatsServer {
                name: format!("nats{}", i + 1),
                client: port(4222 + i)?,
                route: port(6222 + i)?,
                monitor: port(8222 + i)?,
            });
        }
        let nodes = (1..=nodes as u16)
            .map(|i| {
                Ok(Node {
                    name: format!("n{i}"),
                    mqtt: port(1883 + i)?,
                    http: port(8080 + i)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { dir, nats, nodes })
    }

    /// `nats://127.0.0.1:<client>` of every server: a node given all of them reconnects
    /// to another when its server goes away.
    pub(super) fn nats_urls(&self) -> Vec<String> {
        self.nats
            .iter()
            .map(|server| format!("nats://127.0.0.1:{}", server.client))
            .collect()
    }

    pub(super) fn nats_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.nats[i].name)
    }

    pub(super) fn nats_config_path(&self, i: usize) -> PathBuf {
        self.nats_dir(i).join("nats.conf")
    }

    pub(super) fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.nodes[i].name)
    }

    pub(super) fn node_config_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("broker.toml")
    }

    /// NATS server `i`'s configuration: JetStream with its own store, and routes to all
    /// three servers (a server skips the route to itself).
    pub(super) fn nats_config(&self, i: usize) -> String {
        let server = &self.nats[i];
        let routes: String = self
            .nats
            .iter()
            .map(|other| format!("    \"nats-route://127.0.0.1:{}\"\n", other.route))
            .collect();
        format!(
            "# NATS server {name} of the local cluster of `cargo xtask run --cluster`.\n\
             server_name: {name}\n\
             host: \"127.0.0.1\"\n\
             port: {client}\n\
             http: \"127.0.0.1:{monitor}\"\n\
             # Escaped MQTT topics can be three times their length: the brokers'\n\
             # cluster.nats.max_control_line matches this.\n\
             max_control_line: 16KB\n\
             jetstream {{\n  store_dir: {store}\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n\
             cluster {{\n  name: \"mqtt-local\"\n  listen: \"127.0.0.1:{route}\"\n  routes: [\n{routes}  ]\n}}\n",
            name = server.name,
            client = server.client,
            monitor = server.monitor,
            route = server.route,
            store = quoted(&self.nats_dir(i).join("jetstream")),
        )
    }

    /// Broker node `i`'s configuration: its ports and store, and `[cluster]` on the
    /// three NATS servers; every other key keeps its default.
    pub(super) fn node_config(&self, i: usize, dist: &Path) -> String {
        let node = &self.nodes[i];
        let urls: Vec<String> = self
            .nats_urls()
            .iter()
            .map(|url| format!("\"{url}\""))
            .collect();
        format!(
            "# Broker node {name} of the local cluster of `cargo xtask run --cluster`.\n\
             # Every key not set here has its default (broker-server/broker.toml).\n\n\
             [listeners]\ntcp = [\"127.0.0.1:{mqtt}\"]\n\n\
             [storage]\ndir = {data}\n\n\
             [http]\nlisteners = [\"127.0.0.1:{http}\"]\ndashboard_dir = {dist}\n\n\
             [cluster]\nbackend = \"nats\"\nnode = \"{name}\"\n\
             # One copy of every stream and bucket on each NATS server.\nreplicas = {replicas}\n\n\
             [cluster.nats]\nurls = [{urls}]\nmax_control_line = 16384\n",
            name = node.name,
            mqtt = node.mqtt,
            http = node.http,
            data = quoted(&self.node_dir(i).join("data")),
            dist = quoted(dist),
            replicas = NATS_SERVERS,
            urls = urls.join(", "),
        )
    }

    /// Creates the directories and writes every configuration file.
    pub(super) fn write(&self, dist: &Path) -> Result<()> {
        for i in 0..self.nats.len() {
            std::fs::create_dir_all(self.nats_dir(i).join("jetstream"))?;
            write_file(&self.nats_config_path(i), &self.nats_config(i))?;
        }
        for i in 0..self.nodes.len() {
            std::fs::create_dir_all(self.node_dir(i))?;
            write_file(&self.node_config_path(i), &self.node_config(i, dist))?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A path as a double-quoted string that TOML and NATS's configuration format both read
/// the same way.
pub(super) fn quoted(path: &Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Picks ports: the preferred one when it can be bound on 127.0.0.1, else a free one.
/// Holds every port picked until dropped, so no two picks collide.
#[derive(Debug, Default)]
pub(super) struct Ports {
    held: Vec<TcpListener>,
}

impl Ports {
    pub(super) fn pick(&mut self, preferred: u16) -> Result<u16> {
        let listener = TcpListener::bind((LOCALHOST, preferred))
            .or_else(|_| TcpListener::bind((LOCALHOST, 0)))
            .context("no free port on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        if port != preferred {
            println!("port {preferred} is taken: using {port} instead");
        }
        self.held.push(listener);
        Ok(port)
    }
}
