//! With the `embed-dashboard` feature: picks the directory `src/http/dashboard.rs`
//! compiles into the binary (`DASHBOARD_DIST`): the workspace's `dist/` when trunk has
//! built it, else a placeholder page that says how to build it, so the feature builds
//! either way. Build the dashboard first (`trunk build --release`, or `cargo xtask
//! run`) to embed the real one; `MQTT_WEB_DASHBOARD_DIST` names another directory.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MQTT_WEB_DASHBOARD_DIST");
    if std::env::var_os("CARGO_FEATURE_EMBED_DASHBOARD").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = std::env::var_os("MQTT_WEB_DASHBOARD_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("..").join("dist"));
    println!("cargo:rerun-if-changed={}", dist.display());
    let chosen = if dist.join("index.html").is_file() {
        dist
    } else {
        let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
        let placeholder = out_dir.join("dashboard-placeholder");
        let page = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                    <title>broker-server</title></head><body>\n<h1>broker-server</h1>\n\
                    <p>This binary was built with <code>embed-dashboard</code> before the \
                    dashboard was: run <code>trunk build --release</code> in the repository \
                    root, then build the broker again.</p>\n</body></html>\n";
        if let Err(err) = std::fs::create_dir_all(&placeholder)
            .and_then(|()| std::fs::write(placeholder.join("index.html"), page))
        {
            panic!("cannot write {}: {err}", placeholder.display());
        }
        println!(
            "cargo:warning=embed-dashboard: {} has no index.html; embedding a placeholder page \
             (run `trunk build --release` first)",
            dist.display()
        );
        placeholder
    };
    println!("cargo:rustc-env=DASHBOARD_DIST={}", chosen.display());
}
