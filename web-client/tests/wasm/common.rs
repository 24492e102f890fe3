//! What the in-browser tests share: the broker xtask started (its WebSocket URL and its
//! control endpoint, both known at compile time), clients with fast reconnects, and
//! waiting with a deadline.
//!
//! `cargo xtask test browser` starts `broker-server` on free ports and builds these
//! tests with `MQTT_WS_URL` and `MQTT_HARNESS_URL` set (see `xtask/src/browser.rs`). A
//! plain `cargo test -p web-client --target wasm32-unknown-unknown` has no broker: the
//! tests that need one then pass without running, and say so on the console.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_client::{
    Client, ConnectOptions, Event, EventStream, Message, ProtocolVersion, ReconnectOptions,
    Subscription,
};

/// How long a test waits for something that should happen before failing. A failure
/// guard only: no test asserts on timing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// The broker's `ws://` URL, or `None` (and a note on the console) without a harness.
pub(crate) fn broker() -> Option<&'static str> {
    let url = option_env!("MQTT_WS_URL");
    if url.is_none() {
        web_sys::console::log_1(
            &"no broker: MQTT_WS_URL was not set at build time; run `cargo xtask test browser`"
                .into(),
        );
    }
    url
}

/// Stops, starts or restarts the broker through the harness's control endpoint;
/// returns once done.
pub(crate) async fn harness(action: &str) {
    let Some(base) = option_env!("MQTT_HARNESS_URL") else {
        panic!("MQTT_HARNESS_URL was not set at build time, although MQTT_WS_URL was");
    };
    let url = format!("{base}/broker/{action}");
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let window = web_sys::window().expect("a window");
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
        .await
        .unwrap_or_else(|err| panic!("POST {url}: {err:?}"));
    let response: web_sys::Response = response.unchecked_into();
    assert!(response.ok(), "POST {url}: HTTP {}", response.status());
}

/// A name no other test run uses: topics and client ids of one test never meet
/// another's retained messages or sessions, even across runs of a persistent store.
pub(crate) fn unique(prefix: &str) -> String {
    let random = (js_sys::Math::random() * 1e12) as u64;
    format!("{prefix}-{random:x}")
}

/// Options for the broker at `url` with `client_id`, `version` and a fast reconnect.
pub(crate) fn options(url: &str, client_id: &str, version: ProtocolVersion) -> ConnectOptions {
    ConnectOptions::new(url)
        .client_id(client_id)
        .version(version)
        .reconnect(ReconnectOptions::backoff(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
}

pub(crate) async fn connect(options: ConnectOptions) -> Client {
    let id = options.session.client_id.to_string();
    within(&format!("{id} to connect"), Client::connect(options))
        .await
        .unwrap_or_else(|err| panic!("{id} connects: {err}"))
}

/// Runs `future` as its own task (it starts at the next turn of the event loop, after
/// those spawned before it) and returns its output when awaited.
pub(crate) fn spawn<T: 'static>(
    future: impl Future<Output = T> + 'static,
) -> impl Future<Output = T> {
    let (sender, receiver) = futures::channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = sender.send(future.await);
    });
    async move { receiver.await.expect("the task finished") }
}

/// A promise of `setTimeout`, independent of the client's own timers.
pub(crate) async fn sleep(duration: Duration) {
    let ms = duration.as_millis() as i32;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: js_sys::Function = js_sys::Reflect::get(&global, &"setTimeout".into())
            .expect("setTimeout")
            .unchecked_into();
        set_timeout
            .call2(&global, &resolve, &ms.into())
            .expect("setTimeout runs");
    });
    JsFuture::from(promise).await.expect("timeout resolves");
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    let future = std::pin::pin!(future);
    let timeout = std::pin::pin!(sleep(PATIENCE));
    match futures::future::select(future, timeout).await {
        futures::future::Either::Left((value, _)) => value,
        futures::future::Either::Right(_) => panic!("timed out waiting for {what}"),
    }
}

/// The next message of `subscription`.
pub(crate) async fn next(subscription: &mut Subscription) -> Message {
    let what = format!("a message on {}", Subscription::filter(subscription));
    within(&what, subscription.next())
        .await
        .expect("subscription open")
}

/// Waits for the first event that `pick` accepts.
pub(crate) async fn wait_event<T>(
    events: &mut EventStream,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            let event = events
                .next()
                .await
                .unwrap_or_else(|| panic!("events ended waiting for {what}"));
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
}
