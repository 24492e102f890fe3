//! Backfill from the broker's topic history (`$history/query`, docs/history.md), so a
//! chart is full the moment it opens: a device page asks for its properties' history
//! right after it subscribes ([`backfill_device`]), the explorer for the selected
//! topic's once per connection ([`backfill_explorer`]); what comes back goes before
//! what arrived live, and the page continues live.
//!
//! A broker without history, an MQTT 3.1.1 connection or a refusal (the ACL) leaves the
//! charts as they were: it is logged, not shown.

use std::collections::HashSet;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_client::{Client, HistoryQuery, HistoryReply, HistorySample};

use crate::components::chart::{Histories, Sample};
use crate::connection::Connection;
use crate::devices::homie;
use crate::explorer::Explorer;
use crate::explorer::tree::Record;
use crate::route::ExplorerTopic;
use crate::settings::Settings;

/// How long a page waits for the broker's history before it goes on without.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The broker's history of `filter`, at most `limit` samples per topic; `None` (logged)
/// when there is none to have.
async fn fetch(client: &Client, filter: String, limit: usize) -> Option<HistoryReply> {
    let mut query = HistoryQuery::new(filter.clone());
    query.limit = u32::try_from(limit).ok();
    match client.history(&query, TIMEOUT).await {
        Ok(reply) => Some(reply),
        Err(error) => {
            leptos::logging::log!("no history for {filter}: {error}");
            None
        }
    }
}

/// The numeric values among `samples`, as chart samples (time, value).
pub fn numeric(samples: &[HistorySample]) -> Vec<Sample> {
    samples
        .iter()
        .filter_map(|sample| {
            let value = sample.payload_str()?.trim().parse::<f64>().ok()?;
            Some((sample.time_ms as f64, value))
        })
        .filter(|(_, value)| value.is_finite())
        .collect()
}

/// Fills device `id`'s property histories (at most `limit` samples each) from the
/// broker's history of `{root}/5/{id}/+/+`.
pub async fn backfill_device(
    client: &Client,
    root: &str,
    id: &str,
    histories: Histories,
    limit: usize,
) {
    let Some(reply) = fetch(client, format!("{root}/5/{id}/+/+"), limit).await else {
        return;
    };
    for topic in &reply.topics {
        let Some((_, rest)) = homie::split_device_topic(root, &topic.topic) else {
            continue;
        };
        let Some(path) = homie::value_path(rest) else {
            continue;
        };
        let samples = numeric(&topic.samples);
        if !samples.is_empty() {
            let history = histories.get(path);
            history.update(|h| h.backfill(samples, limit));
        }
    }
}

/// Puts `older` (oldest first) before the explorer history `history` holds, keeping
/// the newest `limit`. Only messages older than the oldest held go in; a held
/// retained message (its copy in the broker's history is its newest) is not doubled.
pub fn merge_records(
    history: &mut std::collections::VecDeque<Record>,
    older: Vec<Record>,
    limit: usize,
) {
    let first = history.front();
    let oldest = first.map_or(f64::INFINITY, |r| r.time_ms);
    let mut older: Vec<Record> = older.into_iter().filter(|r| r.time_ms < oldest).collect();
    if let (Some(first), Some(last)) = (first, older.last())
        && first.retained
        && first.payload == last.payload
    {
        older.pop();
    }
    for record in older.into_iter().rev() {
        history.push_front(record);
    }
    while history.len() > limit.max(1) {
        history.pop_front();
    }
}

/// Backfills the explorer topic that is selected, once per topic and connection. The
/// reply may come before the topic's first message (its retained one) reaches the
/// tree: it then waits, and goes in when the topic appears.
pub fn backfill_explorer(
    connection: Connection,
    explorer: Explorer,
    selected: ExplorerTopic,
    settings: RwSignal<Settings>,
) {
    let fetched = StoredValue::new(HashSet::<String>::new());
    // A reply waiting for its topic to reach the tree.
    let pending = StoredValue::new(None::<(String, Vec<Record>)>);
    let apply = move || {
        let Some((topic, _)) = pending.with_value(Clone::clone) else {
            return;
        };
        let present = explorer
            .tree
            .with_untracked(|tree| tree.topic(&topic).is_some());
        if !present {
            return;
        }
        let Some((topic, mut records)) = pending.try_update_value(Option::take).flatten() else {
            return;
        };
        let limit = settings.with_untracked(|s| s.topic_history);
        explorer.tree.update(|tree| {
            tree.number(&mut records);
            if let Some(held) = tree.topic_mut(&topic) {
                merge_records(&mut held.history, records, limit);
            }
        });
    };
    Effect::new(move |_| {
        explorer.tree.track();
        apply();
    });
    Effect::new(move |_| {
        let Some(client) = connection.client.get() else {
            // A new connection starts a new tree: its topics are fetched again.
            fetched.update_value(HashSet::clear);
            pending.set_value(None);
            return;
        };
        let Some(topic) = selected.0.get() else {
            return;
        };
        if !fetched
            .try_update_value(|f| f.insert(topic.clone()))
            .unwrap_or(false)
        {
            return;
        }
        let (limit, payload_limit) =
            settings.with_untracked(|s| (s.topic_history, s.payload_limit));
        spawn_local(async move {
            let Some(reply) = fetch(&client, topic.clone(), limit).await else {
                return;
            };
            let Some(found) = reply.topics.into_iter().find(|t| t.topic == topic) else {
                return;
            };
            let records = found
                .samples
                .iter()
                .map(|s| Record::new(&s.payload, payload_limit, s.time_ms as f64))
                .collect();
            pending.set_value(Some((topic, records)));
            apply();
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::chart::History;
    use std::collections::VecDeque;

    fn sample(t: u64, payload: &'static str) -> HistorySample {
        HistorySample {
            time_ms: t,
            payload: payload.into(),
        }
    }

    #[test]
    fn only_numbers_become_chart_samples() {
        let samples = [
            sample(1, "21.5"),
            sample(2, "on"),
            sample(3, " 7 "),
            sample(4, "NaN"),
        ];
        assert_eq!(numeric(&samples), vec![(1.0, 21.5), (3.0, 7.0)]);
    }

    #[test]
    fn backfilled_samples_go_before_live_ones_within_the_limit() {
        let mut history = History::default();
        history.push((100.0, 5.0), 4);
        history.backfill(vec![(10.0, 1.0), (20.0, 2.0), (30.0, 3.0), (100.0, 9.0)], 4);
        assert_eq!(history.len(), 4);
        assert_eq!(history.last(), Some((100.0, 5.0)));
        let mut again = History::default();
        again.backfill(vec![(1.0, 1.0)], 4);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn a_retained_message_is_not_doubled_by_its_recorded_copy() {
        let mut retained = Record::new(b"22", 100, 500.0);
        retained.retained = true;
        let mut held = VecDeque::from([retained]);
        let older = vec![
            Record::new(b"20", 100, 100.0),
            Record::new(b"21", 100, 200.0),
            Record::new(b"22", 100, 300.0),
        ];
        merge_records(&mut held, older, 10);
        let payloads: Vec<&[u8]> = held.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, [b"20".as_slice(), b"21", b"22"]);
        assert!(held.back().unwrap().retained);
    }
}
