//! Receiving: the task of each filter of interest, and what it passes on (see "Once per
//! node" and "Own messages" in the [module docs](super)).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt as _;
use protocol::TopicFilter;

use super::{DEDUPE_WINDOW, Inbound, Inner, fnv1a64};
use crate::cluster::subject::decode_topic;
use crate::cluster::{StreamPos, wire};

/// A bounded window of message keys: a set for lookups, a queue for eviction order.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The keys in the window.
    set: HashSet<u64>,
    /// The same keys, oldest first.
    order: VecDeque<u64>,
}

impl Seen {
    /// Whether `key` is new; remembers it (forgetting the oldest when full).
    pub(super) fn first_time(&mut self, key: u64) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        if self.order.len() == DEDUPE_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(key);
        true
    }
}

/// The task of one filter of interest: subscribes to the subjects not subscribed yet,
/// then passes what arrives to [`Inner::accept`] until cancelled (dropping the
/// subscriptions unsubscribes them).
pub(super) async fn receive(
    inner: Arc<Inner>,
    filter: TopicFilter,
    mut subscribers: Vec<async_nats::Subscriber>,
    later: Vec<String>,
) {
    for subject in later {
        match inner.client.subscribe(subject.clone()).await {
            Ok(subscriber) => subscribers.push(subscriber),
            Err(err) => {
                tracing::warn!(%filter, %subject, %err, "cannot subscribe on NATS");
                return;
            }
        }
    }
    let mut messages = futures::stream::select_all(subscribers);
    let shared = filter.is_shared().then(|| filter.clone());
    // A shared group's copy is a delivery of its own (§4.8.2), apart from the ordinary
    // subscriptions' copy of the same message: its own keys.
    let salt = shared
        .as_ref()
        .map_or(0, |f| fnv1a64(f.as_str().as_bytes()));
    while let Some(message) = messages.next().await {
        if let Some((key, mut inbound)) = inner.accept(message, shared.is_some()) {
            let key = key ^ salt;
            inbound.shared = shared.clone();
            let pos = inbound.pos;
            // The check and the hand-over are one step: another filter's task that got a
            // later message of the same topic first through its own subscription must
            // not pass it on before this one (MQTT keeps a topic's order; each NATS
            // subscription keeps it, and a message's first copy then keeps it too).
            let mut seen = inner.seen.lock().await;
            if !seen.first_time(key) {
                continue;
            }
            let sent = inner.inbound.send(inbound).await;
            drop(seen);
            if sent.is_err() {
                return; // the broker is gone
            }
            if let Some(pos) = pos {
                inner.watermark[usize::from(pos.shard)].fetch_max(pos.seq, Ordering::Relaxed);
            }
        }
    }
}

impl Inner {
    /// The inbound message a NATS message is, with its key for the once-per-node check,
    /// or `None` to drop it: this node's own message, or something that is not a message
    /// of this format (logged).
    /// `shared`: it came through a shared group's queue subscription, which takes this
    /// node's own messages too (the group's member may be here: the local router leaves
    /// shared groups to the cluster).
    pub(super) fn accept(
        &self,
        message: async_nats::Message,
        shared: bool,
    ) -> Option<(u64, Inbound)> {
        let subject = message.subject.as_str();
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".r.")?;
        let (kind, _) = rest.split_once('.')?;
        let head = &subject[..self.prefix.len() + 3 + kind.len()];
        let headers = message.headers.as_ref()?;
        let pos = if kind == "m" {
            None
        } else {
            let shard = kind.parse::<u16>().ok().filter(|k| *k < self.shards)?;
            let seq = headers.get("Nats-Sequence")?.as_str().parse::<u64>().ok()?;
            Some(StreamPos { shard, seq })
        };
        let key = match pos {
            Some(pos) => fnv1a64(format!("s{}.{}", pos.shard, pos.seq).as_bytes()),
            None => fnv1a64(headers.get("Nats-Msg-Id")?.as_str().as_bytes()),
        };
        if !shared && wire::origin_node(headers).as_deref() == Some(self.node.as_str()) {
            if let Some(pos) = pos {
                self.watermark[usize::from(pos.shard)].fetch_max(pos.seq, Ordering::Relaxed);
            }
            return None;
        }
        let decoded = decode_topic(head, subject)
            .map_err(|err| err.to_string())
            .and_then(|topic| {
                wire::decode(topic.into(), headers, message.payload).map_err(|e| e.to_string())
            });
        match decoded {
            Ok((message, _node)) => Some((
                key,
                Inbound {
                    message,
                    pos,
                    shared: None,
                    ack: None,
                },
            )),
            Err(err) => {
                tracing::warn!(%subject, %err, "dropped a message that is not ours");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_passes_each_key_once_and_forgets_the_oldest() {
        let mut seen = Seen::default();
        assert!(seen.first_time(1));
        assert!(!seen.first_time(1));
        for key in 2..=DEDUPE_WINDOW as u64 + 1 {
            assert!(seen.first_time(key));
        }
        assert_eq!(seen.set.len(), DEDUPE_WINDOW);
        assert!(seen.first_time(1), "forgotten once out of the window");
    }
}
