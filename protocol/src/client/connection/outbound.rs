//! Commands from the handles: publishing (at once, or into the offline queue with its
//! drop policy), subscribing and unsubscribing, requests, disconnecting.

use super::{Channels, Connection, Waiter};
use crate::client::{Command, DisconnectReason, DropPolicy, Error, Outgoing, PublishOptions};
use crate::{
    Disconnect, ReasonCode, SubscribeProperties, Subscription, TopicFilter, TopicName,
    UnsubscribeProperties,
};

impl<C: Channels> Connection<C> {
    /// A command from a handle. After the end it fails with [`Error::Closed`].
    pub fn handle_command(&mut self, command: Command<C>) {
        if self.finished {
            return Self::refuse(command);
        }
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
                // The request's own Response Topic (checked by `Outgoing::request`),
                // else the client's.
                let own = outgoing.options.properties.response_topic.take();
                let Some(topic) = own
                    .and_then(|topic| TopicName::new(topic).ok())
                    .or_else(|| self.response_topic.clone())
                else {
                    return C::answer(reply, Err(Error::NeedsV5("request/response")));
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
                if matches!(self.link, super::Link::Up) {
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
        if matches!(self.link, super::Link::Up) && self.session.is_open() {
            self.down_reason.get_or_insert(DisconnectReason::Local);
            if self.session.disconnect(Disconnect::new(reason)).is_err() {
                self.session.handle_connection_lost();
            }
        } else {
            self.finished = true;
        }
    }

    fn publish(&mut self, outgoing: Outgoing, waiter: Waiter<C>) {
        if self.session.is_connected() {
            return self.publish_now(outgoing, waiter);
        }
        let queue = self.offline_queue;
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

    pub(super) fn publish_now(&mut self, outgoing: Outgoing, waiter: Waiter<C>) {
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
            Ok(Some(packet_id)) => self.in_flight.push_back((packet_id, outgoing, waiter)),
            Ok(None) => {
                if let Waiter::Publish(reply) = waiter {
                    self.qos0_unsent.push(reply);
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
            let request = Subscription {
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
