//! `cargo xtask run`: setup, release builds of the native binaries and the dashboard, then
//! the product.
//!
//! Until the broker exists this stops after the builds and says what was built. The
//! broker-server issue fills in [`start`]: spawn `broker-server` serving `dist/`, spawn
//! `device-sim` against it, print the dashboard URL, and stop both on Ctrl-C.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::{
    cmd::{self, Context},
    setup,
};

/// The native packages `cargo xtask run` builds in release mode...
const PACKAGES: &[&str] = &["broker-server", "native-client"];
/// ...and the binaries they produce.
const BINARIES: &[&str] = &["broker-server", "mqtt", "device-sim"];

/// What [`build`] produced.
#[derive(Debug)]
struct Artifacts {
    /// Release binaries, by name.
    binaries: Vec<(&'static str, PathBuf)>,
    /// trunk's output: the dashboard the broker serves.
    dist: PathBuf,
}

pub(crate) fn run(ctx: &Context) -> Result<()> {
    setup::setup(ctx)?;
    let artifacts = build(ctx)?;
    start(ctx, &artifacts)
}

fn build(ctx: &Context) -> Result<Artifacts> {
    let mut cargo = ctx.cargo(&["build", "--release"]);
    for package in PACKAGES {
        cargo.args(["-p", package]);
    }
    let mut trunk = ctx.command("trunk");
    trunk.args(["build", "--release"]);
    for command in [&mut cargo, &mut trunk] {
        let (result, took) = cmd::timed(|| cmd::run(command));
        result?;
        println!("built in {}", cmd::seconds(took));
    }

    let release = ctx.target_dir().join("release");
    let artifacts = Artifacts {
        binaries: BINARIES
            .iter()
            .map(|&name| (name, release.join(name)))
            .collect(),
        dist: ctx.root.join("dist"),
    };
    for path in artifacts
        .binaries
        .iter()
        .map(|(_, path)| path)
        .chain([&artifacts.dist])
    {
        if !path.exists() {
            bail!("the build succeeded but {} is missing", path.display());
        }
    }
    Ok(artifacts)
}

/// Starts the product from the built artifacts.
fn start(_ctx: &Context, artifacts: &Artifacts) -> Result<()> {
    println!("\nbuilt:");
    for (name, path) in &artifacts.binaries {
        println!("  {name:<14} {}", path.display());
    }
    println!("  {:<14} {}", "dashboard", artifacts.dist.display());
    println!(
        "\nbroker-server is not implemented yet: it arrives with the broker-server issue, \
         and then `cargo xtask run` starts it serving the dashboard, with device-sim \
         publishing to it."
    );
    Ok(())
}
