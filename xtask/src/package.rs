//! `cargo xtask package`: web-client as an npm package, `target/npm/mqtt-web-client-<version>.tgz`.
//!
//! ```text
//!  cargo build -p web-client --target wasm32 --profile web-release --features terse-errors
//!    └─► wasm-bindgen --target web ─► wasm-opt -Oz --converge (memoised) ─┐
//!  web-client/npm/ (entry points, compat, .d.ts, README, licences, package.json) ─┤
//!                                                               ▼
//!              target/npm/package/ (JavaScript minified by esbuild) ── tsc --noEmit ──► npm pack
//! ```
//!
//! `--target web` output serves browsers without a bundler (`init()` fetches the wasm
//! next to the JavaScript through `import.meta.url`) and bundlers (Vite and webpack
//! understand `new URL(…, import.meta.url)`); Node gets `node.js`, which loads the same
//! file synchronously. The version is the workspace's (`[workspace.package]` in the
//! root `Cargo.toml`). Nothing is written into the repository: the staging directory and
//! the tarball live under the target directory. The TypeScript check compiles
//! `web-client/npm/tests/types/example.ts` against the staged package with `tsc
//! --noEmit` (npm `typescript`, pinned by setup). The `package-tests` step installs the
//! tarball and tests it (`web-client/npm/tests/package.test.mjs`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    cmd::{self, Context},
    size::WASM_FEATURES,
};

/// The package name, as in `web-client/npm/package.json`.
pub(crate) const NAME: &str = "@mqtt-web/client";

/// The version placeholder in the checked-in `package.json`.
const VERSION_PLACEHOLDER: &str = "\"version\": \"0.0.0-workspace\"";

/// The hand-written files of the package, in `web-client/npm/`.
const SOURCES: &[&str] = &[
    "index.js",
    "index.d.ts",
    "node.js",
    "compat.js",
    "compat-node.js",
    "compat-core.js",
    "compat.d.ts",
    "README.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
];

/// The JavaScript files of the package, minified by esbuild once staged.
const MINIFIED: &[&str] = &[
    "web_client.js",
    "index.js",
    "node.js",
    "compat.js",
    "compat-node.js",
    "compat-core.js",
];

/// Where the package is staged: `<target>/npm/package`.
pub(crate) fn stage_dir(ctx: &Context) -> PathBuf {
    ctx.target_dir().join("npm/package")
}

/// The tarball `npm pack` writes: `<target>/npm/mqtt-web-client-<version>.tgz`.
pub(crate) fn tarball(ctx: &Context) -> Result<PathBuf> {
    let version = workspace_version(ctx)?;
    let file = format!(
        "{}-{version}.tgz",
        NAME.trim_start_matches('@').replace('/', "-")
    );
    Ok(ctx.target_dir().join("npm").join(file))
}

/// Builds, checks and packs the package; returns the tarball's path.
pub(crate) fn package(ctx: &Context) -> Result<PathBuf> {
    let sources = ctx.root.join("web-client/npm");
    let stage = stage_dir(ctx);
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;

    let module = crate::size::bind_web_client(ctx, &stage)?;
    optimise(ctx, &module)?;
    // wasm-bindgen's declarations of the wasm exports (the package has its own types).
    let _ = fs::remove_file(stage.join("web_client_bg.wasm.d.ts"));

    for file in SOURCES {
        fs::copy(sources.join(file), stage.join(file))
            .with_context(|| format!("copying web-client/npm/{file}"))?;
    }
    // Every JavaScript file minified in place (esbuild keeps the ES modules' exports,
    // top-level await and `import.meta.url`; the property names the wasm module imports
    // by are not renamed). ES2022: the class private fields of compat stay as they are.
    for file in MINIFIED {
        let path = stage.join(file);
        let mut minify = ctx.command("esbuild");
        minify
            .arg(&path)
            .args([
                "--minify",
                "--format=esm",
                "--target=es2022",
                "--allow-overwrite",
                "--log-level=warning",
            ])
            .arg(format!("--outfile={}", path.display()));
        cmd::run(&mut minify)?;
    }
    let manifest = fs::read_to_string(sources.join("package.json"))
        .context("reading web-client/npm/package.json")?;
    if !manifest.contains(VERSION_PLACEHOLDER) {
        bail!("web-client/npm/package.json lacks the line {VERSION_PLACEHOLDER}");
    }
    let version = workspace_version(ctx)?;
    fs::write(
        stage.join("package.json"),
        manifest.replace(VERSION_PLACEHOLDER, &format!("\"version\": \"{version}\"")),
    )?;

    typecheck(ctx, &stage)?;

    let out = ctx.target_dir().join("npm");
    let tarball = tarball(ctx)?;
    let _ = fs::remove_file(&tarball);
    let mut pack = ctx.command("npm");
    pack.args(["pack", "--silent", "--pack-destination"])
        .arg(&out)
        .current_dir(&stage);
    cmd::run(&mut pack)?;
    if !tarball.exists() {
        bail!("npm pack did not write {}", tarball.display());
    }
    println!("package: {}", tarball.display());
    // What a page downloads for the wasm API, and what `compat` adds to it.
    let mut page = (0, 0);
    for file in [
        "web_client_bg.wasm",
        "web_client.js",
        "index.js",
        "compat.js",
        "compat-core.js",
    ] {
        let path = stage.join(file);
        let (raw, gzipped) = (
            fs::metadata(&path)?.len(),
            crate::size::gzipped(ctx, &path)?,
        );
        println!("package: {file:<20} {raw:>8} bytes {gzipped:>8} gzip -9");
        if !file.starts_with("compat") {
            page = (page.0 + raw, page.1 + gzipped);
        }
    }
    println!(
        "package: {:<20} {:>8} bytes {:>8} gzip -9  (wasm, glue, index.js; compat adds its two files)",
        "total", page.0, page.1
    );
    Ok(tarball)
}

/// `wasm-opt -Oz --converge` of the bound module, in place. `--converge` repeats -Oz until
/// the module stops shrinking (about 0.4 KB gzipped) and takes half a minute, so the last
/// input and output are kept in `<target>/npm/wasm-opt-memo/` with the command and
/// wasm-opt's version: the same module again (CI's `package-tests` packs what `package`
/// just packed) gets the same output without a second run.
fn optimise(ctx: &Context, module: &Path) -> Result<()> {
    let mut opt = ctx.command("wasm-opt");
    opt.args(["-Oz", "--converge"])
        .args(WASM_FEATURES)
        .arg("-o")
        .arg(module)
        .arg(module);
    let version = cmd::probe(&mut ctx.command_with("wasm-opt", &["--version"]))
        .context("wasm-opt --version")?;
    let key = format!("{}\n{version}\n", cmd::display(&opt));
    let input = fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let memo = ctx.target_dir().join("npm/wasm-opt-memo");
    let same = fs::read(memo.join("key")).is_ok_and(|k| k == key.as_bytes())
        && fs::read(memo.join("input.wasm")).is_ok_and(|i| i == input);
    if same && fs::copy(memo.join("output.wasm"), module).is_ok() {
        println!("package: wasm-opt's output for this module is the last one's (wasm-opt-memo)");
        return Ok(());
    }
    cmd::run(&mut opt)?;
    // Written key last: an interrupted write leaves no key, so no false match.
    let _ = fs::remove_dir_all(&memo);
    fs::create_dir_all(&memo)?;
    fs::write(memo.join("input.wasm"), &input)?;
    fs::copy(module, memo.join("output.wasm"))?;
    fs::write(memo.join("key"), key)?;
    Ok(())
}

/// `tsc --noEmit` of `web-client/npm/tests/types/` against the staged package, which it
/// finds as `node_modules/@mqtt-web/client` (a symbolic link) beside a copy of the
/// example, so that the `exports` map and `types` conditions are what is checked.
fn typecheck(ctx: &Context, stage: &Path) -> Result<()> {
    let dir = ctx.target_dir().join("npm/typecheck");
    let _ = fs::remove_dir_all(&dir);
    let scope = dir.join("node_modules/@mqtt-web");
    fs::create_dir_all(&scope)?;
    std::os::unix::fs::symlink(stage, scope.join("client"))
        .context("linking the staged package for tsc")?;
    let types = ctx.root.join("web-client/npm/tests/types");
    for entry in fs::read_dir(&types).with_context(|| format!("reading {}", types.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, dir.join(name))?;
        }
    }
    let mut tsc = ctx.command("tsc");
    tsc.args(["--noEmit", "-p"]).arg(&dir);
    cmd::run(&mut tsc)
}

/// `version` of `[workspace.package]` in the root `Cargo.toml`.
fn workspace_version(ctx: &Context) -> Result<String> {
    let text = fs::read_to_string(ctx.root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section && let Some(value) = line.strip_prefix("version") {
            let value = value.trim_start().trim_start_matches('=').trim();
            return Ok(value.trim_matches('"').to_owned());
        }
    }
    bail!("Cargo.toml has no version in [workspace.package]")
}
