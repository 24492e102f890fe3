//! MQTT over WebSocket (MQTT 5 §6, MQTT 3.1.1 §6) at the HTTP listener's `/mqtt`.
//!
//! ```text
//!  browser ─HTTP GET /mqtt, Upgrade: websocket, Sec-WebSocket-Protocol: mqtt─► upgrade()
//!      (origin checked: crate::http::origin; subprotocol negotiated)             │
//!  binary frames ◄──► WsStream (AsyncRead + AsyncWrite) ◄──► connection::serve_with
//! ```
//!
//! The WebSocket is a byte stream to the connection driver, exactly like TCP: a frame
//! may carry part of a packet or several packets, and every write of the driver (one
//! batch of packets) leaves as one binary frame. Only binary frames carry MQTT
//! [MQTT-6.0.0-1]: a text frame ends the connection with close code 1002 (protocol
//! error). Pings are answered by the WebSocket layer.
//!
//! # Closing (RFC 6455 §5.5.1, §7.4.1)
//!
//! | what ends the connection | the broker's Close frame |
//! |---|---|
//! | the client's Close frame | the same code echoed (1002 for a code not allowed on the wire), then TCP close; the will is published as after a TCP close |
//! | a text frame | 1002 |
//! | a framing violation: unmasked frame, RSV bits without an extension, reserved opcode, control frame over 125 bytes or fragmented, stray continuation | 1002 |
//! | a frame or message over the limit (`limits.max_packet_size` + 64 KiB) | 1009, refused from the frame header before buffering |
//! | a text message or close reason that is not UTF-8 | 1007 |
//! | the broker (DISCONNECT, takeover, shutdown, MQTT protocol error) | 1000 |
//! | the TCP connection breaking | none |
//!
//! The WebSocket layer (tungstenite under axum) reports violations as errors without
//! answering them; [`WsStream`] maps them to the code and sends it when the connection
//! driver shuts the stream down, flushed before the TCP connection closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::clients::{ConnectionMeta, Transport};
use crate::connection;
use crate::http::{HttpState, PeerInfo};

/// The subprotocols accepted, in order of preference: `mqtt` (MQTT 3.1.1 and 5.0
/// [MQTT-6.0.0-3]) and `mqttv3.1` (what MQTT 3.1 clients ask for).
pub(crate) const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The largest WebSocket message the broker sends. A burst of deliveries (thousands of
/// queued messages for a subscriber that fell behind) is written as several binary
/// messages of at most this size, as MQTT over WebSocket allows: clients cap the
/// messages they accept (tungstenite at 16 MiB by default, browsers by memory), and a
/// burst must not become one huge message.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;

/// A WebSocket as the byte stream the connection driver reads and writes.
#[derive(Debug)]
pub(crate) struct WsStream {
    ws: WebSocket,
    /// The rest of the last binary frame, not yet read.
    pending: Bytes,
    /// The client closed (or broke the framing rules): reads return end of stream.
    read_closed: bool,
    /// What shutdown sends: decided by how reading ended.
    farewell: Farewell,
    /// Our close frame is queued.
    close_sent: bool,
}

/// How the broker ends the WebSocket on shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Farewell {
    /// A Close frame with this code and reason: 1000, or why the connection failed.
    Close(u16, &'static str),
    /// The client sent a Close frame: the WebSocket layer queued the echo when it read
    /// it, and shutdown flushes it (sending a Close of our own is not allowed then).
    Echo,
    /// The connection broke: nothing can be sent.
    Nothing,
}

impl WsStream {
    /// Wraps an upgraded WebSocket.
    pub(crate) fn new(ws: WebSocket) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            read_closed: false,
            farewell: Farewell::Close(close_code::NORMAL, ""),
            close_sent: false,
        }
    }
}

fn ws_error(err: axum::Error) -> io::Error {
    io::Error::other(err)
}

/// What to tell a client whose frames failed with `err` (RFC 6455 §7.4.1): 1002 for a
/// broken framing rule, 1009 for a frame or message over the size limit, 1007 for text
/// that is not UTF-8; nothing when the connection itself broke.
///
/// axum wraps tungstenite's error: it is told apart by downcasting, which needs the
/// `tungstenite` version axum uses (a mismatch would fail the WebSocket tests, which
/// check the codes on the wire).
fn farewell_for(err: &axum::Error) -> Farewell {
    use tungstenite::error::{Error, ProtocolError};
    let Some(err) = std::error::Error::source(err).and_then(|e| e.downcast_ref::<Error>()) else {
        return Farewell::Nothing;
    };
    match err {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Farewell::Nothing,
        Error::Protocol(_) => Farewell::Close(close_code::PROTOCOL, "WebSocket protocol error"),
        Error::Capacity(_) => Farewell::Close(close_code::SIZE, "message too big"),
        Error::Utf8(_) => Farewell::Close(close_code::INVALID, "invalid UTF-8"),
        _ => Farewell::Nothing,
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                // Answered (pings) or ignored (pongs) by the WebSocket layer.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    this.read_closed = true;
                    this.farewell =
                        Farewell::Close(close_code::PROTOCOL, "MQTT needs binary frames");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] MQTT over WebSocket uses binary frames, got a text frame",
                    )));
                }
                Some(Ok(Message::Close(_))) => {
                    this.read_closed = true;
                    this.farewell = Farewell::Echo;
                    return Poll::Ready(Ok(()));
                }
                None => {
                    this.read_closed = true;
                    this.farewell = Farewell::Nothing;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(err)) => {
                    this.read_closed = true;
                    this.farewell = farewell_for(&err);
                    return Poll::Ready(Err(ws_error(err)));
                }
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(this.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
        let chunk = &buf[..buf.len().min(MAX_WS_MESSAGE)];
        this.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(chunk)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(chunk.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_flush_unpin(cx).map_err(ws_error)
    }

    /// Ends the WebSocket as [`Farewell`] says, flushing the Close frame to the socket
    /// before returning (the TCP connection closes when the stream is dropped).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.farewell {
            Farewell::Nothing => Poll::Ready(Ok(())),
            // Flushing writes the queued echo; the WebSocket layer then reports the
            // handshake complete, which `poll_flush` turns into success.
            Farewell::Echo => this.ws.poll_flush_unpin(cx).map_err(ws_error),
            Farewell::Close(code, reason) => {
                if !this.close_sent {
                    ready!(this.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    this.close_sent = true;
                    this.ws
                        .start_send_unpin(Message::Close(Some(frame)))
                        .map_err(ws_error)?;
                }
                this.ws.poll_close_unpin(cx).map_err(ws_error)
            }
        }
    }
}

/// `GET /mqtt`: checks the origin and the subprotocol, then upgrades and runs the
/// connection driver over the WebSocket.
pub(crate) fn upgrade(
    state: HttpState,
    peer: PeerInfo,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let config = &state.broker.config;
    if !state.origins.allows(headers) {
        debug!(peer = %peer.addr, origin = ?headers.get(header::ORIGIN), "/mqtt refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            "this web page's origin may not open /mqtt: it is not in http.allowed_origins\n",
        )
            .into_response();
    }
    let ws = ws.protocols(SUBPROTOCOLS);
    if ws.requested_protocols().next().is_some() && ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "MQTT over WebSocket needs the WebSocket subprotocol \"mqtt\" (or \"mqttv3.1\")\n",
        )
            .into_response();
    }
    // A frame may hold a whole packet and then some: the packet size limit itself is
    // enforced by the MQTT decoder.
    let limit = (config.limits.max_packet_size as usize).saturating_add(64 * 1024);
    let bearer_token = bearer_token(headers, config.auth.jwt.cookie.as_deref());
    let transport = if peer.tls {
        Transport::Wss
    } else {
        Transport::Ws
    };
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|err| debug!(%err, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let broker = state.broker.clone();
            broker.metrics.connections_total.inc();
            peer.stats.accepted.inc();
            let refused_by = broker
                .admission
                .check_rate(peer.addr, &broker.metrics.limit_hits);
            let meta = ConnectionMeta {
                peer: peer.addr,
                listener: Arc::clone(&peer.stats.listener),
                transport,
                cert_username: peer.cert_username,
                bearer_token,
                refused_by,
            };
            connection::serve_with(broker, WsStream::new(socket), meta).await;
        })
}

/// The bearer token of an upgrade request: `Authorization: Bearer <token>`, else the
/// value of the cookie named `cookie` (`auth.jwt.cookie`). Checked at CONNECT.
pub(crate) fn bearer_token(headers: &HeaderMap, cookie: Option<&str>) -> Option<Arc<str>> {
    let from_header = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
    let from_cookie = || {
        let name = cookie?;
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name && !value.is_empty()).then_some(value)
            })
    };
    from_header.or_else(from_cookie).map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_token_comes_from_the_header_then_the_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers, Some("jwt")), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; jwt=eyJ.c.d"),
        );
        assert_eq!(bearer_token(&headers, None), None);
        assert_eq!(
            bearer_token(&headers, Some("jwt")).as_deref(),
            Some("eyJ.c.d")
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer eyJ.a.b"),
        );
        assert_eq!(
            bearer_token(&headers, Some("jwt")).as_deref(),
            Some("eyJ.a.b")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers, None), None);
    }
}
