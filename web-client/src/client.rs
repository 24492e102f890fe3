//! [`Client`], the cloneable handle to a connection's driver, [`Subscription`], a
//! stream of the messages matching one topic filter, and [`EventStream`].

use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::queue::oneshot;
use bytes::Bytes;
use bytestring::ByteString;
use futures::Stream;
use protocol::client::history::{self, HistoryQuery, HistoryReply};
use protocol::client::{ConnectFailure, Event, Message, Outgoing, PublishOutcome};
use protocol::{ProtocolVersion, QoS, ReasonCode, TopicFilter};

use crate::driver::{Command, Input, Shared};
use crate::error::{ConnectError, Error};
use crate::options::{ConnectOptions, PublishOptions, SubscribeOptions, TimerMode};
use crate::queue;
use crate::socket;
use crate::timer;

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
    shared: Rc<Shared>,
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
        let client = Self { shared };
        client.shared.input(Input::Start);
        match connected.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ConnectFailure::Closed("the client stopped".into()).into()),
        }
    }

    fn command(&self, command: Command) {
        self.shared.input(Input::Command(command));
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.command(make(reply));
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Publishes `payload` to `topic`. Resolves when the broker acknowledged it
    /// (QoS 1: PUBACK, QoS 2: PUBCOMP) or, at QoS 0, when it was handed to the
    /// WebSocket. While disconnected the message waits in the offline queue.
    ///
    /// `options` is a [`PublishOptions`] or just a [`QoS`].
    pub async fn publish(
        &self,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        options: impl Into<PublishOptions>,
    ) -> Result<PublishOutcome, Error> {
        let outgoing = Outgoing::new(topic, payload, options)?;
        self.call(|reply| Command::Publish(outgoing, reply)).await
    }

    /// Subscribes to `filter` and returns the stream of matching messages once the
    /// broker granted it (SUBACK). Dropping the [`Subscription`] unsubscribes, unless
    /// another live `Subscription` of this client uses the same filter. After a
    /// reconnect to a broker that lost the session, the client subscribes again by
    /// itself.
    ///
    /// `options` is a [`SubscribeOptions`] or just a [`QoS`].
    pub async fn subscribe(
        &self,
        filter: impl Into<ByteString>,
        options: impl Into<SubscribeOptions>,
    ) -> Result<Subscription, Error> {
        let filter = TopicFilter::new(filter)?;
        let status = &self.shared.status;
        let local = status.next_local.get();
        status.next_local.set(local + 1);
        let (sender, receiver) = queue::queue(status.subscription_capacity);
        // Built before the command is sent, so that an early drop (the caller's future
        // cancelled) still unsubscribes.
        let mut subscription = Subscription {
            local,
            filter: filter.clone(),
            granted: QoS::AtMostOnce,
            receiver,
            shared: Rc::downgrade(&self.shared),
        };
        let options = options.into().options;
        subscription.granted = self
            .call(|reply| Command::Subscribe {
                local,
                filter,
                options,
                sender,
                reply,
            })
            .await?;
        Ok(subscription)
    }

    /// The broker's recorded history of the topics matching `query.filter` (MQTT 5
    /// request/response on `$history/query`, docs/history.md): samples oldest first,
    /// only of topics this client may read. [`Error::History`] when the broker refuses
    /// (bad request, not authorized, history disabled); [`Error::NeedsV5`] on MQTT 3.x.
    pub async fn history(
        &self,
        query: &HistoryQuery,
        timeout: Duration,
    ) -> Result<HistoryReply, Error> {
        let reply = self
            .request(history::QUERY_TOPIC, query.encode(), timeout)
            .await?;
        history::decode_reply(&reply)
    }

    /// MQTT 5 request/response: publishes `payload` to `topic` at QoS 1 with a Response
    /// Topic (this client's, see
    /// [`ConnectOptions::response_topic`](crate::ConnectOptions::response_topic)) and
    /// fresh Correlation Data, and returns the first response carrying that
    /// correlation data, or [`Error::Timeout`].
    pub async fn request(
        &self,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.request_with(
            topic,
            payload,
            PublishOptions::new(QoS::AtLeastOnce),
            timeout,
        )
        .await
    }

    /// [`request`](Client::request) with explicit options (QoS, message expiry, content
    /// type, user properties). Correlation data is set here; the response topic is
    /// `options.properties.response_topic` when given (e.g. the Homie convention's
    /// `dash/{client-id}/res/{dev}`, one per device), else the client's. The client
    /// subscribes to each response topic it uses, once.
    pub async fn request_with(
        &self,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        options: PublishOptions,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let outgoing = Outgoing::request(self.shared.status.version, topic, payload, options)?;
        let correlation = correlation_data();
        let answer = self.call(|reply| Command::Request {
            outgoing,
            correlation: correlation.clone(),
            reply,
        });
        let sleep = timer::sleep(timeout, self.shared.status.timer);
        match first(answer, sleep).await {
            Some(result) => result,
            None => {
                self.command(Command::CancelRequest(correlation));
                Err(Error::Timeout(timeout))
            }
        }
    }

    /// Answers `request` (a message with an MQTT 5 Response Topic): publishes
    /// `payload` to its response topic with its correlation data echoed.
    pub async fn respond(
        &self,
        request: &Message,
        payload: impl Into<Bytes>,
        options: PublishOptions,
    ) -> Result<PublishOutcome, Error> {
        let outgoing = Outgoing::response(request, payload, options)?;
        self.call(|reply| Command::Publish(outgoing, reply)).await
    }

    /// A stream of connection events from now on. A reader that falls
    /// [`event_capacity`](crate::ConnectOptions::event_capacity) events behind loses
    /// the oldest. The stream ends when the client does.
    pub fn events(&self) -> EventStream {
        let status = &self.shared.status;
        let (sender, receiver) = queue::queue(status.event_capacity);
        if status.closed.get() {
            drop(sender);
        } else {
            status.events.borrow_mut().push(sender);
        }
        EventStream(receiver)
    }

    /// Sends DISCONNECT with `reason` (Success for a normal disconnection;
    /// [`ReasonCode::DisconnectWithWillMessage`] asks an MQTT 5 broker to publish the
    /// will), closes the connection and ends the client: every handle's operations fail
    /// with [`Error::Closed`] afterwards and subscriptions end.
    pub async fn disconnect(&self, reason: ReasonCode) -> Result<(), Error> {
        let (done, finished) = oneshot::channel();
        self.command(Command::Disconnect { reason, done });
        let _ = finished.await;
        Ok(())
    }

    /// Closes the WebSocket without DISCONNECT, as a network failure would (the broker
    /// publishes the will), then reconnects per the reconnect options.
    pub fn drop_connection(&self) {
        self.command(Command::DropConnection { reconnect: true });
    }

    /// Closes the WebSocket without DISCONNECT (the broker publishes the will) and
    /// ends the client.
    pub fn abort(&self) {
        self.command(Command::DropConnection { reconnect: false });
    }

    /// Whether a connection is established (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.shared.status.connected.get()
    }

    /// Whether the client has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.status.closed.get()
    }

    /// The client identifier in use (the one the broker assigned, if it did).
    pub fn client_id(&self) -> String {
        self.shared.status.client_id.borrow().clone()
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.shared.status.version
    }

    /// The clock that runs this client's timers: [`TimerMode::Worker`] unless the
    /// options asked for the main thread or the worker could not start.
    pub fn timer_mode(&self) -> TimerMode {
        match self.shared.status.timer {
            TimerMode::Worker if timer::worker_running() => TimerMode::Worker,
            _ => TimerMode::MainThread,
        }
    }
}

/// 16 bytes of fresh correlation data: 96 bits of the browser's random numbers and a
/// counter, so two requests of one page never share one.
fn correlation_data() -> Bytes {
    thread_local!(static COUNTER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    let count = COUNTER.with(|counter| {
        counter.set(counter.get().wrapping_add(1));
        counter.get()
    });
    let random = || (js_sys::Math::random() * 281_474_976_710_656.0) as u128;
    protocol::client::correlation_data((random() << 80) | (random() << 32) | u128::from(count))
}

/// Awaits `a` and `b` together: `Some` with `a`'s output if it finished first, `None`
/// if `b` did.
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
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
pub struct Subscription {
    local: u64,
    filter: TopicFilter,
    granted: QoS,
    receiver: queue::Receiver<Message>,
    /// Weak, so that subscriptions do not keep the client alive.
    shared: Weak<Shared>,
}

impl Subscription {
    /// The topic filter.
    pub fn filter(&self) -> &str {
        self.filter.as_str()
    }

    /// The QoS the broker granted.
    pub fn granted_qos(&self) -> QoS {
        self.granted
    }

    /// The next message; `None` once the client has ended.
    pub async fn recv(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.receiver.try_recv()
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.input(Input::Command(Command::Unsubscribe { local: self.local }));
        }
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
