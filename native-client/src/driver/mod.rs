//! The driver task: the one place that owns the transport and the sans-IO
//! [`Connection`] of `protocol::client` (the behaviour both clients share), and the
//! only code here that awaits on IO.
//!
//! ```text
//!  Client handles ──Command──► ┌──────────── driver task ────────────┐
//!  (mpsc, any number)          │ Connection (protocol::client):      │ ◄── read ── socket
//!                              │ session, subscriptions, offline     │ ─── write ─► (one buffer:
//!  Subscription streams ◄───── │ queue, requests, reconnect backoff  │      everything poll gave,
//!  events (broadcast)  ◄────── │ one timer: poll_timeout             │      written together)
//!                              └─────────────────────────────────────┘
//! ```
//!
//! Each turn of the loop follows the connection's driving contract (see
//! [`protocol::client::connection`]): after any input (bytes, a command, the timer, the
//! transport opening) [`Driver::settle`] polls the connection until it is drained,
//! opening or closing the transport as it asks, then the events go out and the loop
//! waits for the next input. Reading and writing are separate `select!` branches, so
//! a broker that floods us never stops us from writing, nor the reverse.
//!
//! - `link`: the transport and waiting on it (read, write, timer, commands, opening).
//! - this module: the tokio [`Channels`], the loop, and handing inputs over.

mod link;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use protocol::client::{Channels, Connection, Event, LinkAction, Message};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use web_time::Instant;

use crate::client::Shared;
use crate::error::ConnectError;
use crate::options::ConnectOptions;
use crate::url::BrokerUrl;
use link::{Link, Wake, Written};

/// The tokio channel types behind the [`Connection`]: each local
/// [`Subscription`](crate::Subscription) reads a bounded `mpsc` channel; every call
/// waits on a `oneshot`.
#[derive(Debug)]
pub(crate) struct Tokio;

impl Channels for Tokio {
    type Sender = mpsc::Sender<Message>;
    type Oneshot<T: std::fmt::Debug> = oneshot::Sender<T>;
    type ConnectError = ConnectError;

    fn deliver(sender: &Self::Sender, message: Message) -> bool {
        !matches!(sender.try_send(message), Err(TrySendError::Full(_)))
    }

    fn send_once<T: std::fmt::Debug>(oneshot: oneshot::Sender<T>, value: T) {
        let _ = oneshot.send(value);
    }
}

/// What a [`Client`](crate::Client) asks of the driver.
pub(crate) type Command = protocol::client::Command<Tokio>;

/// The driver: see the module docs.
pub(crate) struct Driver {
    connection: Connection<Tokio>,
    url: BrokerUrl,
    /// The rustls configuration for `mqtts://` and `wss://`, built once.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the server's certificate is checked against, if not the URL's host.
    server_name: Option<String>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    link: Link,
    /// Bytes read, handed to the connection (which swaps in an empty buffer).
    read_buf: BytesMut,
    /// Bytes to write: everything `poll` gave and the socket did not take yet.
    out: BytesMut,
    /// Bytes went out since the last flush (TLS and WebSocket buffer).
    needs_flush: bool,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("url", &self.url)
            .field("connected", &self.connection.is_connected())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `options`, not started, with the channel its handles use.
    pub(crate) fn new(
        mut options: ConnectOptions,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        ready: oneshot::Sender<Result<(), ConnectError>>,
    ) -> Result<Self, ConnectError> {
        let url: BrokerUrl = options.url.parse()?;
        if options.session.username.is_none()
            && let Some(username) = &url.username
        {
            options.session.username = Some(username.as_str().into());
            options.session.password = url.password.clone().map(Bytes::from);
        }
        let tls = if url.scheme.is_tls() {
            Some(options.transport.client_config()?)
        } else {
            None
        };
        Ok(Self {
            connection: Connection::new(&options, ready, fastrand::u64(..)),
            url,
            tls,
            server_name: options.transport.server_name.clone(),
            shared,
            commands,
            link: Link::Down,
            read_buf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            needs_flush: false,
        })
    }

    /// Runs until the client ends.
    pub(crate) async fn run(mut self) {
        self.connection.start(Instant::now());
        loop {
            self.settle().await;
            self.publish_status();
            if self.connection.is_finished() {
                break;
            }
            let wake = self.wait().await;
            self.handle(wake);
        }
        self.link = Link::Down;
        self.shared.connected.store(false, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
    }

    /// Polls the connection until it is drained, opening and closing the transport as
    /// it asks.
    async fn settle(&mut self) {
        loop {
            match self.connection.poll(Instant::now(), &mut self.out) {
                Some(LinkAction::Open) => self.start_opening(),
                Some(LinkAction::Close) => self.close_link().await,
                Some(_) => {}
                None => break,
            }
        }
    }

    /// Copies the connection state to the handles and delivers the events.
    fn publish_status(&mut self) {
        let connected = self.connection.is_connected();
        self.shared.connected.store(connected, Ordering::Release);
        if connected {
            let id = &self.connection.options().client_id;
            let mut client_id = self
                .shared
                .client_id
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if client_id.as_str() != &**id {
                *client_id = id.to_string();
            }
        }
        while let Some(event) = self.connection.poll_event() {
            if let Event::SubscriptionRefused {
                filter,
                reason_code,
            } = &event
            {
                tracing::warn!(
                    "the broker refused to restore subscription {filter}: {reason_code}"
                );
            }
            let _ = self.shared.events.send(event);
        }
    }

    /// Feeds one input to the connection (or the link).
    fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::Command(Some(command)) => self.connection.handle_command(command),
            // Every `Client` is gone: end the session politely.
            Wake::Command(None) => self.connection.handle_handles_dropped(),
            Wake::Read(Ok(0)) => self.connection.handle_connection_lost(None),
            Wake::Read(Ok(_)) => self.connection.handle_bytes(&mut self.read_buf),
            Wake::Read(Err(err)) | Wake::Wrote(Err(err)) => {
                self.connection
                    .handle_connection_lost(Some(err.to_string()));
            }
            Wake::Wrote(Ok(Written::Bytes(n))) => {
                self.out.advance(n);
                self.needs_flush = true;
                self.connection.handle_written(n);
            }
            Wake::Wrote(Ok(Written::Flushed)) => self.needs_flush = false,
            Wake::Opened(Ok(io)) => {
                let (reader, writer) = tokio::io::split(io);
                self.link = Link::Up { reader, writer };
                self.connection.handle_opened(Instant::now());
            }
            Wake::Opened(Err(err)) => {
                self.link = Link::Down;
                let transient = err.is_transient();
                let text = err.to_string();
                let now = Instant::now();
                self.connection
                    .handle_open_failed(ConnectError::Transport(err), transient, now);
                if !self.connection.is_finished() {
                    tracing::warn!("reconnecting to {}: {text}", self.url);
                }
            }
            Wake::Timer => self.connection.handle_timeout(Instant::now()),
        }
    }
}
