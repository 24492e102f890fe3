//! The connection's life inside the driver: opening the transport, waiting on it (read,
//! write, timer, commands in one `select!`), closing it, and the backoff before the
//! next attempt.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use protocol::ReasonCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant as TokioInstant;
use web_time::Instant;

use super::{Command, Driver};
use crate::error::{ConnectError, Error};
use crate::transport::{self, BoxIo};
use protocol::client::{DisconnectReason, Event};

type Opening = Pin<Box<dyn Future<Output = Result<BoxIo, ConnectError>> + Send>>;

/// How long a closing connection may take to write its last bytes (a DISCONNECT).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The state of the transport.
pub(super) enum Link {
    /// No transport; the next attempt starts at `retry_at` (`None`: none planned).
    Down { retry_at: Option<TokioInstant> },
    /// Connecting (TCP, TLS, WebSocket).
    Opening(Opening),
    /// Open; the session's CONNECT has been queued.
    Up {
        reader: ReadHalf<BoxIo>,
        writer: WriteHalf<BoxIo>,
    },
}

impl Link {
    pub(super) fn is_up(&self) -> bool {
        matches!(self, Self::Up { .. })
    }
}

/// What woke the driver. Lives on the stack for one turn of the loop, so the size of
/// a command in it costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
pub(super) enum Wake {
    Command(Option<Command>),
    Read(io::Result<usize>),
    Wrote(io::Result<Written>),
    Opened(Result<BoxIo, ConnectError>),
    Timer,
}

/// What a write branch did.
pub(super) enum Written {
    Bytes(usize),
    Flushed,
}

impl Driver {
    /// Starts opening the transport.
    pub(super) fn start_opening(&mut self) {
        let url = self.url.clone();
        let tls = self.tls.clone();
        let server_name = self.options.tls.server_name.clone();
        let timeout = self.session.options().connect_timeout;
        self.link = Link::Opening(Box::pin(async move {
            let open = transport::open(&url, tls.as_ref(), server_name.as_deref());
            match tokio::time::timeout(timeout, open).await {
                Ok(result) => result.map_err(ConnectError::Transport),
                Err(_) => Err(ConnectError::Timeout(timeout)),
            }
        }));
    }

    /// Waits for the next input.
    pub(super) async fn wait(&mut self) -> Wake {
        let timer = match &self.link {
            Link::Up { .. } => self.session.poll_timeout().map(TokioInstant::from_std),
            Link::Down { retry_at } => *retry_at,
            Link::Opening(_) => None,
        };
        let Self {
            commands,
            link,
            read_buf,
            out,
            needs_flush,
            ..
        } = self;
        let (reader, writer, opening) = match link {
            Link::Up { reader, writer } => (Some(reader), Some(writer), None),
            Link::Opening(opening) => (None, None, Some(opening)),
            Link::Down { .. } => (None, None, None),
        };
        tokio::select! {
            command = commands.recv() => Wake::Command(command),
            read = read_some(reader, read_buf) => Wake::Read(read),
            wrote = write_some(writer, out, *needs_flush) => Wake::Wrote(wrote),
            opened = open_some(opening) => Wake::Opened(opened),
            () = sleep_some(timer) => Wake::Timer,
        }
    }

    /// Feeds one input to the session (or the link).
    pub(super) fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::Command(command) => self.handle_command(command),
            Wake::Read(Ok(0)) => self.session.handle_connection_lost(),
            Wake::Read(Ok(_)) => self.session.handle_bytes(&mut self.read_buf),
            Wake::Read(Err(err)) | Wake::Wrote(Err(err)) => {
                self.io_error = Some(err.to_string());
                self.session.handle_connection_lost();
            }
            Wake::Wrote(Ok(Written::Bytes(n))) => {
                self.out.advance(n);
                self.written += n as u64;
                self.needs_flush = true;
                self.resolve_written();
            }
            Wake::Wrote(Ok(Written::Flushed)) => self.needs_flush = false,
            Wake::Opened(Ok(io)) => {
                let (reader, writer) = tokio::io::split(io);
                self.link = Link::Up { reader, writer };
                self.io_error = None;
                if let Err(err) = self.session.connect(Instant::now()) {
                    self.down_reason = Some(DisconnectReason::Transport(err.to_string()));
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(ConnectError::Options(err.to_string())));
                    }
                    self.stopping = true;
                }
            }
            Wake::Opened(Err(err)) => {
                self.link = Link::Down { retry_at: None };
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(err));
                    self.finished = true;
                } else if self.stopping {
                    self.finished = true;
                } else {
                    tracing::warn!("reconnecting to {}: {err}", self.url);
                    self.schedule_retry();
                }
            }
            Wake::Timer => match self.link {
                Link::Up { .. } => self.session.handle_timeout(Instant::now()),
                Link::Down { .. } => self.start_opening(),
                Link::Opening(_) => {}
            },
        }
    }

    /// QoS 0 publications whose last byte is written are done.
    fn resolve_written(&mut self) {
        while let Some((end, _)) = self.qos0.front() {
            if *end > self.written {
                break;
            }
            if let Some((_, reply)) = self.qos0.pop_front() {
                let _ = reply.send(Ok(crate::PublishOutcome {
                    packet_id: None,
                    reason_code: ReasonCode::Success,
                }));
            }
        }
    }

    /// The session says the connection is over: write what it queued last (a
    /// DISCONNECT), close the transport, then reconnect or end.
    pub(super) async fn close_link(&mut self) {
        let link = std::mem::replace(&mut self.link, Link::Down { retry_at: None });
        if let Link::Up { reader, mut writer } = link {
            let out = std::mem::take(&mut self.out);
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                writer.write_all(&out).await?;
                writer.flush().await?;
                writer.shutdown().await
            })
            .await;
            drop(reader.unsplit(writer));
        }
        self.out.clear();
        self.needs_flush = false;
        self.written = self.queued;
        for (_, reply) in self.qos0.drain(..) {
            let _ = reply.send(Err(Error::ConnectionLost));
        }
        self.shared.connected.store(false, Ordering::Release);
        self.subscriptions.connection_lost();
        let reason = self
            .down_reason
            .take()
            .unwrap_or_else(|| DisconnectReason::Transport("connection closed".into()));
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(first_connect_error(&reason, self)));
            self.finished = true;
            return;
        }
        let taken_over = matches!(
            reason,
            DisconnectReason::Server {
                reason_code: ReasonCode::SessionTakenOver,
                ..
            }
        );
        let will_reconnect = !self.stopping && !taken_over && self.options.reconnect.enabled;
        self.emit(Event::Disconnected {
            reason,
            will_reconnect,
        });
        if will_reconnect {
            self.schedule_retry();
        } else {
            self.finished = true;
        }
    }

    /// Plans the next attempt with exponential backoff and jitter.
    fn schedule_retry(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
        let delay = self.options.reconnect.delay(self.attempt, fastrand::f64());
        self.link = Link::Down {
            retry_at: Some(TokioInstant::now() + delay),
        };
        self.emit(Event::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }
}

fn first_connect_error(reason: &DisconnectReason, driver: &Driver) -> ConnectError {
    match reason {
        DisconnectReason::Refused(code) => ConnectError::Refused {
            reason_code: *code,
            reason_string: None,
        },
        DisconnectReason::ConnectTimeout => {
            ConnectError::Timeout(driver.session.options().connect_timeout)
        }
        DisconnectReason::Server {
            reason_code,
            reason_string,
        } => ConnectError::Closed(match reason_string {
            Some(text) => format!("DISCONNECT {reason_code}: {text}"),
            None => format!("DISCONNECT {reason_code}"),
        }),
        DisconnectReason::Transport(text) | DisconnectReason::ProtocolViolation(text) => {
            ConnectError::Closed(text.clone())
        }
        other => ConnectError::Closed(format!("{other:?}")),
    }
}

async fn read_some(reader: Option<&mut ReadHalf<BoxIo>>, buf: &mut BytesMut) -> io::Result<usize> {
    match reader {
        Some(reader) => {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            reader.read_buf(buf).await
        }
        None => std::future::pending().await,
    }
}

async fn write_some(
    writer: Option<&mut WriteHalf<BoxIo>>,
    out: &BytesMut,
    needs_flush: bool,
) -> io::Result<Written> {
    match writer {
        Some(writer) if !out.is_empty() => match writer.write(out).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(Written::Bytes(n)),
        },
        Some(writer) if needs_flush => {
            writer.flush().await?;
            Ok(Written::Flushed)
        }
        _ => std::future::pending().await,
    }
}

async fn open_some(opening: Option<&mut Opening>) -> Result<BoxIo, ConnectError> {
    match opening {
        Some(opening) => opening.await,
        None => std::future::pending().await,
    }
}

async fn sleep_some(deadline: Option<TokioInstant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
