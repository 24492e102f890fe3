//! Between JavaScript values and the client's options and messages: reading option
//! objects field by field (a wrong type is a `TypeError` naming the field), payloads
//! from strings or bytes, and messages and errors as plain JavaScript objects.

use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use js_sys::{Array, Object, Reflect, Uint8Array};
use protocol::{PublishProperties, QoS, UserProperties};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use protocol::client::Message;

/// `object[key]`; `undefined` when `object` is not an object.
pub(super) fn get(object: &JsValue, key: &str) -> JsValue {
    if !object.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sets `object[key] = value` on an object this module made.
pub(super) fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

/// A `TypeError` naming the field.
pub(super) fn type_error(field: &str, expected: &str) -> JsValue {
    let mut text = crate::text::join("`", field);
    text.push_str("` must be ");
    text.push_str(expected);
    js_sys::TypeError::new(&text).into()
}

/// `true` for `undefined` and `null`: the field is not given.
fn absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

/// An optional number field.
pub(super) fn number(object: &JsValue, key: &str) -> Result<Option<f64>, JsValue> {
    let value = get(object, key);
    if absent(&value) {
        return Ok(None);
    }
    value
        .as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(Some)
        .ok_or_else(|| type_error(key, "a non-negative number"))
}

/// The longest duration an option may ask for: far beyond any sensible timeout, and
/// small enough that adding it to the clock cannot overflow.
const LONGEST: Duration = Duration::from_secs(u32::MAX as u64);

/// Milliseconds, the unit of MQTT.js's time options (keep alive is in seconds).
pub(super) const MS: f64 = 0.001;

/// An optional duration field given in `unit`s (1.0: seconds, 0.001: milliseconds).
pub(super) fn duration(
    object: &JsValue,
    key: &str,
    unit: f64,
) -> Result<Option<Duration>, JsValue> {
    match number(object, key)? {
        None => Ok(None),
        Some(n) => Duration::try_from_secs_f64(n * unit)
            .map(|d| Some(d.min(LONGEST)))
            .map_err(|_| type_error(key, "a duration in range")),
    }
}

/// An optional whole number field that fits `T`.
pub(super) fn integer<T: TryFrom<u64>>(object: &JsValue, key: &str) -> Result<Option<T>, JsValue> {
    match number(object, key)? {
        None => Ok(None),
        Some(n) if n.fract() == 0.0 => T::try_from(n as u64)
            .map(Some)
            .map_err(|_| type_error(key, "a whole number in range")),
        Some(_) => Err(type_error(key, "a whole number")),
    }
}

/// An optional boolean field.
pub(super) fn boolean(object: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    let value = get(object, key);
    if absent(&value) {
        return Ok(None);
    }
    value
        .as_bool()
        .map(Some)
        .ok_or_else(|| type_error(key, "a boolean"))
}

/// An optional string field.
pub(super) fn string(object: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let value = get(object, key);
    if absent(&value) {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or_else(|| type_error(key, "a string"))
}

/// An optional QoS field (0, 1 or 2).
pub(super) fn qos(object: &JsValue, key: &str) -> Result<Option<QoS>, JsValue> {
    match integer::<u8>(object, key)? {
        None => Ok(None),
        Some(n) => QoS::from_u8(n)
            .map(Some)
            .ok_or_else(|| type_error(key, "0, 1 or 2")),
    }
}

/// Bytes from a string (UTF-8), a `Uint8Array` or any other `ArrayBufferView`, or an
/// `ArrayBuffer`; `None` for `undefined` and `null`.
pub(super) fn bytes(value: &JsValue, field: &str) -> Result<Option<Bytes>, JsValue> {
    if absent(value) {
        return Ok(None);
    }
    if let Some(text) = value.as_string() {
        return Ok(Some(Bytes::from(text)));
    }
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Ok(Some(Bytes::from(array.to_vec())));
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Some(Bytes::from(Uint8Array::new(buffer).to_vec())));
    }
    if js_sys::ArrayBuffer::is_view(value) {
        let buffer = get(value, "buffer");
        let offset = get(value, "byteOffset").as_f64().unwrap_or(0.0) as u32;
        let length = get(value, "byteLength").as_f64().unwrap_or(0.0) as u32;
        if let Some(buffer) = buffer.dyn_ref::<js_sys::ArrayBuffer>() {
            let view = Uint8Array::new_with_byte_offset_and_length(buffer, offset, length);
            return Ok(Some(Bytes::from(view.to_vec())));
        }
    }
    Err(type_error(
        field,
        "a string, a Uint8Array or an ArrayBuffer",
    ))
}

/// An optional field of bytes (see [`bytes`]).
pub(super) fn bytes_field(object: &JsValue, key: &str) -> Result<Option<Bytes>, JsValue> {
    bytes(&get(object, key), key)
}

/// MQTT 5 user properties from `{ key: value }` or `[[key, value], ...]` (the second
/// keeps order and allows a key twice, as MQTT does).
pub(super) fn user_properties(object: &JsValue, key: &str) -> Result<UserProperties, JsValue> {
    let value = get(object, key);
    if absent(&value) {
        return Ok(UserProperties::new());
    }
    let pairs: Array = if Array::is_array(&value) {
        value.unchecked_into()
    } else if value.is_object() {
        Object::entries(value.unchecked_ref())
    } else {
        return Err(type_error(
            key,
            "an object or an array of [key, value] pairs",
        ));
    };
    let mut properties = UserProperties::new();
    for pair in pairs.iter() {
        let (Some(name), Some(value)) = (
            Reflect::get_u32(&pair, 0).ok().and_then(|v| v.as_string()),
            Reflect::get_u32(&pair, 1).ok().and_then(|v| v.as_string()),
        ) else {
            return Err(type_error(key, "string keys and string values"));
        };
        properties.push((ByteString::from(name), ByteString::from(value)));
    }
    Ok(properties)
}

/// MQTT 5 PUBLISH properties from `{ contentType, responseTopic, correlationData,
/// messageExpiryInterval, payloadFormatIndicator, userProperties }` (MQTT.js's names).
pub(super) fn publish_properties(object: &JsValue) -> Result<PublishProperties, JsValue> {
    let mut properties = PublishProperties::default();
    if absent(object) {
        return Ok(properties);
    }
    properties.content_type = string(object, "contentType")?.map(ByteString::from);
    properties.response_topic = string(object, "responseTopic")?.map(ByteString::from);
    properties.correlation_data = bytes_field(object, "correlationData")?;
    properties.message_expiry_interval = integer(object, "messageExpiryInterval")?;
    properties.payload_format_indicator = boolean(object, "payloadFormatIndicator")?;
    properties.user_properties = user_properties(object, "userProperties")?;
    Ok(properties)
}

/// A received message as `{ topic, payload, qos, retain, properties }`, the shape of
/// MQTT.js's packet argument.
pub(super) fn message(message: &Message) -> Object {
    let object = Object::new();
    set(&object, "topic", message.topic());
    set(&object, "payload", Uint8Array::from(&message.payload[..]));
    set(&object, "qos", message.qos as u8);
    set(&object, "retain", message.retain);
    let properties = Object::new();
    let p = &message.properties;
    if let Some(value) = &p.content_type {
        set(&properties, "contentType", &**value);
    }
    if let Some(value) = &p.response_topic {
        set(&properties, "responseTopic", &**value);
    }
    if let Some(value) = &p.correlation_data {
        set(&properties, "correlationData", Uint8Array::from(&value[..]));
    }
    if let Some(value) = p.message_expiry_interval {
        set(&properties, "messageExpiryInterval", value);
    }
    if let Some(value) = p.payload_format_indicator {
        set(&properties, "payloadFormatIndicator", value);
    }
    if !p.user_properties.is_empty() {
        let pairs = Object::new();
        for (name, value) in &p.user_properties {
            set(&pairs, name, &**value);
        }
        set(&properties, "userProperties", pairs);
    }
    if !p.subscription_identifiers.is_empty() {
        let ids: Array = p
            .subscription_identifiers
            .iter()
            .map(|id| JsValue::from(id.get()))
            .collect();
        set(&properties, "subscriptionIdentifier", ids);
    }
    set(&object, "properties", properties);
    object
}

/// An `Error` with `name` and, when the broker gave one, `reasonCode`.
pub(super) fn error(name: &str, text: &str, reason_code: Option<u8>) -> JsValue {
    let error = js_sys::Error::new(text);
    error.set_name(name);
    if let Some(code) = reason_code {
        set(&error, "reasonCode", code);
    }
    error.into()
}
