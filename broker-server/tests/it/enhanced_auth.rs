//! MQTT 5 enhanced authentication (§4.12) through the broker's `AuthMechanism`
//! interface, with a challenge-response mechanism defined here: CONNECT carries
//! `hello`, the broker challenges with `nonce`, the client answers `nonce-signed`.

use crate::common;

use std::sync::Arc;

use broker_server::{AuthExchange, AuthMechanism, AuthStep};
use bytes::Bytes;
use common::*;
use protocol::{Auth, AuthProperties, Connect, Packet, ProtocolVersion, ReasonCode};

#[derive(Debug)]
struct Challenge;

#[derive(Debug)]
struct ChallengeExchange {
    challenged: bool,
}

impl AuthMechanism for Challenge {
    fn method(&self) -> &str {
        "TEST-CHALLENGE"
    }
    fn begin(&self, _client_id: &str, _username: Option<&str>) -> Box<dyn AuthExchange> {
        Box::new(ChallengeExchange { challenged: false })
    }
}

impl AuthExchange for ChallengeExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        match (self.challenged, data) {
            (false, Some(b"hello")) => {
                self.challenged = true;
                AuthStep::Continue(Bytes::from_static(b"nonce"))
            }
            (true, Some(b"nonce-signed")) => {
                AuthStep::Success(Some(Bytes::from_static(b"welcome")))
            }
            _ => AuthStep::Failure(ReasonCode::NotAuthorized),
        }
    }
}

fn auth(reason_code: ReasonCode, method: &str, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(method.into()),
            authentication_data: Some(Bytes::from_static(data)),
            ..Default::default()
        }
        .into(),
    })
}

fn connect_with(method: &str, data: &'static [u8]) -> Packet {
    let mut connect = Connect::new(ProtocolVersion::V5, "authed");
    connect.properties.authentication_method = Some(method.into());
    connect.properties.authentication_data = Some(Bytes::from_static(data));
    Packet::Connect(Box::new(connect))
}

async fn broker() -> TestBroker {
    let broker = TestBroker::start().await;
    broker.broker().auth.register(Arc::new(Challenge));
    broker
}

fn expect_auth(packet: Packet, reason: ReasonCode, data: &[u8]) {
    match packet {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, reason);
            assert_eq!(
                a.properties.authentication_method.as_deref(),
                Some("TEST-CHALLENGE")
            );
            assert_eq!(a.properties.authentication_data.as_deref(), Some(data));
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
}

async fn authenticated(broker: &TestBroker) -> Peer {
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&connect_with("TEST-CHALLENGE", b"hello")).await;
    expect_auth(
        client.recv().await,
        ReasonCode::ContinueAuthentication,
        b"nonce",
    );
    client
        .send(&auth(
            ReasonCode::ContinueAuthentication,
            "TEST-CHALLENGE",
            b"nonce-signed",
        ))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            assert_eq!(
                ack.properties.authentication_method.as_deref(),
                Some("TEST-CHALLENGE")
            );
            assert_eq!(
                ack.properties.authentication_data.as_deref(),
                Some(&b"welcome"[..])
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client
}

#[tokio::test]
async fn challenge_response_exchange_ends_in_connack_with_the_method() {
    let broker = broker().await;
    let mut client = authenticated(&broker).await;
    // The connection works as any other.
    client
        .subscribe_many(1, &[("t", protocol::QoS::AtMostOnce)])
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn a_wrong_answer_is_refused_in_connack_and_counted() {
    let broker = broker().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&connect_with("TEST-CHALLENGE", b"hello")).await;
    expect_auth(
        client.recv().await,
        ReasonCode::ContinueAuthentication,
        b"nonce",
    );
    client
        .send(&auth(
            ReasonCode::ContinueAuthentication,
            "TEST-CHALLENGE",
            b"forged",
        ))
        .await;
    match client.expect_closed().await.as_slice() {
        [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected one CONNACK, got {other:?}"),
    }
    assert_eq!(broker.broker().metrics.auth_failures.get(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn an_unknown_method_is_refused_with_0x8c() {
    let broker = broker().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&connect_with("NOPE", b"hello")).await;
    match client.expect_closed().await.as_slice() {
        [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod),
        other => panic!("expected one CONNACK, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn an_auth_with_another_method_during_connect_is_a_protocol_error() {
    let broker = broker().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&connect_with("TEST-CHALLENGE", b"hello")).await;
    expect_auth(
        client.recv().await,
        ReasonCode::ContinueAuthentication,
        b"nonce",
    );
    client
        .send(&auth(
            ReasonCode::ContinueAuthentication,
            "OTHER",
            b"nonce-signed",
        ))
        .await;
    match client.expect_closed().await.as_slice() {
        [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected one CONNACK, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn re_authentication_runs_the_exchange_again_and_ends_in_auth_success() {
    let broker = broker().await;
    let mut client = authenticated(&broker).await;
    client
        .send(&auth(
            ReasonCode::ReAuthenticate,
            "TEST-CHALLENGE",
            b"hello",
        ))
        .await;
    expect_auth(
        client.recv().await,
        ReasonCode::ContinueAuthentication,
        b"nonce",
    );
    client
        .send(&auth(
            ReasonCode::ContinueAuthentication,
            "TEST-CHALLENGE",
            b"nonce-signed",
        ))
        .await;
    expect_auth(client.recv().await, ReasonCode::Success, b"welcome");
    // A failed re-authentication disconnects.
    client
        .send(&auth(ReasonCode::ReAuthenticate, "TEST-CHALLENGE", b"bye"))
        .await;
    match client.expect_closed().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
    broker.stop().await;
}
