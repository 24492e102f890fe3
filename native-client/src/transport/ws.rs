//! MQTT over WebSocket (§6): the upgrade with subprotocol `mqtt`, then binary frames
//! carried as a byte stream. A frame may hold part of a packet or several; the session
//! does the framing, so this adapter only turns frames into bytes and back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::TransportError;
use crate::url::{BrokerUrl, Scheme};

/// Upgrades `stream` (TCP or TLS) to a WebSocket speaking the `mqtt` subprotocol.
pub(super) async fn handshake<S>(url: &BrokerUrl, stream: S) -> Result<WsIo<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let scheme = if url.scheme == Scheme::Wss {
        "wss"
    } else {
        "ws"
    };
    let target = format!("{scheme}://{}{}", url.authority(), url.path);
    let fail = |reason: String| TransportError::WebSocket {
        url: url.to_string(),
        reason,
    };
    let mut request = target
        .as_str()
        .into_client_request()
        .map_err(|err| fail(err.to_string()))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (inner, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|err| fail(err.to_string()))?;
    Ok(WsIo {
        inner,
        read: Bytes::new(),
    })
}

/// A WebSocket as a byte stream: each write is one binary frame.
pub(super) struct WsIo<S> {
    inner: WebSocketStream<S>,
    /// The unread rest of the last binary frame received.
    read: Bytes,
}

impl<S> std::fmt::Debug for WsIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsIo")
            .field("buffered", &self.read.len())
            .finish_non_exhaustive()
    }
}

fn ws_error(err: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(err)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.read.is_empty() {
                let n = self.read.len().min(buf.remaining());
                buf.put_slice(&self.read[..n]);
                self.read.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                // End of stream: a read of zero bytes.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => self.read = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] the server sent a text frame",
                    )));
                }
                // Pings are answered by tungstenite on the next write or flush.
                Some(Ok(_)) => {}
                Some(Err(err)) => return Poll::Ready(Err(ws_error(err))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.inner).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut self.inner)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(ws_error)
    }
}
