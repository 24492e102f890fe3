//! A deterministic harness for the session state machines, after quinn-proto's `Pair`:
//! a [`ClientSession`] and a [`ServerSession`] joined by an in-memory link, a simulated
//! clock advanced by hand, packets that can be dropped in either direction, a link that
//! can be cut and reconnected, and a minimal broker that accepts connections, keeps the
//! session state between them and loops publications back to the client's own
//! subscriptions.
//!
//! Everything that crosses the link is decoded and logged, so tests assert on packets
//! as well as on events.

#![allow(dead_code, unreachable_pub)] // a harness: not every helper has a test yet

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::client::{
    self, Channels, Command, ConnectFailure, ConnectOptions, Connection, Event, LinkAction,
    Message, Outgoing, PublishOutcome,
};
use protocol::session::{
    AcceptOptions, ClientEvent, ClientOptions, ClientSession, CloseReason, SendOutcome,
    ServerEvent, ServerOptions, ServerSession, SessionState,
};
use protocol::{
    Connect, Limits, MAX_PACKET_SIZE, Packet, PacketId, PacketType, ProtocolVersion, Publish, QoS,
    ReasonCode, Subscription, SubscriptionOptions, TopicFilter, decode, encode,
};
use web_time::Instant;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// The in-test broker: one client, its subscriptions, its stored session.
#[derive(Debug)]
pub struct Broker {
    /// Accept CONNECT as soon as it is reported (else the test calls `accept`).
    pub auto_accept: bool,
    /// Acknowledge each QoS 1/2 PUBLISH right after "storing" it (else it goes to
    /// `unacked`, for the test to acknowledge).
    pub auto_ack: bool,
    /// Subscriptions of the client: filter and granted QoS.
    pub subscriptions: Vec<(TopicFilter, QoS)>,
    /// Filters SUBACK refuses (Not authorized).
    pub refused_filters: Vec<String>,
    /// The session state stored when the last connection closed.
    pub stored: Option<SessionState>,
    /// Whether the current connection's session outlives it.
    persistent: bool,
    /// Every CONNECT reported.
    pub connects: Vec<Connect>,
    /// Every PUBLISH the server session surfaced: what the broker "stored".
    pub received: Vec<Publish>,
    /// Inbound QoS 1/2 messages waiting for the test to acknowledge.
    pub unacked: Vec<PacketId>,
    /// Outcomes of the broker's `send_publish` calls.
    pub sent: Vec<SendOutcome>,
    /// `Delivered` events: outbound flows that ended.
    pub delivered: Vec<(PacketId, ReasonCode)>,
    /// `Released` events.
    pub released: Vec<PacketId>,
    /// `Closed` events.
    pub closed: Vec<(CloseReason, bool)>,
}

impl Default for Broker {
    fn default() -> Self {
        Self {
            auto_accept: true,
            auto_ack: true,
            subscriptions: Vec::new(),
            refused_filters: Vec::new(),
            stored: None,
            persistent: false,
            connects: Vec::new(),
            received: Vec::new(),
            unacked: Vec::new(),
            sent: Vec::new(),
            delivered: Vec::new(),
            released: Vec::new(),
            closed: Vec::new(),
        }
    }
}

impl Broker {
    /// The broker's part of a server event: accept, store, route, acknowledge.
    pub fn handle(&mut self, server: &mut ServerSession, event: ServerEvent) {
        let broker = self;
        match event {
            ServerEvent::Connect(connect) => {
                broker.persistent = !connect.clean_start
                    || connect
                        .properties
                        .session_expiry_interval
                        .is_some_and(|e| e > 0);
                if connect.clean_start {
                    broker.stored = None;
                    broker.subscriptions.clear();
                }
                let assigned = connect.client_id.is_empty().then(|| "assigned-1".into());
                broker.connects.push(*connect);
                if broker.auto_accept {
                    let options = AcceptOptions {
                        assigned_client_identifier: assigned,
                        ..AcceptOptions::default()
                    };
                    let resumed = broker.stored.take();
                    server.accept(options, resumed).expect("accept");
                }
            }
            ServerEvent::Publish(publish) => {
                broker.received.push(publish.clone());
                let granted = broker
                    .subscriptions
                    .iter()
                    .filter(|(filter, _)| filter.matches(&publish.topic))
                    .map(|&(_, qos)| qos)
                    .max();
                if let Some(qos) = granted {
                    let mut copy = publish.clone();
                    copy.qos = copy.qos.min(qos);
                    copy.retain = false;
                    let outcome = server.send_publish(copy).expect("send_publish");
                    broker.sent.push(outcome);
                }
                if let Some(id) = publish.packet_id {
                    if broker.auto_ack {
                        server
                            .ack_publish(id, ReasonCode::Success)
                            .expect("ack_publish");
                    } else {
                        broker.unacked.push(id);
                    }
                }
            }
            ServerEvent::Subscribe(subscribe) => {
                let mut codes = Vec::new();
                for Subscription { filter, options } in subscribe.subscriptions {
                    if broker.refused_filters.iter().any(|f| f == filter.as_str()) {
                        codes.push(ReasonCode::NotAuthorized);
                        continue;
                    }
                    broker.subscriptions.retain(|(f, _)| *f != filter);
                    broker.subscriptions.push((filter, options.qos));
                    codes.push(match options.qos {
                        QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
                    });
                }
                server
                    .suback(subscribe.packet_id, codes, Default::default())
                    .expect("suback");
            }
            ServerEvent::Unsubscribe(unsubscribe) => {
                broker
                    .subscriptions
                    .retain(|(f, _)| !unsubscribe.filters.contains(f));
                let codes = vec![ReasonCode::Success; unsubscribe.filters.len()];
                server
                    .unsuback(unsubscribe.packet_id, codes, Default::default())
                    .expect("unsuback");
            }
            ServerEvent::Delivered {
                packet_id,
                reason_code,
            } => broker.delivered.push((packet_id, reason_code)),
            ServerEvent::Released { packet_id } => broker.released.push(packet_id),
            ServerEvent::Closed {
                reason,
                publish_will,
            } => {
                broker.closed.push((reason, publish_will));
                if broker.persistent {
                    broker.stored = Some(server.take_state());
                }
            }
            _ => {}
        }
    }
}

/// A client and a server session on a simulated link and clock.
#[derive(Debug)]
pub struct Pair {
    /// The clock's origin.
    pub start: Instant,
    /// Simulated time.
    pub now: Instant,
    pub client: ClientSession,
    pub server: ServerSession,
    pub server_options: ServerOptions,
    pub broker: Broker,
    /// Whether the transport is up.
    pub link_up: bool,
    /// Drop every client→server byte (a client gone silent on a half-dead link).
    pub blackhole_to_server: bool,
    /// Packet types to drop, each entry dropping the next packet of its type.
    drops: Vec<(Dir, PacketType)>,
    /// Packets that crossed the link, in order.
    pub to_server: Vec<Packet>,
    pub to_client: Vec<Packet>,
    /// Packets the link dropped.
    pub dropped: Vec<(Dir, Packet)>,
    /// Client events, in order.
    pub client_events: Vec<ClientEvent>,
    /// Server events, in order.
    pub server_events: Vec<ServerEvent>,
    version: ProtocolVersion,
}

impl Pair {
    /// A pair, not yet connected.
    pub fn new(client: ClientOptions, server: ServerOptions) -> Self {
        let start = Instant::now();
        let version = client.version;
        Self {
            start,
            now: start,
            client: ClientSession::new(client),
            server: ServerSession::new(server.clone(), start),
            server_options: server,
            broker: Broker::default(),
            link_up: false,
            blackhole_to_server: false,
            drops: Vec::new(),
            to_server: Vec::new(),
            to_client: Vec::new(),
            dropped: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            version,
        }
    }

    /// A pair connected (CONNECT / CONNACK done).
    pub fn connected(client: ClientOptions, server: ServerOptions) -> Self {
        let mut pair = Self::new(client, server);
        pair.connect();
        assert!(
            pair.client.is_connected(),
            "connect failed: {:?}",
            pair.client_events
        );
        pair
    }

    /// Opens the link and has the client connect.
    pub fn connect(&mut self) {
        self.link_up = true;
        self.client.connect(self.now).expect("CONNECT encodes");
        self.drive();
    }

    /// Cuts the link: both sides learn that the transport closed.
    pub fn cut(&mut self) {
        self.link_up = false;
        self.client.handle_connection_lost();
        self.server.handle_connection_lost();
        self.drive();
    }

    /// A new transport: a fresh server session, and the client connects again.
    pub fn reconnect(&mut self) {
        if self.link_up {
            self.cut();
        }
        self.server = ServerSession::new(self.server_options.clone(), self.now);
        self.connect();
    }

    /// Drops the next packet of type `packet_type` travelling in `dir`.
    pub fn drop_next(&mut self, dir: Dir, packet_type: PacketType) {
        self.drops.push((dir, packet_type));
    }

    /// Advances the clock by `by`, firing every timer that falls due on the way at its
    /// exact instant.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.server.handle_timeout(self.now);
                    }
                    if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.client.handle_timeout(self.now);
                    }
                    self.drive();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("timers keep firing without time passing");
    }

    /// Seconds since the start, for messages.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves bytes and events until nothing moves any more.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            let mut buf = BytesMut::new();
            if self.client.poll_transmit(self.now, &mut buf) {
                progress = true;
                self.deliver(Dir::ToServer, buf);
            }
            let mut buf = BytesMut::new();
            if self.server.poll_transmit(&mut buf) {
                progress = true;
                self.deliver(Dir::ToClient, buf);
            }
            while let Some(event) = self.client.poll_event() {
                progress = true;
                self.client_events.push(event);
            }
            while let Some(event) = self.server.poll_event() {
                progress = true;
                self.server_events.push(event.clone());
                self.broker_handle(event);
            }
            // A side that considers the connection over closes the socket (after writing
            // what it had, above); the other side then sees the transport close.
            if self.link_up && (self.server.is_closed() || !self.client.is_open()) {
                self.link_up = false;
                self.client.handle_connection_lost();
                self.server.handle_connection_lost();
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("the pair never settles");
    }

    fn deliver(&mut self, dir: Dir, bytes: BytesMut) {
        if !self.link_up || (dir == Dir::ToServer && self.blackhole_to_server) {
            return;
        }
        let mut out = BytesMut::new();
        for (raw, packet) in split_packets(bytes, self.version) {
            if let Some(packet) = packet {
                if let Some(at) = self
                    .drops
                    .iter()
                    .position(|&(d, t)| d == dir && t == packet.packet_type())
                {
                    self.drops.remove(at);
                    self.dropped.push((dir, packet));
                    continue;
                }
                match dir {
                    Dir::ToServer => self.to_server.push(packet),
                    Dir::ToClient => self.to_client.push(packet),
                }
            }
            out.extend_from_slice(&raw);
        }
        match dir {
            Dir::ToServer => self.server.handle_bytes(&mut out, self.now),
            Dir::ToClient => self.client.handle_bytes(&mut out),
        }
    }

    fn broker_handle(&mut self, event: ServerEvent) {
        self.broker.handle(&mut self.server, event);
    }

    /// The broker acknowledges every message it holds back.
    pub fn ack_all(&mut self) {
        for id in std::mem::take(&mut self.broker.unacked) {
            self.server
                .ack_publish(id, ReasonCode::Success)
                .expect("ack_publish");
        }
        self.drive();
    }

    /// Subscribes the client to `filter` at `qos` and waits for the SUBACK.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) {
        let subscription = Subscription {
            filter: TopicFilter::new(filter.to_owned()).expect("valid filter"),
            options: SubscriptionOptions::new(qos),
        };
        let id = self
            .client
            .subscribe(vec![subscription], Default::default())
            .expect("subscribe");
        self.drive();
        assert!(
            self.client_events
                .iter()
                .any(|e| matches!(e, ClientEvent::Subscribed(ack) if ack.packet_id == id)),
            "no SUBACK for {filter}"
        );
    }

    /// The client publishes; returns the packet identifier.
    pub fn publish(&mut self, topic: &str, payload: &'static str, qos: QoS) -> Option<PacketId> {
        let id = self
            .client
            .publish(topic.to_owned(), payload, qos, false, Default::default())
            .expect("publish");
        self.drive();
        id
    }

    /// Application messages the client received.
    pub fn client_messages(&self) -> Vec<&Publish> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// `PublishAcked` events of the client.
    pub fn client_acks(&self) -> Vec<(PacketId, ReasonCode)> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::PublishAcked {
                    packet_id,
                    reason_code,
                } => Some((*packet_id, *reason_code)),
                _ => None,
            })
            .collect()
    }

    /// PUBLISH packets that crossed the link in `dir`.
    pub fn publishes(&self, dir: Dir) -> Vec<&Publish> {
        let log = if dir == Dir::ToServer {
            &self.to_server
        } else {
            &self.to_client
        };
        log.iter()
            .filter_map(|p| match p {
                Packet::Publish(publish) => Some(publish),
                _ => None,
            })
            .collect()
    }

    /// How many packets of `packet_type` crossed the link in `dir`.
    pub fn count(&self, dir: Dir, packet_type: PacketType) -> usize {
        let log = if dir == Dir::ToServer {
            &self.to_server
        } else {
            &self.to_client
        };
        log.iter()
            .filter(|p| p.packet_type() == packet_type)
            .count()
    }
}

/// Cuts a byte stream into packets (raw bytes plus the decoded packet); undecodable
/// bytes stay raw, in one piece.
pub fn split_packets(
    mut bytes: BytesMut,
    version: ProtocolVersion,
) -> Vec<(Bytes, Option<Packet>)> {
    let limits = Limits {
        max_packet_size: MAX_PACKET_SIZE,
        version,
    };
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut probe = bytes.clone();
        match decode(&mut probe, &limits) {
            Ok(Some(packet)) => {
                let used = bytes.len() - probe.len();
                out.push((bytes.split_to(used).freeze(), Some(packet)));
            }
            _ => {
                out.push((bytes.split().freeze(), None));
                break;
            }
        }
    }
    out
}

/// Encodes `packets` for `version`, back to back.
pub fn encode_all(packets: &[Packet], version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(packet, version, &mut buf).expect("test packets encode");
    }
    buf
}

/// Decodes everything in `bytes` (which must be whole packets).
pub fn decode_all(bytes: BytesMut, version: ProtocolVersion) -> Vec<Packet> {
    split_packets(bytes, version)
        .into_iter()
        .map(|(raw, packet)| packet.unwrap_or_else(|| panic!("undecodable bytes {raw:?}")))
        .collect()
}

/// A server session driven by hand with raw packets, for protocol violations that
/// [`ClientSession`] never commits.
#[derive(Debug)]
pub struct RawClient {
    pub now: Instant,
    pub server: ServerSession,
    pub version: ProtocolVersion,
}

impl RawClient {
    pub fn new(options: ServerOptions, version: ProtocolVersion) -> Self {
        let now = Instant::now();
        Self {
            now,
            server: ServerSession::new(options, now),
            version,
        }
    }

    /// Sends CONNECT (with `edit` applied) and has the broker accept it; returns the
    /// server's answer.
    pub fn connect(&mut self, edit: impl FnOnce(&mut Connect)) -> Vec<Packet> {
        let mut connect = Connect::new(self.version, "raw");
        edit(&mut connect);
        let out = self.send(&[Packet::Connect(Box::new(connect))]);
        assert!(out.is_empty(), "nothing before accept: {out:?}");
        assert!(matches!(
            self.events().as_slice(),
            [ServerEvent::Connect(_)]
        ));
        self.server
            .accept(AcceptOptions::default(), None)
            .expect("accept");
        self.transmitted()
    }

    /// Feeds `packets` to the server session; returns what it transmits.
    pub fn send(&mut self, packets: &[Packet]) -> Vec<Packet> {
        self.send_bytes(encode_all(packets, self.version))
    }

    /// Feeds raw bytes; returns what the server transmits.
    pub fn send_bytes(&mut self, mut bytes: BytesMut) -> Vec<Packet> {
        self.server.handle_bytes(&mut bytes, self.now);
        self.transmitted()
    }

    /// What the server session has to transmit.
    pub fn transmitted(&mut self) -> Vec<Packet> {
        let mut out = BytesMut::new();
        self.server.poll_transmit(&mut out);
        decode_all(out, self.version)
    }

    /// Every pending server event.
    pub fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// The `Closed` reason among `events`, if any.
    pub fn closed(events: &[ServerEvent]) -> Option<&CloseReason> {
        events.iter().find_map(|e| match e {
            ServerEvent::Closed { reason, .. } => Some(reason),
            _ => None,
        })
    }
}

/// A QoS 1 or 2 PUBLISH from a raw client.
pub fn publish(topic: &str, qos: QoS, id: u16) -> Publish {
    let mut publish = Publish::new(topic.to_owned(), "payload");
    publish.qos = qos;
    publish.packet_id = PacketId::new(id);
    publish
}

/// A packet identifier.
pub fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

/// Default client options for MQTT 5 and for MQTT 3.1.1.
pub fn both_versions() -> [ClientOptions; 2] {
    [
        ClientOptions::new("c1"),
        ClientOptions::new("c1").version(ProtocolVersion::V3_1_1),
    ]
}

/// Client options for a persistent MQTT 5 session.
pub fn persistent_v5(client_id: &str) -> ClientOptions {
    ClientOptions::new(client_id.to_owned())
        .session_expiry_interval(3600)
        .clean_start(false)
}

/// Client options for a persistent MQTT 3.1.1 session.
pub fn persistent_v311(client_id: &str) -> ClientOptions {
    ClientOptions::new(client_id.to_owned())
        .version(ProtocolVersion::V3_1_1)
        .clean_start(false)
}

/// The channels of the client core under test: unbounded message buffers and answer
/// slots anyone can read.
#[derive(Debug)]
pub struct Cells;

/// Where an answer lands.
pub type Slot<T> = Rc<RefCell<Option<Result<T, client::Error>>>>;

/// A local subscription's messages.
pub type Inbox = Rc<RefCell<Vec<Message>>>;

impl Channels for Cells {
    type Sender = Inbox;
    type Oneshot<T: std::fmt::Debug> = Rc<RefCell<Option<T>>>;
    type ConnectError = ConnectFailure;

    fn deliver(sender: &Inbox, message: Message) -> bool {
        sender.borrow_mut().push(message);
        true
    }

    fn send_once<T: std::fmt::Debug>(oneshot: Rc<RefCell<Option<T>>>, value: T) {
        *oneshot.borrow_mut() = Some(value);
    }
}

/// The client core ([`Connection`]) and a server session on a simulated link and
/// clock, with the same in-test [`Broker`] as [`Pair`]. The harness is the adapter: it
/// opens the "transport" when the connection asks (a fresh server session each time,
/// unless `refuse_open`), moves bytes both ways and reports them written.
#[derive(Debug)]
pub struct ClientPair {
    pub now: Instant,
    pub conn: Connection<Cells>,
    /// `Client::connect`'s answer.
    pub ready: client::channels::Ready<Cells>,
    pub server: ServerSession,
    pub server_options: ServerOptions,
    pub broker: Broker,
    /// Whether the transport is up.
    pub link_up: bool,
    /// Opening attempts fail (the broker is unreachable).
    pub refuse_open: bool,
    /// How many transports the connection asked for.
    pub opens: usize,
    /// Packets that crossed the link, in order.
    pub to_server: Vec<Packet>,
    pub to_client: Vec<Packet>,
    /// The connection's events, in order.
    pub events: Vec<Event>,
    /// Local subscription numbers.
    next_local: u64,
    version: ProtocolVersion,
}

impl ClientPair {
    /// A started client core, connected unless the options or the server refuse it.
    /// `seed` seeds the reconnect jitter.
    pub fn connected(options: ConnectOptions<()>, server: ServerOptions, seed: u64) -> Self {
        let now = Instant::now();
        let ready = Rc::default();
        let version = options.session.version;
        let mut pair = Self {
            now,
            conn: Connection::new(&options, Rc::clone(&ready), seed),
            ready,
            server: ServerSession::new(server.clone(), now),
            server_options: server,
            broker: Broker::default(),
            link_up: false,
            refuse_open: false,
            opens: 0,
            to_server: Vec::new(),
            to_client: Vec::new(),
            events: Vec::new(),
            next_local: 1,
            version,
        };
        pair.conn.start(now);
        pair.drive();
        pair
    }

    /// Moves bytes, transport actions and events until nothing moves any more.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            let mut out = BytesMut::new();
            let action = self.conn.poll(self.now, &mut out);
            if !out.is_empty() && self.link_up {
                progress = true;
                self.conn.handle_written(out.len());
                self.to_server.extend(
                    split_packets(out.clone(), self.version)
                        .into_iter()
                        .filter_map(|(_, p)| p),
                );
                self.server.handle_bytes(&mut out, self.now);
            }
            match action {
                Some(LinkAction::Open) => {
                    progress = true;
                    self.opens += 1;
                    if self.refuse_open {
                        let failure = ConnectFailure::Closed("unreachable".into());
                        self.conn.handle_open_failed(failure, true, self.now);
                    } else {
                        self.server = ServerSession::new(self.server_options.clone(), self.now);
                        self.link_up = true;
                        self.conn.handle_opened(self.now);
                    }
                }
                Some(LinkAction::Close) => {
                    progress = true;
                    if self.link_up {
                        self.link_up = false;
                        self.server.handle_connection_lost();
                    }
                }
                _ => {}
            }
            let mut buf = BytesMut::new();
            if self.server.poll_transmit(&mut buf) && self.link_up {
                progress = true;
                self.to_client.extend(
                    split_packets(buf.clone(), self.version)
                        .into_iter()
                        .filter_map(|(_, p)| p),
                );
                self.conn.handle_bytes(&mut buf);
            }
            while let Some(event) = self.server.poll_event() {
                progress = true;
                self.broker.handle(&mut self.server, event);
            }
            if self.link_up && self.server.is_closed() {
                self.link_up = false;
                self.conn.handle_connection_lost(None);
                self.server.handle_connection_lost();
                progress = true;
            }
            while let Some(event) = self.conn.poll_event() {
                progress = true;
                self.events.push(event);
            }
            if !progress {
                return;
            }
        }
        panic!("the client pair never settles");
    }

    /// Cuts the link: both sides learn that the transport failed.
    pub fn cut(&mut self) {
        self.link_up = false;
        self.conn.handle_connection_lost(Some("cut".into()));
        self.server.handle_connection_lost();
        self.drive();
    }

    /// Advances the clock by `by`, firing every timer that falls due on the way.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            let server = self.link_up.then(|| self.server.poll_timeout()).flatten();
            let next = [self.conn.poll_timeout(), server]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    if server.is_some_and(|t| t <= self.now) {
                        self.server.handle_timeout(self.now);
                    }
                    if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.conn.handle_timeout(self.now);
                    }
                    self.drive();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("timers keep firing without time passing");
    }

    /// Subscribes a new local subscription to `filter`; returns its number, its inbox
    /// and the slot of the `subscribe` call.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> (u64, Inbox, Slot<QoS>) {
        let local = self.next_local;
        self.next_local += 1;
        let inbox = Inbox::default();
        let reply = Slot::default();
        self.conn.handle_command(Command::Subscribe {
            local,
            filter: TopicFilter::new(filter.to_owned()).expect("valid filter"),
            options: SubscriptionOptions::new(qos),
            sender: Rc::clone(&inbox),
            reply: Rc::clone(&reply),
        });
        self.drive();
        (local, inbox, reply)
    }

    /// Publishes through the core; returns the slot of the `publish` call.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &'static str,
        qos: QoS,
    ) -> Slot<PublishOutcome> {
        let reply = Slot::default();
        let outgoing = Outgoing::new(topic.to_owned(), payload, qos).expect("valid topic");
        self.conn
            .handle_command(Command::Publish(outgoing, Rc::clone(&reply)));
        self.drive();
        reply
    }

    /// The broker sends `publish` to the client.
    pub fn broker_sends(&mut self, publish: Publish) {
        let outcome = self.server.send_publish(publish).expect("send_publish");
        self.broker.sent.push(outcome);
        self.drive();
    }
}
