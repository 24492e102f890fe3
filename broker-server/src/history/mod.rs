//! The topic history: a bounded record of the messages published to the topics of the
//! `[history]` filters, so a chart is full the moment it opens. Served over MQTT 5
//! request/response on `$history/query` (the connection answers it:
//! `connection::packets`; the format is `protocol::client::history`, documented in
//! docs/history.md).
//!
//! # What is kept, and what it costs
//!
//! Each message whose topic matches one of `history.filters` (default `iot/5/+/+/+`:
//! the property values of the device convention) and whose payload is non-empty and
//! at most `history.max_payload_bytes` is recorded with the wall-clock time it was
//! routed. Per topic at most `samples_per_topic` samples are kept, none older than
//! `max_age_secs`; at most `max_topics` topics (a new one beyond is not recorded until
//! an old one ages out, counted as skipped). MQTT properties are not kept.
//!
//! All of it is held in memory, where queries read it (no disk read on a query): about
//! 80 bytes per sample plus the payload, nothing for topics that are not recorded.
//! Measured full at the defaults (1000 topics × 240 samples of 24 bytes): ~46 MB more
//! broker memory in all (writer queue and batch included), a 36 MB file. Recording a message is a filter match (a
//! linear scan of the configured filters: keep the list short), one mutex, a copy of
//! the payload and a `try_send` to the writer.
//!
//! # Surviving restarts
//!
//! With `storage.backend = "redb"` the samples are also written to their own redb file
//! `<storage.dir>/history.redb` ([`disk`]), apart from `broker.redb`: history never
//! delays an acknowledgement or the store's group commit, and a damaged history file
//! costs only history (it is moved aside and a new one started). A writer thread takes
//! what a bounded channel holds and commits about once a second; when the channel is
//! full (the disk cannot keep up) the sample is kept in memory but not written, and
//! counted ([`HistoryStats::unwritten`]). At start the file is read back with the bounds
//! applied. With `storage.backend = "memory"` history lives in memory only.
//!
//! # Cluster
//!
//! Each node records what it routes: its own clients' messages and those other nodes
//! send it for its subscribers. A query is answered by the requester's node from its
//! own record; history is not shared between nodes.
//!
//! # Layout
//!
//! - this module: [`History`], the in-memory record, recording, queries, pruning.
//! - [`disk`]: the redb file and its writer thread.

pub(crate) mod disk;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::client::history::{HistoryError, HistoryQuery, HistoryReply, Sample, TopicHistory};

use crate::config::HistoryConfig;

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its position in the record (increasing over the file's life): the disk key.
    pub(crate) seq: u64,
    /// When it was routed, ms since the Unix epoch.
    pub(crate) time_ms: u64,
    /// Its payload (a copy: the message's own buffer may hold its neighbours too).
    pub(crate) payload: Box<[u8]>,
}

/// The in-memory record.
#[derive(Debug, Default)]
struct Index {
    /// Samples by topic, oldest first.
    topics: HashMap<ByteString, VecDeque<Stored>>,
    /// The next sample's `seq`.
    next_seq: u64,
}

/// Figures for `$SYS/broker/history/...` and the log.
#[derive(Debug, Default)]
pub(crate) struct HistoryStats {
    /// Samples recorded since start.
    pub(crate) recorded: AtomicU64,
    /// Messages not recorded because `max_topics` topics were kept already.
    pub(crate) skipped: AtomicU64,
    /// Samples kept in memory but not written to the file: the writer was behind.
    pub(crate) unwritten: AtomicU64,
    /// Queries answered (with history or with an error).
    pub(crate) queries: AtomicU64,
}

/// The broker's topic history (see the module docs).
#[derive(Debug)]
pub(crate) struct History {
    /// The `[history]` section.
    config: HistoryConfig,
    /// The filters that record (none when disabled: nothing is recorded).
    filters: Vec<protocol::TopicFilter>,
    /// The record.
    index: Mutex<Index>,
    /// The file's writer, with the redb backend.
    disk: Option<disk::Writer>,
    /// Counters.
    pub(crate) stats: HistoryStats,
}

/// Now, ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl History {
    /// A history kept in memory only. Filters that are not valid are ignored (the
    /// configuration is validated at start: [`HistoryConfig::validate`]).
    pub(crate) fn in_memory(config: &HistoryConfig) -> Self {
        let filters = if config.enabled {
            let valid = config.filters.iter().cloned();
            valid
                .filter_map(|f| protocol::TopicFilter::new(f).ok())
                .collect()
        } else {
            Vec::new()
        };
        Self {
            config: config.clone(),
            filters,
            index: Mutex::new(Index::default()),
            disk: None,
            stats: HistoryStats::default(),
        }
    }

    /// A history kept in memory and in `<dir>/history.redb`, loaded from it.
    pub(crate) fn open(config: &HistoryConfig, dir: &std::path::Path) -> Self {
        let mut history = Self::in_memory(config);
        if history.filters.is_empty() {
            return history;
        }
        let now = now_ms();
        let (samples, writer) = disk::open(dir);
        {
            let mut index = history.index.lock();
            let mut pruned = Vec::new();
            for (topic, stored) in samples {
                index.next_seq = index.next_seq.max(stored.seq + 1);
                if !history.records(&topic) {
                    pruned.push((topic, stored.seq));
                    continue;
                }
                let series = index.topics.entry(topic.clone()).or_default();
                series.push_back(stored);
                if let Some(seq) = history.prune(series, now) {
                    pruned.push((topic, seq));
                }
            }
            pruned.extend(history.over_max_topics(&mut index));
            if let Some(writer) = &writer {
                for (topic, seq) in pruned {
                    writer.remove_through(topic, seq);
                }
            }
            let samples: usize = index.topics.values().map(VecDeque::len).sum();
            tracing::info!(
                topics = index.topics.len(),
                samples,
                "history loaded from {}",
                dir.join(disk::FILE_NAME).display()
            );
        }
        history.disk = writer;
        history
    }

    /// Whether history is on (enabled, with at least one filter).
    pub(crate) fn is_enabled(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether messages to `topic` are recorded.
    fn records(&self, topic: &str) -> bool {
        self.filters.iter().any(|filter| filter.matches(topic))
    }

    /// Whether a message to `topic` with `payload` is recorded.
    fn wants(&self, topic: &str, payload: &[u8]) -> bool {
        !payload.is_empty() && payload.len() <= self.config.max_payload_bytes && self.records(topic)
    }

    /// Records a message routed now (if its topic is recorded). The clock is read only
    /// for a message that is.
    pub(crate) fn record(&self, topic: &ByteString, payload: &[u8]) {
        if self.wants(topic, payload) {
            self.insert(topic, payload, now_ms());
        }
    }

    /// Records a message routed at `now` (ms since the epoch), if its topic is recorded
    /// (the tests' clock).
    #[cfg(test)]
    pub(crate) fn record_at(&self, topic: &ByteString, payload: &[u8], now: u64) {
        if self.wants(topic, payload) {
            self.insert(topic, payload, now);
        }
    }

    /// Adds a sample to `topic`'s series (and the file), pruning what falls out.
    fn insert(&self, topic: &ByteString, payload: &[u8], now: u64) {
        let mut index = self.index.lock();
        let full = index.topics.len() >= self.config.max_topics;
        if full && !index.topics.contains_key(topic) {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seq = index.next_seq;
        index.next_seq += 1;
        let series = index.topics.entry(topic.clone()).or_default();
        series.push_back(Stored {
            seq,
            time_ms: now,
            payload: payload.into(),
        });
        let pruned = self.prune(series, now);
        self.stats.recorded.fetch_add(1, Ordering::Relaxed);
        if let Some(writer) = &self.disk {
            // Under the lock, so the file sees a topic's changes in order.
            if !writer.insert(topic.clone(), seq, now, Bytes::copy_from_slice(payload)) {
                self.stats.unwritten.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(through) = pruned {
                writer.remove_through(topic.clone(), through);
            }
        }
    }

    /// Drops a series' samples beyond `samples_per_topic` or older than `max_age_secs`
    /// at `now`; the `seq` of the last one dropped.
    fn prune(&self, series: &mut VecDeque<Stored>, now: u64) -> Option<u64> {
        let oldest = now.saturating_sub(self.config.max_age_secs.saturating_mul(1000));
        let mut last = None;
        while let Some(front) = series.front() {
            if series.len() <= self.config.samples_per_topic && front.time_ms >= oldest {
                break;
            }
            last = Some(front.seq);
            series.pop_front();
        }
        last
    }

    /// Removes the topics beyond `max_topics` that were updated least recently (after
    /// a load with a lower bound than the file was written with).
    fn over_max_topics(&self, index: &mut Index) -> Vec<(ByteString, u64)> {
        let excess = index.topics.len().saturating_sub(self.config.max_topics);
        if excess == 0 {
            return Vec::new();
        }
        let mut by_age: Vec<(u64, ByteString)> = index
            .topics
            .iter()
            .map(|(topic, series)| (series.back().map_or(0, |s| s.time_ms), topic.clone()))
            .collect();
        by_age.sort_unstable();
        by_age
            .into_iter()
            .take(excess)
            .filter_map(|(_, topic)| {
                let series = index.topics.remove(&topic)?;
                Some((topic, series.back()?.seq))
            })
            .collect()
    }

    /// Drops what aged out by `now` and the topics left empty (every minute).
    pub(crate) fn sweep(&self, now: u64) {
        let mut index = self.index.lock();
        let mut removed = Vec::new();
        index.topics.retain(|topic, series| {
            if let Some(seq) = self.prune(series, now) {
                removed.push((topic.clone(), seq));
            }
            !series.is_empty()
        });
        if let Some(writer) = &self.disk {
            for (topic, seq) in removed {
                writer.remove_through(topic, seq);
            }
        }
    }

    /// Answers the request `body`: the samples of the topics matching its filter that
    /// `may_receive` allows, within `max_bytes`; or why not. `may_subscribe` is asked
    /// about the filter first: a client gets only what it could subscribe to.
    pub(crate) fn answer(
        &self,
        body: &[u8],
        may_subscribe: impl Fn(&str) -> bool,
        may_receive: impl Fn(&str) -> bool,
        max_bytes: usize,
    ) -> Result<Vec<u8>, HistoryError> {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        if !self.is_enabled() {
            return Err(HistoryError::Disabled(
                "this broker keeps no history ([history] enabled = false or no filters)".into(),
            ));
        }
        let query = HistoryQuery::decode(body)?;
        let filter = protocol::TopicFilter::new(query.filter.clone())
            .map_err(|err| HistoryError::BadRequest(format!("filter {:?}: {err}", query.filter)))?;
        if filter.is_shared() {
            return Err(HistoryError::BadRequest(
                "a shared subscription filter has no history".into(),
            ));
        }
        if !may_subscribe(filter.filter()) {
            return Err(HistoryError::NotAuthorized(format!(
                "not allowed to subscribe to {:?}",
                query.filter
            )));
        }
        let reply = self.query(&query, &filter, may_receive);
        let max = max_bytes.min(self.config.max_reply_bytes);
        Ok(reply.encode_within(max).0)
    }

    /// The samples `query` asks for, of the topics `may_receive` allows.
    fn query(
        &self,
        query: &HistoryQuery,
        filter: &protocol::TopicFilter,
        may_receive: impl Fn(&str) -> bool,
    ) -> HistoryReply {
        let from = query.from.unwrap_or(0);
        let to = query.to.unwrap_or(u64::MAX);
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let mut topics: Vec<TopicHistory> = {
            let index = self.index.lock();
            index
                .topics
                .iter()
                .filter(|(topic, _)| filter.matches(topic) && may_receive(topic))
                .filter_map(|(topic, series)| {
                    let in_range: Vec<&Stored> = series
                        .iter()
                        .filter(|s| s.time_ms >= from && s.time_ms <= to)
                        .collect();
                    let skip = in_range.len().saturating_sub(limit);
                    let samples: Vec<Sample> = in_range[skip..]
                        .iter()
                        .map(|s| Sample {
                            time_ms: s.time_ms,
                            payload: Bytes::copy_from_slice(&s.payload),
                        })
                        .collect();
                    (!samples.is_empty()).then(|| TopicHistory {
                        topic: topic.to_string(),
                        samples,
                    })
                })
                .collect()
        };
        topics.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        HistoryReply {
            topics,
            truncated: false,
        }
    }

    /// Topics and samples held now.
    pub(crate) fn size(&self) -> (usize, usize) {
        let index = self.index.lock();
        let samples = index.topics.values().map(VecDeque::len).sum();
        (index.topics.len(), samples)
    }

    /// The `$SYS/broker/history/...` topics (relative to `$SYS/broker/`) and values.
    pub(crate) fn sys_topics(&self) -> Vec<(String, String)> {
        let (topics, samples) = self.size();
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
        vec![
            ("history/topics".into(), topics.to_string()),
            ("history/samples".into(), samples.to_string()),
            ("history/recorded".into(), get(&self.stats.recorded)),
            ("history/skipped".into(), get(&self.stats.skipped)),
            ("history/unwritten".into(), get(&self.stats.unwritten)),
            ("history/queries".into(), get(&self.stats.queries)),
        ]
    }

    /// Writes what is queued and closes the file (shutdown). Blocks.
    pub(crate) fn close(&self) {
        if let Some(writer) = &self.disk {
            writer.close();
        }
    }
}

#[cfg(test)]
mod tests;
