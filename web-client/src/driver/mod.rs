//! The driver: the one place that owns the WebSocket, the timer and the sans-IO
//! [`Connection`] of `protocol::client` (the behaviour both clients share), fed one
//! [`Input`] at a time.
//!
//! ```text
//!  Client handles ──Command──┐
//!  WebSocket events ─────────┼─► inbox ─► Driver::step ┌ Connection (protocol):      ┐ ─► ws.send (one frame
//!  timer (worker) ───────────┘   (queue)               │ session, subscriptions,     │     per batch)
//!                                                      │ offline queue, requests,    │ ─► Subscription queues
//!                                                      └ reconnect backoff           ┘ ─► event queues
//! ```
//!
//! The browser gives the client one thread and an event loop instead of a task: every
//! input (a command from a [`Client`](crate::Client) call, a WebSocket event, the timer)
//! goes through [`Shared::input`], which queues it and, unless the driver is already
//! busy, runs [`Driver::step`] for each queued input. An input that arrives while
//! another is handled (a `Subscription` dropped from inside a callback) simply waits
//! its turn, so the driver is never re-entered.
//!
//! Each step follows the connection's driving contract (see
//! [`protocol::client::connection`]): hand the input over, then poll the connection
//! until it is drained (its bytes go to the WebSocket in one `send`, it opens and
//! closes the WebSocket as it asks), deliver the events, and re-arm the one timer.
//!
//! - `link`: the WebSocket and the timer.
//! - this module: [`Shared`], the inputs, this crate's [`Channels`], and the step.

mod link;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Weak;

use bytes::BytesMut;
use protocol::ProtocolVersion;
use protocol::client::{Channels, Connection, Event, Message};
use web_time::Instant;

use crate::error::ConnectError;
use crate::options::ConnectOptions;
use crate::queue::{self, oneshot};
use crate::socket::SocketEvent;
use crate::timer::Timer;
use link::Link;

/// This crate's queues behind the [`Connection`]: each local
/// [`Subscription`](crate::Subscription) reads a bounded [`queue`]; every call waits
/// on a `queue::oneshot`.
#[derive(Debug)]
pub(crate) struct Browser;

impl Channels for Browser {
    type Sender = queue::Sender<Message>;
    type Oneshot<T: std::fmt::Debug> = oneshot::Sender<T>;
    type ConnectError = ConnectError;

    fn deliver(sender: &Self::Sender, message: Message) -> bool {
        sender.push(message).is_ok()
    }

    fn send_once<T: std::fmt::Debug>(oneshot: oneshot::Sender<T>, value: T) {
        let _ = oneshot.send(value);
    }
}

/// What a [`Client`](crate::Client) asks of the driver.
pub(crate) type Command = protocol::client::Command<Browser>;

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
            client_id: RefCell::new(String::from(&*options.session.client_id)),
            version: options.session.version,
            next_local: Cell::new(1),
            subscription_capacity: options.subscription_capacity.max(1),
            event_capacity: options.event_capacity.max(1),
            timer: options.transport,
            events: RefCell::new(Vec::new()),
        };
        Self {
            driver: RefCell::new(Driver::new(&options, url, me, ready)),
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

/// The driver: see the module docs.
#[derive(Debug)]
pub(crate) struct Driver {
    connection: Connection<Browser>,
    /// The absolute `ws://` or `wss://` URL.
    url: String,
    /// To hand the socket and the timer a way back in.
    me: Weak<Shared>,
    link: Link,
    /// Numbers the WebSockets, so that events of a closed one are ignored.
    generation: u64,
    /// The one timer, armed for the connection's `poll_timeout`.
    timer: Timer,
    /// Bytes from `poll`, sent as one frame.
    out: BytesMut,
}

impl Driver {
    fn new(
        options: &ConnectOptions,
        url: String,
        me: Weak<Shared>,
        ready: oneshot::Sender<Result<(), ConnectError>>,
    ) -> Self {
        let timer = {
            let me = me.clone();
            Timer::new(options.transport, move || {
                if let Some(shared) = me.upgrade() {
                    shared.input(Input::Timer);
                }
            })
        };
        let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        Self {
            connection: Connection::new(options, ready, seed),
            url,
            me,
            link: Link::Down,
            generation: 0,
            timer,
            out: BytesMut::new(),
        }
    }

    /// Handles one input, drains the connection, and settles the link and the timer.
    fn step(&mut self, input: Input, status: &Status) {
        if self.connection.is_finished() {
            // Commands after the end fail with `Error::Closed`.
            if let Input::Command(command) = input {
                self.connection.handle_command(command);
            }
            return;
        }
        let now = Instant::now();
        match input {
            Input::Start => self.connection.start(now),
            Input::Command(command) => self.connection.handle_command(command),
            Input::Socket(generation, event) if generation == self.generation => {
                self.handle_socket(event)
            }
            Input::Socket(..) => {}
            Input::Timer => self.connection.handle_timeout(now),
            Input::HandlesDropped => self.connection.handle_handles_dropped(),
        }
        self.settle();
        self.publish_status(status);
        if self.connection.is_finished() {
            self.finish(status);
        } else {
            self.arm_timer();
        }
    }

    /// Copies the connection state to the handles and delivers the step's events.
    fn publish_status(&mut self, status: &Status) {
        status.connected.set(self.connection.is_connected());
        if self.connection.is_connected() {
            let id = &self.connection.options().client_id;
            if status.client_id.borrow().as_str() != &**id {
                *status.client_id.borrow_mut() = String::from(&**id);
            }
        }
        let mut sinks = status.events.borrow_mut();
        sinks.retain(|sink| !sink.is_abandoned());
        while let Some(event) = self.connection.poll_event() {
            for sink in sinks.iter() {
                // A reader that fell `event_capacity` behind loses the oldest.
                sink.push_evicting(event.clone());
            }
        }
    }

    /// The client has ended (the connection answered every waiter): streams end,
    /// nothing is left armed.
    fn finish(&mut self, status: &Status) {
        self.link = Link::Down;
        self.timer.clear();
        status.connected.set(false);
        status.closed.set(true);
        // Dropping the senders ends every events stream.
        status.events.borrow_mut().clear();
    }
}
