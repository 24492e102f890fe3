//! [`Command`]: what a client's handles ask of its [`Connection`](super::Connection),
//! with [`Outgoing`], a publication on its way, and [`PublishOutcome`], how one ended.
//! The constructors check what the handles take from the application (topics, the
//! protocol version for request/response), so both clients fail the same calls the
//! same way before anything reaches the connection.

use bytes::Bytes;
use bytestring::ByteString;

use super::channels::Reply;
use super::{Channels, Error, Message, PublishOptions};
use crate::{
    PacketId, ProtocolVersion, QoS, ReasonCode, SubscriptionOptions, TopicFilter, TopicName,
};

/// How a publication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOutcome {
    /// The packet identifier of a QoS 1 or 2 message; `None` for QoS 0.
    pub packet_id: Option<PacketId>,
    /// Success (QoS 0: handed to the transport), or No matching subscribers (0x10).
    pub reason_code: ReasonCode,
}

impl PublishOutcome {
    /// A QoS 0 message whose bytes the transport took.
    pub const SENT: Self = Self {
        packet_id: None,
        reason_code: ReasonCode::Success,
    };
}

/// A publication on its way: kept until it is acknowledged, so that a QoS 1 message
/// the broker forgot (a lost session) can be published again.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where.
    pub topic: TopicName,
    /// What.
    pub payload: Bytes,
    /// How.
    pub options: PublishOptions,
}

impl Outgoing {
    /// A publication of `payload` to `topic`; fails if the topic is not a valid topic
    /// name.
    pub fn new(
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        options: impl Into<PublishOptions>,
    ) -> Result<Self, Error> {
        Ok(Self {
            topic: TopicName::new(topic)?,
            payload: payload.into(),
            options: options.into(),
        })
    }

    /// The message of an MQTT 5 request: fails on MQTT 3.x and on an invalid topic or
    /// response topic. The connection sets Response Topic (the one in `options`, else
    /// the client's) and the correlation data.
    pub fn request(
        version: ProtocolVersion,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        options: PublishOptions,
    ) -> Result<Self, Error> {
        if !version.is_v5() {
            return Err(Error::NeedsV5("request/response"));
        }
        if let Some(response_topic) = &options.properties.response_topic {
            TopicName::new(response_topic.clone())?;
        }
        Self::new(topic, payload, options)
    }

    /// The answer to `request` (a message with an MQTT 5 Response Topic): `payload` to
    /// its response topic, its correlation data echoed.
    pub fn response(
        request: &Message,
        payload: impl Into<Bytes>,
        mut options: PublishOptions,
    ) -> Result<Self, Error> {
        let topic = request.response_topic().ok_or(Error::NoResponseTopic)?;
        options.properties.correlation_data = request.correlation_data().cloned();
        Self::new(topic.to_owned(), payload, options)
    }
}

/// Fresh correlation data for a request: 16 bytes from the client's random source
/// (`random`), which two requests of one client never share in practice.
pub fn correlation_data(random: u128) -> Bytes {
    Bytes::copy_from_slice(&random.to_be_bytes())
}

/// What a client's handle asks of its [`Connection`](super::Connection).
#[derive(Debug)]
#[non_exhaustive]
pub enum Command<C: Channels> {
    /// Publish; answered at the acknowledgement (QoS 0: when the transport took it).
    Publish(Outgoing, Reply<C, PublishOutcome>),
    /// A new local subscription; answered at the SUBACK.
    Subscribe {
        /// The client's number for it.
        local: u64,
        /// The filter.
        filter: TopicFilter,
        /// Its options.
        options: SubscriptionOptions,
        /// Where its messages go.
        sender: C::Sender,
        /// The `subscribe` call.
        reply: Reply<C, QoS>,
    },
    /// A local subscription was dropped.
    Unsubscribe {
        /// The client's number for it.
        local: u64,
    },
    /// An MQTT 5 request; answered with the response.
    Request {
        /// The request message (see [`Outgoing::request`]).
        outgoing: Outgoing,
        /// Its correlation data (see [`correlation_data`]).
        correlation: Bytes,
        /// The `request` call.
        reply: Reply<C, Message>,
    },
    /// The requester stopped waiting (its timeout passed).
    CancelRequest(Bytes),
    /// Send DISCONNECT and end the client; answered when it has ended.
    Disconnect {
        /// The DISCONNECT reason code.
        reason: ReasonCode,
        /// The `disconnect` call.
        done: Reply<C, ()>,
    },
    /// Close the transport without DISCONNECT; reconnect or end.
    DropConnection {
        /// Whether to reconnect afterwards.
        reconnect: bool,
    },
}
