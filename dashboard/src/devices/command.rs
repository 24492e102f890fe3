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
            target.set(Some(payload.clone()));
            send(&device, &path, payload, state)
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
                    disabled=pending
                    on:click=move |_| sender((if on() { "false" } else { "true" }).to_owned())
                >
                    {move || if on() { "On" } else { "Off" }}
                </button>
            }
            .into_any()
        }
        Control::Slider { min, max, step } => {
            let draft = RwSignal::new(String::new());
            let shown = move || {
                let typed = draft.get();
                if typed.is_empty() {
                    value.get().unwrap_or_default()
                } else {
                    typed
                }
            };
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
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:change=move |ev| slider_send(event_target_value(&ev))
                />
                <NumberField draft label sender />
            }
            .into_any()
        }
        Control::Number { .. } => {
            let draft = RwSignal::new(String::new());
            view! { <NumberField draft label sender /> }.into_any()
        }
        Control::Enum(values) => {
            let options = values
                .into_iter()
                .map(|v| view! { <option value=v.clone()>{v.clone()}</option> })
                .collect_view();
            view! {
                <select
                    aria-label=label
                    data-testid="enum"
                    prop:value=move || value.get().unwrap_or_default()
                    on:change=move |ev| sender(event_target_value(&ev))
                >
                    <option value="" disabled=true>"—"</option>
                    {options}
                </select>
            }
            .into_any()
        }
        Control::Action(action) => view! {
            <button
                class="action"
                data-testid="action"
                disabled=pending
                on:click=move |_| sender(action.clone())
            >
                {action.clone()}
            </button>
        }
        .into_any(),
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
        <span class="control">
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

/// A number input that sends what is typed on Enter or "Set"; the device judges it
/// (so a value out of range shows the device's rejection).
#[component]
fn NumberField(
    draft: RwSignal<String>,
    label: String,
    sender: impl Fn(String) + Clone + 'static,
) -> impl IntoView {
    view! {
        <form class="inline" on:submit=move |ev| {
            ev.prevent_default();
            let typed = draft.get_untracked();
            if !typed.trim().is_empty() {
                sender(typed.trim().to_owned());
            }
        }>
            <input
                type="number"
                step="any"
                class="number"
                aria-label=label
                data-testid="number-input"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
            />
            <button type="submit" data-testid="send">"Set"</button>
        </form>
    }
}
