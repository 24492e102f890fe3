//! `mqtt`: publish and subscribe from a shell, like `mosquitto_pub` and `mosquitto_sub`
//! (same short options: `-h -p -t -m -q -r -u -P -i -V -C -W -v ...`).
//!
//! ```text
//! mqtt sub -t 'iot/5/+/$state' -v
//! mqtt pub -t iot/5/sim-001/lamp/switch/set -m true -q 1 --response-topic dash/me/res/sim-001
//! mqtt bench fanin -c 8 -m 10000 -q 1 --json
//! mqtt history 'iot/5/+/+/+' --since 10m
//! ```
//!
//! Exit codes: 0 success; 1 usage error or no connection (refused, unreachable,
//! TLS, not authorized); 2 timeout; 3 the broker refused an operation or the
//! connection ended. See `failure.rs`.
//!
//! # Layout
//!
//! - `args`: the connection options both subcommands share.
//! - `publish`: `mqtt pub`; `subscribe`: `mqtt sub` and its output formats.
//! - `history`: `mqtt history`, the broker's recorded history of a filter.
//! - `failure`: errors and their exit codes.
//! - `bench/`: `mqtt bench`, the load generator (its own lean connection, not `Client`).

mod args;
mod bench;
mod failure;
mod history;
mod publish;
mod subscribe;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use failure::Failure;

/// Publish and subscribe to an MQTT broker from a shell.
#[derive(Debug, Parser)]
#[command(
    name = "mqtt",
    version,
    about = "Publish and subscribe to an MQTT broker from a shell (like mosquitto_pub/sub)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish a message (like mosquitto_pub).
    #[command(name = "pub", disable_help_flag = true)]
    Pub(publish::PubArgs),
    /// Subscribe and print messages (like mosquitto_sub).
    #[command(name = "sub", disable_help_flag = true)]
    Sub(subscribe::SubArgs),
    /// Load a broker and measure it (like emqtt-bench): conn, pub, sub, fanin, fanout,
    /// latency.
    Bench(bench::BenchArgs),
    /// Print the broker's recorded history of the topics matching a filter (MQTT 5).
    #[command(disable_help_flag = true)]
    History(history::HistoryArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are not errors; everything else is a usage error (1).
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let debug = match &cli.command {
        Command::Pub(args) => args.conn.debug,
        Command::Sub(args) => args.conn.debug,
        Command::History(args) => args.conn.debug,
        Command::Bench(_) => false,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a redirected log gets no escape sequences.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_env_filter(if debug { "debug" } else { "warn" })
        .init();
    let result = match cli.command {
        Command::Pub(args) => on_one_thread(publish::run(args)),
        Command::Sub(args) => on_one_thread(subscribe::run(args)),
        Command::History(args) => on_one_thread(history::run(args)),
        // `mqtt bench` builds its own runtime (`--threads`).
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("mqtt: {failure}");
            failure.exit_code()
        }
    }
}

/// Runs `pub` or `sub` on a current-thread runtime: one connection needs no more.
fn on_one_thread(command: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::Usage(format!("cannot start: {err}")))?
        .block_on(command)
}
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn protocol_versions_accept_mosquitto_spellings() {
        use native_client::ProtocolVersion;
        for (text, version) in [
            ("5", ProtocolVersion::V5),
            ("mqttv5", ProtocolVersion::V5),
            ("311", ProtocolVersion::V3_1_1),
            ("mqttv311", ProtocolVersion::V3_1_1),
            ("31", ProtocolVersion::V3_1),
        ] {
            assert_eq!(super::args::parse_version(text), Ok(version));
        }
        assert!(super::args::parse_version("4.0").is_err());
    }
}
