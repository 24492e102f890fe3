//! The transport inside the driver: opening it, waiting on it (read, write, timer,
//! commands in one `select!`), and closing it. When to open, close and retry is the
//! [`Connection`](protocol::client::Connection)'s decision.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant as TokioInstant;

use super::{Command, Driver};
use crate::transport::{self, BoxIo, TransportError};

type Opening = Pin<Box<dyn Future<Output = Result<BoxIo, TransportError>> + Send>>;

/// How long a closing connection may take to write its last bytes (a DISCONNECT).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The state of the transport.
pub(super) enum Link {
    /// No transport.
    Down,
    /// Connecting (TCP, TLS, WebSocket); the connection's timer bounds it.
    Opening(Opening),
    /// Open.
    Up {
        reader: ReadHalf<BoxIo>,
        writer: WriteHalf<BoxIo>,
    },
}

/// What woke the driver. Lives on the stack for one turn of the loop, so the size of
/// a command in it costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
pub(super) enum Wake {
    Command(Option<Command>),
    Read(io::Result<usize>),
    Wrote(io::Result<Written>),
    Opened(Result<BoxIo, TransportError>),
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
        let server_name = self.server_name.clone();
        self.link = Link::Opening(Box::pin(async move {
            transport::open(&url, tls.as_ref(), server_name.as_deref()).await
        }));
    }

    /// Waits for the next input.
    pub(super) async fn wait(&mut self) -> Wake {
        let timer = self.connection.poll_timeout().map(TokioInstant::from_std);
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
            Link::Down => (None, None, None),
        };
        tokio::select! {
            command = commands.recv() => Wake::Command(command),
            read = read_some(reader, read_buf) => Wake::Read(read),
            wrote = write_some(writer, out, *needs_flush) => Wake::Wrote(wrote),
            opened = open_some(opening) => Wake::Opened(opened),
            () = sleep_some(timer) => Wake::Timer,
        }
    }

    /// The connection is over: write what it gave last (a DISCONNECT), then close the
    /// transport, or abandon the opening.
    pub(super) async fn close_link(&mut self) {
        let link = std::mem::replace(&mut self.link, Link::Down);
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

async fn open_some(opening: Option<&mut Opening>) -> Result<BoxIo, TransportError> {
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
