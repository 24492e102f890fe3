//! `device-sim`: simulated Homie 5 devices that publish to a broker over TCP.
//!
//! Until the native-client issue lands this only answers `--help` and `--version`; any
//! other invocation says so and exits with status 2.

use std::process::ExitCode;

use clap::Parser;

/// Command line of `device-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "device-sim",
    version,
    about = "Simulate Homie 5 devices publishing to an MQTT broker over TCP"
)]
struct Cli {}

fn main() -> ExitCode {
    let Cli {} = Cli::parse();
    eprintln!("device-sim: not yet implemented; see the README");
    ExitCode::from(2)
}
