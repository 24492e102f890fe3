//! The explorer's model, pure and unit-tested natively: a topic tree with message counts
//! per node (a node counts its own messages and its descendants'), the last message and a
//! bounded history per topic, truncated payloads, flattening for display (with
//! collapsing, expansion to a depth, and when each row last changed), search by
//! substring or MQTT wildcard, and a line diff between two payloads.
//!
//! A topic whose retained message is deleted (an empty retained message) and that had no
//! other traffic leaves the tree, with any levels above it left empty.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use web_client::TopicFilter;

/// One message as the explorer keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its number among the messages the tree has seen (1, 2, ...; set by
    /// [`Tree::add`]): what a selection holds on to while newer messages push older
    /// ones out of the history.
    pub id: u64,
    /// Milliseconds since the epoch when it arrived.
    pub time_ms: f64,
    /// The payload, at most the payload limit.
    pub payload: Vec<u8>,
    /// The payload's full size in bytes.
    pub size: usize,
    /// Whether it was retained: sent from the broker's store, or published retained (the
    /// explorer subscribes with Retain As Published).
    pub retained: bool,
    /// The QoS it arrived at.
    pub qos: u8,
    /// MQTT 5 content type, if any.
    pub content_type: Option<String>,
    /// MQTT 5 user properties.
    pub user_properties: Vec<(String, String)>,
}

impl Record {
    /// A record of `payload`, keeping at most `limit` bytes of it.
    pub fn new(payload: &[u8], limit: usize, time_ms: f64) -> Self {
        Self {
            id: 0,
            time_ms,
            payload: payload[..payload.len().min(limit)].to_vec(),
            size: payload.len(),
            retained: false,
            qos: 0,
            content_type: None,
            user_properties: Vec::new(),
        }
    }

    /// Whether the payload was cut to the limit.
    pub fn truncated(&self) -> bool {
        self.payload.len() < self.size
    }
}

/// What is known of one topic that had messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topic {
    /// Its messages, oldest first, at most the history limit.
    pub history: VecDeque<Record>,
    /// Whether the broker holds a retained message for it, as far as seen: set by a
    /// retained message, cleared by an empty retained one (a delete).
    pub retained: bool,
    /// Messages on this topic itself (not below it).
    pub own: u64,
    /// Of those, messages that were not retained: traffic beside the retained message,
    /// which keeps the topic in the tree when its retained message is deleted.
    pub live: u64,
    /// The visit ([`Tree::reopened`]) in which it last had a message.
    visit: u64,
}

/// A node of the tree: one topic level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Messages on this topic and every topic below.
    pub count: u64,
    /// Set when this level is itself a topic that had messages.
    pub topic: Option<Topic>,
    /// When a message last arrived on it or below (milliseconds since the epoch).
    pub changed_ms: f64,
}

/// The tree, keyed by topic levels, so that iteration is depth-first in topic order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    nodes: BTreeMap<Vec<String>, Node>,
    /// Messages seen in all.
    pub total: u64,
    /// How often the explorer was opened again with this tree ([`Tree::reopened`]).
    visit: u64,
    /// The last record id given (to a message, or to a record from the broker's history:
    /// [`Tree::number`]).
    last_id: u64,
}

/// One row of the flattened tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The full topic (or prefix) of the node.
    pub path: String,
    /// Its last level.
    pub label: String,
    /// Levels above it.
    pub depth: usize,
    /// Messages on it and below.
    pub count: u64,
    /// Whether it has nodes below.
    pub has_children: bool,
    /// Its last payload (as text, cut short), if it is a topic.
    pub last: Option<String>,
    /// Whether it holds a retained message.
    pub retained: bool,
    /// When a message last arrived on it or below (milliseconds since the epoch).
    pub changed_ms: f64,
}

/// How many characters of the last value a row shows.
const PREVIEW: usize = 60;

impl Tree {
    /// Records a message on `topic`, keeping at most `history` messages for it.
    ///
    /// An empty retained message deletes the retained message: a topic that had no
    /// other traffic is removed from the tree (and a delete for a topic never seen adds
    /// nothing); a topic that had is kept, with the delete in its history.
    ///
    /// The first message on a known topic after [`Tree::reopened`] that is retained and
    /// the same as its last one is the broker sending its retained message again, not a
    /// new message: it is not counted.
    pub fn add(&mut self, topic: &str, mut record: Record, history: usize) {
        let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
        let visit = self.visit;
        // Only a retained message can be one sent again (a topic's first message of a
        // visit marks it, whatever it is, below).
        if record.retained
            && let Some(known) = self.nodes.get_mut(&levels).and_then(|n| n.topic.as_mut())
            && known.visit != visit
        {
            known.visit = visit;
            let resent = known.history.back().is_some_and(|last| {
                last.retained
                    && last.size == record.size
                    && last.payload == record.payload
                    && last.content_type == record.content_type
            });
            if resent {
                return;
            }
        }
        if record.retained && record.size == 0 {
            match self.nodes.get(&levels).and_then(|n| n.topic.as_ref()) {
                None => return,
                Some(known) if known.live == 0 => {
                    self.remove_topic(&levels);
                    return;
                }
                Some(_) => {}
            }
        }
        self.total += 1;
        self.last_id += 1;
        record.id = self.last_id;
        for depth in 1..levels.len() {
            let node = self.nodes.entry(levels[..depth].to_vec()).or_default();
            node.count += 1;
            node.changed_ms = node.changed_ms.max(record.time_ms);
        }
        let node = self.nodes.entry(levels).or_default();
        node.count += 1;
        node.changed_ms = node.changed_ms.max(record.time_ms);
        let entry = node.topic.get_or_insert_with(Topic::default);
        entry.visit = visit;
        entry.own += 1;
        if record.retained {
            entry.retained = record.size > 0;
        } else {
            entry.live += 1;
        }
        entry.history.push_back(record);
        while entry.history.len() > history.max(1) {
            entry.history.pop_front();
        }
    }

    /// Marks the explorer opened again on this tree: each known topic's first retained
    /// message that repeats its last one is then not counted (see [`Tree::add`]).
    pub fn reopened(&mut self) {
        self.visit += 1;
    }

    /// The topic `topic`, if it had messages.
    pub fn topic(&self, topic: &str) -> Option<&Topic> {
        let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
        self.nodes.get(&levels)?.topic.as_ref()
    }

    /// Gives each of `records` (from the broker's history, not received here, so not
    /// counted in [`Tree::total`]) a record id of its own, as the history view keys its
    /// items and pins its selections by id.
    pub fn number(&mut self, records: &mut [Record]) {
        for record in records {
            self.last_id += 1;
            record.id = self.last_id;
        }
    }

    /// The topic `topic`, to change its history (a backfill from the broker).
    pub fn topic_mut(&mut self, topic: &str) -> Option<&mut Topic> {
        let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
        self.nodes.get_mut(&levels)?.topic.as_mut()
    }

    /// Marks `topic` as no longer retained (after this dashboard deleted it); a topic
    /// with no other traffic leaves the tree.
    pub fn clear_retained(&mut self, topic: &str) {
        let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
        if let Some(entry) = self.nodes.get_mut(&levels).and_then(|n| n.topic.as_mut()) {
            entry.retained = false;
            if entry.live == 0 {
                self.remove_topic(&levels);
            }
        }
    }

    /// Removes the topic at `levels` and its messages from the counts above it; then
    /// removes it and every level above it that is left with neither a topic nor levels
    /// below.
    fn remove_topic(&mut self, levels: &[String]) {
        let Some(topic) = self.nodes.get_mut(levels).and_then(|n| n.topic.take()) else {
            return;
        };
        for depth in 1..=levels.len() {
            if let Some(node) = self.nodes.get_mut(&levels[..depth]) {
                node.count = node.count.saturating_sub(topic.own);
            }
        }
        for depth in (1..=levels.len()).rev() {
            let key = &levels[..depth];
            let mut from = self.nodes.range(key.to_vec()..).peekable();
            let this = from.next_if(|(levels, _)| levels.as_slice() == key);
            let keep = this.is_some_and(|(_, node)| node.topic.is_some())
                || from.next().is_some_and(|(next, _)| next.starts_with(key));
            if keep {
                break;
            }
            self.nodes.remove(key);
        }
    }

    /// The nodes with levels below them at depth `depth` or deeper (0 is the top): the
    /// collapsed set that shows the tree expanded down to `depth` levels (0: everything
    /// collapsed).
    pub fn collapsed_from(&self, depth: usize) -> BTreeSet<String> {
        let mut collapsed = BTreeSet::new();
        let mut iter = self.nodes.keys().peekable();
        while let Some(levels) = iter.next() {
            let has_children = iter
                .peek()
                .is_some_and(|next| next.len() > levels.len() && next.starts_with(levels));
            if has_children && levels.len() > depth {
                collapsed.insert(levels.join("/"));
            }
        }
        collapsed
    }

    /// The topics at or below `path` that hold a retained message.
    pub fn retained_under(&self, path: &str) -> Vec<String> {
        let prefix: Vec<String> = path.split('/').map(str::to_owned).collect();
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(levels, _)| levels.starts_with(&prefix))
            .filter(|(_, node)| node.topic.as_ref().is_some_and(|t| t.retained))
            .map(|(levels, _)| levels.join("/"))
            .collect()
    }

    /// How many nodes the tree has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The rows to show: every node whose ancestors are not collapsed, depth first; with
    /// a search, only topics that match it (and no collapsing).
    pub fn rows(&self, collapsed: &BTreeSet<String>, search: &Search) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut skip: Option<Vec<String>> = None;
        let mut iter = self.nodes.iter().peekable();
        while let Some((levels, node)) = iter.next() {
            let has_children = iter
                .peek()
                .is_some_and(|(next, _)| next.len() > levels.len() && next.starts_with(levels));
            let path = levels.join("/");
            if let Search::None = search {
                if skip.as_ref().is_some_and(|s| levels.starts_with(s)) {
                    continue;
                }
                skip = None;
                if has_children && collapsed.contains(&path) {
                    skip = Some(levels.clone());
                }
            } else if node.topic.is_none() || !search.matches(&path) {
                continue;
            }
            let last = node
                .topic
                .as_ref()
                .and_then(|t| t.history.back())
                .map(preview);
            let searching = !matches!(search, Search::None);
            rows.push(Row {
                // Search results are a flat list: each shows its whole topic.
                label: if searching {
                    path.clone()
                } else {
                    levels.last().cloned().unwrap_or_default()
                },
                depth: if searching { 0 } else { levels.len() - 1 },
                changed_ms: node.changed_ms,
                count: node.count,
                has_children,
                last,
                retained: node.topic.as_ref().is_some_and(|t| t.retained),
                path,
            });
        }
        rows
    }
}

/// A short one-line view of a record's payload.
fn preview(record: &Record) -> String {
    match std::str::from_utf8(&record.payload) {
        Ok(text) => {
            let line: String = text
                .chars()
                .take(PREVIEW)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            if text.chars().count() > PREVIEW || record.truncated() {
                format!("{line}…")
            } else {
                line
            }
        }
        Err(_) => format!("({} bytes, binary)", record.size),
    }
}

/// A search of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// Everything.
    None,
    /// Topics containing this text (case-insensitive).
    Substring(String),
    /// Topics matching this MQTT filter (`+`, `#`).
    Filter(TopicFilter),
}

impl Search {
    /// Reads what the user typed: empty is none, text with `+` or `#` is an MQTT filter
    /// (an error if it is not a valid one), anything else a substring.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            Ok(Self::None)
        } else if text.contains(['+', '#']) {
            TopicFilter::new(text.to_owned())
                .map(Self::Filter)
                .map_err(|e| format!("not a valid MQTT filter: {e}"))
        } else {
            Ok(Self::Substring(text.to_lowercase()))
        }
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Self::None => true,
            Self::Substring(text) => topic.to_lowercase().contains(text),
            Self::Filter(filter) => filter.matches(topic),
        }
    }
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// In both.
    Same(String),
    /// Only in the older.
    Removed(String),
    /// Only in the newer.
    Added(String),
}

/// A line diff of `old` and `new` (longest common subsequence; payloads are bounded by
/// the payload limit, and longer inputs are compared as a whole to keep it cheap).
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    if a.len() * b.len() > 1_000_000 {
        return vec![
            DiffLine::Removed(old.to_owned()),
            DiffLine::Added(new.to_owned()),
        ];
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(DiffLine::Same(a[i].to_owned()));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(DiffLine::Removed(a[i].to_owned()));
            i += 1;
        } else {
            out.push(DiffLine::Added(b[j].to_owned()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::Removed((*l).to_owned())));
    out.extend(b[j..].iter().map(|l| DiffLine::Added((*l).to_owned())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &str, retained: bool) -> Record {
        Record {
            retained,
            ..Record::new(payload.as_bytes(), 1024, 0.0)
        }
    }

    fn tree() -> Tree {
        let mut tree = Tree::default();
        for (topic, payload, retained) in [
            ("iot/5/a/$state", "ready", true),
            ("iot/5/a/env/temperature", "21.5", true),
            ("iot/5/a/env/temperature", "21.6", false),
            ("iot/5/b/$state", "lost", true),
            ("iot/5/a-x/$state", "init", true),
            ("other", "x", false),
        ] {
            tree.add(topic, record(payload, retained), 10);
        }
        tree
    }

    #[test]
    fn nodes_count_their_own_and_their_descendants_messages_in_topic_order() {
        let tree = tree();
        let rows = tree.rows(&BTreeSet::new(), &Search::None);
        let paths: Vec<(&str, u64, usize)> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.count, r.depth))
            .collect();
        assert_eq!(
            paths,
            [
                ("iot", 5, 0),
                ("iot/5", 5, 1),
                ("iot/5/a", 3, 2),
                ("iot/5/a/$state", 1, 3),
                ("iot/5/a/env", 2, 3),
                ("iot/5/a/env/temperature", 2, 4),
                ("iot/5/a-x", 1, 2),
                ("iot/5/a-x/$state", 1, 3),
                ("iot/5/b", 1, 2),
                ("iot/5/b/$state", 1, 3),
                ("other", 1, 0),
            ]
        );
        let temperature = &rows[5];
        assert_eq!(temperature.last.as_deref(), Some("21.6"));
        assert!(
            temperature.retained,
            "a live message keeps the retained flag"
        );
        assert!(rows[4].has_children && !temperature.has_children);
        assert_eq!(tree.total, 6);
    }

    #[test]
    fn a_collapsed_node_hides_its_descendants() {
        let collapsed = BTreeSet::from(["iot/5/a".to_owned()]);
        let rows = tree().rows(&collapsed, &Search::None);
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "iot",
                "iot/5",
                "iot/5/a",
                "iot/5/a-x",
                "iot/5/a-x/$state",
                "iot/5/b",
                "iot/5/b/$state",
                "other"
            ]
        );
    }

    #[test]
    fn search_by_substring_or_wildcard_lists_matching_topics() {
        let tree = tree();
        let topics = |search: &str| -> Vec<String> {
            let search = Search::parse(search).expect("valid");
            tree.rows(&BTreeSet::new(), &search)
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        assert_eq!(topics("TEMP"), ["iot/5/a/env/temperature"]);
        assert_eq!(
            topics("iot/5/+/$state"),
            ["iot/5/a/$state", "iot/5/a-x/$state", "iot/5/b/$state"]
        );
        assert_eq!(topics("iot/5/a/#").len(), 2);
        assert!(Search::parse("iot/#/x").is_err());
        assert!(matches!(Search::parse("  "), Ok(Search::None)));
    }

    #[test]
    fn retained_messages_sent_again_on_reopening_are_not_counted_twice() {
        let mut tree = Tree::default();
        tree.add("a/kept", record("1", true), 10);
        tree.add("a/changed", record("1", true), 10);
        tree.add("a/live", record("1", false), 10);
        tree.reopened();
        // The broker's retained messages again: the same one is not a new message, a
        // changed one is.
        tree.add("a/kept", record("1", true), 10);
        tree.add("a/changed", record("2", true), 10);
        tree.add("a/live", record("1", true), 10);
        // After the first one, the same retained value published again is counted.
        tree.add("a/kept", record("1", true), 10);
        let own = |t: &Tree, topic: &str| t.topic(topic).expect("topic").own;
        assert_eq!(own(&tree, "a/kept"), 2);
        assert_eq!(own(&tree, "a/changed"), 2);
        assert_eq!(own(&tree, "a/live"), 2);
        assert_eq!(tree.total, 6);
        let a = tree.rows(&BTreeSet::new(), &Search::None);
        assert_eq!((a[0].path.as_str(), a[0].count), ("a", 6));
        // Without reopening, a repeated retained message counts as any other.
        let mut tree = Tree::default();
        tree.add("a/kept", record("1", true), 10);
        tree.add("a/kept", record("1", true), 10);
        assert_eq!(own(&tree, "a/kept"), 2);
    }

    #[test]
    fn records_from_the_broker_get_ids_of_their_own_and_do_not_count() {
        let mut tree = Tree::default();
        tree.add("t", record("live", false), 10);
        let mut older = vec![record("a", false), record("b", false)];
        tree.number(&mut older);
        tree.add("t", record("later", false), 10);
        let live = tree.topic("t").unwrap().history.iter().map(|r| r.id);
        let mut ids: Vec<u64> = older.iter().map(|r| r.id).chain(live).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4, "every record has its own id: {ids:?}");
        assert_eq!(
            tree.total, 2,
            "backfilled records are not messages received"
        );
    }

    #[test]
    fn records_keep_their_id_while_the_history_moves() {
        let mut tree = Tree::default();
        for i in 0..5 {
            tree.add("a/b", record(&i.to_string(), false), 3);
        }
        let history = &tree.topic("a/b").expect("topic").history;
        let ids: Vec<u64> = history.iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(history[0].payload, b"2");
    }

    #[test]
    fn histories_are_bounded_and_payloads_truncated() {
        let mut tree = Tree::default();
        for i in 0..30 {
            tree.add("t", Record::new(format!("{i:04}").as_bytes(), 2, 0.0), 5);
        }
        let topic = tree.topic("t").expect("seen");
        assert_eq!(topic.history.len(), 5);
        let last = topic.history.back().expect("one");
        assert_eq!(last.payload, b"00");
        assert!(last.truncated());
        assert_eq!(last.size, 4);
        assert_eq!(
            tree.rows(&BTreeSet::new(), &Search::None)[0]
                .last
                .as_deref(),
            Some("00…")
        );
    }

    #[test]
    fn retained_topics_under_a_node_are_counted_and_cleared() {
        let mut tree = tree();
        assert_eq!(
            tree.retained_under("iot/5/a"),
            ["iot/5/a/$state", "iot/5/a/env/temperature"]
        );
        assert_eq!(tree.retained_under("iot").len(), 4);
        tree.clear_retained("iot/5/a/$state");
        // An empty retained message (someone else's delete) clears it too.
        tree.add("iot/5/b/$state", record("", true), 10);
        assert_eq!(
            tree.retained_under("iot"),
            ["iot/5/a/env/temperature", "iot/5/a-x/$state"]
        );
    }

    #[test]
    fn the_diff_marks_added_and_removed_lines() {
        let lines = diff("a\nb\nc", "a\nc\nd");
        assert_eq!(
            lines,
            [
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Same("c".into()),
                DiffLine::Added("d".into()),
            ]
        );
    }

    #[test]
    fn a_deleted_retained_topic_without_other_traffic_leaves_the_tree() {
        let mut tree = tree();
        let paths = |tree: &Tree| -> Vec<String> {
            tree.rows(&BTreeSet::new(), &Search::None)
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        // Only retained traffic: gone, with the levels above it that held nothing else.
        tree.add("iot/5/b/$state", record("", true), 10);
        let after = paths(&tree);
        assert!(!after.iter().any(|p| p.starts_with("iot/5/b")), "{after:?}");
        assert_eq!(tree.rows(&BTreeSet::new(), &Search::None)[0].count, 4);
        // A topic with live traffic stays, no longer retained.
        tree.add("iot/5/a/env/temperature", record("", true), 10);
        let temperature = tree.topic("iot/5/a/env/temperature").expect("kept");
        assert!(!temperature.retained);
        // A delete for a topic never seen adds nothing.
        let before = tree.len();
        tree.add("never/seen", record("", true), 10);
        assert_eq!(tree.len(), before);
        // This dashboard's own delete does the same; a level that is a topic itself
        // stays when a topic below it goes.
        tree.add("iot/5/a-x/$state/sub", record("x", true), 10);
        tree.clear_retained("iot/5/a-x/$state/sub");
        assert!(paths(&tree).contains(&"iot/5/a-x/$state".to_owned()));
        assert!(!paths(&tree).contains(&"iot/5/a-x/$state/sub".to_owned()));
        tree.clear_retained("other");
        assert!(
            paths(&tree).contains(&"other".to_owned()),
            "other was not retained"
        );
        tree.clear_retained("iot/5/a-x/$state");
        assert!(!paths(&tree).iter().any(|p| p.starts_with("iot/5/a-x")));
    }

    #[test]
    fn search_results_show_the_whole_topic_and_expansion_goes_to_a_depth() {
        let tree = tree();
        let search = Search::parse("state").expect("valid");
        let rows = tree.rows(&BTreeSet::new(), &search);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.label == r.path && r.depth == 0));
        let shown = |depth| -> Vec<String> {
            tree.rows(&tree.collapsed_from(depth), &Search::None)
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        assert_eq!(shown(0), ["iot", "other"]);
        assert_eq!(shown(1), ["iot", "iot/5", "other"]);
        assert_eq!(shown(2).len(), 6);
        assert_eq!(shown(9).len(), 11);
    }

    #[test]
    fn rows_know_when_they_or_anything_below_last_changed() {
        let mut tree = Tree::default();
        let at = |ms| Record::new(b"1", 10, ms);
        tree.add("a/b", at(5.0), 10);
        tree.add("a/c", at(9.0), 10);
        tree.add("a/b", at(7.0), 10);
        let rows = tree.rows(&BTreeSet::new(), &Search::None);
        let changed: Vec<f64> = rows.iter().map(|r| r.changed_ms).collect();
        assert_eq!(changed, [9.0, 7.0, 9.0]);
    }
}
