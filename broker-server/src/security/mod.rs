//! Who may connect, and what a connected client may do.
//!
//! - **Login** ([`Security::login`]): the credentials of a CONNECT (user name and
//!   password, a bearer token the WebSocket upgrade carried, the client certificate's
//!   name) become an [`Identity`] or a reason code. Enhanced authentication (MQTT 5
//!   AUTH, e.g. SCRAM-SHA-256) goes through [`crate::auth`] instead and ends in an
//!   identity too.
//! - **Access** ([`Security::allows`]): whether an identity may publish to, subscribe
//!   to or receive from a topic.
//!
//! The policy behind both is immutable and swapped whole on reload (SIGHUP), so a check
//! never sees half a file and connections stay up.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::ReasonCode;

/// What a client presented when it connected.
#[derive(Debug, Clone, Copy)]
pub struct LoginRequest<'a> {
    /// The Client Identifier from CONNECT (empty if the broker is to assign one).
    pub client_id: &'a str,
    /// The User Name from CONNECT.
    pub username: Option<&'a str>,
    /// The Password from CONNECT.
    pub password: Option<&'a [u8]>,
    /// A bearer token from the WebSocket upgrade request (`Authorization: Bearer …` or
    /// the configured cookie).
    pub bearer_token: Option<&'a str>,
    /// The client certificate's Common Name, when the TLS listener maps it to the user
    /// name (then the certificate is the credential).
    pub cert_username: Option<&'a str>,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Who a connection is, once logged in.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user name the connection acts as (`%u` in ACL patterns); `None` when
    /// anonymous.
    pub username: Option<ByteString>,
    /// Topic permissions carried by the credential itself (JWT claims). `None`: the ACL
    /// file alone decides.
    pub permissions: Option<Arc<Permissions>>,
}

/// Topic permissions granted by a credential: filters the holder may publish to and
/// subscribe to (receiving follows subscribing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Filters (wildcards allowed) the holder may publish to.
    pub publish: Vec<ByteString>,
    /// Filters the holder may subscribe to and receive from.
    pub subscribe: Vec<ByteString>,
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// PUBLISH to a topic name (also a will's topic).
    Publish,
    /// SUBSCRIBE with a topic filter.
    Subscribe,
    /// Receive a message published to a topic name (routing, retained delivery).
    Receive,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Receive => "receive",
        })
    }
}

/// The loaded policy: immutable, replaced whole by [`Security::reload`].
#[derive(Debug, Default)]
struct Policy {}

/// The broker's authentication and authorization, shared by every connection.
#[derive(Debug, Default)]
pub struct Security {
    policy: RwLock<Arc<Policy>>,
}

impl Security {
    /// A policy that lets everyone in and allows everything (no authentication
    /// configured).
    pub fn open() -> Self {
        Self::default()
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy.read().clone()
    }

    /// Checks a CONNECT's credentials. `Err` carries the reason code to refuse with
    /// (0x86 Bad user name or password, 0x87 Not authorized, …; the protocol session
    /// maps it to a 3.x return code).
    pub fn login(&self, request: &LoginRequest<'_>) -> Result<Identity, ReasonCode> {
        let _policy = self.policy();
        Ok(Identity {
            username: request
                .cert_username
                .or(request.username)
                .map(ByteString::from),
            permissions: None,
        })
    }

    /// Whether `identity`, connected as `client_id`, may do `access` on `topic` (a topic
    /// name, or a filter for [`Access::Subscribe`]).
    pub fn allows(
        &self,
        identity: &Identity,
        client_id: &str,
        access: Access,
        topic: &str,
    ) -> bool {
        let _ = (self.policy(), identity, client_id, access, topic);
        true
    }
}
