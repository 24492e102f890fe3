//! Reload on rebuild, for the development loop: with `dev` in the page's query string
//! (`http://127.0.0.1:8080/?dev`, the URL `cargo xtask dev` prints) the page asks for `/`
//! once a second and reloads itself when the answer changes, which it does whenever trunk
//! has written a new build (`index.html` names the new content-hashed files). Without
//! `dev` in the URL nothing runs, so production pages never poll.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// How often the page asks for `/`.
const POLL: Duration = Duration::from_secs(1);

/// Whether `query` (`?dev`, `?a=1&dev`) asks for reloads.
pub fn wanted(query: &str) -> bool {
    query
        .trim_start_matches('?')
        .split('&')
        .any(|part| part == "dev" || part.starts_with("dev="))
}

/// Starts polling if the page's URL asks for it.
pub fn watch() {
    let query = window().location().search().unwrap_or_default();
    if !wanted(&query) {
        return;
    }
    spawn_local(async move {
        let mut first: Option<String> = None;
        loop {
            sleep(POLL).await;
            // A build being written (trunk swaps the files in) answers 404: ask again.
            let Some(page) = fetch_page().await else {
                continue;
            };
            match &first {
                None => first = Some(page),
                Some(old) if *old != page => {
                    let _ = window().location().reload();
                    return;
                }
                Some(_) => {}
            }
        }
    });
}

/// `GET /` and its text, or `None` if it failed or was not a 200.
async fn fetch_page() -> Option<String> {
    let response = JsFuture::from(window().fetch_with_str("/")).await.ok()?;
    let response: web_sys::Response = response.dyn_into().ok()?;
    if response.status() != 200 {
        return None;
    }
    let text = JsFuture::from(response.text().ok()?).await.ok()?;
    text.as_string()
}

/// Resolves after `duration`.
async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dev_query_asks_for_reloads() {
        assert!(wanted("?dev"));
        assert!(wanted("?x=1&dev"));
        assert!(wanted("?dev=1"));
        assert!(!wanted(""));
        assert!(!wanted("?developer"));
        assert!(!wanted("?x=dev"));
    }
}
