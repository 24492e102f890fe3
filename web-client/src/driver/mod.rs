//! The driver: the one place that owns the WebSocket, the timer and the
//! [`ClientSession`], fed one [`Input`] at a time.
//!
//! ```text
//!  Client handles ──Command──┐
//!  WebSocket events ─────────┼─► inbox ─► Driver::step ┌ ClientSession (sans IO)     ┐ ─► ws.send (one frame
//!  timer (worker) ───────────┘   (queue)               │ subscriptions, offline      │     per batch)
//!                                                      │ queue, publish waiters,     │ ─► Subscription queues
//!                                                      └ requests, one timer         ┘ ─► event queues
//! ```
//!
//! The browser gives the client one thread and an event loop instead of a task: every
//! input (a command from a [`Client`](crate::Client) call, a WebSocket event, the timer)
//! goes through [`Shared::input`], which queues it and, unless the driver is already
//! busy, runs [`Driver::step`] for each queued input. An input that arrives while
//! another is handled (a `Subscription` dropped from inside a callback) simply waits
//! its turn, so the driver is never re-entered.
//!
//! Each step follows the session's driving contract: handle the input, then
//! [`pump`](Driver::pump) (every byte `poll_transmit` gives goes to the WebSocket in
//! one `send`, every `poll_event` is handled), then close the WebSocket if the session
//! says the connection is over, and re-arm the one timer.
//!
//! - `command`: commands from the handles: publishing, the offline queue and its drop
//!   policy, subscribing, requests, disconnecting.
//! - `event`: the session's events: CONNACK and what follows it, acknowledgements,
//!   messages routed to subscriptions and requests.
//! - `link`: opening the WebSocket, the connection's end, reconnect backoff.
//! - `subscriptions`: the filter registry and message routing (the same registry as
//!   `native-client`'s, over this crate's single-threaded queues).
//! - this module: [`Shared`], the inputs, and the step that drives the session.

mod command;
mod event;
mod link;
mod subscriptions;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Weak;

use crate::queue::oneshot;
use bytes::{Bytes, BytesMut};
use protocol::session::ClientSession;
use protocol::{
    PacketId, ProtocolVersion, QoS, ReasonCode, SubscriptionOptions, TopicFilter, TopicName,
};
use web_time::Instant;

use crate::client::PublishOutcome;
use crate::error::{ConnectError, Error};
use crate::options::{ConnectOptions, PublishOptions};
use crate::queue;
use crate::socket::SocketEvent;
use crate::timer::Timer;
use link::Link;
use protocol::client::Message;
use protocol::client::SmallMap;
use protocol::client::{DisconnectReason, DropSource, Event};
use subscriptions::Subscriptions;

/// The answer to a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What the handles, the socket and the timer share: the driver, its inbox, and what
/// the handles read without going through the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    driver: RefCell<Driver>,
    /// Inputs not yet handled.
    inbox: RefCell<VecDeque<Input>>,
    pub(crate) status: Status,
}

/// The client's state as the handles see it, kept current by the driver.
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) connected: Cell<bool>,
    pub(crate) closed: Cell<bool>,
    /// The client identifier in use (the server's, if it assigned one).
    pub(crate) client_id: RefCell<String>,
    pub(crate) version: ProtocolVersion,
    /// Local subscription numbers.
    pub(crate) next_local: Cell<u64>,
    pub(crate) subscription_capacity: usize,
    pub(crate) event_capacity: usize,
    pub(crate) timer: crate::TimerMode,
    /// One queue per [`Client::events`](crate::Client::events) stream.
    pub(crate) events: RefCell<Vec<queue::Sender<Event>>>,
}

impl Shared {
    /// The client for `options`, not started (see [`Input::Start`]).
    pub(crate) fn new(
        me: Weak<Shared>,
        options: ConnectOptions,
        url: String,
        ready: oneshot::Sender<Result<(), ConnectError>>,
    ) -> Self {
        let status = Status {
            connected: Cell::new(false),
            closed: Cell::new(false),
            client_id: RefCell::new(options.session.client_id.to_string()),
            version: options.session.version,
            next_local: Cell::new(1),
            subscription_capacity: options.subscription_capacity.max(1),
            event_capacity: options.event_capacity.max(1),
            timer: options.timer,
            events: RefCell::new(Vec::new()),
        };
        Self {
            driver: RefCell::new(Driver::new(options, url, me, ready)),
            inbox: RefCell::new(VecDeque::new()),
            status,
        }
    }

    /// Hands `input` to the driver: at once, or after the input being handled now.
    pub(crate) fn input(&self, input: Input) {
        self.inbox.borrow_mut().push_back(input);
        let Ok(mut driver) = self.driver.try_borrow_mut() else {
            return;
        };
        loop {
            let next = self.inbox.borrow_mut().pop_front();
            let Some(input) = next else {
                break;
            };
            driver.step(input, &self.status);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last `Client` is gone: end the session politely (DISCONNECT, close).
        let status = &self.status;
        let driver = self.driver.get_mut();
        for input in self.inbox.get_mut().drain(..) {
            driver.step(input, status);
        }
        driver.step(Input::HandlesDropped, status);
    }
}

/// One thing for the driver to handle.
// Inputs are handled as they come: the inbox holds more than one only while another
// is being handled, so boxing the large command would cost an allocation per call for
// nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Input {
    /// Open the first connection.
    Start,
    /// A call on a [`Client`](crate::Client) or a dropped
    /// [`Subscription`](crate::Subscription).
    Command(Command),
    /// An event of the WebSocket of generation `.0`.
    Socket(u64, SocketEvent),
    /// The timer fired.
    Timer,
    /// Every [`Client`](crate::Client) handle is gone.
    HandlesDropped,
}

/// What a [`Client`](crate::Client) asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Outgoing, Reply<PublishOutcome>),
    Subscribe {
        local: u64,
        filter: TopicFilter,
        options: SubscriptionOptions,
        sender: queue::Sender<Message>,
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
    /// Close the WebSocket without DISCONNECT; reconnect or end.
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

/// The publications awaiting their acknowledgement, in the order they were sent. The
/// broker acknowledges in that order [MQTT-4.6.0-2], so the one acknowledged is
/// almost always the first: a queue searched from the front beats a hash table here,
/// and brings no hash table code into the wasm module.
#[derive(Debug, Default)]
struct InFlight(VecDeque<(PacketId, Outgoing, Waiter)>);

impl InFlight {
    fn remove(&mut self, packet_id: PacketId) -> Option<(Outgoing, Waiter)> {
        let index = self.0.iter().position(|(id, _, _)| *id == packet_id)?;
        self.0
            .remove(index)
            .map(|(_, outgoing, waiter)| (outgoing, waiter))
    }
}

/// The driver: see the module docs.
#[derive(Debug)]
pub(crate) struct Driver {
    session: ClientSession,
    options: ConnectOptions,
    /// The absolute `ws://` or `wss://` URL.
    url: String,
    /// To hand the socket and the timer a way back in.
    me: Weak<Shared>,
    link: Link,
    /// Numbers the WebSockets, so that events of a closed one are ignored.
    generation: u64,
    /// The one timer: keep alive and timeouts while connected, the backoff while down,
    /// the open timeout while opening.
    timer: Timer,
    /// Bytes from `poll_transmit`, sent as one frame.
    out: BytesMut,
    /// Reconnect attempts since the last CONNACK.
    attempt: u32,
    /// `Client::connect` waiting for the first CONNACK.
    ready: Option<oneshot::Sender<Result<(), ConnectError>>>,
    /// QoS 1 and 2 publications in the session, with a copy to publish again if the
    /// broker loses the session (QoS 1 only).
    in_flight: InFlight,
    /// QoS 0 publications waiting for their bytes to be handed to the WebSocket.
    qos0: Vec<Reply<PublishOutcome>>,
    /// Publications made while disconnected.
    offline: VecDeque<(Outgoing, Waiter)>,
    /// QoS 1 publications the broker forgot, to publish again.
    republish: Vec<(Outgoing, Waiter)>,
    subscriptions: Subscriptions,
    /// Requests waiting for a response, by correlation data, with the topic the response
    /// must arrive on.
    requests: SmallMap<Bytes, (TopicName, Reply<Message>)>,
    /// Where responses to our requests arrive unless a request names its own topic
    /// (known from the first CONNACK).
    response_topic: Option<TopicName>,
    /// Whether the broker takes Subscription Identifiers on this connection.
    use_ids: bool,
    /// CONNACK arrived; `Some(session_present)` until the follow-up is done.
    just_connected: Option<bool>,
    /// Why the current connection is ending (the first cause wins).
    down_reason: Option<DisconnectReason>,
    /// The last socket error, to explain a transport loss.
    io_error: Option<String>,
    /// Offline publications dropped by the policy, not yet reported.
    dropped_offline: u64,
    /// Events to deliver at the end of the step.
    events: Vec<Event>,
    /// No reconnect: the client ends when the connection does.
    stopping: bool,
    /// The client is over (waiters told, nothing more happens).
    finished: bool,
    /// `disconnect` calls waiting for the end.
    done: Vec<oneshot::Sender<()>>,
}

impl Driver {
    fn new(
        mut options: ConnectOptions,
        url: String,
        me: Weak<Shared>,
        ready: oneshot::Sender<Result<(), ConnectError>>,
    ) -> Self {
        let session_options = &mut options.session;
        // [MQTT-3.1.2-22]: MQTT 3.x sends a password only with a user name.
        if !session_options.version.is_v5()
            && session_options.password.is_some()
            && session_options.username.is_none()
        {
            session_options.username = Some("".into());
        }
        let timer = {
            let me = me.clone();
            Timer::new(options.timer, move || {
                if let Some(shared) = me.upgrade() {
                    shared.input(Input::Timer);
                }
            })
        };
        Self {
            session: ClientSession::new(options.session.clone()),
            options,
            url,
            me,
            link: Link::Down { retry_at: None },
            generation: 0,
            timer,
            out: BytesMut::new(),
            attempt: 0,
            ready: Some(ready),
            in_flight: InFlight::default(),
            qos0: Vec::new(),
            offline: VecDeque::new(),
            republish: Vec::new(),
            subscriptions: Subscriptions::new(subscriptions::UNKNOWN_IDS),
            requests: SmallMap::default(),
            response_topic: None,
            use_ids: false,
            just_connected: None,
            down_reason: None,
            io_error: None,
            dropped_offline: 0,
            events: Vec::new(),
            stopping: false,
            finished: false,
            done: Vec::new(),
        }
    }

    /// Handles one input, drains the session, and settles the link and the timer.
    fn step(&mut self, input: Input, status: &Status) {
        if self.finished {
            return self.refuse(input);
        }
        match input {
            Input::Start => self.start_opening(),
            Input::Command(command) => self.handle_command(command),
            Input::Socket(generation, event) if generation == self.generation => {
                self.handle_socket(event)
            }
            Input::Socket(..) => {}
            Input::Timer => self.handle_timer(),
            Input::HandlesDropped => self.disconnect(ReasonCode::Success),
        }
        self.pump();
        if self.link.is_up() && !self.session.is_open() {
            self.close_link();
        }
        self.publish_status(status);
        if self.finished {
            self.finish(status);
        } else {
            self.arm_timer();
        }
    }

    /// Drains the session: bytes to the WebSocket, events to their handlers, until both
    /// are empty; then reports drops.
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

    /// Sends what the session has to send, in one frame. QoS 0 publications are done
    /// once their bytes are with the WebSocket.
    fn transmit(&mut self) {
        if !self.session.poll_transmit(Instant::now(), &mut self.out) {
            return;
        }
        let sent = match self.link.socket() {
            Some(socket) if self.link.is_up() => socket.send(&self.out),
            _ => Err("the WebSocket is not open".into()),
        };
        self.out.clear();
        match sent {
            Ok(()) => {
                for reply in self.qos0.drain(..) {
                    let _ = reply.send(Ok(PublishOutcome {
                        packet_id: None,
                        reason_code: ReasonCode::Success,
                    }));
                }
            }
            Err(err) => {
                self.io_error.get_or_insert(err);
                self.session.handle_connection_lost();
            }
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Copies the connection state to the handles and delivers the step's events.
    fn publish_status(&mut self, status: &Status) {
        status.connected.set(self.session.is_connected());
        if self.session.is_connected() {
            let id = &self.session.options().client_id;
            if status.client_id.borrow().as_str() != &**id {
                *status.client_id.borrow_mut() = id.to_string();
            }
        }
        if self.events.is_empty() {
            return;
        }
        let mut sinks = status.events.borrow_mut();
        sinks.retain(|sink| !sink.is_abandoned());
        for event in self.events.drain(..) {
            for sink in sinks.iter() {
                // A reader that fell `event_capacity` behind loses the oldest.
                sink.push_evicting(event.clone());
            }
        }
    }

    /// The client ends: everyone waiting hears so, streams end, nothing is left armed.
    fn finish(&mut self, status: &Status) {
        self.link = Link::Down { retry_at: None };
        self.timer.clear();
        status.connected.set(false);
        status.closed.set(true);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(ConnectError::Closed("the client stopped".into())));
        }
        for (_, _, waiter) in std::mem::take(&mut self.in_flight.0) {
            self.fail(waiter, Error::Closed);
        }
        for (outgoing, waiter) in std::mem::take(&mut self.offline) {
            drop(outgoing);
            self.fail(waiter, Error::Closed);
        }
        for (outgoing, waiter) in std::mem::take(&mut self.republish) {
            drop(outgoing);
            self.fail(waiter, Error::Closed);
        }
        for reply in self.qos0.drain(..) {
            let _ = reply.send(Err(Error::Closed));
        }
        for (_, (_, reply)) in self.requests.drain() {
            let _ = reply.send(Err(Error::Closed));
        }
        self.subscriptions.close();
        // Dropping the senders ends every events stream.
        status.events.borrow_mut().clear();
        for done in self.done.drain(..) {
            let _ = done.send(());
        }
    }
}
