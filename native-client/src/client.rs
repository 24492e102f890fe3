//! [`Client`], the cloneable handle to a connection's driver task, and
//! [`Subscription`], a stream of the messages matching one topic filter.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use futures::Stream;
use protocol::client::history::{self, HistoryQuery, HistoryReply};
use protocol::client::{ConnectFailure, Event, Message, Outgoing, PublishOutcome};
use protocol::{ProtocolVersion, QoS, ReasonCode, TopicFilter};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::driver::{Command, Driver};
use crate::error::{ConnectError, Error};
use crate::options::{ConnectOptions, PublishOptions, SubscribeOptions};

/// What the handles and the driver share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) connected: AtomicBool,
    pub(crate) closed: AtomicBool,
    /// The client identifier in use (the server's, if it assigned one).
    pub(crate) client_id: Mutex<String>,
    version: ProtocolVersion,
    /// Local subscription numbers.
    next_local: AtomicU64,
    subscription_capacity: usize,
}

/// A handle to an MQTT connection: cheap to clone, usable from any task.
///
/// The connection lives in a driver task that [`Client::connect`] spawns on the current
/// tokio runtime; it reconnects by itself (see
/// [`ReconnectOptions`](crate::ReconnectOptions)) and ends when
/// [`disconnect`](Client::disconnect) is called or the last handle is dropped (sending
/// DISCONNECT).
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Client {
    /// Connects, and returns once the broker accepted the connection (CONNACK). A
    /// refusal is [`ConnectError::Handshake`] with the reason code; the first connection
    /// is not retried.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ConnectError> {
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let shared = Arc::new(Shared {
            events,
            connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            client_id: Mutex::new(options.session.client_id.to_string()),
            version: options.session.version,
            next_local: AtomicU64::new(1),
            subscription_capacity: options.subscription_capacity.max(1),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let (ready, connected) = oneshot::channel();
        let driver = Driver::new(options, shared.clone(), receiver, ready)?;
        tokio::spawn(driver.run());
        match connected.await {
            Ok(Ok(())) => Ok(Self { commands, shared }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ConnectFailure::Closed("the client task stopped".into()).into()),
        }
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply))?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Publishes `payload` to `topic`. Resolves when the broker acknowledged it
    /// (QoS 1: PUBACK, QoS 2: PUBCOMP) or, at QoS 0, when it was written to the socket.
    /// While disconnected the message waits in the offline queue.
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
    /// another live `Subscription` of this client uses the same filter.
    ///
    /// `options` is a [`SubscribeOptions`] or just a [`QoS`].
    pub async fn subscribe(
        &self,
        filter: impl Into<ByteString>,
        options: impl Into<SubscribeOptions>,
    ) -> Result<Subscription, Error> {
        let filter = TopicFilter::new(filter)?;
        let local = self.shared.next_local.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(self.shared.subscription_capacity);
        // Built before the command is sent, so that an early drop (the caller's future
        // cancelled) still unsubscribes.
        let mut subscription = Subscription {
            local,
            filter: filter.clone(),
            granted: QoS::AtMostOnce,
            receiver,
            commands: self.commands.downgrade(),
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
    /// `options.properties.response_topic` when given, else the client's. The client
    /// subscribes to each response topic it uses, once.
    pub async fn request_with(
        &self,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        options: PublishOptions,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let outgoing = Outgoing::request(self.shared.version, topic, payload, options)?;
        let correlation = protocol::client::correlation_data(fastrand::u128(..));
        let answer = self.call(|reply| Command::Request {
            outgoing,
            correlation: correlation.clone(),
            reply,
        });
        match tokio::time::timeout(timeout, answer).await {
            Ok(result) => result,
            Err(_) => {
                let _ = self.send(Command::CancelRequest(correlation));
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

    /// A receiver of connection events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Sends DISCONNECT with `reason` (Success for a normal disconnection;
    /// [`ReasonCode::DisconnectWithWillMessage`] asks an MQTT 5 broker to publish the
    /// will), closes the connection and ends the client: every handle's operations fail
    /// with [`Error::Closed`] afterwards and subscriptions end.
    pub async fn disconnect(&self, reason: ReasonCode) -> Result<(), Error> {
        let (done, finished) = oneshot::channel();
        self.send(Command::Disconnect { reason, done })?;
        let _ = finished.await;
        Ok(())
    }

    /// Closes the transport without DISCONNECT, as a network failure would (the broker
    /// publishes the will), then reconnects per the reconnect options.
    pub fn drop_connection(&self) {
        let _ = self.send(Command::DropConnection { reconnect: true });
    }

    /// Closes the transport without DISCONNECT (the broker publishes the will) and ends
    /// the client.
    pub fn abort(&self) {
        let _ = self.send(Command::DropConnection { reconnect: false });
    }

    /// Whether a connection is established (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Whether the client has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.commands.is_closed()
    }

    /// The client identifier in use (the one the broker assigned, if it did).
    pub fn client_id(&self) -> String {
        self.shared
            .client_id
            .lock()
            .map(|id| id.clone())
            .unwrap_or_default()
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.shared.version
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
pub struct Subscription {
    local: u64,
    filter: TopicFilter,
    granted: QoS,
    receiver: mpsc::Receiver<Message>,
    /// Weak, so that subscriptions do not keep the client alive.
    commands: mpsc::WeakUnboundedSender<Command>,
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
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.receiver.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Unsubscribe { local: self.local });
        }
    }
}
