//! Retained messages, one per topic, in a trie keyed by topic level so a wildcard
//! subscription finds its retained messages without scanning every topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use protocol::topic;
use web_time::Instant;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
    /// When this process stored `message` (the admin API shows it); `None` for one
    /// recovered from the store at start, whose time was not kept.
    stored_at: Option<SystemTime>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }
}

/// The retained message store.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
}

impl RetainedStore {
    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Applies a retained publish: an empty payload deletes the topic's retained
    /// message [MQTT-3.3.1-6], anything else replaces it [MQTT-3.3.1-5]. Returns the
    /// message it replaced or deleted.
    pub fn set(&mut self, message: Arc<Message>) -> Option<Arc<Message>> {
        self.store(message, Some(SystemTime::now()))
    }

    /// [`Self::set`] for a message recovered from the store at start: its time of
    /// storing is unknown.
    pub fn restore(&mut self, message: Arc<Message>) -> Option<Arc<Message>> {
        self.store(message, None)
    }

    fn store(&mut self, message: Arc<Message>, at: Option<SystemTime>) -> Option<Arc<Message>> {
        if message.payload.is_empty() {
            self.remove(&message.topic)
        } else {
            let mut node = &mut self.root;
            for level in topic::levels(&message.topic) {
                node = node.children.entry(level.into()).or_default();
            }
            node.stored_at = at;
            let old = node.message.replace(message);
            if old.is_none() {
                self.len += 1;
            }
            old
        }
    }

    /// When the retained message of exactly `topic` was stored by this process.
    pub fn stored_at(&self, topic_name: &str) -> Option<SystemTime> {
        let mut node = &self.root;
        for level in topic::levels(topic_name) {
            node = node.children.get(level)?;
        }
        node.stored_at
    }

    /// Deletes the retained message of `topic`.
    pub fn remove(&mut self, topic_name: &str) -> Option<Arc<Message>> {
        let levels: Vec<&str> = topic::levels(topic_name).collect();
        let removed = remove_at(&mut self.root, &levels);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The retained message of exactly `topic`.
    pub fn get(&self, topic_name: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic::levels(topic_name) {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Every unexpired retained message whose topic matches `filter` (a valid,
    /// non-shared filter), with the `$` rule [MQTT-4.7.2-1].
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = topic::levels(filter).collect();
        let mut out = Vec::new();
        collect(&self.root, &levels, true, now, &mut out);
        out
    }

    /// Removes every expired message; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let purged = purge(&mut self.root, now);
        self.len -= purged;
        purged
    }
}

fn collect(node: &Node, filter: &[&str], at_root: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
    let Some((level, rest)) = filter.split_first() else {
        if let Some(message) = &node.message
            && !message.is_expired(now)
        {
            out.push(message.clone());
        }
        return;
    };
    match *level {
        "#" => collect_all(node, at_root, now, out),
        "+" => {
            for (name, child) in &node.children {
                if !(at_root && name.starts_with('$')) {
                    collect(child, rest, false, now, out);
                }
            }
        }
        exact => {
            if let Some(child) = node.children.get(exact) {
                collect(child, rest, false, now, out);
            }
        }
    }
}

/// `#`: this node's message (the parent level) and every descendant's.
fn collect_all(node: &Node, at_root: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
    if !at_root
        && let Some(message) = &node.message
        && !message.is_expired(now)
    {
        out.push(message.clone());
    }
    for (name, child) in &node.children {
        if !(at_root && name.starts_with('$')) {
            collect_all(child, false, now, out);
        }
    }
}

fn remove_at(node: &mut Node, levels: &[&str]) -> Option<Arc<Message>> {
    let Some((level, rest)) = levels.split_first() else {
        node.stored_at = None;
        return node.message.take();
    };
    let child = node.children.get_mut(*level)?;
    let removed = remove_at(child, rest);
    if child.is_empty() {
        node.children.remove(*level);
    }
    removed
}

fn purge(node: &mut Node, now: Instant) -> usize {
    let mut purged = 0;
    if node.message.as_ref().is_some_and(|m| m.is_expired(now)) {
        node.message = None;
        node.stored_at = None;
        purged += 1;
    }
    node.children.retain(|_, child| {
        purged += purge(child, now);
        !child.is_empty()
    });
    purged
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use protocol::QoS;
    use std::time::Duration;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        })
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out: Vec<String> = store
            .matching(filter, Instant::now())
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn set_replace_and_delete_by_empty_payload() {
        let mut store = RetainedStore::default();
        store.set(msg("a/b", "1"));
        assert_eq!(
            store.set(msg("a/b", "2")).map(|m| m.payload.clone()),
            Some(Bytes::from("1"))
        );
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.get("a/b").map(|m| m.payload.clone()),
            Some(Bytes::from("2"))
        );
        store.set(msg("a/b", ""));
        assert!(store.is_empty());
        assert!(store.root.is_empty(), "deleting prunes the path");
    }

    #[test]
    fn wildcard_filters_find_matching_topics() {
        let mut store = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "a/x", "b", "$SYS/uptime", "/lead"] {
            store.set(msg(t, "v"));
        }
        assert_eq!(topics(&store, "a/#"), ["a", "a/b", "a/b/c", "a/x"]);
        assert_eq!(topics(&store, "a/+"), ["a/b", "a/x"]);
        assert_eq!(
            topics(&store, "#"),
            ["/lead", "a", "a/b", "a/b/c", "a/x", "b"]
        );
        assert_eq!(topics(&store, "+/uptime"), Vec::<String>::new());
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS/uptime"]);
        assert_eq!(topics(&store, "+/lead"), ["/lead"]);
        assert_eq!(topics(&store, "a/b"), ["a/b"]);
    }

    #[test]
    fn expired_messages_are_not_delivered_and_are_purged() {
        let mut store = RetainedStore::default();
        let now = Instant::now();
        let mut expiring = (*msg("t/1", "x")).clone();
        expiring.expires_at = Some(now + Duration::from_secs(5));
        store.set(Arc::new(expiring));
        store.set(msg("t/2", "y"));
        assert_eq!(store.matching("t/#", now).len(), 2);
        let later = now + Duration::from_secs(6);
        assert_eq!(store.matching("t/#", later).len(), 1);
        assert_eq!(store.purge_expired(later), 1);
        assert_eq!(store.len(), 1);
    }
}
