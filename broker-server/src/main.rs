//! `broker-server`: parse the command line, load the configuration, start logging, run;
//! or `broker-server passwd …`: edit a password file; or `broker-server store …`: check
//! or repair the embedded store.

mod passwd_cli;
mod store_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use broker_server::config::{Config, LogFormat, Override};
use clap::{Parser, Subcommand};

/// The mqtt-web MQTT broker.
#[derive(Debug, Parser)]
#[command(version, about = "The mqtt-web MQTT broker (MQTT 3.1, 3.1.1 and 5.0)")]
struct Cli {
    /// TOML configuration file (see broker.toml in the repository for every key).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// MQTT over TCP address, replacing `listeners.tcp` (repeatable).
    #[arg(long = "tcp", value_name = "ADDR")]
    tcp: Vec<String>,
    /// Log filter, e.g. `debug` (`log.level`).
    #[arg(long)]
    log_level: Option<String>,
    /// Override any key: `--set limits.max_connections=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, change or delete users of a password file (auth.password_file).
    Passwd(passwd_cli::PasswdArgs),
    /// Check or repair the embedded store (storage.dir).
    Store(store_cli::StoreArgs),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Passwd(args)) => {
            return match passwd_cli::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("broker-server passwd: {err:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Store(args)) => {
            return store_cli::run(args, || Ok(load(&cli)?.storage.dir));
        }
        None => {}
    }
    let config = match load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("broker-server: {err}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("broker-server: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(broker_server::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("broker-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut overrides = Override::from_env(std::env::vars());
    if !cli.tcp.is_empty() {
        let list = cli
            .tcp
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        overrides.push(Override {
            source_name: "--tcp".into(),
            key: "listeners.tcp".into(),
            value: format!("[{list}]"),
        });
    }
    if let Some(level) = &cli.log_level {
        overrides.push(Override {
            source_name: "--log-level".into(),
            key: "log.level".into(),
            value: format!("{level:?}"),
        });
    }
    for assignment in &cli.set {
        overrides.push(Override::parse_assignment("--set", assignment)?);
    }
    Ok(match &cli.config {
        Some(path) => Config::load_file(path, &overrides)?,
        None => Config::load(None, &overrides)?,
    })
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour only on a terminal: journald and log files would get escape sequences.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Every connection is a file descriptor: the soft limit (often 1024) is raised to the
/// hard limit, as far as the system allows, and the result logged.
fn raise_open_file_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(
            limit,
            "open-file limit (connections the process can hold, less a few)"
        ),
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
}
