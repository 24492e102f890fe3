//! Dark mode: follows the OS (`prefers-color-scheme`, in CSS) until the user picks a
//! theme with the toggle; the choice is set as `data-theme` on `<html>` and kept in
//! `localStorage`.

use leptos::prelude::*;

const STORAGE_KEY: &str = "mqtt-web.dashboard.theme";

/// The user's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    /// Whatever the OS prefers.
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

impl Theme {
    fn name(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    fn next(self) -> Self {
        match self {
            Self::System => Self::Dark,
            Self::Dark => Self::Light,
            Self::Light => Self::System,
        }
    }

    fn load() -> Self {
        match storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .as_deref()
        {
            Some("light") => Self::Light,
            Some("dark") => Self::Dark,
            _ => Self::System,
        }
    }

    fn apply(self) {
        if let Some(storage) = storage() {
            let _ = storage.set_item(STORAGE_KEY, self.name());
        }
        let Some(html) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        else {
            return;
        };
        let _ = match self {
            Self::System => html.remove_attribute("data-theme"),
            theme => html.set_attribute("data-theme", theme.name()),
        };
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The theme toggle in the header: system → dark → light → system.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(Theme::load());
    Effect::new(move |_| theme.get().apply());
    view! {
        <button
            class="theme-toggle"
            data-testid="theme-toggle"
            title="Theme: system, dark or light"
            on:click=move |_| theme.update(|t| *t = t.next())
        >
            {move || format!("Theme: {}", theme.get().name())}
        </button>
    }
}
