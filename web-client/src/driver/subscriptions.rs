//! The driver's subscription registry: `protocol`'s sans-IO
//! [`SubscriptionRegistry`](protocol::client::SubscriptionRegistry) over this crate's
//! single-threaded queues. Each local [`Subscription`](crate::Subscription) reads a
//! bounded [`queue`](crate::queue); a `subscribe` call waits on a `queue::oneshot`.

use protocol::client::{Message, SubscriptionChannels, SubscriptionRegistry, UnknownIdRouting};
use protocol::{QoS, ReasonCode};

use super::Reply;
use crate::error::Error;
use crate::queue;

/// Every filter of the client and every local subscription.
pub(super) type Subscriptions = SubscriptionRegistry<Channels>;

/// Identifiers of filters no longer held (an UNSUBSCRIBE on its way) route nowhere:
/// matching the topic instead would deliver a second copy to an overlapping filter.
pub(super) const UNKNOWN_IDS: UnknownIdRouting = UnknownIdRouting::Nowhere;

/// The queue types behind [`Subscriptions`].
#[derive(Debug)]
pub(super) struct Channels;

impl SubscriptionChannels for Channels {
    type Sender = queue::Sender<Message>;
    type Waiter = Reply<QoS>;
    type Error = Error;

    fn deliver(sender: &Self::Sender, message: Message) -> bool {
        sender.push(message).is_ok()
    }

    fn answer(waiter: Self::Waiter, result: Result<QoS, Error>) {
        let _ = waiter.send(result);
    }

    fn rejected(code: ReasonCode) -> Error {
        Error::SubscribeRejected(code)
    }

    fn closed() -> Error {
        Error::Closed
    }
}
