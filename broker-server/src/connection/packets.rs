//! What a connected client asks for: PUBLISH (route, then acknowledge), SUBSCRIBE
//! (with retained messages) and UNSUBSCRIBE.

use protocol::{AckProperties, Publish, QoS, ReasonCode, RetainHandling, Subscribe, Unsubscribe};
use tracing::{debug, info, warn};

use super::Connection;
use crate::clock;
use crate::limits::{Limit, PublishVerdict};
use crate::message::{Delivery, Message};
use crate::router::{SubEntry, SubscribeOutcome};
use crate::security::Access;
use crate::session::StoredSubscription;

impl Connection {
    /// Whether this connection's identity may do `access` on `topic`
    /// ([`crate::security`]).
    pub(super) fn may(&self, access: Access, topic: &str) -> bool {
        self.broker
            .security
            .allows(self.identity(), &self.client_id, access, topic)
    }

    /// Answers a PUBLISH the client may not make: MQTT 5 with 0x87 Not authorized in
    /// PUBACK or PUBREC (which ends a QoS 2 flow); MQTT 3.x has no negative
    /// acknowledgement, so, as mosquitto does, the flow completes normally and the
    /// message is dropped.
    fn refuse_publish(&mut self, packet_id: protocol::PacketId, qos: QoS) {
        if self.version.is_v5() {
            // Queued behind earlier acknowledgements so they leave in order.
            if let Some((packet_id, reason)) =
                self.acks
                    .push(packet_id, ReasonCode::NotAuthorized, false, None)
                && let Err(err) = self.session.ack_publish(packet_id, reason)
            {
                debug!(client_id = %self.client_id, %err, "ack failed");
            }
        } else {
            self.acknowledge(packet_id, qos, ReasonCode::Success, false, None);
        }
    }

    pub(super) fn on_publish(&mut self, publish: Publish) {
        let metrics = &self.broker.metrics;
        metrics.messages_received.at(publish.qos).inc();
        let size = publish.payload.len() as u64;
        metrics.payload_bytes_received.at(publish.qos).add(size);
        match self.budget.publish() {
            PublishVerdict::Allowed | PublishVerdict::StillThrottled => {}
            PublishVerdict::Throttled => {
                let hits = &metrics.limit_hits;
                hits.hit(Limit::PublishRate, self.meta.peer, &self.client_id);
            }
            PublishVerdict::Flood => {
                let hits = &metrics.limit_hits;
                hits.hit(Limit::PublishFlood, self.meta.peer, &self.client_id);
                self.session.disconnect(ReasonCode::MessageRateTooHigh);
                return;
            }
            PublishVerdict::Refused => return,
        }
        if !self.topic_within_limits(&publish.topic) {
            warn!(client_id = %self.client_id, "topic over max_topic_length / max_topic_levels");
            self.session.disconnect(ReasonCode::TopicNameInvalid);
            return;
        }
        if Self::is_history_query(&publish) {
            self.on_history_query(publish);
            return;
        }
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        if !self.may(Access::Publish, &publish.topic) {
            self.broker.metrics.acl_denied.publish.inc();
            info!(client_id = %self.client_id, username = ?self.identity().username, topic = %publish.topic, "PUBLISH not authorized: dropped");
            if let Some(packet_id) = packet_id.filter(|_| qos != QoS::AtMostOnce) {
                self.refuse_publish(packet_id, qos);
            }
            return;
        }
        let message = Message::from_publish(publish, self.client_id.clone(), clock::now());
        // QoS 2: the queue entries this PUBLISH makes and the record of its packet id
        // (in `acknowledge`) are one transaction. Split by a crash, the client's re-send
        // after the restart would be routed, and delivered, a second time.
        let _group = (qos == QoS::ExactlyOnce).then(|| self.broker.storage.group());
        let (routed, stored, forwarded) = self.broker.publish_stored(message);
        if let Some(packet_id) = packet_id.filter(|_| qos != QoS::AtMostOnce) {
            self.woke_others |= routed > 0;
            let reason = if routed == 0 && self.version.is_v5() {
                ReasonCode::NoMatchingSubscribers
            } else {
                ReasonCode::Success
            };
            // Sent now, or once the store (and a cluster) has what the PUBLISH changed.
            self.acknowledge(packet_id, qos, reason, stored, forwarded);
        }
    }

    pub(super) async fn on_subscribe(&mut self, subscribe: Subscribe) {
        let Some(attached) = &self.attached else {
            return;
        };
        let session = attached.session.clone();
        let broker = self.broker.clone();
        let max_subscriptions = broker.config.limits.max_subscriptions_per_client;
        let subscription_id = subscribe.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut granted = Vec::new();
        let mut retained = Vec::new();
        let now = clock::now();
        for subscription in subscribe.subscriptions {
            let filter = subscription.filter;
            let mut options = subscription.options;
            if self.bridge {
                // A 3.x bridge (mosquitto's `try_private`): its own messages are not
                // echoed back and keep their retain flag, as MQTT 5 would ask.
                options.no_local = true;
                options.retain_as_published = true;
            }
            // A shared filter's limits apply to its filter part, not `$share/{group}/`.
            if !self.topic_within_limits(filter.filter()) {
                codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            if !self.may(Access::Subscribe, filter.filter()) {
                broker.metrics.acl_denied.subscribe.inc();
                info!(client_id = %self.client_id, username = ?self.identity().username, filter = %filter, "SUBSCRIBE not authorized");
                codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            {
                let stored = session.subscriptions.lock();
                if max_subscriptions > 0
                    && stored.len() >= max_subscriptions
                    && !stored.contains_key(&filter)
                {
                    let hits = &broker.metrics.limit_hits;
                    hits.hit(Limit::Subscriptions, self.meta.peer, &self.client_id);
                    codes.push(ReasonCode::QuotaExceeded);
                    continue;
                }
            }
            let entry = SubEntry {
                session: session.clone(),
                options,
                id: subscription_id,
            };
            let outcome = broker.subscribe(&filter, entry);
            session.subscriptions.lock().insert(
                filter.clone(),
                StoredSubscription {
                    options,
                    id: subscription_id,
                },
            );
            codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            granted.push((codes.len() - 1, filter.clone()));
            // Retained messages are not sent for shared subscriptions [MQTT-3.8.4-?],
            // and per Retain Handling otherwise [MQTT-3.3.1-9] [MQTT-3.3.1-10].
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => outcome == SubscribeOutcome::New,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in broker.retained_matching(&filter, now).await {
                    let qos = message.qos.min(options.qos);
                    let ids = subscription_id.into_iter().collect();
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: ids,
                        shared_group: None,
                        stored: None,
                    });
                }
            }
        }
        // A persistent session's subscriptions are stored before SUBACK; if they
        // cannot be, they are refused (and undone).
        if !self.store_subscriptions(&session).await {
            for (index, filter) in granted {
                broker.unsubscribe(&filter, &session.client_id);
                session.subscriptions.lock().remove(&filter);
                codes[index] = ReasonCode::UnspecifiedError;
            }
            retained.clear();
        }
        if let Err(err) = self
            .session
            .suback(subscribe.packet_id, codes, AckProperties::default())
        {
            debug!(client_id = %self.client_id, %err, "SUBACK failed");
        }
        let enforce = self.enforces_receive();
        for delivery in &retained {
            self.send_delivery(delivery, now, enforce);
        }
    }

    pub(super) async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let Some(attached) = &self.attached else {
            return;
        };
        let session = attached.session.clone();
        let codes = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                let existed = self.broker.unsubscribe(filter, &session.client_id);
                session.subscriptions.lock().remove(filter);
                if existed {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                }
            })
            .collect();
        self.store_subscriptions(&session).await;
        if let Err(err) =
            self.session
                .unsuback(unsubscribe.packet_id, codes, AckProperties::default())
        {
            debug!(client_id = %self.client_id, %err, "UNSUBACK failed");
        }
    }
}
