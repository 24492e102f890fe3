//! `broker-server store check|repair [--dir DIR]`: what is intact in the embedded store
//! and what is not, and a new store with everything intact (see
//! `broker_server::storage::embedded::tool`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use broker_server::internals::storage::embedded::tool;
use clap::{Args, Subcommand};

/// Check or repair the embedded store (`storage.dir`).
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Read every record and report what is intact and what is not; writes nothing.
    /// Exit status 0: intact, 1: damaged, 2: the store cannot be checked.
    Check(DirArgs),
    /// Write a new store with everything intact; the damaged file is kept, renamed to
    /// `broker.redb.damaged-<unix seconds>`. Stop the broker first.
    Repair(DirArgs),
}

#[derive(Debug, Args)]
struct DirArgs {
    /// The data directory (default: `storage.dir` of the configuration).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs the subcommand; `configured` is `storage.dir` of the configuration.
pub(crate) fn run(
    args: StoreArgs,
    configured: impl FnOnce() -> anyhow::Result<PathBuf>,
) -> ExitCode {
    let (Action::Check(dir) | Action::Repair(dir)) = &args.action;
    let dir = match dir.dir.clone().map_or_else(configured, Ok) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("broker-server store: {err:#}");
            return ExitCode::from(2);
        }
    };
    match args.action {
        Action::Check(_) => match tool::check(&dir) {
            Ok(report) => {
                print(&report);
                if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => {
                eprintln!("broker-server store check: {err}");
                ExitCode::from(2)
            }
        },
        Action::Repair(_) => match tool::repair(&dir) {
            Ok(report) => {
                print(&report);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("broker-server store repair: {err}");
                ExitCode::from(2)
            }
        },
    }
}

/// Prints a report; a closed standard output (`| head`) is not an error.
fn print(report: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stdout(), "{report}");
}
