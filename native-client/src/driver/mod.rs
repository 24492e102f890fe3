//! The driver task: the one place that owns the transport and the
//! [`ClientSession`], and the only code here that awaits on IO.
//!
//! ```text
//!  Client handles ──Command──► ┌──────────── driver task ────────────┐
//!  (mpsc, any number)          │ ClientSession (sans IO)             │ ◄── read ── socket
//!                              │ subscriptions, offline queue,       │ ─── write ─► (one buffer:
//!  Subscription streams ◄───── │ publish waiters, requests           │      everything poll_transmit
//!  events (broadcast)  ◄────── │ one timer: poll_timeout / backoff   │      gave, written together)
//!                              └─────────────────────────────────────┘
//! ```
//!
//! Each turn of the loop follows the session's driving contract: after any input
//! (bytes, a command, the timer) [`Driver::pump`] moves every byte `poll_transmit`
//! gives into the write buffer and handles every `poll_event`; then the loop waits for
//! the next input. Reading and writing are separate `select!` branches, so a broker
//! that floods us never stops us from writing, nor the reverse.
//!
//! - `event`: the session's events: CONNACK and what follows it, acknowledgements,
//!   messages routed to subscriptions and requests.
//! - `link`: opening, the connection's life and its end, reconnect backoff.
//! - `subscriptions`: the filter registry and message routing.
//! - this module: the loop, commands and session events.

mod event;
mod link;
mod subscriptions;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use protocol::session::ClientSession;
use protocol::{
    Disconnect, PacketId, QoS, ReasonCode, SubscribeProperties,
    Subscription as SubscriptionRequest, SubscriptionOptions, TopicFilter, TopicName,
    UnsubscribeProperties,
};
use tokio::sync::{mpsc, oneshot};
use web_time::Instant;

use crate::client::{PublishOutcome, Shared};
use crate::error::{ConnectError, Error};
use crate::options::{ConnectOptions, DropPolicy, PublishOptions};
use crate::url::BrokerUrl;
use link::Link;
use protocol::client::Message;
use protocol::client::{DisconnectReason, DropSource, Event};
use subscriptions::Subscriptions;

/// The answer to a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a [`Client`](crate::Client) asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Outgoing, Reply<PublishOutcome>),
    Subscribe {
        local: u64,
        filter: TopicFilter,
        options: SubscriptionOptions,
        sender: mpsc::Sender<Message>,
        reply: Reply<QoS>,
    },
    /// A [`Subscription`](crate::Subscription) was dropped.
    Unsubscribe {
        local: u64,
    },
    Request {
        outgoing: Outgoing,
        correlation: Bytes,
        reply: Reply<Message>,
    },
    /// The requester stopped waiting.
    CancelRequest(Bytes),
    Disconnect {
        reason: ReasonCode,
        done: oneshot::Sender<()>,
    },
    /// Close the transport without DISCONNECT; reconnect or end.
    DropConnection {
        reconnect: bool,
    },
}

/// A publication on its way.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) topic: TopicName,
    pub(crate) payload: Bytes,
    pub(crate) options: PublishOptions,
}

/// Who waits for a publication's outcome.
#[derive(Debug)]
enum Waiter {
    Publish(Reply<PublishOutcome>),
    /// A request's own message: failures fail the request; success waits for the
    /// response.
    Request(Bytes),
}

/// The driver: see the module docs.
pub(crate) struct Driver {
    session: ClientSession,
    options: ConnectOptions,
    url: BrokerUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    link: Link,
    /// Bytes read, handed to the session (which swaps in an empty buffer).
    read_buf: BytesMut,
    /// Bytes to write: everything `poll_transmit` gave and the socket did not take yet.
    out: BytesMut,
    /// Bytes went out since the last flush (TLS and WebSocket buffer).
    needs_flush: bool,
    /// Total bytes put into `out` and total written, to resolve QoS 0 publications
    /// when their bytes are written.
    queued: u64,
    written: u64,
    /// Reconnect attempts since the last CONNACK.
    attempt: u32,
    /// `Client::connect` waiting for the first CONNACK.
    ready: Option<oneshot::Sender<Result<(), ConnectError>>>,
    /// QoS 1 and 2 publications in the session, with a copy to publish again if the
    /// broker loses the session (QoS 1 only).
    in_flight: HashMap<PacketId, (Outgoing, Waiter)>,
    /// QoS 0 publications waiting for their last byte to be written.
    qos0: VecDeque<(u64, Reply<PublishOutcome>)>,
    /// Publications made while disconnected.
    offline: VecDeque<(Outgoing, Waiter)>,
    /// QoS 1 publications the broker forgot, to publish again.
    republish: Vec<(Outgoing, Waiter)>,
    subscriptions: Subscriptions,
    /// Requests waiting for a response, by correlation data.
    requests: HashMap<Bytes, Reply<Message>>,
    /// Where responses to our requests arrive (known from the first CONNACK).
    response_topic: Option<TopicName>,
    /// Whether the broker takes Subscription Identifiers on this connection.
    use_ids: bool,
    /// CONNACK arrived; `Some(session_present)` until the follow-up is done.
    just_connected: Option<bool>,
    /// Why the current connection is ending (the first cause wins).
    down_reason: Option<DisconnectReason>,
    /// The last IO error, to explain a transport loss.
    io_error: Option<String>,
    /// Offline publications dropped by the policy, not yet reported.
    dropped_offline: u64,
    /// No reconnect: the client ends when the connection does.
    stopping: bool,
    /// The loop is over.
    finished: bool,
    /// `disconnect` calls waiting for the end.
    done: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("url", &self.url)
            .field("connected", &self.session.is_connected())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `options`, not started, with the channel its handles use.
    pub(crate) fn new(
        mut options: ConnectOptions,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        ready: oneshot::Sender<Result<(), ConnectError>>,
    ) -> Result<Self, ConnectError> {
        let url: BrokerUrl = options.url.parse()?;
        if options.session.username.is_none()
            && let Some(username) = &url.username
        {
            options.session.username = Some(username.as_str().into());
            options.session.password = url.password.clone().map(Bytes::from);
        }
        let tls = if url.scheme.is_tls() {
            Some(options.tls.client_config()?)
        } else {
            None
        };
        Ok(Self {
            session: ClientSession::new(options.session.clone()),
            options,
            url,
            tls,
            shared,
            commands,
            link: Link::Down { retry_at: None },
            read_buf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            needs_flush: false,
            queued: 0,
            written: 0,
            attempt: 0,
            ready: Some(ready),
            in_flight: HashMap::new(),
            qos0: VecDeque::new(),
            offline: VecDeque::new(),
            republish: Vec::new(),
            subscriptions: Subscriptions::new(subscriptions::UNKNOWN_IDS),
            requests: HashMap::new(),
            response_topic: None,
            use_ids: false,
            just_connected: None,
            down_reason: None,
            io_error: None,
            dropped_offline: 0,
            stopping: false,
            finished: false,
            done: Vec::new(),
        })
    }

    /// Runs until the client ends.
    pub(crate) async fn run(mut self) {
        self.start_opening();
        loop {
            self.pump();
            if self.link.is_up() && !self.session.is_open() {
                self.close_link().await;
            }
            if self.finished {
                break;
            }
            let wake = self.wait().await;
            self.handle(wake);
        }
        self.finish();
    }

    /// Drains the session: bytes to `out`, events to their handlers, until both are
    /// empty; then reports drops.
    fn pump(&mut self) {
        loop {
            self.transmit();
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

    fn transmit(&mut self) {
        let before = self.out.len();
        if self.session.poll_transmit(Instant::now(), &mut self.out) {
            self.queued += (self.out.len() - before) as u64;
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.shared.events.send(event);
    }

    fn handle_command(&mut self, command: Option<Command>) {
        let Some(command) = command else {
            // Every `Client` is gone: end the session politely.
            self.disconnect(ReasonCode::Success);
            return;
        };
        match command {
            Command::Publish(outgoing, reply) => self.publish(outgoing, Waiter::Publish(reply)),
            Command::Subscribe {
                local,
                filter,
                options,
                sender,
                reply,
            } => {
                self.subscriptions
                    .add(local, filter, options, sender, reply);
                self.send_subscribes();
            }
            Command::Unsubscribe { local } => {
                if let Some(filter) = self.subscriptions.remove_local(local) {
                    self.unsubscribe(filter);
                }
            }
            Command::Request {
                mut outgoing,
                correlation,
                reply,
            } => {
                let Some(topic) = self.response_topic.clone() else {
                    let _ = reply.send(Err(Error::NeedsV5("request/response")));
                    return;
                };
                if let Ok(filter) = TopicFilter::new(topic.clone().into_inner()) {
                    self.subscriptions.ensure_internal(filter);
                    self.send_subscribes();
                }
                let properties = &mut outgoing.options.properties;
                properties.response_topic = Some(topic.into_inner());
                properties.correlation_data = Some(correlation.clone());
                self.requests.insert(correlation.clone(), reply);
                self.publish(outgoing, Waiter::Request(correlation));
            }
            Command::CancelRequest(correlation) => {
                self.requests.remove(&correlation);
            }
            Command::Disconnect { reason, done } => {
                self.done.push(done);
                self.disconnect(reason);
            }
            Command::DropConnection { reconnect } => {
                self.stopping |= !reconnect;
                if self.link.is_up() {
                    self.down_reason.get_or_insert(DisconnectReason::Dropped);
                    self.session.handle_connection_lost();
                } else if self.stopping {
                    self.finished = true;
                }
            }
        }
    }

    fn disconnect(&mut self, reason: ReasonCode) {
        self.stopping = true;
        if self.link.is_up() && self.session.is_open() {
            self.down_reason.get_or_insert(DisconnectReason::Local);
            if self.session.disconnect(Disconnect::new(reason)).is_err() {
                self.session.handle_connection_lost();
            }
        } else {
            self.finished = true;
        }
    }

    fn publish(&mut self, outgoing: Outgoing, waiter: Waiter) {
        if self.session.is_connected() {
            return self.publish_now(outgoing, waiter);
        }
        let queue = self.options.offline_queue;
        if self.offline.len() < queue.capacity {
            self.offline.push_back((outgoing, waiter));
            return;
        }
        match queue.policy {
            DropPolicy::Reject => self.fail(waiter, Error::QueueFull),
            DropPolicy::DropOldest if queue.capacity > 0 => {
                if let Some((_, oldest)) = self.offline.pop_front() {
                    self.fail(oldest, Error::Dropped);
                }
                self.offline.push_back((outgoing, waiter));
                self.dropped_offline += 1;
            }
            _ => {
                self.fail(waiter, Error::Dropped);
                self.dropped_offline += 1;
            }
        }
    }

    fn publish_now(&mut self, outgoing: Outgoing, waiter: Waiter) {
        let PublishOptions {
            qos,
            retain,
            properties,
        } = outgoing.options.clone();
        let topic = outgoing.topic.clone();
        match self
            .session
            .publish(topic, outgoing.payload.clone(), qos, retain, properties)
        {
            Err(err) => self.fail(waiter, Error::Session(err)),
            Ok(Some(packet_id)) => {
                self.in_flight.insert(packet_id, (outgoing, waiter));
            }
            Ok(None) => {
                self.transmit();
                match waiter {
                    Waiter::Publish(reply) => self.qos0.push_back((self.queued, reply)),
                    Waiter::Request(_) => {}
                }
            }
        }
    }

    fn fail(&mut self, waiter: Waiter, error: Error) {
        match waiter {
            Waiter::Publish(reply) => {
                let _ = reply.send(Err(error));
            }
            Waiter::Request(correlation) => {
                if let Some(reply) = self.requests.remove(&correlation) {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }

    fn send_subscribes(&mut self) {
        if !self.session.is_connected() {
            return;
        }
        for (filter, options, id) in self.subscriptions.unsent() {
            let properties = SubscribeProperties {
                subscription_identifier: self.use_ids.then_some(id),
                ..SubscribeProperties::default()
            };
            let request = SubscriptionRequest {
                filter: filter.clone(),
                options,
            };
            match self.session.subscribe(vec![request], properties) {
                Ok(packet_id) => self.subscriptions.requested(&filter, packet_id),
                Err(err) => self.subscriptions.failed(&filter, Error::Session(err)),
            }
        }
    }

    fn unsubscribe(&mut self, filter: TopicFilter) {
        if !self.session.is_connected() {
            return self.subscriptions.defer_unsubscribe(filter);
        }
        let properties = UnsubscribeProperties::default();
        if let Ok(packet_id) = self.session.unsubscribe(vec![filter.clone()], properties) {
            self.subscriptions.unsubscribing(filter, packet_id);
        }
    }

    /// The client ends: everyone waiting hears so.
    fn finish(&mut self) {
        self.shared.connected.store(false, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(ConnectError::Closed("the client stopped".into())));
        }
        for (_, (_, waiter)) in std::mem::take(&mut self.in_flight) {
            self.fail(waiter, Error::Closed);
        }
        for (outgoing, waiter) in std::mem::take(&mut self.offline) {
            drop(outgoing);
            self.fail(waiter, Error::Closed);
        }
        for (_, reply) in self.qos0.drain(..) {
            let _ = reply.send(Err(Error::Closed));
        }
        for (_, reply) in self.requests.drain() {
            let _ = reply.send(Err(Error::Closed));
        }
        self.subscriptions.close();
        for done in self.done.drain(..) {
            let _ = done.send(());
        }
    }
}
