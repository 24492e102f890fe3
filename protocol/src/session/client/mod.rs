//! [`ClientSession`], its options and its events: the client side of MQTT, for the
//! native and the browser client.
//!
//! - `options`: [`ClientOptions`].
//! - `event`: [`ClientEvent`], [`LostReason`].
//! - `incoming`: what each packet from the server does.
//! - this module: the state machine.

mod event;
mod incoming;
mod options;

pub use event::{ClientEvent, LostReason};
pub use options::ClientOptions;

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use web_time::Instant;

use super::alias::{InboundAliases, OutboundAliases};
use super::inbound::Inbound;
use super::outbound::Outbound;
use super::packet_id::IdMap;
use super::{PeerLimits, Rx, SessionError, check_size, drain_transmit, write};
use crate::packet::{
    Auth, Connect, Disconnect, Packet, PacketId, PacketType, Publish, QoS, Subscribe, Subscription,
    Unsubscribe,
};
use crate::property::{
    ConnectProperties, PublishProps, SubscribeProperties, UnsubscribeProperties,
};
use crate::topic::{TopicFilter, TopicName};

/// The ping timeout for a PINGREQ sent with [`ClientSession::ping`] while keep alive is
/// disabled and [`ClientOptions::ping_timeout`] is `None`.
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection; `connect` starts one.
    Disconnected,
    /// CONNECT queued at `since`, waiting for CONNACK.
    Connecting { since: Instant },
    /// CONNACK received.
    Connected,
}

/// The client side of MQTT, sans IO. See [`crate::session`] for the driving contract.
///
/// One `ClientSession` lives as long as the application's session, across any number of
/// network connections: call [`connect`](ClientSession::connect) each time a transport
/// is open, [`handle_connection_lost`](ClientSession::handle_connection_lost) when it
/// closes. QoS 1 and 2 messages published while disconnected wait in the session and go
/// out, in order, after the next CONNACK; unacknowledged ones are re-sent with DUP set
/// when the server resumes the session [MQTT-4.4.0-1].
///
/// ```
/// use std::time::Duration;
/// use bytes::BytesMut;
/// use protocol::session::{ClientEvent, ClientOptions, ClientSession};
/// use protocol::QoS;
/// use web_time::Instant;
///
/// let now = Instant::now();
/// let mut client = ClientSession::new(ClientOptions::new("sensor-1"));
/// client.connect(now).unwrap();
/// // Messages published before CONNACK wait for it.
/// let id = client.publish("sensors/t1", "21.5", QoS::AtLeastOnce, false, Default::default());
/// assert!(id.unwrap().is_some());
///
/// let mut out = BytesMut::new();
/// assert!(client.poll_transmit(now, &mut out)); // the CONNECT, to write to the socket
/// assert!(client.poll_event().is_none());
/// assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(30))); // connect timeout
/// ```
#[derive(Debug)]
pub struct ClientSession {
    options: ClientOptions,
    phase: Phase,
    /// Bytes received, not yet a whole packet.
    rx: Rx,
    /// Bytes to send.
    tx: BytesMut,
    events: VecDeque<ClientEvent>,
    /// Our QoS 1 and 2 messages, and packet identifiers for SUBSCRIBE/UNSUBSCRIBE.
    outbound: Outbound,
    /// The server's QoS 1 and 2 messages.
    inbound: Inbound,
    inbound_aliases: InboundAliases,
    outbound_aliases: OutboundAliases,
    /// SUBSCRIBE / UNSUBSCRIBE sent and not yet answered, by packet identifier.
    requests: IdMap<PacketType>,
    /// The server's limits from the last CONNACK.
    server: PeerLimits,
    /// The server's Receive Maximum from the last CONNACK.
    server_receive_maximum: u16,
    /// Keep alive in force on this connection; zero: disabled.
    keep_alive: Duration,
    /// When bytes were last handed to the driver.
    last_sent: Option<Instant>,
    /// A PINGREQ is queued and not yet handed to the driver.
    ping_queued: bool,
    /// When the PINGREQ we wait an answer for left.
    ping_sent: Option<Instant>,
    /// Whether a CONNACK accepted a connection of this session before.
    connected_before: bool,
    /// The Clean Start flag of the last CONNECT.
    last_clean_start: bool,
}

impl ClientSession {
    /// A session that is not connected yet.
    pub fn new(options: ClientOptions) -> Self {
        let receive_maximum = options
            .version
            .is_v5()
            .then_some(options.receive_maximum.get());
        Self {
            phase: Phase::Disconnected,
            rx: Rx::default(),
            tx: BytesMut::new(),
            events: VecDeque::new(),
            outbound: Outbound::default(),
            inbound: Inbound::new(receive_maximum),
            inbound_aliases: InboundAliases::default(),
            outbound_aliases: OutboundAliases::default(),
            requests: IdMap::default(),
            server: PeerLimits::default(),
            server_receive_maximum: u16::MAX,
            keep_alive: Duration::ZERO,
            last_sent: None,
            ping_queued: false,
            ping_sent: None,
            connected_before: false,
            last_clean_start: options.clean_start,
            options,
        }
    }

    /// The options, with the client identifier the server assigned, if it did.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Whether a CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether a connection is in progress or established: once `false` after a
    /// `connect`, the driver closes the transport (after writing what
    /// `poll_transmit` gives).
    pub fn is_open(&self) -> bool {
        self.phase != Phase::Disconnected
    }

    /// Our QoS 1 and 2 messages not yet acknowledged: in flight and queued.
    pub fn pending_publishes(&self) -> usize {
        self.outbound.inflight_len() + self.outbound.pending_len()
    }

    /// Queues CONNECT on a newly opened transport. Anything left from an earlier
    /// connection (unsent bytes, a partial packet) is dropped; flows in flight then are
    /// re-sent after CONNACK if the server resumed the session.
    pub fn connect(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.phase != Phase::Disconnected {
            self.end_connection();
        }
        let v5 = self.options.version.is_v5();
        let clean_start = if self.connected_before && v5 && self.options.session_expiry_interval > 0
        {
            false
        } else {
            self.options.clean_start
        };
        let options = &self.options;
        let mut connect = Connect::new(options.version, options.client_id.clone());
        connect.clean_start = clean_start;
        connect.keep_alive = options.keep_alive_secs();
        connect.will = options.will.clone();
        connect.username = options.username.clone();
        connect.password = options.password.clone();
        connect.bridge = options.bridge;
        if v5 {
            connect.properties = ConnectProperties {
                session_expiry_interval: (options.session_expiry_interval > 0)
                    .then_some(options.session_expiry_interval),
                receive_maximum: (options.receive_maximum != NonZeroU16::MAX)
                    .then_some(options.receive_maximum),
                maximum_packet_size: options.maximum_packet_size,
                topic_alias_maximum: (options.topic_alias_maximum > 0)
                    .then_some(options.topic_alias_maximum),
                request_response_information: options.request_response_information.then_some(true),
                request_problem_information: (!options.request_problem_information)
                    .then_some(false),
                user_properties: options.user_properties.clone(),
                authentication_method: options.authentication_method.clone(),
                authentication_data: options.authentication_data.clone(),
            };
        }
        self.tx.clear();
        self.rx.clear();
        write(
            &mut self.tx,
            &Packet::Connect(Box::new(connect)),
            options.version,
        )?;
        self.last_clean_start = clean_start;
        self.phase = Phase::Connecting { since: now };
        self.keep_alive = Duration::from_secs(u64::from(self.options.keep_alive_secs()));
        self.last_sent = Some(now);
        self.ping_queued = false;
        self.ping_sent = None;
        self.inbound_aliases = InboundAliases::new(if v5 {
            self.options.topic_alias_maximum
        } else {
            0
        });
        self.outbound_aliases = OutboundAliases::new(0);
        Ok(())
    }

    /// Feeds bytes received from the transport (all of `data` is taken; a partial
    /// packet waits in the session for the rest). Receiving needs no clock: only
    /// sending (keep alive) and timeouts do.
    pub fn handle_bytes(&mut self, data: &mut BytesMut) {
        if self.phase == Phase::Disconnected {
            data.clear();
            return;
        }
        self.rx.push(data);
        self.process();
    }

    /// Like [`handle_bytes`](Self::handle_bytes), for a borrowed slice.
    pub fn handle_slice(&mut self, data: &[u8]) {
        if self.phase == Phase::Disconnected {
            return;
        }
        self.rx.push_slice(data);
        self.process();
    }

    /// The transport closed (or failed). Reports [`LostReason::Transport`] unless the
    /// session already knew the connection was over.
    pub fn handle_connection_lost(&mut self) {
        if self.phase != Phase::Disconnected {
            self.end_connection();
            self.events
                .push_back(ClientEvent::ConnectionLost(LostReason::Transport));
        }
    }

    /// Handles the timer armed for [`poll_timeout`](Self::poll_timeout): the connect
    /// timeout, a PINGREQ when nothing was sent for the keep alive, and the ping
    /// timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        match self.phase {
            Phase::Disconnected => {}
            Phase::Connecting { .. } => {
                self.end_connection();
                self.events
                    .push_back(ClientEvent::ConnectionLost(LostReason::ConnectTimeout));
            }
            Phase::Connected if self.ping_sent.is_some() => {
                self.end_connection();
                self.events
                    .push_back(ClientEvent::ConnectionLost(LostReason::PingTimeout));
            }
            Phase::Connected => self.queue_ping(),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is to be called next; `None`: no
    /// timer is needed. While connecting: the connect timeout. Connected: the ping
    /// timeout if a PINGREQ awaits its answer, else the keep alive after the last send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Disconnected => None,
            Phase::Connecting { since } => since.checked_add(self.options.connect_timeout),
            Phase::Connected => {
                if let Some(sent) = self.ping_sent {
                    sent.checked_add(self.ping_timeout())
                } else if self.keep_alive.is_zero() || self.ping_queued {
                    None
                } else {
                    self.last_sent
                        .and_then(|last| last.checked_add(self.keep_alive))
                }
            }
        }
    }

    /// Appends every byte waiting to be sent to `out`, to be written in one go; `false`
    /// when there was nothing. `now` is when the bytes leave: keep alive counts from it.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> bool {
        if !drain_transmit(&mut self.tx, out) {
            return false;
        }
        self.last_sent = Some(now);
        if self.ping_queued {
            self.ping_queued = false;
            self.ping_sent = Some(now);
        }
        true
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Publishes an application message. QoS 0 needs a connection and returns `None`.
    /// QoS 1 and 2 return the message's packet identifier (named again in
    /// [`ClientEvent::PublishAcked`]); the message waits in the session when the
    /// server's Receive Maximum window is full or no connection is up.
    ///
    /// Refused with a typed error, and nothing queued, when the server's limits from
    /// CONNACK rule the message out: QoS above its Maximum QoS, retain without Retain
    /// Available, larger than its Maximum Packet Size. The session manages topic
    /// aliases itself: `properties.topic_alias` and subscription identifiers (which a
    /// client must not send [MQTT-3.3.4-6]) are ignored.
    pub fn publish<T>(
        &mut self,
        topic: T,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
        mut properties: PublishProps,
    ) -> Result<Option<PacketId>, SessionError>
    where
        T: TryInto<TopicName, Error: Into<SessionError>>,
    {
        let topic: TopicName = topic.try_into().map_err(Into::into)?;
        properties.set_topic_alias(None);
        properties.clear_subscription_identifiers();
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.into_inner(),
            packet_id: None,
            payload: payload.into(),
            properties,
        };
        if qos == QoS::AtMostOnce && self.phase != Phase::Connected {
            return Err(SessionError::NotConnected);
        }
        let publish = self.server.check_publish(publish, self.options.version)?;
        if qos == QoS::AtMostOnce {
            let maximum = self.server.maximum_packet_size;
            self.outbound_aliases
                .write(&mut self.tx, &publish, self.options.version, maximum)?;
            return Ok(None);
        }
        let id = self.outbound.enqueue(publish)?;
        self.flush();
        Ok(Some(id))
    }

    /// Sends SUBSCRIBE; the answer comes as [`ClientEvent::Subscribed`] with the
    /// returned packet identifier. Needs a connection. Requests unanswered when the
    /// connection ends are forgotten: subscribe again after reconnecting.
    pub fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<PacketId, SessionError> {
        if subscriptions.is_empty() {
            return Err(SessionError::NoTopicFilters);
        }
        self.request(|packet_id| {
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        })
    }

    /// Sends UNSUBSCRIBE; the answer comes as [`ClientEvent::Unsubscribed`].
    pub fn unsubscribe(
        &mut self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<PacketId, SessionError> {
        if filters.is_empty() {
            return Err(SessionError::NoTopicFilters);
        }
        self.request(|packet_id| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
    }

    fn request(
        &mut self,
        build: impl FnOnce(PacketId) -> Packet,
    ) -> Result<PacketId, SessionError> {
        if self.phase != Phase::Connected {
            return Err(SessionError::NotConnected);
        }
        let id = self.outbound.allocate_id()?;
        let packet = build(id);
        let checked = check_size(
            &packet,
            self.options.version,
            self.server.maximum_packet_size,
        )
        .and_then(|_| Ok(write(&mut self.tx, &packet, self.options.version)?));
        if let Err(err) = checked {
            self.outbound.release_id(id);
            return Err(err);
        }
        self.requests.insert(id, packet.packet_type());
        Ok(id)
    }

    /// Sends DISCONNECT and ends the connection (no event follows; close the
    /// transport after writing). Unacknowledged messages stay in the session.
    pub fn disconnect(&mut self, disconnect: Disconnect) -> Result<(), SessionError> {
        if self.phase == Phase::Disconnected {
            return Err(SessionError::NotConnected);
        }
        let packet = Packet::Disconnect(disconnect);
        check_size(
            &packet,
            self.options.version,
            self.server.maximum_packet_size,
        )?;
        write(&mut self.tx, &packet, self.options.version)?;
        self.end_connection();
        Ok(())
    }

    /// Sends AUTH (MQTT 5 enhanced authentication or re-authentication, §4.12).
    pub fn auth(&mut self, auth: Auth) -> Result<(), SessionError> {
        if self.phase == Phase::Disconnected {
            return Err(SessionError::NotConnected);
        }
        write(&mut self.tx, &Packet::Auth(auth), self.options.version)?;
        Ok(())
    }

    /// Sends PINGREQ now; [`ClientEvent::Pong`] reports the answer. Keep alive sends
    /// them by itself; this is for measuring or probing.
    pub fn ping(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Connected {
            return Err(SessionError::NotConnected);
        }
        if self.ping_sent.is_none() && !self.ping_queued {
            self.queue_ping();
        }
        Ok(())
    }

    fn queue_ping(&mut self) {
        if write(&mut self.tx, &Packet::PingReq, self.options.version).is_ok() {
            self.ping_queued = true;
        }
    }

    fn ping_timeout(&self) -> Duration {
        match self.options.ping_timeout {
            Some(timeout) => timeout,
            None if self.keep_alive.is_zero() => DEFAULT_PING_TIMEOUT,
            None => self.keep_alive / 2,
        }
    }

    /// Sends what the window lets through.
    fn flush(&mut self) {
        if self.phase != Phase::Connected {
            return;
        }
        let events = &mut self.events;
        self.outbound.flush(
            &mut self.tx,
            self.options.version,
            &mut self.outbound_aliases,
            &self.server,
            |packet_id, reason_code| {
                events.push_back(ClientEvent::PublishAcked {
                    packet_id,
                    reason_code,
                })
            },
        );
    }

    /// The connection is over: flows go back to the queue, requests are forgotten.
    fn end_connection(&mut self) {
        self.phase = Phase::Disconnected;
        self.outbound.connection_lost();
        for (id, _) in self.requests.drain() {
            self.outbound.release_id(id);
        }
        self.rx.clear();
        self.ping_queued = false;
        self.ping_sent = None;
    }

    /// Queues a packet the session builds itself (it cannot fail to encode).
    fn send(&mut self, packet: Packet) {
        let _ = write(&mut self.tx, &packet, self.options.version);
    }
}
