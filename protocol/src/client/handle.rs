//! [`Handle`]: the calls of a client handle (`publish`, `subscribe`, `request`,
//! `respond`, `history`, `disconnect`), written once for both clients over a [`Port`],
//! and [`LocalSubscription`], what a `subscribe` call returns.
//!
//! A call builds its [`Command`] (checking what the application gave, see
//! [`Outgoing`]), hands it to the [`Connection`](super::Connection) through the port,
//! and waits for the answer on a oneshot channel of the port's runtime; a request also
//! waits on the port's clock. `native-client` and `web-client` wrap a `Handle` in
//! their `Client` and a `LocalSubscription` in their `Subscription`, adding only what
//! their runtime adds (connecting, the event stream, the stream of messages).
//!
//! ```text
//!  Client::publish ─► Handle::publish ─► Outgoing ─► Port::send(Command) ─► Connection
//!                     awaits Port::Answer ◄──────── Channels::answer ◄──────┘
//! ```

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::channels::Reply;
use super::{Channels, Command, Error, Message, Outgoing, PublishOutcome, correlation_data};
use crate::{ProtocolVersion, QoS, ReasonCode, SubscriptionOptions, TopicFilter};

/// The sending end of a oneshot channel of a port's runtime.
type Oneshot<P, T> = <<P as Port>::Channels as Channels>::Oneshot<T>;

/// How a client's handle reaches its connection, and the runtime pieces its calls wait
/// with: the oneshot channels of the answers, the buffers of local subscriptions, a
/// clock for request timeouts and a random source for correlation data. Implemented
/// by each client over its own runtime (tokio; the browser's event loop).
pub trait Port: fmt::Debug + Sized {
    /// The channel types the connection answers through.
    type Channels: Channels;
    /// The receiving end of a oneshot channel (the other end is a
    /// [`Channels::Oneshot`]): how a call waits for its answer.
    type Answer<T: fmt::Debug>: Future<Output = Result<T, Self::Canceled>>;
    /// What an [`Answer`](Port::Answer) resolves to when the connection dropped the
    /// reply unanswered (the client ended).
    type Canceled;
    /// The receiving end of one local subscription's message buffer.
    type Receiver: fmt::Debug;
    /// A way to the connection that does not keep the client alive: what a
    /// [`LocalSubscription`] holds to unsubscribe when it is dropped.
    type Weak: fmt::Debug;

    /// Hands `command` to the connection; [`Error::Closed`] if the client has ended
    /// and nothing takes commands any more.
    fn send(&self, command: Command<Self::Channels>) -> Result<(), Error>;
    /// Hands `command` to the connection if the client still runs.
    fn send_weak(weak: &Self::Weak, command: Command<Self::Channels>);
    /// The weak form of this port.
    fn downgrade(&self) -> Self::Weak;
    /// A oneshot channel, for one call's answer.
    fn oneshot<T: fmt::Debug>() -> (Oneshot<Self, T>, Self::Answer<T>);
    /// A message buffer for a new local subscription (of the client's subscription
    /// capacity).
    fn buffer(&self) -> (<Self::Channels as Channels>::Sender, Self::Receiver);
    /// A fresh number for a local subscription (unique within the client).
    fn next_local(&self) -> u64;
    /// The client's protocol version.
    fn version(&self) -> ProtocolVersion;
    /// 128 random bits, for a request's correlation data.
    fn random(&self) -> u128;
    /// Resolves once `duration` has passed.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;
}

/// The calls a client's handle offers, over its [`Port`]: see the module docs.
#[derive(Debug, Clone)]
pub struct Handle<P> {
    /// The way to the connection.
    port: P,
}

impl<P: Port> Handle<P> {
    /// A handle over `port`.
    pub fn new(port: P) -> Self {
        Self { port }
    }

    /// The port, for what the client adds itself.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Sends `command` and waits for its answer; [`Error::Closed`] if the client ended
    /// first.
    async fn call<T: fmt::Debug>(
        &self,
        make: impl FnOnce(Reply<P::Channels, T>) -> Command<P::Channels>,
    ) -> Result<T, Error> {
        let (reply, answer) = P::oneshot();
        self.port.send(make(reply))?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Publishes `outgoing`; resolves at the acknowledgement (QoS 1: PUBACK, QoS 2:
    /// PUBCOMP) or, at QoS 0, when the transport took it.
    pub async fn publish(&self, outgoing: Outgoing) -> Result<PublishOutcome, Error> {
        self.call(|reply| Command::Publish(outgoing, reply)).await
    }

    /// Subscribes to `filter`; resolves at the SUBACK with the local subscription.
    pub async fn subscribe(
        &self,
        filter: TopicFilter,
        options: SubscriptionOptions,
    ) -> Result<LocalSubscription<P>, Error> {
        let local = self.port.next_local();
        let (sender, receiver) = self.port.buffer();
        // Built before the command is sent, so that an early drop (the caller's future
        // cancelled) still unsubscribes.
        let mut subscription = LocalSubscription {
            local,
            filter: filter.clone(),
            granted: QoS::AtMostOnce,
            receiver,
            port: self.port.downgrade(),
        };
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

    /// MQTT 5 request/response: publishes `outgoing` (see [`Outgoing::request`]) with
    /// fresh correlation data (the connection sets the Response Topic) and resolves
    /// with the first response carrying it, or [`Error::Timeout`] after `timeout`,
    /// when the request is forgotten.
    pub async fn request(&self, outgoing: Outgoing, timeout: Duration) -> Result<Message, Error> {
        let correlation = correlation_data(self.port.random());
        let answer = self.call(|reply| Command::Request {
            outgoing,
            correlation: correlation.clone(),
            reply,
        });
        match first(answer, self.port.sleep(timeout)).await {
            Some(result) => result,
            None => {
                let _ = self.port.send(Command::CancelRequest(correlation));
                Err(Error::Timeout(timeout))
            }
        }
    }

    /// Sends DISCONNECT with `reason` and ends the client; resolves once it has ended.
    pub async fn disconnect(&self, reason: ReasonCode) -> Result<(), Error> {
        let (done, finished) = P::oneshot();
        self.port.send(Command::Disconnect { reason, done })?;
        let _ = finished.await;
        Ok(())
    }

    /// Closes the transport without DISCONNECT, then reconnects (`reconnect`) or ends
    /// the client.
    pub fn drop_connection(&self, reconnect: bool) {
        let _ = self.port.send(Command::DropConnection { reconnect });
    }
}

/// One local subscription: its filter, the QoS granted, and the receiving end of its
/// messages. Dropping it unsubscribes (the connection keeps the broker's subscription
/// while another local subscription uses the same filter).
#[derive(Debug)]
pub struct LocalSubscription<P: Port> {
    /// The client's number for it, named in `Unsubscribe`.
    local: u64,
    /// The filter, as given.
    filter: TopicFilter,
    /// What the broker granted.
    granted: QoS,
    /// Its messages.
    receiver: P::Receiver,
    /// Weak, so that subscriptions do not keep the client alive.
    port: P::Weak,
}

impl<P: Port> LocalSubscription<P> {
    /// The topic filter.
    pub fn filter(&self) -> &str {
        self.filter.as_str()
    }

    /// The QoS the broker granted.
    pub fn granted_qos(&self) -> QoS {
        self.granted
    }

    /// The receiving end of its messages.
    pub fn receiver(&mut self) -> &mut P::Receiver {
        &mut self.receiver
    }
}

impl<P: Port> Drop for LocalSubscription<P> {
    fn drop(&mut self) {
        P::send_weak(&self.port, Command::Unsubscribe { local: self.local });
    }
}

/// Awaits `a` and `b` together: `Some` with `a`'s output if it finished first (both
/// are polled in that order), `None` if `b` did.
pub async fn first<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
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

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::pin::Pin;
    use std::rc::{Rc, Weak};
    use std::task::{Context, Waker};

    use super::*;
    use crate::client::{ConnectFailure, PublishOptions};

    /// Oneshot channels and buffers as plain cells.
    #[derive(Debug)]
    struct Cells;

    type Slot<T> = Rc<RefCell<Option<T>>>;

    impl Channels for Cells {
        type Sender = Slot<Message>;
        type Oneshot<T: fmt::Debug> = Slot<T>;
        type ConnectError = ConnectFailure;

        fn deliver(sender: &Slot<Message>, message: Message) -> bool {
            *sender.borrow_mut() = Some(message);
            true
        }

        fn send_once<T: fmt::Debug>(oneshot: Slot<T>, value: T) {
            *oneshot.borrow_mut() = Some(value);
        }
    }

    /// The receiving end of a [`Slot`]: the value once set, `Err` once the sender is
    /// gone without one.
    #[derive(Debug)]
    struct Answer<T>(Slot<T>);

    impl<T> Future for Answer<T> {
        type Output = Result<T, ()>;

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            match self.0.borrow_mut().take() {
                Some(value) => Poll::Ready(Ok(value)),
                None if Rc::strong_count(&self.0) == 1 => Poll::Ready(Err(())),
                None => Poll::Pending,
            }
        }
    }

    /// The commands the handle sent, in order; `open: false` is an ended client.
    #[derive(Debug)]
    struct Sent {
        commands: RefCell<Vec<Command<Cells>>>,
        open: Cell<bool>,
        next_local: Cell<u64>,
        /// Whether a request's timeout has passed already.
        expired: bool,
    }

    #[derive(Debug, Clone)]
    struct TestPort(Rc<Sent>);

    impl Port for TestPort {
        type Channels = Cells;
        type Answer<T: fmt::Debug> = Answer<T>;
        type Canceled = ();
        type Receiver = Slot<Message>;
        type Weak = Weak<Sent>;

        fn send(&self, command: Command<Cells>) -> Result<(), Error> {
            if !self.0.open.get() {
                return Err(Error::Closed);
            }
            self.0.commands.borrow_mut().push(command);
            Ok(())
        }

        fn send_weak(weak: &Weak<Sent>, command: Command<Cells>) {
            if let Some(sent) = weak.upgrade() {
                let _ = TestPort(sent).send(command);
            }
        }

        fn downgrade(&self) -> Weak<Sent> {
            Rc::downgrade(&self.0)
        }

        fn oneshot<T: fmt::Debug>() -> (Slot<T>, Answer<T>) {
            let slot = Slot::default();
            (slot.clone(), Answer(slot))
        }

        fn buffer(&self) -> (Slot<Message>, Slot<Message>) {
            let slot = Slot::default();
            (slot.clone(), slot)
        }

        fn next_local(&self) -> u64 {
            let local = self.0.next_local.get();
            self.0.next_local.set(local + 1);
            local
        }

        fn version(&self) -> ProtocolVersion {
            ProtocolVersion::V5
        }

        fn random(&self) -> u128 {
            7
        }

        fn sleep(&self, _: Duration) -> impl Future<Output = ()> {
            let expired = self.0.expired;
            std::future::poll_fn(move |_| {
                if expired {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        }
    }

    fn handle(open: bool, expired: bool) -> Handle<TestPort> {
        Handle::new(TestPort(Rc::new(Sent {
            commands: RefCell::default(),
            open: Cell::new(open),
            next_local: Cell::new(1),
            expired,
        })))
    }

    /// Polls `future` once.
    fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn outgoing(topic: &str) -> Outgoing {
        Outgoing::new(topic.to_owned(), "x", QoS::AtLeastOnce).expect("a valid topic")
    }

    #[test]
    fn a_publication_is_answered_with_the_connections_outcome() {
        let handle = handle(true, false);
        let mut call = pin!(handle.publish(outgoing("a/b")));
        assert!(poll(call.as_mut()).is_pending());
        let Some(Command::Publish(sent, reply)) = handle.port().0.commands.borrow_mut().pop()
        else {
            panic!("no Publish sent");
        };
        assert_eq!(sent.topic.as_str(), "a/b");
        Cells::answer(reply, Ok(PublishOutcome::SENT));
        assert_eq!(poll(call), Poll::Ready(Ok(PublishOutcome::SENT)));
    }

    #[test]
    fn a_call_on_an_ended_client_fails_closed() {
        let handle = handle(false, false);
        let call = pin!(handle.publish(outgoing("a/b")));
        assert_eq!(poll(call), Poll::Ready(Err(Error::Closed)));
        // A reply the connection drops unanswered ends the call the same way.
        let handle = self::handle(true, false);
        let mut call = pin!(handle.publish(outgoing("a/b")));
        assert!(poll(call.as_mut()).is_pending());
        handle.port().0.commands.borrow_mut().clear();
        assert_eq!(poll(call), Poll::Ready(Err(Error::Closed)));
    }

    #[test]
    fn a_request_past_its_timeout_is_cancelled() {
        let handle = handle(true, true);
        let request = Outgoing::request(
            ProtocolVersion::V5,
            "svc/ask",
            "?",
            PublishOptions::new(QoS::AtLeastOnce),
        )
        .expect("a valid request");
        let timeout = Duration::from_secs(3);
        let call = pin!(handle.request(request, timeout));
        assert_eq!(
            poll(call).map(|r| r.map(|m| m.topic().to_owned())),
            Poll::Ready(Err(Error::Timeout(timeout)))
        );
        let commands = handle.port().0.commands.borrow();
        let [
            Command::Request { correlation, .. },
            Command::CancelRequest(cancelled),
        ] = commands.as_slice()
        else {
            panic!("expected a Request, then its cancellation: {commands:?}");
        };
        assert_eq!(correlation, cancelled);
        assert_eq!(correlation, &correlation_data(7));
    }

    #[test]
    fn a_dropped_subscription_unsubscribes_even_before_its_suback() {
        let handle = handle(true, false);
        let filter = TopicFilter::new("a/#").expect("a valid filter");
        let options = SubscriptionOptions::new(QoS::AtLeastOnce);
        let mut call = pin!(handle.subscribe(filter.clone(), options));
        assert!(poll(call.as_mut()).is_pending());
        let Some(Command::Subscribe { local, reply, .. }) =
            handle.port().0.commands.borrow_mut().pop()
        else {
            panic!("no Subscribe sent");
        };
        Cells::answer(reply, Ok(QoS::AtMostOnce));
        let Poll::Ready(Ok(subscription)) = poll(call) else {
            panic!("the SUBACK did not complete the call");
        };
        assert_eq!(
            (subscription.filter(), subscription.granted_qos()),
            ("a/#", QoS::AtMostOnce)
        );
        drop(subscription);
        assert!(matches!(
            handle.port().0.commands.borrow().as_slice(),
            [Command::Unsubscribe { local: unsubscribed }] if *unsubscribed == local
        ));

        // The caller gave up before the SUBACK: the subscription is dropped unanswered.
        let mut call = Box::pin(handle.subscribe(filter, options));
        assert!(poll(call.as_mut()).is_pending());
        drop(call);
        assert!(matches!(
            handle.port().0.commands.borrow().as_slice(),
            [
                _,
                Command::Subscribe { .. },
                Command::Unsubscribe { local: 2 }
            ]
        ));
    }
}
