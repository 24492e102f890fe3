//! Enhanced authentication (MQTT 5 §4.12): the interface a mechanism implements, and
//! the registry the connection task looks mechanisms up in by the CONNECT's
//! Authentication Method.
//!
//! A mechanism is a factory of exchanges: each CONNECT (and each re-authentication)
//! with its method starts one [`AuthExchange`], which is fed the Authentication Data of
//! CONNECT and of every AUTH packet that follows, and answers with an [`AuthStep`]:
//! send a challenge (AUTH 0x18), accept (CONNACK 0x00, or AUTH 0x00 when
//! re-authenticating), or refuse with a reason code. Mechanisms are synchronous and
//! socket-free, so they are unit-testable like the router. SCRAM-SHA-256
//! ([`super::scram`]) is registered when the password file has SCRAM
//! credentials; a CONNECT naming an unknown method is refused with 0x8C Bad
//! authentication method.

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::ReasonCode;

/// What an exchange wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 Continue authentication with this data, and wait for the
    /// client's next AUTH.
    Continue(Bytes),
    /// Authenticated; send this data (if any) with the CONNACK or AUTH 0x00.
    Success(Option<Bytes>),
    /// Refused with this reason code (e.g. 0x86 Bad user name or password, 0x87 Not
    /// authorized).
    Failure(ReasonCode),
}

/// One run of a mechanism for one connection.
pub trait AuthExchange: Send + Debug {
    /// Handles the client's Authentication Data (from CONNECT first, then from each
    /// AUTH).
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;

    /// Who the client proved to be, once [`AuthStep::Success`] was returned: the
    /// connection acts as this identity. `None` (the default): the identity from
    /// CONNECT's login stays.
    fn identity(&self) -> Option<super::Identity> {
        None
    }
}

/// An enhanced authentication mechanism, e.g. `SCRAM-SHA-256`.
pub trait AuthMechanism: Send + Sync + Debug {
    /// The Authentication Method name clients use.
    fn method(&self) -> &str;
    /// Starts an exchange for a client (its identifier and user name, as given in
    /// CONNECT).
    fn begin(&self, client_id: &str, username: Option<&str>) -> Box<dyn AuthExchange>;
}

/// The mechanisms a broker offers, by method name.
#[derive(Debug, Default)]
pub struct AuthRegistry {
    mechanisms: RwLock<Vec<Arc<dyn AuthMechanism>>>,
}

impl AuthRegistry {
    /// Adds (or replaces, by method name) a mechanism.
    pub fn register(&self, mechanism: Arc<dyn AuthMechanism>) {
        let mut mechanisms = self.mechanisms.write();
        mechanisms.retain(|m| m.method() != mechanism.method());
        mechanisms.push(mechanism);
    }

    /// The mechanism for `method`.
    pub fn get(&self, method: &str) -> Option<Arc<dyn AuthMechanism>> {
        self.mechanisms
            .read()
            .iter()
            .find(|m| m.method() == method)
            .cloned()
    }
}

/// An exchange in progress on a connection, with its method name.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The Authentication Method of the exchange.
    pub method: ByteString,
    /// The mechanism's state.
    pub state: Box<dyn AuthExchange>,
}
