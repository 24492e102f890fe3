//! The device list: one row per device with its name, state, when it was last seen
//! (marked stale when a ready device has been silent too long) and its key values.
//!
//! Lost and disconnected devices are subdued and listed after the others.
//!
//! While the page is not connected nothing in the list is live: every row is marked
//! stale (greyed, its state shown as unknown, "last seen" as the clock time it was last
//! heard from instead of a growing age), and the count says the states are unknown.

use std::time::Duration;

use leptos::prelude::*;

use super::homie::{DeviceState, Property};
use super::{Device, Registry};
use crate::Page;
use crate::connection::{Connection, Status, clock_time};

/// A ready device silent for longer than this is marked stale.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// How many key values a row shows.
const KEY_VALUES: usize = 3;

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

/// `devices` (in id order) with the gone ones moved after the others, each group
/// keeping id order.
fn live_first(mut devices: Vec<Device>) -> Vec<Device> {
    devices.sort_by_key(|device| is_gone(device.state.get()));
    devices
}

/// The list of discovered devices.
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
    let counts = move || {
        if !live.get() {
            return registry.devices.with(|devices| {
                format!("{} devices, states unknown: not connected", devices.len())
            });
        }
        registry.devices.with(|devices| {
            let online = devices
                .values()
                .filter(|d| d.state.get() == DeviceState::Ready)
                .count();
            format!("{} devices, {online} ready", devices.len())
        })
    };
    view! {
        <section class="devices card" data-testid="devices">
            <h2>"Devices " <span class="muted" data-testid="devices-count">{counts}</span></h2>
            <super::ha::DiscoveryWarnings />
            <Show
                when=move || registry.devices.with(|d| !d.is_empty())
                fallback=move || view! { <EmptyList connection /> }
            >
                <ul class="device-list">
                    <For
                        each=move || live_first(registry.devices.get().into_values().collect())
                        key=|device| device.id.clone()
                        let:device
                    >
                        <DeviceRow device=device page=page now=now live=live />
                    </For>
                </ul>
            </Show>
        </section>
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

#[component]
fn DeviceRow(
    device: Device,
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
    let open = move |_| page.set(Page::Device(id.clone()));
    view! {
        <li
            class="device-row"
            class:stale=stale
            class:offline=move || !live.get()
            class:gone=move || is_gone(state.get())
            data-testid=testid
        >
            <button class="link" data-testid="device-open" on:click=open>
                <span data-testid="device-name">{name}</span>
                <span class="device-id">{device.id.clone()}</span>
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
