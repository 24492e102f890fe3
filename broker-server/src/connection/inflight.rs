//! Which shared-subscription deliveries a connection has handed to its protocol session
//! and the client has not acknowledged yet: connection state, kept with the session's
//! protocol state while it is detached, so that if the session ends the broker can
//! give them to the rest of their group ([`crate::router::shared`]).

use std::collections::HashMap;

use protocol::session::OutboundMessage;
use protocol::{PacketId, SessionState};

use crate::message::Delivery;

/// Shared-group deliveries handed to one client's protocol session and not yet
/// finished, by packet identifier. The map is allocated with the first one: most
/// connections never have one, and an empty map would cost every connection task 48
/// bytes instead of 8.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // on purpose: 8 bytes inline, not an empty map's 48
pub struct SharedInflight(Option<Box<HashMap<PacketId, Delivery>>>);

impl SharedInflight {
    /// Records that `delivery` went out (or was queued in the protocol session) as
    /// `packet_id`; ordinary deliveries are not recorded.
    pub fn sent(&mut self, packet_id: PacketId, delivery: &Delivery) {
        if delivery.shared_group.is_some() {
            let map = self.0.get_or_insert_with(Default::default);
            map.insert(packet_id, delivery.clone());
        }
    }

    /// The flow `packet_id` finished (PUBACK, PUBCOMP, error PUBREC, or dropped): its
    /// shared delivery, if it was one.
    pub fn finished(&mut self, packet_id: PacketId) -> Option<Delivery> {
        // Called for every finished flow; most connections record none.
        let map = self.0.as_mut()?;
        let delivery = map.remove(&packet_id);
        if map.is_empty() {
            self.0 = None;
        }
        delivery
    }

    /// Number of shared deliveries recorded.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |map| map.len())
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The recorded deliveries whose PUBLISH the client has not acknowledged according
    /// to `state` (the session's stored protocol state), in sending order.
    pub fn unacknowledged(self, state: &SessionState) -> Vec<Delivery> {
        let Some(mut map) = self.0 else {
            return Vec::new();
        };
        state
            .outbound
            .iter()
            .filter_map(|message| match message {
                OutboundMessage::Publish(publish) => map.remove(&publish.packet_id?),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use protocol::{Publish, QoS, TopicFilter};
    use smallvec::SmallVec;

    use super::*;
    use crate::message::Message;

    fn message() -> Arc<Message> {
        Arc::new(Message {
            topic: "jobs/1".into(),
            payload: "p".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: "".into(),
        })
    }

    #[test]
    fn unacknowledged_follows_the_stored_state() {
        let mut inflight = SharedInflight::default();
        let mut delivery = Delivery {
            message: message(),
            qos: QoS::ExactlyOnce,
            retain: false,
            subscription_ids: SmallVec::new(),
            shared_group: Some(TopicFilter::new("$share/g/jobs/+").unwrap()),
            stored: None,
        };
        let id = |n| PacketId::new(n).unwrap();
        inflight.sent(id(1), &delivery);
        inflight.sent(id(2), &delivery);
        inflight.sent(id(3), &delivery);
        inflight.sent(id(4), &delivery);
        inflight.finished(id(4));
        delivery.shared_group = None;
        inflight.sent(id(5), &delivery);
        assert_eq!(inflight.len(), 3);
        let publish = |n| {
            let mut p = Publish::new("jobs/1", "p");
            p.qos = QoS::ExactlyOnce;
            p.packet_id = Some(id(n));
            OutboundMessage::Publish(p)
        };
        let state = SessionState {
            // 2 was PUBREC'd (arrived); 1 and 3 were not acknowledged.
            outbound: vec![publish(3), OutboundMessage::Release(id(2)), publish(1)],
            ..SessionState::default()
        };
        assert_eq!(inflight.unacknowledged(&state).len(), 2);
    }
}
