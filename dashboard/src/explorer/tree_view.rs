//! The explorer's topic tree on the page: the search box (with the match count), collapse
//! all / expand all / expand to a level, and the tree as a virtualised list (only the
//! rows in view are in the DOM) that the keyboard moves through.
//!
//! Keyboard: the tree is one tab stop (`role=tree`, focusable itself); the selected row
//! is its active item (`aria-activedescendant`), moved by the arrow keys, Home and End
//! ([`super::nav`]). Focus stays on the tree element, which is never replaced, so
//! scrolling rows out of the DOM never drops focus to `<body>`; clicking a row selects it
//! and puts focus there too.
//!
//! Rows on which (or below which) a message arrived in the last two seconds are
//! highlighted; the highlight fades when it ends (CSS transition).
//!
//! The tree changes up to once a frame; flattening it costs time in proportion to its
//! nodes, so a large tree ([`LARGE_TREE`] nodes or more) is flattened again at most every
//! [`LARGE_TREE_REFRESH_MS`] (counts and last values then move four times a second),
//! while searching, collapsing and keys still take effect at once.

use std::collections::BTreeSet;
use std::time::Duration;

use leptos::html::Div;
use leptos::prelude::*;

use super::Explorer;
use super::nav::{self, Action};
use super::tree::{Row, Search};
use crate::connection::Connection;

/// Height of one tree row in pixels (CSS `.tree-row` uses the same): a touch target of
/// 32 px.
const ROW_HEIGHT: f64 = 32.0;
/// Height of the tree's viewport in pixels (CSS `.tree` uses the same).
const VIEWPORT: f64 = 448.0;
/// Rows rendered beyond the viewport on each side.
const OVERSCAN: usize = 8;
/// How long a row stays highlighted after a message (milliseconds).
const RECENT_MS: f64 = 2000.0;
/// The deepest level "Expand to" offers.
const MAX_LEVEL: usize = 6;
/// From this many nodes on, the tree is flattened at most every
/// [`LARGE_TREE_REFRESH_MS`].
const LARGE_TREE: usize = 5_000;
/// How often a large tree's rows follow its changes (milliseconds).
const LARGE_TREE_REFRESH_MS: f64 = 250.0;

/// The DOM id of the row at position `index` (what `aria-activedescendant` names).
fn item_id(index: usize) -> String {
    format!("tree-item-{index}")
}

/// The search box, the tree controls and the tree; `selected` is the selected topic.
#[component]
pub fn TopicTree(selected: RwSignal<Option<String>>) -> impl IntoView {
    let explorer = expect_context::<Explorer>();
    let connection = expect_context::<Connection>();
    let search_text = RwSignal::new(String::new());
    let collapsed = RwSignal::new(BTreeSet::<String>::new());
    let scroll = RwSignal::new(0.0_f64);
    let tree_ref = NodeRef::<Div>::new();
    // The clock of the "recently changed" highlight.
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) = set_interval_with_handle(
        move || now.set(js_sys::Date::now()),
        Duration::from_millis(500),
    ) {
        on_cleanup(move || handle.clear());
    }
    let search = Memo::new(move |_| search_text.with(|t| Search::parse(t).map_err(|e| e.clone())));
    let searching = move || search.with(|s| !matches!(s, Ok(Search::None) | Err(_)));
    // Moves when the rows should follow the tree's changes: at once for a small tree,
    // at most every LARGE_TREE_REFRESH_MS for a large one.
    let refresh = RwSignal::new(0_u64);
    let (last_refresh, waiting) = (StoredValue::new(0.0_f64), StoredValue::new(false));
    Effect::new(move |_| {
        explorer.tree.track();
        let large = explorer.tree.with_untracked(|t| t.len() >= LARGE_TREE);
        let since = js_sys::Date::now() - last_refresh.get_value();
        if !large || since >= LARGE_TREE_REFRESH_MS {
            last_refresh.set_value(js_sys::Date::now());
            refresh.update(|r| *r += 1);
        } else if !waiting.get_value() {
            waiting.set_value(true);
            let wait = Duration::from_millis((LARGE_TREE_REFRESH_MS - since).max(0.0) as u64);
            set_timeout(
                // The page may have closed meanwhile: `try_` does nothing then.
                move || {
                    waiting.try_update_value(|w| *w = false);
                    last_refresh.try_update_value(|t| *t = js_sys::Date::now());
                    refresh.try_update(|r| *r += 1);
                },
                wait,
            );
        }
    });
    let rows = Memo::new(move |_| {
        refresh.track();
        let search = match search.get() {
            Ok(search) => search,
            Err(_) => Search::None,
        };
        collapsed.with(|c| explorer.tree.with_untracked(|tree| tree.rows(c, &search)))
    });
    // The selected row's position, if it is shown.
    let active = Memo::new(move |_| {
        selected.with(|s| {
            let s = s.as_deref()?;
            rows.with(|rows| rows.iter().position(|r| r.path == s))
        })
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
    let matches = move || {
        searching().then(|| match rows.with(Vec::len) {
            1 => "1 matching topic".to_owned(),
            n => format!("{n} matching topics"),
        })
    };
    // Keeps the row at `index` inside the viewport.
    let reveal = move |index: usize| {
        let Some(tree) = tree_ref.get_untracked() else {
            return;
        };
        let (top, height) = (index as f64 * ROW_HEIGHT, f64::from(tree.client_height()));
        let scrolled = f64::from(tree.scroll_top());
        if top < scrolled {
            tree.set_scroll_top(top as i32);
        } else if top + ROW_HEIGHT > scrolled + height {
            tree.set_scroll_top((top + ROW_HEIGHT - height) as i32);
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.alt_key() || ev.ctrl_key() || ev.meta_key() {
            return;
        }
        let key = ev.key();
        let action = rows.with_untracked(|rows| {
            collapsed.with_untracked(|c| nav::action(rows, active.get_untracked(), c, &key))
        });
        let Some(action) = action else {
            return;
        };
        ev.prevent_default();
        match action {
            Action::Move(index) => {
                if let Some(path) =
                    rows.with_untracked(|rows| rows.get(index).map(|r| r.path.clone()))
                {
                    selected.set(Some(path));
                    reveal(index);
                }
            }
            Action::Expand(path) => collapsed.update(|c| {
                c.remove(&path);
            }),
            Action::Collapse(path) => collapsed.update(|c| {
                c.insert(path);
            }),
        }
    };
    let expand_to = move |levels: usize| {
        collapsed.set(
            explorer
                .tree
                .with_untracked(|t| t.collapsed_from(levels.saturating_sub(1))),
        );
    };
    let levels = (1..=MAX_LEVEL)
        .map(|n| view! { <option value=n.to_string()>{format!("{n} level{}", if n == 1 { "" } else { "s" })}</option> })
        .collect_view();

    view! {
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
        <p class="muted" data-testid="explorer-matches">{matches}</p>
        <div class="tree-controls" class:hidden=searching>
            <button data-testid="tree-collapse-all" on:click=move |_| expand_to(1)>
                "Collapse all"
            </button>
            <button data-testid="tree-expand-all" on:click=move |_| collapsed.set(BTreeSet::new())>
                "Expand all"
            </button>
            <label>
                "Expand to "
                <select
                    data-testid="tree-expand-to"
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse::<usize>() {
                            expand_to(n);
                        }
                    }
                >
                    <option value="" selected>"…"</option>
                    {levels}
                </select>
            </label>
        </div>
        <div
            class="tree"
            class:offline=move || !connection.is_live()
            role="tree"
            tabindex="0"
            aria-label="Topics"
            aria-activedescendant=move || active.get().map(item_id)
            data-testid="explorer-tree"
            node_ref=tree_ref
            on:keydown=on_key
            on:scroll=move |ev| scroll.set(event_target::<web_sys::Element>(&ev).scroll_top().into())
        >
            <div
                class="tree-spacer"
                role="none"
                style=move || format!("height: {}px", rows.with(Vec::len) as f64 * ROW_HEIGHT)
            >
                <For each=visible key=|item| item.clone() let:item>
                    <TreeRow index=item.0 rows collapsed selected now tree_ref />
                </For>
            </div>
        </div>
    }
}

/// The row at position `index`.
#[component]
fn TreeRow(
    index: usize,
    rows: Memo<Vec<Row>>,
    collapsed: RwSignal<BTreeSet<String>>,
    selected: RwSignal<Option<String>>,
    now: RwSignal<f64>,
    tree_ref: NodeRef<Div>,
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
            focus_tree(tree_ref);
        }
    };
    let select = {
        let path = path.clone();
        move |_| {
            selected.set(Some(path.clone()));
            focus_tree(tree_ref);
        }
    };
    let is_selected = {
        let path = path.clone();
        move || selected.with(|s| s.as_deref() == Some(path.as_str()))
    };
    let expanded = {
        let is_collapsed = is_collapsed.clone();
        let has_children = first.has_children;
        move || has_children.then(|| (!is_collapsed()).to_string())
    };
    let expander = first.has_children.then(|| {
        view! {
            <button
                class="expander"
                tabindex="-1"
                aria-hidden="true"
                data-testid="tree-expander"
                on:click=toggle
            >
                {move || if is_collapsed() { "▸" } else { "▾" }}
            </button>
        }
    });
    let recent = move || {
        row.with(|r| {
            r.as_ref()
                .is_some_and(|r| now.get() - r.changed_ms < RECENT_MS)
        })
    };
    let field =
        move |f: fn(&Row) -> String| move || row.with(|r| r.as_ref().map(f).unwrap_or_default());
    view! {
        <div
            class="tree-row"
            class:selected=is_selected.clone()
            class:changed=recent
            role="treeitem"
            id=item_id(index)
            attr:aria-level=(first.depth + 1).to_string()
            aria-expanded=expanded
            aria-selected=move || is_selected().to_string()
            data-testid="tree-row"
            data-topic=path
            style=format!(
                "top: {}px; padding-left: {}rem",
                index as f64 * ROW_HEIGHT,
                first.depth as f64 + 0.2,
            )
        >
            {expander}
            <button class="link label" tabindex="-1" data-testid="tree-label" on:click=select>
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

/// Puts keyboard focus on the tree element (after a click on a row's button, which would
/// otherwise hold focus until the row is re-rendered away).
fn focus_tree(tree_ref: NodeRef<Div>) {
    if let Some(tree) = tree_ref.get_untracked() {
        let _ = tree.focus();
    }
}
