//! [`Client`], the cloneable handle to a connection's driver, [`Subscription`], a
//! stream of the messages matching one topic filter, and [`EventStream`]: what their
//! calls do is `protocol::client::Handle`'s, over [`BrowserPort`] (the driver's inbox,
//! this crate's queues, the worker timer).

use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::queue::oneshot;
use futures::Stream;
use protocol::ProtocolVersion;
use protocol::client::{ConnectFailure, Event, Handle, LocalSubscription, Message, Port};

use crate::driver::{Browser, Command, Input, Shared, Status};
use crate::error::{ConnectError, Error};
use crate::options::{ConnectOptions, TimerMode};
use crate::queue;
use crate::socket;
use crate::timer;

/// The way of a [`Client`] to its driver: the shared state the driver runs in, fed one
/// input at a time.
#[derive(Debug, Clone)]
pub(crate) struct BrowserPort(Rc<Shared>);

impl Port for BrowserPort {
    type Channels = Browser;
    type Answer<T: std::fmt::Debug> = oneshot::Receiver<T>;
    type Canceled = oneshot::Canceled;
    type Receiver = queue::Receiver<Message>;
    type Weak = Weak<Shared>;

    /// Never fails: after the end the driver itself answers [`Error::Closed`].
    fn send(&self, command: Command) -> Result<(), Error> {
        self.0.input(Input::Command(command));
        Ok(())
    }

    fn send_weak(weak: &Self::Weak, command: Command) {
        if let Some(shared) = weak.upgrade() {
            shared.input(Input::Command(command));
        }
    }

    fn downgrade(&self) -> Self::Weak {
        Rc::downgrade(&self.0)
    }

    fn oneshot<T: std::fmt::Debug>() -> (oneshot::Sender<T>, Self::Answer<T>) {
        oneshot::channel()
    }

    fn buffer(&self) -> (queue::Sender<Message>, Self::Receiver) {
        queue::queue(self.0.status.subscription_capacity)
    }

    fn next_local(&self) -> u64 {
        let next_local = &self.0.status.next_local;
        let local = next_local.get();
        next_local.set(local + 1);
        local
    }

    fn version(&self) -> ProtocolVersion {
        self.0.status.version
    }

    /// 96 bits of the browser's random numbers and a counter, so two requests of one
    /// page never share correlation data.
    fn random(&self) -> u128 {
        thread_local!(static COUNTER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        let count = COUNTER.with(|counter| {
            counter.set(counter.get().wrapping_add(1));
            counter.get()
        });
        let random = || (js_sys::Math::random() * 281_474_976_710_656.0) as u128;
        (random() << 80) | (random() << 32) | u128::from(count)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        timer::sleep(duration, self.0.status.timer)
    }
}

/// A handle to an MQTT connection over a browser WebSocket: cheap to clone.
///
/// The connection reconnects by itself (see [`ReconnectOptions`](crate::ReconnectOptions))
/// and ends when [`disconnect`](Client::disconnect) is called or the last handle is
/// dropped (sending DISCONNECT). Like everything in the browser it lives on one thread:
/// it is neither `Send` nor `Sync`.
///
/// ```no_run
/// use futures::StreamExt;
/// use web_client::{Client, ConnectOptions, PublishOptions, QoS};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect(ConnectOptions::new("/mqtt").client_id("ui-1")).await?;
/// let mut temperatures = client.subscribe("iot/5/+/climate/temperature", QoS::AtLeastOnce).await?;
/// client
///     .publish("iot/5/th-1/climate/setpoint/set", "22", PublishOptions::new(QoS::AtLeastOnce))
///     .await?;
/// while let Some(message) = temperatures.next().await {
///     show(message.topic(), message.payload_str().unwrap_or("(binary)"));
/// }
/// # Ok(())
/// # }
/// # fn show(_: &str, _: &str) {}
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    /// The calls `protocol` writes once for both clients, over the driver's inbox.
    core: Handle<BrowserPort>,
}

impl Client {
    /// Connects, and returns once the broker accepted the connection (CONNACK). A
    /// refusal is [`ConnectError::Handshake`] with the reason code; the first connection
    /// is not retried.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ConnectError> {
        let url = socket::resolve_url(&options.url).map_err(|reason| ConnectError::Url {
            url: options.url.clone(),
            reason,
        })?;
        let (ready, connected) = oneshot::channel();
        let shared = Rc::new_cyclic(|me| Shared::new(me.clone(), options, url, ready));
        // Made before waiting, so that a cancelled `connect` still ends the attempt.
        let client = Self {
            core: Handle::new(BrowserPort(shared)),
        };
        client.core.port().0.input(Input::Start);
        match connected.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ConnectFailure::Closed("the client stopped".into()).into()),
        }
    }

    protocol::client_calls!(Client);

    /// A stream of connection events from now on. A reader that falls
    /// [`event_capacity`](crate::ConnectOptions::event_capacity) events behind loses
    /// the oldest. The stream ends when the client does.
    pub fn events(&self) -> EventStream {
        let status = self.status();
        let (sender, receiver) = queue::queue(status.event_capacity);
        if status.closed.get() {
            drop(sender);
        } else {
            status.events.borrow_mut().push(sender);
        }
        EventStream(receiver)
    }

    /// Whether a connection is established (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.status().connected.get()
    }

    /// Whether the client has ended.
    pub fn is_closed(&self) -> bool {
        self.status().closed.get()
    }

    /// The client identifier in use (the one the broker assigned, if it did).
    pub fn client_id(&self) -> String {
        self.status().client_id.borrow().clone()
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.status().version
    }

    /// The clock that runs this client's timers: [`TimerMode::Worker`] unless the
    /// options asked for the main thread or the worker could not start.
    pub fn timer_mode(&self) -> TimerMode {
        match self.status().timer {
            TimerMode::Worker if timer::worker_running() => TimerMode::Worker,
            _ => TimerMode::MainThread,
        }
    }

    /// What the driver keeps current for the handles.
    fn status(&self) -> &Status {
        &self.core.port().0.status
    }
}

/// The messages matching one topic filter, as a [`Stream`] (or with
/// [`recv`](Subscription::recv)). Ends when the client ends. Dropping it unsubscribes
/// unless another `Subscription` of the client uses the same filter.
///
/// Messages are buffered up to
/// [`ConnectOptions::subscription_capacity`](crate::ConnectOptions::subscription_capacity);
/// a reader that falls further behind loses messages, reported as
/// [`Event::MessagesDropped`].
#[derive(Debug)]
pub struct Subscription(LocalSubscription<BrowserPort>);

impl Subscription {
    protocol::client_calls!(Subscription);

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.0.receiver().try_recv()
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        Pin::new(self.0.receiver()).poll_next(cx)
    }
}

/// The connection events of a [`Client`], as a [`Stream`] (or with
/// [`recv`](EventStream::recv)).
#[derive(Debug)]
pub struct EventStream(queue::Receiver<Event>);

impl EventStream {
    /// The next event; `None` once the client has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.0.try_recv()
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}
