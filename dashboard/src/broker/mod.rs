//! The broker view: the connection's state, every `$SYS` figure the broker publishes
//! (`$SYS/#`, retained, every `sys.interval_secs`), and live charts of messages per
//! second (from the `messages/received` and `messages/sent` counters between two
//! updates) and connected clients, formatted ([`format`]: thousands separators,
//! bytes, uptime); and the operator views over the admin API, behind the operator login
//! ([`admin`]): connected clients ([`clients`]) and retained messages ([`retained`]);
//! and the broker's bridges ([`bridges`]: `$SYS` for everyone, the admin API's figures
//! for the operator).

pub mod admin;
pub mod bridges;
pub mod clients;
pub mod format;
pub mod retained;

use std::collections::BTreeMap;

use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, QoS};

use crate::components::chart::{History, Series, TimeChart, WINDOWS, WindowSelect};
use crate::components::scale::Format;
use crate::connection::{Connection, NotLive, StatusIndicator};

/// Samples kept per chart.
const SAMPLES: usize = 720;

/// What the broker view knows, provided as context and fed while the app runs.
#[derive(Debug, Clone, Copy)]
pub struct BrokerStats {
    /// The last value of every `$SYS` topic, by topic.
    pub figures: RwSignal<BTreeMap<String, String>>,
    /// Messages per second (received + sent).
    pub rate: RwSignal<History>,
    /// Connected clients.
    pub clients: RwSignal<History>,
    /// The previous `(time ms, received + sent)`, to derive the rate.
    last_count: StoredValue<Option<(f64, f64)>>,
}

impl BrokerStats {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self {
            figures: RwSignal::new(BTreeMap::new()),
            rate: RwSignal::new(History::default()),
            clients: RwSignal::new(History::default()),
            last_count: StoredValue::new(None),
        }
    }

    /// Applies one `$SYS` message received at `now_ms`.
    pub fn handle(self, topic: &str, value: &str, now_ms: f64) {
        self.figures.update(|f| {
            f.insert(topic.to_owned(), value.to_owned());
        });
        let number = value.trim().parse::<f64>().ok();
        match (topic, number) {
            ("$SYS/broker/clients/connected", Some(n)) => {
                self.clients.update(|h| h.push((now_ms, n), SAMPLES));
            }
            ("$SYS/broker/messages/received", Some(_)) => {
                // Both counters arrive together each interval; `received` closes a pair.
                let sent = self.figures.with_untracked(|f| {
                    f.get("$SYS/broker/messages/sent")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(0.0)
                });
                let total = number.unwrap_or(0.0) + sent;
                if let Some((then, before)) = self.last_count.get_value() {
                    let secs = (now_ms - then) / 1000.0;
                    if secs > 0.2 && total >= before {
                        self.rate
                            .update(|h| h.push((now_ms, (total - before) / secs), SAMPLES));
                    }
                }
                self.last_count.set_value(Some((now_ms, total)));
            }
            _ => {}
        }
    }
}

impl Default for BrokerStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Subscribes to `$SYS/#` on each new connection.
pub fn watch(connection: Connection, stats: BrokerStats) {
    Effect::new(move |_| {
        let Some(client) = connection.client.get() else {
            return;
        };
        spawn_local(run(client, stats));
    });
}

async fn run(client: Client, stats: BrokerStats) {
    let mut messages = match client.subscribe("$SYS/#", QoS::AtMostOnce).await {
        Ok(subscription) => subscription,
        Err(error) => {
            leptos::logging::warn!("subscribing to $SYS failed: {error}");
            return;
        }
    };
    while let Some(message) = messages.next().await {
        let value = String::from_utf8_lossy(&message.payload).into_owned();
        stats.handle(message.topic(), &value, js_sys::Date::now());
    }
}

/// The broker page.
#[component]
pub fn BrokerPage() -> impl IntoView {
    let stats = expect_context::<BrokerStats>();
    let window = RwSignal::new(WINDOWS[1].0);
    let series = move |history: RwSignal<History>, label: &'static str, format: Format| {
        Signal::derive(move || {
            vec![Series {
                label: label.to_owned(),
                format: format.clone(),
                history: history.get(),
                step: false,
            }]
        })
    };
    let rate = series(stats.rate, "Messages", Format::PerSecond("msg/s".into()));
    let clients = series(stats.clients, "Clients", Format::Integer(String::new()));
    let last = |history: RwSignal<History>, format: Format| {
        move || {
            history
                .with(|h| h.last().map(|(_, v)| format.value(v)))
                .unwrap_or_else(|| "waiting for $SYS…".to_owned())
        }
    };
    let rows = move || {
        stats
            .figures
            .get()
            .into_iter()
            .map(|(topic, value)| {
                let name = topic.trim_start_matches("$SYS/broker/").to_owned();
                let shown = format::sys_value(&name, &value);
                let key = name.clone();
                view! {
                    <tr data-testid="broker-figure" data-name=key>
                        <td>{name}</td>
                        <td class="value" title=value>{shown}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <section class="broker card" data-testid="broker">
            <h2>"Broker " <StatusIndicator /></h2>
            <NotLive what="these figures" />
            <WindowSelect window testid="broker-window" />
            <div class="charts">
                <figure class="chart">
                    <figcaption>"Messages/s: " <span data-testid="broker-rate">{last(stats.rate, Format::PerSecond("msg/s".into()))}</span></figcaption>
                    <TimeChart series=rate window=window.into() zero=true label="Messages per second".to_owned() line_testid="broker-rate-line" />
                </figure>
                <figure class="chart">
                    <figcaption>"Clients: " <span data-testid="broker-clients">{last(stats.clients, Format::Integer(String::new()))}</span></figcaption>
                    <TimeChart series=clients window=window.into() zero=true label="Connected clients".to_owned() line_testid="broker-clients-line" />
                </figure>
            </div>
        </section>
        <Operator />
        <bridges::BridgesCard />
        <section class="broker card">
            <h2>"$SYS figures"</h2>
            <table class="properties" data-testid="broker-figures">
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}

/// The operator views: the login, or who is logged in with the clients and retained
/// messages.
#[component]
fn Operator() -> impl IntoView {
    let session = expect_context::<admin::AdminSession>();
    let user = move || session.login.with(|l| l.as_ref().map(|l| l.user.clone()));
    view! {
        <section class="operator card" data-testid="operator">
            <h2>"Operator"</h2>
            {move || match user() {
                None => view! { <admin::LoginForm /> }.into_any(),
                Some(user) => view! {
                    <p class="actions">
                        <span data-testid="operator-user">"Logged in as " <strong>{user}</strong></span>
                        <button data-testid="operator-logout" on:click=move |_| session.logout()>"Log out"</button>
                    </p>
                    <clients::ClientsView />
                    <retained::RetainedView />
                }
                .into_any(),
            }}
        </section>
    }
}
