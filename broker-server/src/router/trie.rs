//! The subscription trie: topic filters stored level by level, matched against a topic
//! name in time proportional to the topic's depth and the number of matches, not to the
//! number of subscriptions.
//!
//! Each node has exact-level children in a hash map and at most one `+` child and one
//! `#` child, so matching a level is one hash lookup plus two pointer checks. Values are
//! kept per node in a `Vec`; a node's values are unique by [`Keyed::key`].

use std::collections::HashMap;

use protocol::topic;

/// A value stored in the trie, unique per node by its key (a client, a group member).
pub(crate) trait Keyed {
    /// What makes two values "the same subscriber" at one filter.
    type Key: PartialEq;
    fn key(&self) -> &Self::Key;
}

#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    plus: Option<Box<Node<V>>>,
    hash: Option<Box<Node<V>>>,
    values: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            plus: None,
            hash: None,
            values: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
    }

    fn child_mut(&mut self, level: &str) -> &mut Node<V> {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.children.entry(level.into()).or_default(),
        }
    }
}

/// Topic filters mapped to values (subscriptions).
#[derive(Debug)]
pub(crate) struct Trie<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V: Keyed> Trie<V> {
    /// Number of values stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` under `filter` (a valid, non-shared filter), replacing and
    /// returning the value with the same key.
    pub(crate) fn insert(&mut self, filter: &str, value: V) -> Option<V> {
        self.insert_counted(filter, value).0
    }

    /// [`insert`](Self::insert), also telling how many values `filter` has now.
    pub(crate) fn insert_counted(&mut self, filter: &str, value: V) -> (Option<V>, usize) {
        let mut node = &mut self.root;
        for level in topic::levels(filter) {
            node = node.child_mut(level);
        }
        if let Some(slot) = node.values.iter_mut().find(|v| v.key() == value.key()) {
            return (Some(std::mem::replace(slot, value)), node.values.len());
        }
        node.values.push(value);
        self.len += 1;
        (None, node.values.len())
    }

    /// Removes the value with `key` under `filter`, pruning emptied nodes.
    pub(crate) fn remove(&mut self, filter: &str, key: &V::Key) -> Option<V> {
        self.remove_counted(filter, key).map(|(value, _)| value)
    }

    /// [`remove`](Self::remove), also telling how many values `filter` has left.
    pub(crate) fn remove_counted(&mut self, filter: &str, key: &V::Key) -> Option<(V, usize)> {
        let levels: smallvec::SmallVec<[&str; 16]> = topic::levels(filter).collect();
        let removed = remove_at(&mut self.root, &levels, key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Mutable access to the value with `key` under `filter`.
    pub(crate) fn get_mut(&mut self, filter: &str, key: &V::Key) -> Option<&mut V> {
        let mut node = &mut self.root;
        for level in topic::levels(filter) {
            node = match level {
                "+" => node.plus.as_deref_mut()?,
                "#" => node.hash.as_deref_mut()?,
                _ => node.children.get_mut(level)?,
            };
        }
        node.values.iter_mut().find(|v| v.key() == key)
    }

    /// Calls `f` with every value whose filter matches `topic`, honouring the rule that
    /// a leading wildcard does not match a `$` topic [MQTT-4.7.2-1]. Each node's values
    /// are passed as one slice.
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a [V])) {
        let levels: smallvec::SmallVec<[&str; 16]> = topic::levels(topic).collect();
        let system = topic.starts_with('$');
        visit(&self.root, &levels, system, &mut f);
    }
}

fn visit<'a, V>(
    node: &'a Node<V>,
    levels: &[&str],
    skip_wildcards: bool,
    f: &mut impl FnMut(&'a [V]),
) {
    if !skip_wildcards {
        // `#` matches this level and everything below it, including nothing: `a/#`
        // matches `a` [MQTT-4.7.1-1].
        if let Some(hash) = &node.hash
            && !hash.values.is_empty()
        {
            f(&hash.values);
        }
    }
    let Some((level, rest)) = levels.split_first() else {
        if !node.values.is_empty() {
            f(&node.values);
        }
        return;
    };
    if let Some(child) = node.children.get(*level) {
        visit(child, rest, false, f);
    }
    if !skip_wildcards && let Some(plus) = &node.plus {
        visit(plus, rest, false, f);
    }
}

fn remove_at<V: Keyed>(node: &mut Node<V>, levels: &[&str], key: &V::Key) -> Option<(V, usize)> {
    let Some((level, rest)) = levels.split_first() else {
        let index = node.values.iter().position(|v| v.key() == key)?;
        let removed = node.values.swap_remove(index);
        return Some((removed, node.values.len()));
    };
    match *level {
        "+" => {
            let child = node.plus.as_deref_mut()?;
            let removed = remove_at(child, rest, key);
            if child.is_empty() {
                node.plus = None;
            }
            removed
        }
        "#" => {
            let child = node.hash.as_deref_mut()?;
            let removed = remove_at(child, rest, key);
            if child.is_empty() {
                node.hash = None;
            }
            removed
        }
        _ => {
            let child = node.children.get_mut(*level)?;
            let removed = remove_at(child, rest, key);
            if child.is_empty() {
                node.children.remove(*level);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Sub(&'static str);

    impl Keyed for Sub {
        type Key = &'static str;
        fn key(&self) -> &Self::Key {
            &self.0
        }
    }

    fn matching(trie: &Trie<Sub>, topic: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |values| out.extend(values.iter().map(|v| v.0)));
        out.sort_unstable();
        out
    }

    fn trie(filters: &[(&str, &'static str)]) -> Trie<Sub> {
        let mut trie = Trie::default();
        for (filter, client) in filters {
            trie.insert(filter, Sub(client));
        }
        trie
    }

    #[test]
    fn exact_and_wildcard_filters_match() {
        let t = trie(&[
            ("a/b", "exact"),
            ("a/+", "plus"),
            ("a/#", "hash"),
            ("#", "all"),
            ("+/+", "pp"),
        ]);
        assert_eq!(matching(&t, "a/b"), ["all", "exact", "hash", "plus", "pp"]);
        assert_eq!(matching(&t, "a"), ["all", "hash"]);
        assert_eq!(matching(&t, "a/b/c"), ["all", "hash"]);
        assert_eq!(matching(&t, "x/y"), ["all", "pp"]);
    }

    #[test]
    fn leading_wildcards_skip_system_topics() {
        let t = trie(&[
            ("#", "all"),
            ("+/monitor/Clients", "plus"),
            ("$SYS/#", "sys"),
        ]);
        assert_eq!(matching(&t, "$SYS/monitor/Clients"), ["sys"]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let t = trie(&[("/+", "lead"), ("a//b", "mid"), ("a/+/b", "plus")]);
        assert_eq!(matching(&t, "/x"), ["lead"]);
        assert_eq!(matching(&t, "a//b"), ["mid", "plus"]);
    }

    #[test]
    fn insert_replaces_same_key_and_remove_prunes() {
        let mut t = trie(&[("a/b", "c1"), ("a/b", "c2")]);
        assert_eq!(t.insert("a/b", Sub("c1")), Some(Sub("c1")));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove("a/b", &"c1"), Some(Sub("c1")));
        assert_eq!(t.remove("a/b", &"c1"), None);
        assert_eq!(t.remove("a/+/#", &"c2"), None);
        assert_eq!(t.remove("a/b", &"c2"), Some(Sub("c2")));
        assert_eq!(t.len(), 0);
        assert!(t.root.is_empty(), "emptied nodes are pruned");
    }
}
