//! The device list: one row per device with its name, state, when it was last seen
//! (marked stale when a ready device has been silent too long) and its key values.
//!
//! A search box (name or id), a state filter and a sort (name, state, last seen) choose
//! the rows ([`super::order`]); lost and disconnected devices are subdued and, unless the
//! user says otherwise, listed after the others. The list is windowed like the
//! explorer's tree: rows have a fixed height and only those in view (plus a few either
//! side) exist in the DOM, so the DOM of ten thousand devices is a screenful (their
//! messages still cost; see BENCHMARKS.md).
//!
//! While the page is not connected nothing in the list is live: every row is marked
//! stale (greyed, its state shown as unknown, "last seen" as the clock time it was last
//! heard from instead of a growing age), and the count says the states are unknown.

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::homie::{DeviceState, Property};
use super::order::{Arrangement, Entry, SortKey, StateFilter};
use super::{Device, Registry};
use crate::Page;
use crate::connection::{Connection, Status, clock_time};

/// A ready device silent for longer than this is marked stale.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// How many key values a row shows.
const KEY_VALUES: usize = 3;
/// Height of one row in pixels (CSS `.device-row` uses the same): one line, and a touch
/// target taller than 32 px at any width.
const ROW_HEIGHT: f64 = 44.0;
/// Greatest height of the list's viewport in pixels (CSS `.device-viewport` uses the same).
const VIEWPORT: f64 = 616.0;
/// Rows rendered beyond the viewport on each side.
const OVERSCAN: usize = 6;

/// "12 s ago", "4 min ago", "2 h ago".
pub fn ago(elapsed_ms: f64) -> String {
    let secs = (elapsed_ms / 1000.0).max(0.0) as u64;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// Whether a device in `state`, last seen at `last_seen`, counts as stale at `now`.
pub fn is_stale(state: DeviceState, last_seen: Option<f64>, now: f64) -> bool {
    state == DeviceState::Ready
        && last_seen.is_some_and(|seen| now - seen > STALE_AFTER.as_millis() as f64)
}

/// Whether a device in `state` has gone away (lost, or disconnected cleanly): its row
/// is subdued and sorted after the others.
pub fn is_gone(state: DeviceState) -> bool {
    matches!(
        state,
        DeviceState::Lost | DeviceState::Disconnected | DeviceState::Offline
    )
}

/// The list of discovered devices, with its search, filter and sort.
#[component]
pub fn DeviceList() -> impl IntoView {
    let registry = expect_context::<Registry>();
    let page = expect_context::<RwSignal<Page>>();
    let connection = expect_context::<Connection>();
    let live = Signal::derive(move || connection.is_live());
    // The clock the "ago" texts and stale marks follow.
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) =
        set_interval_with_handle(move || now.set(js_sys::Date::now()), Duration::from_secs(2))
    {
        on_cleanup(move || handle.clear());
    }
    let arrangement = RwSignal::new(Arrangement::new());
    // The ids shown, in order. Recomputed when the registry's revision moves (at most
    // once a frame: a device added, a state or a name changed) or the arrangement
    // changes; sorted by last seen, also with the clock, so rows do not jump at every
    // message. The devices themselves are read untracked: tracking ten thousand
    // signals would cost more than the sort.
    let order = Memo::new(move |_| {
        registry.revision.track();
        let arrangement = arrangement.get();
        let by_seen = arrangement.sort == SortKey::LastSeen;
        if by_seen {
            now.track();
        }
        let entries = untrack(|| {
            registry.devices.with(|devices| {
                devices
                    .values()
                    .map(|device| Entry {
                        id: device.id.clone(),
                        name: device.name(),
                        state: device.state.get(),
                        last_seen: if by_seen {
                            device.last_seen.get()
                        } else {
                            None
                        },
                    })
                    .collect()
            })
        });
        arrangement.apply(entries)
    });
    let total = Memo::new(move |_| {
        registry.revision.track();
        untrack(|| registry.devices.with(|d| d.len()))
    });
    let counts = move || {
        registry.revision.track();
        if !live.get() {
            return format!("{} devices, states unknown: not connected", total.get());
        }
        let ready = untrack(|| {
            registry.devices.with(|devices| {
                devices
                    .values()
                    .filter(|d| d.state.get() == DeviceState::Ready)
                    .count()
            })
        });
        format!("{} devices, {ready} ready", total.get())
    };
    let shown = move || {
        let (shown, total) = (order.with(Vec::len), total.get());
        if shown == total {
            String::new()
        } else {
            format!("showing {shown} of {total}")
        }
    };
    let scroll = RwSignal::new(0.0_f64);
    // The rows in view, by position and id: a row's element stays while its device
    // stays at its position.
    let visible = move || {
        let total = order.with(Vec::len);
        let first = ((scroll.get() / ROW_HEIGHT) as usize).saturating_sub(OVERSCAN);
        let last = (first + (VIEWPORT / ROW_HEIGHT) as usize + 2 * OVERSCAN).min(total);
        order.with(|order| {
            order
                .get(first.min(last)..last)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, id)| (first + i, id.clone()))
                .collect::<Vec<_>>()
        })
    };
    let row = move |(index, id): (usize, String)| {
        let device = registry.devices.with_untracked(|d| d.get(&id).cloned());
        device.map(|device| view! { <DeviceRow device index page now live /> })
    };
    view! {
        <section class="devices card" data-testid="devices">
            <h2>"Devices " <span class="muted" data-testid="devices-count">{counts}</span></h2>
            <super::ha::DiscoveryWarnings />
            <Show
                when=move || total.get() != 0
                fallback=move || view! { <EmptyList connection /> }
            >
                <ListControls arrangement />
                <p class="muted" data-testid="devices-shown">{shown}</p>
                <div
                    class="device-viewport"
                    data-testid="device-viewport"
                    on:scroll=move |ev| {
                        scroll.set(event_target::<web_sys::Element>(&ev).scroll_top().into())
                    }
                >
                    <ul
                        class="device-list"
                        data-testid="device-list"
                        style=move || format!("height: {}px", order.with(Vec::len) as f64 * ROW_HEIGHT)
                    >
                        <For each=visible key=|item| item.clone() children=row />
                    </ul>
                </div>
            </Show>
        </section>
    }
}

/// The search box, state filter, sort and "gone last" switch above the list.
#[component]
fn ListControls(arrangement: RwSignal<Arrangement>) -> impl IntoView {
    let sorts = SortKey::ALL
        .into_iter()
        .map(|(_, value, label)| view! { <option value=value>{label}</option> })
        .collect_view();
    let filters = StateFilter::ALL
        .into_iter()
        .map(|(_, value, label)| view! { <option value=value>{label}</option> })
        .collect_view();
    view! {
        <div class="list-controls">
            <label class="field">
                <span>"Search"</span>
                <input
                    type="search"
                    placeholder="name or id"
                    data-testid="device-search"
                    prop:value=move || arrangement.with(|a| a.search.clone())
                    on:input=move |ev| arrangement.update(|a| a.search = event_target_value(&ev))
                />
            </label>
            <label class="field">
                <span>"State"</span>
                <select
                    data-testid="device-filter"
                    on:change=move |ev| {
                        arrangement.update(|a| a.filter = StateFilter::parse(&event_target_value(&ev)))
                    }
                >
                    {filters}
                </select>
            </label>
            <label class="field">
                <span>"Sort by"</span>
                <select
                    data-testid="device-sort"
                    on:change=move |ev| {
                        arrangement.update(|a| a.sort = SortKey::parse(&event_target_value(&ev)))
                    }
                >
                    {sorts}
                </select>
            </label>
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="device-gone-last"
                    prop:checked=move || arrangement.with(|a| a.gone_last)
                    on:change=move |ev| {
                        arrangement.update(|a| a.gone_last = event_target_checked(&ev))
                    }
                />
                " lost and disconnected last"
            </label>
        </div>
    }
}

/// What an empty list says: connecting, no devices, or why there is no connection.
#[component]
fn EmptyList(connection: Connection) -> impl IntoView {
    let text = move || match connection.status.get() {
        Status::Connected => "No devices yet.",
        Status::Connecting | Status::Reconnecting(_) => "Connecting to the broker…",
        _ => "Not connected: no devices to show (see the message above).",
    };
    let testid = move || {
        if connection.is_live() {
            "devices-empty"
        } else {
            "devices-connecting"
        }
    };
    view! { <p data-testid=testid>{text}</p> }
}

/// Moves keyboard focus to the device page's heading once it is rendered, so that
/// opening a device leaves focus in its page (not on `<body>`, which is where it goes
/// when the row's button disappears).
fn focus_device_page(tries: u32) {
    request_animation_frame(move || {
        let heading = web_sys::window().and_then(|w| w.document()).and_then(|d| {
            d.query_selector("[data-testid=device-page] h2")
                .ok()
                .flatten()
        });
        match heading {
            Some(heading) => {
                let _ = heading.set_attribute("tabindex", "-1");
                if let Some(heading) = heading.dyn_ref::<web_sys::HtmlElement>() {
                    let _ = heading.focus();
                }
            }
            None if tries > 0 => focus_device_page(tries - 1),
            None => {}
        }
    });
}

/// One device's row, placed at position `index` of the list.
#[component]
fn DeviceRow(
    device: Device,
    index: usize,
    page: RwSignal<Page>,
    now: RwSignal<f64>,
    live: Signal<bool>,
) -> impl IntoView {
    let id = device.id.clone();
    let state = device.state;
    let last_seen = device.last_seen;
    let testid = format!("device-{id}");
    let name = {
        let device = device.clone();
        move || device.name()
    };
    let silent = move || live.get() && is_stale(state.get(), last_seen.get(), now.get());
    let stale = move || !live.get() || silent();
    let seen = move || match last_seen.get() {
        None => "never".to_owned(),
        Some(t) if live.get() => ago(now.get() - t),
        Some(t) => format!("seen at {}", clock_time(t)),
    };
    // Not connected: the last state heard is no longer known to hold.
    let shown_state = move || {
        if live.get() {
            state.get()
        } else {
            DeviceState::Unknown
        }
    };
    let stale_title = move || {
        if live.get() {
            "No message for a minute".to_owned()
        } else {
            format!(
                "Not connected: this is what the device last reported ({})",
                state.get().label()
            )
        }
    };
    let description = device.description;
    let values = device.values;
    let key_values = move || {
        let keys: Vec<Property> = description.with(|d| match d {
            Some(Ok(d)) => d
                .properties
                .iter()
                .filter(|p| !p.settable)
                .take(KEY_VALUES)
                .cloned()
                .collect(),
            _ => Vec::new(),
        });
        values.with(|values| {
            keys.iter()
                .filter_map(|p| {
                    let value = values.get(&p.path())?;
                    let unit = p.unit.as_deref().unwrap_or_default();
                    Some(format!("{value} {unit}").trim_end().to_owned())
                })
                .collect::<Vec<_>>()
                .join(" · ")
        })
    };
    let open = move |_| {
        page.set(Page::Device(id.clone()));
        focus_device_page(10);
    };
    // The id only when it says more than the name (it is the name when there is none).
    let id_note = {
        let device = device.clone();
        move || {
            let name = device.name();
            (name != device.id).then(|| device.id.clone())
        }
    };
    view! {
        <li
            class="device-row"
            class:stale=stale
            class:offline=move || !live.get()
            class:gone=move || is_gone(state.get())
            style=format!("top: {}px", index as f64 * ROW_HEIGHT)
            data-testid=testid
        >
            <button class="link" data-testid="device-open" title=device.id.clone() on:click=open>
                <span class="name" data-testid="device-name">{name}</span>
                <span class="device-id">{id_note}</span>
            </button>
            <super::ha::ConventionBadge id=device.id.clone() />
            <span class="key-values" data-testid="device-values">{key_values}</span>
            <span class="seen muted" data-testid="device-seen">{seen}</span>
            <span
                class=move || format!("badge state-{}", shown_state().label())
                data-testid="device-state"
                title=stale_title
            >
                {move || shown_state().label()}
            </span>
            <Show when=stale>
                <span class="badge stale" data-testid="device-stale" title=stale_title>
                    "stale"
                </span>
            </Show>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally_and_silent_ready_devices_are_stale() {
        assert_eq!(ago(12_400.0), "12 s ago");
        assert_eq!(ago(240_000.0), "4 min ago");
        assert_eq!(ago(7_300_000.0), "2 h ago");
        assert_eq!(ago(-5.0), "0 s ago");
        let minute = 60_000.0;
        assert!(is_stale(DeviceState::Ready, Some(0.0), minute + 1.0));
        assert!(!is_stale(DeviceState::Ready, Some(0.0), minute - 1.0));
        // Lost or sleeping devices are expected to be silent.
        assert!(!is_stale(DeviceState::Sleeping, Some(0.0), 10.0 * minute));
        assert!(!is_stale(DeviceState::Ready, None, 10.0 * minute));
    }

    #[test]
    fn lost_and_disconnected_devices_count_as_gone() {
        assert!(is_gone(DeviceState::Lost));
        assert!(is_gone(DeviceState::Disconnected));
        for state in [
            DeviceState::Init,
            DeviceState::Ready,
            DeviceState::Sleeping,
            DeviceState::Unknown,
        ] {
            assert!(!is_gone(state), "{state:?}");
        }
    }
}
