//! One connection's work: the outbox to the remote (at most `max_inflight` messages
//! unacknowledged, in order), and the remote's messages for `in` rules into the broker.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::stream::{FuturesOrdered, SelectAll, StreamExt};
use native_client::{Client, Error, Event, PublishOptions, PublishOutcome, SubscribeOptions};
use protocol::Publish;
use tokio::sync::{broadcast, watch};

use super::{BridgeStatus, HOP_PROPERTY};
use crate::broker::Broker;
use crate::config::{BridgeProtocol, TopicRule};
use crate::message::{Delivery, Message};

/// How a connection's work ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The broker is shutting down.
    Shutdown,
    /// The connection was lost (or could not be set up): why.
    Lost(String),
}

/// Failed attempts to resume the remote session before a bridge with several
/// addresses fails over to the next one.
const RESUME_ATTEMPTS: u32 = 3;

/// One publication to the remote, resolving when it is acknowledged.
type Sending = Pin<Box<dyn Future<Output = Result<PublishOutcome, Error>> + Send>>;

/// The messages of the remote subscriptions, tagged with their rule's index.
type Incoming = SelectAll<futures::stream::BoxStream<'static, (usize, native_client::Message)>>;

/// Runs one connection: subscribes the `in` rules on the remote, then forwards both
/// ways until the connection is lost or `shutdown` turns true; the state is
/// `connected` in between. Deliveries sent but not acknowledged go back to the front
/// of the outbox.
pub(super) async fn serve(
    broker: &Broker,
    status: &BridgeStatus,
    client: &Client,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let mut events = client.events();
    if !client.is_connected() {
        // Lost before `events` was listening: its Disconnected event is gone.
        return Ended::Lost("the connection ended at once".into());
    }
    let mut incoming = match subscribe_remote(status, client).await {
        Ok(incoming) => incoming,
        Err(why) => return Ended::Lost(why),
    };
    let receiving = !incoming.is_empty();
    // Connected only once the remote subscriptions are in place: what is published on
    // the remote from now on comes in.
    super::publish_state(broker, status, true);
    let mut out = Outbound {
        broker,
        status,
        client,
        node: broker.bridges.node().clone(),
        waiting: VecDeque::new(),
        sending: FuturesOrdered::new(),
    };
    let ended = loop {
        out.fill();
        tokio::select! {
            _ = shutdown.changed() => break Ended::Shutdown,
            Some(result) = out.sending.next(), if !out.sending.is_empty() => {
                if let Err(why) = out.settle(result) {
                    break Ended::Lost(why);
                }
            }
            message = incoming.next(), if receiving => match message {
                Some((rule, message)) => inbound(broker, status, &status.config.topics[rule], message),
                None => break Ended::Lost("the remote subscriptions ended".into()),
            },
            _ = status.outbox.notified() => {}
            event = events.recv() => match event {
                Ok(Event::Disconnected { reason, will_reconnect: true }) => {
                    // The client resumes the session by itself: what is in flight
                    // stays in flight and is re-sent (or released) on the next
                    // connection, with its packet id.
                    tracing::warn!(bridge = %status.config.name, %reason, "bridge connection lost; resuming the session");
                    *status.last_error.lock() = Some(reason.to_string());
                    super::publish_state(broker, status, false);
                }
                Ok(Event::Disconnected { reason, .. }) => break Ended::Lost(reason.to_string()),
                Ok(Event::Connected { .. }) => {
                    tracing::info!(bridge = %status.config.name, "bridge reconnected");
                    super::publish_state(broker, status, true);
                }
                Ok(Event::Reconnecting { attempt, .. })
                    if attempt > RESUME_ATTEMPTS && status.config.address.len() > 1 =>
                {
                    break Ended::Lost(format!("{RESUME_ATTEMPTS} attempts to resume failed"));
                }
                Ok(Event::MessagesDropped { count, .. }) => {
                    status.dropped.fetch_add(count, Ordering::Relaxed);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break Ended::Lost("the client ended".into()),
            },
        }
    };
    out.give_back();
    ended
}

/// Subscribes the remote filter of every rule that receives.
async fn subscribe_remote(status: &BridgeStatus, client: &Client) -> Result<Incoming, String> {
    let v5 = status.config.protocol == BridgeProtocol::Mqttv5;
    let mut incoming = SelectAll::new();
    for (index, rule) in status.config.topics.iter().enumerate() {
        if !rule.direction.receives() {
            continue;
        }
        let options = SubscribeOptions::new(rule.qos)
            .no_local(v5)
            .retain_as_published(v5);
        let subscription = client
            .subscribe(rule.remote_filter.as_str().to_owned(), options)
            .await
            .map_err(|err| {
                format!(
                    "subscribing `{}` on the remote: {err}",
                    rule.remote_filter.as_str()
                )
            })?;
        incoming.push(subscription.map(move |message| (index, message)).boxed());
    }
    Ok(incoming)
}

/// A message from the remote for `rule`: renamed and published here, at most at the
/// rule's QoS, with the outbox as its origin (so it does not go back out).
fn inbound(
    broker: &Broker,
    status: &BridgeStatus,
    rule: &TopicRule,
    message: native_client::Message,
) {
    let Some(topic) = rule.to_local(&message.topic) else {
        return;
    };
    let mut publish = Publish::new(topic, message.payload);
    publish.qos = message.qos.min(rule.qos);
    publish.retain = message.retain;
    publish.properties = message.properties;
    let message = Message::from_publish(
        publish,
        status.outbox.client_id.clone(),
        crate::clock::now(),
    );
    if broker.bridges.looped(&message) {
        broker.bridges.count_loop(&message.origin);
        return;
    }
    broker.publish(message);
    status.messages_in.fetch_add(1, Ordering::Relaxed);
}

/// The outbox's side of one connection.
struct Outbound<'a> {
    /// Its store: a delivery that leaves the outbox for good leaves it too.
    broker: &'a Broker,
    status: &'a BridgeStatus,
    client: &'a Client,
    /// This broker in hop markers.
    node: bytestring::ByteString,
    /// The deliveries being sent, in the order of `sending`.
    waiting: VecDeque<Delivery>,
    /// Their publications, resolving in order.
    sending: FuturesOrdered<Sending>,
}

impl Outbound<'_> {
    /// Takes deliveries from the outbox while fewer than `max_inflight` are out, and
    /// hands them to the client in order.
    fn fill(&mut self) {
        let window = usize::from(self.status.config.max_inflight);
        let room = window.saturating_sub(self.waiting.len());
        if room == 0 {
            return;
        }
        // QoS 0 deliveries count against the window too: they are done once written.
        let mut taken = Vec::with_capacity(room);
        self.status.outbox.take_at_most(room, &mut taken);
        for delivery in taken {
            self.send(delivery);
        }
    }

    /// Publishes one delivery, renamed by the rule that matched it.
    fn send(&mut self, delivery: Delivery) {
        let now = crate::clock::now();
        let message = &delivery.message;
        if message.is_expired(now) {
            super::outbox::finished(self.broker, &delivery);
            return;
        }
        let rule = self
            .status
            .config
            .topics
            .iter()
            .find(|rule| rule.direction.sends() && rule.local_filter.matches(&message.topic));
        let Some(topic) = rule.and_then(|rule| rule.to_remote(&message.topic)) else {
            super::outbox::finished(self.broker, &delivery);
            return;
        };
        let mut properties = message.delivery_properties(&[], now);
        if self.status.config.protocol == BridgeProtocol::Mqttv5 {
            properties
                .user_properties
                .push((HOP_PROPERTY.into(), self.node.clone()));
        }
        let options = PublishOptions::new(delivery.qos)
            .retain(delivery.retain)
            .properties(properties);
        let client = self.client.clone();
        let payload = message.payload.clone();
        let mut sending: Sending =
            Box::pin(async move { client.publish(topic, payload, options).await });
        // Polled once now, so the client gets the publications in outbox order. The
        // answer may already be there (the client runs on another worker thread): a
        // finished future must not be polled again.
        let waker = futures::task::noop_waker();
        let mut context = std::task::Context::from_waker(&waker);
        if let std::task::Poll::Ready(result) = sending.as_mut().poll(&mut context) {
            sending = Box::pin(futures::future::ready(result));
        }
        self.waiting.push_back(delivery);
        self.sending.push_back(sending);
    }

    /// The oldest publication was answered: it leaves the outbox (and the store), or
    /// (connection lost) everything unacknowledged goes back.
    fn settle(&mut self, result: Result<PublishOutcome, Error>) -> Result<(), String> {
        let delivery = self.waiting.pop_front();
        let lost = match &result {
            Ok(_) | Err(Error::PublishRejected(_) | Error::Session(_) | Error::Topic(_)) => false,
            // A QoS 0 publication lost with a resumed connection is dropped (below).
            Err(Error::ConnectionLost) => {
                !(self.status.config.resumes_session()
                    && delivery
                        .as_ref()
                        .is_some_and(|d| d.qos == protocol::QoS::AtMostOnce))
            }
            Err(_) => true,
        };
        if let (false, Some(delivery)) = (lost, &delivery) {
            super::outbox::finished(self.broker, delivery);
        }
        match result {
            Ok(_) => {
                self.status.messages_out.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(Error::PublishRejected(code)) => {
                tracing::warn!(bridge = %self.status.config.name, %code, "the remote refused a message");
                self.status.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err @ (Error::Session(_) | Error::Topic(_))) => {
                tracing::warn!(bridge = %self.status.config.name, %err, "a message cannot be bridged");
                self.status.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(Error::ConnectionLost)
                if self.status.config.resumes_session()
                    && delivery
                        .as_ref()
                        .is_some_and(|d| d.qos == protocol::QoS::AtMostOnce) =>
            {
                // QoS 0 written into a connection that dropped: at most once, and the
                // resumed session carries on with the QoS 1/2 ones.
                self.status.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                if let Some(delivery) = delivery {
                    self.waiting.push_front(delivery);
                }
                Err(err.to_string())
            }
        }
    }

    /// Puts every unacknowledged delivery back at the front of the outbox, in order.
    fn give_back(&mut self) {
        self.sending = FuturesOrdered::new();
        let waiting = std::mem::take(&mut self.waiting);
        self.status.outbox.requeue_front(waiting.into_iter());
    }
}
