//! Takeover and failover times of a broker cluster, for `scripts/bench-cluster.sh`.
//!
//! ```text
//! cluster_times takeover HOST:PORT_A HOST:PORT_B [ROUNDS]
//! cluster_times failover HOST:PORT_A HOST:PORT_B HOST:PORT_PUB PID_OF_A
//! ```
//!
//! - `takeover`: a client id with a persistent session (MQTT 5, Session Expiry 300 s,
//!   one subscription) is connected to A; the same id then connects to B. Measured per
//!   round: B's CONNECT→CONNACK, and the time from that CONNECT until the connection
//!   on A sees DISCONNECT (or is closed).
//! - `failover`: a persistent-session subscriber on A receives QoS 1 messages that a
//!   publisher on another node sends every 10 ms. The tool SIGKILLs A (`kill -9 PID`),
//!   and as soon as the connection drops it connects the same client id to B (again
//!   every 100 ms until accepted), subscribing again only if the session was not
//!   resumed. Measured from the kill: CONNACK on B, the first delivery on B, and how
//!   many of the messages sent in between never arrived.
//!
//! Prints one JSON object per run on stdout. Plain TCP, no credentials; the clock is
//! `Instant` in this process only.

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use native_client::{ProtocolVersion, QoS, ReasonCode, TopicFilter};
use protocol::packet::{self, Limits};
use protocol::{
    ConnAck, Connect, Disconnect, Packet, PubAck, Publish, Subscribe, Subscription,
    SubscriptionOptions,
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One MQTT 5 connection: a socket and its read buffer.
struct Conn {
    stream: TcpStream,
    read: BytesMut,
    limits: Limits,
    /// Sequence numbers of messages that arrived while waiting for a SUBACK.
    early: std::collections::VecDeque<u64>,
}

impl Conn {
    /// Connects `client_id` with a persistent session; returns the CONNACK too.
    async fn open(addr: &str, client_id: &str) -> Result<(Self, ConnAck), Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            read: BytesMut::with_capacity(16 * 1024),
            limits: Limits {
                version: ProtocolVersion::V5,
                ..Limits::default()
            },
            early: Default::default(),
        };
        let mut connect = Connect::new(ProtocolVersion::V5, client_id);
        connect.clean_start = false;
        connect.keep_alive = 30;
        connect.properties.session_expiry_interval = Some(300);
        conn.send(&Packet::Connect(Box::new(connect))).await?;
        match conn.recv().await? {
            Packet::ConnAck(ack) if ack.reason_code.is_error() => {
                Err(format!("CONNACK refused: {:?}", ack.reason_code).into())
            }
            Packet::ConnAck(ack) => Ok((conn, ack)),
            other => Err(format!("expected CONNACK, got {}", other.packet_type()).into()),
        }
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), Error> {
        let mut out = BytesMut::new();
        packet::encode(packet, self.limits.version, &mut out)?;
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// The next packet; an error when the connection closes.
    async fn recv(&mut self) -> Result<Packet, Error> {
        loop {
            if let Some(packet) = packet::decode(&mut self.read, &self.limits)? {
                return Ok(packet);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err("connection closed".into());
            }
        }
    }

    async fn subscribe(&mut self, filter: &str) -> Result<(), Error> {
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter)?,
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            }],
            properties: Default::default(),
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        loop {
            match self.recv().await? {
                Packet::SubAck(ack) if ack.reason_codes.iter().all(|c| !c.is_error()) => {
                    return Ok(());
                }
                Packet::SubAck(ack) => return Err(format!("SUBACK {:?}", ack.reason_codes).into()),
                // A resumed session's messages may come before the SUBACK: kept.
                Packet::Publish(publish) => {
                    if let Some(seq) = self.take(publish).await? {
                        self.early.push_back(seq);
                    }
                }
                _ => {}
            }
        }
    }

    /// Acknowledges a QoS 1 PUBLISH and returns its sequence number.
    async fn take(&mut self, publish: Publish) -> Result<Option<u64>, Error> {
        if let Some(id) = publish.packet_id {
            self.send(&Packet::PubAck(PubAck::new(id))).await?;
        }
        let mut payload = publish.payload;
        Ok((payload.len() >= 8).then(|| payload.get_u64()))
    }

    /// Waits for a QoS 1 PUBLISH, acknowledges it and returns its sequence number.
    async fn next_seq(&mut self) -> Result<u64, Error> {
        if let Some(seq) = self.early.pop_front() {
            return Ok(seq);
        }
        loop {
            if let Packet::Publish(publish) = self.recv().await?
                && let Some(seq) = self.take(publish).await?
            {
                return Ok(seq);
            }
        }
    }

    async fn close(mut self) {
        let _ = self
            .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .await;
    }
}

/// Median, min and max in milliseconds, with one decimal.
fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 10.0).round() / 10.0;
    json!({
        "p50": ms.get(ms.len() / 2).copied().map(round),
        "min": ms.first().copied().map(round),
        "max": ms.last().copied().map(round),
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `takeover A B ROUNDS`.
async fn takeover(a: &str, b: &str, rounds: usize) -> Result<serde_json::Value, Error> {
    let mut connack = Vec::new();
    let mut old_gone = Vec::new();
    let mut disconnect_packets = 0;
    let mut resumed = 0;
    for round in 0..rounds {
        let id = format!("takeover-{:06x}-{round}", fastrand::u32(..0x100_0000));
        let (mut old, _) = Conn::open(a, &id).await?;
        old.subscribe(&format!("cluster-times/{id}")).await?;
        // The old connection waits for DISCONNECT or the close, in its own task.
        let watcher = tokio::spawn(async move {
            loop {
                match old.recv().await {
                    Ok(Packet::Disconnect(d)) => return (Instant::now(), Some(d.reason_code)),
                    Ok(_) => {}
                    Err(_) => return (Instant::now(), None),
                }
            }
        });
        let start = Instant::now();
        let (new, ack) = Conn::open(b, &id).await?;
        resumed += usize::from(ack.session_present);
        connack.push(millis(start.elapsed()));
        let (gone_at, reason) = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .map_err(|_| "the old connection was never closed")??;
        old_gone.push(millis(gone_at.duration_since(start)));
        if reason == Some(ReasonCode::SessionTakenOver) {
            disconnect_packets += 1;
        }
        new.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(json!({
        "mode": "takeover", "from": a, "to": b, "rounds": rounds,
        "connack_ms": summary(connack),
        "old_disconnected_ms": summary(old_gone),
        "disconnect_0x8e": disconnect_packets,
        "session_present": resumed,
    }))
}

/// `failover A B PUB PID`.
async fn failover(
    a: &str,
    b: &str,
    publisher: &str,
    pid: &str,
) -> Result<serde_json::Value, Error> {
    let tag = format!("{:06x}", fastrand::u32(..0x100_0000));
    let topic = format!("cluster-times/failover/{tag}");
    let sub_id = format!("failover-sub-{tag}");
    let (mut sub, _) = Conn::open(a, &sub_id).await?;
    sub.subscribe(&topic).await?;

    // The publisher: a QoS 1 message every 10 ms with its sequence number; acks are
    // read and dropped by a second task.
    let (pub_conn, _) = Conn::open(publisher, &format!("failover-pub-{tag}")).await?;
    let (mut reader, mut writer) = pub_conn.stream.into_split();
    tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let topic_out = topic.clone();
    let sent = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut seq: u64 = 0;
        loop {
            tick.tick().await;
            seq += 1;
            let mut payload = BytesMut::with_capacity(8);
            payload.put_u64(seq);
            let publish = Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: topic_out.clone().into(),
                packet_id: NonZeroU16::new((seq % 65535 + 1) as u16),
                payload: Bytes::from(payload),
                properties: Default::default(),
            };
            let mut out = BytesMut::new();
            if packet::encode(&Packet::Publish(publish), ProtocolVersion::V5, &mut out).is_err()
                || writer.write_all(&out).await.is_err()
            {
                return seq;
            }
        }
    });

    let mut last_before = 0;
    for _ in 0..50 {
        last_before = sub.next_seq().await?;
    }
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-9", pid])
        .status()?;
    if !status.success() {
        return Err(format!("kill -9 {pid} failed").into());
    }
    // Whatever A still delivers before its socket closes.
    while let Ok(seq) = sub.next_seq().await {
        last_before = last_before.max(seq);
    }
    let dropped = killed.elapsed();
    let mut attempts = 1;
    let (mut resumed, ack) = loop {
        match Conn::open(b, &sub_id).await {
            Ok((conn, ack)) => break (conn, ack),
            Err(_) if killed.elapsed() < Duration::from_secs(60) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err),
        }
    };
    let connack = killed.elapsed();
    if !ack.session_present {
        resumed.subscribe(&topic).await?;
    }
    let first_seq = resumed.next_seq().await?;
    let first = killed.elapsed();
    // Two more seconds of deliveries, to count what was lost around the kill.
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(first_seq);
    let until = Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(seq)) = tokio::time::timeout_at(until.into(), resumed.next_seq()).await {
        seen.insert(seq);
    }
    sent.abort();
    resumed.close().await;
    let top = seen.last().copied().unwrap_or(0);
    let missing: Vec<u64> = (last_before + 1..=top)
        .filter(|s| !seen.contains(s))
        .collect();
    let replayed = seen.range(..=last_before).count();
    Ok(json!({
        "mode": "failover", "killed": a, "resumed_on": b,
        "socket_closed_ms": (millis(dropped) * 10.0).round() / 10.0,
        "connack_ms": (millis(connack) * 10.0).round() / 10.0,
        "first_delivery_ms": (millis(first) * 10.0).round() / 10.0,
        "session_present": ack.session_present,
        "connect_attempts": attempts,
        "last_seq_before": last_before, "first_seq_after": first_seq,
        "missing": missing.len(),
        "missing_seqs": missing.iter().take(10).collect::<Vec<_>>(),
        "highest_seq_after": top,
        "replayed_already_seen": replayed,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["takeover", a, b] => takeover(a, b, 10).await?,
        ["takeover", a, b, rounds] => takeover(a, b, rounds.parse()?).await?,
        ["failover", a, b, publisher, pid] => failover(a, b, publisher, pid).await?,
        _ => {
            eprintln!(
                "usage: cluster_times takeover A B [ROUNDS] | failover A B PUB PID_OF_A\n\
                 (A, B, PUB: host:port of MQTT listeners)"
            );
            std::process::exit(2);
        }
    };
    println!("{report}");
    Ok(())
}
