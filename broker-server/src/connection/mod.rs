//! One task per client connection: it owns the socket and the connection's
//! `protocol::ServerSession`, feeds the session what the socket reads, carries out what
//! the session reports (routing, subscribing, session takeover) and writes everything
//! the session queued in one write per burst.
//!
//! The driver is generic over its byte stream, so TCP, TLS and WebSocket share it.
//!
//! - this module: the task's loop, event dispatch, mailbox draining;
//! - `lifecycle`: CONNECT, session attach/resume/takeover, and the end of a connection;
//! - `packets`: PUBLISH, SUBSCRIBE, UNSUBSCRIBE.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use bytes::BytesMut;
use bytestring::ByteString;
use protocol::session::{CloseReason, SendOutcome, ServerEvent, ServerOptions, ServerSession};
use protocol::{ProtocolVersion, Publish, ReasonCode, Will};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};
use web_time::Instant;

use crate::broker::{Attached, Broker};
use crate::clients::{ConnectionMeta, Registration};
use crate::clock;
use crate::message::Delivery;
use crate::security::Identity;

mod durable;
mod history;
mod inflight;
mod io;
mod keepalive;
mod lifecycle;
mod packets;

pub(crate) use inflight::SharedInflight;
pub(crate) use keepalive::KeepAliveWheel;

/// A connection's enhanced authentication (§4.12).
#[derive(Default)]
struct EnhancedAuth {
    /// The exchange in progress.
    exchange: Option<crate::security::enhanced::Exchange>,
    /// The CONNECT waiting for its authentication exchange to finish.
    pending_connect: Option<protocol::Connect>,
    /// The Authentication Method the connection was accepted with, which a
    /// re-authentication must use again [MQTT-4.12.1-1].
    method: Option<ByteString>,
}

/// The session options every connection starts with, from the configuration.
pub(crate) fn server_options(broker: &Broker) -> ServerOptions {
    let limits = &broker.config.limits;
    let inflight = NonZeroU16::new(limits.max_inflight).unwrap_or(NonZeroU16::MIN);
    ServerOptions {
        maximum_packet_size: NonZeroU32::new(limits.max_packet_size).unwrap_or(NonZeroU32::MIN),
        receive_maximum: inflight,
        topic_alias_maximum: limits.topic_alias_maximum,
        max_keep_alive: (limits.max_keep_alive_secs > 0).then_some(limits.max_keep_alive_secs),
        max_inflight: inflight,
        ..ServerOptions::default()
    }
}

/// The identity of a client that logged in anonymously, without permissions of its own.
static ANONYMOUS: Identity = Identity {
    username: None,
    permissions: None,
};

/// Per-connection state beyond the protocol session.
struct Connection {
    broker: Arc<Broker>,
    /// Peer address, listener, transport and certificate identity; shared with the
    /// client registry's entry.
    meta: Arc<ConnectionMeta>,
    /// The user name from CONNECT (or the client certificate's Common Name), until the
    /// connection is registered (`update_registration`). Boxed: 8 bytes of every idle
    /// task instead of 32.
    username: Option<Box<ByteString>>,
    /// Who the connection is once logged in (`security`): user name and the
    /// credential's own permissions; `None` for an anonymous client without any
    /// (most of them), so that such a task holds 8 bytes here, not 40 ([`Self::identity`]).
    identity: Option<Box<Identity>>,
    /// The entry in `broker.clients` while the connection is accepted.
    registration: Option<Registration>,
    session: ServerSession,
    attached: Option<Attached>,
    /// The client's will, published on an abnormal end.
    /// Boxed, like `enhanced`: most connections have none, and every byte here
    /// is held by every connection task.
    will: Option<Box<Will>>,
    /// Session Expiry Interval in force, in seconds (3.x: 0 or "never").
    expiry_interval: u32,
    version: ProtocolVersion,
    /// MQTT 3.x bridge flag in CONNECT (protocol level 0x83 / 0x84, mosquitto's
    /// `try_private`): the client is another broker's bridge, whose subscriptions get
    /// No Local and Retain As Published (`packets::on_subscribe`).
    bridge: bool,
    client_id: ByteString,
    connected_counted: bool,
    /// A PUBLISH read this turn woke other sessions' tasks and is to be acknowledged:
    /// they run first (see `run`).
    woke_others: bool,
    /// Shared-subscription deliveries in the protocol session, to re-route to their
    /// group if the session ends unacknowledged (`router::shared`).
    shared_inflight: SharedInflight,
    /// Enhanced authentication (§4.12), boxed: most connections never use it.
    enhanced: Option<Box<EnhancedAuth>>,
    /// Acknowledgements waiting for the store, and the write barrier (`durable`).
    acks: durable::Acks,
    /// The client's publish and byte rate budgets (`crate::limits`), shared with the
    /// reader that holds reads back while they are spent.
    budget: crate::limits::ClientBudget,
    /// Bytes read before CONNECT was accepted (`crate::limits`).
    before_connect: crate::limits::BeforeConnect,
    /// The broker ended the connection while the client may still be sending: its
    /// input is drained for a moment before the socket closes ([`io::drain`]).
    linger: bool,
    /// When the keep-alive slot armed for this connection fires, if one is armed
    /// ([`keepalive`]).
    keep_alive_armed: Option<Instant>,
}

/// Serves one client until the connection ends or the broker shuts down, with what
/// the transport knows about the connection (listener, TLS or WebSocket, certificate
/// identity). The stream must deliver written bytes on `flush`.
///
/// The returned future is the connection task's whole state for its life, so it is
/// kept small: everything is built here and moved into one `async` block (an `async fn`
/// would keep its arguments beside the locals made from them), the stream is not
/// split, and the task waits on few things while idle (see [`wait`]).
pub(crate) fn serve_with<S>(
    broker: Arc<Broker>,
    stream: S,
    meta: ConnectionMeta,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = meta.peer;
    let now = clock::now();
    let connect_deadline = now + broker.config.limits.connect_timeout();
    let session = ServerSession::new(server_options(&broker), now);
    let budget = crate::limits::ClientBudget::new(&broker.config.limits);
    let stream = io::LimitedRead::new(stream, budget.clone(), broker.clone(), peer);
    let conn = Connection {
        broker,
        meta: Arc::new(meta),
        username: None,
        identity: None,
        registration: None,
        session,
        attached: None,
        will: None,
        expiry_interval: 0,
        version: ProtocolVersion::V5,
        bridge: false,
        client_id: ByteString::new(),
        connected_counted: false,
        woke_others: false,
        enhanced: None,
        shared_inflight: SharedInflight::default(),
        acks: Default::default(),
        budget,
        before_connect: Default::default(),
        linger: false,
        keep_alive_armed: None,
    };
    // Counted by the broker's task tracker until the connection has ended (its session
    // stored): shutdown waits for that before it closes the store.
    let tracker = conn.broker.connections.clone();
    tracker.track_future(run(conn, stream, connect_deadline))
}

/// What woke the connection task.
enum Wake {
    Read(std::io::Result<BytesMut>),
    Timer,
    Mailbox,
    Acked(crate::storage::acks::Settled),
}

/// The connection task's loop: handle what the session reports, write what it queued,
/// wait for the next thing to happen.
#[allow(clippy::manual_async_fn)] // on purpose: see the comment in the body
fn run<S>(
    mut conn: Connection,
    mut stream: io::LimitedRead<S>,
    connect_deadline: Instant,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // An `async` block, not an `async fn`: an `async fn` keeps its arguments beside
    // the locals it moves them into, which doubled the task's size.
    async move {
        let mut wbuf = BytesMut::new();
        loop {
            conn.drive().await;
            conn.acks.seal(&conn.broker.storage);
            conn.update_registration();
            if std::mem::take(&mut conn.woke_others) {
                // The subscribers' tasks this turn woke wait on this worker until this
                // task yields (tokio runs a woken task next, on the waker's worker): let
                // them write their deliveries before this one writes the PUBACK, as a
                // single-threaded broker would, instead of making them wait for the write.
                tokio::task::yield_now().await;
            }
            if conn.session.poll_transmit(&mut wbuf) {
                let len = wbuf.len();
                let (broker, peer) = (&conn.broker, conn.meta.peer);
                if !conn.acks.writes_allowed(&broker.storage).await
                    || io::write_all(&mut stream, &wbuf, broker, peer, &conn.client_id)
                        .await
                        .is_err()
                {
                    conn.session.handle_connection_lost();
                    conn.drive().await;
                } else {
                    conn.broker.metrics.bytes_sent.add(len as u64);
                }
                wbuf.clear();
                io::trim_write_buffer(&mut wbuf, len);
            }
            if conn.session.is_closed() {
                break;
            }
            match conn.wait(&mut stream, connect_deadline).await {
                Wake::Read(Ok(mut bytes)) if !bytes.is_empty() => {
                    let n = bytes.len();
                    conn.broker.metrics.bytes_received.add(n as u64);
                    if conn.session.is_connected()
                        || conn.before_connect.take(
                            n,
                            conn.broker.config.limits.max_bytes_before_connect,
                            &conn.broker.metrics.limit_hits,
                            conn.meta.peer,
                        )
                    {
                        conn.session.handle_bytes(&mut bytes, clock::now());
                    } else {
                        conn.session.handle_connection_lost();
                    }
                }
                Wake::Read(_) => conn.session.handle_connection_lost(),
                Wake::Timer => {
                    if conn.session.is_connected() || conn.attached.is_some() {
                        conn.session.handle_timeout(clock::now());
                    } else {
                        let hits = &conn.broker.metrics.limit_hits;
                        hits.hit(crate::limits::Limit::ConnectTimeout, conn.meta.peer, "");
                        conn.session.handle_connection_lost();
                    }
                }
                // Deliveries, a kick (`check_kicked`), or the keep-alive wheel.
                Wake::Mailbox => conn.session.handle_timeout(clock::now()),
                Wake::Acked(settled) => conn.settle(settled),
            }
            conn.check_kicked();
        }
        // FIN once the last packet (a DISCONNECT or CONNACK with its reason code) is
        // flushed, so the client reads it before the end of the stream.
        let _ = stream.shutdown().await;
        conn.settle_all().await;
        let linger = std::mem::take(&mut conn.linger);
        let stopping = conn.broker.stopping.clone();
        conn.finish();
        if linger {
            // Not past a shutdown: it waits for this task. Boxed, like every wait with
            // a timer in it: inline, its room would be in every idle task's future.
            Box::pin(async {
                tokio::select! {
                    () = io::drain(&mut stream) => {}
                    () = stopping.cancelled() => {}
                }
            })
            .await;
        }
    }
}

impl Connection {
    /// Who the connection is (anonymous until logged in).
    fn identity(&self) -> &Identity {
        self.identity.as_deref().unwrap_or(&ANONYMOUS)
    }

    /// Records who the connection is, once logged in.
    fn set_identity(&mut self, identity: Identity) {
        self.identity = (identity.username.is_some() || identity.permissions.is_some())
            .then(|| Box::new(identity));
    }

    /// Waits for the next thing to do: bytes from the client, the session's timer
    /// (keep alive, or the CONNECT deadline before CONNECT), the session's mailbox
    /// (deliveries, and requests to close: takeover, admin, shutdown, see
    /// [`Self::check_kicked`]) or the store settling acknowledgements.
    async fn wait<S: AsyncRead + Unpin>(&mut self, stream: &mut S, connect: Instant) -> Wake {
        let now = clock::now();
        let mut sleep = None;
        match (&self.attached, self.session.poll_timeout()) {
            // Connected: the keep alive is a slot in the broker's wheel, which wakes
            // the session (`keepalive`), so an idle task holds no timer.
            (Some(attached), Some(at)) if self.session.is_connected() => {
                if now >= at {
                    return Wake::Timer;
                }
                let armed = self.keep_alive_armed;
                // Armed again once the slot has fired (the client was heard from since),
                // or for an earlier deadline.
                if armed.is_none_or(|fires| fires <= now || at + keepalive::TICK < fires) {
                    let wheel = &self.broker.clients.keep_alive;
                    let fires = wheel.arm(&attached.session, clock::to_tokio(at));
                    self.keep_alive_armed = Some(fires.into_std());
                }
            }
            (_, timeout) => {
                // Before CONNECT (its deadline), or no session: a timer of its own, boxed,
                // so that the idle task's future has no room for one.
                let connecting = !self.session.is_connected() && self.attached.is_none();
                if let Some(at) = if connecting { Some(connect) } else { timeout } {
                    sleep = Some(Box::pin(tokio::time::sleep_until(clock::to_tokio(at))));
                }
            }
        }
        let timer = async {
            match sleep {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        let attached = self.attached.as_ref();
        let mailbox = async {
            match attached {
                Some(a) => a.session.notified_or_kicked(a.epoch).await,
                None => std::future::pending().await,
            }
        };
        // Boxed, and only while acknowledgements wait for the store: an idle task's
        // future has no room for it.
        let acks = (!self.acks.is_empty()).then(|| Box::pin(self.acks.next()));
        let acked = async {
            match acks {
                Some(next) => next.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = io::read_sized(stream) => Wake::Read(read),
            () = timer => Wake::Timer,
            () = mailbox => Wake::Mailbox,
            settled = acked => Wake::Acked(settled),
        }
    }

    /// Closes the connection if it was asked to: a new connection took the session
    /// over, the admin API disconnected it, or the broker is shutting down.
    ///
    /// The will of an MQTT 3.x connection taken over by one that continues its session
    /// (clean session 0 on both) is dropped, not published: 3.1.1 does not list a
    /// takeover among the will's triggers (§3.1.2.5, "include, but are not limited
    /// to", so publishing would be allowed too), the session goes on, and mosquitto does
    /// not publish it either. When the takeover ends the session (either side has
    /// clean session 1) the will goes out, as mosquitto does. MQTT 5 keeps publishing it
    /// (subject to its delay, which the resume cancels [MQTT-3.1.3-9]): the server
    /// closes the connection without the client's DISCONNECT 0x00 (§3.1.2.5,
    /// [MQTT-3.1.4-3]).
    fn check_kicked(&mut self) {
        let Some(attached) = &self.attached else {
            return;
        };
        let Some(reason) = attached.kicked() else {
            return;
        };
        if self.session.is_closed() {
            return;
        }
        match reason {
            ReasonCode::SessionTakenOver => {
                if !self.version.is_v5()
                    && self.expiry_interval != 0
                    && attached.taken_over_continuing()
                    && self.will.take().is_some()
                {
                    debug!(client_id = %self.client_id, "taken over, session continues: 3.x will not published");
                }
                info!(client_id = %self.client_id, "session taken over by a new connection")
            }
            ReasonCode::AdministrativeAction => {
                info!(client_id = %self.client_id, "disconnected by the admin API")
            }
            _ => debug!(client_id = %self.client_id, %reason, "disconnecting"),
        }
        self.session.disconnect(reason);
    }

    /// Handles every event the session has, then fills the client's window from the
    /// mailbox, until neither produces anything more. Events that wait on something
    /// run in a boxed future ([`Self::handle_waiting`]), so this one stays small.
    async fn drive(&mut self) {
        // Not `while let`: its scrutinee would live across the `await`, inline.
        loop {
            let Some(event) = self.drive_ready() else {
                return;
            };
            let waiting = Box::pin(self.handle_waiting(event));
            waiting.await;
        }
    }

    /// [`Self::drive`]'s part that waits for nothing; returns the first event that
    /// needs to wait.
    fn drive_ready(&mut self) -> Option<ServerEvent> {
        // The subscribers this turn's publishes reach are woken once, when it returns.
        let _burst = crate::broker::Burst::begin();
        loop {
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                if let Some(waiting) = self.handle_event(event) {
                    return Some(waiting);
                }
            }
            if self.pull_mailbox() {
                progressed = true;
            }
            if !progressed {
                return None;
            }
        }
    }

    /// Moves deliveries from the session's mailbox into the protocol session, as many
    /// QoS 1/2 as the client's window takes (QoS 0 are not windowed).
    fn pull_mailbox(&mut self) -> bool {
        let Some(attached) = &self.attached else {
            return false;
        };
        if !self.session.is_connected() {
            return false;
        }
        let session = attached.session.clone();
        let quota = self.session.send_quota();
        let mut batch = io::take_batch();
        session.take(quota, &mut batch);
        let any = !batch.is_empty();
        let now = clock::now();
        let enforce = self.enforces_receive();
        for delivery in batch.drain(..) {
            self.send_delivery(&delivery, now, enforce);
        }
        io::give_batch(batch);
        any
    }

    /// Whether deliveries to this client must pass the receive check: false when no ACL
    /// is loaded and the identity carries no permissions, so a broker without ACLs
    /// skips the check per delivery. Asked once per batch; a reload that adds an ACL
    /// applies from the next batch.
    fn enforces_receive(&self) -> bool {
        self.broker.security.enforces(self.identity())
    }

    /// Hands one delivery to the protocol session. `enforce` is
    /// [`Self::enforces_receive`], asked once for the batch the delivery is in.
    fn send_delivery(&mut self, delivery: &Delivery, now: Instant, enforce: bool) {
        let message = &delivery.message;
        if message.is_expired(now) {
            self.broker.metrics.messages_dropped.inc();
            self.broker.storage.discarded(delivery);
            return;
        }
        // Checked at delivery, so a broad subscription (`#`) never carries a topic the
        // client may not read, and rules reloaded since it subscribed apply.
        if enforce && !self.may(crate::security::Access::Receive, &message.topic) {
            self.broker.metrics.acl_denied.receive.inc();
            self.broker.storage.discarded(delivery);
            debug!(client_id = %self.client_id, topic = %message.topic, "delivery not authorized: dropped");
            return;
        }
        let properties = message.delivery_properties(&delivery.subscription_ids, now);
        let publish = Publish {
            dup: false,
            qos: delivery.qos,
            retain: delivery.retain,
            topic: message.topic.clone(),
            packet_id: None,
            payload: message.payload.clone(),
            properties,
        };
        let outcome = self.session.send_publish(publish);
        if let Ok(
            SendOutcome::Sent {
                packet_id: Some(packet_id),
            }
            | SendOutcome::Queued { packet_id },
        ) = outcome
        {
            self.shared_inflight.sent(packet_id, delivery);
        }
        self.stored_outcome(delivery, &outcome);
        match outcome {
            Ok(SendOutcome::Dropped { size, maximum }) => {
                debug!(client_id = %self.client_id, size, maximum, "message larger than the client's maximum packet size dropped");
                self.broker.metrics.messages_dropped.inc();
            }
            Ok(_) => {
                let metrics = &self.broker.metrics;
                metrics.messages_sent.at(delivery.qos).inc();
                let size = message.payload.len() as u64;
                metrics.payload_bytes_sent.at(delivery.qos).add(size);
            }
            Err(err) => debug!(client_id = %self.client_id, %err, "delivery not sent"),
        }
    }

    /// Handles an event that needs no waiting; hands back the ones that do (session
    /// attach, the store, authentication), for [`Self::handle_waiting`]. Those run as
    /// boxed futures: inlined, their state would be part of every connection task for
    /// its whole life (it was ~6 KB), while they are live only for a moment.
    fn handle_event(&mut self, event: ServerEvent) -> Option<ServerEvent> {
        match event {
            ServerEvent::Publish(publish) => self.on_publish(publish),
            ServerEvent::Delivered { packet_id, .. } => {
                if let Some(shared) = self.shared_inflight.finished(packet_id) {
                    // A cluster hears that the group's message was taken care of.
                    self.broker.backplane.shared_done(&shared.message);
                }
                self.stored_delivered(packet_id);
            }
            ServerEvent::Received { packet_id } => self.stored_received(packet_id),
            ServerEvent::Released { packet_id } => self.stored_released(packet_id),
            ServerEvent::AckNotInFlight { packet, packet_id } => {
                self.broker.metrics.acks_not_in_flight.hit(packet);
                debug!(client_id = %self.client_id, %packet, packet_id, "acknowledgement for a packet identifier not in flight");
            }
            ServerEvent::Closed {
                reason,
                publish_will,
            } => self.on_closed(reason, publish_will),
            waiting @ (ServerEvent::Connect(_)
            | ServerEvent::Subscribe(_)
            | ServerEvent::Unsubscribe(_)
            | ServerEvent::Auth(_)) => return Some(waiting),
            _ => {}
        }
        None
    }

    /// The events [`Self::handle_event`] handed back.
    async fn handle_waiting(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connect(mut connect) => {
                if let Some(name) = &self.meta.cert_username {
                    connect.username = Some(name.clone());
                }
                // Copied out of the receive buffer (see `complete_connect`).
                self.username = connect
                    .username
                    .as_deref()
                    .map(|name| Box::new(String::from(name).into()));
                self.on_connect(*connect).await;
            }
            ServerEvent::Subscribe(subscribe) => self.on_subscribe(subscribe).await,
            ServerEvent::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe).await,
            ServerEvent::Auth(auth) => self.on_auth(auth).await,
            _ => {}
        }
    }

    /// Lists the connection in `broker.clients` once its CONNECT is accepted, and keeps
    /// its inflight count there current.
    fn update_registration(&mut self) {
        if self.registration.is_none() && self.session.is_connected() {
            // The proven user name (a token's or SCRAM's), else the one CONNECT gave.
            let username = self
                .identity()
                .username
                .clone()
                .or_else(|| self.username.take().map(|name| *name));
            let kick = self.attached.as_ref().map_or_else(Default::default, |a| {
                crate::session::KickHandle::new(&a.session, a.epoch)
            });
            let registration = self.broker.clients.register(
                self.client_id.clone(),
                username,
                self.meta.clone(),
                self.version,
                kick,
            );
            self.registration = Some(registration);
        }
        if let Some(registration) = &self.registration {
            let inflight = self.session.inflight();
            registration
                .entry()
                .inflight
                .store(inflight, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(super) fn topic_within_limits(&self, topic: &str) -> bool {
        let limits = &self.broker.config.limits;
        topic.len() <= limits.max_topic_length
            && topic.split('/').count() <= limits.max_topic_levels
    }

    fn on_closed(&mut self, reason: CloseReason, publish_will: bool) {
        // Closed by the broker, the client maybe mid-stream: linger. Not when the client
        // disconnected or the connection is gone already.
        self.linger = matches!(
            reason,
            CloseReason::ProtocolViolation(_)
                | CloseReason::ServerDisconnected(_)
                | CloseReason::KeepAliveTimeout
                | CloseReason::Rejected(_)
        );
        match &reason {
            CloseReason::ProtocolViolation(violation) => {
                self.broker.metrics.protocol_errors.inc();
                if violation.reason_code() == ReasonCode::PacketTooLarge {
                    let hits = &self.broker.metrics.limit_hits;
                    hits.hit(
                        crate::limits::Limit::PacketSize,
                        self.meta.peer,
                        &self.client_id,
                    );
                }
                info!(client_id = %self.client_id, peer = %self.meta.peer, %violation, "protocol violation");
            }
            CloseReason::ClientDisconnected(disconnect) => {
                if let Some(expiry) = disconnect.properties.session_expiry_interval {
                    self.expiry_interval =
                        expiry.min(self.broker.config.limits.max_session_expiry_secs);
                }
            }
            _ => debug!(client_id = %self.client_id, ?reason, "connection closed"),
        }
        if !publish_will {
            self.will = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// The connection task's future is what every open connection holds for its whole
    /// life (BENCHMARKS.md, "Memory per idle connection"): 4.6 KB once by accident, 1.3
    /// KB with a timer of its own, under 1 KB now. tokio's task cell is the future plus
    /// 96 bytes, rounded up to 128, so each 128 bytes past a boundary cost every
    /// connection 128 more. This keeps a change from quietly growing it again.
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        // 976 here (a duplex stream, debug build); 992 with a `TcpStream` in a release
        // build, whose cell is then 1,152 bytes: past 1,056 there it would be 1,280.
        const LIMIT: usize = 1040;
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        let (stream, _peer) = tokio::io::duplex(64);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let future = serve_with(broker, stream, ConnectionMeta::tcp(peer));
        let size = std::mem::size_of_val(&future);
        assert!(size <= LIMIT, "connection future is {size} bytes");
    }
}
