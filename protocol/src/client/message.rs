//! [`Message`]: an application message received from the broker.

use crate::{Publish, PublishProps, QoS};
use bytes::Bytes;
use bytestring::ByteString;

/// An application message a client received from the broker: what a client's
/// subscription yields, and the answer to a request. Both clients (`native-client`,
/// `web-client`) re-export it as their `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The topic it was published to (topic alias resolved).
    pub topic: ByteString,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was delivered at.
    pub qos: QoS,
    /// Whether it is a retained message sent because of a new subscription.
    pub retain: bool,
    /// MQTT 5 properties: content type, response topic, correlation data, user
    /// properties, subscription identifiers, message expiry.
    pub properties: PublishProps,
}

impl Message {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The payload as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The MQTT 5 response topic, if the sender asked for an answer.
    pub fn response_topic(&self) -> Option<&str> {
        self.properties.response_topic.as_deref()
    }

    /// The MQTT 5 correlation data.
    pub fn correlation_data(&self) -> Option<&Bytes> {
        self.properties.correlation_data.as_ref()
    }
}

impl From<Publish> for Message {
    fn from(publish: Publish) -> Self {
        Self {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: publish.properties,
        }
    }
}
