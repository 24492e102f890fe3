//! `device-sim`: simulated devices publishing over TCP (or TLS) following the Homie 5
//! convention (docs/ARCHITECTURE.md, "Device topic convention"), or with
//! `--convention ha` Home Assistant MQTT discovery (`ha.rs`), for the dashboard, demos
//! and load tests.
//!
//! ```text
//! device-sim --devices 20 --rate 5                    # 20 devices, 5 telemetry msg/s each
//! device-sim -L mqtt://broker:1883 --devices 500 --rate 1 --duration 60
//! device-sim --devices 5 --dropout-prob 0.01 --flap 30
//! device-sim --devices 3 --convention ha              # Home Assistant discovery
//! ```
//!
//! Each device is one tokio task with one connection (`sim-001`, `sim-002`, ...). It
//! publishes, retained, `{root}/5/{dev}/$state` (`init`, then `ready`; its will is
//! `lost`), `$description`, and its property values; telemetry (temperature,
//! humidity, power) drifts at `--rate` messages per second; it takes commands on
//! `{root}/5/{dev}/{node}/{prop}/set`, validates them, applies them, publishes the
//! value and its `$target`, and replies on the MQTT 5 response topic with the
//! correlation data echoed: `{"ok":true}` or `{"ok":false,"error":"..."}`.
//!
//! # Layout
//!
//! - `model`: properties, `$description`, drift, command validation.
//! - `device`: one device's connection loop.
//! - `ha`: the same device announced with Home Assistant discovery.
//! - this file: the command line, the fleet, the summary lines.

mod device;
mod ha;
mod model;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use native_client::{Client, ConnectOptions, ProtocolVersion, QoS, ReasonCode, ReconnectOptions};
use tokio::sync::watch;

use device::Fleet;

/// Simulate Homie 5 devices publishing to an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "device-sim", version, disable_version_flag = true)]
struct Cli {
    /// Print version.
    #[arg(long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Broker URL: mqtt://host:port or mqtts://host:port.
    #[arg(short = 'L', long, default_value = "mqtt://localhost:1883")]
    url: String,
    /// Number of devices (one connection each).
    #[arg(short = 'n', long, default_value_t = 1)]
    devices: u32,
    /// Telemetry messages per second per device.
    #[arg(short = 'r', long, default_value_t = 1.0)]
    rate: f64,
    /// Topic root of the Homie convention.
    #[arg(long, default_value = "iot")]
    root: String,
    /// Device id prefix: ids are `{prefix}-001`, `{prefix}-002`, ...
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Number of the first device.
    #[arg(long, default_value_t = 1)]
    first: u32,
    /// QoS of telemetry messages.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// MQTT version: 5 or 311 (3.1.1 devices cannot reply to commands).
    #[arg(short = 'V', long = "protocol-version", default_value = "5")]
    protocol_version: String,
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,
    /// Probability per second that a device drops its connection without DISCONNECT
    /// (its will publishes `lost`), then comes back after about --dropout-secs.
    #[arg(long = "dropout-prob", default_value_t = 0.0)]
    dropout_prob: f64,
    /// Seconds a dropped-out device stays away (randomised ±50%).
    #[arg(long = "dropout-secs", default_value_t = 5.0)]
    dropout_secs: f64,
    /// Flapping: every device drops its connection about every SECS seconds and comes
    /// right back.
    #[arg(long, value_name = "SECS")]
    flap: Option<f64>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Seed of the simulation (values, phases, dropouts).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Device convention: `homie` (Homie 5) or `ha` (Home Assistant MQTT discovery,
    /// state under `{root}/ha/{dev}`; --flap applies to Homie only).
    #[arg(long, value_enum, default_value_t = Convention::Homie)]
    convention: Convention,
    /// Home Assistant discovery prefix (with --convention ha).
    #[arg(long = "ha-prefix", default_value = "homeassistant")]
    ha_prefix: String,
}

/// The topic convention the devices follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Convention {
    /// Homie 5.
    Homie,
    /// Home Assistant MQTT discovery.
    Ha,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a redirected log gets no escape sequences.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("device-sim: cannot start: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("device-sim: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(cli.devices > 0, "--devices must be at least 1");
    anyhow::ensure!(
        cli.rate > 0.0 && cli.rate.is_finite(),
        "--rate must be a positive number"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&cli.dropout_prob),
        "--dropout-prob must be between 0 and 1"
    );
    let version = match cli.protocol_version.as_str() {
        "5" | "mqttv5" => ProtocolVersion::V5,
        "311" | "mqttv311" => ProtocolVersion::V3_1_1,
        other => anyhow::bail!("unknown protocol version `{other}` (use 5 or 311)"),
    };
    let mut connect = ConnectOptions::new(cli.url.clone())
        .version(version)
        .keep_alive(Duration::from_secs(30))
        .reconnect(ReconnectOptions::backoff(
            Duration::from_millis(500),
            Duration::from_secs(10),
        ));
    if let Some(username) = &cli.username {
        connect = connect.credentials(username.clone(), cli.password.clone().unwrap_or_default());
    }
    let qos = QoS::from_u8(cli.qos).unwrap_or_default();
    let fleet = Arc::new(Fleet {
        connect,
        root: cli.root.clone(),
        rate: cli.rate,
        telemetry_qos: qos,
        dropout_prob: cli.dropout_prob,
        dropout: Duration::from_secs_f64(cli.dropout_secs.max(0.1)),
        flap: cli.flap.map(|secs| Duration::from_secs_f64(secs.max(0.5))),
        ha_prefix: (cli.convention == Convention::Ha).then(|| cli.ha_prefix.clone()),
        sent: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        dropouts: AtomicU64::new(0),
    });
    // Fail fast, with the cause, when the broker cannot be reached at all.
    let probe = Client::connect(
        fleet
            .connect
            .clone()
            .client_id(format!("{}-probe", cli.prefix)),
    )
    .await
    .with_context(|| format!("cannot connect to {}", cli.url))?;
    probe.disconnect(ReasonCode::Success).await.ok();

    let ids: Vec<String> = (cli.first..cli.first + cli.devices)
        .map(|n| format!("{}-{n:03}", cli.prefix))
        .collect();
    println!(
        "device-sim: {} devices ({}..{}) -> {} | {} | {} msg/s each, {} msg/s total | QoS {} | MQTT {}{}{}",
        ids.len(),
        ids[0],
        ids[ids.len() - 1],
        cli.url,
        match cli.convention {
            Convention::Homie => format!("root {}/5", cli.root),
            Convention::Ha => format!("HA discovery {}/, state {}/ha", cli.ha_prefix, cli.root),
        },
        cli.rate,
        cli.rate * f64::from(cli.devices),
        cli.qos,
        if version.is_v5() { "5.0" } else { "3.1.1" },
        if cli.dropout_prob > 0.0 {
            format!(" | dropout {}/s", cli.dropout_prob)
        } else {
            String::new()
        },
        cli.flap
            .map(|s| format!(" | flap every {s}s"))
            .unwrap_or_default(),
    );

    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in ids.into_iter().enumerate() {
        tasks.spawn(device::run(
            fleet.clone(),
            id,
            cli.seed.wrapping_mul(1_000_003) + n as u64,
            stopped.clone(),
        ));
    }
    let started = Instant::now();
    let until = async {
        match cli.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = until => {}
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    println!(
        "device-sim: stopped after {:.1}s: {} telemetry messages, {} commands ({} rejected), {} dropouts",
        started.elapsed().as_secs_f64(),
        fleet.sent.load(Ordering::Relaxed),
        fleet.commands.load(Ordering::Relaxed),
        fleet.rejected.load(Ordering::Relaxed),
        fleet.dropouts.load(Ordering::Relaxed),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
