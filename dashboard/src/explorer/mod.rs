//! The explorer: every topic the broker delivers for `#` as a tree with message counts
//! and last values ([`tree`]), a bounded history per topic with a payload viewer
//! ([`payload`]), a numeric plot of a value or JSON path ([`plot`]) and a diff, retained
//! flags and deletion, search, and a publish panel
//! ([`publish`]). The view is in [`view`].
//!
//! Messages are not applied one by one: they wait in a plain buffer, and one
//! `requestAnimationFrame` callback per frame moves them into the tree signal, so that
//! at thousands of messages a second the tree, its flattening and the visible rows are
//! recomputed at most once a frame.
//!
//! The explorer subscribes to `#` only while its page is shown ([`watch`]): on opening
//! it, the retained messages arrive at once and fill the tree with what the broker holds;
//! on leaving, the subscription is dropped (an UNSUBSCRIBE), so other pages do not pay
//! for every message on the broker. The tree is kept for the next visit, and the retained
//! messages sent again then are not counted twice ([`tree::Tree::reopened`]): counts are
//! of the messages received while the page was open.

pub mod cbor;
pub mod json;
pub mod nav;
pub mod payload;
pub mod plot;
pub mod publish;
pub mod tree;
pub mod tree_view;
pub mod view;

use futures::StreamExt;
use futures::future::{AbortHandle, Abortable};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_client::{Client, Message, QoS, SubscribeOptions};

use crate::Page;
use crate::components::FrameBatch;
use crate::connection::Connection;
use crate::settings::Settings;
use tree::{Record, Tree};

/// The explorer's state, provided as context and kept while the app runs: it is fed only
/// while the explorer's page is shown, and kept for the next visit.
#[derive(Debug, Clone, Copy)]
pub struct Explorer {
    /// The tree; updated at most once per animation frame.
    pub tree: RwSignal<Tree>,
    /// Messages received since the last frame.
    batch: FrameBatch<Vec<(String, Record)>>,
    /// Frames that applied messages, and the messages they applied (for the
    /// performance figures).
    pub frames: StoredValue<(u64, u64)>,
    /// The limits (messages per topic, payload bytes).
    settings: RwSignal<Settings>,
}

impl Explorer {
    /// An empty explorer whose limits come from `settings`.
    pub fn new(settings: RwSignal<Settings>) -> Self {
        Self {
            tree: RwSignal::new(Tree::default()),
            batch: FrameBatch::new(),
            frames: StoredValue::new((0, 0)),
            settings,
        }
    }

    /// Queues a message for the next frame.
    pub fn receive(self, message: &Message) {
        let payload_limit = self.settings.with_untracked(|s| s.payload_limit);
        let mut record = Record::new(&message.payload, payload_limit, js_sys::Date::now());
        record.retained = message.retain;
        record.qos = match message.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        };
        record.content_type = message
            .properties
            .content_type
            .as_ref()
            .map(|c| c.to_string());
        record.user_properties = message
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let topic = message.topic().to_owned();
        self.batch.add(
            |batch| batch.push((topic, record)),
            move |batch| self.apply(batch),
        );
    }

    /// Exposes the frame counters to scripts as `window.__dashboardFrames()`, which
    /// returns `[frames that applied messages, messages applied]`: the load benchmark
    /// (`tests/browser/load.rs`) reads them.
    pub fn expose_counters(self) {
        let counters = Closure::<dyn Fn() -> js_sys::Array>::new(move || {
            let (frames, messages) = self.frames.try_get_value().unwrap_or_default();
            js_sys::Array::of2(&(frames as f64).into(), &(messages as f64).into())
        });
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::set(
                &window,
                &"__dashboardFrames".into(),
                counters.as_ref().unchecked_ref(),
            );
        }
        // Lives as long as the page.
        counters.forget();
    }

    /// Applies the queued messages to the tree, in one signal update.
    fn apply(self, batch: Vec<(String, Record)>) {
        if batch.is_empty() {
            return;
        }
        let history = self.settings.with_untracked(|s| s.topic_history);
        let count = batch.len() as u64;
        self.frames.update_value(|(frames, messages)| {
            *frames += 1;
            *messages += count;
        });
        self.tree.update(|tree| {
            for (topic, record) in batch {
                tree.add(&topic, record, history);
            }
        });
    }
}

/// Feeds the explorer while its page is shown: subscribes to `#` when the page opens (or
/// a new connection comes while it is shown) and drops the subscription when the page
/// is left or the connection replaced. The tree starts afresh with each connection (the
/// retained messages come again); between visits it is kept.
pub fn watch(connection: Connection, explorer: Explorer, page: RwSignal<Page>) {
    // A new connection: the tree starts afresh.
    Effect::new(move |_| {
        if connection.client.with(Option::is_some) {
            explorer.tree.set(Tree::default());
        }
    });
    let shown = Memo::new(move |_| page.with(|p| *p == Page::Explorer));
    // The running subscription's task, stopped (and its subscription dropped) by
    // aborting it.
    let running = StoredValue::new(None::<AbortHandle>);
    Effect::new(move |_| {
        let client = connection.client.get();
        let shown = shown.get();
        if let Some(previous) = running.try_update_value(Option::take).flatten() {
            previous.abort();
        }
        let (Some(client), true) = (client, shown) else {
            return;
        };
        explorer.tree.update(Tree::reopened);
        let (handle, registration) = AbortHandle::new_pair();
        running.set_value(Some(handle));
        spawn_local(async move {
            let _ = Abortable::new(run(client, explorer), registration).await;
        });
    });
}

/// Subscribes to `#` and feeds the explorer until the subscription ends (or the task is
/// aborted, which drops the subscription).
async fn run(client: Client, explorer: Explorer) {
    // Retain As Published: a retained message published while we watch keeps its flag,
    // so the tree knows what the broker holds (and a delete's empty retained message is
    // seen as one).
    let options = SubscribeOptions::new(QoS::AtMostOnce).retain_as_published(true);
    let mut messages = match client.subscribe("#", options).await {
        Ok(subscription) => subscription,
        Err(error) => {
            leptos::logging::warn!("the explorer's subscription failed: {error}");
            return;
        }
    };
    while let Some(message) = messages.next().await {
        explorer.receive(&message);
    }
}
