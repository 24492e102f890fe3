//! The explorer page: the topic tree ([`super::tree_view`]), the selected topic's
//! details (retained flag and delete, history, payload viewer, diff of two messages: by
//! JSON path when both are JSON documents, else by line) and the publish panel.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{PublishOptions, QoS};

use super::Explorer;
use super::json::{self, Change};
use super::payload::View;
use super::plot::TopicPlot;
use super::publish::PublishPanel;
use super::tree::{DiffLine, Record, diff};
use super::tree_view::TopicTree;
use crate::connection::{Connection, NotLive};
use crate::route::ExplorerTopic;

/// The explorer page.
#[component]
pub fn ExplorerPage() -> impl IntoView {
    // The selected topic lives in the URL (`#/explorer?topic=…`, see `route`).
    let selected = expect_context::<ExplorerTopic>().0;
    view! {
        <section class="explorer" data-testid="explorer">
            <div class="card tree-card">
                <h2>"Explorer " <LiveBadge /></h2>
                <p class="muted" data-testid="explorer-since">
                    "Counts: messages received while this page is open."
                </p>
                <NotLive what="these messages" />
                <TopicTree selected />
            </div>
            {move || selected.get().map(|topic| view! { <TopicDetails topic /> })}
            <PublishPanel topic=selected.into() />
        </section>
    }
}

/// "live" while messages arrive, "not live" while the page is not connected.
#[component]
fn LiveBadge() -> impl IntoView {
    let connection = expect_context::<Connection>();
    let live = move || connection.is_live();
    view! {
        <span
            class=move || if live() { "badge live" } else { "badge not-live" }
            data-testid="explorer-live"
        >
            {move || if live() { "live" } else { "not live" }}
        </span>
    }
}

/// The selected topic: its retained flag (and deletion of the retained messages at and
/// below it), its history, the payload viewer and a diff.
#[component]
fn TopicDetails(topic: String) -> impl IntoView {
    let explorer = expect_context::<Explorer>();
    let connection = expect_context::<Connection>();
    let view_mode = RwSignal::new(None::<View>);
    // The records clicked (compared by `Record::id`, never by position): the message
    // shown and the one to diff it with stay what was clicked while new messages push
    // the history along, even once they have left the bounded history.
    let shown = RwSignal::new(None::<Record>);
    let compare = RwSignal::new(None::<Record>);
    let is = |chosen: RwSignal<Option<Record>>, id: u64| {
        move || chosen.with(|c| c.as_ref().is_some_and(|r| r.id == id))
    };
    let status = RwSignal::new(String::new());
    let history = {
        let topic = topic.clone();
        Memo::new(move |_| {
            explorer.tree.with(|t| {
                t.topic(&topic)
                    .map(|t| t.history.clone())
                    .unwrap_or_default()
            })
        })
    };
    let retained_below = {
        let topic = topic.clone();
        Memo::new(move |_| explorer.tree.with(|t| t.retained_under(&topic)))
    };
    let current = move || shown.get().or_else(|| history.with(|h| h.back().cloned()));
    let delete = move |_| {
        let topics = retained_below.get_untracked();
        if topics.is_empty() {
            return;
        }
        let question = format!(
            "Delete {} retained message(s) at and below this topic?",
            topics.len()
        );
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        let Some(client) = connection.client.get_untracked() else {
            return status.set("not connected".to_owned());
        };
        if !confirmed {
            return;
        }
        spawn_local(async move {
            let mut deleted = 0;
            for topic in &topics {
                let options = PublishOptions::new(QoS::AtLeastOnce).retain(true);
                if client
                    .publish(topic.clone(), Vec::new(), options)
                    .await
                    .is_ok()
                {
                    explorer.tree.update(|t| t.clear_retained(topic));
                    deleted += 1;
                }
            }
            status.set(format!("deleted {deleted} of {} retained", topics.len()));
        });
    };
    // One element per record, kept while it stays in the history (keyed by id): a click
    // lands on the message it was aimed at however fast others arrive.
    let records = move || history.with(|h| h.iter().rev().cloned().collect::<Vec<_>>());
    let item = move |record: Record| {
        let id = record.id;
        let time = js_sys::Date::new(&record.time_ms.into())
            .to_locale_time_string("en-GB")
            .as_string()
            .unwrap_or_default();
        let size = size_label(&record);
        let label = format!(
            "{time} · {size}{}",
            if record.retained { " · retained" } else { "" }
        );
        let picked = record.clone();
        view! {
            <li>
                <button
                    class="link"
                    class:selected=is(shown, id)
                    aria-pressed=move || is(shown, id)().to_string()
                    data-testid="history-item"
                    data-id=id.to_string()
                    on:click=move |_| shown.set(Some(record.clone()))
                >
                    {label}
                </button>
                <label class="diff-pick">
                    <input
                        type="checkbox"
                        aria-label="Compare with the shown message"
                        data-testid="history-diff"
                        prop:checked=is(compare, id)
                        on:change=move |_| {
                            compare.update(|c| {
                                *c = if c.as_ref().is_some_and(|r| r.id == id) {
                                    None
                                } else {
                                    Some(picked.clone())
                                };
                            })
                        }
                    />
                    " diff"
                </label>
            </li>
        }
    };
    let payload = move || {
        current().map(|record| {
            let mode = view_mode
                .get()
                .unwrap_or_else(|| View::guess(&record.payload));
            let note = record.truncated().then(|| {
                format!(
                    "truncated: {} of {} bytes shown",
                    record.payload.len(),
                    record.size
                )
            });
            let meta = meta_line(&record);
            view! {
                <p class="muted" data-testid="payload-meta">{meta}</p>
                <p class="warn" data-testid="payload-truncated">{note}</p>
                <pre class="payload" data-testid="payload" data-id=record.id.to_string()>
                    {mode.render(&record.payload)}
                </pre>
            }
        })
    };
    let diff_view = move || {
        let old = compare.get()?;
        let new = current()?;
        if let Some(changes) = json_changes(&old, &new) {
            return Some(changes.into_any());
        }
        let lines = diff(
            &String::from_utf8_lossy(&old.payload),
            &String::from_utf8_lossy(&new.payload),
        );
        Some(view! {
            <pre class="diff" data-testid="diff">
                {lines
                    .into_iter()
                    .map(|line| match line {
                        DiffLine::Same(l) => view! { <div class="same">{format!("  {l}")}</div> },
                        DiffLine::Removed(l) => view! { <div class="removed">{format!("- {l}")}</div> },
                        DiffLine::Added(l) => view! { <div class="added">{format!("+ {l}")}</div> },
                    })
                    .collect_view()}
            </pre>
        }.into_any())
    };
    let tabs = View::ALL
        .into_iter()
        .map(|(mode, label)| {
            view! {
                <button
                    class="tab"
                    class:active=move || view_mode.get() == Some(mode)
                    data-testid=format!("payload-{}", label.to_lowercase())
                    on:click=move |_| view_mode.set(Some(mode))
                >
                    {label}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="card details" data-testid="topic-details">
            <h3 data-testid="topic-name">{topic.clone()}</h3>
            <div class="actions">
                <button
                    data-testid="delete-retained"
                    disabled=move || retained_below.with(Vec::is_empty)
                    on:click=delete
                >
                    {move || format!("Delete retained ({})", retained_below.with(Vec::len))}
                </button>
                <span role="status" data-testid="delete-status">{move || status.get()}</span>
            </div>
            <div class="tabs" role="group" aria-label="Payload view">{tabs}</div>
            {payload}
            {diff_view}
            <TopicPlot history />
            <h4>"History"</h4>
            <p class="muted" data-testid="history-pin">
                {move || match shown.get() {
                    Some(_) => "Showing the chosen message while newer ones arrive.",
                    None => "Showing the newest message.",
                }}
                " "
                <button
                    data-testid="history-latest"
                    hidden=move || shown.get().is_none()
                    on:click=move |_| shown.set(None)
                >
                    "Follow the newest"
                </button>
            </p>
            <ul class="history" data-testid="history">
                <For each=records key=|record| record.id children=item />
            </ul>
        </div>
    }
}

fn size_label(record: &Record) -> String {
    format!("{} B", record.size)
}

fn meta_line(record: &Record) -> String {
    let mut parts = vec![format!("QoS {}", record.qos), size_label(record)];
    if record.retained {
        parts.push("retained".to_owned());
    }
    if let Some(content_type) = &record.content_type {
        parts.push(format!("content type {content_type}"));
    }
    for (k, v) in &record.user_properties {
        parts.push(format!("{k}={v}"));
    }
    parts.join(" · ")
}

/// The diff of two JSON documents by path, or `None` if either is not one.
fn json_changes(old: &Record, new: &Record) -> Option<impl IntoView + use<>> {
    let (a, b) = json::documents(&old.payload, &new.payload)?;
    let changes = json::diff(&a, &b);
    let empty = changes.is_empty().then_some("no differences");
    let lines = changes
        .into_iter()
        .map(|change| match change {
            Change::Added(path, v) => view! { <div class="added">{format!("+ {path}: {v}")}</div> },
            Change::Removed(path, v) => {
                view! { <div class="removed">{format!("- {path}: {v}")}</div> }
            }
            Change::Changed(path, a, b) => {
                view! { <div class="changed">{format!("~ {path}: {a} → {b}")}</div> }
            }
        })
        .collect_view();
    Some(view! {
        <pre class="diff" data-testid="diff" data-kind="json">{empty}{lines}</pre>
    })
}
