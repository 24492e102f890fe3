//! Broker-side sessions: what outlives a connection (§4.1). A [`Session`] is shared by
//! the router (which pushes deliveries into its mailbox from any publisher's task) and
//! by the connection task currently attached to it (which drains the mailbox).
//!
//! The mailbox is the one bounded queue per session: the connection task only takes
//! from it what the client's inflight window (its Receive Maximum) can take now, so a
//! slow or offline client costs at most `max_queued_messages` / `max_queued_bytes`, and
//! what does not fit is dropped by the configured policy and counted.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::{QoS, SubscriptionOptions, TopicFilter, Will};
use tokio::sync::Notify;
use web_time::Instant;

use crate::config::DropPolicy;
use crate::connection::SharedInflight;
use crate::message::Delivery;

/// Bounds of a session's mailbox.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most deliveries queued.
    pub max_messages: usize,
    /// Most payload bytes queued.
    pub max_bytes: usize,
    /// Whether QoS 0 deliveries are queued while the client is offline.
    pub queue_qos0_offline: bool,
    /// What a full queue drops.
    pub policy: DropPolicy,
}

/// What became of a delivery pushed into a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued.
    Queued,
    /// Queued, and the oldest queued delivery was dropped for it.
    QueuedDroppedOldest,
    /// Not queued: the queue is full (drop-newest), or the delivery alone exceeds the
    /// byte budget.
    Dropped,
    /// Not queued by design: QoS 0 for an offline client without
    /// `sessions.queue_qos0_offline` (at most once means it may be lost).
    NotQueuedOffline,
}

impl Enqueued {
    /// Whether a message was lost to a queue limit (this one or the oldest), which
    /// `messages_dropped` counts.
    pub fn dropped_one(self) -> bool {
        matches!(self, Self::Dropped | Self::QueuedDroppedOldest)
    }
}

#[derive(Debug, Default)]
struct Mailbox {
    queue: VecDeque<Delivery>,
    bytes: usize,
    /// A publisher pushed into this mailbox and owes the attached connection a wake,
    /// which it gives once its burst is routed ([`Session::push`], [`Session::wake`]):
    /// the other publishers in the meantime owe none, so a burst of deliveries costs
    /// the subscriber one wake, not one per message.
    wake_owed: bool,
}

/// A subscription as the session records it, to restore and to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Options given at subscribe time.
    pub options: SubscriptionOptions,
    /// MQTT 5 Subscription Identifier.
    pub id: Option<NonZeroU32>,
}

/// The connection attached to a session now: which attach it is ([`Session::kick`]
/// names it). It stays in [`Session::attachment`] until that connection has stored its
/// state and let go ([`Session::release`]), which a takeover waits for
/// ([`Session::take_over`]).
#[derive(Debug)]
pub struct Attachment {
    /// Which attach this is.
    pub epoch: u32,
    /// A takeover already waits for it to let go.
    taken: bool,
}

impl Attachment {
    /// The attach numbered `epoch`.
    pub fn new(epoch: u32) -> Self {
        Self {
            epoch,
            taken: false,
        }
    }
}

/// Asks the connection attached to a session at one attach (its epoch) to close: the
/// admin API's disconnect and a broker shutdown use it. It does nothing once that
/// connection let go, and holds no session alive.
#[derive(Debug, Clone, Default)]
pub struct KickHandle {
    session: Weak<Session>,
    epoch: u32,
}

impl KickHandle {
    /// A handle for the connection attached to `session` at `epoch`.
    pub fn new(session: &std::sync::Arc<Session>, epoch: u32) -> Self {
        Self {
            session: std::sync::Arc::downgrade(session),
            epoch,
        }
    }

    /// Asks that connection to close with `reason` (sent in a v5 DISCONNECT).
    pub fn kick(&self, reason: protocol::ReasonCode) {
        if let Some(session) = self.session.upgrade() {
            session.kick(self.epoch, reason);
        }
    }
}

/// Whose a session is: the user it was created under. A client identifier is not a
/// credential, so [`crate::broker::Broker::attach`] lets a connection take a session
/// over (resume it, or end it with a clean start) only if it belongs to the same user,
/// unless `sessions.allow_cross_user_takeover` is set. Stored with the session
/// ([`crate::storage::codec`]), so this holds across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Owner {
    /// Not recorded: a session stored by a broker that did not store owners. The
    /// first client to attach claims it; what it gets is checked against its own read
    /// rules, as after any takeover, so it cannot read what it may not. Refusing
    /// everyone would lock the real owner out of every session stored before the
    /// upgrade; the ACL check at resume keeps the claim from leaking messages.
    #[default]
    Unknown,
    /// Created by a client without a user name.
    Anonymous,
    /// Created under this user name.
    User(ByteString),
}

impl Owner {
    /// The owner a connection acting as `username` gives a session it creates.
    pub fn of(username: Option<&ByteString>) -> Self {
        match username {
            Some(name) => Self::User(name.clone()),
            None => Self::Anonymous,
        }
    }

    /// Whether a connection that would own a new session as `other` may attach to a
    /// session owned by `self` without a cross-user takeover.
    pub fn admits(&self, other: &Owner) -> bool {
        matches!(self, Self::Unknown) || self == other
    }
}

/// State that the connection task hands back when it lets go, and takes on attach.
#[derive(Debug, Default)]
pub struct Detached {
    /// The protocol's per-session state: inflight messages and QoS 2 ids.
    pub protocol: Option<protocol::session::SessionState>,
    /// Which of `protocol`'s messages came through a shared subscription, to re-route
    /// them to the group if the session ends ([`crate::router::shared`]).
    pub shared_inflight: SharedInflight,
    /// The session expiry interval in force (seconds).
    pub expiry_interval: u32,
    /// When the session expires, if it is not resumed before.
    pub expires_at: Option<Instant>,
    /// A will waiting out its Will Delay Interval.
    /// Boxed: few sessions have one, and every session carries the field.
    pub pending_will: Option<Box<(Instant, Will)>>,
    /// Bumped on each attach and detach, so timers armed for an older state do nothing.
    pub generation: u64,
}

/// [`Session::kick`]'s flag: the takeover continues the session.
const KICK_CONTINUES: u64 = 1 << 40;

/// One client's session.
#[derive(Debug)]
pub struct Session {
    /// The client identifier (assigned by the broker for empty ones).
    pub client_id: ByteString,
    /// The user the session belongs to ([`Owner`]); changes only when a takeover
    /// passes it on (an unknown owner claimed, or a cross-user takeover allowed).
    owner: Mutex<Owner>,
    online: AtomicBool,
    limits: QueueLimits,
    mailbox: Mutex<Mailbox>,
    notify: Notify,
    /// Subscriptions by filter, so a session can be restored or cleaned up.
    pub subscriptions: Mutex<HashMap<TopicFilter, StoredSubscription>>,
    /// The connection attached now, if any.
    pub attachment: Mutex<Option<Attachment>>,
    /// State kept while no connection is attached; allocated on first use
    /// ([`Self::detached`]), so a session that was never detached costs a pointer.
    detached: Mutex<Option<Box<Detached>>>,
    /// Where the session and its deliveries are stored ([`crate::storage`]).
    pub log: crate::storage::SessionLog,
    /// The last attach's number ([`Attachment::epoch`]).
    epochs: AtomicU32,
    /// A request to close the connection of one attach: the reason code in bits 0-7
    /// (0: none), its epoch in bits 8-39, [`KICK_CONTINUES`] for a takeover that
    /// continues the session. Signalled through `notify`, which the
    /// attached connection waits on anyway, so a takeover, an admin disconnect or a
    /// shutdown costs an idle connection no waiter of its own.
    kick: AtomicU64,
}

impl Session {
    /// A new, offline session.
    pub fn new(client_id: ByteString, limits: QueueLimits) -> Self {
        Self {
            client_id,
            owner: Mutex::new(Owner::Unknown),
            online: AtomicBool::new(false),
            limits,
            mailbox: Mutex::new(Mailbox::default()),
            notify: Notify::new(),
            subscriptions: Mutex::new(HashMap::new()),
            attachment: Mutex::new(None),
            detached: Mutex::new(None),
            log: crate::storage::SessionLog::default(),
            epochs: AtomicU32::new(0),
            kick: AtomicU64::new(0),
        }
    }

    /// The user the session belongs to.
    pub fn owner(&self) -> Owner {
        self.owner.lock().clone()
    }

    /// Gives the session to `owner` (a new session, a restored one, a takeover).
    pub fn set_owner(&self, owner: Owner) {
        *self.owner.lock() = owner;
    }

    /// Whether a connection acting as `owner` may attach without a cross-user
    /// takeover ([`Owner::admits`]).
    pub fn admits(&self, owner: &Owner) -> bool {
        self.owner.lock().admits(owner)
    }

    /// The state kept while no connection is attached (locked; allocated on first use).
    pub fn detached(&self) -> parking_lot::MappedMutexGuard<'_, Detached> {
        parking_lot::MutexGuard::map(self.detached.lock(), |detached| {
            &mut **detached.get_or_insert_with(Default::default)
        })
    }

    /// The number of a new attach (never 0).
    pub fn next_epoch(&self) -> u32 {
        self.epochs
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .max(1)
    }

    /// Asks the connection attached now (if any) to close for a takeover (see
    /// [`Self::kick_takeover`] for `continues`) and waits until it has stored its state
    /// and let go ([`Self::release`]), or `patience` ran out (then it counts as gone).
    /// `false` if no connection was attached, or another takeover waits for it already.
    ///
    /// Waits on the session's `Notify`, which the release signals to every waiter: a
    /// takeover costs an idle connection nothing (no channel per attach). The woken
    /// connection cannot miss the kick to a waiter here, as it checks for a kick after
    /// it starts waiting ([`Self::notified_or_kicked`]).
    pub async fn take_over(&self, continues: bool, patience: std::time::Duration) -> bool {
        let epoch = {
            let mut slot = self.attachment.lock();
            match slot.as_mut() {
                Some(current) if !current.taken => {
                    current.taken = true;
                    current.epoch
                }
                _ => return false,
            }
        };
        self.kick_takeover(epoch, continues);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.notify.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.is_attached_at(epoch) {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                let mut slot = self.attachment.lock();
                if slot.as_ref().is_some_and(|current| current.epoch == epoch) {
                    *slot = None;
                }
                return true;
            }
        }
    }

    fn is_attached_at(&self, epoch: u32) -> bool {
        let slot = self.attachment.lock();
        slot.as_ref().is_some_and(|current| current.epoch == epoch)
    }

    /// The connection attached at `epoch` has stored its state and lets go: wakes the
    /// takeovers waiting for that ([`Self::take_over`]).
    pub fn release(&self, epoch: u32) {
        {
            let mut slot = self.attachment.lock();
            if slot.as_ref().is_some_and(|current| current.epoch == epoch) {
                *slot = None;
            }
        }
        self.notify.notify_waiters();
    }

    /// Asks the connection attached at `epoch` to close with `reason`, and wakes it.
    pub fn kick(&self, epoch: u32, reason: protocol::ReasonCode) {
        self.kick_with(epoch, reason, 0);
    }

    /// Asks the connection attached at `epoch` to close because a new connection takes
    /// the session over (0x8E Session taken over), telling it whether the new one
    /// `continues` the session (no clean start), which decides its will in MQTT 3.x.
    pub fn kick_takeover(&self, epoch: u32, continues: bool) {
        let flags = if continues { KICK_CONTINUES } else { 0 };
        self.kick_with(epoch, protocol::ReasonCode::SessionTakenOver, flags);
    }

    fn kick_with(&self, epoch: u32, reason: protocol::ReasonCode, flags: u64) {
        let value = flags | (u64::from(epoch) << 8) | u64::from(reason as u8);
        self.kick.store(value, Ordering::Release);
        self.notify.notify_one();
    }

    /// The kick request for the connection attached at `epoch`, if there is one.
    fn kick_for(&self, epoch: u32) -> Option<u64> {
        let value = self.kick.load(Ordering::Acquire);
        ((value >> 8) & u64::from(u32::MAX) == u64::from(epoch)).then_some(value)
    }

    /// The reason the connection attached at `epoch` was asked to close, if it was.
    pub fn kicked(&self, epoch: u32) -> Option<protocol::ReasonCode> {
        let value = self.kick_for(epoch)?;
        protocol::ReasonCode::from_u8((value & 0xff) as u8).filter(|code| *code as u8 != 0)
    }

    /// Whether the connection attached at `epoch` was taken over by one that continues
    /// the session ([`Self::kick_takeover`]).
    pub fn taken_over_continuing(&self, epoch: u32) -> bool {
        self.kick_for(epoch)
            .is_some_and(|value| value & KICK_CONTINUES != 0)
    }

    /// Whether a connection is attached.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Marks the session online or offline.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
        if online {
            self.notify.notify_one();
        }
    }

    /// Pushes a delivery into the mailbox, applying the limits, and wakes the attached
    /// connection.
    pub fn deliver(&self, delivery: Delivery) -> Enqueued {
        self.deliver_with(delivery, |_| {})
    }

    /// [`deliver`](Self::deliver), handing each delivery that `drop-oldest` evicts to
    /// `evicted` (to delete it from storage).
    pub fn deliver_with(&self, delivery: Delivery, evicted: impl FnMut(Delivery)) -> Enqueued {
        let (outcome, owes_wake) = self.push(delivery, evicted);
        if owes_wake {
            self.wake();
        }
        outcome
    }

    /// Pushes a delivery into the mailbox, applying the limits, without waking the
    /// attached connection; `evicted` gets each delivery that `drop-oldest` evicts.
    /// Returns the outcome and whether the caller now owes the connection a wake
    /// ([`Self::wake`]): true when the delivery was queued for an online session and no
    /// other push owes one already. A publisher routing a burst gives its wakes once the
    /// burst is routed ([`crate::broker::Burst`]).
    pub fn push(&self, delivery: Delivery, mut evicted: impl FnMut(Delivery)) -> (Enqueued, bool) {
        let online = self.is_online();
        if !online && delivery.qos == QoS::AtMostOnce && !self.limits.queue_qos0_offline {
            return (Enqueued::NotQueuedOffline, false);
        }
        let size = delivery.message.payload.len();
        let mut outcome = Enqueued::Queued;
        let mut mailbox = self.mailbox.lock();
        let full = |m: &Mailbox| {
            m.queue.len() >= self.limits.max_messages || m.bytes + size > self.limits.max_bytes
        };
        if full(&mailbox) {
            match self.limits.policy {
                DropPolicy::DropNewest => return (Enqueued::Dropped, false),
                DropPolicy::DropOldest => {
                    while full(&mailbox) {
                        let Some(old) = mailbox.queue.pop_front() else {
                            // Larger than the whole byte budget on its own.
                            return (Enqueued::Dropped, false);
                        };
                        mailbox.bytes -= old.message.payload.len();
                        outcome = Enqueued::QueuedDroppedOldest;
                        evicted(old);
                    }
                }
            }
        }
        mailbox.bytes += size;
        mailbox.queue.push_back(delivery);
        let owes_wake = online && !mailbox.wake_owed;
        mailbox.wake_owed |= owes_wake;
        (outcome, owes_wake)
    }

    /// Gives the wake a [`Self::push`] owed: the attached connection takes what the
    /// mailbox holds.
    pub fn wake(&self) {
        self.mailbox.lock().wake_owed = false;
        self.notify.notify_one();
    }

    /// Takes deliveries, oldest first, into `out`: QoS 0 ones as they come (they need no
    /// inflight slot), QoS 1 and 2 ones up to `max_acked` (the free inflight slots).
    pub fn take(&self, max_acked: usize, out: &mut Vec<Delivery>) {
        let mut mailbox = self.mailbox.lock();
        let mut acked = 0;
        while let Some(front) = mailbox.queue.front() {
            if front.qos != QoS::AtMostOnce {
                if acked == max_acked {
                    break;
                }
                acked += 1;
            }
            let Some(delivery) = mailbox.queue.pop_front() else {
                break;
            };
            mailbox.bytes -= delivery.message.payload.len();
            out.push(delivery);
        }
    }

    /// Takes up to `max` deliveries of any QoS, oldest first, into `out` (a bridge's
    /// outbox: every message counts against its window).
    pub fn take_at_most(&self, max: usize, out: &mut Vec<Delivery>) {
        let mut mailbox = self.mailbox.lock();
        let mailbox = &mut *mailbox;
        let n = max.min(mailbox.queue.len());
        for delivery in mailbox.queue.drain(..n) {
            mailbox.bytes -= delivery.message.payload.len();
            out.push(delivery);
        }
    }

    /// Puts deliveries back at the front, in order (a connection ended before sending
    /// them).
    pub fn requeue_front(&self, deliveries: impl DoubleEndedIterator<Item = Delivery>) {
        let mut mailbox = self.mailbox.lock();
        for delivery in deliveries.rev() {
            mailbox.bytes += delivery.message.payload.len();
            mailbox.queue.push_front(delivery);
        }
    }

    /// Number of queued deliveries.
    pub fn queue_len(&self) -> usize {
        self.mailbox.lock().queue.len()
    }

    /// Drops every queued delivery (the session ended).
    pub fn clear_queue(&self) {
        let mut mailbox = self.mailbox.lock();
        mailbox.queue.clear();
        mailbox.bytes = 0;
    }

    /// Wakes the attached connection without a delivery: its keep-alive deadline may
    /// have passed ([`crate::connection`]'s keep-alive wheel). Leaves a wake that
    /// [`Self::push`] owed to its burst.
    pub fn wake_for_keep_alive(&self) {
        self.notify.notify_one();
    }

    /// Resolves when a delivery arrives (or immediately if one arrived since the last
    /// wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Like [`Self::notified`] for the connection attached at `epoch`, and resolves at
    /// once if that connection was asked to close: a takeover waiting on the same
    /// `Notify` ([`Self::take_over`]) may have taken the kick's wake-up.
    pub async fn notified_or_kicked(&self, epoch: u32) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.kicked(epoch).is_some() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;

    fn limits(policy: DropPolicy) -> QueueLimits {
        QueueLimits {
            max_messages: 2,
            max_bytes: 1000,
            queue_qos0_offline: false,
            policy,
        }
    }

    fn delivery(payload: &'static str, qos: QoS) -> Delivery {
        let message = Message {
            topic: "t".into(),
            payload: Bytes::from_static(payload.as_bytes()),
            qos,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        };
        Delivery {
            message: Arc::new(message),
            qos,
            retain: false,
            subscription_ids: Default::default(),
            shared_group: None,
            stored: None,
        }
    }

    fn payloads(session: &Session) -> Vec<Bytes> {
        let mut out = Vec::new();
        session.take(usize::MAX, &mut out);
        out.into_iter().map(|d| d.message.payload.clone()).collect()
    }

    #[test]
    fn drop_newest_keeps_the_queue_and_refuses() {
        let s = Session::new("c".into(), limits(DropPolicy::DropNewest));
        assert_eq!(s.deliver(delivery("1", QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(s.deliver(delivery("2", QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(
            s.deliver(delivery("3", QoS::AtLeastOnce)),
            Enqueued::Dropped
        );
        assert_eq!(payloads(&s), ["1", "2"]);
    }

    #[test]
    fn drop_oldest_makes_room() {
        let s = Session::new("c".into(), limits(DropPolicy::DropOldest));
        s.deliver(delivery("1", QoS::AtLeastOnce));
        s.deliver(delivery("2", QoS::AtLeastOnce));
        assert_eq!(
            s.deliver(delivery("3", QoS::AtLeastOnce)),
            Enqueued::QueuedDroppedOldest
        );
        assert_eq!(payloads(&s), ["2", "3"]);
    }

    #[test]
    fn qos0_is_not_queued_offline_unless_configured() {
        let s = Session::new("c".into(), limits(DropPolicy::DropNewest));
        assert_eq!(
            s.deliver(delivery("0", QoS::AtMostOnce)),
            Enqueued::NotQueuedOffline
        );
        s.set_online(true);
        assert_eq!(s.deliver(delivery("0", QoS::AtMostOnce)), Enqueued::Queued);
    }

    #[test]
    fn a_push_owes_a_wake_until_it_is_given() {
        let mut l = limits(DropPolicy::DropNewest);
        l.max_messages = 3;
        let s = Session::new("c".into(), l);
        let push = |p| s.push(delivery(p, QoS::AtLeastOnce), |_| {}).1;
        assert!(!push("offline"), "an offline session is not woken");
        s.set_online(true);
        assert!(push("1"), "the first push owes the wake");
        assert!(!push("2"), "a wake is owed already");
        s.wake();
        assert!(!push("3"), "full: nothing queued, nothing owed");
        s.take(usize::MAX, &mut Vec::new());
        assert!(push("4"), "owed again once the last wake was given");
    }

    #[test]
    fn take_respects_the_inflight_window_but_not_for_qos0() {
        let mut l = limits(DropPolicy::DropNewest);
        l.max_messages = 10;
        let s = Session::new("c".into(), l);
        s.set_online(true);
        for (p, q) in [
            ("a", QoS::AtLeastOnce),
            ("b", QoS::AtMostOnce),
            ("c", QoS::ExactlyOnce),
            ("d", QoS::AtMostOnce),
        ] {
            s.deliver(delivery(p, q));
        }
        let mut out = Vec::new();
        s.take(1, &mut out);
        let got: Vec<_> = out.iter().map(|d| d.message.payload.clone()).collect();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(s.queue_len(), 2);
    }
}
