//! The session's events: CONNACK (and restoring subscriptions, re-publishing what the
//! broker forgot, draining the offline queue), acknowledgements resolving publications
//! and subscriptions, messages routed to subscriptions or to a waiting request, and the
//! reasons a connection ends.

use super::{Channels, Connection, Waiter};
use crate::client::text;
use crate::client::{
    ConnectFailure, DisconnectReason, DropSource, Error, Event, Message, PublishOutcome,
};
use crate::session::{ClientEvent, LostReason};
use crate::{Publish, TopicName};

impl<C: Channels> Connection<C> {
    pub(super) fn on_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connected { connack } => {
                self.attempt = 0;
                let v5 = self.session.options().version.is_v5();
                self.use_ids =
                    v5 && connack.properties.subscription_identifiers_available != Some(false);
                if v5 && self.response_topic.is_none() {
                    let client_id = &self.session.options().client_id;
                    let topic = self.response_topic_option.clone().unwrap_or_else(|| {
                        // Not `format!`: no `core::fmt` on the browser's path.
                        let mut topic = String::from("res/");
                        topic.push_str(client_id);
                        topic
                    });
                    self.response_topic = TopicName::new(topic).ok();
                }
                self.just_connected = Some(connack.session_present);
                if let Some(ready) = self.ready.take() {
                    C::ready(ready, Ok(()));
                }
                self.emit(Event::Connected {
                    session_present: connack.session_present,
                });
            }
            ClientEvent::SessionLost { discarded } => {
                for packet_id in discarded {
                    let Some(index) = self.in_flight.iter().position(|(id, ..)| *id == packet_id)
                    else {
                        continue;
                    };
                    if let Some((_, outgoing, waiter)) = self.in_flight.remove(index) {
                        self.republish_or_fail(outgoing, waiter);
                    }
                }
            }
            ClientEvent::ConnectionRefused(connack) => {
                let code = connack.reason_code;
                if let Some(ready) = self.ready.take() {
                    let failure = ConnectFailure::Refused {
                        reason_code: code,
                        reason_string: connack.properties.reason_string.map(|s| String::from(&*s)),
                    };
                    C::ready(ready, Err(failure.into()));
                    self.stopping = true;
                }
                self.down_reason
                    .get_or_insert(DisconnectReason::Refused(code));
            }
            ClientEvent::Message(publish) => self.on_message(publish),
            ClientEvent::PublishAcked {
                packet_id,
                reason_code,
            } => {
                let Some(index) = self.in_flight.iter().position(|(id, ..)| *id == packet_id)
                else {
                    return;
                };
                let Some((_, _, waiter)) = self.in_flight.remove(index) else {
                    return;
                };
                if reason_code.is_error() {
                    return self.fail(waiter, Error::PublishRejected(reason_code));
                }
                if let Waiter::Publish(reply) = waiter {
                    let outcome = PublishOutcome {
                        packet_id: Some(packet_id),
                        reason_code,
                    };
                    C::answer(reply, Ok(outcome));
                }
            }
            ClientEvent::Subscribed(suback) => {
                // A filter refused on a resubscription has no caller to tell: the
                // application hears it as an event. Its readers keep waiting, as for a
                // filter nothing matches.
                let refused = self
                    .subscriptions
                    .on_suback(suback.packet_id, &suback.reason_codes);
                for (filter, reason_code) in refused {
                    self.emit(Event::SubscriptionRefused {
                        filter: String::from(&*filter),
                        reason_code,
                    });
                }
            }
            ClientEvent::Unsubscribed(unsuback) => {
                self.subscriptions.on_unsuback(unsuback.packet_id);
            }
            ClientEvent::Disconnected(disconnect) => {
                self.down_reason.get_or_insert(DisconnectReason::Server {
                    reason_code: disconnect.reason_code,
                    reason_string: disconnect
                        .properties
                        .reason_string
                        .map(|s| String::from(&*s)),
                });
            }
            ClientEvent::ConnectionLost(reason) => {
                let reason = match reason {
                    LostReason::ConnectTimeout => DisconnectReason::ConnectTimeout,
                    LostReason::PingTimeout => DisconnectReason::PingTimeout,
                    LostReason::ProtocolViolation(violation) => {
                        DisconnectReason::ProtocolViolation(text::violation(&violation))
                    }
                    _ => DisconnectReason::Transport(
                        self.io_error
                            .take()
                            .unwrap_or_else(|| "the broker closed the connection".into()),
                    ),
                };
                self.down_reason.get_or_insert(reason);
            }
            // Enhanced authentication (§4.12) is not offered: a broker sends AUTH only
            // to clients that asked for a method.
            _ => {}
        }
    }

    /// After CONNACK: restore subscriptions, then send what waited.
    pub(super) fn after_connect(&mut self, session_present: bool) {
        for filter in self.subscriptions.connected(session_present) {
            self.unsubscribe(filter);
        }
        self.send_subscribes();
        for (outgoing, waiter) in std::mem::take(&mut self.republish) {
            self.publish_now(outgoing, waiter);
        }
        while self.session.is_connected() {
            let Some((outgoing, waiter)) = self.offline.pop_front() else {
                break;
            };
            self.publish_now(outgoing, waiter);
        }
    }

    /// A response goes to its request when both its correlation data and its topic
    /// match the request's (see the module docs); every other message to the local
    /// subscriptions it is for.
    fn on_message(&mut self, publish: Publish) {
        let message = Message::from(publish);
        if let Some(correlation) = message.correlation_data()
            && self
                .requests
                .get(correlation)
                .is_some_and(|(topic, _)| message.topic == topic.as_str())
            && let Some((_, reply)) = self.requests.remove(correlation)
        {
            C::answer(reply, Ok(message));
            return;
        }
        for (filter, count) in self.subscriptions.route(&message, self.use_ids) {
            self.emit(Event::MessagesDropped {
                count,
                source: DropSource::Subscription {
                    filter: String::from(&*filter),
                },
            });
        }
    }
}
