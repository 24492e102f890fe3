//! Deep links: the [`Page`] (and the explorer's selected topic) in the URL's fragment,
//! so a reload keeps the place, a link opens it, and Back and Forward move between pages.
//!
//! | fragment | page |
//! |---|---|
//! | `#/devices` (and an empty or unknown fragment) | the device list |
//! | `#/device/{id}` | a device's page |
//! | `#/explorer`, `#/explorer?topic={topic}` | the explorer, with that topic selected |
//! | `#/broker` | the broker view |
//! | `#/settings` | the settings |
//!
//! Ids and topics are percent-encoded (`/` stays readable in topics). A fragment, not a
//! path, so any static server (and `broker-server`'s dashboard) serves every link without
//! knowing the routes. A page change adds a history entry; selecting another topic in the
//! explorer replaces the current one (Back leaves the explorer rather than stepping
//! through every topic looked at). Hand-written rather than `leptos_router`: five routes
//! do not need the download size of a router.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::Page;

/// The explorer's selected topic, shared by the explorer and the URL (context).
#[derive(Debug, Clone, Copy)]
pub struct ExplorerTopic(pub RwSignal<Option<String>>);

/// The page and explorer topic a fragment (`#/…`, with or without the `#`) names.
pub fn parse(fragment: &str) -> (Page, Option<String>) {
    let path = fragment.trim_start_matches('#').trim_start_matches('/');
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let topic = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("topic="))
        .map(decode)
        .filter(|topic| !topic.is_empty());
    let page = match path.split_once('/') {
        Some(("device", id)) if !id.is_empty() => Page::Device(decode(id)),
        _ => match path {
            "explorer" => Page::Explorer,
            "broker" => Page::Broker,
            "settings" => Page::Settings,
            _ => Page::Devices,
        },
    };
    let topic = if page == Page::Explorer { topic } else { None };
    (page, topic)
}

/// The fragment (with its `#`) of `page`, and of `topic` for the explorer.
pub fn format(page: &Page, topic: Option<&str>) -> String {
    match page {
        Page::Devices => "#/devices".to_owned(),
        Page::Device(id) => format!("#/device/{}", encode(id, false)),
        Page::Explorer => match topic {
            Some(topic) => format!("#/explorer?topic={}", encode(topic, true)),
            None => "#/explorer".to_owned(),
        },
        Page::Broker => "#/broker".to_owned(),
        Page::Settings => "#/settings".to_owned(),
    }
}

/// Percent-encodes every byte but the unreserved ones and a few that are safe in a
/// fragment; `/` too unless `keep_slash`.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || b"-._~$!*'(),:@".contains(&byte)
            || (keep_slash && byte == b'/');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Undoes [`encode`] (and any other percent-encoding); bad escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The page's current fragment (`#/…`, or empty).
fn current_fragment() -> String {
    window().location().hash().unwrap_or_default()
}

/// The page and topic of the URL the app was opened with.
pub fn initial() -> (Page, Option<String>) {
    parse(&current_fragment())
}

/// Keeps the URL and the page in step both ways: a page change writes the fragment (a
/// new history entry; the first write and topic changes replace the current one), and a
/// fragment change (Back, Forward, a link, a typed URL) sets the page.
pub fn sync(page: RwSignal<Page>, topic: ExplorerTopic) {
    let topic = topic.0;
    Effect::new(move |previous: Option<Page>| {
        let current = page.get();
        let selected = topic.get();
        let selected = (current == Page::Explorer).then_some(selected).flatten();
        let fragment = format(&current, selected.as_deref());
        if current_fragment() != fragment {
            let new_page = previous.as_ref().is_some_and(|p| *p != current);
            if new_page {
                let _ = window().location().set_hash(&fragment);
            } else if let Ok(history) = window().history() {
                let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&fragment));
            }
        }
        current
    });
    let handle = window_event_listener(leptos::ev::hashchange, move |_| {
        let (new_page, new_topic) = parse(&current_fragment());
        if new_page == Page::Explorer && topic.get_untracked() != new_topic {
            topic.set(new_topic);
        }
        if page.get_untracked() != new_page {
            page.set(new_page);
        }
    });
    on_cleanup(move || handle.remove());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_round_trips_through_its_fragment() {
        let cases = [
            (Page::Devices, None),
            (Page::Device("sim-001".to_owned()), None),
            (Page::Device("odd id/with #?&%".to_owned()), None),
            (Page::Explorer, None),
            (Page::Explorer, Some("iot/5/sim-001/$state".to_owned())),
            (Page::Explorer, Some("a b/+/#/ü&x=1?".to_owned())),
            (Page::Broker, None),
            (Page::Settings, None),
        ];
        for (page, topic) in cases {
            let fragment = format(&page, topic.as_deref());
            assert_eq!(parse(&fragment), (page, topic), "{fragment}");
        }
    }

    #[test]
    fn fragments_read_as_people_write_them() {
        assert_eq!(
            format(&Page::Explorer, Some("iot/5/sim-001/$state")),
            "#/explorer?topic=iot/5/sim-001/$state"
        );
        assert_eq!(format(&Page::Device("th-1".into()), None), "#/device/th-1");
        assert_eq!(parse(""), (Page::Devices, None));
        assert_eq!(parse("#/nowhere"), (Page::Devices, None));
        assert_eq!(parse("#/device/"), (Page::Devices, None));
        assert_eq!(parse("/broker"), (Page::Broker, None));
        // A topic only means something to the explorer.
        assert_eq!(parse("#/broker?topic=a"), (Page::Broker, None));
        // A bad escape is kept as written.
        assert_eq!(
            parse("#/explorer?topic=a%zz"),
            (Page::Explorer, Some("a%zz".to_owned()))
        );
    }
}
