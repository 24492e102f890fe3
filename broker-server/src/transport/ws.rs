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
//! error). Pings are answered by the WebSocket layer; a close frame from the client
//! ends the connection like a TCP close (the will is published).

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
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The largest WebSocket message the broker sends. A burst of deliveries (thousands of
/// queued messages for a subscriber that fell behind) is written as several binary
/// messages of at most this size, as MQTT over WebSocket allows: clients cap the
/// messages they accept (tungstenite at 16 MiB by default, browsers by memory), and a
/// burst must not become one huge message.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;

/// A WebSocket as the byte stream the connection driver reads and writes.
#[derive(Debug)]
pub struct WsStream {
    ws: WebSocket,
    /// The rest of the last binary frame, not yet read.
    pending: Bytes,
    /// The client closed (or broke the framing rules): reads return end of stream.
    read_closed: bool,
    /// The close code sent on shutdown: 1000, or 1002 after a text frame.
    close_code: u16,
    /// Our close frame is queued.
    close_sent: bool,
}

impl WsStream {
    /// Wraps an upgraded WebSocket.
    pub fn new(ws: WebSocket) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            read_closed: false,
            close_code: close_code::NORMAL,
            close_sent: false,
        }
    }
}

fn ws_error(err: axum::Error) -> io::Error {
    io::Error::other(err)
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
                    this.close_code = close_code::PROTOCOL;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] MQTT over WebSocket uses binary frames, got a text frame",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => {
                    this.read_closed = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(err)) => {
                    this.read_closed = true;
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            ready!(this.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
            let reason = if this.close_code == close_code::PROTOCOL {
                "MQTT needs binary frames"
            } else {
                ""
            };
            let frame = CloseFrame {
                code: this.close_code,
                reason: reason.into(),
            };
            this.ws
                .start_send_unpin(Message::Close(Some(frame)))
                .map_err(ws_error)?;
            this.close_sent = true;
        }
        this.ws.poll_close_unpin(cx).map_err(ws_error)
    }
}

/// `GET /mqtt`: checks the origin and the subprotocol, then upgrades and runs the
/// connection driver over the WebSocket.
pub fn upgrade(
    state: HttpState,
    peer: PeerInfo,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let config = &state.broker.config;
    if !state.origins.allows(headers, peer.local, peer.tls) {
        debug!(peer = %peer.addr, origin = ?headers.get(header::ORIGIN), "/mqtt refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            "this web page's origin may not open /mqtt: list it in http.allowed_origins \
             (by default only pages of the broker's own address and of localhost may)\n",
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
pub fn bearer_token(headers: &HeaderMap, cookie: Option<&str>) -> Option<Arc<str>> {
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
