//! Arbitrary peer input, commands and time through both sans-IO sessions.
//!
//! Input: one selector byte (bit 0: server or client session; bits 1-2: the client's
//! protocol version), then operations, each an opcode byte and its operands:
//!
//! - `0`: feed the next `n` bytes (`n` = next byte) as bytes from the peer;
//! - `1`: advance the clock by `n` × 100 ms and handle the timeout;
//! - `2`: the transport closed;
//! - `3`: a command (server: accept / reject / send a PUBLISH / acknowledge the oldest
//!   surfaced PUBLISH / disconnect; client: connect / publish / subscribe / ping /
//!   disconnect), chosen by the next byte.
//!
//! After every operation the driver drains `poll_transmit` and `poll_event` as a real
//! driver would. Invariants: nothing panics, and every byte a session transmits decodes
//! as valid packets at the connection's version (a session never sends garbage, whatever
//! it is fed).

#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::session::{
    AcceptOptions, ClientEvent, ClientOptions, ClientSession, ServerEvent, ServerOptions,
    ServerSession,
};
use protocol::{
    Disconnect, Limits, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, Subscription,
    SubscriptionOptions, TopicFilter, decode,
};
use web_time::Instant;

fn check_wire(bytes: &BytesMut, version: ProtocolVersion) -> Result<(), String> {
    let limits = Limits { version, ..Limits::default() };
    let mut bytes = bytes.clone();
    loop {
        match decode(&mut bytes, &limits) {
            Ok(Some(_)) => {}
            Ok(None) if bytes.is_empty() => return Ok(()),
            Ok(None) => return Err("session sent a partial packet".into()),
            Err(err) => return Err(format!("session sent an invalid packet: {err}")),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut ops)) = data.split_first() else {
        return;
    };
    let version = match (selector >> 1) % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    let start = Instant::now();
    let mut now = start;
    let next = |ops: &mut &[u8]| -> Option<u8> {
        let (&b, rest) = ops.split_first()?;
        *ops = rest;
        Some(b)
    };
    if selector & 1 == 0 {
        let mut server = ServerSession::new(ServerOptions::default(), now);
        let mut surfaced: VecDeque<PacketId> = VecDeque::new();
        // Until a CONNECT is surfaced the version is unknown: a refused CONNECT with an
        // unknown protocol level is answered in the 3.1.1 format [MQTT-3.1.2-2].
        let mut peer_version = None;
        while let Some(op) = next(&mut ops) {
            match op % 4 {
                0 => {
                    let n = usize::from(next(&mut ops).unwrap_or(0)).min(ops.len());
                    let (chunk, rest) = ops.split_at(n);
                    ops = rest;
                    server.handle_bytes(&mut BytesMut::from(chunk), now);
                }
                1 => {
                    now += Duration::from_millis(100 * u64::from(next(&mut ops).unwrap_or(1)));
                    server.handle_timeout(now);
                }
                2 => server.handle_connection_lost(),
                _ => match next(&mut ops).unwrap_or(0) % 5 {
                    0 => {
                        let _ = server.accept(AcceptOptions::default(), None);
                    }
                    1 => {
                        let _ = server.reject(ReasonCode::NotAuthorized);
                    }
                    2 => {
                        let mut publish = Publish::new("fuzz/out", "payload");
                        publish.qos = QoS::from_u8(next(&mut ops).unwrap_or(0) % 3).unwrap_or_default();
                        let _ = server.send_publish(publish);
                    }
                    3 => {
                        if let Some(id) = surfaced.pop_front() {
                            let _ = server.ack_publish(id, ReasonCode::Success);
                        }
                    }
                    _ => server.disconnect(ReasonCode::ServerShuttingDown),
                },
            }
            while let Some(event) = server.poll_event() {
                match event {
                    ServerEvent::Connect(connect) => peer_version = Some(connect.protocol),
                    ServerEvent::Publish(publish) => surfaced.extend(publish.packet_id),
                    _ => {}
                }
            }
            let mut out = BytesMut::new();
            while server.poll_transmit(&mut out) {}
            let checked = match peer_version {
                Some(version) => check_wire(&out, version),
                None => check_wire(&out, ProtocolVersion::V5)
                    .or_else(|_| check_wire(&out, ProtocolVersion::V3_1_1)),
            };
            if let Err(err) = checked {
                panic!("{err}");
            }
        }
        let _ = server.take_state();
    } else {
        let mut client = ClientSession::new(ClientOptions::new("fuzz").version(version));
        while let Some(op) = next(&mut ops) {
            match op % 4 {
                0 => {
                    let n = usize::from(next(&mut ops).unwrap_or(0)).min(ops.len());
                    let (chunk, rest) = ops.split_at(n);
                    ops = rest;
                    client.handle_bytes(&mut BytesMut::from(chunk));
                }
                1 => {
                    now += Duration::from_millis(100 * u64::from(next(&mut ops).unwrap_or(1)));
                    client.handle_timeout(now);
                }
                2 => client.handle_connection_lost(),
                _ => match next(&mut ops).unwrap_or(0) % 5 {
                    0 => {
                        let _ = client.connect(now);
                    }
                    1 => {
                        let qos = QoS::from_u8(next(&mut ops).unwrap_or(0) % 3).unwrap_or_default();
                        let _ = client.publish("fuzz/in", "payload", qos, false, Default::default());
                    }
                    2 => {
                        if let Ok(filter) = TopicFilter::new("fuzz/#") {
                            let subscription = Subscription { filter, options: SubscriptionOptions::new(QoS::ExactlyOnce) };
                            let _ = client.subscribe(vec![subscription], Default::default());
                        }
                    }
                    3 => {
                        let _ = client.ping();
                    }
                    _ => {
                        let _ = client.disconnect(Disconnect::default());
                    }
                },
            }
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Message(_) = event {}
            }
            let mut out = BytesMut::new();
            while client.poll_transmit(now, &mut out) {}
            if let Err(err) = check_wire(&out, version) {
                panic!("{err}");
            }
        }
    }
});
