//! The broker's shared state and the operations every connection task performs on it:
//! publishing (retain, route, deliver into mailboxes) and opening, resuming and ending
//! sessions. Synchronous except where a takeover must wait for the old connection to
//! let go.
//!
//! # Layout
//!
//! - this module: [`Broker`], the session registry, attach (takeover), end, wills;
//! - [`backplane`]: the seam to what lies beyond this node (a cluster), with its
//!   single-node implementation `Local`;
//! - `deliver`: the publish path: retain, route, deliver into the sessions' mailboxes
//!   (recording in the store what must be durable), and re-routing a departed shared
//!   member's messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::{ReasonCode, TopicFilter, Will};
use web_time::Instant;

use crate::config::Config;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::router::{Router, SubEntry, SubscribeOutcome};
use crate::security::enhanced::AuthRegistry;
use crate::session::{Attachment, Owner, QueueLimits, Session};

pub(crate) mod backplane;
mod deliver;

pub(crate) use deliver::{Burst, Forwarded};

use backplane::{Backplane, Claim, Connecting, Handover, Interest, Plane, Release};

/// Everything connection tasks share.
#[derive(Debug)]
pub struct Broker {
    /// The configuration it was started with.
    pub config: Config,
    /// Subscriptions and retained messages.
    pub router: Router,
    /// Sessions by client identifier.
    sessions: Mutex<HashMap<ByteString, Arc<Session>>>,
    /// Counters for `$SYS` and `/metrics`.
    pub metrics: Metrics,
    /// Enhanced authentication mechanisms (MQTT 5 AUTH), by method name.
    pub auth: AuthRegistry,
    /// Login and topic access checks (password file, JWT, ACL), reloadable.
    pub security: crate::security::Security,
    /// The connections open now and the listeners (admin API, `/metrics`).
    pub clients: Arc<crate::clients::ClientRegistry>,
    /// When the broker started, for `$SYS/broker/uptime`.
    pub started_at: Instant,
    /// Source of assigned client identifiers.
    next_client_number: AtomicU64,
    /// Where retained messages, persistent sessions and their queues are kept
    /// ([`crate::storage`]).
    pub storage: crate::storage::Storage,
    /// Which new connections may open: per-IP sockets and connection rates
    /// ([`crate::limits`]).
    pub admission: crate::limits::Admission,
    /// Every connection task, whatever its transport: shutdown kicks the clients, then
    /// waits here for their tasks to end (sessions stored) before closing the store.
    pub(crate) connections: tokio_util::task::TaskTracker,
    /// What lies beyond this node ([`backplane`]): nothing, on a single node.
    pub(crate) backplane: Plane,
    /// Cancelled when shutdown begins: what a connection waits for after it has ended
    /// (draining a client's input after a DISCONNECT) stops at once.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// The bridges to other brokers and this broker's name in their hop markers
    /// ([`crate::bridge`]).
    pub(crate) bridges: crate::bridge::BridgeRegistry,
    /// Operator sessions of the admin API (`POST /api/login`), shared by every listener.
    pub(crate) admin_sessions: crate::http::login::Sessions,
    /// The bounded topic history ([`crate::history`]): in memory here, loaded from and
    /// written to its file by [`crate::storage::recovery::open`] with the redb backend.
    pub(crate) history: crate::history::History,
}

/// The connection's side of an [`Attachment`]: dropped (or signalled) when it lets go.
#[derive(Debug)]
pub struct Attached {
    /// The session attached to.
    pub session: Arc<Session>,
    /// Whether the session existed before (Session Present).
    pub present: bool,
    /// This attach's number: a takeover, an admin disconnect or a shutdown asks the
    /// connection to close through [`Session::kick`] with it. Dropping this tells a
    /// taking-over connection that we let go ([`Session::release`]).
    pub epoch: u32,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.session.release(self.epoch);
    }
}

/// Why [`Broker::attach`] refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttachError {
    /// The session belongs to another user and `sessions.allow_cross_user_takeover` is
    /// off (CONNACK 0x87).
    #[error("the session belongs to another user ({owner:?})")]
    NotOwner {
        /// Whose the session is, for the log.
        owner: Owner,
    },
    /// The backplane did not give this node the session ([`backplane::Claim`]).
    #[error("session not claimed: {0}")]
    NotClaimed(backplane::Refused),
}

impl Attached {
    /// Why this connection was asked to close, if it was (takeover, admin, shutdown).
    pub fn kicked(&self) -> Option<ReasonCode> {
        self.session.kicked(self.epoch)
    }

    /// Whether a takeover by a connection that continues the session (no clean start)
    /// asked this connection to close.
    pub fn taken_over_continuing(&self) -> bool {
        self.session.taken_over_continuing(self.epoch)
    }

    /// Tells a waiting takeover that this connection has stored its state.
    pub fn release(self) {
        drop(self);
    }
}

impl Broker {
    /// A broker with no sessions that stores nothing.
    pub fn new(config: Config) -> Self {
        Self::with_storage(config, crate::storage::Storage::memory())
    }

    /// A broker with no sessions (yet: see [`crate::storage::recovery`]) using `storage`,
    /// with an open security policy: this does not read `auth` files (see
    /// [`with_parts`](Self::with_parts) and [`crate::start`], which do).
    pub fn with_storage(config: Config, storage: crate::storage::Storage) -> Self {
        Self::with_parts(config, storage, crate::security::Security::open())
    }

    /// A broker with no sessions using `storage` and the loaded `security` policy.
    pub fn with_parts(
        config: Config,
        storage: crate::storage::Storage,
        security: crate::security::Security,
    ) -> Self {
        let router = Router::new(config.sessions.shared_strategy);
        Self {
            admission: crate::limits::Admission::new(&config.limits),
            connections: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
            backplane: Plane::default(),
            bridges: crate::bridge::BridgeRegistry::new(&config),
            admin_sessions: Default::default(),
            history: crate::history::History::in_memory(&config.history),
            storage,
            config,
            router,
            sessions: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            auth: AuthRegistry::default(),
            security,
            clients: Arc::default(),
            // The broker clock, as `$SYS/broker/uptime` measures against it.
            started_at: crate::clock::now(),
            next_client_number: AtomicU64::new(1),
        }
    }

    /// Mailbox bounds for new sessions, from the configuration.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_messages: self.config.limits.max_queued_messages,
            max_bytes: self.config.limits.max_queued_bytes,
            queue_qos0_offline: self.config.sessions.queue_qos0_offline,
            policy: self.config.limits.queue_drop_policy,
        }
    }

    /// A fresh client identifier for a client that sent an empty one.
    pub fn assign_client_id(&self) -> ByteString {
        let n = self.next_client_number.fetch_add(1, Ordering::Relaxed);
        format!(
            "auto-{:x}-{n}",
            self.started_at.elapsed().as_nanos() as u64 ^ fastrand::u64(..)
        )
        .into()
    }

    /// Publishes `will` as a message from `client_id` (§3.1.2.5). Whoever decides
    /// that a will is due calls this: the connection task when it ends, the expiry
    /// timer when a will delay or a session runs out, recovery for a session that
    /// expired while the broker was down.
    pub fn publish_will(&self, will: Will, client_id: &ByteString) {
        tracing::info!(%client_id, topic = %will.topic, "publishing will");
        let message = Message::from_will(will, client_id.clone(), crate::clock::now());
        self.publish(message);
    }

    /// Attaches a new connection, acting as `owner`, to the session of `client_id`:
    /// makes any attached connection let go first (session takeover,
    /// [MQTT-3.1.4-3]), then resumes the session or, with `clean_start` (or none
    /// stored), starts a new one. The caller ends a replaced session's subscriptions via
    /// the returned `ended` session.
    ///
    /// A session another user owns ([`Owner`]) is refused, before its connection is
    /// asked to let go, unless `sessions.allow_cross_user_takeover`: a client
    /// identifier is not a credential, and resuming would hand over the session's
    /// messages; a clean start would end someone else's session. Mosquitto lets the
    /// client identifier alone decide; MQTT leaves authorization to the server
    /// (§5.4.2), and we refuse by default. A resumed session passes to `owner` (which
    /// claims a session whose owner is unknown).
    ///
    /// The connection taken over learns whether the new one continues the session (no
    /// `clean_start`): an MQTT 3.x will is not published then (see
    /// `Connection::check_kicked`).
    ///
    /// In a cluster the session may live on another node: the backplane claims it for
    /// this node and hands over what it held there ([`backplane::Claim`]).
    pub async fn attach(
        &self,
        client_id: &ByteString,
        connecting: Connecting,
    ) -> Result<(Attached, Option<Arc<Session>>), AttachError> {
        let clean_start = connecting.clean_start;
        let owner = connecting.owner.clone();
        let cross_user = self.config.sessions.allow_cross_user_takeover;
        let refuse = |session: &Session| -> Result<(), AttachError> {
            if cross_user || session.admits(&owner) {
                Ok(())
            } else {
                Err(AttachError::NotOwner {
                    owner: session.owner(),
                })
            }
        };
        loop {
            let session = {
                let sessions = self.sessions.lock();
                match sessions.get(client_id) {
                    Some(session) => {
                        refuse(session)?;
                        Some(session.clone())
                    }
                    None => None,
                }
            };
            let Some(session) = session else { break };
            // The old connection stores its state, then lets go.
            if !session
                .take_over(!clean_start, Duration::from_secs(10))
                .await
            {
                break;
            }
        }
        // Once any previous connection let go: the session may be owned elsewhere.
        let mut connecting = connecting;
        connecting.here = self.sessions.lock().contains_key(client_id);
        let handover = match self.backplane.claim(client_id, &connecting).await {
            Claim::Refused(refused) => return Err(AttachError::NotClaimed(refused)),
            Claim::Claimed(handover) => handover,
        };
        let (session, present, ended, handed_over) = {
            let mut sessions = self.sessions.lock();
            let existing = sessions.get(client_id).cloned();
            if let Some(session) = &existing {
                // Another connection may have created or claimed it while we waited.
                refuse(session)?;
            }
            let handed_over = existing.is_none() && !clean_start && handover.is_some();
            let (session, present, ended) = match existing {
                Some(session) if !clean_start => {
                    session.set_owner(owner);
                    (session, true, None)
                }
                None if handed_over => {
                    // The session lived on another node: it continues here (filled below,
                    // outside the registry's lock).
                    let session = Arc::new(Session::new(client_id.clone(), self.queue_limits()));
                    session.set_owner(owner);
                    sessions.insert(client_id.clone(), session.clone());
                    (session, true, None)
                }
                existing => {
                    let session = Arc::new(Session::new(client_id.clone(), self.queue_limits()));
                    session.set_owner(owner);
                    sessions.insert(client_id.clone(), session.clone());
                    (session, false, existing)
                }
            };
            (session, present, ended, handed_over)
        };
        if let Some(mut handover) = handover.filter(|_| handed_over) {
            let replay_from = handover.replay_from.take();
            let filters: Vec<TopicFilter> = handover
                .subscriptions
                .iter()
                .map(|(f, _)| f.clone())
                .collect();
            self.take_over(&session, handover);
            if let Some(from) = replay_from {
                let replayed = self.backplane.replay(client_id, &from, &filters).await;
                self.deliver_replayed(&session, replayed);
            }
        }
        let epoch = session.next_epoch();
        *session.attachment.lock() = Some(Attachment::new(epoch));
        session.set_online(true);
        Ok((
            Attached {
                session,
                present,
                epoch,
            },
            ended,
        ))
    }

    /// Removes `session` from the registry if it is still the registered one for its
    /// client id, drops its subscriptions, hands the shared-subscription messages it
    /// still owed to the rest of their groups, and drops its queue.
    pub fn end_session(&self, session: &Arc<Session>) {
        {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(&session.client_id);
            }
        }
        self.drop_subscriptions(session);
        self.reroute_shared(session);
        session.clear_queue();
        self.storage.drop_session(session);
        self.backplane.release(&session.client_id, Release::Ended);
    }

    /// Another node of the cluster takes `client_id`'s session over: the connection
    /// attached here (if any) is asked to close (DISCONNECT 0x8E) and waited for, then
    /// the session leaves this node without ending (no will, the backplane keeps its
    /// record) and what it held is returned to go with it. `None` if this node has no
    /// such session. `continues`: the new connection resumes the session (no clean
    /// start), so a 3.x will is not published.
    pub(crate) async fn hand_over(&self, client_id: &str, continues: bool) -> Option<Handover> {
        loop {
            let session = self.sessions.lock().get(client_id)?.clone();
            if !session.take_over(continues, Duration::from_secs(10)).await {
                break;
            }
        }
        let session = self.sessions.lock().remove(client_id)?;
        let subscriptions = session
            .subscriptions
            .lock()
            .iter()
            .map(|(filter, stored)| (filter.clone(), stored.clone()))
            .collect();
        self.drop_subscriptions(&session);
        let state = {
            let mut detached = session.detached();
            detached.generation += 1;
            detached.pending_will = None;
            detached.protocol.take()
        };
        let mut queued = Vec::new();
        session.take(usize::MAX, &mut queued);
        let messages = queued
            .into_iter()
            .map(|delivery| (delivery.message, delivery.qos))
            .collect();
        self.storage.drop_session(&session);
        Some(Handover {
            subscriptions,
            messages,
            state,
            replay_from: None,
        })
    }

    /// `session`'s connection let go and the session stays, offline, on this node.
    pub fn detached(&self, session: &Session) {
        self.backplane
            .release(&session.client_id, Release::Detached);
    }

    /// Adds or replaces a subscription of `entry`'s session to `filter`; the backplane
    /// hears of a filter new to this node.
    pub fn subscribe(&self, filter: &TopicFilter, entry: SubEntry) -> SubscribeOutcome {
        let (outcome, first) = self.router.subscribe_counted(filter, entry);
        if first {
            self.backplane.interest(filter, Interest::Gained);
        }
        outcome
    }

    /// Removes `client_id`'s subscription to `filter`; `false` if it had none. The
    /// backplane hears of a filter this node no longer needs.
    pub fn unsubscribe(&self, filter: &TopicFilter, client_id: &ByteString) -> bool {
        match self.router.unsubscribe_counted(filter, client_id) {
            Some(last) => {
                if last {
                    self.backplane.interest(filter, Interest::Lost);
                }
                true
            }
            None => false,
        }
    }

    /// The retained messages matching `filter` at `now`, for a new subscription: this
    /// node's, then any the backplane keeps elsewhere.
    pub async fn retained_matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let mut out = self.router.retained().matching(filter.filter(), now);
        if self.backplane.retains_beyond() {
            out.extend(self.backplane.retained(filter, now).await);
        }
        out
    }

    /// Delivers to `session` the messages replayed for it from the cluster, each at the
    /// highest QoS its matching subscriptions granted.
    fn deliver_replayed(&self, session: &Arc<Session>, replayed: Vec<Message>) {
        let subscriptions = session.subscriptions.lock().clone();
        let now = crate::clock::now();
        let mut messages = Vec::with_capacity(replayed.len());
        for message in replayed {
            if message.expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            let granted = subscriptions
                .iter()
                .filter(|(filter, _)| filter.matches(&message.topic))
                .map(|(_, stored)| stored.options.qos)
                .max();
            if let Some(granted) = granted {
                let qos = message.qos.min(granted);
                messages.push((Arc::new(message), qos));
            }
        }
        self.deliver_handed(session, messages);
    }

    /// Fills `session` (new on this node) with what another node handed over: its
    /// subscriptions (the backplane hears of new filters) and its undelivered messages.
    fn take_over(&self, session: &Arc<Session>, handover: Handover) {
        // A session rebuilt from its record has no flows in flight, but it is resumed
        // (Session Present): an empty state says so.
        session.detached().protocol = Some(handover.state.unwrap_or_default());
        for (filter, stored) in handover.subscriptions {
            let entry = SubEntry {
                session: session.clone(),
                options: stored.options,
                id: stored.id,
            };
            self.subscribe(&filter, entry);
            session.subscriptions.lock().insert(filter, stored);
        }
        self.deliver_handed(session, handover.messages);
    }

    /// Puts messages that come with a session from elsewhere into its mailbox.
    fn deliver_handed(&self, session: &Arc<Session>, messages: Vec<(Arc<Message>, protocol::QoS)>) {
        for (message, qos) in messages {
            let delivery = crate::message::Delivery {
                message,
                qos,
                retain: false,
                subscription_ids: Default::default(),
                shared_group: None,
                stored: None,
            };
            let (outcome, _) = self.deliver(session, delivery, &mut None);
            if outcome.dropped_one() {
                self.metrics.messages_dropped.inc();
            }
        }
    }

    /// Removes every subscription `session` holds from the router.
    pub fn drop_subscriptions(&self, session: &Session) {
        let subscriptions = std::mem::take(&mut *session.subscriptions.lock());
        for filter in subscriptions.keys() {
            self.unsubscribe(filter, &session.client_id);
        }
    }

    /// The registered session of `client_id`.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).cloned()
    }

    /// Registers a session recovered from storage (at start, before serving).
    pub fn restore_session(&self, session: Arc<Session>) {
        self.sessions
            .lock()
            .insert(session.client_id.clone(), session);
    }

    /// Number of sessions (online and offline).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Every session, for `$SYS`, expiry sweeps and the admin API.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }
}
