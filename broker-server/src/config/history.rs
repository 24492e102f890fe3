//! `[history]`: which topics the broker keeps a bounded history of, and the bounds
//! ([`crate::history`] documents the store, the query and the cost).

use serde::Deserialize;

/// `[history]`: a bounded history of the topics matching `filters`, served over MQTT 5
/// request/response on `$history/query` (docs/history.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Record and serve history. Default true.
    pub enabled: bool,
    /// Topic filters whose messages are recorded. Default `["iot/5/+/+/+"]`: the
    /// property topics of the device convention under the default root. `[]` records
    /// nothing.
    pub filters: Vec<String>,
    /// Samples kept per topic (the oldest go first). Default 240.
    pub samples_per_topic: usize,
    /// Samples older than this many seconds are dropped. Default 86400 (a day).
    pub max_age_secs: u64,
    /// Topics kept at most; a new topic beyond it is not recorded until an old one ages
    /// out. Default 1000.
    pub max_topics: usize,
    /// Messages with a larger payload (bytes) are not recorded. Default 64.
    pub max_payload_bytes: usize,
    /// Largest reply to a query, in bytes (less if the requester's Maximum Packet Size
    /// is smaller); a larger answer is cut and marked `"truncated": true`. Default
    /// 1 MiB (1048576).
    pub max_reply_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            filters: vec!["iot/5/+/+/+".into()],
            samples_per_topic: 240,
            max_age_secs: 86_400,
            max_topics: 1000,
            max_payload_bytes: 64,
            max_reply_bytes: 1024 * 1024,
        }
    }
}

impl HistoryConfig {
    /// Checks the filters: each must be a valid topic filter, not a shared one.
    pub fn validate(&self) -> Result<(), String> {
        for filter in &self.filters {
            protocol::topic::validate_topic_filter(filter)
                .map_err(|err| format!("filters: {filter:?}: {err}"))?;
            if filter.starts_with("$share/") {
                return Err(format!(
                    "filters: {filter:?}: a shared filter records nothing"
                ));
            }
        }
        Ok(())
    }
}
