//! The local cluster's configuration files are checked by the programs that read them:
//! `nats-server -t` for the NATS configurations, broker-server's own loader for the node
//! configurations. The examples in `deploy/cluster/` are checked the same way.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use broker_server::Config;
use broker_server::cluster::config::ClusterBackend;

use super::plan::*;
use super::*;

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plan whose ports are the preferred ones.
fn local_plan(dir: &Path, nodes: usize) -> Plan {
    Plan::new(dir.to_path_buf(), nodes, Ok).expect("plan")
}

/// The `nats-server` setup installs (`$NATS_SERVER_BIN`, as `cargo xtask test` sets
/// it), or `None` when it is missing and tools are not required.
fn nats_server() -> Option<PathBuf> {
    let bin = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Context::new().expect("context").nats_server);
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("MQTT_WEB_REQUIRE_TOOLS").is_none(),
        "nats-server not found at {}: run `cargo xtask setup`",
        bin.display()
    );
    eprintln!(
        "skipped: no nats-server at {} (cargo xtask setup)",
        bin.display()
    );
    None
}

/// Loads a node configuration as `broker-server --config` does, and checks its
/// `[cluster]` section with the checks a `nats` node runs at start. The text is loaded
/// with `backend = "none"` in place of `"nats"` first, then checked as `nats`: the
/// loader refuses `nats` for as long as the backplane is not merged, and everything else
/// (unknown keys, types, listeners, paths) is checked the same either way.
fn load_node(path: &Path) -> Config {
    let text = std::fs::read_to_string(path).unwrap();
    let nats = "backend = \"nats\"";
    assert_eq!(text.matches(nats).count(), 1, "{}", path.display());
    let single = text.replace(nats, "backend = \"none\"");
    let mut config =
        Config::from_toml(&single, path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    config.cluster.backend = ClusterBackend::Nats;
    if let Err(err) = config.cluster.validate() {
        panic!("{}: {err}", path.display());
    }
    config
}

/// Asserts that `nats-server -t` accepts `config` with the environment `env`, else fails
/// with the server's own message.
fn assert_nats_accepts(bin: &Path, config: &Path, env: &[(&str, &str)]) {
    let output = Command::new(bin)
        .envs(env.iter().copied())
        .arg("-t")
        .arg("-c")
        .arg(config)
        .output()
        .expect("run nats-server -t");
    assert!(
        output.status.success(),
        "nats-server -t -c {}: {}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn run_arguments() {
    let parse = |args: &[&str]| {
        parse_args(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .map_err(|err| err.to_string())
    };
    assert_eq!(parse(&[]), Ok(None));
    assert_eq!(parse(&["--cluster"]), Ok(Some(DEFAULT_NODES)));
    assert_eq!(parse(&["--cluster", "5"]), Ok(Some(5)));
    assert_eq!(parse(&["--cluster=2"]), Ok(Some(2)));
    for bad in [
        &["--cluster", "1"][..],
        &["--cluster=17"],
        &["--cluster", "x"],
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.contains("from 2 to 16"), "{bad:?}: {err}");
    }
    let err = parse(&["--nodes"]).unwrap_err();
    assert!(err.contains("only `--cluster [N]`"), "{err}");
}

#[test]
fn preferred_ports_are_the_documented_ones_and_distinct() {
    let plan = local_plan(Path::new("/tmp/c"), 4);
    let names: Vec<&str> = plan.nats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nats1", "nats2", "nats3"]);
    assert_eq!(
        plan.nats_urls(),
        [
            "nats://127.0.0.1:4222",
            "nats://127.0.0.1:4223",
            "nats://127.0.0.1:4224"
        ]
    );
    assert_eq!(
        plan.nodes[3],
        Node {
            name: "n4".into(),
            mqtt: 1887,
            http: 8084
        }
    );
    let mut ports: Vec<u16> = plan
        .nats
        .iter()
        .flat_map(|s| [s.client, s.route, s.monitor])
        .chain(plan.nodes.iter().flat_map(|n| [n.mqtt, n.http]))
        .collect();
    let count = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), count, "a port is used twice");

    let largest = local_plan(Path::new("/tmp/c"), MAX_NODES);
    let highest_http = largest.nodes.iter().map(|n| n.http).max().unwrap();
    assert!(
        highest_http < 8222,
        "node HTTP ports reach NATS's monitor ports"
    );
}

#[test]
fn a_taken_port_is_replaced_by_a_free_one() {
    let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut ports = Ports::default();
    let first = ports.pick(taken_port).unwrap();
    assert_ne!(first, taken_port);
    // The port just picked is held, so it is not picked again.
    let second = ports.pick(first).unwrap();
    assert_ne!(second, first);
}

#[test]
fn nats_configurations_pass_nats_server_check() {
    let dir = TempDir::new("cluster-nats");
    let plan = local_plan(&dir.0, 3);
    plan.write(Path::new("/nonexistent/dist")).unwrap();
    for i in 0..NATS_SERVERS {
        let text = std::fs::read_to_string(plan.nats_config_path(i)).unwrap();
        assert!(
            text.contains(&format!("server_name: nats{}", i + 1)),
            "{text}"
        );
        for server in &plan.nats {
            let route = format!("nats-route://127.0.0.1:{}", server.route);
            assert!(text.contains(&route), "no route {route} in\n{text}");
        }
    }
    let Some(bin) = nats_server() else { return };
    for i in 0..NATS_SERVERS {
        assert_nats_accepts(&bin, &plan.nats_config_path(i), &[]);
    }
    // The check is real: a key NATS does not know is refused.
    let bad = dir.0.join("bad.conf");
    std::fs::write(&bad, plan.nats_config(0) + "no_such_key: 1\n").unwrap();
    let status = Command::new(&bin)
        .arg("-t")
        .arg("-c")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "nats-server -t accepted an unknown key"
    );
}

#[test]
fn node_configurations_load_in_broker_server() {
    let dir = TempDir::new("cluster-nodes");
    let plan = local_plan(&dir.0, 3);
    let dist = dir.0.join("dist with \"quotes\"");
    plan.write(&dist).unwrap();
    for (i, node) in plan.nodes.iter().enumerate() {
        let config = load_node(&plan.node_config_path(i));
        assert_eq!(config.cluster.node.as_deref(), Some(node.name.as_str()));
        assert_eq!(config.cluster.nats.urls, plan.nats_urls());
        assert_eq!(config.cluster.replicas, 3);
        assert_eq!(config.cluster.nats.max_control_line, 16 * 1024);
        assert_eq!(
            config.listeners.tcp,
            [format!("127.0.0.1:{}", node.mqtt).parse().unwrap()]
        );
        assert_eq!(
            config.http.listeners,
            [format!("127.0.0.1:{}", node.http).parse().unwrap()]
        );
        assert_eq!(config.http.dashboard_dir.as_deref(), Some(dist.as_path()));
        assert_eq!(config.storage.dir, plan.node_dir(i).join("data"));
    }
}

/// `deploy/cluster/`: every node configuration loads, every NATS configuration passes
/// `nats-server -t`, and they name the same servers and nodes.
#[test]
fn deploy_examples_are_valid() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster");
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let path = deploy.join(format!("{name}.toml"));
        let config = load_node(&path);
        assert_eq!(config.cluster.node.as_deref(), Some(name));
        assert_eq!(config.cluster.nats.urls.len(), 3, "{}", path.display());
        nodes.push(config);
    }
    assert!(
        nodes
            .windows(2)
            .all(|pair| pair[0].cluster.nats == pair[1].cluster.nats),
        "the nodes disagree on [cluster.nats]"
    );
    // The nodes reach the servers that nats.conf routes between.
    let nats_conf = std::fs::read_to_string(deploy.join("nats.conf")).unwrap();
    for url in &nodes[0].cluster.nats.urls {
        let host = url.trim_start_matches("nats://").split(':').next().unwrap();
        let route = format!("nats-route://{host}:6222");
        assert!(nats_conf.contains(&route), "nats.conf has no route {route}");
    }
    let Some(bin) = nats_server() else { return };
    // The unit sets the server name and the brokers' password.
    assert_nats_accepts(
        &bin,
        &deploy.join("nats.conf"),
        &[
            ("NATS_SERVER_NAME", "nats2"),
            ("NATS_BROKER_PASSWORD", "secret"),
        ],
    );
}

#[test]
fn jsz_meta_leader() {
    let jsz =
        r#"{"server_id":"X","meta_cluster":{"name":"mqtt-local","leader": "nats2","peer":"ab"}}"#;
    assert_eq!(meta_leader(jsz).as_deref(), Some("nats2"));
    let electing = r#"{"meta_cluster":{"name":"mqtt-local","cluster_size":3}}"#;
    assert_eq!(meta_leader(electing), None);
    assert_eq!(meta_leader(r#"{"meta_cluster":{"leader":""}}"#), None);
}

#[test]
fn paths_are_quoted_for_toml_and_nats() {
    assert_eq!(quoted(Path::new("/a b/c")), r#""/a b/c""#);
    assert_eq!(quoted(Path::new(r#"/x"y\z"#)), r#""/x\"y\\z""#);
}
