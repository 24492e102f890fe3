//! The browser WebSocket as a byte stream: [`Socket`] opens `new WebSocket(url,
//! "mqtt")` with `binaryType = "arraybuffer"`, hands each binary frame to the driver as
//! bytes and sends what the session gives in one frame per batch.
//!
//! MQTT over WebSocket carries packets in binary frames [MQTT-6.0.0-1], and a frame may
//! hold part of a packet or several [MQTT-6.0.0-2]: the session's receive buffer
//! reassembles them, so this layer only moves bytes. A text frame is a protocol error
//! and closes the socket.

use bytes::BytesMut;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// The WebSocket subprotocol of MQTT [MQTT-6.0.0-3].
const SUBPROTOCOL: &str = "mqtt";

/// What the socket reports to the driver.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    /// The WebSocket is open: the session's CONNECT goes out.
    Open,
    /// A binary frame.
    Data(BytesMut),
    /// The WebSocket closed (or failed to open). `error` is set when an `error` event
    /// came first.
    Closed {
        /// The close code (1006: closed abnormally, e.g. the server went away).
        code: u16,
        /// The close reason the server sent, if any.
        reason: String,
        /// Whether an error event preceded the close.
        error: bool,
    },
}

/// An open or opening WebSocket and the handlers it calls. Dropping it detaches the
/// handlers and closes the WebSocket.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut()>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("url", &self.ws.url())
            .field("ready_state", &self.ws.ready_state())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Starts opening a WebSocket to `url`; `sink` gets its events, in order, from the
    /// browser's event loop (never from inside this call).
    pub(crate) fn open(url: &str, sink: impl Fn(SocketEvent) + 'static) -> Result<Self, String> {
        let ws = WebSocket::new_with_str(url, SUBPROTOCOL).map_err(describe)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let sink = std::rc::Rc::new(sink);
        let errored = std::rc::Rc::new(std::cell::Cell::new(false));

        let on_open = {
            let sink = sink.clone();
            Closure::<dyn FnMut()>::new(move || sink(SocketEvent::Open))
        };
        let on_message = {
            let sink = sink.clone();
            let ws = ws.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                match event.data().dyn_into::<js_sys::ArrayBuffer>() {
                    Ok(buffer) => {
                        let view = js_sys::Uint8Array::new(&buffer);
                        // One copy, from JS memory straight into the buffer the session
                        // takes over.
                        let mut data = BytesMut::zeroed(view.length() as usize);
                        view.copy_to(&mut data);
                        sink(SocketEvent::Data(data));
                    }
                    // [MQTT-6.0.0-1]: a text frame closes the connection.
                    Err(_) => {
                        let _ = ws.close_with_code_and_reason(1003, "MQTT needs binary frames");
                    }
                }
            })
        };
        let on_close = {
            let sink = sink.clone();
            let errored = errored.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                sink(SocketEvent::Closed {
                    code: event.code(),
                    reason: event.reason(),
                    error: errored.get(),
                })
            })
        };
        // An `error` event carries no detail (by design, so pages cannot probe
        // networks); `close` always follows it.
        let on_error = Closure::<dyn FnMut()>::new(move || errored.set(true));

        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        })
    }

    /// Sends `bytes` as one binary frame. The browser copies them before returning.
    pub(crate) fn send(&self, bytes: &[u8]) -> Result<(), String> {
        if self.ws.ready_state() != WebSocket::OPEN {
            return Err("the WebSocket is not open".into());
        }
        self.ws.send_with_u8_array(bytes).map_err(describe)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        // Frames already passed to `send` (a final DISCONNECT) go out before the close
        // frame.
        let _ = self.ws.close_with_code(1000);
    }
}

/// A JavaScript exception as text: an `Error`'s message (a `DOMException` is one), a
/// string, or else the value as JSON. (Not `JsValue`'s `Debug`: that pulls a large
/// formatter into the JavaScript glue for a case browsers do not produce.)
pub(crate) fn describe(error: JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| error.as_string())
        .or_else(|| js_sys::JSON::stringify(&error).ok()?.as_string())
        .unwrap_or_else(|| String::from("an exception that is neither an Error nor JSON"))
}

/// Makes `url` absolute: `ws://` and `wss://` stay; `http(s)://` becomes `ws(s)://`; a
/// path (`/mqtt`) is taken on the page's host, with `wss` on an `https` page.
pub(crate) fn resolve_url(url: &str) -> Result<String, &'static str> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("ws://") || lower.starts_with("wss://") {
        return Ok(url.to_owned());
    }
    if let Some(rest) = lower.strip_prefix("http")
        && (rest.starts_with("://") || rest.starts_with("s://"))
    {
        return Ok(crate::text::join("ws", url.get(4..).unwrap_or_default()));
    }
    if url.starts_with('/') && !url.starts_with("//") {
        let location = page_location().ok_or("a path needs a page to be relative to")?;
        let (protocol, host) = location;
        let scheme = if protocol == "https:" { "wss" } else { "ws" };
        let mut absolute = crate::text::join(scheme, "://");
        absolute.push_str(&host);
        absolute.push_str(url);
        return Ok(absolute);
    }
    Err("expected ws://, wss:// or a path such as /mqtt")
}

/// `globalThis.location` (a window's or a worker's): its protocol and host.
fn page_location() -> Option<(String, String)> {
    let location = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("location")).ok()?;
    let get = |key: &str| {
        js_sys::Reflect::get(&location, &JsValue::from_str(key))
            .ok()?
            .as_string()
    };
    Some((get("protocol")?, get("host")?))
}

#[cfg(test)]
mod tests {
    use super::resolve_url;

    #[test]
    fn websocket_and_http_urls_are_accepted() {
        assert_eq!(resolve_url("ws://h:1/mqtt").as_deref(), Ok("ws://h:1/mqtt"));
        assert_eq!(resolve_url("WSS://h/mqtt").as_deref(), Ok("WSS://h/mqtt"));
        assert_eq!(resolve_url("https://h/mqtt").as_deref(), Ok("wss://h/mqtt"));
        assert_eq!(resolve_url("http://h/mqtt").as_deref(), Ok("ws://h/mqtt"));
        assert!(resolve_url("mqtt://h:1883").is_err());
        assert!(resolve_url("//h/mqtt").is_err());
    }
}
