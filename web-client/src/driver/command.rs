//! Commands from the handles: publishing (at once, or into the offline queue with its
//! drop policy), subscribing and unsubscribing, requests, disconnecting.

use protocol::{
    Disconnect, ReasonCode, SubscribeProperties, Subscription as SubscriptionRequest, TopicFilter,
    TopicName, UnsubscribeProperties,
};

use super::{Command, Driver, Input, Outgoing, Waiter};
use crate::error::Error;
use crate::options::{DropPolicy, PublishOptions};
use protocol::client::DisconnectReason;

impl Driver {
    /// An input after the end: commands fail with [`Error::Closed`].
    pub(super) fn refuse(&mut self, input: Input) {
        if let Input::Command(command) = input {
            match command {
                Command::Publish(_, reply) => {
                    let _ = reply.send(Err(Error::Closed));
                }
                Command::Subscribe { reply, .. } => {
                    let _ = reply.send(Err(Error::Closed));
                }
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(Error::Closed));
                }
                Command::Disconnect { done, .. } => {
                    let _ = done.send(());
                }
                Command::Unsubscribe { .. }
                | Command::CancelRequest(_)
                | Command::DropConnection { .. } => {}
            }
        }
    }

    pub(super) fn handle_command(&mut self, command: Command) {
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
                // The request's own Response Topic (validated by `Client::request_with`),
                // else the client's.
                let own = outgoing.options.properties.response_topic.take();
                let Some(topic) = own
                    .and_then(|topic| TopicName::new(topic).ok())
                    .or_else(|| self.response_topic.clone())
                else {
                    let _ = reply.send(Err(Error::NeedsV5("request/response")));
                    return;
                };
                if let Ok(filter) = TopicFilter::new(topic.clone().into_inner()) {
                    self.subscriptions.ensure_internal(filter);
                    self.send_subscribes();
                }
                let properties = &mut outgoing.options.properties;
                properties.response_topic = Some(topic.clone().into_inner());
                properties.correlation_data = Some(correlation.clone());
                self.requests.insert(correlation.clone(), (topic, reply));
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

    pub(super) fn disconnect(&mut self, reason: ReasonCode) {
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

    pub(super) fn publish(&mut self, outgoing: Outgoing, waiter: Waiter) {
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

    pub(super) fn publish_now(&mut self, outgoing: Outgoing, waiter: Waiter) {
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
                self.in_flight.0.push_back((packet_id, outgoing, waiter));
            }
            Ok(None) => {
                if let Waiter::Publish(reply) = waiter {
                    self.qos0.push(reply);
                }
                self.transmit();
            }
        }
    }

    pub(super) fn fail(&mut self, waiter: Waiter, error: Error) {
        match waiter {
            Waiter::Publish(reply) => {
                let _ = reply.send(Err(error));
            }
            Waiter::Request(correlation) => {
                if let Some((_, reply)) = self.requests.remove(&correlation) {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }

    pub(super) fn send_subscribes(&mut self) {
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

    pub(super) fn unsubscribe(&mut self, filter: TopicFilter) {
        if !self.session.is_connected() {
            return self.subscriptions.defer_unsubscribe(filter);
        }
        let properties = UnsubscribeProperties::default();
        if let Ok(packet_id) = self.session.unsubscribe(vec![filter.clone()], properties) {
            self.subscriptions.unsubscribing(filter, packet_id);
        }
    }
}
