//! Commands to a device (docs/ARCHITECTURE.md, "Device topic convention"): a `/set`
//! with MQTT 5 Response Topic `dash/{client-id}/res/{dev}`, correlation data and
//! Message Expiry, sent through `web-client`'s request/response, and the controls that
//! send them: a switch, a slider with a number input, a number input, an enum select, a
//! text input and an action button. Each shows where its last command stands: pending
//! → ok / rejected / timed out.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Error, PublishOptions, QoS};

use super::homie::{self, Control};
use crate::connection::Connection;
use crate::settings::Settings;

/// How long a command waits for the device's reply before it counts as timed out.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Message Expiry of a `/set`: a command older than this must not be applied.
const COMMAND_EXPIRY_SECS: u32 = 30;

/// Where a command stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandState {
    /// No command sent yet.
    Idle,
    /// Sent; no reply yet.
    Pending,
    /// The device accepted it.
    Ok,
    /// The device (or the broker) refused it: why.
    Rejected(String),
    /// No reply within [`COMMAND_TIMEOUT`].
    TimedOut,
}

impl CommandState {
    fn label(&self) -> String {
        match self {
            Self::Idle => String::new(),
            Self::Pending => "pending".to_owned(),
            Self::Ok => "ok".to_owned(),
            Self::Rejected(why) => format!("rejected: {why}"),
            Self::TimedOut => "timed out".to_owned(),
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Self::Idle => "command",
            Self::Pending => "command pending",
            Self::Ok => "command ok",
            Self::Rejected(_) => "command rejected",
            Self::TimedOut => "command timed-out",
        }
    }
}

/// Sends `payload` to `{root}/5/{device}/{path}/set` and settles `state` with the reply
/// (or, for devices that cannot reply, the echoed value: see [`PropertyControl`]).
fn send(device: &str, path: &str, payload: String, state: RwSignal<CommandState>) {
    if super::ha::is_ha(device) {
        return super::ha::send(device, path, payload, state);
    }
    let connection = expect_context::<Connection>();
    let settings = expect_context::<RwSignal<Settings>>();
    let Some(client) = connection.client.get_untracked() else {
        state.set(CommandState::Rejected("not connected".to_owned()));
        return;
    };
    let (root, response_topic) =
        settings.with_untracked(|s| (s.root.clone(), s.response_topic(device)));
    let topic = format!("{root}/5/{device}/{path}/set");
    state.set(CommandState::Pending);
    spawn_local(async move {
        let mut options = PublishOptions::new(QoS::AtLeastOnce);
        options.properties.message_expiry_interval = Some(COMMAND_EXPIRY_SECS);
        options.properties.response_topic = Some(response_topic.into());
        let outcome = client
            .request_with(topic, payload, options, COMMAND_TIMEOUT)
            .await;
        let settled = match outcome {
            Ok(reply) => match homie::parse_reply(&reply.payload) {
                Ok(()) => CommandState::Ok,
                Err(why) => CommandState::Rejected(why),
            },
            Err(Error::Timeout(_)) => CommandState::TimedOut,
            Err(error) => CommandState::Rejected(error.to_string()),
        };
        // An echoed value may have settled it already (a 3.1.1 device's only answer).
        state.update(|current| {
            if *current == CommandState::Pending {
                *current = settled;
            }
        });
    });
}

/// The control for a settable property, and its command's state.
#[component]
pub fn PropertyControl(
    /// The device id.
    device: String,
    /// `node/prop`.
    path: String,
    /// The property's name, for labels.
    name: String,
    /// Which control.
    control: Control,
    /// The live value.
    value: RwSignal<Option<String>>,
) -> impl IntoView {
    let state = RwSignal::new(CommandState::Idle);
    let pending = move || state.with(|c| *c == CommandState::Pending);
    let edit = Edit::new();
    // A command settled (ok, rejected or timed out): inputs show the device's value
    // again, whatever was typed.
    Effect::new(move |was_pending: Option<bool>| {
        let now_pending = pending();
        if was_pending == Some(true) && !now_pending {
            edit.dirty.set(false);
        }
        now_pending
    });
    // The value a pending command asked for. A device that cannot answer over MQTT 5
    // request/response (a 3.1.1 client) confirms by publishing the new value
    // (docs/ARCHITECTURE.md, "Device topic convention"): that settles the command as ok
    // too.
    let target = RwSignal::new(None::<String>);
    Effect::new(move || {
        let echoed = value.get();
        if state.with_untracked(|c| *c == CommandState::Pending)
            && target.with_untracked(|t| homie::same_value(t.as_deref(), echoed.as_deref()))
        {
            state.set(CommandState::Ok);
        }
    });
    let sender = {
        let (device, path) = (device.clone(), path.clone());
        move |payload: String| {
            edit.draft.set(payload.clone());
            target.set(Some(payload.clone()));
            send(&device, &path, payload, state)
        }
    };
    // What the slider and number inputs show: the device's value, unless the user is
    // typing or dragging (dirty) or a command is on its way (then what it asked for).
    // A republished equal value changes nothing (the memo), so it never rewrites an
    // input under the user's caret.
    let reported = Memo::new(move |_| value.get().unwrap_or_default());
    let shown = move || {
        if edit.dirty.get() || pending() {
            edit.draft.get()
        } else {
            reported.get()
        }
    };
    let label = format!("Set {name}");
    let input = match control {
        Control::Switch => {
            let on = move || value.with(|v| v.as_deref() == Some("true"));
            view! {
                <button
                    class=move || if on() { "switch on" } else { "switch" }
                    role="switch"
                    aria-checked=move || on().to_string()
                    aria-label=label
                    data-testid="switch"
                    aria-disabled=move || pending().to_string()
                    on:click=move |_| {
                        if !pending() {
                            sender((if on() { "false" } else { "true" }).to_owned());
                        }
                    }
                >
                    {move || if on() { "On" } else { "Off" }}
                </button>
            }
            .into_any()
        }
        Control::Slider { min, max, step } => {
            let slider_send = sender.clone();
            view! {
                <input
                    type="range"
                    min=min
                    max=max
                    step=step
                    aria-label=label.clone()
                    data-testid="slider"
                    prop:value=shown
                    on:input=move |ev| edit.type_in(event_target_value(&ev))
                    on:change=move |ev| slider_send(event_target_value(&ev))
                />
                <NumberField edit shown label sender />
            }
            .into_any()
        }
        Control::Number { .. } => view! { <NumberField edit shown label sender /> }.into_any(),
        Control::Enum(values) => {
            let options = values
                .into_iter()
                .map(|v| view! { <option value=v.clone()>{v.clone()}</option> })
                .collect_view();
            view! {
                <select
                    aria-label=label
                    data-testid="enum"
                    prop:value=move || {
                        // Re-applied when a command settles: a rejected choice goes back.
                        state.track();
                        value.get().unwrap_or_default()
                    }
                    on:change=move |ev| sender(event_target_value(&ev))
                >
                    <option value="" disabled=true>"—"</option>
                    {options}
                </select>
            }
            .into_any()
        }
        Control::Action(action) => view! { <ActionButton action pending sender /> }.into_any(),
        Control::Text => {
            let draft = RwSignal::new(String::new());
            view! {
                <form class="inline" on:submit=move |ev| {
                    ev.prevent_default();
                    sender(draft.get_untracked());
                }>
                    <input
                        type="text"
                        aria-label=label
                        data-testid="text-input"
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                    />
                    <button type="submit" data-testid="send">"Set"</button>
                </form>
            }
            .into_any()
        }
    };
    view! {
        <span
            class="control"
            on:focusout=move |ev| {
                // Focus left the control (not just moved from the slider to its number
                // field or "Set"): an unsent edit is dropped, the device's value shows.
                if !contains_focus_target(&ev) {
                    edit.dirty.set(false);
                }
            }
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    edit.dirty.set(false);
                }
            }
        >
            {input}
            <span
                class=move || state.with(CommandState::class)
                role="status"
                data-testid="command-state"
            >
                {move || state.with(CommandState::label)}
            </span>
        </span>
    }
}

/// The draft of a slider or number input: what the user typed or dragged to, and
/// whether it is newer than the device's value.
#[derive(Debug, Clone, Copy)]
struct Edit {
    /// The value typed, dragged to, or last sent.
    draft: RwSignal<String>,
    /// Whether the user changed the input since the device's value was shown.
    dirty: RwSignal<bool>,
}

impl Edit {
    fn new() -> Self {
        Self {
            draft: RwSignal::new(String::new()),
            dirty: RwSignal::new(false),
        }
    }

    /// The user typed or dragged to `text`.
    fn type_in(self, text: String) {
        self.draft.set(text);
        self.dirty.set(true);
    }
}

/// Whether a `focusout` moves focus to another element inside the element it left.
fn contains_focus_target(ev: &web_sys::FocusEvent) -> bool {
    use wasm_bindgen::JsCast;
    let inside = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
    let next = ev
        .related_target()
        .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
    match (inside, next) {
        (Some(inside), Some(next)) => inside.contains(Some(&next)),
        _ => false,
    }
}

/// A number input that shows the device's value unless the user is editing, and sends
/// what is typed on Enter or "Set"; the device judges it (so a value out of range shows
/// the device's rejection, and the input returns to the device's value).
#[component]
fn NumberField(
    edit: Edit,
    shown: impl Fn() -> String + Send + Sync + 'static,
    label: String,
    sender: impl Fn(String) + Clone + 'static,
) -> impl IntoView {
    view! {
        <form class="inline" on:submit=move |ev| {
            ev.prevent_default();
            let typed = edit.draft.get_untracked();
            if edit.dirty.get_untracked() && !typed.trim().is_empty() {
                sender(typed.trim().to_owned());
            }
        }>
            <input
                type="number"
                step="any"
                class="number"
                aria-label=label
                data-testid="number-input"
                prop:value=shown
                on:input=move |ev| edit.type_in(event_target_value(&ev))
            />
            <button type="submit" data-testid="send">"Set"</button>
        </form>
    }
}

/// Whether an action interrupts the device or loses data, so that it asks first.
pub fn is_disruptive(action: &str) -> bool {
    const WORDS: [&str; 10] = [
        "reboot", "restart", "reset", "shutdown", "power", "factory", "erase", "delete", "wipe",
        "format",
    ];
    let action = action.to_ascii_lowercase();
    WORDS.iter().any(|w| action.contains(w))
}

/// An action's button (a one-value enum such as `reboot`). A disruptive action
/// ([`is_disruptive`]) asks first, inline: "Confirm" or "Cancel", focus on "Confirm",
/// and back on the button afterwards. While the command is pending the button says so
/// (`aria-disabled`) but keeps its focus.
#[component]
fn ActionButton(
    action: String,
    pending: impl Fn() -> bool + Copy + Send + Sync + 'static,
    sender: impl Fn(String) + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let asking = RwSignal::new(false);
    let button = NodeRef::<leptos::html::Button>::new();
    let confirm = NodeRef::<leptos::html::Button>::new();
    let disruptive = is_disruptive(&action);
    Effect::new(move || {
        if asking.get()
            && let Some(confirm) = confirm.get()
        {
            let _ = confirm.focus();
        }
    });
    let close = move || {
        asking.set(false);
        if let Some(button) = button.get_untracked() {
            let _ = button.focus();
        }
    };
    let go = {
        let (action, sender) = (action.clone(), sender.clone());
        move |_| {
            close();
            sender(action.clone());
        }
    };
    let question = {
        let mut letters = action.chars();
        let first: String = letters
            .next()
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_default();
        format!("{first}{} the device?", letters.as_str())
    };
    view! {
        <button
            class="action"
            data-testid="action"
            node_ref=button
            aria-disabled=move || pending().to_string()
            aria-expanded=move || disruptive.then(|| asking.get().to_string())
            on:click={
                let action = action.clone();
                move |_| {
                    if pending() {
                        return;
                    }
                    if disruptive {
                        asking.set(true);
                    } else {
                        sender(action.clone());
                    }
                }
            }
        >
            {action.clone()}
        </button>
        <Show when=move || asking.get()>
            <span
                class="confirm"
                role="group"
                aria-label=question.clone()
                data-testid="confirm-step"
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        close();
                    }
                }
            >
                <span class="warn">{question.clone()}</span>
                <button class="danger" data-testid="confirm" node_ref=confirm on:click=go.clone()>
                    "Confirm"
                </button>
                <button data-testid="cancel" on:click=move |_| close()>
                    "Cancel"
                </button>
            </span>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::is_disruptive;

    #[test]
    fn reboots_and_resets_ask_first_and_harmless_actions_do_not() {
        for action in [
            "reboot",
            "Restart",
            "factory-reset",
            "erase-logs",
            "power-off",
        ] {
            assert!(is_disruptive(action), "{action}");
        }
        for action in ["identify", "refresh", "ping", "calibrate"] {
            assert!(!is_disruptive(action), "{action}");
        }
    }
}
