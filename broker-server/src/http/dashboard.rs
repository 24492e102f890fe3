//! The dashboard: the files `trunk build --release` writes to `dist/`, served from a
//! directory (`http.dashboard_dir`) or, with the `embed-dashboard` feature, from a copy
//! compiled into the binary.
//!
//! - Content types from the file extension (`application/wasm` for the module, which
//!   browsers require to compile it while it downloads).
//! - trunk names assets with a content hash (`dashboard-fcceb03c5cfcf84_bg.wasm`): those
//!   are cached for a year as `immutable`; everything else (`index.html`, which names the
//!   current hashes) is `no-cache`, so a new build is picked up at once.
//! - A path without a file extension that names no file gets `index.html`, so client-side
//!   routes survive a reload.
//! - Only files inside the directory are served: a path with `..` is refused, and so is
//!   a file that resolves (through symbolic links) outside the directory, which is a 404
//!   (a link to `/etc/passwd` left in the directory must not publish it). Links that
//!   stay inside, and a directory that is itself reached through a link (a release
//!   switch such as `current -> releases/v3`), are fine.
//! - Compression is the router's (`tower_http::compression`).

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::debug;

use super::HttpState;
use crate::config::HttpConfig;

/// The dashboard compiled in with `embed-dashboard` (`build.rs` picks `dist/` or a
/// placeholder page).
#[cfg(feature = "embed-dashboard")]
static EMBEDDED: include_dir::Dir<'static> = include_dir::include_dir!("$DASHBOARD_DIST");

/// Where the dashboard's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dashboard {
    /// `http.dashboard = false`.
    Off,
    /// Files read from this directory on each request.
    Dir(PathBuf),
    /// The copy compiled into the binary.
    #[cfg(feature = "embed-dashboard")]
    Embedded,
}

impl Dashboard {
    /// The source the configuration names (see `http.dashboard_dir`).
    pub(crate) fn from_config(config: &HttpConfig) -> Self {
        if !config.dashboard {
            return Self::Off;
        }
        match &config.dashboard_dir {
            Some(dir) => Self::Dir(dir.clone()),
            #[cfg(feature = "embed-dashboard")]
            None => Self::Embedded,
            #[cfg(not(feature = "embed-dashboard"))]
            None => Self::Dir(PathBuf::from("dist")),
        }
    }

    /// The file at `relative` (already checked by [`safe_path`]).
    async fn read(&self, relative: &str) -> Result<Bytes, NotServed> {
        match self {
            Self::Off => Err(NotServed::Missing),
            Self::Dir(dir) => read_inside(dir, relative).await,
            #[cfg(feature = "embed-dashboard")]
            Self::Embedded => EMBEDDED
                .get_file(relative)
                .map(|file| Bytes::from_static(file.contents()))
                .ok_or(NotServed::Missing),
        }
    }
}

/// Why a dashboard path has no file to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotServed {
    /// Nothing readable there: a client-side route may still get `index.html`.
    Missing,
    /// The path resolves outside the dashboard directory (a symbolic link): 404, and no
    /// `index.html` either, so nothing tells what the link pointed at.
    Outside,
}

/// Reads `relative` under `dir`, refusing a file whose real path (links resolved) is not
/// inside `dir`'s real path. The resolved path is the one read, so a link is followed
/// once, at the check.
async fn read_inside(dir: &Path, relative: &str) -> Result<Bytes, NotServed> {
    let root = tokio::fs::canonicalize(dir)
        .await
        .map_err(|_| NotServed::Missing)?;
    let path = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|_| NotServed::Missing)?;
    if !path.starts_with(&root) {
        debug!(
            path = %relative,
            target = %path.display(),
            "dashboard: not serving a file outside http.dashboard_dir"
        );
        return Err(NotServed::Outside);
    }
    tokio::fs::read(&path)
        .await
        .map(Bytes::from)
        .map_err(|_| NotServed::Missing)
}

/// Whether a request path (without the leading `/`) stays inside the dashboard: no
/// `..`, `.` or empty segments, no backslashes or NULs.
fn safe_path(relative: &str) -> bool {
    !relative.is_empty()
        && !relative.contains(['\\', '\0'])
        && relative
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Whether `name` carries a build hash, as trunk writes them: a `-` followed by at
/// least 8 hex digits, e.g. `dashboard-fcceb03c5cfcf84.js`, `..._bg.wasm`.
pub(crate) fn is_hashed(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    let stem = file.split('.').next().unwrap_or(file);
    let Some((_, tail)) = stem.rsplit_once('-') else {
        return false;
    };
    let hash = tail.split('_').next().unwrap_or(tail);
    hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `Content-Type` for a file name.
pub(crate) fn content_type(name: &str) -> String {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8".into(),
        Some("js" | "mjs") => "text/javascript; charset=utf-8".into(),
        Some("css") => "text/css; charset=utf-8".into(),
        Some("wasm") => "application/wasm".into(),
        Some("json") => "application/json".into(),
        _ => mime_guess::from_path(name)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .into(),
    }
}

fn file_response(name: &str, body: Bytes) -> Response {
    let cache = if is_hashed(name) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type(name)) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(super) async fn handler(State(state): State<HttpState>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed\n",
        )
            .into_response();
    }
    let dashboard = &*state.dashboard;
    if *dashboard == Dashboard::Off {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let relative = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    if !safe_path(&relative) {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match dashboard.read(&relative).await {
        Ok(body) => return file_response(&relative, body),
        Err(NotServed::Outside) => {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        }
        Err(NotServed::Missing) => {}
    }
    let is_route = !relative.rsplit('/').next().unwrap_or("").contains('.');
    if is_route || relative.ends_with("index.html") {
        if let Ok(body) = dashboard.read("index.html").await {
            return file_response("index.html", body);
        }
        let hint = match dashboard {
            Dashboard::Dir(dir) => format!(
                "The dashboard is not built: {} has no index.html. Run `trunk build \
                 --release` in the repository root (or `cargo xtask run`), or point \
                 http.dashboard_dir at a built dashboard.\n",
                dir.display()
            ),
            _ => "The dashboard is not available in this build.\n".into(),
        };
        return (StatusCode::NOT_FOUND, hint).into_response();
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_hashed_names_are_recognised() {
        assert!(is_hashed("dashboard-fcceb03c5cfcf84.js"));
        assert!(is_hashed("dashboard-fcceb03c5cfcf84_bg.wasm"));
        assert!(is_hashed("assets/style-0123abcd.css"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("web-client.js"));
        assert!(!is_hashed("favicon.ico"));
    }

    #[test]
    fn paths_cannot_leave_the_dashboard() {
        assert!(safe_path("index.html"));
        assert!(safe_path("assets/a.js"));
        assert!(!safe_path("../secret"));
        assert!(!safe_path("a/../../b"));
        assert!(!safe_path("a//b"));
        assert!(!safe_path("a\\..\\b"));
    }

    #[cfg(feature = "embed-dashboard")]
    #[tokio::test]
    async fn the_embedded_dashboard_has_an_index_page() {
        let config = HttpConfig::default();
        let dashboard = Dashboard::from_config(&config);
        assert_eq!(dashboard, Dashboard::Embedded);
        let page = dashboard.read("index.html").await.expect("index.html");
        assert!(page.starts_with(b"<!"), "{page:?}");
    }

    #[test]
    fn wasm_and_html_get_their_content_types() {
        assert_eq!(content_type("x_bg.wasm"), "application/wasm");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
    }
}
