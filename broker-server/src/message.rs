//! An application message as the broker holds it: received once, shared by every
//! subscriber it is delivered to (an `Arc`, so fan-out never copies a payload).

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use protocol::{Publish, PublishProperties, PublishProps, QoS, TopicFilter, Will};
use smallvec::SmallVec;
use web_time::Instant;

/// A message accepted from a publisher (or a will, or `$SYS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name, alias already resolved.
    pub topic: ByteString,
    /// Payload, shared with the publisher's receive buffer.
    pub payload: Bytes,
    /// The QoS it was published with; deliveries get `min` of this and the subscription's.
    pub qos: QoS,
    /// The publisher's retain flag.
    pub retain: bool,
    /// Properties forwarded to subscribers (topic alias and subscription identifiers
    /// removed: those belong to one connection). Nothing is allocated when there are
    /// none, the common case.
    pub properties: PublishProps,
    /// When the Message Expiry Interval runs out; `None` means never.
    pub expires_at: Option<Instant>,
    /// Client identifier of the publisher, for No Local; empty for the broker itself.
    pub origin: ByteString,
}

impl Message {
    /// The broker's message for a client's PUBLISH received at `now`: the topic alias
    /// and Subscription Identifiers (which belong to one connection) removed, the
    /// Message Expiry Interval turned into an instant.
    pub fn from_publish(publish: Publish, origin: ByteString, now: Instant) -> Self {
        let mut properties = publish.properties;
        let expires_at = properties.get_mut().and_then(|props| {
            props.topic_alias = None;
            props.subscription_identifiers = Vec::new();
            props.message_expiry_interval.take()
        });
        let expires_at =
            expires_at.map(|secs| now + std::time::Duration::from_secs(u64::from(secs)));
        // A PUBLISH whose only properties were those leaves nothing for every delivery
        // to copy.
        properties.free_if_empty();
        Self {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
            origin,
        }
    }

    /// The message a will becomes when it is published at `now`, as from `client_id`
    /// (§3.1.2.5): the will's properties that a PUBLISH carries go with it.
    pub fn from_will(will: Will, client_id: ByteString, now: Instant) -> Self {
        let wp = will.properties;
        let properties = PublishProperties {
            payload_format_indicator: wp.payload_format_indicator,
            message_expiry_interval: wp.message_expiry_interval,
            content_type: wp.content_type,
            response_topic: wp.response_topic,
            correlation_data: wp.correlation_data,
            user_properties: wp.user_properties,
            ..PublishProperties::default()
        };
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic.into_inner(),
            packet_id: None,
            payload: will.payload,
            properties: properties.into(),
        };
        Self::from_publish(publish, client_id, now)
    }

    /// Whether the message expired at `now` (§3.3.2.3.3).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval to forward at `now`: what is left of the original,
    /// rounded up so a message never arrives with 0 seconds left unless expired.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// The properties of one delivery of this message at `now`: its own, the remaining
    /// Message Expiry Interval, and the identifiers of the subscriptions that matched.
    /// Allocates nothing when there is none of these (the common case).
    pub fn delivery_properties(
        &self,
        subscription_ids: &[NonZeroU32],
        now: Instant,
    ) -> PublishProps {
        let mut properties = self.properties.clone();
        properties.set_message_expiry_interval(self.remaining_expiry(now));
        if !subscription_ids.is_empty() {
            properties.subscription_identifiers = subscription_ids.to_vec();
        }
        properties
    }
}

/// One message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// Delivery QoS: min(publish QoS, best matching subscription QoS).
    pub qos: QoS,
    /// Retain flag as sent: set for retained messages sent on subscribe, and for
    /// forwarded messages only with Retain As Published.
    pub retain: bool,
    /// Identifiers of the matching subscriptions (MQTT 5).
    pub subscription_ids: SmallVec<[NonZeroU32; 1]>,
    /// The shared subscription (`$share/{group}/{filter}`) that chose this subscriber,
    /// so that if its session ends before the message is acknowledged the message goes
    /// to another member of the group (see [`crate::router`]). `None`: an ordinary
    /// subscription.
    pub shared_group: Option<TopicFilter>,
    /// Where this delivery is stored (a QoS 1/2 delivery to a persistent session with a
    /// durable store), so that acknowledging, dropping or expiring it deletes it there
    /// ([`crate::storage`]). `None`: held in memory only.
    pub stored: Option<crate::storage::StoredRef>,
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU16;
    use std::time::Duration;

    use super::*;

    fn message(properties: PublishProperties, expires_at: Option<Instant>) -> Message {
        Message {
            topic: "t".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: properties.into(),
            expires_at,
            origin: ByteString::new(),
        }
    }

    #[test]
    fn a_delivery_without_properties_allocates_none() {
        let now = Instant::now();
        let plain = message(PublishProperties::default(), None);
        assert!(!plain.properties.is_allocated());
        let props = plain.delivery_properties(&[], now);
        assert!(!props.is_allocated());
        assert!(props.is_empty());
    }

    #[test]
    fn a_delivery_carries_expiry_ids_and_the_messages_own_properties() {
        let now = Instant::now();
        let ids = [NonZeroU32::new(7).unwrap()];
        let expiring = message(
            PublishProperties::default(),
            Some(now + Duration::from_millis(1500)),
        );
        let props = expiring.delivery_properties(&ids, now);
        assert_eq!(props.message_expiry_interval, Some(2));
        assert_eq!(props.subscription_identifiers, ids);

        let typed = message(
            PublishProperties {
                content_type: Some("text/plain".into()),
                ..PublishProperties::default()
            },
            None,
        );
        let props = typed.delivery_properties(&[], now);
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.message_expiry_interval, None);
        assert!(props.subscription_identifiers.is_empty());
    }

    #[test]
    fn a_publish_with_only_connection_properties_leaves_the_message_unallocated() {
        let now = Instant::now();
        let mut publish = Publish::new("t", "x");
        publish.properties.topic_alias = NonZeroU16::new(1);
        publish.properties.message_expiry_interval = Some(60);
        let message = Message::from_publish(publish, ByteString::new(), now);
        assert!(!message.properties.is_allocated());
        assert_eq!(message.expires_at, Some(now + Duration::from_secs(60)));
    }
}
