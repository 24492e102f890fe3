//! A device's page: every property of its `$description` with its live value
//! (`{root}/5/{dev}/#`), and a control for each settable one ([`super::command`]).

use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, QoS};

use super::Registry;
use super::command::PropertyControl;
use super::homie::{self, Property};
use crate::Page;
use crate::components::chart::{Chart, Histories};
use crate::connection::{Connection, NotLive};
use crate::keyed::KeyedSignals;
use crate::settings::Settings;

/// Live values of one device's properties, keyed by `node/prop`: one signal each, so
/// a value change re-renders one row.
type Values = KeyedSignals<Option<String>>;

/// The page of device `id`.
#[component]
pub fn DevicePage(id: String) -> impl IntoView {
    let registry = expect_context::<Registry>();
    let connection = expect_context::<Connection>();
    let settings = expect_context::<RwSignal<Settings>>();
    let page = expect_context::<RwSignal<Page>>();
    let device = registry.device(&id);
    let values = Values::new();
    let histories = Histories::new();

    // Live values: subscribe on every new connection, stop when the page closes.
    {
        let id = id.clone();
        let device_values = device.values;
        Effect::new(move |_| {
            let Some(client) = connection.client.get() else {
                return;
            };
            let (root, limit) = settings.with_untracked(|s| (s.root.clone(), s.history_limit));
            if super::ha::is_ha(&id) {
                // The registry follows an HA device's state topics already.
                return super::ha::follow(device_values, values, histories, limit);
            }
            let (stop, stopped) = oneshot::channel::<()>();
            let mut stop = Some(stop);
            on_cleanup(move || drop(stop.take()));
            let watch = watch(client, root, id.clone(), values, (histories, limit));
            spawn_local(async move {
                futures::future::select(Box::pin(watch), stopped).await;
            });
        });
    }

    let title = {
        let device = device.clone();
        move || device.name()
    };
    let state = device.state;
    let description = device.description;
    let properties = {
        let id = id.clone();
        move || {
            description.get().map(|description| {
                description.map(|description| {
                    description
                        .properties
                        .into_iter()
                        .map(|property| {
                            view! { <PropertyRow device=id.clone() property values /> }
                        })
                        .collect_view()
                })
            })
        }
    };
    let chart = move || {
        let numeric: Vec<_> = description.with(|d| match d {
            Some(Ok(description)) => description
                .properties
                .iter()
                .filter(|p| p.is_numeric())
                .cloned()
                .collect(),
            _ => Vec::new(),
        });
        (!numeric.is_empty()).then(|| view! { <Chart properties=numeric histories /> })
    };

    let details_id = id.clone();
    let live = move || connection.is_live();
    let shown_state = move || {
        if live() {
            state.get()
        } else {
            homie::DeviceState::Unknown
        }
    };
    view! {
        <section class="device card" class:offline=move || !live() data-testid="device-page">
            <button class="link back" data-testid="back" on:click=move |_| page.set(Page::Devices)>
                "← Devices"
            </button>
            <h2>
                <span data-testid="device-title">{title}</span>
                " "
                <span
                    class=move || format!("badge state-{}", shown_state().label())
                    data-testid="device-state"
                >
                    {move || shown_state().label()}
                </span>
                " "
                <super::ha::ConventionBadge id=id.clone() />
            </h2>
            {move || {
                // The details come with the configs, as the description does.
                description.track();
                registry
                    .ha
                    .details(&details_id)
                    .map(|details| {
                        view! { <p class="muted" data-testid="device-details">{details}</p> }
                    })
            }}
            <NotLive what="These values" />
            {chart}
            <ErrorBoundary fallback=|errors| {
                view! {
                    <p class="error" data-testid="device-error">
                        {move || {
                            errors
                                .get()
                                .into_iter()
                                .map(|(_, error)| error.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        }}
                    </p>
                }
            }>
                <table class="properties" data-testid="properties">
                    <thead>
                        <tr>
                            <th>"Node"</th>
                            <th>"Property"</th>
                            <th>"Value"</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>{properties}</tbody>
                </table>
            </ErrorBoundary>
        </section>
    }
}

async fn watch(
    client: Client,
    root: String,
    id: String,
    values: Values,
    (histories, limit): (Histories, usize),
) {
    let mut subscription = match client
        .subscribe(format!("{root}/5/{id}/#"), QoS::AtLeastOnce)
        .await
    {
        Ok(subscription) => subscription,
        Err(error) => {
            leptos::logging::warn!("subscribing to {id} failed: {error}");
            return;
        }
    };
    // What the broker recorded goes first; live messages wait in the subscription.
    crate::history::backfill_device(&client, &root, &id, histories, limit).await;
    while let Some(message) = subscription.recv().await {
        let Some((_, rest)) = homie::split_device_topic(&root, message.topic()) else {
            continue;
        };
        if let Some(path) = homie::value_path(rest) {
            let text = message.payload_str().map_or_else(
                || format!("({} bytes)", message.payload.len()),
                str::to_owned,
            );
            if let Ok(number) = text.trim().parse::<f64>() {
                histories
                    .get(path)
                    .update(|h| h.push((js_sys::Date::now(), number), limit));
            }
            values.get(path).set(Some(text));
        }
    }
}

#[component]
fn PropertyRow(device: String, property: Property, values: Values) -> impl IntoView {
    let path = property.path();
    let value = values.get(&path);
    let testid = format!("property-{}-{}", property.node, property.id);
    let unit = property.unit.clone().unwrap_or_default();
    let shown = move || {
        value.get().map_or_else(
            || "—".to_owned(),
            |v| format!("{v} {unit}").trim_end().to_owned(),
        )
    };
    let control = property.control().map(|control| {
        view! {
            <PropertyControl device path=path.clone() name=property.name.clone() control value />
        }
    });
    view! {
        <tr data-testid=testid>
            <td class="node">{property.node_name.clone()}</td>
            <td>
                {property.name.clone()}
                <span class="datatype">{property.datatype.clone()}</span>
            </td>
            <td class="value" data-testid="property-value">{shown}</td>
            <td>{control}</td>
        </tr>
    }
}
