//! Who may connect, and what a connected client may do.
//!
//! - **Login** ([`Security::login`]): the credentials of a CONNECT (user name and
//!   password, a bearer token the WebSocket upgrade carried, the client certificate's
//!   name) become an [`Identity`] or a reason code. Enhanced authentication (MQTT 5
//!   AUTH, e.g. SCRAM-SHA-256) goes through [`crate::auth`] instead and ends in an
//!   identity too.
//! - **Access** ([`Security::allows`]): whether an identity may publish to, subscribe
//!   to or receive from a topic, by the ACL file ([`acl`], `auth.acl_file`) and the
//!   permissions a credential carries ([`Permissions`], e.g. JWT claims).
//!
//! The policy behind both is immutable and swapped whole on reload (SIGHUP), so a check
//! never sees half a file and connections stay up; the next check of every connection,
//! open ones included, follows the new rules.
//!
//! # How access is decided
//!
//! - No ACL file configured and no permissions in the credential: everything is
//!   allowed, and the check costs one atomic load (no lock, no allocation).
//! - Otherwise, in order: an ACL `deny` rule that matches refuses; an ACL rule granting
//!   the access allows; a filter of the credential's [`Permissions`] granting it
//!   allows; anything else is refused (default deny). So credential permissions add to
//!   the ACL file but cannot lift its deny rules, and a credential with permissions is
//!   held to them even when no ACL file is configured.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::ReasonCode;

pub mod acl;

use acl::{Acl, AclError, Decision};

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

impl Permissions {
    /// Whether these permissions grant `access` on `topic`: a `publish` filter matching
    /// the topic for [`Access::Publish`]; a `subscribe` filter covering the requested
    /// filter for [`Access::Subscribe`] (as ACL rules do, see [`acl`]) or matching the
    /// topic for [`Access::Receive`].
    pub fn grants(&self, access: Access, topic: &str) -> bool {
        let filters = match access {
            Access::Publish => &self.publish,
            Access::Subscribe | Access::Receive => &self.subscribe,
        };
        filters
            .iter()
            .any(|filter| acl::applies(filter, access, topic))
    }
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
struct Policy {
    /// The ACL file's rules; `None` when `auth.acl_file` is not set.
    acl: Option<Acl>,
}

/// Security files that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The ACL file (`auth.acl_file`).
    #[error("ACL file {0}")]
    Acl(#[from] AclError),
}

/// The broker's authentication and authorization, shared by every connection.
#[derive(Debug, Default)]
pub struct Security {
    /// Where the files are read from (start and [`reload`](Self::reload)).
    config: crate::config::AuthConfig,
    policy: RwLock<Arc<Policy>>,
    /// Whether the policy holds an ACL: read without the lock on every check, so a
    /// broker without one pays nothing per message.
    acl_loaded: AtomicBool,
}

impl Security {
    /// A policy that lets everyone in and allows everything (no authentication
    /// configured).
    pub fn open() -> Self {
        Self::default()
    }

    /// Reads the files `config` names (the ACL file); an error names the file and line.
    pub fn from_config(config: &crate::config::AuthConfig) -> Result<Self, SecurityError> {
        let security = Self {
            config: config.clone(),
            ..Self::default()
        };
        security.reload()?;
        Ok(security)
    }

    /// Reads the configured files again (SIGHUP) and swaps the policy whole: every
    /// connection, open ones included, is checked against the new rules from its next
    /// publish, subscribe or delivery on. On error the previous policy stays.
    pub fn reload(&self) -> Result<(), SecurityError> {
        let acl = match &self.config.acl_file {
            Some(path) => {
                let acl = Acl::load(path)?;
                tracing::info!(path = %path.display(), rules = acl.rule_count(), "ACL loaded");
                Some(acl)
            }
            None => None,
        };
        let loaded = acl.is_some();
        let mut policy = self.policy.write();
        *policy = Arc::new(Policy { acl });
        self.acl_loaded.store(loaded, Ordering::Release);
        Ok(())
    }

    /// The configured ACL file, if any.
    pub fn acl_file(&self) -> Option<&PathBuf> {
        self.config.acl_file.as_ref()
    }

    /// Whether checks can deny anything for `identity`: false when no ACL is loaded
    /// and the identity carries no permissions (then [`allows`](Self::allows) is
    /// always true).
    pub fn enforces(&self, identity: &Identity) -> bool {
        identity.permissions.is_some() || self.acl_loaded.load(Ordering::Acquire)
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
    /// name, or for [`Access::Subscribe`] a filter without its `$share/{group}/`
    /// prefix). See the [module docs](self) for the rule.
    pub fn allows(
        &self,
        identity: &Identity,
        client_id: &str,
        access: Access,
        topic: &str,
    ) -> bool {
        if !self.enforces(identity) {
            return true;
        }
        let decision = match &self.policy.read().acl {
            Some(acl) => acl.check(identity.username.as_deref(), client_id, access, topic),
            None => Decision::NoMatch,
        };
        match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::NoMatch => identity
                .permissions
                .as_ref()
                .is_some_and(|permissions| permissions.grants(access, topic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(username: Option<&str>, permissions: Option<Permissions>) -> Identity {
        Identity {
            username: username.map(ByteString::from),
            permissions: permissions.map(Arc::new),
        }
    }

    fn with_acl(text: &str) -> Security {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl.conf");
        std::fs::write(&path, text).unwrap();
        let config = crate::config::AuthConfig {
            acl_file: Some(path),
        };
        Security::from_config(&config).unwrap()
    }

    fn claims(publish: &[&str], subscribe: &[&str]) -> Permissions {
        Permissions {
            publish: publish.iter().map(|f| ByteString::from(*f)).collect(),
            subscribe: subscribe.iter().map(|f| ByteString::from(*f)).collect(),
        }
    }

    #[test]
    fn without_acl_everything_is_allowed() {
        let security = Security::open();
        let anyone = identity(Some("u"), None);
        assert!(!security.enforces(&anyone));
        assert!(security.allows(&anyone, "c", Access::Publish, "a/b"));
    }

    #[test]
    fn with_acl_the_default_is_deny() {
        let security = with_acl("user u\ntopic write a/#\n");
        let user = identity(Some("u"), None);
        assert!(security.allows(&user, "c", Access::Publish, "a/b"));
        assert!(!security.allows(&user, "c", Access::Publish, "b"));
        assert!(!security.allows(&user, "c", Access::Receive, "a/b"));
        assert!(!security.allows(&identity(None, None), "c", Access::Publish, "a/b"));
    }

    #[test]
    fn credential_permissions_grant_and_acl_denies_win() {
        let security = with_acl("pattern deny private/#\n");
        let holder = identity(Some("u"), Some(claims(&["out/#"], &["in/#", "private/#"])));
        assert!(security.allows(&holder, "c", Access::Publish, "out/x"));
        assert!(!security.allows(&holder, "c", Access::Publish, "in/x"));
        assert!(security.allows(&holder, "c", Access::Subscribe, "in/+"));
        assert!(!security.allows(&holder, "c", Access::Subscribe, "#"));
        assert!(security.allows(&holder, "c", Access::Receive, "in/x"));
        assert!(!security.allows(&holder, "c", Access::Receive, "private/x"));
        // Without an ACL file the permissions still bind their holder.
        let open = Security::open();
        assert!(open.enforces(&holder));
        assert!(open.allows(&holder, "c", Access::Publish, "out/x"));
        assert!(!open.allows(&holder, "c", Access::Publish, "elsewhere"));
    }

    #[test]
    fn reload_swaps_rules_and_keeps_them_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl.conf");
        std::fs::write(&path, "user u\ntopic write a\n").unwrap();
        let config = crate::config::AuthConfig {
            acl_file: Some(path.clone()),
        };
        let security = Security::from_config(&config).unwrap();
        let user = identity(Some("u"), None);
        assert!(security.allows(&user, "c", Access::Publish, "a"));
        std::fs::write(&path, "user u\ntopic write b\n").unwrap();
        security.reload().unwrap();
        assert!(!security.allows(&user, "c", Access::Publish, "a"));
        assert!(security.allows(&user, "c", Access::Publish, "b"));
        std::fs::write(&path, "user u\nbogus\n").unwrap();
        let err = security.reload().unwrap_err().to_string();
        assert!(
            err.contains("acl.conf:2: unknown directive `bogus`"),
            "{err}"
        );
        assert!(security.allows(&user, "c", Access::Publish, "b"));
    }
}
