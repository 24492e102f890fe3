//! Connected clients, from `GET /api/clients`: id, user, address, protocol, since,
//! subscriptions and queue depth, with a search, each client's subscriptions, and a
//! disconnect action (after a confirmation). Refreshed every few seconds while shown.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use super::admin::AdminSession;
use super::format::thousands;

/// How often the list is fetched again while it is shown.
const REFRESH_MS: u64 = 5000;

/// One subscription of a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscription {
    /// The topic filter.
    pub filter: String,
    /// Its maximum QoS.
    pub qos: u8,
}

/// One connected client, as the admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientInfo {
    /// MQTT client identifier.
    pub client_id: String,
    /// User name it logged in with.
    #[serde(default)]
    pub username: Option<String>,
    /// `ip:port` of its connection.
    #[serde(default)]
    pub address: String,
    /// `3.1`, `3.1.1` or `5.0`.
    #[serde(default)]
    pub protocol: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    #[serde(default)]
    pub transport: String,
    /// When it connected (RFC 3339, UTC).
    #[serde(default)]
    pub connected_since: String,
    /// Its subscriptions, by filter.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Messages waiting in its session's queue.
    #[serde(default)]
    pub queue_depth: u64,
}

/// Whether `client` matches the search `query` (a case-insensitive substring of its
/// id, user name or address; an empty query matches all).
pub fn matches(client: &ClientInfo, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    query.is_empty()
        || client.client_id.to_lowercase().contains(&query)
        || client
            .username
            .as_deref()
            .is_some_and(|u| u.to_lowercase().contains(&query))
        || client.address.contains(&query)
}

/// `2026-12-07T01:02:03Z` → `2026-12-07 01:02:03 UTC`.
pub fn since(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(time) => format!("{} UTC", time.replacen('T', " ", 1)),
        None => rfc3339.to_owned(),
    }
}

/// The clients table.
#[component]
pub fn ClientsView() -> impl IntoView {
    let session = expect_context::<AdminSession>();
    let clients = RwSignal::new(Vec::<ClientInfo>::new());
    let loaded = RwSignal::new(false);
    let message = RwSignal::new(String::new());
    let query = RwSignal::new(String::new());
    let open = RwSignal::new(None::<String>);

    let load = move || {
        spawn_local(async move {
            match session.call("GET", "/api/clients").await {
                Ok(value) => match serde_json::from_value::<Vec<ClientInfo>>(value) {
                    Ok(mut list) => {
                        list.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                        clients.set(list);
                        loaded.set(true);
                    }
                    Err(error) => message.set(format!("unexpected answer: {error}")),
                },
                Err(error) => message.set(error.to_string()),
            }
        });
    };
    load();
    if let Ok(handle) = set_interval_with_handle(load, std::time::Duration::from_millis(REFRESH_MS))
    {
        on_cleanup(move || handle.clear());
    }

    let disconnect = move |id: String| {
        let question = format!(
            "Disconnect client \"{id}\"? Its connection is closed now (MQTT 5: DISCONNECT \
             0x98 Administrative action); it may connect again."
        );
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        spawn_local(async move {
            let path = format!(
                "/api/clients/{}/disconnect",
                String::from(js_sys::encode_uri_component(&id))
            );
            match session.call("POST", &path).await {
                Ok(_) => {
                    message.set(format!("{id} disconnected"));
                    clients.update(|list| list.retain(|c| c.client_id != id));
                }
                Err(error) => message.set(format!("disconnecting {id}: {error}")),
            }
        });
    };

    let visible = move || {
        let query = query.get();
        clients.with(|list| {
            list.iter()
                .filter(|c| matches(c, &query))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let summary = move || {
        let shown = visible().len();
        let total = clients.with(Vec::len);
        if !loaded.get() {
            "loading…".to_owned()
        } else if shown == total {
            format!("{} connected", thousands(total as f64))
        } else {
            format!(
                "{} of {} connected",
                thousands(shown as f64),
                thousands(total as f64)
            )
        }
    };

    let row = move |client: ClientInfo| {
        let id = client.client_id.clone();
        let toggle_id = id.clone();
        let is_open = {
            let id = id.clone();
            Signal::derive(move || open.with(|o| o.as_deref() == Some(id.as_str())))
        };
        let subscriptions = client.subscriptions.clone();
        let count = subscriptions.len();
        let disconnect_id = id.clone();
        view! {
            <tr data-testid="client-row" data-client-id=id.clone()>
                <td class="client-id" data-testid="client-id">{id.clone()}</td>
                <td>{client.username.clone().unwrap_or_default()}</td>
                <td>{client.address.clone()}</td>
                <td>{format!("{} {}", client.protocol, client.transport)}</td>
                <td>{since(&client.connected_since)}</td>
                <td>
                    <button
                        class="link"
                        data-testid="client-subscriptions-toggle"
                        aria-expanded=move || is_open.get().to_string()
                        on:click=move |_| {
                            let id = toggle_id.clone();
                            open.update(|o| *o = if o.as_deref() == Some(id.as_str()) { None } else { Some(id) });
                        }
                    >
                        {count}
                    </button>
                </td>
                <td class="value">{thousands(client.queue_depth as f64)}</td>
                <td>
                    <button
                        data-testid="client-disconnect"
                        on:click=move |_| disconnect(disconnect_id.clone())
                    >
                        "Disconnect"
                    </button>
                </td>
            </tr>
            <Show when=move || is_open.get()>
                <tr class="subscriptions" data-testid="client-subscriptions">
                    <td colspan="8">
                        {if subscriptions.is_empty() {
                            view! { <span class="muted">"no subscriptions"</span> }.into_any()
                        } else {
                            view! {
                                <ul>
                                    {subscriptions
                                        .iter()
                                        .map(|s| view! { <li><code>{s.filter.clone()}</code>" QoS "{s.qos}</li> })
                                        .collect_view()}
                                </ul>
                            }
                            .into_any()
                        }}
                    </td>
                </tr>
            </Show>
        }
    };

    view! {
        <section class="operator-clients" data-testid="operator-clients">
            <h3>"Connected clients " <span class="muted" data-testid="clients-summary">{summary}</span></h3>
            <div class="chart-controls">
                <input
                    type="search"
                    placeholder="Search id, user or address"
                    aria-label="Search clients"
                    data-testid="clients-search"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))
                />
                <button data-testid="clients-refresh" on:click=move |_| load()>"Refresh"</button>
                <span class="muted" role="status" data-testid="clients-message">{move || message.get()}</span>
            </div>
            <div class="table-scroll">
                <table class="properties operator-table">
                    <thead>
                        <tr>
                            <th>"Client id"</th>
                            <th>"User"</th>
                            <th>"Address"</th>
                            <th>"Protocol"</th>
                            <th>"Since"</th>
                            <th>"Subs"</th>
                            <th>"Queue"</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || visible().into_iter().map(row).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, user: Option<&str>, address: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.to_owned(),
            username: user.map(str::to_owned),
            address: address.to_owned(),
            protocol: "5.0".to_owned(),
            transport: "tcp".to_owned(),
            connected_since: String::new(),
            subscriptions: Vec::new(),
            queue_depth: 0,
        }
    }

    #[test]
    fn search_matches_id_user_or_address_ignoring_case() {
        let c = client("Sensor-12", Some("Alice"), "10.0.0.7:50000");
        assert!(matches(&c, ""));
        assert!(matches(&c, "sensor"));
        assert!(matches(&c, "ALICE"));
        assert!(matches(&c, "10.0.0.7"));
        assert!(!matches(&c, "bob"));
        assert!(!matches(&client("x", None, "1.2.3.4:1"), "alice"));
    }

    #[test]
    fn the_api_answer_parses() {
        let json = r#"[{"client_id":"a","username":null,"address":"127.0.0.1:1","listener":"l",
            "transport":"ws","protocol":"5.0","connected_since":"2026-12-07T01:02:03Z",
            "subscriptions":[{"filter":"a/#","qos":1}],"queue_depth":3,"inflight":0,"node":null}]"#;
        let list: Vec<ClientInfo> = serde_json::from_str(json).unwrap();
        assert_eq!(list[0].subscriptions[0].filter, "a/#");
        assert_eq!(list[0].queue_depth, 3);
        assert_eq!(since(&list[0].connected_since), "2026-12-07 01:02:03 UTC");
    }
}
