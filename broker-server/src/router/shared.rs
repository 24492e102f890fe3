//! Shared subscriptions (§4.8.2): picking the member of a `$share/{group}/{filter}` that
//! gets a message, and handing a departed member's unacknowledged messages to the rest
//! of its group.
//!
//! # Re-delivery when a member's session ends
//!
//! §4.8.2: if a member's session ends before it acknowledged a QoS 1 or 2 message the
//! group gave it, the server SHOULD send the message to another member. Without that,
//! a worker pool loses every job its crashed worker was holding.
//!
//! - Every [`Delivery`] chosen through a group carries the group's filter
//!   ([`Delivery::shared_group`]).
//! - The connection task records the shared deliveries it handed to the protocol session
//!   in a [`SharedInflight`](crate::connection::SharedInflight) (packet id → delivery) and forgets each one when the
//!   session reports its flow finished (`ServerEvent::Delivered`). While the session is
//!   detached the table is kept next to the protocol state
//!   ([`crate::session::Detached::shared_inflight`]) and taken back on resume.
//! - When the session ends ([`crate::broker::Broker::end_session`]: a clean session or
//!   expiry 0 disconnecting, a persistent session expiring, or a Clean Start replacing
//!   it), its subscriptions are removed first, then the deliveries still owed are
//!   re-routed to their group with [`Router::reroute_shared`]: those whose PUBLISH is
//!   still unacknowledged in the stored protocol state (inflight or waiting for the
//!   client's window; a QoS 2 message the client answered with PUBREC has arrived and is
//!   not sent again) and those still in the session's mailbox. Each goes to one member,
//!   picked by the configured strategy, at that member's QoS, DUP clear (it is a first
//!   delivery to that client). With no member left the message is dropped and counted.
//!
//! A persistent member that merely disconnects keeps its messages: the spec lets the
//! server wait for it to come back, and a resumed session re-sends them itself.

use std::sync::Arc;

use bytestring::ByteString;
use smallvec::SmallVec;

use super::{Router, SharedGroup, SubEntry};
use crate::message::{Delivery, Message};
use crate::session::Session;

impl SharedGroup {
    /// The delivery of `message` to `member` of this group.
    pub(super) fn delivery(&self, member: &SubEntry, message: &Arc<Message>) -> Delivery {
        Delivery {
            message: message.clone(),
            qos: message.qos.min(member.options.qos),
            retain: member.options.retain_as_published && message.retain,
            subscription_ids: member.id.into_iter().collect::<SmallVec<_>>(),
            shared_group: Some(self.filter.clone()),
            stored: None,
        }
    }

    /// Removes `client_id` from the group; `false` if it was not a member. Keeps the
    /// sticky member's index pointing at the same member when an earlier one leaves.
    pub(super) fn remove_member(&mut self, client_id: &ByteString) -> bool {
        let Some(index) = self
            .members
            .iter()
            .position(|m| m.session.client_id == *client_id)
        else {
            return false;
        };
        self.members.remove(index);
        let cursor = self.cursor.get_mut();
        if index < *cursor {
            *cursor -= 1;
        }
        true
    }
}

impl Router {
    /// Picks another member of `delivery`'s shared group for it (its session ended
    /// before acknowledging it). `None` if the delivery is not a shared one or the group
    /// has no members left.
    pub fn reroute_shared(&self, delivery: &Delivery) -> Option<(Arc<Session>, Delivery)> {
        let filter = delivery.shared_group.as_ref()?;
        let group = ByteString::from(filter.share_group()?);
        let mut shared = self.shared.write();
        let group = shared.get_mut(filter.filter(), &group)?;
        let member = group.pick(self.strategy)?;
        Some((
            member.session.clone(),
            group.delivery(member, &delivery.message),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DropPolicy;
    use crate::config::SharedStrategy;
    use crate::session::QueueLimits;
    use protocol::{QoS, SubscriptionOptions, TopicFilter};

    fn session(id: &str) -> Arc<Session> {
        let limits = QueueLimits {
            max_messages: 10,
            max_bytes: 1000,
            queue_qos0_offline: false,
            policy: DropPolicy::DropNewest,
        };
        let session = Arc::new(Session::new(id.into(), limits));
        session.set_online(true);
        session
    }

    fn entry(session: &Arc<Session>) -> SubEntry {
        SubEntry {
            session: session.clone(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            id: None,
        }
    }

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

    fn picked(router: &Router) -> ByteString {
        let mut out = Vec::new();
        router.route(&message(), &mut out);
        assert_eq!(out.len(), 1);
        out[0].0.client_id.clone()
    }

    #[test]
    fn sticky_member_stays_when_an_earlier_member_leaves() {
        let router = Router::new(SharedStrategy::Sticky);
        let filter = TopicFilter::new("$share/g/jobs/+").unwrap();
        let (a, b, c) = (session("a"), session("b"), session("c"));
        for s in [&a, &b, &c] {
            router.subscribe(&filter, entry(s));
        }
        b.set_online(false);
        a.set_online(false);
        assert_eq!(picked(&router), "c");
        a.set_online(true);
        b.set_online(true);
        assert_eq!(picked(&router), "c", "sticky while online");
        router.unsubscribe(&filter, &"a".into());
        assert_eq!(
            picked(&router),
            "c",
            "an earlier member leaving does not move it"
        );
    }

    #[test]
    fn subscription_count_counts_every_member_of_a_group() {
        let router = Router::new(SharedStrategy::RoundRobin);
        let filter = TopicFilter::new("$share/g/jobs/+").unwrap();
        let (a, b) = (session("a"), session("b"));
        router.subscribe(&filter, entry(&a));
        router.subscribe(&filter, entry(&b));
        router.subscribe(&filter, entry(&b));
        router.subscribe(&TopicFilter::new("jobs/+").unwrap(), entry(&a));
        assert_eq!(router.subscription_count(), 3);
        router.unsubscribe(&filter, &"a".into());
        router.unsubscribe(&filter, &"a".into());
        assert_eq!(router.subscription_count(), 2);
    }

    #[test]
    fn reroute_goes_to_a_remaining_member_and_keeps_the_group() {
        let router = Router::new(SharedStrategy::RoundRobin);
        let filter = TopicFilter::new("$share/g/jobs/+").unwrap();
        let (a, b) = (session("a"), session("b"));
        router.subscribe(&filter, entry(&a));
        router.subscribe(&filter, entry(&b));
        let mut out = Vec::new();
        router.route(&message(), &mut out);
        let (first, delivery) = out.pop().unwrap();
        assert_eq!(delivery.shared_group.as_ref(), Some(&filter));
        router.unsubscribe(&filter, &first.client_id);
        let (other, again) = router.reroute_shared(&delivery).unwrap();
        assert_ne!(other.client_id, first.client_id);
        assert_eq!(again.shared_group.as_ref(), Some(&filter));
        router.unsubscribe(&filter, &other.client_id);
        assert!(router.reroute_shared(&delivery).is_none(), "no member left");
    }
}
