//! The broker's bridges (`[[bridges]]`, `docs/bridges.md`): one row per bridge with
//! its state and cluster role from the retained `$SYS/broker/bridges/{name}/state` and
//! `.../role` (for everyone), and, while an operator is logged in, its remote address,
//! counters and last error from `GET /api/bridges`, fetched again every few seconds.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;

use super::BrokerStats;
use super::admin::AdminSession;
use super::format::thousands;

/// How often `/api/bridges` is fetched again while the operator is logged in.
const REFRESH_MS: u64 = 5000;

/// Where the broker publishes each bridge's status.
const SYS_PREFIX: &str = "$SYS/broker/bridges/";

/// One bridge as `$SYS` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysBridge {
    /// Its configured name.
    pub name: String,
    /// `connected` / `disconnected`, once published.
    pub state: Option<String>,
    /// `holder` / `standby` (only published in a cluster).
    pub role: Option<String>,
}

/// The bridges named by the `$SYS` figures (`$SYS/broker/bridges/{name}/state` and
/// `/role`), by name.
pub fn from_sys(figures: &BTreeMap<String, String>) -> Vec<SysBridge> {
    let mut bridges = BTreeMap::<&str, SysBridge>::new();
    for (topic, value) in figures.range(SYS_PREFIX.to_owned()..) {
        let Some(rest) = topic.strip_prefix(SYS_PREFIX) else {
            break;
        };
        let Some((name, leaf)) = rest.split_once('/') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        let bridge = bridges.entry(name).or_insert_with(|| SysBridge {
            name: name.to_owned(),
            ..SysBridge::default()
        });
        match leaf {
            "state" => bridge.state = value,
            "role" => bridge.role = value,
            _ => {}
        }
    }
    bridges.into_values().collect()
}

/// One bridge as `GET /api/bridges` describes it (the fields shown here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiBridge {
    /// Its configured name.
    pub name: String,
    /// `connected` / `disconnected`.
    pub state: String,
    /// The remote `host:port` it is connected (or was last connecting) to.
    pub remote: Option<String>,
    /// `single` (no cluster), `holder` or `standby`.
    pub role: String,
    /// The cluster node running it, when known.
    pub holder: Option<String>,
    /// Messages received from the remote.
    pub messages_in: u64,
    /// Messages sent to the remote.
    pub messages_out: u64,
    /// Messages waiting for the remote.
    pub outbox: u64,
    /// Messages dropped by a full outbox.
    pub dropped: u64,
    /// Why the last connection failed or ended.
    pub last_error: Option<String>,
}

/// The bridges in the answer of `GET /api/bridges` (`{"bridges": [...]}`), or `None`
/// if it is not that shape (a bridge without a name). Missing fields are empty or 0.
pub fn parse_api(answer: &Value) -> Option<Vec<ApiBridge>> {
    let text = |b: &Value, key: &str| b.get(key).and_then(Value::as_str).map(str::to_owned);
    let count = |b: &Value, key: &str| b.get(key).and_then(Value::as_u64).unwrap_or(0);
    let list = answer.get("bridges")?.as_array()?;
    list.iter()
        .map(|b| {
            Some(ApiBridge {
                name: text(b, "name")?,
                state: text(b, "state").unwrap_or_default(),
                remote: text(b, "remote"),
                role: text(b, "role").unwrap_or_default(),
                holder: text(b, "holder"),
                messages_in: count(b, "messages_in"),
                messages_out: count(b, "messages_out"),
                outbox: count(b, "outbox"),
                dropped: count(b, "dropped"),
                last_error: text(b, "last_error"),
            })
        })
        .collect()
}

/// One row of the card: what `$SYS` says, with the API's figures when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The bridge's name.
    pub name: String,
    /// `connected`, `disconnected` or `unknown`.
    pub state: String,
    /// `active` / `standby` in a cluster, else empty.
    pub role: String,
    /// The API's figures, while the operator is logged in.
    pub api: Option<ApiBridge>,
}

/// The rows for `sys` and, if loaded, `api`, by name: the state from `$SYS` (it is
/// pushed the moment it changes), else from the API; `holder` is shown as `active`.
pub fn rows(sys: Vec<SysBridge>, api: Option<&[ApiBridge]>) -> Vec<Row> {
    let mut rows = BTreeMap::<String, Row>::new();
    for bridge in sys {
        rows.insert(
            bridge.name.clone(),
            Row {
                state: bridge.state.unwrap_or_else(|| "unknown".to_owned()),
                role: role_label(bridge.role.as_deref().unwrap_or_default()),
                name: bridge.name,
                api: None,
            },
        );
    }
    for bridge in api.unwrap_or_default() {
        let row = rows.entry(bridge.name.clone()).or_insert_with(|| Row {
            name: bridge.name.clone(),
            state: bridge.state.clone(),
            role: String::new(),
            api: None,
        });
        if row.role.is_empty() {
            row.role = role_label(&bridge.role);
        }
        row.api = Some(bridge.clone());
    }
    rows.into_values().collect()
}

/// `holder` → `active`, `standby` → `standby`, anything else (`single`) → empty.
fn role_label(role: &str) -> String {
    match role {
        "holder" => "active".to_owned(),
        "standby" => "standby".to_owned(),
        _ => String::new(),
    }
}

/// The "Bridges" card.
#[component]
pub fn BridgesCard() -> impl IntoView {
    let stats = expect_context::<BrokerStats>();
    let session = expect_context::<AdminSession>();
    let api = RwSignal::new(None::<Vec<ApiBridge>>);
    let message = RwSignal::new(String::new());
    let logged_in = move || session.login.with(Option::is_some);
    let all = move || {
        let sys = stats.figures.with(from_sys);
        api.with(|api| rows(sys, api.as_deref()))
    };
    let row = move |row: Row| {
        let api = row.api.unwrap_or_default();
        let (name, state) = (row.name.clone(), row.state.clone());
        // One cell view for every figure (remote, counters, last error).
        let figures = logged_in().then(|| {
            let count = |n: u64| thousands(n as f64);
            [
                ("bridge-remote", "", api.remote.unwrap_or_default()),
                ("bridge-in", "", count(api.messages_in)),
                ("bridge-out", "", count(api.messages_out)),
                ("bridge-outbox", "", count(api.outbox)),
                ("bridge-dropped", "", count(api.dropped)),
                ("bridge-error", "error", api.last_error.unwrap_or_default()),
            ]
            .map(|(id, class, text)| view! { <td data-testid=id><span class=class>{text}</span></td> })
            .collect_view()
        });
        view! {
            <tr data-testid="bridge-row" data-name=name>
                <td>{row.name}</td>
                <td><span class=format!("badge status-{state}") data-testid="bridge-state">{row.state}</span></td>
                <td data-testid="bridge-role" title=api.holder.map(|h| format!("running on {h}"))>{row.role}</td>
                {figures}
            </tr>
        }
    };
    let head = move || {
        logged_in().then(|| {
            ["Remote", "In", "Out", "Outbox", "Dropped", "Last error"]
                .map(|h| view! { <th>{h}</th> })
                .collect_view()
        })
    };
    let body = move || {
        let all = all();
        if !all.is_empty() {
            view! {
                <table class="properties operator-table">
                    <thead><tr><th>"Name"</th><th>"State"</th><th>"Role"</th>{head}</tr></thead>
                    <tbody>{all.into_iter().map(row).collect_view()}</tbody>
                </table>
            }
            .into_any()
        } else if stats.figures.with(BTreeMap::is_empty) {
            view! { <p class="muted">"waiting for $SYS…"</p> }.into_any()
        } else {
            view! {
                <p class="muted" data-testid="bridges-none">
                    "No bridges configured: see " <code>"[[bridges]]"</code> " in docs/bridges.md, \"Bridges\"."
                </p>
            }
            .into_any()
        }
    };
    view! {
        <section class="broker card" data-testid="bridges">
            <h2>"Bridges"</h2>
            {move || logged_in().then(|| view! { <Poll api message /> })}
            <p class="muted" role="status" data-testid="bridges-message">{move || message.get()}</p>
            <div class="table-scroll">{body}</div>
        </section>
    }
}

/// Fetches `/api/bridges` into `api` now and every [`REFRESH_MS`] while mounted (while
/// the operator is logged in); forgets it when unmounted.
#[component]
fn Poll(api: RwSignal<Option<Vec<ApiBridge>>>, message: RwSignal<String>) -> impl IntoView {
    let session = expect_context::<AdminSession>();
    let load = move || {
        spawn_local(async move {
            match session.call("GET", "/api/bridges").await {
                Ok(value) => match parse_api(&value) {
                    Some(bridges) => {
                        api.set(Some(bridges));
                        message.set(String::new());
                    }
                    None => message.set("unexpected answer".to_owned()),
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
    on_cleanup(move || {
        api.set(None);
        message.set(String::new());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sys_topics_give_one_bridge_per_name_with_state_and_role() {
        let figures = figures(&[
            ("$SYS/broker/uptime", "12"),
            ("$SYS/broker/bridges/edge.1/state", "connected"),
            ("$SYS/broker/bridges/cloud/state", "disconnected"),
            ("$SYS/broker/bridges/cloud/role", "standby"),
            ("$SYS/broker/bridges/odd", "ignored: no leaf"),
            ("$SYS/broker/clients/connected", "3"),
        ]);
        assert_eq!(
            from_sys(&figures),
            vec![
                SysBridge {
                    name: "cloud".into(),
                    state: Some("disconnected".into()),
                    role: Some("standby".into()),
                },
                SysBridge {
                    name: "edge.1".into(),
                    state: Some("connected".into()),
                    role: None,
                },
            ]
        );
        assert!(from_sys(&self::figures(&[("$SYS/broker/uptime", "1")])).is_empty());
    }

    #[test]
    fn the_api_answer_parses() {
        let json = r#"{"bridges":[{"name":"edge","state":"connected","remote":"127.0.0.1:1883",
            "role":"single","holder":null,"protocol":"mqttv5","topics":["a/# both 0"],
            "connect_attempts":1,"messages_in":2,"messages_out":3,"outbox":4,"dropped":5,
            "loops":0,"last_error":"connection reset"}]}"#;
        let bridges = parse_api(&serde_json::from_str(json).unwrap()).unwrap();
        let edge = &bridges[0];
        assert_eq!(edge.remote.as_deref(), Some("127.0.0.1:1883"));
        assert_eq!(
            (
                edge.messages_in,
                edge.messages_out,
                edge.outbox,
                edge.dropped
            ),
            (2, 3, 4, 5)
        );
        assert_eq!(edge.last_error.as_deref(), Some("connection reset"));
        assert_eq!(edge.holder, None);
        assert_eq!(
            parse_api(&serde_json::json!({"bridges": [{"state": "x"}]})),
            None
        );
        assert_eq!(parse_api(&serde_json::json!([])), None);
        assert_eq!(
            parse_api(&serde_json::json!({"bridges": []})),
            Some(Vec::new())
        );
    }

    #[test]
    fn rows_take_the_state_from_sys_and_the_figures_from_the_api() {
        let sys = vec![SysBridge {
            name: "edge".into(),
            state: Some("disconnected".into()),
            role: Some("holder".into()),
        }];
        let api = vec![
            ApiBridge {
                name: "edge".into(),
                state: "connected".into(),
                role: "holder".into(),
                messages_in: 7,
                ..ApiBridge::default()
            },
            ApiBridge {
                name: "late".into(),
                state: "disconnected".into(),
                role: "single".into(),
                ..ApiBridge::default()
            },
        ];
        let shown = rows(sys.clone(), Some(&api));
        assert_eq!(shown.len(), 2);
        assert_eq!(
            (shown[0].state.as_str(), shown[0].role.as_str()),
            ("disconnected", "active")
        );
        assert_eq!(shown[0].api.as_ref().map(|a| a.messages_in), Some(7));
        assert_eq!(
            (shown[1].state.as_str(), shown[1].role.as_str()),
            ("disconnected", "")
        );
        let logged_out = rows(sys, None);
        assert_eq!(logged_out.len(), 1);
        assert!(logged_out[0].api.is_none());
        assert!(rows(Vec::new(), None).is_empty());
    }
}
