//! `cargo xtask test`: setup, then every check CI runs, in a fixed order, then a summary.
//!
//! The steps after setup do not depend on each other (each builds what it needs), so a
//! failed step does not stop the later ones unless `--fail-fast` is given; a failed setup
//! stops everything. The last line is `xtask: N passed, N failed` (`, N skipped` when
//! steps were skipped), and the exit status is non-zero when any step failed.
//!
//! None of the steps binds a fixed port: wasm-bindgen-test-runner serves the test page and
//! starts chromedriver on ports the OS picks, and the browser harness (`browser.rs`)
//! picks free ports for the broker and its control endpoint.

use std::{
    path::Path,
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{Result, bail};

use crate::{
    browser,
    cmd::{self, Context},
    package, setup,
};

const WASM: &str = "wasm32-unknown-unknown";

/// The fuzz step's target triple: given explicitly so `RUSTFLAGS` instrument the fuzz
/// binaries and not the build scripts.
const FUZZ_TARGET: &str = "x86_64-unknown-linux-gnu";

/// What `cargo fuzz build --sanitizer none` passes to rustc: libFuzzer's coverage
/// counters and comparison tracing, `cfg(fuzzing)`, debug assertions on.
const FUZZ_RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions";

/// How long the fuzz step runs each target: a smoke run, not a search.
const FUZZ_SECONDS: u32 = 5;

/// Threads per test binary in the `test` and `test-redb` steps. The broker's integration
/// tests spend their time waiting on sockets, timers, child processes and NATS, not
/// computing: on CI's 2 cores, 8 at once take a third of the time the default 2 take
/// (each test has its own broker, ports, directories and NATS prefixes, so they do not
/// share state).
const TEST_THREADS: &str = "8";

/// Tests in a module named `alone` measure time or memory: they run after the others,
/// one at a time (`broker-server/tests/it/main.rs`).
const ALONE: &str = "::alone::";

/// The one native build of the workspace: every target of every crate (test binaries,
/// benches and examples too), and the binaries the browser and package steps run
/// (`target/debug/broker-server`, `device-sim`). Each native cargo command of CI selects
/// the whole workspace so that all of them resolve the same dependency features and
/// reuse one build: `cargo build -p broker-server` alone resolves other features (no
/// dev-dependencies) and compiles most of the dependency tree a second time. Under
/// `cargo xtask test` it is also clippy's run (see `Context::lint_while_compiling`).
pub(crate) fn native_build(ctx: &Context) -> Command {
    ctx.cargo(&["test", "--workspace", "--no-run", "--all-targets"])
}

/// Parsed `cargo xtask test` arguments.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// `--quick`: skip the slow steps (fuzz, package-tests, browser, browser-dev), which a
    /// quick local loop can leave to CI.
    quick: bool,
    /// `--fail-fast`: stop at the first failed step.
    fail_fast: bool,
    /// `--list`: print the steps and exit.
    list: bool,
    /// Step names or parts of names to run; empty means all.
    filters: Vec<String>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        for arg in args {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--fail-fast" => options.fail_fast = true,
                "--list" => options.list = true,
                flag if flag.starts_with('-') => {
                    bail!("unknown option `{flag}` (see `cargo xtask help`)")
                }
                filter => options.filters.push(filter.to_owned()),
            }
        }
        Ok(options)
    }

    fn skip_reason(&self, step: &Step) -> Option<&'static str> {
        if !self.filters.is_empty() && !self.filters.iter().any(|f| step.name.contains(f)) {
            Some("not selected")
        } else if self.quick && step.slow {
            Some("--quick")
        } else {
            None
        }
    }
}

/// One CI step: one or more commands that must all succeed.
struct Step {
    name: &'static str,
    /// Skipped by `--quick`.
    slow: bool,
    /// With the browser harness ([`browser::Harness`]): these commands run first, then
    /// the harness starts and `commands` run with its environment.
    prepare: Option<fn(&Context) -> Vec<Command>>,
    commands: fn(&Context) -> Vec<Command>,
}

/// The steps, in the order they run: cheap checks first, the browser last.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        slow: false,
        prepare: None,
        commands: |ctx| vec![ctx.cargo(&["fmt", "--all", "--", "--check"])],
    },
    Step {
        name: "clippy",
        // Not slow: the `test` step needs this build anyway.
        slow: false,
        prepare: None,
        // `cargo clippy --workspace --all-targets -- -D warnings`, as the native build
        // that every later step reuses: `xtask test` compiles the workspace's crates
        // through clippy-driver (`Context::lint_while_compiling`), so the lints run while
        // the test binaries are built, and no separate check of the dependencies is
        // needed. A lint therefore also fails the `test` step's build.
        commands: |ctx| vec![native_build(ctx)],
    },
    Step {
        name: "clippy-wasm",
        slow: false,
        prepare: None,
        // The browser crates for the target they ship on. web-client and the dashboard
        // are linted where they are compiled for it (`Context::lint_while_compiling`):
        // web-client's library by `package`, the dashboard's library and binary by
        // `trunk`, both libraries and their in-browser tests by `browser`. `protocol` is
        // only ever a dependency there, so it is linted here, as a library (its proptest
        // and criterion dev-dependencies are native-only).
        commands: |ctx| {
            vec![ctx.cargo(&[
                "clippy", "-p", "protocol", "--lib", "--target", WASM, "--", "-D", "warnings",
            ])]
        },
    },
    Step {
        name: "test",
        slow: false,
        prepare: None,
        // Unit, integration and doc tests of every crate, natively; then the tests
        // that measure, alone.
        commands: |ctx| {
            vec![
                ctx.cargo(&[
                    "test",
                    "--workspace",
                    "--",
                    "--test-threads",
                    TEST_THREADS,
                    "--skip",
                    ALONE,
                ]),
                ctx.cargo(&[
                    "test",
                    "--workspace",
                    "--test",
                    "it",
                    "--",
                    "--test-threads",
                    "1",
                    ALONE,
                ]),
            ]
        },
    },
    Step {
        name: "test-redb",
        slow: false,
        prepare: None,
        // The broker's integration suite again, every test on the embedded redb store
        // instead of memory (`tests/it/common`'s `test_config`), in a temporary
        // directory under target/ that each run starts afresh.
        commands: |ctx| {
            let tmp = ctx.target_dir().join("test-redb-tmp");
            // A leftover of the last run; a failure to remove it shows in the test run.
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::create_dir_all(&tmp);
            // The cluster tests' nodes keep their sessions in memory whatever the
            // variable says (the cluster's state is in NATS): they run once, in `test`,
            // like the `alone` ones, which measure time and memory, not storage.
            // `--workspace --test it` and not `-p broker-server`: the build of the `test`
            // step (see `native_build`); the other crates' `it` suites run again too, for
            // seconds, where `-p` would compile the broker a second time for a minute.
            let mut command = ctx.cargo(&[
                "test",
                "--workspace",
                "--test",
                "it",
                "--",
                "--skip",
                "cluster::",
                "--skip",
                "nats::",
                "--skip",
                ALONE,
                "--test-threads",
                TEST_THREADS,
            ]);
            command
                .env("MQTT_WEB_TEST_STORAGE", "redb")
                .env("TMPDIR", tmp);
            vec![command]
        },
    },
    Step {
        name: "fuzz",
        slow: true,
        prepare: None,
        // The fuzz targets (`protocol/fuzz`) build on the pinned stable toolchain with
        // libFuzzer's coverage instrumentation (no sanitizer: that needs nightly), then
        // each runs for a few seconds from its seed corpus, so they cannot rot. Longer
        // runs: protocol/fuzz/README.md.
        commands: |ctx| {
            let fuzz = ctx.root.join("protocol/fuzz");
            let target_dir = ctx.target_dir().join("fuzz");
            let mut build = ctx.cargo(&["build", "--release", "--bins", "--target", FUZZ_TARGET]);
            build
                .current_dir(&fuzz)
                .env("CARGO_TARGET_DIR", &target_dir)
                .env("RUSTFLAGS", FUZZ_RUSTFLAGS)
                // A workspace of its own, outside clippy's run (instrumented, release).
                .env_remove("RUSTC_WORKSPACE_WRAPPER")
                .env_remove("CLIPPY_ARGS");
            let mut commands = vec![build];
            for target in ["decode", "decode_stream", "session"] {
                // New inputs go to target/, never into the checked-in seed corpus.
                let found = target_dir.join("corpus").join(target);
                let _ = std::fs::create_dir_all(&found);
                let mut run = ctx.command(
                    &target_dir
                        .join(FUZZ_TARGET)
                        .join("release")
                        .join(target)
                        .to_string_lossy(),
                );
                run.arg(format!("-max_total_time={FUZZ_SECONDS}"))
                    .arg("-print_final_stats=1")
                    .arg(found)
                    .arg(fuzz.join("corpus").join(target));
                commands.push(run);
            }
            commands
        },
    },
    Step {
        name: "package",
        slow: false,
        prepare: None,
        // web-client as an npm package (`package.rs`): the web-release wasm through
        // wasm-bindgen and wasm-opt, the entry points and declarations of
        // web-client/npm/, `tsc --noEmit` of an example against them, then `npm pack`
        // into target/npm/.
        commands: |ctx| vec![ctx.cargo(&["xtask", "package"])],
    },
    Step {
        name: "package-tests",
        slow: true,
        // The packed package installed from its tarball (web-client/npm/tests/): a plain
        // page, a module Web Worker, a SharedWorker shared by two tabs and a `vite build`
        // app in headless Chromium (playwright-core driving Debian's Chromium), Node 20
        // with `ws`, Node 22 (setup's) with its global WebSocket and no `ws`, and the
        // MQTT.js-compatible entry point running MQTT.js's README examples, all against a
        // broker-server the harness starts (`browser.rs`).
        prepare: Some(|ctx| vec![native_build(ctx), ctx.cargo(&["xtask", "package"])]),
        commands: |ctx| {
            let mut node =
                ctx.command_with("node", &["--test", "web-client/npm/tests/package.test.mjs"]);
            node.env(
                "MQTT_WEB_PACKAGE",
                package::tarball(ctx).unwrap_or_default(),
            );
            // Node 22 (setup's npm copy): the package under a global WebSocket, no `ws`.
            if let Ok(node22) = setup::node22_bin(ctx) {
                node.env("MQTT_WEB_NODE22", node22);
            }
            vec![node]
        },
    },
    Step {
        name: "trunk",
        slow: false,
        prepare: None,
        // The release pipeline users get (cargo, wasm-bindgen, wasm-opt -Oz), into dist/.
        commands: |ctx| vec![ctx.trunk(&["build", "--release"])],
    },
    Step {
        name: "browser",
        slow: true,
        // web-client and the dashboard in headless Chromium against a real broker.
        // Before the harness starts: the broker and device-sim binaries, a debug trunk
        // build of the dashboard, and the JavaScript API's example page (the wasm as
        // pages get it, profile web-release, through `wasm-bindgen --target web` into
        // web-client/examples/pkg). Then, with the broker up (see `browser.rs`): the
        // `#[wasm_bindgen_test]`s, whose cargo runner is wasm-bindgen-test-runner
        // (.cargo/config.toml; it starts chromedriver from $CHROMEDRIVER on a free port
        // with the root webdriver.json's capabilities), the native test that drives
        // the example page with fantoccini, and the dashboard's end-to-end test (which
        // starts its own broker, device-sim and chromedriver).
        prepare: Some(|ctx| {
            let mut bindgen = ctx.command("wasm-bindgen");
            bindgen
                .args(["--target", "web", "--weak-refs", "--out-dir"])
                .arg(ctx.root.join("web-client/examples/pkg"))
                .arg(
                    ctx.target_dir()
                        .join(WASM)
                        .join("web-release/web_client.wasm"),
                );
            // The dashboard as users get it, but a debug build (faster to build, same
            // code) in its own directory so that it does not replace dist/.
            let mut dashboard = ctx.trunk(&["build", "--dist"]);
            dashboard.arg(dashboard_e2e_dist(ctx));
            vec![
                native_build(ctx),
                dashboard,
                ctx.cargo(&[
                    "build",
                    "-p",
                    "web-client",
                    "--target",
                    WASM,
                    "--profile",
                    "web-release",
                ]),
                bindgen,
            ]
        }),
        commands: |ctx| {
            let driver = chromedriver(ctx);
            // The in-browser tests: web-client's (`web-client/tests/wasm/`) and the
            // dashboard's components (`dashboard/tests/devices.rs`) against the same
            // broker, in one cargo command so that both packages' dependencies are
            // compiled once, with the same features.
            let mut wasm = ctx.cargo(&[
                "test",
                "-p",
                "web-client",
                "-p",
                "dashboard",
                "--target",
                WASM,
                "--test",
                "wasm",
                "--test",
                "devices",
            ]);
            // The runner's limit is per test binary; the reconnection tests wait out
            // broker restarts and backoff.
            wasm.env("WASM_BINDGEN_TEST_TIMEOUT", "300");
            // `--workspace`: the native build of the `test` step (see `native_build`).
            let mut page = ctx.cargo(&["test", "--workspace", "--test", "js_api"]);
            page.env(
                "WEB_CLIENT_EXAMPLE_DIR",
                ctx.root.join("web-client/examples"),
            );
            // The dashboard end to end, one test binary (`dashboard/tests/browser/`): each
            // test starts its own broker-server serving the trunk build, device-sim and
            // Chromium (`e2e`; Home Assistant discovery, `ha`; the not-live and refused
            // states, `connection_state`; deep links, `navigation`; pinned selections,
            // keyboard controls and chart readouts, `truthful_views`; the operator views,
            // profiles and the app shell, `operator`; the device list at scale and the
            // explorer by keyboard, `lists`; charts backfilled from the broker's history
            // after a reload, `history_backfill`; the bridges card against a real
            // mosquitto, `bridges`); screenshots into target/dashboard-screenshots.
            // `dev_loop` is the `browser-dev` step's; `load` is a benchmark that skips
            // itself without DASHBOARD_LOAD.
            let debug = ctx.target_dir().join("debug");
            // `--workspace`, as for `js_api`: the `test` step's build, not a re-resolve.
            let mut e2e = ctx.cargo(&[
                "test",
                "--workspace",
                "--test",
                "browser",
                "--",
                "--skip",
                "dev_loop::",
            ]);
            e2e.env("DASHBOARD_DIST", dashboard_e2e_dist(ctx))
                .env("DASHBOARD_BROKER", debug.join("broker-server"))
                .env("DEVICE_SIM", debug.join("device-sim"))
                .env(
                    "DASHBOARD_SCREENSHOTS",
                    ctx.target_dir().join("dashboard-screenshots"),
                );
            for command in [&mut wasm, &mut page, &mut e2e] {
                if let Some(driver) = &driver {
                    command.env("CHROMEDRIVER", driver);
                }
            }
            vec![wasm, page, e2e]
        },
    },
    Step {
        name: "browser-dev",
        slow: true,
        prepare: None,
        // The documented development loop (`cargo xtask dev`: trunk watch, the debug
        // broker serving its output, device-sim) on free ports, with a headless Chromium
        // that must see the broker's devices through it (`dashboard/tests/browser/`, its
        // `dev_loop` module).
        commands: |ctx| vec![ctx.cargo(&["xtask", "dev", "--check"])],
    },
];

/// Where the `browser` step's debug build of the dashboard goes.
fn dashboard_e2e_dist(ctx: &Context) -> std::path::PathBuf {
    ctx.target_dir().join("dashboard-e2e")
}

/// Debian's chromedriver (it always matches Debian's Chromium), else the first on PATH.
pub(crate) fn chromedriver(ctx: &Context) -> Option<std::path::PathBuf> {
    let debian_driver = Path::new("/usr/bin/chromedriver");
    debian_driver
        .exists()
        .then(|| debian_driver.to_path_buf())
        .or_else(|| ctx.which("chromedriver"))
}

/// Runs a step's commands, with the browser harness around them if the step asks.
fn run_commands(ctx: &Context, step: &Step) -> Result<()> {
    let Some(prepare) = step.prepare else {
        return (step.commands)(ctx).iter_mut().try_for_each(cmd::run);
    };
    prepare(ctx).iter_mut().try_for_each(cmd::run)?;
    // Stops the broker when dropped, also when a command fails.
    let harness = browser::Harness::start(ctx)?;
    for mut command in (step.commands)(ctx) {
        command.envs(harness.env());
        if let Err(err) = cmd::run(&mut command) {
            println!(
                "--- the broker's log, last lines:\n{}",
                harness.log_tail(40)
            );
            return Err(err);
        }
    }
    Ok(())
}

/// How a step ended.
#[derive(Debug)]
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped(&'static str),
}

pub(crate) fn test(ctx: &Context, options: &Options) -> Result<ExitCode> {
    if options.list {
        for step in STEPS {
            let slow = if step.slow {
                "  (skipped by --quick)"
            } else {
                ""
            };
            println!("{}{slow}", step.name);
            if let Some(prepare) = step.prepare {
                for command in prepare(ctx) {
                    println!("    {}", cmd::display(&command));
                }
                println!(
                    "    (then, with broker-server started on free ports: see xtask/src/browser.rs)"
                );
            }
            for command in (step.commands)(ctx) {
                println!("    {}", cmd::display(&command));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(unknown) = options
        .filters
        .iter()
        .find(|f| !STEPS.iter().any(|step| step.name.contains(f.as_str())))
    {
        bail!("no step matches `{unknown}` (see `cargo xtask test --list`)");
    }

    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
    let setup_ok = run_step("setup", &mut outcomes, || setup::setup(ctx));

    let mut stop = if setup_ok { None } else { Some("setup failed") };
    for step in STEPS {
        if let Some(reason) = stop.or_else(|| options.skip_reason(step)) {
            outcomes.push((step.name, Outcome::Skipped(reason)));
            continue;
        }
        let passed = run_step(step.name, &mut outcomes, || run_commands(ctx, step));
        if !passed && options.fail_fast {
            stop = Some("--fail-fast");
        }
    }

    Ok(summary(&outcomes))
}

/// Runs one step between its `==>` and `<==` lines and records the outcome.
fn run_step<'a>(
    name: &'a str,
    outcomes: &mut Vec<(&'a str, Outcome)>,
    f: impl FnOnce() -> Result<()>,
) -> bool {
    println!("\n==> {name}");
    let (result, took) = cmd::timed(f);
    match result {
        Ok(()) => {
            println!("<== {name}: ok ({})", cmd::seconds(took));
            outcomes.push((name, Outcome::Passed(took)));
            true
        }
        Err(error) => {
            println!("<== {name}: FAILED ({}): {error:#}", cmd::seconds(took));
            outcomes.push((name, Outcome::Failed(took)));
            false
        }
    }
}

/// Prints the table and the closing count line; the exit code says whether all passed.
fn summary(outcomes: &[(&str, Outcome)]) -> ExitCode {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let total: Duration = outcomes
        .iter()
        .map(|(_, outcome)| match outcome {
            Outcome::Passed(took) | Outcome::Failed(took) => *took,
            Outcome::Skipped(_) => Duration::ZERO,
        })
        .sum();
    println!("\nxtask test summary ({} total)", cmd::seconds(total));
    println!("  {:<13} {:<8} {:>9}", "step", "result", "time");
    for (name, outcome) in outcomes {
        let (result, time, note) = match outcome {
            Outcome::Passed(took) => {
                passed += 1;
                ("ok", cmd::seconds(*took), String::new())
            }
            Outcome::Failed(took) => {
                failed += 1;
                ("FAILED", cmd::seconds(*took), String::new())
            }
            Outcome::Skipped(reason) => {
                skipped += 1;
                ("skipped", "-".to_owned(), format!("({reason})"))
            }
        };
        let row = format!("  {name:<13} {result:<8} {time:>9}  {note}");
        println!("{}", row.trim_end());
    }
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    println!("xtask: {passed} passed, {failed} failed{skipped}");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
