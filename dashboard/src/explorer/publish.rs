//! The explorer's publish panel: topic, payload, QoS, retain and the MQTT 5 properties
//! (content type, response topic, correlation data, user properties, message expiry).

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{PublishOptions, PublishProperties, QoS};

use crate::connection::Connection;

/// What the form holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Topic name.
    pub topic: String,
    /// Payload text.
    pub payload: String,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// Content type (empty: none).
    pub content_type: String,
    /// Response topic (empty: none).
    pub response_topic: String,
    /// Correlation data as text (empty: none).
    pub correlation_data: String,
    /// `key=value` per line.
    pub user_properties: String,
    /// Message expiry in seconds (empty: none).
    pub expiry: String,
}

impl Draft {
    /// The publish options, or what is wrong with the form.
    pub fn options(&self) -> Result<PublishOptions, String> {
        let qos = match self.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            other => return Err(format!("QoS {other} does not exist")),
        };
        let mut properties = PublishProperties::default();
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        properties.content_type = text(&self.content_type).map(Into::into);
        properties.response_topic = text(&self.response_topic).map(Into::into);
        properties.correlation_data = text(&self.correlation_data).map(|c| c.into_bytes().into());
        properties.user_properties = parse_user_properties(&self.user_properties)?
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        properties.message_expiry_interval = match text(&self.expiry) {
            None => None,
            Some(secs) => Some(
                secs.parse::<u32>()
                    .map_err(|_| format!("expiry `{secs}` is not a number of seconds"))?,
            ),
        };
        Ok(PublishOptions::new(qos)
            .retain(self.retain)
            .properties(properties))
    }
}

/// Reads user properties, one `key=value` a line (blank lines ignored).
pub fn parse_user_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("user property `{line}` is not key=value"))
        })
        .collect()
}

/// The publish panel. `topic` pre-fills the topic (the explorer's selection).
#[component]
pub fn PublishPanel(topic: Signal<Option<String>>) -> impl IntoView {
    let connection = expect_context::<Connection>();
    let draft = RwSignal::new(Draft::default());
    let outcome = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(topic) = topic.get() {
            draft.update(|d| d.topic = topic);
        }
    });
    let text_field = move |label: &'static str,
                           testid: &'static str,
                           get: fn(&Draft) -> &String,
                           set: fn(&mut Draft, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input
                    type="text"
                    data-testid=testid
                    prop:value=move || draft.with(|d| get(d).clone())
                    on:input=move |ev| draft.update(|d| set(d, event_target_value(&ev)))
                />
            </label>
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let form = draft.get_untracked();
        let options = match form.options() {
            Ok(options) => options,
            Err(why) => return outcome.set(why),
        };
        let Some(client) = connection.client.get_untracked() else {
            return outcome.set("not connected".to_owned());
        };
        outcome.set("publishing…".to_owned());
        spawn_local(async move {
            let result = client
                .publish(
                    form.topic.trim().to_owned(),
                    form.payload.into_bytes(),
                    options,
                )
                .await;
            outcome.set(match result {
                Ok(done) => format!("published ({:?})", done.reason_code),
                Err(error) => format!("failed: {error}"),
            });
        });
    };
    view! {
        <form class="publish card" data-testid="publish" on:submit=submit>
            <h3>"Publish"</h3>
            {text_field("Topic", "publish-topic", |d| &d.topic, |d, v| d.topic = v)}
            <label class="field">
                <span>"Payload"</span>
                <textarea
                    rows="3"
                    data-testid="publish-payload"
                    prop:value=move || draft.with(|d| d.payload.clone())
                    on:input=move |ev| draft.update(|d| d.payload = event_target_value(&ev))
                ></textarea>
            </label>
            <div class="row">
                <label>
                    "QoS "
                    <select
                        data-testid="publish-qos"
                        on:change=move |ev| {
                            let qos = event_target_value(&ev).parse().unwrap_or(0);
                            draft.update(|d| d.qos = qos);
                        }
                    >
                        <option value="0">"0"</option>
                        <option value="1">"1"</option>
                        <option value="2">"2"</option>
                    </select>
                </label>
                <label>
                    <input
                        type="checkbox"
                        data-testid="publish-retain"
                        prop:checked=move || draft.with(|d| d.retain)
                        on:change=move |ev| draft.update(|d| d.retain = event_target_checked(&ev))
                    />
                    " Retain"
                </label>
            </div>
            <details data-testid="publish-properties">
                <summary>"MQTT 5 properties"</summary>
                {text_field("Content type", "publish-content-type", |d| &d.content_type, |d, v| d.content_type = v)}
                {text_field("Response topic", "publish-response-topic", |d| &d.response_topic, |d, v| d.response_topic = v)}
                {text_field("Correlation data", "publish-correlation", |d| &d.correlation_data, |d, v| d.correlation_data = v)}
                {text_field("Message expiry (s)", "publish-expiry", |d| &d.expiry, |d, v| d.expiry = v)}
                <label class="field">
                    <span>"User properties (key=value per line)"</span>
                    <textarea
                        rows="2"
                        data-testid="publish-user-properties"
                        prop:value=move || draft.with(|d| d.user_properties.clone())
                        on:input=move |ev| {
                            draft.update(|d| d.user_properties = event_target_value(&ev))
                        }
                    ></textarea>
                </label>
            </details>
            <div class="actions">
                <button type="submit" data-testid="publish-send">"Publish"</button>
                <span role="status" data-testid="publish-outcome">{move || outcome.get()}</span>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_publish_options() {
        let draft = Draft {
            topic: "t".into(),
            qos: 1,
            retain: true,
            content_type: "application/json".into(),
            correlation_data: "abc".into(),
            user_properties: "a=1\n\n b = two ".into(),
            expiry: "60".into(),
            ..Draft::default()
        };
        let options = draft.options().expect("valid");
        assert_eq!(options.qos, QoS::AtLeastOnce);
        assert!(options.retain);
        let p = options.properties;
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.response_topic, None);
        assert_eq!(p.correlation_data.as_deref(), Some(&b"abc"[..]));
        assert_eq!(p.message_expiry_interval, Some(60));
        assert_eq!(p.user_properties.len(), 2);
        assert_eq!(&*p.user_properties[1].1, "two");
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |draft: Draft| draft.options().expect_err("invalid");
        assert!(
            bad(Draft {
                expiry: "soon".into(),
                ..Draft::default()
            })
            .contains("soon")
        );
        assert!(
            bad(Draft {
                user_properties: "novalue".into(),
                ..Draft::default()
            })
            .contains("novalue")
        );
        assert!(
            bad(Draft {
                qos: 3,
                ..Draft::default()
            })
            .contains("QoS 3")
        );
    }
}
