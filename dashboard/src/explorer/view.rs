//! The explorer page: a search box, the topic tree as a virtualised list (only the rows
//! in view are in the DOM), the selected topic's details (retained flag and delete,
//! history, payload viewer, diff of two messages) and the publish panel.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{PublishOptions, QoS};

use super::Explorer;
use super::payload::View;
use super::plot::TopicPlot;
use super::publish::PublishPanel;
use super::tree::{DiffLine, Record, Row, Search, diff};
use crate::connection::{Connection, NotLive};
use crate::route::ExplorerTopic;

/// Height of one tree row in pixels (CSS `.tree-row` uses the same).
const ROW_HEIGHT: f64 = 28.0;
/// Height of the tree's viewport in pixels (CSS `.tree` uses the same).
const VIEWPORT: f64 = 448.0;
/// Rows rendered beyond the viewport on each side.
const OVERSCAN: usize = 8;

/// The explorer page.
#[component]
pub fn ExplorerPage() -> impl IntoView {
    let explorer = expect_context::<Explorer>();
    let connection = expect_context::<Connection>();
    let search_text = RwSignal::new(String::new());
    let collapsed = RwSignal::new(BTreeSet::<String>::new());
    // The selected topic lives in the URL (`#/explorer?topic=…`, see `route`).
    let selected = expect_context::<ExplorerTopic>().0;
    let scroll = RwSignal::new(0.0_f64);
    let search = Memo::new(move |_| search_text.with(|t| Search::parse(t).map_err(|e| e.clone())));
    let rows = Memo::new(move |_| {
        let search = match search.get() {
            Ok(search) => search,
            Err(_) => Search::None,
        };
        explorer
            .tree
            .with(|tree| collapsed.with(|c| tree.rows(c, &search)))
    });
    // The rows in view, by position and topic: a row's element stays while its topic
    // stays at its position, and only its texts change.
    let visible = move || {
        let total = rows.with(Vec::len);
        let first = ((scroll.get() / ROW_HEIGHT) as usize).saturating_sub(OVERSCAN);
        let last = (first + (VIEWPORT / ROW_HEIGHT) as usize + 2 * OVERSCAN).min(total);
        rows.with(|rows| {
            rows.get(first.min(last)..last)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, row)| (first + i, row.path.clone()))
                .collect::<Vec<_>>()
        })
    };
    let summary = move || {
        explorer
            .tree
            .with(|t| format!("{} topics and levels, {} messages", t.len(), t.total))
    };

    view! {
        <section class="explorer" data-testid="explorer">
            <div class="card tree-card">
                <h2>"Explorer " <LiveBadge /></h2>
                <NotLive what="these messages" />
                <label class="field">
                    <span>"Search (text, or an MQTT filter with + and #)"</span>
                    <input
                        type="search"
                        data-testid="explorer-search"
                        prop:value=move || search_text.get()
                        on:input=move |ev| search_text.set(event_target_value(&ev))
                    />
                </label>
                <p class="error" data-testid="explorer-search-error">
                    {move || search.get().err()}
                </p>
                <p class="muted" data-testid="explorer-summary">{summary}</p>
                <div
                    class="tree"
                    class:offline=move || !connection.is_live()
                    role="tree"
                    data-testid="explorer-tree"
                    on:scroll=move |ev| scroll.set(event_target::<web_sys::Element>(&ev).scroll_top().into())
                >
                    <div
                        class="tree-spacer"
                        style=move || format!("height: {}px", rows.with(Vec::len) as f64 * ROW_HEIGHT)
                    >
                        <For each=visible key=|item| item.clone() let:item>
                            <TreeRow index=item.0 rows collapsed selected />
                        </For>
                    </div>
                </div>
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

#[component]
fn TreeRow(
    index: usize,
    rows: Memo<Vec<Row>>,
    collapsed: RwSignal<BTreeSet<String>>,
    selected: RwSignal<Option<String>>,
) -> impl IntoView {
    // The row at this position; its path is fixed by the row's key.
    let row = Memo::new(move |_| rows.with(|rows| rows.get(index).cloned()));
    let Some(first) = row.get_untracked() else {
        return ().into_any();
    };
    let path = first.path.clone();
    let is_collapsed = {
        let path = path.clone();
        move || collapsed.with(|c| c.contains(&path))
    };
    let toggle = {
        let path = path.clone();
        move |_| {
            collapsed.update(|c| {
                if !c.remove(&path) {
                    c.insert(path.clone());
                }
            });
        }
    };
    let select = {
        let path = path.clone();
        move |_| selected.set(Some(path.clone()))
    };
    let is_selected = {
        let path = path.clone();
        move || selected.with(|s| s.as_deref() == Some(path.as_str()))
    };
    let expander = first.has_children.then(|| {
        let open = is_collapsed.clone();
        view! {
            <button
                class="expander"
                aria-label="Expand or collapse"
                aria-expanded=move || (!open()).to_string()
                on:click=toggle
            >
                {move || if is_collapsed() { "▸" } else { "▾" }}
            </button>
        }
    });
    let field =
        move |f: fn(&Row) -> String| move || row.with(|r| r.as_ref().map(f).unwrap_or_default());
    view! {
        <div
            class="tree-row"
            class:selected=is_selected
            role="treeitem"
            data-testid="tree-row"
            data-topic=path
            style=format!(
                "top: {}px; padding-left: {}rem",
                index as f64 * ROW_HEIGHT,
                first.depth as f64 + 0.2,
            )
        >
            {expander}
            <button class="link label" data-testid="tree-label" on:click=select>
                {first.label.clone()}
            </button>
            <span class="count" data-testid="tree-count">{field(|r| r.count.to_string())}</span>
            <span
                class="retained"
                title="retained"
                class:hidden=move || !row.with(|r| r.as_ref().is_some_and(|r| r.retained))
            >
                "R"
            </span>
            <span class="last" data-testid="tree-last">
                {field(|r| r.last.clone().unwrap_or_default())}
            </span>
        </div>
    }
    .into_any()
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
        })
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
