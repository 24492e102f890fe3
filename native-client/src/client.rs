//! [`Client`], the cloneable handle to a connection's driver task, and
//! [`Subscription`], a stream of the messages matching one topic filter: what their
//! calls do is `protocol::client::Handle`'s, over [`TokioPort`] (the driver's command
//! channel, tokio's oneshot and `mpsc` channels, `tokio::time`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use protocol::ProtocolVersion;
use protocol::client::{ConnectFailure, Event, Handle, LocalSubscription, Message, Port};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::driver::{Command, Driver, Tokio};
use crate::error::{ConnectError, Error};
use crate::options::ConnectOptions;

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

/// The way of a [`Client`] to its driver task: the command channel, and the state the
/// driver keeps current for the handles.
#[derive(Debug, Clone)]
pub(crate) struct TokioPort {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Port for TokioPort {
    type Channels = Tokio;
    type Answer<T: std::fmt::Debug> = oneshot::Receiver<T>;
    type Canceled = oneshot::error::RecvError;
    type Receiver = mpsc::Receiver<Message>;
    type Weak = mpsc::WeakUnboundedSender<Command>;

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }

    fn send_weak(weak: &Self::Weak, command: Command) {
        if let Some(commands) = weak.upgrade() {
            let _ = commands.send(command);
        }
    }

    fn downgrade(&self) -> Self::Weak {
        self.commands.downgrade()
    }

    fn oneshot<T: std::fmt::Debug>() -> (oneshot::Sender<T>, Self::Answer<T>) {
        oneshot::channel()
    }

    fn buffer(&self) -> (mpsc::Sender<Message>, Self::Receiver) {
        mpsc::channel(self.shared.subscription_capacity)
    }

    fn next_local(&self) -> u64 {
        self.shared.next_local.fetch_add(1, Ordering::Relaxed)
    }

    fn version(&self) -> ProtocolVersion {
        self.shared.version
    }

    fn random(&self) -> u128 {
        fastrand::u128(..)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
    }
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
    /// The calls `protocol` writes once for both clients, over the driver's channel.
    core: Handle<TokioPort>,
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
            Ok(Ok(())) => Ok(Self {
                core: Handle::new(TokioPort { commands, shared }),
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ConnectFailure::Closed("the client task stopped".into()).into()),
        }
    }

    protocol::client_calls!(Client);

    /// A receiver of connection events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared().events.subscribe()
    }

    /// Whether a connection is established (CONNACK received, not yet lost).
    pub fn is_connected(&self) -> bool {
        self.shared().connected.load(Ordering::Acquire)
    }

    /// Whether the client has ended.
    pub fn is_closed(&self) -> bool {
        self.shared().closed.load(Ordering::Acquire) || self.core.port().commands.is_closed()
    }

    /// The client identifier in use (the one the broker assigned, if it did).
    pub fn client_id(&self) -> String {
        self.shared()
            .client_id
            .lock()
            .map(|id| id.clone())
            .unwrap_or_default()
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.shared().version
    }

    /// What the driver keeps current for the handles.
    fn shared(&self) -> &Shared {
        &self.core.port().shared
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
pub struct Subscription(LocalSubscription<TokioPort>);

impl Subscription {
    protocol::client_calls!(Subscription);
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.receiver().poll_recv(cx)
    }
}

/// Every call's future can move between threads (`tokio::spawn`): checked when this
/// crate compiles, since the calls are generic code in `protocol` whose futures hold
/// this crate's channels and timer.
#[allow(dead_code)]
fn calls_are_send(client: &Client, subscription: &mut Subscription) {
    fn send<T: Send>(_: T) {}
    let query = protocol::client::history::HistoryQuery::new("a/#");
    send(client.publish("a", "b", protocol::QoS::AtLeastOnce));
    send(client.subscribe("a/#", protocol::QoS::AtLeastOnce));
    send(client.history(&query, Duration::from_secs(1)));
    send(client.request("a", "b", Duration::from_secs(1)));
    send(client.disconnect(protocol::ReasonCode::Success));
    send(subscription.recv());
    send(client.clone());
}
