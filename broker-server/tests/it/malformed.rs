//! Malformed and forbidden input closes that one connection, with the reason code the
//! spec gives (MQTT 5: DISCONNECT, or CONNACK while the CONNECT is not through; 3.1.1:
//! just closed), counts in `metrics.protocol_errors`, and costs nobody else anything: a
//! well-behaved publisher and subscriber on the same broker exchange a message after
//! every case.

use crate::common;

use common::*;
use protocol::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};

/// What the broker answers before it closes the connection.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Nothing: the connection is just closed.
    Nothing,
    /// DISCONNECT with this reason code.
    Disconnect(ReasonCode),
    /// CONNACK with this reason code.
    ConnAck(ReasonCode),
}

/// One kind of bad input.
struct Case {
    name: &'static str,
    /// The client's version (how the answer is decoded).
    version: ProtocolVersion,
    /// Whether a valid CONNECT / CONNACK comes first.
    connect_first: bool,
    bytes: Vec<u8>,
    answer: Answer,
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    protocol::encode(packet, version, &mut out).expect("encodes");
    out.to_vec()
}

fn connect_bytes(version: ProtocolVersion) -> Vec<u8> {
    encoded(
        &Packet::Connect(Box::new(Connect::new(version, "bad"))),
        version,
    )
}

/// A PUBLISH written byte by byte, so its fields can be anything.
fn raw_publish(
    version: ProtocolVersion,
    first: u8,
    topic: &[u8],
    packet_id: Option<u16>,
) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if version.is_v5() {
        body.push(0); // no properties
    }
    body.extend_from_slice(b"payload");
    let mut out = vec![first, body.len() as u8];
    out.extend(body);
    out
}

/// The cases after a successful CONNECT, for `version`: v5 gets `v5_answer`.
fn connected_cases(version: ProtocolVersion) -> Vec<Case> {
    let v5 = version.is_v5();
    let mut subscribe_flags = encoded(&subscribe(1, &[("a", QoS::AtMostOnce)]), version);
    subscribe_flags[0] = 0x80; // SUBSCRIBE requires flags 0b0010 [MQTT-3.8.1-1]
    let mut empty_subscribe = vec![0x82, 2, 0, 1];
    if v5 {
        empty_subscribe[1] = 3;
        empty_subscribe.push(0);
    }
    let cases: Vec<(&'static str, Vec<u8>, ReasonCode)> = vec![
        (
            "reserved flags in SUBSCRIBE",
            subscribe_flags,
            ReasonCode::MalformedPacket,
        ),
        (
            "reserved flags in PUBREL",
            vec![0x60, 2, 0, 1],
            ReasonCode::MalformedPacket,
        ),
        (
            "PUBLISH at QoS 3",
            raw_publish(version, 0x36, b"a", Some(1)),
            ReasonCode::MalformedPacket,
        ),
        (
            "remaining length over 4 bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ReasonCode::MalformedPacket,
        ),
        (
            "invalid UTF-8 topic",
            raw_publish(version, 0x30, &[b'a', 0xC3, 0x28], None),
            ReasonCode::MalformedPacket,
        ),
        (
            "U+0000 in a topic",
            raw_publish(version, 0x30, b"a\0b", None),
            ReasonCode::MalformedPacket,
        ),
        (
            "+ in a PUBLISH topic",
            raw_publish(version, 0x30, b"a/+", None),
            ReasonCode::TopicNameInvalid,
        ),
        (
            "# in a PUBLISH topic",
            raw_publish(version, 0x30, b"a/#", None),
            ReasonCode::TopicNameInvalid,
        ),
        (
            "packet identifier 0",
            raw_publish(version, 0x32, b"a", Some(0)),
            ReasonCode::ProtocolError,
        ),
        (
            "SUBSCRIBE without filters",
            empty_subscribe,
            ReasonCode::ProtocolError,
        ),
        (
            "a second CONNECT",
            connect_bytes(version),
            ReasonCode::ProtocolError,
        ),
        (
            "HTTP instead of MQTT",
            b"GET /mqtt HTTP/1.1\r\n\r\n".to_vec(),
            ReasonCode::MalformedPacket,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, code)| Case {
            name,
            version,
            connect_first: true,
            bytes,
            answer: if v5 {
                Answer::Disconnect(code)
            } else {
                Answer::Nothing
            },
        })
        .collect()
}

/// Cases where the CONNECT itself is bad or missing.
fn connect_cases() -> Vec<Case> {
    let rename = |version: ProtocolVersion| {
        let mut bytes = connect_bytes(version);
        // Fixed header (2 bytes), name length (2), then "MQTT".
        assert_eq!(&bytes[4..8], b"MQTT");
        bytes[7] = b'X';
        bytes
    };
    let mut level_6 = connect_bytes(ProtocolVersion::V5);
    assert_eq!(level_6[8], 5);
    level_6[8] = 6;
    vec![
        Case {
            name: "bad protocol name (v5)",
            version: ProtocolVersion::V5,
            connect_first: false,
            bytes: rename(ProtocolVersion::V5),
            answer: Answer::ConnAck(ReasonCode::UnsupportedProtocolVersion),
        },
        Case {
            name: "bad protocol name (3.1.1)",
            version: ProtocolVersion::V3_1_1,
            connect_first: false,
            bytes: rename(ProtocolVersion::V3_1_1),
            answer: Answer::Nothing,
        },
        Case {
            // Answered the way every version understands: 3.1.1 return code 1.
            name: "unknown protocol level",
            version: ProtocolVersion::V3_1_1,
            connect_first: false,
            bytes: level_6,
            answer: Answer::ConnAck(ReasonCode::UnsupportedProtocolVersion),
        },
        Case {
            name: "reserved CONNECT flag (v5)",
            version: ProtocolVersion::V5,
            connect_first: false,
            bytes: {
                let mut b = connect_bytes(ProtocolVersion::V5);
                b[9] |= 0x01;
                b
            },
            answer: Answer::ConnAck(ReasonCode::MalformedPacket),
        },
        Case {
            name: "first packet is not CONNECT",
            version: ProtocolVersion::V5,
            connect_first: false,
            bytes: raw_publish(ProtocolVersion::V5, 0x30, b"a", None),
            answer: Answer::Nothing,
        },
        Case {
            name: "PINGREQ before CONNECT",
            version: ProtocolVersion::V3_1_1,
            connect_first: false,
            bytes: vec![0xC0, 0],
            answer: Answer::Nothing,
        },
        Case {
            name: "random garbage",
            version: ProtocolVersion::V5,
            connect_first: false,
            bytes: vec![0x00, 0xDE, 0xAD, 0xBE, 0xEF, 0x13, 0x37, 0xFF, 0x00, 0x42],
            answer: Answer::Nothing,
        },
        Case {
            name: "HTTP request on the MQTT port",
            version: ProtocolVersion::V3_1_1,
            connect_first: false,
            bytes: b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n".to_vec(),
            answer: Answer::Nothing,
        },
    ]
}

/// Runs `case` against `broker` and checks its answer, that the connection closed, that
/// it was counted, and that `publisher` → `observer` still works.
async fn run(
    broker: &TestBroker,
    case: &Case,
    publisher: &mut Peer,
    observer: &mut Peer,
    n: usize,
) {
    let errors_before = broker.broker().metrics.protocol_errors.get();
    let mut bad = broker.raw(case.version).await;
    if case.connect_first {
        let connack = bad.handshake(Connect::new(case.version, "bad")).await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
    }
    bad.send_bytes(&case.bytes).await;
    let seen = bad.expect_closed().await;
    match case.answer {
        Answer::Nothing => assert!(
            seen.is_empty(),
            "{}: expected no answer, got {seen:?}",
            case.name
        ),
        Answer::Disconnect(code) => assert!(
            matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == code),
            "{}: expected DISCONNECT {code}, got {seen:?}",
            case.name
        ),
        Answer::ConnAck(code) => assert!(
            matches!(&seen[..], [Packet::ConnAck(c)] if c.reason_code == code),
            "{}: expected CONNACK {code}, got {seen:?}",
            case.name
        ),
    }
    assert_eq!(
        broker.broker().metrics.protocol_errors.get(),
        errors_before + 1,
        "{}: counted as one protocol error",
        case.name
    );
    // Nothing of the bad connection was delivered, and the good clients carry on.
    let marker = format!("ok/{n}");
    publisher
        .send_publish(publish(&marker, case.name, QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(
        matches!(publisher.recv().await, Packet::PubAck(_)),
        "{}",
        case.name
    );
    let got = observer.recv_publish().await;
    assert_eq!(&got.topic[..], marker, "{}", case.name);
}

#[tokio::test]
async fn every_malformed_input_closes_only_its_own_connection() {
    let broker = TestBroker::start().await;
    let mut observer = broker.client(ProtocolVersion::V3_1_1, "observer").await;
    observer.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
    let mut publisher = broker.client(ProtocolVersion::V5, "publisher").await;
    let mut cases = connect_cases();
    cases.extend(connected_cases(ProtocolVersion::V5));
    cases.extend(connected_cases(ProtocolVersion::V3_1_1));
    for (n, case) in cases.iter().enumerate() {
        run(&broker, case, &mut publisher, &mut observer, n).await;
    }
    assert_eq!(
        broker.broker().metrics.protocol_errors.get(),
        cases.len() as u64
    );
    assert_eq!(
        broker.broker().metrics.clients_connected.get(),
        2,
        "only the good clients remain"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_bad_packet_in_the_middle_of_a_read_ends_the_connection_there() {
    // Valid packets before the bad one in the same write are handled; none after it.
    let broker = TestBroker::start().await;
    let mut observer = broker.client(ProtocolVersion::V5, "observer").await;
    observer.subscribe_many(1, &[("#", QoS::AtMostOnce)]).await;
    let mut bad = broker.client(ProtocolVersion::V5, "bad").await;
    let mut bytes = encoded(
        &Packet::Publish(publish("before", "1", QoS::AtMostOnce, None)),
        ProtocolVersion::V5,
    );
    bytes.extend(raw_publish(ProtocolVersion::V5, 0x36, b"a", Some(1)));
    bytes.extend(encoded(
        &Packet::Publish(publish("after", "2", QoS::AtMostOnce, None)),
        ProtocolVersion::V5,
    ));
    bad.send_bytes(&bytes).await;
    let seen = bad.expect_closed().await;
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::MalformedPacket),
        "{seen:?}"
    );
    assert_eq!(&observer.recv_publish().await.topic[..], "before");
    let mut good = broker.client(ProtocolVersion::V5, "good").await;
    good.send_publish(publish("marker", "m", QoS::AtMostOnce, None))
        .await;
    assert_eq!(
        &observer.recv_publish().await.topic[..],
        "marker",
        "`after` was not delivered"
    );
    broker.stop().await;
}
