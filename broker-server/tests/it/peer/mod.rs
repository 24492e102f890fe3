//! The raw MQTT client of the broker's tests: whole packets (or raw bytes) over any byte
//! stream — a loopback TCP socket ([`Peer::open`], `TestBroker::raw` / `client`), TLS
//! or WebSocket streams ([`Peer::new`]).
//!
//! Its waits ([`Peer::next`], [`Peer::recv`] and everything built on them) never
//! *park* the runtime while it waits for the broker: they poll, yield to the other
//! tasks (the broker runs in the same current-thread runtime) and polls again.
//! Under `#[tokio::test(start_paused = true)]` that matters: tokio auto-advances a paused
//! clock whenever the runtime parks with nothing to do, so an ordinary `.await` on a read
//! could let keep alive, will delay or session expiry timers fire "early". With `Peer`,
//! virtual time moves only when a test calls `tokio::time::advance`. Failure guards use
//! the wall clock ([`WALL_PATIENCE`]) instead of virtual time.
//!
//! "Nothing was sent" is checked without waiting: [`Peer::expect_idle`] makes two
//! PINGREQ round trips. The connection task drains the session's mailbox before every
//! write, so anything the broker had to send by the first PINGREQ leaves before or with
//! the first PINGRESP, and is read before the second.
//!
//! A peer made *parking* ([`Peer::parking`]: the ones `TestBroker::raw` / `client` and
//! [`Peer::new`] / [`Peer::from_tcp`] give) waits like any client instead, with a
//! timer, so that a test on real time does not spin a core while the broker (a child
//! process, or under load) takes its time. [`Peer::try_recv`] and
//! [`Peer::expect_silence`] always wait with a timer: they check that nothing arrives
//! for a while.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::{Duration, Instant as WallInstant};

use bytes::BytesMut;
use protocol::{
    ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode, Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    Will,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Real time a test waits for something that should happen at once before failing.
/// A failure guard only: nothing asserts on it.
pub const WALL_PATIENCE: Duration = Duration::from_secs(10);

/// Every MQTT version a behaviour is checked with (3.1 has its own test in `sessions.rs`).
pub const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Drives `fut` to completion without ever letting the runtime park (so a paused clock
/// does not auto-advance); panics after [`WALL_PATIENCE`] of real time.
pub async fn promptly<F: Future>(what: &str, fut: F) -> F::Output {
    let deadline = WallInstant::now() + WALL_PATIENCE;
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            () = tokio::task::yield_now() => {}
        }
        assert!(
            WallInstant::now() < deadline,
            "{what}: not done after {WALL_PATIENCE:?}"
        );
    }
}

/// Awaits `fut`: with [`promptly`], or, if `parks`, like any future with a timer of
/// [`WALL_PATIENCE`] as failure guard.
async fn settle<F: Future>(parks: bool, what: &str, fut: F) -> F::Output {
    if parks {
        tokio::time::timeout(WALL_PATIENCE, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: not done after {WALL_PATIENCE:?}"))
    } else {
        promptly(what, fut).await
    }
}

/// Lets the broker's tasks run until `condition` holds (without letting virtual time
/// pass).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = WallInstant::now() + WALL_PATIENCE;
    while !condition() {
        assert!(
            WallInstant::now() < deadline,
            "{what}: still false after {WALL_PATIENCE:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// Moves the paused clock forward by `secs` seconds and lets the timers that came due
/// run.
pub async fn advance_secs(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}

pub fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero packet id")
}

pub fn topic_filter(f: &str) -> TopicFilter {
    TopicFilter::new(f.to_string()).expect("valid filter")
}

/// A CONNECT with clean start / clean session and no keep alive (so that advancing a
/// paused clock never times a bystander out).
pub fn clean(version: ProtocolVersion, client_id: &str) -> Connect {
    let mut connect = Connect::new(version, client_id);
    connect.keep_alive = 0;
    connect
}

/// A CONNECT that resumes or keeps a session: clean session 0 (3.x), or clean start 0
/// with Session Expiry Interval `expiry_v5` (5.0).
pub fn persistent(version: ProtocolVersion, client_id: &str, expiry_v5: u32) -> Connect {
    let mut connect = clean(version, client_id);
    connect.clean_start = false;
    if version.is_v5() {
        connect.properties.session_expiry_interval = Some(expiry_v5);
    }
    connect
}

/// A will message.
pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: TopicName::new(topic).expect("valid topic"),
        payload: payload.to_string().into(),
        qos,
        retain,
        properties: Default::default(),
    }
}

/// An application message as a client sends it.
pub fn message(topic: &str, payload: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    let mut p = Publish::new(topic.to_string(), payload.to_string());
    p.qos = qos;
    p.packet_id = packet_id.map(pid);
    p
}

/// A subscription with options.
pub fn subscription(filter: &str, options: SubscriptionOptions) -> Subscription {
    Subscription {
        filter: topic_filter(filter),
        options,
    }
}

/// The payload of a PUBLISH as text.
pub fn text(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.payload).expect("UTF-8 payload")
}

/// One side of an MQTT connection, driven by the test.
pub struct Peer<S = TcpStream> {
    /// The connection, for tests that write or read around the codec.
    pub stream: S,
    pub version: ProtocolVersion,
    buf: BytesMut,
    /// Waits park the runtime (a timer as failure guard) instead of polling.
    parks: bool,
}

impl Peer {
    /// A TCP connection to `addr` (nothing sent yet).
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = promptly("TCP connect", TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        Self::unparked(stream, version)
    }

    /// A parking peer on a socket connected already (e.g. from a chosen source
    /// address).
    pub fn from_tcp(stream: TcpStream, version: ProtocolVersion) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self::new(stream, version)
    }

    /// A non-parking TCP peer (see the module's documentation), for tests on a paused
    /// clock.
    fn unparked(stream: TcpStream, version: ProtocolVersion) -> Self {
        Self {
            parks: false,
            ..Self::from_tcp(stream, version)
        }
    }

    /// Connects with `connect` and returns the CONNACK, whatever it says.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut peer = Self::open(addr, connect.protocol).await;
        let connack = peer.handshake(connect).await;
        (peer, connack)
    }

    /// Connects with `connect`, asserting success; returns Session Present too.
    pub async fn connected(addr: SocketAddr, connect: Connect) -> (Self, bool) {
        let (peer, connack) = Self::connect(addr, connect).await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        (peer, connack.session_present)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    /// A parking peer on `stream` (nothing sent yet).
    pub fn new(stream: S, version: ProtocolVersion) -> Self {
        Self {
            stream,
            version,
            buf: BytesMut::with_capacity(4096),
            parks: true,
        }
    }

    /// This peer, made to wait with a timer (see the module's documentation).
    pub fn parking(self) -> Self {
        Self {
            parks: true,
            ..self
        }
    }

    /// Sends `connect` and returns the CONNACK, whatever it says.
    pub async fn handshake(&mut self, connect: Connect) -> ConnAck {
        self.send(&Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        protocol::encode(packet, self.version, &mut out).expect("encodes");
        self.send_bytes(&out).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        settle(self.parks, "write", self.stream.write_all(bytes))
            .await
            .expect("write");
        settle(self.parks, "flush", self.stream.flush())
            .await
            .expect("flush");
    }

    /// Sends a PUBLISH and waits for nothing (see [`Peer::publish`] for the whole flow).
    pub async fn send_publish(&mut self, publish: Publish) {
        self.send(&Packet::Publish(publish)).await;
    }

    /// The next packet, `Ok(None)` if the broker closed the connection, `Err` if
    /// nothing came within `wait` (a timer: the runtime may park, and a paused clock
    /// advance).
    pub async fn try_recv(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let limits = protocol::Limits {
            version: self.version,
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(packet) =
                protocol::decode(&mut self.buf, &limits).expect("broker sends valid packets")
            {
                return Ok(Some(packet));
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Err(_) => return Err(()),
                Ok(Ok(0) | Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing arrives within `wait` (with paused time, or short real
    /// waits for "nothing more is sent").
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(packet) = self.try_recv(wait).await {
            panic!("expected nothing, got {packet:?}");
        }
    }

    /// Subscribes to `filters` (default options at each QoS); returns the SUBACK's
    /// reason codes, whatever they are.
    pub async fn subscribe_many(
        &mut self,
        packet_id: u16,
        filters: &[(&str, QoS)],
    ) -> Vec<ReasonCode> {
        let subscriptions = filters
            .iter()
            .map(|(filter, qos)| subscription(filter, SubscriptionOptions::new(*qos)))
            .collect();
        self.subscribe_with(packet_id, subscriptions).await
    }

    /// The next packet, or `None` once the broker closed the connection.
    pub async fn next(&mut self) -> Option<Packet> {
        let limits = protocol::Limits {
            version: self.version,
            ..Default::default()
        };
        loop {
            if let Some(packet) =
                protocol::decode(&mut self.buf, &limits).expect("broker sends valid packets")
            {
                return Some(packet);
            }
            self.buf.reserve(4096);
            match settle(self.parks, "read", self.stream.read_buf(&mut self.buf)).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next packet; panics if the connection closes instead.
    pub async fn recv(&mut self) -> Packet {
        self.next()
            .await
            .expect("connection closed while waiting for a packet")
    }

    /// The next packet, which must be a PUBLISH (not acknowledged).
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Reads until the broker closes the connection; returns what arrived before.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(packet) = self.next().await {
            seen.push(packet);
        }
        seen
    }

    /// Every PUBLISH the broker has for this client right now (not acknowledged): two
    /// PINGREQ round trips, collecting what arrives before the second PINGRESP.
    pub async fn drain(&mut self) -> Vec<Publish> {
        let mut got = Vec::new();
        for _ in 0..2 {
            self.send(&Packet::PingReq).await;
            loop {
                match self.next().await {
                    Some(Packet::PingResp) => break,
                    Some(Packet::Publish(p)) => got.push(p),
                    Some(other) => panic!("expected PUBLISH or PINGRESP, got {other:?}"),
                    None => panic!("connection closed; expected it open"),
                }
            }
        }
        got
    }

    /// Receives and acknowledges every PUBLISH (and PUBREL) the broker sends until it
    /// has nothing more for this client: until two PINGREQ round trips in a row bring
    /// nothing else. Returns the messages in arrival order.
    pub async fn receive_all(&mut self) -> Vec<Publish> {
        let mut got = Vec::new();
        let mut quiet_rounds = 0;
        while quiet_rounds < 2 {
            self.send(&Packet::PingReq).await;
            let mut quiet = true;
            loop {
                match self.recv().await {
                    Packet::PingResp => break,
                    Packet::Publish(p) => {
                        quiet = false;
                        match (p.qos, p.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => {
                                self.send(&Packet::PubAck(PubAck::new(id))).await;
                            }
                            (QoS::ExactlyOnce, Some(id)) => {
                                self.send(&Packet::PubRec(PubRec::new(id))).await;
                            }
                            _ => {}
                        }
                        got.push(p);
                    }
                    Packet::PubRel(rel) => {
                        quiet = false;
                        let comp = PubComp::new(rel.packet_id);
                        self.send(&Packet::PubComp(comp)).await;
                    }
                    other => panic!("expected PUBLISH, PUBREL or PINGRESP, got {other:?}"),
                }
            }
            quiet_rounds = if quiet { quiet_rounds + 1 } else { 0 };
        }
        got
    }

    /// Asserts that the broker has nothing (more) to send this client right now.
    pub async fn expect_idle(&mut self) {
        let got = self.drain().await;
        assert!(
            got.is_empty(),
            "expected nothing from the broker, got {got:?}"
        );
    }

    /// PINGREQ, answered by PINGRESP (the connection is alive).
    pub async fn ping(&mut self) {
        self.send(&Packet::PingReq).await;
        match self.next().await {
            Some(Packet::PingResp) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Subscribes; returns the SUBACK reason codes.
    pub async fn subscribe_with(
        &mut self,
        packet_id: u16,
        subscriptions: Vec<Subscription>,
    ) -> Vec<ReasonCode> {
        let packet = Packet::Subscribe(Subscribe {
            packet_id: pid(packet_id),
            subscriptions,
            properties: Default::default(),
        });
        self.send(&packet).await;
        match self.recv().await {
            Packet::SubAck(ack) => {
                assert_eq!(ack.packet_id, pid(packet_id));
                ack.reason_codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes to one filter at `qos` with default options, asserting it is granted.
    pub async fn subscribe(&mut self, packet_id: u16, filter: &str, qos: QoS) {
        let codes = self
            .subscribe_with(
                packet_id,
                vec![subscription(filter, SubscriptionOptions::new(qos))],
            )
            .await;
        assert_eq!(codes, [ReasonCode::from_u8(qos as u8).unwrap()], "SUBACK");
    }

    /// Publishes and completes the flow: QoS 0 is followed by a PINGREQ round trip, so
    /// in every case the broker has routed the message when this returns.
    pub async fn publish(&mut self, publish: Publish) {
        let qos = publish.qos;
        let id = publish.packet_id;
        self.send(&Packet::Publish(publish)).await;
        match qos {
            QoS::AtMostOnce => self.ping().await,
            QoS::AtLeastOnce => match self.recv().await {
                Packet::PubAck(ack) if Some(ack.packet_id) == id => {}
                other => panic!("expected PUBACK, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                let id = id.expect("QoS 2 has a packet id");
                match self.recv().await {
                    Packet::PubRec(rec) if rec.packet_id == id => {}
                    other => panic!("expected PUBREC, got {other:?}"),
                }
                self.send(&Packet::PubRel(PubRel::new(id))).await;
                match self.recv().await {
                    Packet::PubComp(comp) if comp.packet_id == id => {}
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Acknowledges a received PUBLISH completely (PUBACK, or PUBREC / PUBREL /
    /// PUBCOMP).
    pub async fn acknowledge(&mut self, publish: &Publish) {
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let id = publish.packet_id.expect("QoS 1 has a packet id");
                self.send(&Packet::PubAck(PubAck::new(id))).await;
            }
            QoS::ExactlyOnce => {
                let id = publish.packet_id.expect("QoS 2 has a packet id");
                self.send(&Packet::PubRec(PubRec::new(id))).await;
                match self.recv().await {
                    Packet::PubRel(rel) if rel.packet_id == id => {}
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(&Packet::PubComp(PubComp::new(id))).await;
            }
        }
    }

    /// The next PUBLISH, acknowledged.
    pub async fn recv_acked(&mut self) -> Publish {
        let publish = self.recv_publish().await;
        self.acknowledge(&publish).await;
        publish
    }

    /// Sends DISCONNECT (MQTT 3.x ignores the reason and properties) and waits for the
    /// broker to close the connection, which it does after storing the session.
    pub async fn disconnect_with(mut self, disconnect: Disconnect) {
        self.send(&Packet::Disconnect(disconnect)).await;
        let after = self.expect_closed().await;
        assert!(after.is_empty(), "nothing after DISCONNECT, got {after:?}");
    }

    /// Every byte until the broker closes the connection (for answers checked byte by
    /// byte).
    pub async fn raw_until_closed(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.buf).to_vec();
        settle(
            self.parks,
            "read to end",
            self.stream.read_to_end(&mut bytes),
        )
        .await
        .expect("read");
        bytes
    }

    /// Normal disconnection.
    pub async fn disconnect(self) {
        self.disconnect_with(Disconnect::new(ReasonCode::Success))
            .await;
    }
}

/// Declares a test module `$name` with one test per version in [`VERSIONS`], each
/// calling `async fn $name(version)` of the enclosing file: `each_version!(name);` or,
/// for a paused clock, `each_version!(paused name);`.
macro_rules! each_version {
    ($name:ident) => {
        each_version!(@ $name, tokio::test);
    };
    (paused $name:ident) => {
        each_version!(@ $name, tokio::test(start_paused = true));
    };
    (@ $name:ident, $($test:tt)+) => {
        mod $name {
            #[$($test)+]
            async fn v3_1_1() {
                super::$name(protocol::ProtocolVersion::V3_1_1).await;
            }
            #[$($test)+]
            async fn v5() {
                super::$name(protocol::ProtocolVersion::V5).await;
            }
        }
    };
}
