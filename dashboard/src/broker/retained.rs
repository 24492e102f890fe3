//! Retained messages, from `GET /api/retained?filter=F`: topic, size, QoS, when it was
//! stored, expiry and a payload preview, and a delete action per topic (after a confirmation;
//! `DELETE /api/retained?filter={topic}`, which matches that one topic).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use super::admin::AdminSession;
use super::clients::since;
use super::format::{bytes, thousands, uptime};

/// Messages asked for per page.
const LIMIT: usize = 500;

/// One retained message, as the admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RetainedInfo {
    /// Its topic.
    pub topic: String,
    /// QoS it was published with.
    #[serde(default)]
    pub qos: u8,
    /// Payload bytes.
    #[serde(default)]
    pub payload_size: u64,
    /// The payload as text, when it is UTF-8.
    #[serde(default)]
    pub payload: Option<String>,
    /// Seconds until it expires; `None`: never.
    #[serde(default)]
    pub message_expiry_interval: Option<u64>,
    /// When the broker stored it (RFC 3339); `None` for one recovered at its start.
    #[serde(default)]
    pub stored_at: Option<String>,
}

/// The first `max` characters of `text`, with `…` when cut.
pub fn preview(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The retained messages table.
#[component]
pub fn RetainedView() -> impl IntoView {
    let session = expect_context::<AdminSession>();
    let filter = RwSignal::new("#".to_owned());
    let messages = RwSignal::new(Vec::<RetainedInfo>::new());
    let total = RwSignal::new(None::<u64>);
    let message = RwSignal::new(String::new());

    let load = move || {
        let path = format!(
            "/api/retained?limit={LIMIT}&filter={}",
            String::from(js_sys::encode_uri_component(filter.get_untracked().trim()))
        );
        spawn_local(async move {
            match session.call("GET", &path).await {
                Ok(value) => {
                    let list =
                        serde_json::from_value::<Vec<RetainedInfo>>(value["messages"].clone());
                    match list {
                        Ok(list) => {
                            total.set(value["total"].as_u64());
                            messages.set(list);
                            message.set(String::new());
                        }
                        Err(error) => message.set(format!("unexpected answer: {error}")),
                    }
                }
                Err(error) => message.set(error.to_string()),
            }
        });
    };
    load();

    let delete = move |topic: String| {
        let question = format!(
            "Delete the retained message of \"{topic}\"? New subscribers will no longer \
             receive it; this cannot be undone."
        );
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        spawn_local(async move {
            let path = format!(
                "/api/retained?filter={}",
                String::from(js_sys::encode_uri_component(&topic))
            );
            match session.call("DELETE", &path).await {
                Ok(value) => {
                    let deleted = value["deleted"].as_u64().unwrap_or(0);
                    message.set(format!("deleted {deleted} retained message(s) of {topic}"));
                    messages.update(|list| list.retain(|m| m.topic != topic));
                    total.update(|t| *t = t.map(|n| n.saturating_sub(deleted)));
                }
                Err(error) => message.set(format!("deleting {topic}: {error}")),
            }
        });
    };

    let summary = move || match total.get() {
        None => "loading…".to_owned(),
        Some(n) => {
            let shown = messages.with(Vec::len) as u64;
            if shown < n {
                format!(
                    "{} of {} shown",
                    thousands(shown as f64),
                    thousands(n as f64)
                )
            } else {
                format!("{} retained", thousands(n as f64))
            }
        }
    };

    let row = move |m: RetainedInfo| {
        let topic = m.topic.clone();
        let (row_topic, shown_topic) = (topic.clone(), topic.clone());
        let payload = m
            .payload
            .as_deref()
            .map_or_else(|| "(binary)".to_owned(), |p| preview(p, 60));
        let stored = m
            .stored_at
            .as_deref()
            .map_or_else(|| "before the broker's start".to_owned(), since);
        let expiry = m
            .message_expiry_interval
            .map_or_else(|| "never".to_owned(), uptime);
        view! {
            <tr data-testid="retained-row" data-topic=row_topic>
                <td class="topic" data-testid="retained-topic">{shown_topic}</td>
                <td class="value">{bytes(m.payload_size as f64)}</td>
                <td>{m.qos}</td>
                <td data-testid="retained-stored">{stored}</td>
                <td>{expiry}</td>
                <td><code class="preview">{payload}</code></td>
                <td>
                    <button data-testid="retained-delete" on:click=move |_| delete(topic.clone())>
                        "Delete"
                    </button>
                </td>
            </tr>
        }
    };

    view! {
        <section class="operator-retained" data-testid="operator-retained">
            <h3>"Retained messages " <span class="muted" data-testid="retained-summary">{summary}</span></h3>
            <form
                class="chart-controls"
                on:submit=move |ev: leptos::ev::SubmitEvent| {
                    ev.prevent_default();
                    load();
                }
            >
                <input
                    type="search"
                    aria-label="Topic filter"
                    data-testid="retained-filter"
                    prop:value=move || filter.get()
                    on:input=move |ev| filter.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="retained-refresh">"Show"</button>
                <span class="muted" role="status" data-testid="retained-message">{move || message.get()}</span>
            </form>
            <div class="table-scroll">
                <table class="properties operator-table">
                    <thead>
                        <tr>
                            <th>"Topic"</th>
                            <th>"Size"</th>
                            <th>"QoS"</th>
                            <th>"Stored"</th>
                            <th>"Expires in"</th>
                            <th>"Payload"</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || messages.get().into_iter().map(row).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_cut_with_an_ellipsis() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("0123456789abc", 10), "0123456789…");
        assert_eq!(preview("héllo wörld", 5), "héllo…");
    }

    #[test]
    fn the_api_answer_parses() {
        let json = r#"{"topic":"a/b","qos":1,"payload_size":3,"payload":"one",
            "payload_base64":"b25l","message_expiry_interval":null,
            "stored_at":"2026-12-07T01:02:03Z"}"#;
        let m: RetainedInfo = serde_json::from_str(json).unwrap();
        assert_eq!(m.topic, "a/b");
        assert_eq!(m.message_expiry_interval, None);
        assert_eq!(m.stored_at.as_deref(), Some("2026-12-07T01:02:03Z"));
    }
}
