//! The publish path: a message is retained if it asks to be, routed to the matching
//! sessions, and delivered into each one's mailbox.
//!
//! Delivering is the broker's decision and the broker's act ([`Broker::deliver`]):
//! storage is asked only to record a queue entry that must survive a restart (and to
//! forget one the mailbox dropped); it never touches a mailbox.
//!
//! Routing collects its results in a per-thread scratch vector the broker owns
//! ([`with_route_scratch`]), so publishing allocates nothing per message for them and
//! no caller holds such a vector.
//!
//! A connection task handles everything one read brought in a [`Burst`]: the
//! subscribers it delivers to are woken once the burst is routed (or every
//! [`WAKE_EVERY`] deliveries), not once per message, so each wakes to a batch and
//! writes it at once.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use protocol::QoS;

use super::Broker;
use super::backplane::Backplane;
use crate::message::{Delivery, Message};
use crate::session::{Enqueued, Session};

/// What the backplane must confirm before the publisher's acknowledgement may go: the
/// message is durable beyond this node ([`Backplane::forward`]).
pub(crate) type Forwarded =
    futures::future::BoxFuture<'static, Result<(), super::backplane::Refused>>;

thread_local! {
    /// The routing results of the publish running on this thread (empty between
    /// publishes, its capacity kept).
    static ROUTED: RefCell<Vec<(Arc<Session>, Delivery)>> = const { RefCell::new(Vec::new()) };
    /// How many [`Burst`]s are open on this thread (nested ones give their wakes with
    /// the outermost).
    static BURST_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Deliveries made in this thread's burst since its wakes were last given.
    static BURST_DELIVERIES: Cell<usize> = const { Cell::new(0) };
    /// The sessions this thread's burst owes a wake, each once ([`Session::push`]).
    static OWED: RefCell<Vec<Arc<Session>>> = const { RefCell::new(Vec::new()) };
}

/// Within one burst, the subscribers owed a wake are woken after at most this many
/// deliveries (a few milliseconds of routing), so a burst to very many subscribers
/// does not hold the first ones back until the last is reached. A 64 KB read of small
/// messages to 50 subscribers is about 40,000 deliveries; a cap of 4,096 made the
/// subscribers write 3 to 5 times per 1,000 deliveries instead of 1 to 3 without the
/// burst (BENCHMARKS.md, "What limits each case").
const WAKE_EVERY: usize = 16 * 1024;

/// While one is open on a thread, the wakes that deliveries on this thread owe their
/// subscribers are collected and given when it closes (dropped), so a subscriber that
/// gets many messages from one burst of publishes is woken once for all of them.
///
/// Open it only around work that does not wait (a connection handling what one read
/// brought): a task that yielded inside would hold the wakes back. Not `Send`, so it
/// cannot be held across an `.await` in a spawned task.
#[derive(Debug)]
pub(crate) struct Burst {
    /// Ties the burst to its thread.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Burst {
    /// Opens a burst on this thread.
    pub(crate) fn begin() -> Self {
        BURST_DEPTH.set(BURST_DEPTH.get() + 1);
        Self {
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        let depth = BURST_DEPTH.get() - 1;
        BURST_DEPTH.set(depth);
        if depth == 0 {
            wake_owed();
        }
    }
}

/// Gives the wakes this thread's burst owes.
fn wake_owed() {
    BURST_DELIVERIES.set(0);
    // Taken out first, so no borrow is held while the wakes run.
    let mut sessions = OWED.take();
    for session in sessions.drain(..) {
        session.wake();
    }
    OWED.with_borrow_mut(|owed| {
        if owed.is_empty() {
            *owed = sessions;
        }
    });
}

/// A delivery was pushed into `session`'s mailbox; `owes_wake`: the push owes it a
/// wake ([`Session::push`]). Collected while a [`Burst`] is open, given now otherwise.
fn delivered(session: &Arc<Session>, owes_wake: bool) {
    if BURST_DEPTH.get() == 0 {
        if owes_wake {
            session.wake();
        }
        return;
    }
    if owes_wake {
        OWED.with_borrow_mut(|owed| owed.push(session.clone()));
    }
    let deliveries = BURST_DELIVERIES.get() + 1;
    BURST_DELIVERIES.set(deliveries);
    if deliveries >= WAKE_EVERY {
        wake_owed();
    }
}

/// Runs `f` with this thread's routing scratch vector (empty). A publish made from
/// inside another (none today) gets a fresh vector instead of the borrowed one.
fn with_route_scratch<R>(f: impl FnOnce(&mut Vec<(Arc<Session>, Delivery)>) -> R) -> R {
    ROUTED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Vec::new()),
    })
}

impl Broker {
    /// Publishes `message`: stores it if retained, then delivers it to every matching
    /// session. Returns how many sessions it was routed to.
    pub fn publish(&self, message: Message) -> usize {
        self.publish_stored(message).0
    }

    /// [`publish`](Self::publish), also telling whether it submitted anything to the
    /// store (a retained message, a QoS 1/2 delivery to a persistent session): the
    /// publisher's acknowledgement then waits for a barrier ([`crate::storage`]); and
    /// what the backplane must still confirm before it may go ([`Forwarded`]).
    pub fn publish_stored(&self, message: Message) -> (usize, bool, Option<Forwarded>) {
        if self.bridges.looped(&message) {
            // It went round a loop of bridges back to this broker: already delivered.
            self.bridges.count_loop(&message.origin);
            return (0, false, None);
        }
        let message = Arc::new(message);
        let (routed, stored) = self.route_here(&message, true);
        (routed, stored, self.backplane.forward(&message))
    }

    /// A message published on another node of the cluster: routed to this node's
    /// sessions only (never forwarded again, never retained here: the cluster keeps
    /// retained messages). Returns how many sessions it was routed to.
    pub fn publish_remote(&self, message: Message) -> usize {
        self.route_here(&Arc::new(message), false).0
    }

    /// A message the cluster gave this node for the shared subscription `share`: to one
    /// member of that group here. The QoS it was delivered at; `None` if the group has
    /// no member here (or the member's mailbox dropped it).
    pub fn publish_remote_shared(
        &self,
        message: Arc<Message>,
        share: &protocol::TopicFilter,
    ) -> Option<QoS> {
        let (session, delivery) = self.router.route_shared(&message, share)?;
        let qos = delivery.qos;
        let (outcome, _) = self.deliver(&session, delivery, &mut None);
        if outcome.dropped_one() {
            self.metrics.messages_dropped.inc();
        }
        (outcome != crate::session::Enqueued::Dropped).then_some(qos)
    }

    /// Retains (if `retain_here` and it asks to be) and routes `message` to this node's
    /// sessions; whether something was submitted to the store.
    fn route_here(&self, message: &Arc<Message>, retain_here: bool) -> (usize, bool) {
        let mut stored = false;
        // A cluster keeps retained messages itself, except the node-local `$` topics.
        let retain_here = retain_here
            && message.retain
            && (!self.backplane.retains_beyond() || message.topic.starts_with('$'));
        if retain_here {
            // Stored under the lock, so the store keeps the same last message per topic.
            let mut retained = self.router.retained_mut();
            retained.set(message.clone());
            stored = self.storage.retain(message);
        }
        self.history.record(&message.topic, &message.payload);
        with_route_scratch(|scratch| {
            self.router.route(message, scratch);
            let routed = scratch.len();
            let mut body = None;
            for (session, delivery) in scratch.drain(..) {
                let (outcome, queued) = self.deliver(&session, delivery, &mut body);
                stored |= queued;
                if outcome.dropped_one() {
                    self.metrics.messages_dropped.inc();
                    crate::bridge::outbox::count_drop(self, &session.client_id);
                }
            }
            (routed, stored)
        })
    }

    /// Re-routes the QoS 1 and 2 messages that came to `session` through a shared
    /// subscription and that it did not acknowledge (in its stored protocol state) or
    /// never got (in its mailbox) to another member of their group
    /// ([`crate::router::shared`]). Call once its subscriptions are gone.
    pub(super) fn reroute_shared(&self, session: &Session) {
        let (state, inflight) = {
            let mut detached = session.detached();
            (
                detached.protocol.take(),
                std::mem::take(&mut detached.shared_inflight),
            )
        };
        let mut owed = match &state {
            Some(state) if !inflight.is_empty() => inflight.unacknowledged(state),
            _ => Vec::new(),
        };
        let mut queued = Vec::new();
        session.take(usize::MAX, &mut queued);
        owed.extend(
            queued
                .into_iter()
                .filter(|d| d.shared_group.is_some() && d.qos != QoS::AtMostOnce),
        );
        for delivery in owed {
            let dropped = self
                .router
                .reroute_shared(&delivery)
                .is_none_or(|(member, rerouted)| {
                    // The same stored body, if it is stored: no second copy.
                    let mut body = delivery.stored.map(|at| at.message);
                    let (outcome, _) = self.deliver(&member, rerouted, &mut body);
                    outcome.dropped_one()
                });
            if dropped {
                self.metrics.messages_dropped.inc();
            }
        }
    }

    /// Puts `delivery` into `session`'s mailbox. A QoS 1 or 2 delivery to a stored
    /// session is recorded in the store first ([`crate::storage::Storage::enqueue`]),
    /// so its later `Dequeue` always follows its `Enqueue`; what the mailbox then drops
    /// (a full queue: the delivery itself, or with `drop-oldest` an evicted one) is
    /// deleted from the store again. `body`: the message's stored body id, shared by
    /// every delivery of one message. Returns the mailbox's answer and whether
    /// something was submitted to the store.
    pub(super) fn deliver(
        &self,
        session: &Arc<Session>,
        mut delivery: Delivery,
        body: &mut Option<u64>,
    ) -> (Enqueued, bool) {
        if !self.storage.enqueue(&session.log, &mut delivery, body) {
            let (outcome, owes_wake) = session.push(delivery, |_| {});
            delivered(session, owes_wake);
            return (outcome, false);
        }
        let at = delivery.stored;
        let (outcome, owes_wake) =
            session.push(delivery, |evicted| self.storage.discarded(&evicted));
        delivered(session, owes_wake);
        if outcome == Enqueued::Dropped {
            self.storage.forget(at);
        }
        (outcome, true)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::FutureExt as _;
    use protocol::{SubscriptionOptions, TopicFilter};

    use super::*;
    use crate::config::DropPolicy;
    use crate::router::SubEntry;
    use crate::session::QueueLimits;

    /// A broker with one online session subscribed to `t`, its wake from going online
    /// already taken.
    fn subscribed() -> (Broker, Arc<Session>) {
        let broker = Broker::new(crate::config::Config::default());
        let limits = QueueLimits {
            max_messages: 100,
            max_bytes: 100_000,
            queue_qos0_offline: false,
            policy: DropPolicy::DropNewest,
        };
        let session = Arc::new(Session::new("sub".into(), limits));
        session.set_online(true);
        assert!(session.notified().now_or_never().is_some());
        let entry = SubEntry {
            session: session.clone(),
            options: SubscriptionOptions::default(),
            id: None,
        };
        broker.subscribe(&TopicFilter::new("t").unwrap(), entry);
        (broker, session)
    }

    fn message() -> Message {
        Message {
            topic: "t".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "pub".into(),
        }
    }

    #[test]
    fn a_publish_outside_a_burst_wakes_the_subscriber_at_once() {
        let (broker, session) = subscribed();
        assert_eq!(broker.publish(message()), 1);
        assert!(session.notified().now_or_never().is_some());
    }

    #[test]
    fn a_burst_wakes_each_subscriber_once_when_it_closes() {
        let (broker, session) = subscribed();
        {
            let _burst = Burst::begin();
            for _ in 0..3 {
                assert_eq!(broker.publish(message()), 1);
            }
            assert!(
                session.notified().now_or_never().is_none(),
                "not woken while the burst is open"
            );
        }
        assert!(session.notified().now_or_never().is_some());
        assert!(
            session.notified().now_or_never().is_none(),
            "one wake for the whole burst"
        );
        assert_eq!(session.queue_len(), 3);
        // The wake was given: the next burst owes one again.
        {
            let _burst = Burst::begin();
            broker.publish(message());
        }
        assert!(session.notified().now_or_never().is_some());
    }

    #[test]
    fn a_long_burst_wakes_its_subscribers_along_the_way() {
        let (broker, session) = subscribed();
        let _burst = Burst::begin();
        for _ in 0..WAKE_EVERY {
            broker.publish(message());
        }
        assert!(session.notified().now_or_never().is_some());
    }
}
