//! [`SubscriptionRegistry`]: which topic filters the application holds local
//! subscriptions for, which of them the broker has, and which local subscriptions an
//! incoming message goes to.
//!
//! Several local subscriptions may share one filter: the broker sees one subscription
//! per filter, and UNSUBSCRIBE leaves only when the last local one is dropped. Each
//! filter gets an MQTT 5 Subscription Identifier, so a message that the broker delivers
//! once for several overlapping filters reaches exactly the local subscriptions whose
//! filters matched; without identifiers (MQTT 3.x, or a broker without them) the
//! filters are matched here with [`TopicFilter::matches`].
//!
//! The registry is sans-IO: it owns no channel and no task. What a client delivers
//! messages into and answers `subscribe` calls with is its [`Channels`] (tokio
//! channels in `native-client`, single-threaded queues in `web-client`).

use std::marker::PhantomData;
use std::num::NonZeroU32;

use bytestring::ByteString;

use super::channels::Reply;
use super::small_map::SmallMap;
use super::{Channels, Error, Message};
use crate::{PacketId, QoS, ReasonCode, SubscriptionOptions, TopicFilter};

/// Where a message goes whose MQTT 5 Subscription Identifiers name no filter the
/// registry holds (the filters were dropped and the UNSUBSCRIBE is on its way).
///
/// Both clients route [`UnknownIdRouting::Nowhere`] (the
/// [`Connection`](super::Connection) builds its registry so). They used to differ:
/// `native-client` matched the topic instead, which delivers a second copy to a local
/// subscription whose overlapping filter the broker also serves under its own
/// identifier (a broker may send one copy per matching subscription, §3.3.4, as
/// mosquitto does). A message that names only identifiers no filter holds any more
/// was meant for a subscription the application has given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownIdRouting {
    /// Match the topic against every filter instead (`native-client` before the
    /// clients shared this core; kept for tests of the difference).
    MatchTopic,
    /// Nowhere: matching the topic would deliver a second copy to an overlapping
    /// filter that gets the message under its own identifier.
    Nowhere,
}

/// Where a filter stands with the broker on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// To be sent (new, or the broker lost it, or its SUBSCRIBE was lost with a
    /// connection).
    Unsent,
    /// SUBSCRIBE sent with this packet identifier, no SUBACK yet.
    Requested(PacketId),
    /// The broker granted it.
    Active,
}

/// One topic filter as the broker sees it.
#[derive(Debug)]
struct Entry<C: Channels> {
    filter: TopicFilter,
    options: SubscriptionOptions,
    /// Its MQTT 5 Subscription Identifier, stable for the life of the client.
    id: NonZeroU32,
    state: State,
    /// Whether the broker has (or was asked for) this filter in the current session,
    /// so that dropping its last reader must UNSUBSCRIBE even while a re-SUBSCRIBE
    /// waits to be sent.
    on_server: bool,
    /// Local subscriptions reading this filter.
    locals: SmallMap<u64, C::Sender>,
    /// `subscribe` calls waiting for the SUBACK.
    waiters: Vec<(u64, Reply<C, QoS>)>,
    /// Held by the client itself (the request/response topic): kept without locals.
    internal: bool,
}

/// Every filter of a client and every local subscription (see the module docs).
/// Local subscriptions are named by the client's own `u64` ids.
#[derive(Debug)]
pub struct SubscriptionRegistry<C: Channels> {
    entries: SmallMap<ByteString, Entry<C>>,
    /// Local subscription → its filter.
    local_filters: SmallMap<u64, ByteString>,
    /// Subscription Identifier → filter.
    by_id: SmallMap<NonZeroU32, ByteString>,
    /// The last Subscription Identifier handed out.
    last_id: u32,
    /// UNSUBSCRIBE sent and not answered, by packet identifier.
    unsubscribing: SmallMap<PacketId, ByteString>,
    /// UNSUBSCRIBEs to send once connected, if the broker kept the session.
    deferred_unsubscribes: Vec<ByteString>,
    /// Routing of identifiers no filter holds: where the two clients differ.
    unknown_ids: UnknownIdRouting,
    _channels: PhantomData<fn() -> C>,
}

/// A SUBSCRIBE to send: the filter, its options and identifier.
pub type Pending = (TopicFilter, SubscriptionOptions, NonZeroU32);

impl<C: Channels> SubscriptionRegistry<C> {
    /// An empty registry; `unknown_ids` routes identifiers no filter holds.
    pub fn new(unknown_ids: UnknownIdRouting) -> Self {
        Self {
            entries: SmallMap::default(),
            local_filters: SmallMap::default(),
            by_id: SmallMap::default(),
            last_id: 0,
            unsubscribing: SmallMap::default(),
            deferred_unsubscribes: Vec::new(),
            unknown_ids,
            _channels: PhantomData,
        }
    }

    /// Registers local subscription `local` on `filter`; `reply` answers at the SUBACK.
    pub fn add(
        &mut self,
        local: u64,
        filter: TopicFilter,
        options: SubscriptionOptions,
        sender: C::Sender,
        reply: Reply<C, QoS>,
    ) {
        let key = filter.clone().into_inner();
        let entry = self.entry(filter, false);
        entry.options = options;
        entry.locals.insert(local, sender);
        entry.waiters.push((local, reply));
        // Always SUBSCRIBE again: options may have changed, and the new reader
        // expects the retained messages a SUBSCRIBE brings.
        entry.state = State::Unsent;
        self.local_filters.insert(local, key);
    }

    /// Makes sure the client's own `filter` exists (for responses to requests).
    pub fn ensure_internal(&mut self, filter: TopicFilter) {
        let entry = self.entry(filter, true);
        entry.internal = true;
    }

    fn entry(&mut self, filter: TopicFilter, internal: bool) -> &mut Entry<C> {
        let key = filter.clone().into_inner();
        let last_id = &mut self.last_id;
        let by_id = &mut self.by_id;
        self.entries.get_or_insert_with(key.clone(), || {
            // 268,435,455 is the largest identifier [MQTT-3.8.2.1.2]; wrapping after
            // that many filters only weakens routing to topic matching.
            *last_id = if *last_id >= 268_435_455 {
                1
            } else {
                *last_id + 1
            };
            let id = NonZeroU32::new(*last_id).unwrap_or(NonZeroU32::MIN);
            by_id.insert(id, key);
            Entry {
                filter,
                options: SubscriptionOptions::new(QoS::AtMostOnce),
                id,
                state: State::Unsent,
                on_server: false,
                locals: SmallMap::default(),
                waiters: Vec::new(),
                internal,
            }
        })
    }

    /// Forgets local subscription `local`. Returns the filter to UNSUBSCRIBE from when
    /// it was the last reader of a filter the broker has (or was asked for).
    pub fn remove_local(&mut self, local: u64) -> Option<TopicFilter> {
        let key = self.local_filters.remove(&local)?;
        let entry = self.entries.get_mut(&key)?;
        entry.locals.remove(&local);
        entry.waiters.retain(|(waiter, _)| *waiter != local);
        if !entry.locals.is_empty() || entry.internal {
            return None;
        }
        let entry = self.entries.remove(&key)?;
        self.by_id.remove(&entry.id);
        entry.on_server.then_some(entry.filter)
    }

    /// The filters whose SUBSCRIBE is to be sent now.
    pub fn unsent(&self) -> Vec<Pending> {
        self.entries
            .values()
            .filter(|entry| entry.state == State::Unsent)
            .map(|entry| (entry.filter.clone(), entry.options, entry.id))
            .collect()
    }

    /// SUBSCRIBE for `filter` went out as `packet_id`.
    pub fn requested(&mut self, filter: &str, packet_id: PacketId) {
        if let Some(entry) = self.entries.get_mut(filter) {
            entry.state = State::Requested(packet_id);
            entry.on_server = true;
        }
    }

    /// SUBSCRIBE for `filter` could not be sent: its waiters fail with `error`.
    pub fn failed(&mut self, filter: &str, error: Error) {
        let Some(entry) = self.entries.get_mut(filter) else {
            return;
        };
        let waiters = std::mem::take(&mut entry.waiters);
        for (local, reply) in waiters {
            C::answer(reply, Err(error.clone()));
            self.remove_local(local);
        }
    }

    /// A SUBACK. Returns the filters the broker refused on a resubscription (no
    /// waiter to tell), for logging.
    pub fn on_suback(
        &mut self,
        packet_id: PacketId,
        reason_codes: &[ReasonCode],
    ) -> Vec<(ByteString, ReasonCode)> {
        let code = reason_codes
            .first()
            .copied()
            .unwrap_or(ReasonCode::UnspecifiedError);
        let Some((key, entry)) = self
            .entries
            .iter_mut()
            .find(|(_, entry)| entry.state == State::Requested(packet_id))
        else {
            return Vec::new();
        };
        let key = key.clone();
        let waiters = std::mem::take(&mut entry.waiters);
        if !code.is_error() {
            entry.state = State::Active;
            let granted = match code {
                ReasonCode::GrantedQoS2 => QoS::ExactlyOnce,
                ReasonCode::GrantedQoS1 => QoS::AtLeastOnce,
                _ => QoS::AtMostOnce,
            };
            for (_, reply) in waiters {
                C::answer(reply, Ok(granted));
            }
            return Vec::new();
        }
        entry.state = State::Active;
        let had_waiters = !waiters.is_empty();
        for (local, reply) in waiters {
            C::answer(reply, Err(Error::SubscribeRejected(code)));
            self.remove_local(local);
        }
        if had_waiters {
            Vec::new()
        } else {
            vec![(key, code)]
        }
    }

    /// UNSUBSCRIBE for `filter` went out as `packet_id`.
    pub fn unsubscribing(&mut self, filter: TopicFilter, packet_id: PacketId) {
        self.unsubscribing.insert(packet_id, filter.into_inner());
    }

    /// UNSUBSCRIBE for `filter` waits for a connection.
    pub fn defer_unsubscribe(&mut self, filter: TopicFilter) {
        self.deferred_unsubscribes.push(filter.into_inner());
    }

    /// An UNSUBACK.
    pub fn on_unsuback(&mut self, packet_id: PacketId) {
        self.unsubscribing.remove(&packet_id);
    }

    /// The connection ended: unanswered requests are to be sent again.
    pub fn connection_lost(&mut self) {
        for entry in self.entries.values_mut() {
            if matches!(entry.state, State::Requested(_)) {
                entry.state = State::Unsent;
            }
        }
        let lost = self.unsubscribing.drain().map(|(_, filter)| filter);
        self.deferred_unsubscribes.extend(lost);
    }

    /// CONNACK: without a session every filter is to be subscribed again and pending
    /// unsubscribes are moot. Returns the UNSUBSCRIBEs to send.
    pub fn connected(&mut self, session_present: bool) -> Vec<TopicFilter> {
        let deferred = std::mem::take(&mut self.deferred_unsubscribes);
        if !session_present {
            for entry in self.entries.values_mut() {
                entry.state = State::Unsent;
                entry.on_server = false;
            }
            return Vec::new();
        }
        deferred
            .into_iter()
            .filter(|filter| !self.entries.contains_key(filter))
            .filter_map(|filter| TopicFilter::new(filter).ok())
            .collect()
    }

    /// Hands `message` to every local subscription it is for. Returns, per filter, how
    /// many were dropped because the reader's buffer was full.
    pub fn route(&mut self, message: &Message, use_ids: bool) -> Vec<(ByteString, u64)> {
        let mut targets: Vec<&ByteString> = Vec::new();
        let ids = &message.properties.subscription_identifiers;
        if use_ids {
            targets.extend(ids.iter().filter_map(|id| self.by_id.get(id)));
        }
        let ids_only = use_ids && !ids.is_empty() && self.unknown_ids == UnknownIdRouting::Nowhere;
        if targets.is_empty() && !ids_only {
            targets.extend(
                self.entries
                    .iter()
                    .filter(|(_, entry)| entry.filter.matches(&message.topic))
                    .map(|(key, _)| key),
            );
        }
        let mut dropped = Vec::new();
        for key in targets {
            let Some(entry) = self.entries.get(key) else {
                continue;
            };
            let mut full = 0;
            for sender in entry.locals.values() {
                if !C::deliver(sender, message.clone()) {
                    full += 1;
                }
            }
            if full > 0 {
                dropped.push((key.clone(), full));
            }
        }
        dropped
    }

    /// Ends every local subscription (their streams end) and fails waiters.
    pub fn close(&mut self) {
        for entry in self.entries.values_mut() {
            for (_, reply) in entry.waiters.drain(..) {
                C::answer(reply, Err(Error::Closed));
            }
            entry.locals.clear();
        }
        self.entries.clear();
        self.local_filters.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use std::fmt;

    use super::*;

    /// Buffers of capacity 1; waiters record their answer.
    #[derive(Debug)]
    struct Test;

    type Buffer = Rc<RefCell<Vec<Message>>>;

    impl Channels for Test {
        type Sender = Buffer;
        type Oneshot<T: fmt::Debug> = Rc<RefCell<Option<T>>>;
        type ConnectError = super::super::ConnectFailure;

        fn deliver(sender: &Buffer, message: Message) -> bool {
            let mut buffer = sender.borrow_mut();
            if buffer.is_empty() {
                buffer.push(message);
                true
            } else {
                false
            }
        }

        fn send_once<T: fmt::Debug>(oneshot: Self::Oneshot<T>, value: T) {
            *oneshot.borrow_mut() = Some(value);
        }
    }

    fn add(subs: &mut SubscriptionRegistry<Test>, local: u64, filter: &str) -> Buffer {
        let buffer = Buffer::default();
        let filter = TopicFilter::new(filter.to_owned()).unwrap();
        let waiter = Rc::default();
        subs.add(
            local,
            filter,
            SubscriptionOptions::default(),
            buffer.clone(),
            waiter,
        );
        buffer
    }

    fn message(topic: &str) -> Message {
        Message::from(crate::Publish::new(topic.to_owned(), "x"))
    }

    fn take(buffer: &Buffer) -> Option<Message> {
        buffer.borrow_mut().pop()
    }

    #[test]
    fn the_last_reader_of_a_filter_the_broker_has_unsubscribes() {
        let mut subs = SubscriptionRegistry::<Test>::new(UnknownIdRouting::Nowhere);
        let _a = add(&mut subs, 1, "a/#");
        assert_eq!(
            subs.remove_local(1),
            None,
            "never sent: nothing to unsubscribe"
        );
        let _a = add(&mut subs, 2, "a/#");
        let _b = add(&mut subs, 3, "a/#");
        subs.requested("a/#", PacketId::MIN);
        assert_eq!(subs.remove_local(2), None, "another reader remains");
        // A new reader makes it unsent again; the broker still has it.
        let _c = add(&mut subs, 4, "a/#");
        subs.remove_local(3);
        assert_eq!(
            subs.remove_local(4).map(|f| f.as_str().to_owned()),
            Some("a/#".into())
        );
    }

    #[test]
    fn a_full_reader_is_counted_and_others_still_get_the_message() {
        let mut subs = SubscriptionRegistry::<Test>::new(UnknownIdRouting::MatchTopic);
        let slow = add(&mut subs, 1, "t/+");
        let fast = add(&mut subs, 2, "t/#");
        assert!(subs.route(&message("t/1"), false).is_empty());
        let dropped = subs.route(&message("t/2"), false);
        assert_eq!(
            dropped.len(),
            2,
            "both buffers (capacity 1) are full: {dropped:?}"
        );
        assert_eq!(take(&slow).unwrap().topic(), "t/1");
        assert_eq!(take(&fast).unwrap().topic(), "t/1");
        assert!(subs.route(&message("other"), false).is_empty());
        assert!(take(&slow).is_none());
    }

    #[test]
    fn unknown_identifiers_route_by_the_clients_policy() {
        for (policy, delivered) in [
            (UnknownIdRouting::MatchTopic, true),
            (UnknownIdRouting::Nowhere, false),
        ] {
            let mut subs = SubscriptionRegistry::<Test>::new(policy);
            let reader = add(&mut subs, 1, "t/#");
            let mut stale = message("t/1");
            stale
                .properties
                .subscription_identifiers
                .push(NonZeroU32::new(999).unwrap());
            subs.route(&stale, true);
            assert_eq!(take(&reader).is_some(), delivered, "{policy:?}");
        }
    }

    #[test]
    fn a_refused_subscription_fails_its_waiters_and_close_fails_the_rest() {
        let mut subs = SubscriptionRegistry::<Test>::new(UnknownIdRouting::Nowhere);
        let waiter: Reply<Test, QoS> = Rc::default();
        let filter = TopicFilter::new("a".to_owned()).unwrap();
        subs.add(
            1,
            filter,
            SubscriptionOptions::default(),
            Buffer::default(),
            waiter.clone(),
        );
        let (filter, _, _) = subs.unsent().remove(0);
        subs.requested(&filter, PacketId::MIN);
        assert!(
            subs.on_suback(PacketId::MIN, &[ReasonCode::NotAuthorized])
                .is_empty()
        );
        assert!(waiter.borrow().as_ref().unwrap().is_err());
        let waiter: Reply<Test, QoS> = Rc::default();
        let filter = TopicFilter::new("b".to_owned()).unwrap();
        subs.add(
            2,
            filter,
            SubscriptionOptions::default(),
            Buffer::default(),
            waiter.clone(),
        );
        subs.close();
        assert_eq!(*waiter.borrow(), Some(Err(Error::Closed)));
    }
}
