//! Connection profiles (as in MQTTX): several saved [`Settings`], one active, kept in
//! `localStorage`; and where their secrets go.
//!
//! A profile's password and token are not written to `localStorage` unless the profile
//! says "remember on this device" ([`Settings::remember_secrets`], whose label says they
//! are then stored in this browser in plain text). Otherwise they live in
//! `sessionStorage`, by profile name: they survive a reload of the tab and are gone
//! when it closes. Settings saved by an older dashboard (one object under
//! `mqtt-web.dashboard.settings`, password included) become the profile "Default"; the
//! old entry, and the password in it, are removed from `localStorage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Settings;

/// The `localStorage` key of the profiles.
const PROFILES_KEY: &str = "mqtt-web.dashboard.profiles";
/// The `localStorage` key an older dashboard kept its one settings object under.
const LEGACY_KEY: &str = "mqtt-web.dashboard.settings";
/// The `sessionStorage` key of the secrets that are not remembered.
const SECRETS_KEY: &str = "mqtt-web.dashboard.secrets";

/// The name of the first profile.
pub const DEFAULT_NAME: &str = "Default";

/// The saved profiles and which one is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profiles {
    /// The name of the active profile.
    pub active: String,
    /// Every profile, in the order they were made.
    pub list: Vec<Settings>,
}

/// A profile's secrets, kept for the session only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Secrets {
    password: String,
    token: String,
}

impl Default for Profiles {
    fn default() -> Self {
        Self {
            active: DEFAULT_NAME.to_owned(),
            list: vec![Settings::default()],
        }
    }
}

impl Profiles {
    /// The saved profiles with this tab's secrets, or one default profile.
    pub fn load() -> Self {
        let local = local_storage();
        let saved = local
            .as_ref()
            .and_then(|s| s.get_item(PROFILES_KEY).ok().flatten())
            .and_then(|text| serde_json::from_str::<Self>(&text).ok());
        let mut profiles = match saved {
            Some(profiles) if !profiles.list.is_empty() => profiles,
            _ => {
                let legacy = local
                    .as_ref()
                    .and_then(|s| s.get_item(LEGACY_KEY).ok().flatten())
                    .and_then(|text| serde_json::from_str::<Settings>(&text).ok());
                match legacy {
                    Some(mut settings) => {
                        settings.name = DEFAULT_NAME.to_owned();
                        let profiles = Self {
                            active: DEFAULT_NAME.to_owned(),
                            list: vec![settings],
                        };
                        // Moves the password out of localStorage.
                        profiles.save();
                        if let Some(local) = &local {
                            let _ = local.remove_item(LEGACY_KEY);
                        }
                        profiles
                    }
                    None => Self::default(),
                }
            }
        };
        let secrets: BTreeMap<String, Secrets> = session_storage()
            .and_then(|s| s.get_item(SECRETS_KEY).ok().flatten())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        for profile in &mut profiles.list {
            if let Some(secret) = secrets
                .get(&profile.name)
                .filter(|_| !profile.remember_secrets)
            {
                profile.password.clone_from(&secret.password);
                profile.token.clone_from(&secret.token);
            }
        }
        profiles
    }

    /// Saves them: secrets of profiles that do not remember them go to `sessionStorage`.
    pub fn save(&self) {
        let (stored, secrets) = self.split_secrets();
        if let (Some(local), Ok(text)) = (local_storage(), serde_json::to_string(&stored)) {
            let _ = local.set_item(PROFILES_KEY, &text);
        }
        if let (Some(session), Ok(text)) = (session_storage(), serde_json::to_string(&secrets)) {
            let _ = session.set_item(SECRETS_KEY, &text);
        }
    }

    /// What goes to `localStorage` (without the secrets not to remember) and to
    /// `sessionStorage` (those secrets, by profile name).
    fn split_secrets(&self) -> (Self, BTreeMap<String, Secrets>) {
        let mut stored = self.clone();
        let mut secrets = BTreeMap::new();
        for profile in stored.list.iter_mut().filter(|p| !p.remember_secrets) {
            let secret = Secrets {
                password: std::mem::take(&mut profile.password),
                token: std::mem::take(&mut profile.token),
            };
            if secret != Secrets::default() {
                secrets.insert(profile.name.clone(), secret);
            }
        }
        (stored, secrets)
    }

    /// The active profile (the first one if the name is unknown).
    pub fn active(&self) -> Settings {
        self.list
            .iter()
            .find(|p| p.name == self.active)
            .or_else(|| self.list.first())
            .cloned()
            .unwrap_or_default()
    }

    /// Stores `profile` in place of the one named `previous` (a rename) or of the one
    /// with its name, else adds it; it becomes active.
    pub fn upsert(&mut self, previous: &str, profile: Settings) {
        let name = profile.name.clone();
        // A rename onto another profile's name replaces that profile.
        if previous != name {
            self.list.retain(|p| p.name != name);
        }
        match self
            .list
            .iter_mut()
            .find(|p| p.name == previous || p.name == name)
        {
            Some(slot) => *slot = profile,
            None => self.list.push(profile),
        }
        self.active = name;
    }

    /// Removes the profile named `name` (the last one stays); the first left becomes
    /// active if it was.
    pub fn remove(&mut self, name: &str) {
        if self.list.len() > 1 {
            self.list.retain(|p| p.name != name);
        }
        if !self.list.iter().any(|p| p.name == self.active) {
            self.active = self.list[0].name.clone();
        }
    }

    /// A name no profile has: `Profile 2`, `Profile 3`, …
    pub fn new_name(&self) -> String {
        (2..)
            .map(|n| format!("Profile {n}"))
            .find(|name| !self.list.iter().any(|p| &p.name == name))
            .unwrap_or_default()
    }
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, password: &str, remember: bool) -> Settings {
        Settings {
            name: name.to_owned(),
            username: "u".to_owned(),
            password: password.to_owned(),
            remember_secrets: remember,
            ..Settings::default()
        }
    }

    #[test]
    fn passwords_stay_out_of_local_storage_unless_remembered() {
        let profiles = Profiles {
            active: "a".to_owned(),
            list: vec![
                profile("a", "secret-a", false),
                profile("b", "secret-b", true),
            ],
        };
        let (stored, secrets) = profiles.split_secrets();
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("secret-a"), "{text}");
        assert!(
            text.contains("secret-b"),
            "a remembered password is kept: {text}"
        );
        assert_eq!(secrets["a"].password, "secret-a");
        assert!(!secrets.contains_key("b"));
    }

    #[test]
    fn upsert_renames_adds_and_activates() {
        let mut profiles = Profiles::default();
        profiles.upsert(DEFAULT_NAME, profile("home", "", false));
        assert_eq!(profiles.list.len(), 1);
        assert_eq!(profiles.active, "home");
        let name = profiles.new_name();
        assert_eq!(name, "Profile 2");
        profiles.upsert(&name, profile(&name, "", false));
        assert_eq!(profiles.list.len(), 2);
        assert_eq!(profiles.active().name, "Profile 2");
        profiles.remove("Profile 2");
        assert_eq!(profiles.active, "home");
        profiles.remove("home");
        assert_eq!(profiles.list.len(), 1, "the last profile stays");
    }
}
