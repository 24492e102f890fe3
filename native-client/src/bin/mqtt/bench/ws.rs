//! MQTT over WebSocket for the bench (§6): the upgrade with subprotocol `mqtt`, then
//! binary frames read as a byte stream (a frame may hold part of a packet or several).
//!
//! The same adapter as native-client's private `transport::ws`; the bench keeps its
//! own because the library does not export its transports (and its driver is being
//! reshaped). One write is one frame, so the bench's batched writes are few frames.

use anyhow::anyhow;
use native_client::BrokerUrl;

use super::link::Io;

#[cfg(feature = "websocket")]
pub(super) async fn handshake(url: &BrokerUrl, stream: Box<dyn Io>) -> anyhow::Result<Box<dyn Io>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let scheme = if url.scheme.is_tls() { "wss" } else { "ws" };
    let target = format!("{scheme}://{}{}", url.authority(), url.path);
    let mut request = target.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (inner, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|err| anyhow!("WebSocket handshake with {target}: {err}"))?;
    Ok(Box::new(adapter::WsIo {
        inner,
        read: bytes::Bytes::new(),
    }))
}

#[cfg(not(feature = "websocket"))]
pub(super) async fn handshake(
    _url: &BrokerUrl,
    _stream: Box<dyn Io>,
) -> anyhow::Result<Box<dyn Io>> {
    Err(anyhow!(
        "ws:// and wss:// need native-client's `websocket` feature"
    ))
}

#[cfg(feature = "websocket")]
mod adapter {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use bytes::{Buf, Bytes};
    use futures::{Sink, Stream};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;

    use super::Io;

    /// A WebSocket as a byte stream: each write is one binary frame.
    pub(super) struct WsIo {
        pub(super) inner: WebSocketStream<Box<dyn Io>>,
        /// The unread rest of the last binary frame received.
        pub(super) read: Bytes,
    }

    fn ws_error(err: tokio_tungstenite::tungstenite::Error) -> io::Error {
        io::Error::other(err)
    }

    impl AsyncRead for WsIo {
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
                    None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                    Some(Ok(Message::Binary(data))) => self.read = data,
                    Some(Ok(Message::Text(_))) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "[MQTT-6.0.0-1] the server sent a text frame",
                        )));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Poll::Ready(Err(ws_error(err))),
                }
            }
        }
    }

    impl AsyncWrite for WsIo {
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
}
