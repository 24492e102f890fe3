//! The driver's subscription registry: `protocol`'s sans-IO
//! [`SubscriptionRegistry`](protocol::client::SubscriptionRegistry) over tokio channels.
//! Each local [`Subscription`](crate::Subscription) reads a bounded `mpsc` channel; a
//! `subscribe` call waits on a `oneshot`.

use protocol::client::{Message, SubscriptionChannels, SubscriptionRegistry, UnknownIdRouting};
use protocol::{QoS, ReasonCode};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Reply;
use crate::error::Error;

/// Every filter of the client and every local subscription.
pub(super) type Subscriptions = SubscriptionRegistry<Channels>;

/// A message whose Subscription Identifiers name no filter held any more is matched
/// against the topic instead (this client's behaviour since its first release).
pub(super) const UNKNOWN_IDS: UnknownIdRouting = UnknownIdRouting::MatchTopic;

/// The tokio channel types behind [`Subscriptions`].
#[derive(Debug)]
pub(super) struct Channels;

impl SubscriptionChannels for Channels {
    type Sender = mpsc::Sender<Message>;
    type Waiter = Reply<QoS>;
    type Error = Error;

    fn deliver(sender: &Self::Sender, message: Message) -> bool {
        !matches!(sender.try_send(message), Err(TrySendError::Full(_)))
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
