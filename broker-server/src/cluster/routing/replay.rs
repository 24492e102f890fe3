//! [`Routing::replay`]: the QoS 1/2 messages a persistent session missed, read back from
//! the shard streams after its checkpoint (the session's node died, another node resumes
//! it).
//!
//! Per shard, an ordered consumer on the filters' subjects under `p.q.<k>`, starting after
//! the checkpoint's sequence. NATS refuses overlapping filter subjects in one consumer,
//! and a session's filters may overlap (`a/+`, `a/#`): the subjects are split into groups
//! without overlaps ([`disjoint_groups`]), one consumer each (one in the common case),
//! and the messages merged by sequence, so one matched by two filters comes once. Reading stops at the stream's last
//! sequence when the replay began, and after [`MAX_REPLAY`] messages in all.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt as _;
use protocol::TopicFilter;

use super::{Inbound, Routing, shard_stream};
use crate::cluster::retained::ConsumerGuard;
use crate::cluster::subject::{decode_topic, encode_filter};
use crate::cluster::{Checkpoint, StreamPos, wire};

/// The most messages one replay returns (the oldest first); the rest are left out and
/// logged: a bound on what resuming one session can make a node hold.
pub const MAX_REPLAY: usize = 100_000;

/// How long one read of a replay may wait for the server.
const READ_PATIENCE: Duration = Duration::from_secs(10);

/// Whether some subject matches both NATS subject patterns `a` and `b`.
fn overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            // `>` matches one or more tokens: whatever the other has left, if anything.
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `subjects` without repeats, in groups of which no two overlap (first fit).
fn disjoint_groups(subjects: Vec<String>) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for subject in subjects {
        if groups.iter().flatten().any(|s| *s == subject) {
            continue;
        }
        match groups
            .iter_mut()
            .find(|group| !group.iter().any(|s| overlap(s, &subject)))
        {
            Some(group) => group.push(subject),
            None => groups.push(vec![subject]),
        }
    }
    groups
}

impl Routing {
    /// The messages stored in the shard streams after `from` (per shard; a shard missing
    /// from `from` is read from its start) whose topic matches one of `filters` (MQTT
    /// matching, `$` rule included), oldest first per shard, each once; at most
    /// [`MAX_REPLAY`]. Every node's messages, this node's too.
    pub async fn replay(
        &self,
        from: &Checkpoint,
        filters: &[TopicFilter],
    ) -> anyhow::Result<Vec<Inbound>> {
        let mut out = Vec::new();
        for shard in 0..self.shards() {
            let after = from.0.get(usize::from(shard)).copied().unwrap_or(0);
            let found = self
                .replay_shard(shard, after, filters, MAX_REPLAY - out.len())
                .await?;
            out.extend(found);
            if out.len() >= MAX_REPLAY {
                tracing::warn!(limit = MAX_REPLAY, "replay stopped at its limit");
                break;
            }
        }
        Ok(out)
    }

    /// One shard's part of [`Routing::replay`]: at most `limit` messages.
    async fn replay_shard(
        &self,
        shard: u16,
        after: u64,
        filters: &[TopicFilter],
        limit: usize,
    ) -> anyhow::Result<Vec<Inbound>> {
        let name = shard_stream(self.prefix(), shard);
        let mut stream = self.jetstream().get_stream(&name).await?;
        let last = stream.info().await?.state.last_sequence;
        if last <= after {
            return Ok(Vec::new());
        }
        let head = format!("{}.q.{shard}", self.prefix());
        let mut subjects = Vec::new();
        for filter in filters {
            subjects.extend(
                encode_filter(&head, filter.filter())?
                    .iter()
                    .map(str::to_owned),
            );
        }
        let mut found: BTreeMap<u64, Inbound> = BTreeMap::new();
        for subjects in disjoint_groups(subjects) {
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subjects: subjects,
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    ..Default::default()
                })
                .await?;
            let _delete = ConsumerGuard::new(self.jetstream(), consumer.cached_info());
            if consumer.cached_info().num_pending == 0 {
                continue;
            }
            let mut messages = consumer.messages().await?;
            loop {
                let message = match tokio::time::timeout(READ_PATIENCE, messages.next()).await {
                    Ok(Some(message)) => message?,
                    Ok(None) => break,
                    Err(_) => anyhow::bail!("replay of {name}: no answer in time"),
                };
                let (seq, pending) = message
                    .info()
                    .map(|info| (info.stream_sequence, info.pending))
                    .map_err(|err| anyhow::anyhow!("replay of {name}: {err}"))?;
                if seq > last {
                    break;
                }
                let message = message.message;
                let subject = message.subject.as_str();
                let decoded = decode_topic(&head, subject)
                    .map_err(|err| err.to_string())
                    .and_then(|topic| {
                        let headers = message.headers.clone().unwrap_or_default();
                        wire::decode(topic.into(), &headers, message.payload.clone())
                            .map_err(|err| err.to_string())
                    });
                match decoded {
                    Ok((decoded, _node)) if filters.iter().any(|f| f.matches(&decoded.topic)) => {
                        found.entry(seq).or_insert(Inbound {
                            message: decoded,
                            pos: Some(StreamPos { shard, seq }),
                            shared: None,
                            ack: None,
                        });
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%subject, %err, "replay skipped a message that is not ours")
                    }
                }
                if pending == 0 || seq == last || found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found.into_values().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_patterns() {
        for (a, b) in [
            ("p.a", "p.a"),
            ("p.*", "p.a"),
            ("p.>", "p.a.b"),
            ("p.*.c", "p.b.*"),
            ("p.>", "p.*"),
        ] {
            assert!(overlap(a, b), "{a} {b}");
            assert!(overlap(b, a), "{b} {a}");
        }
        for (a, b) in [
            ("p.a", "p.b"),
            ("p.>", "p"),
            ("p.*", "p.a.b"),
            ("p.a.>", "p.b.>"),
        ] {
            assert!(!overlap(a, b), "{a} {b}");
            assert!(!overlap(b, a), "{b} {a}");
        }
    }

    #[test]
    fn groups_hold_no_overlap_and_every_subject_once() {
        let subjects = ["q.a.*", "q.a.>", "q.a", "q.b", "q.a.*", "q.>"];
        let groups = disjoint_groups(subjects.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            groups,
            vec![
                vec!["q.a.*".to_owned(), "q.a".into(), "q.b".into()],
                vec!["q.a.>".to_owned()],
                vec!["q.>".to_owned()],
            ]
        );
    }
}
