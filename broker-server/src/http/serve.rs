//! Running [`super::app`] on a listener, plain HTTP or HTTPS.
//!
//! An accept task takes TCP connections, checks them against the admission limits
//! (`crate::limits`: over the per-IP limit they are closed at once) and, for HTTPS,
//! runs each TLS handshake in a task of its own (a slow or silent client never holds
//! up the others), then hands the stream to axum through a channel. Each connection
//! must get its first response within `limits.connect_timeout_secs` (a
//! [`ResponseDeadline`]: hyper's own header timeout needs a timer axum does not set),
//! so a request trickled in byte by byte cannot hold a connection. axum sees one [`HttpListener`] either way and
//! gives each request a [`PeerInfo`]. On shutdown the listener stops accepting, open
//! HTTP connections finish their request (at most [`GRACE`]), and WebSocket clients
//! are disconnected by their connection task like TCP clients.

use std::future::IntoFuture as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::PeerInfo;
use crate::broker::Broker;
use crate::clients::{ListenerStats, Transport};
use crate::limits::Limit;
use crate::transport::tls::{TlsStore, TlsUse};

/// How long open HTTP requests may take to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `tcp` (HTTPS when `tls` is given) until `shutdown` turns `true`.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    tcp: TcpListener,
    tls: Option<Arc<TlsStore>>,
    app: Router,
    shutdown: watch::Receiver<bool>,
) {
    let local = match tcp.local_addr() {
        Ok(local) => local,
        Err(err) => {
            warn!(%err, "HTTP listener has no address");
            return;
        }
    };
    let transport = if tls.is_some() {
        Transport::Wss
    } else {
        Transport::Ws
    };
    let stats = broker
        .clients
        .add_listener(local.to_string().into(), transport);
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(addr = %local, "HTTP listening: {scheme}://{local}/ (MQTT over WebSocket at /mqtt)");
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio::spawn(accept(
        broker.clone(),
        tcp,
        tls,
        stats.clone(),
        tx,
        shutdown.clone(),
    ));
    let listener = HttpListener { local, stats, rx };
    let stopping = wait_for(shutdown.clone());
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<PeerInfo>(),
    )
    .with_graceful_shutdown(stopping);
    tokio::select! {
        result = server.into_future() => {
            if let Err(err) = result {
                warn!(%err, "HTTP server stopped");
            }
        }
        () = async { wait_for(shutdown).await; tokio::time::sleep(GRACE).await } => {
            debug!("HTTP requests still open after the grace period");
        }
    }
    acceptor.abort();
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

async fn accept(
    broker: Arc<Broker>,
    tcp: TcpListener,
    tls: Option<Arc<TlsStore>>,
    stats: Arc<ListenerStats>,
    tx: mpsc::Sender<(HttpIo, PeerInfo)>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the per-IP limit: closed before anything is read. (The connection rates
        // apply to `/mqtt` upgrades only: `transport::ws`.)
        let Ok(admitted) = broker
            .admission
            .admit_socket(addr, &broker.metrics.limit_hits)
        else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        crate::transport::bound_unsent(&stream);
        let peer = PeerInfo {
            addr,
            tls: tls.is_some(),
            cert_username: None,
            stats: stats.clone(),
            admitted: Some(Arc::new(admitted)),
        };
        let deadline = ResponseDeadline::new(&broker, addr);
        match &tls {
            None => {
                let io = HttpIo::new(HttpStream::Plain(stream), deadline);
                if tx.send((io, peer)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let (tls, tx, broker) = (tls.clone(), tx.clone(), broker.clone());
                tokio::spawn(async move {
                    match tls.handshake(TlsUse::Http, stream).await {
                        Ok((stream, cert_username)) => {
                            let peer = PeerInfo {
                                cert_username,
                                ..peer
                            };
                            let io = HttpIo::new(HttpStream::Tls(Box::new(stream)), deadline);
                            let _ = tx.send((io, peer)).await;
                        }
                        Err(err) => crate::transport::tls::handshake_failed(&broker, addr, &err),
                    }
                });
            }
        }
    }
}

/// The accepted connections, as axum takes them.
#[derive(Debug)]
struct HttpListener {
    local: SocketAddr,
    stats: Arc<ListenerStats>,
    rx: mpsc::Receiver<(HttpIo, PeerInfo)>,
}

impl Listener for HttpListener {
    type Io = HttpIo;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept task ended: shutdown, which stops axum before it asks again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.local,
            tls: false,
            cert_username: None,
            stats: self.stats.clone(),
            admitted: None,
        })
    }
}

impl Connected<IncomingStream<'_, HttpListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The connect timeout of an HTTP connection: a client that has not had a response
/// within `limits.connect_timeout_secs` of the accept (or of the TLS handshake) is cut
/// off, so a request trickled in byte by byte (slowloris) cannot hold a connection. The
/// deadline ends with the first response written (a `101 Switching Protocols` for
/// `/mqtt`, after which the MQTT connect timeout applies).
#[derive(Debug)]
struct ResponseDeadline {
    sleep: Pin<Box<Sleep>>,
    broker: Arc<Broker>,
    peer: SocketAddr,
}

impl ResponseDeadline {
    fn new(broker: &Arc<Broker>, peer: SocketAddr) -> Self {
        let timeout = broker.config.limits.connect_timeout();
        Self {
            sleep: Box::pin(tokio::time::sleep(timeout)),
            broker: broker.clone(),
            peer,
        }
    }
}

/// An accepted HTTP connection, with its [`ResponseDeadline`] until the first response.
#[derive(Debug)]
struct HttpIo {
    stream: HttpStream,
    deadline: Option<ResponseDeadline>,
}

impl HttpIo {
    fn new(stream: HttpStream, deadline: ResponseDeadline) -> Self {
        Self {
            stream,
            deadline: Some(deadline),
        }
    }

    /// Fails once the deadline has passed (registering the waker until then).
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(deadline) = &mut self.deadline
            && deadline.sleep.as_mut().poll(cx).is_ready()
        {
            deadline
                .broker
                .metrics
                .limit_hits
                .hit(Limit::ConnectTimeout, deadline.peer, "");
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete HTTP request within limits.connect_timeout_secs",
            ));
        }
        Ok(())
    }
}

/// A plain or TLS connection.
#[derive(Debug)]
enum HttpStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for HttpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        match &mut this.stream {
            HttpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for HttpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.deadline = None;
        match &mut this.stream {
            HttpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.deadline = None;
        match &mut this.stream {
            HttpStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            HttpStream::Plain(s) => s.is_write_vectored(),
            HttpStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            HttpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            HttpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
