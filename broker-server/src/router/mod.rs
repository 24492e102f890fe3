//! Routing: which sessions get a message. Synchronous and socket-free, so unit tests
//! drive it directly.
//!
//! Any connection task routes its own publishes: it takes the subscription trie's read
//! lock, collects the matching sessions and pushes into their mailboxes. No router task
//! sits between publishers and subscribers, so routing scales with the cores, and the
//! payload is shared (`Arc<Message>`) by every delivery.
//!
//! # Layout
//! - [`trie`]: the generic topic-filter trie.
//! - [`retained`]: retained messages by topic.
//! - [`shared`]: a departed shared-group member's unacknowledged messages go to the
//!   rest of its group.
//! - this module: [`Router`], overlapping subscriptions, No Local, shared groups.

pub(crate) mod retained;
pub(crate) mod shared;
pub(crate) mod trie;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::{QoS, SubscriptionOptions, TopicFilter};
use smallvec::SmallVec;

pub(crate) use retained::RetainedStore;
use trie::{Keyed, Trie};

use crate::config::SharedStrategy;
use crate::message::{Delivery, Message};
use crate::session::Session;

/// Up to this many deliveries collected, a subscriber matched by a second filter is
/// found by a linear search instead of a hash index.
const LINEAR_DEDUP: usize = 32;

/// One client's subscription to one filter.
#[derive(Debug, Clone)]
pub struct SubEntry {
    /// The subscriber.
    pub session: Arc<Session>,
    /// Its options (QoS, No Local, Retain As Published, Retain Handling).
    pub options: SubscriptionOptions,
    /// MQTT 5 Subscription Identifier.
    pub id: Option<NonZeroU32>,
}

impl Keyed for SubEntry {
    type Key = ByteString;
    fn key(&self) -> &ByteString {
        &self.session.client_id
    }
}

/// The members of one `$share/{group}/{filter}`.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    name: ByteString,
    /// The whole `$share/{group}/{filter}`, carried by each delivery so a message can
    /// find its group again (re-delivery, [`shared`]).
    filter: TopicFilter,
    members: Vec<SubEntry>,
    /// Round robin position, or the sticky member's index.
    cursor: AtomicUsize,
}

impl Keyed for SharedGroup {
    type Key = ByteString;
    fn key(&self) -> &ByteString {
        &self.name
    }
}

impl SharedGroup {
    fn pick(&self, strategy: SharedStrategy) -> Option<&SubEntry> {
        let len = self.members.len();
        if len == 0 {
            return None;
        }
        let online = |i: usize| self.members[i % len].session.is_online();
        let start = match strategy {
            SharedStrategy::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed),
            SharedStrategy::Random => fastrand::usize(..len),
            SharedStrategy::Sticky => self.cursor.load(Ordering::Relaxed),
        };
        let chosen = (start..start + len).find(|&i| online(i)).unwrap_or(start) % len;
        if strategy == SharedStrategy::Sticky {
            self.cursor.store(chosen, Ordering::Relaxed);
        }
        self.members.get(chosen)
    }
}

/// What subscribing did, for Retain Handling 1 and for SUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// A new subscription.
    New,
    /// It replaced one with the same filter [MQTT-3.8.4-3].
    Replaced,
}

/// Subscriptions and retained messages.
#[derive(Debug, Default)]
pub struct Router {
    subscriptions: RwLock<Trie<SubEntry>>,
    shared: RwLock<Trie<SharedGroup>>,
    /// Members of all shared groups together (the trie counts groups), for
    /// [`Router::subscription_count`].
    shared_members: AtomicUsize,
    retained: RwLock<RetainedStore>,
    strategy: SharedStrategy,
    /// In a cluster, a shared group's messages come from the cluster (one member
    /// cluster-wide, [`Router::route_shared`]); [`Router::route`] leaves the groups out.
    groups_elsewhere: std::sync::atomic::AtomicBool,
}

impl Router {
    /// An empty router using `strategy` for shared subscriptions.
    pub fn new(strategy: SharedStrategy) -> Self {
        Self {
            strategy,
            ..Self::default()
        }
    }

    /// Adds or replaces `entry`'s subscription to `filter`.
    pub fn subscribe(&self, filter: &TopicFilter, entry: SubEntry) -> SubscribeOutcome {
        self.subscribe_counted(filter, entry).0
    }

    /// [`subscribe`](Self::subscribe), also telling whether `filter` is new among
    /// this node's subscriptions (its first subscriber; for a shared filter, its
    /// group's first member): the broker tells the backplane
    /// ([`crate::broker::backplane`]).
    pub fn subscribe_counted(
        &self,
        filter: &TopicFilter,
        entry: SubEntry,
    ) -> (SubscribeOutcome, bool) {
        let (replaced, first) = match filter.share_group() {
            None => {
                let (replaced, count) = self
                    .subscriptions
                    .write()
                    .insert_counted(filter.filter(), entry);
                (replaced.is_some(), count == 1 && replaced.is_none())
            }
            Some(group) => {
                let mut shared = self.shared.write();
                if let Some(existing) = shared.get_mut(filter.filter(), &ByteString::from(group)) {
                    match existing.members.iter_mut().find(|m| m.key() == entry.key()) {
                        Some(member) => {
                            *member = entry;
                            (true, false)
                        }
                        None => {
                            existing.members.push(entry);
                            self.shared_members.fetch_add(1, Ordering::Relaxed);
                            (false, false)
                        }
                    }
                } else {
                    self.shared_members.fetch_add(1, Ordering::Relaxed);
                    let group = SharedGroup {
                        name: group.into(),
                        filter: filter.clone(),
                        members: vec![entry],
                        cursor: AtomicUsize::new(0),
                    };
                    shared.insert(filter.filter(), group);
                    (false, true)
                }
            }
        };
        let outcome = if replaced {
            SubscribeOutcome::Replaced
        } else {
            SubscribeOutcome::New
        };
        (outcome, first)
    }

    /// Removes `client_id`'s subscription to `filter`; `false` if it had none.
    pub fn unsubscribe(&self, filter: &TopicFilter, client_id: &ByteString) -> bool {
        self.unsubscribe_counted(filter, client_id).is_some()
    }

    /// [`unsubscribe`](Self::unsubscribe): `None` if it had none, else whether that
    /// was the filter's last subscriber on this node (for a shared filter: its group's
    /// last member).
    pub fn unsubscribe_counted(
        &self,
        filter: &TopicFilter,
        client_id: &ByteString,
    ) -> Option<bool> {
        match filter.share_group() {
            None => self
                .subscriptions
                .write()
                .remove_counted(filter.filter(), client_id)
                .map(|(_, left)| left == 0),
            Some(group) => {
                let mut shared = self.shared.write();
                let group_key = ByteString::from(group);
                let existing = shared.get_mut(filter.filter(), &group_key)?;
                let removed = existing.remove_member(client_id);
                if removed {
                    self.shared_members.fetch_sub(1, Ordering::Relaxed);
                }
                let last = existing.members.is_empty();
                if last {
                    shared.remove(filter.filter(), &group_key);
                }
                removed.then_some(last)
            }
        }
    }

    /// Number of subscriptions (a shared group counts once per member).
    pub fn subscription_count(&self) -> usize {
        let plain = self.subscriptions.read().len();
        plain + self.shared_members.load(Ordering::Relaxed)
    }

    /// Collects into `out` one [`Delivery`] per session that should get `message`.
    ///
    /// A client with several matching subscriptions gets one copy at the highest QoS
    /// and with every Subscription Identifier (§3.3.4, allowed for 3.x and 5); No Local
    /// subscriptions skip the publisher [MQTT-3.8.3-3]; each shared group adds one
    /// member (§4.8.2: a message to a shared subscription goes to one session of the
    /// group).
    pub fn route(&self, message: &Arc<Message>, out: &mut Vec<(Arc<Session>, Delivery)>) {
        out.clear();
        let mut slices = 0usize;
        let mut index: HashMap<*const Session, usize> = HashMap::new();
        let mut add = |out: &mut Vec<(Arc<Session>, Delivery)>, entry: &SubEntry, dedup: bool| {
            if entry.options.no_local && entry.session.client_id == message.origin {
                return;
            }
            let qos = message.qos.min(entry.options.qos);
            let retain = entry.options.retain_as_published && message.retain;
            let mut ids = SmallVec::<[NonZeroU32; 1]>::new();
            if let Some(id) = entry.id {
                ids.push(id);
            }
            if dedup {
                // A few collected deliveries are searched in place; the index (an
                // allocation per message) is built only once there are many.
                let found = if index.is_empty() && out.len() <= LINEAR_DEDUP {
                    out.iter()
                        .position(|(session, _)| Arc::ptr_eq(session, &entry.session))
                } else {
                    if index.is_empty() {
                        for (i, (session, _)) in out.iter().enumerate() {
                            index.insert(Arc::as_ptr(session), i);
                        }
                    }
                    let found = index.get(&Arc::as_ptr(&entry.session)).copied();
                    if found.is_none() {
                        index.insert(Arc::as_ptr(&entry.session), out.len());
                    }
                    found
                };
                if let Some(i) = found {
                    let existing = &mut out[i].1;
                    existing.qos = existing.qos.max(qos);
                    existing.retain |= retain;
                    existing.subscription_ids.extend(ids);
                    return;
                }
            }
            let delivery = Delivery {
                message: message.clone(),
                qos,
                retain,
                subscription_ids: ids,
                shared_group: None,
                stored: None,
            };
            out.push((entry.session.clone(), delivery));
        };
        self.subscriptions
            .read()
            .for_each_match(&message.topic, |entries| {
                let dedup = slices > 0;
                slices += 1;
                for entry in entries {
                    add(out, entry, dedup);
                }
            });
        if self.groups_elsewhere.load(Ordering::Relaxed) {
            return;
        }
        let shared = self.shared.read();
        shared.for_each_match(&message.topic, |groups| {
            for group in groups {
                if let Some(member) = group.pick(self.strategy) {
                    // A shared delivery is separate from the member's own subscriptions
                    // (§4.8.2): no dedup against them.
                    out.push((member.session.clone(), group.delivery(member, message)));
                }
            }
        });
    }

    /// From now on [`route`](Self::route) leaves shared groups out: the cluster gives
    /// each of their messages to one node ([`route_shared`](Self::route_shared)).
    pub fn route_groups_elsewhere(&self) {
        self.groups_elsewhere.store(true, Ordering::Relaxed);
    }

    /// The member of the shared subscription `share` (`$share/{group}/{filter}`) that
    /// gets `message`, picked by the strategy; `None` if the group has no member here.
    pub fn route_shared(
        &self,
        message: &Arc<Message>,
        share: &TopicFilter,
    ) -> Option<(Arc<Session>, Delivery)> {
        let mut picked = None;
        self.shared.read().for_each_match(&message.topic, |groups| {
            for group in groups {
                if picked.is_none()
                    && group.filter == *share
                    && let Some(member) = group.pick(self.strategy)
                {
                    picked = Some((member.session.clone(), group.delivery(member, message)));
                }
            }
        });
        picked
    }

    /// Stores or deletes a retained message.
    pub fn retain(&self, message: Arc<Message>) {
        self.retained.write().set(message);
    }

    /// Read access to the retained store.
    pub fn retained(&self) -> parking_lot::RwLockReadGuard<'_, RetainedStore> {
        self.retained.read()
    }

    /// Write access to the retained store.
    pub fn retained_mut(&self) -> parking_lot::RwLockWriteGuard<'_, RetainedStore> {
        self.retained.write()
    }

    /// Whether any subscription would receive a message on `topic` (v5 PUBACK 0x10).
    pub fn has_subscribers(&self, topic: &str) -> bool {
        let mut found = false;
        self.subscriptions
            .read()
            .for_each_match(topic, |_| found = true);
        if !found {
            self.shared.read().for_each_match(topic, |_| found = true);
        }
        found
    }

    /// Shared groups' current members for `filter`, for tests and the admin API.
    pub fn shared_members(&self, filter: &TopicFilter) -> Vec<ByteString> {
        let Some(group) = filter.share_group() else {
            return Vec::new();
        };
        let mut shared = self.shared.write();
        shared
            .get_mut(filter.filter(), &ByteString::from(group))
            .map(|g| {
                g.members
                    .iter()
                    .map(|m| m.session.client_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The QoS used for a delivery, exposed for the retained-on-subscribe path.
    pub fn delivery_qos(message: &Message, options: &SubscriptionOptions) -> QoS {
        message.qos.min(options.qos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DropPolicy;
    use crate::session::QueueLimits;

    fn entry(session: &Arc<Session>, qos: QoS, id: u32) -> SubEntry {
        SubEntry {
            session: session.clone(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            id: NonZeroU32::new(id),
        }
    }

    /// `clients` sessions each subscribed to `a/+` (QoS 0, id 1) and `a/#` (QoS 1, id 2):
    /// a message on `a/b` reaches each once, at QoS 1, with both identifiers.
    fn overlapping(clients: usize) {
        let router = Router::default();
        let limits = QueueLimits {
            max_messages: 10,
            max_bytes: 1000,
            queue_qos0_offline: false,
            policy: DropPolicy::DropNewest,
        };
        let plus = TopicFilter::new("a/+").unwrap();
        let hash = TopicFilter::new("a/#").unwrap();
        for i in 0..clients {
            let session = Arc::new(Session::new(format!("c{i}").into(), limits));
            router.subscribe(&plus, entry(&session, QoS::AtMostOnce, 1));
            router.subscribe(&hash, entry(&session, QoS::AtLeastOnce, 2));
        }
        let message = Arc::new(Message {
            topic: "a/b".into(),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        });
        let mut out = Vec::new();
        router.route(&message, &mut out);
        assert_eq!(out.len(), clients, "one delivery per client");
        let mut clients_seen: Vec<_> = out.iter().map(|(s, _)| s.client_id.clone()).collect();
        clients_seen.sort_unstable();
        clients_seen.dedup();
        assert_eq!(clients_seen.len(), clients);
        for (_, delivery) in &out {
            assert_eq!(delivery.qos, QoS::AtLeastOnce);
            let mut ids: Vec<u32> = delivery
                .subscription_ids
                .iter()
                .map(|id| id.get())
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, [1, 2]);
        }
    }

    /// The backplane hears of a filter once: when its first subscriber on this node
    /// comes and when its last goes (a shared filter: per group).
    #[test]
    fn interest_changes_only_with_the_first_and_last_subscriber() {
        let limits = QueueLimits {
            max_messages: 10,
            max_bytes: 1000,
            queue_qos0_offline: false,
            policy: DropPolicy::DropNewest,
        };
        let router = Router::default();
        let (a, b) = (
            Arc::new(Session::new("a".into(), limits)),
            Arc::new(Session::new("b".into(), limits)),
        );
        for text in ["x/+", "$share/g/x/+"] {
            let filter = TopicFilter::new(text).unwrap();
            assert!(
                router
                    .subscribe_counted(&filter, entry(&a, QoS::AtMostOnce, 0))
                    .1
            );
            assert!(
                !router
                    .subscribe_counted(&filter, entry(&b, QoS::AtMostOnce, 0))
                    .1
            );
            assert!(
                !router
                    .subscribe_counted(&filter, entry(&a, QoS::AtLeastOnce, 0))
                    .1
            );
            assert_eq!(
                router.unsubscribe_counted(&filter, &"a".into()),
                Some(false)
            );
            assert_eq!(router.unsubscribe_counted(&filter, &"a".into()), None);
            assert_eq!(router.unsubscribe_counted(&filter, &"b".into()), Some(true));
        }
    }

    #[test]
    fn overlapping_filters_deliver_once_with_few_subscribers() {
        overlapping(3);
    }

    #[test]
    fn overlapping_filters_deliver_once_with_many_subscribers() {
        overlapping(LINEAR_DEDUP * 2);
    }
}
