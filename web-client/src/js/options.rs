//! The client's options from MQTT.js-style option objects: `connect`'s, `publish`'s
//! and `subscribe`'s. A field of the wrong type is a `TypeError` that names it.

use bytes::Bytes;
use protocol::{ClientOptions, ProtocolVersion, RetainHandling, TopicName, Will, WillProperties};
use wasm_bindgen::prelude::*;

use super::convert::{
    MS, boolean, bytes_field, duration, get, integer, number, publish_properties, qos, string,
    type_error, user_properties,
};
use crate::options::{
    ConnectOptions, DropPolicy, PublishOptions, ReconnectOptions, SubscribeOptions, TimerMode,
};

/// [`ConnectOptions`] from MQTT.js-style options.
pub(super) fn connect_options(url: String, o: &JsValue) -> Result<ConnectOptions, JsValue> {
    let mut options = ConnectOptions::new(url);
    let session: &mut ClientOptions = &mut options.session;
    if let Some(id) = string(o, "clientId")? {
        session.client_id = id.into();
    }
    session.version = match integer::<u8>(o, "protocolVersion")? {
        None | Some(5) => ProtocolVersion::V5,
        Some(4) => ProtocolVersion::V3_1_1,
        Some(3) => ProtocolVersion::V3_1,
        Some(_) => return Err(type_error("protocolVersion", "3, 4 or 5")),
    };
    if let Some(clean) = boolean(o, "clean")? {
        session.clean_start = clean;
    }
    if let Some(keep_alive) = duration(o, "keepalive", 1.0)? {
        session.keep_alive = keep_alive;
    }
    if let Some(username) = string(o, "username")? {
        session.username = Some(username.into());
    }
    if let Some(password) = bytes_field(o, "password")? {
        session.password = Some(password);
    }
    if let Some(token) = string(o, "token")? {
        session.password = Some(Bytes::from(token));
    }
    if let Some(timeout) = duration(o, "connectTimeout", MS)? {
        session.connect_timeout = timeout;
    }
    let will = get(o, "will");
    if will.is_object() {
        session.will = Some(will_options(&will)?);
    }
    let properties = get(o, "properties");
    let expiry = match integer(o, "sessionExpiryInterval")? {
        Some(seconds) => Some(seconds),
        None => integer(&properties, "sessionExpiryInterval")?,
    };
    if let Some(seconds) = expiry {
        session.session_expiry_interval = seconds;
    }
    if let Some(maximum) = integer::<u16>(&properties, "receiveMaximum")? {
        session.receive_maximum = std::num::NonZeroU16::new(maximum)
            .ok_or_else(|| type_error("receiveMaximum", "at least 1"))?;
    }
    if let Some(maximum) = integer::<u32>(&properties, "maximumPacketSize")? {
        session.maximum_packet_size = std::num::NonZeroU32::new(maximum);
    }
    if let Some(maximum) = integer(&properties, "topicAliasMaximum")? {
        session.topic_alias_maximum = maximum;
    }
    if let Some(request) = boolean(&properties, "requestResponseInformation")? {
        session.request_response_information = request;
    }
    session.user_properties = user_properties(&properties, "userProperties")?;

    let mut reconnect = ReconnectOptions::default();
    if let Some(period) = duration(o, "reconnectPeriod", MS)? {
        reconnect.enabled = !period.is_zero();
        reconnect.initial_delay = period;
    }
    if let Some(period) = duration(o, "maxReconnectPeriod", MS)? {
        reconnect.max_delay = period;
    }
    reconnect.max_delay = reconnect.max_delay.max(reconnect.initial_delay);
    if let Some(jitter) = number(o, "reconnectJitter")? {
        reconnect.jitter = jitter.min(1.0);
    }
    options.reconnect = reconnect;

    let queue = get(o, "offlineQueue");
    if let Some(capacity) = integer(&queue, "capacity")? {
        options.offline_queue.capacity = capacity;
    }
    if let Some(policy) = string(&queue, "policy")? {
        options.offline_queue.policy = match policy.as_str() {
            "drop-oldest" => DropPolicy::DropOldest,
            "drop-newest" => DropPolicy::DropNewest,
            "reject" => DropPolicy::Reject,
            _ => {
                return Err(type_error(
                    "offlineQueue.policy",
                    "\"drop-oldest\", \"drop-newest\" or \"reject\"",
                ));
            }
        };
    }
    options.transport = match string(o, "timer")?.as_deref() {
        None | Some("worker") => TimerMode::Worker,
        Some("main") => TimerMode::MainThread,
        Some(_) => return Err(type_error("timer", "\"worker\" or \"main\"")),
    };
    options.response_topic = string(o, "responseTopic")?;
    Ok(options)
}

fn will_options(will: &JsValue) -> Result<Will, JsValue> {
    let topic = string(will, "topic")?.ok_or_else(|| type_error("will.topic", "a string"))?;
    let topic = TopicName::new(topic)
        .map_err(|err| type_error("will.topic", &crate::text::topic_error(&err)))?;
    let properties = get(will, "properties");
    let publish = publish_properties(&properties)?;
    Ok(Will {
        topic,
        payload: bytes_field(will, "payload")?.unwrap_or_default(),
        qos: qos(will, "qos")?.unwrap_or_default(),
        retain: boolean(will, "retain")?.unwrap_or(false),
        properties: WillProperties {
            will_delay_interval: integer(&properties, "willDelayInterval")?,
            payload_format_indicator: publish.payload_format_indicator,
            message_expiry_interval: publish.message_expiry_interval,
            content_type: publish.content_type,
            response_topic: publish.response_topic,
            correlation_data: publish.correlation_data,
            user_properties: publish.user_properties,
        },
    })
}

pub(super) fn publish_options(o: &JsValue) -> Result<PublishOptions, JsValue> {
    Ok(PublishOptions {
        qos: qos(o, "qos")?.unwrap_or_default(),
        retain: boolean(o, "retain")?.unwrap_or(false),
        properties: publish_properties(&get(o, "properties"))?.into(),
    })
}

pub(super) fn subscribe_options(o: &JsValue) -> Result<SubscribeOptions, JsValue> {
    let mut options = SubscribeOptions::new(qos(o, "qos")?.unwrap_or_default());
    options.options.no_local = boolean(o, "nl")?.unwrap_or(false);
    options.options.retain_as_published = boolean(o, "rap")?.unwrap_or(false);
    options.options.retain_handling = match integer::<u8>(o, "rh")? {
        None | Some(0) => RetainHandling::SendOnSubscribe,
        Some(1) => RetainHandling::SendIfNew,
        Some(2) => RetainHandling::DoNotSend,
        Some(_) => return Err(type_error("rh", "0, 1 or 2")),
    };
    Ok(options)
}
