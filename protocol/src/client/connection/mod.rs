//! [`Connection`]: everything a client does between its handles and its transport,
//! sans-IO. Both clients (`native-client` on tokio, `web-client` in the browser) run
//! this one state machine; each keeps only its socket, its timer and its channels
//! (quinn-proto's split from quinn).
//!
//! ```text
//!  handles ─Command─► handle_command ┌───────────── Connection ─────────────┐
//!  transport ───────► handle_opened  │ ClientSession, subscriptions,        │ poll(now, out) ─► bytes, LinkAction
//!                     handle_bytes   │ offline queue, publications in       │ poll_event ─────► Event
//!                     handle_written │ flight, requests, reconnect backoff  │ poll_timeout ───► the one timer
//!  timer ───────────► handle_timeout └──────────────────────────────────────┘ Channels ───────► replies, messages
//! ```
//!
//! # The driving contract
//!
//! After [`Connection::start`] and after every input (`handle_*`), the adapter calls
//! [`Connection::poll`] until it returns `None`: each call appends what is to be
//! written to `out` (write it; for QoS 0 publications, report with
//! [`Connection::handle_written`] how much the transport took) and may ask for a
//! [`LinkAction`]: open a transport (then report [`Connection::handle_opened`] or
//! [`Connection::handle_open_failed`]) or close it once `out` is written. Then it
//! delivers every [`Connection::poll_event`], ends if [`Connection::is_finished`], and
//! arms its one timer for [`Connection::poll_timeout`]. Time comes in as `now`; the
//! randomness of the reconnect jitter from the seed given to [`Connection::new`].
//!
//! # Behaviour the two clients used to disagree on
//!
//! - A message whose Subscription Identifiers name no filter held any more goes
//!   nowhere ([`UnknownIdRouting::Nowhere`]); see there why.
//! - A filter the broker refuses when it is subscribed again after a reconnect is
//!   reported as [`Event::SubscriptionRefused`] (no `subscribe` call waits for it any
//!   more): `native-client` used to log it, `web-client` to ignore it.
//! - A response answers a request when its correlation data and its topic both match
//!   the request's, and the topic is the request's own Response Topic when the request
//!   names one: `native-client` used to compare with the client's response topic, so
//!   a request that named its own never got an answer.
//! - A transport that cannot be opened while reconnecting is tried again only when
//!   reconnecting is enabled and the failure is transient.

mod event;
mod outbound;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use web_time::Instant;

use super::channels::{Ready, Reply};
use super::subscription::SubscriptionRegistry;
use super::text;
use super::{
    Channels, Command, ConnectFailure, ConnectOptions, DisconnectReason, DropSource, Error, Event,
    Message, OfflineQueueOptions, Outgoing, PublishOutcome, ReconnectOptions, SmallMap,
    UnknownIdRouting,
};
use crate::session::ClientSession;
use crate::{ClientOptions, PacketId, QoS, ReasonCode, TopicName};

/// What the adapter is to do with its transport (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkAction {
    /// Open a transport to the broker, then report [`Connection::handle_opened`] or
    /// [`Connection::handle_open_failed`]. The connection gives up at its connect
    /// timeout (a [`LinkAction::Close`] then follows).
    Open,
    /// Write what `out` holds (with a short grace period), then close the transport or
    /// abandon the opening. The connection has already planned what comes next.
    Close,
}

/// The state of the transport, as the connection sees it.
#[derive(Debug)]
enum Link {
    /// No transport; the next attempt starts at `retry_at` (`None`: none planned).
    Down { retry_at: Option<Instant> },
    /// The adapter is opening one; given up at `deadline` (the connect timeout).
    Opening { deadline: Instant },
    /// Open; the session's CONNECT has been queued.
    Up,
}

/// Who waits for a publication's outcome.
#[derive(Debug)]
enum Waiter<C: Channels> {
    Publish(Reply<C, PublishOutcome>),
    /// A request's own message: failures fail the request; success waits for the
    /// response.
    Request(Bytes),
}

/// The client's state machine: see the module docs.
#[derive(Debug)]
pub struct Connection<C: Channels> {
    session: ClientSession,
    /// Reconnecting after a drop.
    reconnect: ReconnectOptions,
    /// Publications made while disconnected.
    offline_queue: OfflineQueueOptions,
    /// `ConnectOptions::response_topic`, for the client's response topic at CONNACK.
    response_topic_option: Option<String>,
    link: Link,
    /// What the adapter is to do with its transport, not yet polled.
    action: Option<LinkAction>,
    /// The state of the jitter's random numbers (splitmix64, seeded by the adapter).
    random: u64,
    /// Reconnect attempts since the last CONNACK.
    attempt: u32,
    /// `Client::connect` waiting for the first CONNACK.
    ready: Option<Ready<C>>,
    /// QoS 1 and 2 publications in the session, with a copy to publish again if the
    /// broker loses the session (QoS 1 only), in the order they were sent. The broker
    /// acknowledges in that order [MQTT-4.6.0-2], so the one acknowledged is almost
    /// always the first: a queue searched from the front beats a hash table here.
    in_flight: VecDeque<(PacketId, Outgoing, Waiter<C>)>,
    /// QoS 0 publications whose bytes the session has not handed out yet.
    qos0_unsent: Vec<Reply<C, PublishOutcome>>,
    /// QoS 0 publications waiting for their last byte (an offset in `queued`) to be
    /// taken by the transport.
    qos0: VecDeque<(u64, Reply<C, PublishOutcome>)>,
    /// Bytes handed to the adapter and bytes it reports written, on this client's
    /// life: a QoS 0 publication is done when `written` passes its end.
    queued: u64,
    written: u64,
    /// Publications made while disconnected.
    offline: VecDeque<(Outgoing, Waiter<C>)>,
    /// QoS 1 publications the broker forgot, to publish again.
    republish: Vec<(Outgoing, Waiter<C>)>,
    subscriptions: SubscriptionRegistry<C>,
    /// Requests waiting for a response, by correlation data, with the topic the
    /// response must arrive on.
    requests: SmallMap<Bytes, (TopicName, Reply<C, Message>)>,
    /// Where responses arrive unless a request names its own topic (known from the
    /// first CONNACK).
    response_topic: Option<TopicName>,
    /// Whether the broker takes Subscription Identifiers on this connection.
    use_ids: bool,
    /// CONNACK arrived; `Some(session_present)` until the follow-up is done.
    just_connected: Option<bool>,
    /// Why the current connection is ending (the first cause wins).
    down_reason: Option<DisconnectReason>,
    /// The transport's last error, to explain a loss.
    io_error: Option<String>,
    /// Offline publications dropped by the policy, not yet reported.
    dropped_offline: u64,
    /// Events not yet polled.
    events: VecDeque<Event>,
    /// No reconnect: the client ends when the connection does.
    stopping: bool,
    /// The client is over (waiters told, nothing more happens).
    finished: bool,
    /// `disconnect` calls waiting for the end.
    done: Vec<Reply<C, ()>>,
}

impl<C: Channels> Connection<C> {
    /// A connection for `options`, not started. `ready` answers `Client::connect` at
    /// the first CONNACK (or the first failure); `seed` seeds the reconnect jitter.
    pub fn new<T>(options: &ConnectOptions<T>, ready: Ready<C>, seed: u64) -> Self {
        Self {
            session: ClientSession::new(options.session_options()),
            reconnect: options.reconnect.clone(),
            offline_queue: options.offline_queue,
            response_topic_option: options.response_topic.clone(),
            link: Link::Down { retry_at: None },
            action: None,
            random: seed,
            attempt: 0,
            ready: Some(ready),
            in_flight: VecDeque::new(),
            qos0_unsent: Vec::new(),
            qos0: VecDeque::new(),
            queued: 0,
            written: 0,
            offline: VecDeque::new(),
            republish: Vec::new(),
            subscriptions: SubscriptionRegistry::new(UnknownIdRouting::Nowhere),
            requests: SmallMap::default(),
            response_topic: None,
            use_ids: false,
            just_connected: None,
            down_reason: None,
            io_error: None,
            dropped_offline: 0,
            events: VecDeque::new(),
            stopping: false,
            finished: false,
            done: Vec::new(),
        }
    }

    /// The session's options (the client identifier is the server's once it assigned
    /// one).
    pub fn options(&self) -> &ClientOptions {
        self.session.options()
    }

    /// Whether a connection is established (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.session.is_connected()
    }

    /// Whether the client has ended: every waiter has been answered; the adapter stops.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Starts the first connection: [`Connection::poll`] asks to open a transport.
    pub fn start(&mut self, now: Instant) {
        self.start_opening(now);
    }

    /// The transport is open: CONNECT goes out.
    pub fn handle_opened(&mut self, now: Instant) {
        if !matches!(self.link, Link::Opening { .. }) {
            return;
        }
        self.link = Link::Up;
        self.io_error = None;
        if let Err(err) = self.session.connect(now) {
            let text = text::describe(&err, "the session refused the options");
            self.down_reason = Some(DisconnectReason::Transport(text.clone()));
            if let Some(ready) = self.ready.take() {
                C::ready(ready, Err(ConnectFailure::Options(text).into()));
            }
            self.stopping = true;
            self.session.handle_connection_lost();
        }
    }

    /// The transport could not be opened. `transient`: whether trying again may help
    /// (a refused port may; a malformed URL may not). The first connection is not
    /// retried: `Client::connect` fails with `error`.
    pub fn handle_open_failed(&mut self, error: C::ConnectError, transient: bool, now: Instant) {
        if !matches!(self.link, Link::Opening { .. }) {
            return;
        }
        self.opening_failed(error, transient, now);
    }

    /// Bytes from the transport.
    pub fn handle_bytes(&mut self, data: &mut BytesMut) {
        if matches!(self.link, Link::Up) {
            self.session.handle_bytes(data);
        }
    }

    /// The transport took `n` more bytes of what [`Connection::poll`] gave: QoS 0
    /// publications whose bytes are all out are done.
    pub fn handle_written(&mut self, n: usize) {
        self.written += n as u64;
        while let Some((end, _)) = self.qos0.front() {
            if *end > self.written {
                break;
            }
            if let Some((_, reply)) = self.qos0.pop_front() {
                C::answer(reply, Ok(PublishOutcome::SENT));
            }
        }
    }

    /// The open transport closed or failed; `error` says why when it was not an
    /// orderly close by the broker.
    pub fn handle_connection_lost(&mut self, error: Option<String>) {
        if !matches!(self.link, Link::Up) {
            return;
        }
        if let Some(error) = error {
            self.io_error.get_or_insert(error);
        }
        self.session.handle_connection_lost();
    }

    /// The timer armed for [`Connection::poll_timeout`] fired (early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.link {
            Link::Up => self.session.handle_timeout(now),
            Link::Down {
                retry_at: Some(retry_at),
            } if now >= retry_at => self.start_opening(now),
            Link::Opening { deadline } if now >= deadline => {
                let timeout = self.session.options().connect_timeout;
                self.action = Some(LinkAction::Close);
                self.opening_failed(ConnectFailure::Timeout(timeout).into(), true, now);
            }
            _ => {}
        }
    }

    /// When [`Connection::handle_timeout`] is due next: the session's keep alive and
    /// timeouts while connected, the backoff while down, the connect timeout while
    /// opening.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.link {
            Link::Up => self.session.poll_timeout(),
            Link::Down { retry_at } => retry_at,
            Link::Opening { deadline } => Some(deadline),
        }
    }

    /// Every handle is gone: end the session politely (DISCONNECT, close).
    pub fn handle_handles_dropped(&mut self) {
        if !self.finished {
            self.disconnect(ReasonCode::Success);
        }
    }

    /// Drains the session after an input: appends what is to be written to `out`,
    /// handles the session's events, and settles the link. Returns what to do with the
    /// transport; call again until `None` (see the module docs).
    pub fn poll(&mut self, now: Instant, out: &mut BytesMut) -> Option<LinkAction> {
        if !self.finished {
            self.pump(now, out);
            if matches!(self.link, Link::Up) && !self.session.is_open() {
                self.close_link(now);
            }
        }
        if self.finished {
            self.finish();
        }
        self.action.take()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the session's bytes to `out` and handles its events until both are
    /// drained; then reports the offline queue's drops.
    fn pump(&mut self, now: Instant, out: &mut BytesMut) {
        loop {
            let before = out.len();
            if self.session.poll_transmit(now, out) {
                self.queued += (out.len() - before) as u64;
            }
            for reply in self.qos0_unsent.drain(..) {
                self.qos0.push_back((self.queued, reply));
            }
            if let Some(event) = self.session.poll_event() {
                self.on_event(event);
                continue;
            }
            if let Some(session_present) = self.just_connected.take() {
                self.after_connect(session_present);
                continue;
            }
            break;
        }
        if self.dropped_offline > 0 {
            let count = std::mem::take(&mut self.dropped_offline);
            self.emit(Event::MessagesDropped {
                count,
                source: DropSource::OfflineQueue,
            });
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    fn start_opening(&mut self, now: Instant) {
        let deadline = now + self.session.options().connect_timeout;
        self.link = Link::Opening { deadline };
        self.action = Some(LinkAction::Open);
    }

    fn opening_failed(&mut self, error: C::ConnectError, transient: bool, now: Instant) {
        self.link = Link::Down { retry_at: None };
        if let Some(ready) = self.ready.take() {
            C::ready(ready, Err(error));
            self.finished = true;
        } else if self.stopping || !transient || !self.reconnect.enabled {
            self.finished = true;
        } else {
            self.schedule_retry(now);
        }
    }

    /// The session says the connection is over: the adapter closes the transport
    /// (after writing what the session gave last, a DISCONNECT); then reconnect or end.
    fn close_link(&mut self, now: Instant) {
        self.link = Link::Down { retry_at: None };
        self.action = Some(LinkAction::Close);
        // What is not written now never will be.
        self.written = self.queued;
        for (_, reply) in self.qos0.drain(..) {
            C::answer(reply, Err(Error::ConnectionLost));
        }
        self.subscriptions.connection_lost();
        let reason = self.down_reason.take().unwrap_or_else(|| {
            DisconnectReason::Transport(
                self.io_error
                    .take()
                    .unwrap_or_else(|| "the broker closed the connection".into()),
            )
        });
        self.io_error = None;
        if let Some(ready) = self.ready.take() {
            let timeout = self.session.options().connect_timeout;
            C::ready(ready, Err(first_connect_failure(reason, timeout).into()));
            self.finished = true;
            return;
        }
        let taken_over = matches!(
            reason,
            DisconnectReason::Server {
                reason_code: ReasonCode::SessionTakenOver,
                ..
            }
        );
        let will_reconnect = !self.stopping && !taken_over && self.reconnect.enabled;
        self.emit(Event::Disconnected {
            reason,
            will_reconnect,
        });
        if will_reconnect {
            self.schedule_retry(now);
        } else {
            self.finished = true;
        }
    }

    /// Plans the next attempt with exponential backoff and jitter.
    fn schedule_retry(&mut self, now: Instant) {
        self.attempt = self.attempt.saturating_add(1);
        let random = self.next_random();
        let delay = self.reconnect.delay(self.attempt, random);
        self.link = Link::Down {
            retry_at: Some(now + delay),
        };
        self.emit(Event::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }

    /// A number in `[0, 1)` (splitmix64: enough to spread a fleet's reconnects).
    fn next_random(&mut self) -> f64 {
        self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The client ends: everyone waiting hears so, subscriptions end.
    fn finish(&mut self) {
        self.link = Link::Down { retry_at: None };
        if let Some(ready) = self.ready.take() {
            let failure = ConnectFailure::Closed("the client stopped".into());
            C::ready(ready, Err(failure.into()));
        }
        for (_, _, waiter) in std::mem::take(&mut self.in_flight) {
            self.fail(waiter, Error::Closed);
        }
        let waiting = std::mem::take(&mut self.offline)
            .into_iter()
            .chain(std::mem::take(&mut self.republish));
        for (_, waiter) in waiting {
            self.fail(waiter, Error::Closed);
        }
        let qos0 = self.qos0.drain(..).map(|(_, reply)| reply);
        for reply in qos0.chain(self.qos0_unsent.drain(..)) {
            C::answer(reply, Err(Error::Closed));
        }
        for (_, (_, reply)) in self.requests.drain() {
            C::answer(reply, Err(Error::Closed));
        }
        self.subscriptions.close();
        for done in self.done.drain(..) {
            C::answer(done, Ok(()));
        }
    }

    /// A command after the end fails with [`Error::Closed`].
    fn refuse(command: Command<C>) {
        match command {
            Command::Publish(_, reply) => C::answer(reply, Err(Error::Closed)),
            Command::Subscribe { reply, .. } => C::answer(reply, Err(Error::Closed)),
            Command::Request { reply, .. } => C::answer(reply, Err(Error::Closed)),
            Command::Disconnect { done, .. } => C::answer(done, Ok(())),
            Command::Unsubscribe { .. }
            | Command::CancelRequest(_)
            | Command::DropConnection { .. } => {}
        }
    }

    fn fail(&mut self, waiter: Waiter<C>, error: Error) {
        match waiter {
            Waiter::Publish(reply) => C::answer(reply, Err(error)),
            Waiter::Request(correlation) => {
                if let Some((_, reply)) = self.requests.remove(&correlation) {
                    C::answer(reply, Err(error));
                }
            }
        }
    }

    fn republish_or_fail(&mut self, outgoing: Outgoing, waiter: Waiter<C>) {
        if outgoing.options.qos == QoS::AtLeastOnce {
            self.republish.push((outgoing, waiter));
        } else {
            self.fail(waiter, Error::SessionLost);
        }
    }
}

/// What `Client::connect` fails with when the first connection ended before CONNACK.
fn first_connect_failure(
    reason: DisconnectReason,
    connect_timeout: std::time::Duration,
) -> ConnectFailure {
    match reason {
        DisconnectReason::Refused(code) => ConnectFailure::Refused {
            reason_code: code,
            reason_string: None,
        },
        DisconnectReason::ConnectTimeout => ConnectFailure::Timeout(connect_timeout),
        DisconnectReason::Server {
            reason_code,
            reason_string,
        } => ConnectFailure::Closed(text::disconnect(reason_code, reason_string.as_deref())),
        DisconnectReason::Transport(text) | DisconnectReason::ProtocolViolation(text) => {
            ConnectFailure::Closed(text)
        }
        other => ConnectFailure::Closed(text::describe(&other, "the connection ended")),
    }
}
