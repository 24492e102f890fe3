//! The JavaScript API: [`MqttClient`], close to MQTT.js, over the same [`Client`].
//!
//! ```js
//! import init, { MqttClient } from "./pkg/web_client.js";
//! await init();
//! const client = await MqttClient.connect("wss://broker.example/mqtt", {
//!   clientId: "ui-1", keepalive: 30, sessionExpiryInterval: 3600,
//!   offlineQueue: { capacity: 100, policy: "drop-oldest" },
//! });
//! client.on("reconnect", ({ attempt, delay }) => console.log("retry", attempt, delay));
//! const sub = await client.subscribe("iot/5/+/$state", { qos: 1 }, (topic, payload) =>
//!   console.log(topic, new TextDecoder().decode(payload)));
//! await client.publish("iot/5/th-1/climate/setpoint/set", "22", { qos: 1 });
//! sub.unsubscribe();
//! await client.end();
//! ```
//!
//! Where MQTT.js and this API differ, it is on purpose:
//!
//! - `connect` is a static async function that resolves once the broker accepted the
//!   connection (or rejects with the reason), instead of a client that emits `connect`
//!   later; `on("connect")` still reports every reconnection.
//! - `subscribe` takes the message handler of that subscription and resolves to an
//!   [`MqttSubscription`] handle; without a handler, messages go to `on("message")`.
//! - `publish` resolves when the message is acknowledged (QoS 1 and 2) or handed to
//!   the WebSocket (QoS 0), and rejects with `reasonCode` when the broker refused it.
//! - Events `drop` (messages dropped by the offline queue or a slow subscription) and
//!   `disconnect` (an MQTT 5 DISCONNECT from the broker) carry details as one object.
//! - Reconnecting backs off exponentially with jitter (`reconnectPeriod` is the first
//!   delay, `maxReconnectPeriod` the longest), and the offline queue is bounded.
//! - Like a WebSocket, a client lives until `end()`: dropping every reference to it
//!   does not close the connection.
//!
//! - this module: [`MqttClient`], [`MqttSubscription`], events and message delivery.
//! - `options`: the client's options from MQTT.js-style option objects.
//! - `convert`: JavaScript values to and from payloads, properties, messages, errors.
//! - `types`: the TypeScript declarations wasm-bindgen cannot derive; with the
//!   signatures here they make `web_client.d.ts`.

mod convert;
mod options;
mod types;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::StreamExt;
use js_sys::{Function, Object, Promise};
use protocol::{QoS, ReasonCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};

use crate::client::{Client, Subscription};
use crate::error::{ConnectError, Error};
use crate::options::TimerMode;
use crate::text;
use convert::{MS, bytes, bytes_field, duration, error, get, qos, set, string};
use options::{connect_options, publish_options, subscribe_options};
use protocol::client::PublishOutcome;
use protocol::client::SmallMap;
use protocol::client::{DisconnectReason, DropSource, Event};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(value: &JsValue);
}

/// Handlers by event name.
type Listeners = Rc<RefCell<SmallMap<String, Vec<Function>>>>;

/// The live JavaScript subscriptions of a client: filter and stop signal.
type Registry = Rc<RefCell<Vec<(String, Rc<Stop>)>>>;

/// An MQTT client for web pages, over the browser's WebSocket. See the module docs.
#[wasm_bindgen]
#[derive(Debug)]
pub struct MqttClient {
    client: Client,
    listeners: Listeners,
    /// The live JavaScript subscriptions, for `unsubscribe(filter)`.
    subscriptions: Registry,
}

#[wasm_bindgen]
impl MqttClient {
    /// Connects to `url` (`ws://`, `wss://`, or a path such as `/mqtt` on the page's
    /// host) and resolves once the broker accepted the connection.
    pub async fn connect(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttConnectOptions")] options: JsValue,
    ) -> Result<MqttClient, JsValue> {
        let options = connect_options(url, &options)?;
        let client = Client::connect(options).await.map_err(|err| {
            error(
                "MqttConnectError",
                &text::connect_error(&err),
                connect_code(&err),
            )
        })?;
        let listeners = Listeners::default();
        spawn_local(dispatch_events(client.clone(), listeners.clone()));
        Ok(Self {
            client,
            listeners,
            subscriptions: Rc::default(),
        })
    }

    /// Adds a handler for `event`: `connect`, `close`, `disconnect`, `reconnect`,
    /// `error`, `drop`, `message` or `end`. (Typed by the `MqttClient` interface in the
    /// custom section, which can say which handler goes with which event.)
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: String, handler: Function) {
        self.listeners
            .borrow_mut()
            .get_or_insert_with(event, Vec::new)
            .push(handler);
    }

    /// Removes a handler added with `on`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: String, handler: Function) {
        if let Some(handlers) = self.listeners.borrow_mut().get_mut(&event) {
            handlers.retain(|h| h != &handler);
        }
    }

    /// Publishes `payload` to `topic`; resolves when QoS 1 and 2 messages are
    /// acknowledged and QoS 0 ones handed to the WebSocket. While offline, messages wait
    /// in the offline queue.
    #[wasm_bindgen(unchecked_return_type = "Promise<MqttPublishResult>")]
    pub fn publish(
        &self,
        topic: String,
        #[wasm_bindgen(unchecked_param_type = "MqttPayload")] payload: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttPublishOptions")] options: JsValue,
    ) -> Promise {
        let client = self.client.clone();
        let prepared = bytes(&payload, "payload")
            .and_then(|payload| Ok((payload.unwrap_or_default(), publish_options(&options)?)));
        promise(async move {
            let (payload, options) = prepared?;
            let outcome = client
                .publish(topic, payload, options)
                .await
                .map_err(js_error)?;
            let result = Object::new();
            if let Some(id) = outcome.packet_id {
                set(&result, "packetId", id.get());
            }
            set(&result, "reasonCode", outcome.reason_code as u8);
            Ok(result.into())
        })
    }

    /// Subscribes to `filter`; resolves once the broker granted it. `handler` gets the
    /// matching messages; without it they go to `on("message")` handlers.
    #[wasm_bindgen(unchecked_return_type = "Promise<MqttSubscription>")]
    pub fn subscribe(
        &self,
        filter: String,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttSubscribeOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttMessageHandler")] handler: Option<
            Function,
        >,
    ) -> Promise {
        let client = self.client.clone();
        let listeners = self.listeners.clone();
        let registry = self.subscriptions.clone();
        let options = subscribe_options(&options);
        promise(async move {
            let subscription = client
                .subscribe(filter.clone(), options?)
                .await
                .map_err(js_error)?;
            let granted = subscription.granted_qos() as u8;
            let stop = Rc::new(Stop::default());
            registry.borrow_mut().push((filter.clone(), stop.clone()));
            spawn_local(deliver(
                subscription,
                handler,
                listeners,
                stop.clone(),
                registry,
            ));
            Ok(MqttSubscription {
                filter,
                granted,
                stop,
            }
            .into())
        })
    }

    /// Ends every subscription of this client to `filter` (UNSUBSCRIBE is sent once
    /// none is left).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unsubscribe(&self, filter: String) -> Promise {
        for (_, stop) in self
            .subscriptions
            .borrow()
            .iter()
            .filter(|(f, _)| *f == filter)
        {
            stop.stop();
        }
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// MQTT 5 request/response: publishes with a response topic (`properties.responseTopic`,
    /// else the client's) and fresh correlation data and resolves to the response (or
    /// rejects after `timeout` ms, default 30 s).
    #[wasm_bindgen(unchecked_return_type = "Promise<MqttMessage>")]
    pub fn request(
        &self,
        topic: String,
        #[wasm_bindgen(unchecked_param_type = "MqttPayload")] payload: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttRequestOptions")] options: JsValue,
    ) -> Promise {
        let client = self.client.clone();
        let prepared = bytes(&payload, "payload").and_then(|payload| {
            let mut publish = publish_options(&options)?;
            if qos(&options, "qos")?.is_none() {
                publish.qos = QoS::AtLeastOnce;
            }
            let timeout = duration(&options, "timeout", MS)?.unwrap_or(Duration::from_secs(30));
            Ok((payload.unwrap_or_default(), publish, timeout))
        });
        promise(async move {
            let (payload, options, timeout) = prepared?;
            let response = client
                .request_with(topic, payload, options, timeout)
                .await
                .map_err(js_error)?;
            Ok(convert::message(&response).into())
        })
    }

    /// Answers `request` (a message with a response topic) on its response topic, with
    /// its correlation data.
    #[wasm_bindgen(unchecked_return_type = "Promise<MqttPublishResult>")]
    pub fn respond(
        &self,
        #[wasm_bindgen(unchecked_param_type = "MqttMessage")] request: JsValue,
        #[wasm_bindgen(unchecked_param_type = "MqttPayload")] payload: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "MqttPublishOptions")] options: JsValue,
    ) -> Promise {
        let client = self.client.clone();
        let prepared = (|| {
            let properties = get(&request, "properties");
            let topic = string(&properties, "responseTopic")?
                .ok_or_else(|| js_error(Error::NoResponseTopic))?;
            let mut options = publish_options(&options)?;
            options.properties.correlation_data = bytes_field(&properties, "correlationData")?;
            let payload = bytes(&payload, "payload")?.unwrap_or_default();
            Ok::<_, JsValue>((topic, payload, options))
        })();
        promise(async move {
            let (topic, payload, options) = prepared?;
            let outcome = client
                .publish(topic, payload, options)
                .await
                .map_err(js_error)?;
            Ok(publish_result(outcome))
        })
    }

    /// Sends DISCONNECT (with `reason`, an MQTT 5 reason code, default 0) and closes;
    /// with `force`, closes the WebSocket without DISCONNECT (the broker then
    /// publishes the will). Resolves once closed. The client cannot be used afterwards.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn end(&self, force: Option<bool>, reason: Option<u8>) -> Promise {
        let client = self.client.clone();
        if force == Some(true) {
            client.abort();
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let reason = reason
            .and_then(ReasonCode::from_u8)
            .unwrap_or(ReasonCode::Success);
        promise(async move {
            client.disconnect(reason).await.map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the WebSocket without DISCONNECT, as a network failure would, and
    /// reconnects per the options (to try reconnection and offline queueing).
    #[wasm_bindgen(js_name = dropConnection)]
    pub fn drop_connection(&self) {
        self.client.drop_connection();
    }

    /// Whether a connection is established.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The client identifier (the broker's, if it assigned one).
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.client.client_id()
    }

    /// Where the timers run: `"worker"` or `"main"`.
    #[wasm_bindgen(getter, js_name = timerMode, unchecked_return_type = "\"worker\" | \"main\"")]
    pub fn timer_mode(&self) -> String {
        match self.client.timer_mode() {
            TimerMode::Worker => "worker".into(),
            _ => "main".into(),
        }
    }
}

/// One subscription made with [`MqttClient::subscribe`].
#[wasm_bindgen]
#[derive(Debug)]
pub struct MqttSubscription {
    filter: String,
    granted: u8,
    stop: Rc<Stop>,
}

#[wasm_bindgen]
impl MqttSubscription {
    /// The topic filter.
    #[wasm_bindgen(getter)]
    pub fn filter(&self) -> String {
        self.filter.clone()
    }

    /// The QoS the broker granted.
    #[wasm_bindgen(getter)]
    pub fn qos(&self) -> u8 {
        self.granted
    }

    /// Stops delivering messages and unsubscribes (unless another subscription of the
    /// client uses the same filter).
    pub fn unsubscribe(&self) {
        self.stop.stop();
    }
}

/// Tells a delivery task to end.
#[derive(Debug, Default)]
struct Stop {
    stopped: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Stop {
    fn stop(&self) {
        self.stopped.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.stopped.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A `Promise` of `future`. One boxed future type for every method: each distinct
/// future type given to `future_to_promise` would add its own copy of the glue.
fn promise(
    future: impl std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
) -> Promise {
    let future: std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue, JsValue>>>> =
        Box::pin(future);
    future_to_promise(future)
}

/// Calls `handler(args...)`; a handler that throws is reported on the console and does
/// not stop the others.
fn call(handler: &Function, args: &[JsValue]) {
    let result = match args {
        [] => handler.call0(&JsValue::UNDEFINED),
        [a] => handler.call1(&JsValue::UNDEFINED, a),
        [a, b] => handler.call2(&JsValue::UNDEFINED, a, b),
        [a, b, c, ..] => handler.call3(&JsValue::UNDEFINED, a, b, c),
    };
    if let Err(err) = result {
        console_error(&err);
    }
}

/// Calls every handler of `event`.
fn emit(listeners: &Listeners, event: &str, args: &[JsValue]) {
    // A copy: handlers may add or remove handlers.
    let handlers = listeners.borrow().get(event).cloned().unwrap_or_default();
    for handler in &handlers {
        call(handler, args);
    }
}

/// Hands the messages of one subscription to its handler until it is stopped or the
/// client ends; dropping the subscription then unsubscribes.
async fn deliver(
    mut subscription: Subscription,
    handler: Option<Function>,
    listeners: Listeners,
    stop: Rc<Stop>,
    registry: Registry,
) {
    loop {
        let next = protocol::client::handle::first(subscription.next(), stop.wait()).await;
        let Some(Some(message)) = next else {
            break;
        };
        let packet = convert::message(&message);
        let topic = JsValue::from_str(message.topic());
        let payload = js_sys::Reflect::get(&packet, &"payload".into()).unwrap_or_default();
        let args = [topic, payload, packet.into()];
        match &handler {
            Some(handler) => call(handler, &args),
            None => emit(&listeners, "message", &args),
        }
    }
    registry.borrow_mut().retain(|(_, s)| !Rc::ptr_eq(s, &stop));
    drop(subscription);
}

/// Turns the client's events into `on(...)` callbacks, until the client ends.
///
/// The task holds a handle: like a WebSocket, the connection lives until `end()` is
/// called, whether or not the page keeps a reference to its `MqttClient` (a client
/// that only feeds message handlers would otherwise vanish with the garbage collector).
async fn dispatch_events(client: Client, listeners: Listeners) {
    let mut events = client.events();
    while let Some(event) = events.recv().await {
        let detail = Object::new();
        let name = match event {
            Event::Connected { session_present } => {
                set(&detail, "sessionPresent", session_present);
                "connect"
            }
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                if let DisconnectReason::Server {
                    reason_code,
                    reason_string,
                } = &reason
                {
                    let server = Object::new();
                    set(&server, "reasonCode", *reason_code as u8);
                    if let Some(text) = reason_string {
                        set(&server, "reasonString", text.as_str());
                    }
                    emit(&listeners, "disconnect", &[server.into()]);
                }
                if matches!(
                    reason,
                    DisconnectReason::Refused(_) | DisconnectReason::ProtocolViolation(_)
                ) {
                    let code = match reason {
                        DisconnectReason::Refused(code) => Some(code as u8),
                        _ => None,
                    };
                    emit(
                        &listeners,
                        "error",
                        &[error("MqttError", &text::disconnect_reason(&reason), code)],
                    );
                }
                set(&detail, "reason", text::disconnect_reason(&reason));
                set(&detail, "willReconnect", will_reconnect);
                "close"
            }
            Event::Reconnecting { attempt, delay } => {
                set(&detail, "attempt", attempt);
                set(&detail, "delay", delay.as_millis() as f64);
                "reconnect"
            }
            Event::MessagesDropped { count, source } => {
                set(&detail, "count", count as f64);
                match source {
                    DropSource::OfflineQueue => set(&detail, "source", "offline-queue"),
                    DropSource::Subscription { filter } => {
                        set(&detail, "source", "subscription");
                        set(&detail, "filter", filter);
                    }
                    // `DropSource` is `#[non_exhaustive]` (it lives in `protocol`): a
                    // source added later is reported without one.
                    _ => {}
                }
                "drop"
            }
            // `Event` is `#[non_exhaustive]`: an event added later has no JavaScript
            // name yet and is not dispatched.
            _ => continue,
        };
        emit(&listeners, name, &[detail.into()]);
    }
    drop(client);
    emit(&listeners, "end", &[]);
}

/// `{ packetId, reasonCode }`.
fn publish_result(outcome: PublishOutcome) -> JsValue {
    let result = Object::new();
    if let Some(id) = outcome.packet_id {
        set(&result, "packetId", id.get());
    }
    set(&result, "reasonCode", outcome.reason_code as u8);
    result.into()
}

/// An `Error` for a failed operation, with `reasonCode` when the broker gave one.
fn js_error(err: Error) -> JsValue {
    let code = match &err {
        Error::PublishRejected(code) | Error::SubscribeRejected(code) => Some(*code as u8),
        _ => None,
    };
    error("MqttError", &text::error(&err), code)
}

fn connect_code(err: &ConnectError) -> Option<u8> {
    err.reason_code().map(|code| code as u8)
}
