//! `mqtt bench`: load a broker and measure it, like emqtt-bench and `mqttx bench`.
//!
//! ```text
//! mqtt bench conn    -c 1000 --rate 500              # CONNECT→CONNACK latency, refusals
//! mqtt bench storm   -c 19000 --persistent           # all connect at once, sessions resumed
//! mqtt bench pub     -c 4 -m 10000 -q 1              # publishers, flat out or at -r
//! mqtt bench sub     -c 2 -t 'bench/#' --duration 30 # subscribers counting what arrives
//! mqtt bench fanin   -c 8 -m 10000 -q 1 --json       # 8 publishers → 1 subscriber
//! mqtt bench fanout  -c 10 -m 10000                  # 1 publisher → 10 subscribers
//! mqtt bench latency -r 1000 --duration 10           # publish→delivery latency
//! mqtt bench fanin   -p 1885 --sub-url 127.0.0.1:1883 # publishers on one node, subscriber on another
//! ```
//!
//! The data path does not use native-client's `Client`: each connection is a [`Link`]
//! (one socket, `protocol::encode`/`decode`, one read and one write buffer), PUBLISH
//! packets are encoded once and patched, and writes are batched, so the tool costs
//! the broker's side of the machine as little as possible. By default the whole tool
//! runs on one thread (`--threads 1`): it never takes more than one core, and its CPU
//! use is in every report.
//!
//! # Layout
//!
//! - `mod.rs`: the command line and the runtime.
//! - `scenario`: what each subcommand connects and runs, and the [`Report`] it builds.
//! - `storm`: the reconnect storm, its own connect loop and figures.
//! - `publisher`, `subscriber`: the two data-path loops, and the payload stamp.
//! - `link`: [`Link`], the lean connection; `tls`, `ws`: its transports.
//! - `report`: histograms, `/proc` readings, text and JSON output.

mod link;
mod publisher;
mod report;
mod scenario;
mod storm;
mod subscriber;

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use native_client::{BrokerUrl, ProtocolVersion, QoS};

use crate::args::{parse_qos, parse_version};
use crate::failure::Failure;
use link::Target;
use report::Report;

/// `mqtt bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open connections at a rate and hold them: CONNECT→CONNACK latency, refusals,
    /// time until all are connected.
    #[command(disable_help_flag = true)]
    Conn(ConnArgs),
    /// Reconnect storm: `-c` clients (default 19000) connect at once, as after a
    /// broker restart or a network flap; `--persistent` establishes sessions, drops
    /// them and storms back. Time to all, handshake latencies, failures by reason.
    #[command(disable_help_flag = true)]
    Storm(storm::StormArgs),
    /// Publishers (`-c`, default 1) sending `-m` messages each (default 10000), flat
    /// out or at `-r` msgs/s in total, to `<topic>/<i>` (topic default `bench`).
    #[command(name = "pub", disable_help_flag = true)]
    Pub(TrafficArgs),
    /// Subscribers (`-c`, default 1) on `-t` (default `bench/#`) counting and timing
    /// what arrives, until `-m` messages each, `--duration`, `--timeout` or Ctrl-C.
    #[command(name = "sub", disable_help_flag = true)]
    Sub(TrafficArgs),
    /// Fan-in: publishers (`-c`, default 8) on `<topic>/<i>` → one subscriber on
    /// `<topic>/#`; `-m` messages each (default 10000).
    #[command(disable_help_flag = true)]
    Fanin(TrafficArgs),
    /// Fan-out: one publisher on `<topic>/fanout` → subscribers (`-c`, default 10);
    /// `-m` messages (default 10000). Rates count deliveries.
    #[command(disable_help_flag = true)]
    Fanout(TrafficArgs),
    /// Publish→delivery latency at a fixed rate (`-r`, default 1000 msgs/s) for
    /// `--duration` (default 10 s) after `--warmup` (default 1 s): one publisher, one
    /// subscriber.
    #[command(disable_help_flag = true)]
    Latency(TrafficArgs),
}

/// Options of every scenario: where to connect and how to report.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port [default: 1883, or 8883 with TLS].
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Broker URL instead of host and port: mqtt://, mqtts://, ws:// or wss://.
    #[arg(short = 'L', long)]
    url: Option<String>,
    /// MQTT version: 5 or 311.
    #[arg(short = 'V', long = "protocol-version", default_value = "5", value_parser = parse_version)]
    version: ProtocolVersion,
    /// User name (every client).
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (every client).
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long, default_value_t = 60)]
    keepalive: u16,
    /// Seconds allowed for each connection (TCP, TLS, WebSocket and CONNACK).
    #[arg(long = "connect-timeout", default_value_t = 10.0)]
    connect_timeout: f64,
    /// PEM file of the CA(s) to trust for mqtts:// and wss://.
    #[arg(long)]
    cafile: Option<PathBuf>,
    /// Do not verify the broker's certificate (test brokers only).
    #[arg(long)]
    insecure: bool,
    /// Print one JSON object with every figure instead of text.
    #[arg(long)]
    json: bool,
    /// A name for this run, repeated in the report (e.g. the broker's).
    #[arg(long)]
    label: Option<String>,
    /// The broker's process id: adds its CPU (from /proc/PID/stat) and RSS to the report.
    #[arg(long = "broker-pid")]
    broker_pid: Option<u32>,
    /// Runtime threads of the tool; 1 (default) keeps it to one core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Hard limit on the whole run in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// `mqtt bench conn`.
#[derive(Debug, Args)]
struct ConnArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Connections to open.
    #[arg(short = 'c', long = "count", default_value_t = 100)]
    count: u64,
    /// New connections per second (0: as fast as --concurrency allows).
    #[arg(short = 'r', long, default_value_t = 500.0)]
    rate: f64,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Seconds to hold the connections open once all are up (PINGREQ at ¾ keep alive).
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
    /// Subscribe each connection to this filter (QoS 0) once connected, `{i}` replaced
    /// by the connection's number (e.g. `idle/{i}`): idle memory with one subscription.
    #[arg(long)]
    subscribe: Option<String>,
}

/// Options of the publish/subscribe scenarios; the defaults that differ per scenario
/// are in each subcommand's description.
#[derive(Debug, Args)]
struct TrafficArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Clients: publishers (pub, fanin) or subscribers (sub, fanout, latency).
    #[arg(short = 'c', long = "clients")]
    clients: Option<u64>,
    /// Messages per publisher (sub: per subscriber, then stop; 0 = no limit).
    #[arg(short = 'm', long = "count")]
    count: Option<u64>,
    /// Total publish rate in msgs/s, split over the publishers (0 = flat out).
    #[arg(short = 'r', long)]
    rate: Option<f64>,
    /// Seconds to send (after the warmup); ends the run even if -m is not reached.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds at the start whose messages are not timed or counted in the rates.
    #[arg(long)]
    warmup: Option<f64>,
    /// QoS of the publications and subscriptions.
    #[arg(short = 'q', long, default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Payload bytes (at least 20: send time, publisher and sequence number).
    #[arg(short = 's', long = "size", default_value_t = 64)]
    size: usize,
    /// Topic prefix (sub: topic filter).
    #[arg(short = 't', long)]
    topic: Option<String>,
    /// QoS 1 and 2: unacknowledged messages per publisher (MQTT 5: at most the
    /// broker's Receive Maximum). MQTT 3.1.1 has no such limit on the wire: keep this at
    /// or under the broker's (mosquitto 2.0 acknowledges QoS 2 messages beyond its
    /// max_inflight_messages, 20 by default, and drops them; they show as lost).
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// Seconds a subscriber waits for stragglers after the publishers are done;
    /// what has not arrived then counts as lost.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Subscribers connect to these brokers instead, in turn (URLs or host:port,
    /// comma-separated or repeated): publishers on one node of a cluster and
    /// subscribers on others. Same version, credentials and TLS options as the rest.
    #[arg(long = "sub-url", value_delimiter = ',')]
    sub_url: Vec<String>,
}

impl CommonArgs {
    fn broker_url(&self) -> Result<BrokerUrl, Failure> {
        let tls = self.cafile.is_some() || self.insecure;
        crate::args::broker_url(self.url.as_deref(), &self.host, self.port, tls)
    }

    /// `--cafile` (else the system's CAs) and `--insecure` as native-client's options.
    fn tls_options(&self) -> Result<native_client::TlsOptions, Failure> {
        let mut options =
            native_client::TlsOptions::default().danger_accept_invalid_certs(self.insecure);
        if let Some(path) = &self.cafile {
            let pem = std::fs::read(path).map_err(|err| {
                Failure::Usage(format!("cannot read CA file {}: {err}", path.display()))
            })?;
            options = options.ca_pem(pem);
        }
        Ok(options)
    }

    fn target(&self) -> Result<Target, Failure> {
        self.target_at(self.broker_url()?)
    }

    /// The subscribers' targets: `--sub-url` (host:port taken as mqtt://), else the
    /// publishers' one.
    fn sub_targets(&self, sub_urls: &[String]) -> Result<Vec<Target>, Failure> {
        if sub_urls.is_empty() {
            return Ok(vec![self.target()?]);
        }
        sub_urls
            .iter()
            .map(|text| {
                let text = if text.contains("://") {
                    text.clone()
                } else {
                    format!("mqtt://{text}")
                };
                let url = text
                    .parse()
                    .map_err(|err| Failure::Usage(format!("--sub-url {text}: {err}")))?;
                self.target_at(url)
            })
            .collect()
    }

    /// A target at `url` with the other connection options.
    fn target_at(&self, url: BrokerUrl) -> Result<Target, Failure> {
        let tls = if url.scheme.is_tls() {
            Some(
                self.tls_options()?
                    .client_config()
                    .map_err(|err| Failure::Usage(format!("{err:#}")))?,
            )
        } else {
            None
        };
        if self.password.is_some() && self.username.is_none() {
            return Err(Failure::Usage(
                "a password (-P) needs a user name (-u)".into(),
            ));
        }
        Ok(Target {
            username: self.username.clone().or_else(|| url.username.clone()),
            password: self.password.clone().or_else(|| url.password.clone()),
            url,
            tls,
            version: self.version,
            keep_alive: self.keepalive,
            connect_timeout: secs(self.connect_timeout)?,
        })
    }

    fn timeout(&self) -> Result<Duration, Failure> {
        secs(self.timeout)
    }
}

/// A duration from seconds given on the command line.
fn secs(value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Failure::Usage(format!("`{value}` is not a number of seconds")))
}

/// Runs `mqtt bench` on its own runtime (one thread unless `--threads`), prints the
/// report.
pub(crate) fn run(args: BenchArgs) -> Result<(), Failure> {
    let common = match &args.scenario {
        Scenario::Conn(conn) => &conn.common,
        Scenario::Storm(storm) => &storm.common,
        Scenario::Pub(t)
        | Scenario::Sub(t)
        | Scenario::Fanin(t)
        | Scenario::Fanout(t)
        | Scenario::Latency(t) => &t.common,
    };
    let json = common.json;
    let threads = common.threads.max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|err| Failure::Usage(format!("cannot start: {err}")))?;
    let report: Report = runtime.block_on(async move {
        match args.scenario {
            Scenario::Conn(conn) => scenario::connections(conn).await,
            Scenario::Storm(args) => storm::storm(args).await,
            Scenario::Pub(t) => scenario::traffic(scenario::Kind::Pub, t).await,
            Scenario::Sub(t) => scenario::traffic(scenario::Kind::Sub, t).await,
            Scenario::Fanin(t) => scenario::traffic(scenario::Kind::Fanin, t).await,
            Scenario::Fanout(t) => scenario::traffic(scenario::Kind::Fanout, t).await,
            Scenario::Latency(t) => scenario::traffic(scenario::Kind::Latency, t).await,
        }
    })?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}
