//! `cargo xtask size`: what a page downloads for web-client's JavaScript API, gzipped,
//! beside MQTT.js's browser bundle.
//!
//! web-client: the `web-release` profile (opt-level z, LTO) with the `terse-errors`
//! feature (the npm package's build), `wasm-bindgen --target web`, then `wasm-opt -Oz`
//! (npm binaryen 132, the one setup installs); the figure is the
//! `.wasm` plus the generated `.js`, each `gzip -9`. MQTT.js: `dist/mqtt.min.js` of the
//! pinned release, fetched with `npm pack` (so this command needs the npm registry; it is
//! not part of `cargo xtask test`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, Context};

/// The MQTT.js release compared against.
const MQTT_JS: &str = "mqtt@5.16.0";

/// wasm-opt must accept the features rustc enables for wasm32 by default.
pub(crate) const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
];

pub(crate) fn size(ctx: &Context) -> Result<()> {
    let out = ctx.target_dir().join("web-client-size");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out)?;

    let module = bind_web_client(ctx, &out)?;
    let mut opt = ctx.command("wasm-opt");
    opt.arg("-Oz")
        .args(WASM_FEATURES)
        .arg("-o")
        .arg(&module)
        .arg(&module);
    cmd::run(&mut opt)?;

    let npm_dir = out.join("mqtt.js");
    fs::create_dir_all(&npm_dir)?;
    let mut pack = ctx.command("npm");
    pack.args(["pack", "--silent", MQTT_JS])
        .current_dir(&npm_dir);
    cmd::run(&mut pack)?;
    let tarball = fs::read_dir(&npm_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .context("npm pack left no tarball")?;
    let mut untar = ctx.command("tar");
    untar
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&npm_dir)
        .arg("package/dist/mqtt.min.js");
    cmd::run(&mut untar)?;

    let js = out.join("web_client.js");
    let bundle = npm_dir.join("package/dist/mqtt.min.js");
    let (wasm_raw, wasm_gz) = (raw(&module)?, gzipped(ctx, &module)?);
    let (js_raw, js_gz) = (raw(&js)?, gzipped(ctx, &js)?);
    let (mqtt_raw, mqtt_gz) = (raw(&bundle)?, gzipped(ctx, &bundle)?);
    println!("\n{:<34} {:>10} {:>10}", "", "bytes", "gzip -9");
    println!(
        "{:<34} {wasm_raw:>10} {wasm_gz:>10}",
        "web-client  web_client_bg.wasm"
    );
    println!(
        "{:<34} {js_raw:>10} {js_gz:>10}",
        "web-client  web_client.js"
    );
    println!(
        "{:<34} {:>10} {:>10}",
        "web-client  total",
        wasm_raw + js_raw,
        wasm_gz + js_gz
    );
    println!(
        "{:<34} {mqtt_raw:>10} {mqtt_gz:>10}",
        format!("{MQTT_JS}  dist/mqtt.min.js")
    );
    Ok(())
}

fn raw(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("{} is missing", path.display()))?
        .len())
}

pub(crate) fn gzipped(ctx: &Context, path: &Path) -> Result<u64> {
    let output = ctx
        .command("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    if !output.status.success() {
        bail!("gzip {} failed", path.display());
    }
    Ok(output.stdout.len() as u64)
}

/// Builds web-client for the browser (profile `web-release`, feature `terse-errors`)
/// and runs wasm-bindgen (`--target web`) into `out`; returns the wasm module there,
/// not optimised yet. The first half of both `cargo xtask size` and `cargo xtask
/// package`.
pub(crate) fn bind_web_client(ctx: &Context, out: &Path) -> Result<PathBuf> {
    cmd::run(&mut ctx.cargo(&[
        "build",
        "-p",
        "web-client",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "web-release",
        // Error texts without `core::fmt` (web-client/src/text.rs): about 9 KB gzipped.
        "--features",
        "terse-errors",
    ]))?;
    let wasm = ctx
        .target_dir()
        .join("wasm32-unknown-unknown/web-release/web_client.wasm");
    let mut bindgen = ctx.command("wasm-bindgen");
    bindgen
        .args(["--target", "web", "--weak-refs", "--out-dir"])
        .arg(out)
        .arg(&wasm);
    cmd::run(&mut bindgen)?;
    Ok(out.join("web_client_bg.wasm"))
}
