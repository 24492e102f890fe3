//! Settings: connection profiles (name, broker URL, credentials, client id, topic root,
//! limits; [`profiles`]), one active, kept in the browser's `localStorage` without
//! their password or token unless the profile says to remember them (then stored in
//! plain text, and the form says so; otherwise they live in `sessionStorage` for the
//! tab); and the form that edits and switches them.

pub mod profiles;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use web_client::{ConnectOptions, ProtocolVersion};

use crate::connection::Connection;

use profiles::Profiles;

/// What the dashboard connects with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The profile's name, shown in the header.
    pub name: String,
    /// Keep the password and token in `localStorage` (plain text, on this device);
    /// otherwise only for this tab's session.
    pub remember_secrets: bool,
    /// `ws://` or `wss://` URL of the broker's `/mqtt`. Default: the page's own origin.
    pub broker_url: String,
    /// User name (with `password`); ignored when `token` is set.
    pub username: String,
    /// Password for `username`.
    pub password: String,
    /// A token (JWT) sent in the password field, for brokers that authenticate so.
    pub token: String,
    /// MQTT client id: `dash-` and a random suffix, so two tabs do not take each other over.
    pub client_id: String,
    /// Homie topic root. Default `iot`.
    pub root: String,
    /// Home Assistant discovery prefix. Default `homeassistant`.
    pub ha_prefix: String,
    /// Samples kept per numeric property for the device page's chart.
    pub history_limit: usize,
    /// Messages kept per topic in the explorer.
    pub topic_history: usize,
    /// Bytes of a payload kept in the explorer; longer ones are truncated and say so.
    pub payload_limit: usize,
}

/// Default of [`Settings::history_limit`].
pub const DEFAULT_HISTORY_LIMIT: usize = 2000;
/// Default of [`Settings::topic_history`].
pub const DEFAULT_TOPIC_HISTORY: usize = 20;
/// Default of [`Settings::payload_limit`].
pub const DEFAULT_PAYLOAD_LIMIT: usize = 16 * 1024;

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: profiles::DEFAULT_NAME.to_owned(),
            remember_secrets: false,
            broker_url: default_broker_url(),
            username: String::new(),
            password: String::new(),
            token: String::new(),
            client_id: random_client_id(),
            root: "iot".to_owned(),
            ha_prefix: "homeassistant".to_owned(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            topic_history: DEFAULT_TOPIC_HISTORY,
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
        }
    }
}

impl Settings {
    /// The saved settings, or the defaults. A generated client id ([`random_client_id`])
    /// is this tab's own: localStorage is shared by every tab, and two tabs with one id
    /// would take each other's session over, so the id comes from sessionStorage (kept
    /// across reloads of the tab) and a new tab gets a new one. An id the user typed is
    /// used as it is.
    pub fn load() -> Self {
        Profiles::load().active().for_this_tab()
    }

    /// These settings with this tab's client id if theirs is a generated one.
    pub fn for_this_tab(mut self) -> Self {
        if is_generated_client_id(&self.client_id) {
            self.client_id = tab_client_id();
        }
        self
    }

    /// Saves them as the profile of their name, which becomes the active one; a
    /// browser without storage (private mode quotas) keeps them for this page view only.
    pub fn save(&self) {
        let mut profiles = Profiles::load();
        profiles.upsert(&self.name, self.clone());
        profiles.save();
    }

    /// The topic on which device `device` answers this dashboard's commands
    /// (`dash/{client-id}/res/{dev}`, docs/ARCHITECTURE.md, "Device topic convention").
    pub fn response_topic(&self, device: &str) -> String {
        format!("dash/{}/res/{device}", self.client_id.trim())
    }

    /// MQTT 5 connect options for `web-client`.
    pub fn connect_options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.broker_url.trim())
            .client_id(self.client_id.trim())
            .version(ProtocolVersion::V5);
        if !self.token.is_empty() {
            options = options.token(self.token.clone());
        } else if !self.username.is_empty() {
            options =
                options.credentials(self.username.clone(), self.password.clone().into_bytes());
        }
        // Commands name their device's response topic; this is only the fallback.
        options.response_topic = Some(format!("dash/{}/res", self.client_id.trim()));
        options
    }
}

/// Where a tab keeps its generated client id.
const TAB_CLIENT_ID_KEY: &str = "mqtt-web-dashboard-client-id";

/// This tab's generated client id: the one in sessionStorage, or a new one saved there.
fn tab_client_id() -> String {
    let session = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(id) = session
        .as_ref()
        .and_then(|s| s.get_item(TAB_CLIENT_ID_KEY).ok().flatten())
        .filter(|id| is_generated_client_id(id))
    {
        return id;
    }
    let id = random_client_id();
    if let Some(session) = session {
        let _ = session.set_item(TAB_CLIENT_ID_KEY, &id);
    }
    id
}

/// Whether `id` has the shape [`random_client_id`] makes.
fn is_generated_client_id(id: &str) -> bool {
    id.strip_prefix("dash-")
        .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `ws(s)://{page host}/mqtt`: the broker that served the page (or `trunk serve`'s proxy).
pub fn default_broker_url() -> String {
    if !cfg!(target_arch = "wasm32") {
        // Native builds (unit tests) have no page.
        return "/mqtt".to_owned();
    }
    let Some(location) = web_sys::window().map(|window| window.location()) else {
        return "/mqtt".to_owned();
    };
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    match location.host() {
        Ok(host) if !host.is_empty() => format!("{scheme}://{host}/mqtt"),
        _ => "/mqtt".to_owned(),
    }
}

/// `dash-` and 8 random hex digits.
pub fn random_client_id() -> String {
    let suffix = if cfg!(target_arch = "wasm32") {
        (js_sys::Math::random() * f64::from(u32::MAX)) as u32
    } else {
        0
    };
    format!("dash-{suffix:08x}")
}

/// The settings form: switches, adds and removes profiles; edits a copy of one, and on
/// save stores it, makes it active and reconnects, then says how the connection went.
#[component]
pub fn SettingsPanel() -> impl IntoView {
    let settings = expect_context::<RwSignal<Settings>>();
    let connection = expect_context::<Connection>();
    let draft = RwSignal::new(settings.get_untracked());
    let profiles = RwSignal::new(Profiles::load());
    // The name the draft had when it was loaded: saving a renamed profile replaces it.
    let original = RwSignal::new(settings.get_untracked().name);
    let saved = RwSignal::new(false);

    let field = move |label: &'static str,
                      testid: &'static str,
                      kind: &'static str,
                      get: fn(&Settings) -> &String,
                      set: fn(&mut Settings, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input
                    type=kind
                    data-testid=testid
                    prop:value=move || draft.with(|d| get(d).clone())
                    on:input=move |ev| draft.update(|d| set(d, event_target_value(&ev)))
                />
            </label>
        }
    };

    let limit = move |label: &'static str,
                      testid: &'static str,
                      get: fn(&Settings) -> usize,
                      set: fn(&mut Settings, usize)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input
                    type="number"
                    min="1"
                    data-testid=testid
                    prop:value=move || draft.with(|d| get(d).to_string())
                    on:input=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse::<usize>() {
                            draft.update(|d| set(d, n.max(1)));
                        }
                    }
                />
            </label>
        }
    };

    // Makes `new` the active settings and connects with it.
    let activate = move |new: Settings| {
        original.set(new.name.clone());
        draft.set(new.clone());
        settings.set(new.clone());
        saved.set(true);
        connection.connect(&new);
    };

    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut new = draft.get_untracked();
        new.name = new.name.trim().to_owned();
        if new.name.is_empty() {
            new.name = profiles.with_untracked(Profiles::new_name);
        }
        profiles.update(|p| {
            p.upsert(&original.get_untracked(), new.clone());
            p.save();
        });
        activate(new);
    };

    let switch = move |ev: leptos::ev::Event| {
        let name = event_target_value(&ev);
        profiles.update(|p| {
            p.active = name;
            p.save();
        });
        activate(profiles.with_untracked(Profiles::active).for_this_tab());
    };

    let add = move |_| {
        let name = profiles.with_untracked(Profiles::new_name);
        original.set(name.clone());
        saved.set(false);
        draft.set(Settings {
            name,
            ..Settings::default()
        });
    };

    let remove = move |_| {
        let name = original.get_untracked();
        let question = format!("Delete the connection profile \"{name}\"?");
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        profiles.update(|p| {
            p.remove(&name);
            p.save();
        });
        activate(profiles.with_untracked(Profiles::active).for_this_tab());
    };

    let options = move || {
        let active = settings.with(|s| s.name.clone());
        profiles.with(|p| {
            p.list
                .iter()
                .map(|profile| {
                    let name = profile.name.clone();
                    let selected = name == active;
                    let value = name.clone();
                    view! { <option value=value selected=selected>{name}</option> }
                })
                .collect_view()
        })
    };

    let outcome = move || {
        if !saved.get() {
            return String::new();
        }
        let name = settings.with(|s| s.name.clone());
        connection.status.with(|status| match status.reason() {
            Some(reason) => format!("\u{201c}{name}\u{201d}: {}: {reason}", status.label()),
            None => format!("\u{201c}{name}\u{201d}: {}", status.label()),
        })
    };

    view! {
        <form class="settings card" data-testid="settings" on:submit=save>
            <h2>"Settings"</h2>
            <div class="chart-controls">
                <label>
                    "Connection profile "
                    <select data-testid="settings-profile" on:change=switch>{options}</select>
                </label>
                <button type="button" data-testid="settings-profile-new" on:click=add>"New profile"</button>
                <button type="button" data-testid="settings-profile-delete" on:click=remove>"Delete profile"</button>
            </div>
            {field("Profile name", "settings-profile-name", "text", |s| &s.name, |s, v| s.name = v)}
            {field("Broker URL", "settings-url", "url", |s| &s.broker_url, |s, v| s.broker_url = v)}
            {field("User name", "settings-username", "text", |s| &s.username, |s, v| s.username = v)}
            {field("Password", "settings-password", "password", |s| &s.password, |s, v| s.password = v)}
            {field("Token (instead of user name and password)", "settings-token", "password", |s| &s.token, |s, v| s.token = v)}
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="settings-remember"
                    prop:checked=move || draft.with(|d| d.remember_secrets)
                    on:change=move |ev| draft.update(|d| d.remember_secrets = event_target_checked(&ev))
                />
                " Remember the password and token on this device (stored in this browser in plain \
                 text). Otherwise they are kept only until this tab closes."
            </label>
            {field("Client id", "settings-client-id", "text", |s| &s.client_id, |s, v| s.client_id = v)}
            {field("Topic root", "settings-root", "text", |s| &s.root, |s, v| s.root = v)}
            {field("Home Assistant discovery prefix", "settings-ha-prefix", "text", |s| &s.ha_prefix, |s, v| s.ha_prefix = v)}
            <h3>"Limits"</h3>
            {limit("Chart samples per property", "settings-history-limit", |s| s.history_limit, |s, v| s.history_limit = v)}
            {limit("Explorer messages per topic", "settings-topic-history", |s| s.topic_history, |s, v| s.topic_history = v)}
            {limit("Explorer payload bytes kept", "settings-payload-limit", |s| s.payload_limit, |s, v| s.payload_limit = v)}
            <div class="actions save-bar">
                <button type="submit" data-testid="settings-save">"Save and reconnect"</button>
                <button
                    type="button"
                    data-testid="settings-reset"
                    on:click=move |_| draft.update(|d| {
                        *d = Settings { name: d.name.clone(), ..Settings::default() }
                    })
                >
                    "Defaults"
                </button>
                <span role="status" data-testid="settings-outcome">{outcome}</span>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_client_ids_are_recognised_and_typed_ones_are_not() {
        assert!(is_generated_client_id(&random_client_id()));
        assert!(is_generated_client_id("dash-0123abcd"));
        assert!(!is_generated_client_id("dash-kitchen"));
        assert!(!is_generated_client_id("dash-0123abcd9"));
        assert!(!is_generated_client_id("my-dashboard"));
    }
}
