//! `mqtt`: publish and subscribe from a shell, like `mosquitto_pub` and `mosquitto_sub`.
//!
//! Until the native-client issue lands this only answers `--help` and `--version`; any
//! other invocation says so and exits with status 2.

use std::process::ExitCode;

use clap::Parser;

/// Command line of `mqtt`.
#[derive(Debug, Parser)]
#[command(
    name = "mqtt",
    version,
    about = "Publish and subscribe to an MQTT broker from a shell"
)]
struct Cli {}

fn main() -> ExitCode {
    let Cli {} = Cli::parse();
    eprintln!("mqtt: not yet implemented; see the README");
    ExitCode::from(2)
}
