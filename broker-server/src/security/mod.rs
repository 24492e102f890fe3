//! Who may connect, and what a connected client may do.
//!
//! - **Login** ([`Security::login`]): the credentials of a CONNECT (user name and
//!   password, a bearer token the WebSocket upgrade carried, the client certificate's
//!   name) become an [`Identity`] or a reason code. Enhanced authentication (MQTT 5
//!   AUTH, e.g. SCRAM-SHA-256) goes through [`enhanced`] instead and ends in an
//!   identity too.
//! - **Access** ([`Security::allows`]): whether an identity may publish to, subscribe
//!   to or receive from a topic, by the ACL file ([`acl`], `auth.acl_file`) and the
//!   permissions a credential carries ([`Permissions`], e.g. JWT claims).
//!
//! The policy behind both is immutable and swapped whole on reload (SIGHUP), so a check
//! never sees half a file and connections stay up; the next check of every connection,
//! open ones included, follows the new rules.
//!
//! # Layout
//!
//! - [`config`]: the `[auth]` section.
//! - [`acl`]: the ACL file (mosquitto's format, plus `client` sections and `subscribe`).
//! - [`passwd`]: the password file (argon2id, mosquitto's `$6$`/`$7$`, SCRAM lines).
//! - [`pool`]: the threads that check passwords, and their bounded queue.
//! - [`jwt`]: JWT bearer tokens (HS256, RS256, ES256; PEM key, secret or JWKS).
//! - [`enhanced`]: enhanced authentication (MQTT 5 AUTH): the mechanism interface
//!   and the registry the connection task finds mechanisms in.
//! - [`scram`]: SCRAM-SHA-256 over MQTT 5 AUTH.
//!
//! # Login rules
//!
//! With nothing in `[auth]`, everyone gets in under the user name they give. Once a
//! password file or a JWT key is configured (or `allow_anonymous = false` is set, which
//! with nothing configured lets in only certificate-named clients):
//!
//! 1. a CONNECT with an Authentication Method (MQTT 5 enhanced authentication) is left
//!    to the exchange ([`scram`]), whose success sets the identity;
//! 2. a verified client certificate mapped to a user name (`tls.cert_cn_as_username`)
//!    is the credential;
//! 3. a Password that looks like a JWT, when JWT is configured, must be a valid token;
//!    any other Password must match the User Name's line in the password file;
//! 4. without a Password, a bearer token from the WebSocket upgrade (header or cookie)
//!    must be a valid token;
//! 5. a User Name without any credential is refused (0x86);
//! 6. no credential at all is anonymous: allowed only with `allow_anonymous = true`
//!    (refused with 0x87 Not authorized).
//!
//! Wrong credentials are refused with 0x86 Bad user name or password (3.x return code
//! 4), and count in `metrics.auth_failures`. The refusal is sent at a deadline counted
//! from the CONNECT's arrival ([`Security::refusal_delay`]): `failed_login_delay_ms`,
//! or twice the slowest password check the file can cause if that is longer. Not a
//! delay after the check, whose length depends on the user's credential: an argon2id
//! check (or the decoy, for an unknown user) takes tens of milliseconds, mosquitto's
//! `$6$`/`$7$` well under one, so refusals timed from the check's end told imported
//! users from unknown ones. Only a check that overruns the deadline (a saturated
//! pool) is answered later, when it ends. Passwords are checked on a bounded [`pool`]; when its queue
//! is full the login is refused at once with 0x9F Connection rate exceeded
//! ([`LoginError::Busy`]), without checking anything.
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

pub(crate) mod acl;
pub(crate) mod enhanced;
pub(crate) mod jwt;
pub mod passwd;
pub(crate) mod pool;
pub(crate) mod scram;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::ReasonCode;
use tracing::info;

use self::acl::{Acl, AclError, Decision};
use self::jwt::{JwtKeyError, JwtVerifier};
use self::passwd::{PasswdError, PasswordFile};
use self::pool::{PasswordPool, PoolError};
use crate::config::AuthConfig;

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
    /// The CONNECT's Authentication Method (MQTT 5 enhanced authentication): the
    /// exchange, not the login, checks the client then.
    pub authentication_method: Option<&'a str>,
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

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The credentials are wrong or missing: refused with this reason code (0x86 Bad
    /// user name or password, 0x87 Not authorized; the protocol session maps it to a
    /// 3.x return code) after the failed-login delay.
    #[error("refused: {0}")]
    Refused(ReasonCode),
    /// The password could not be checked now: the [`pool`]'s queue is full. Refused
    /// at once with [`LoginError::BUSY_REASON`], and counted as a limit hit, not an
    /// authentication failure.
    #[error("password checks busy")]
    Busy,
}

impl LoginError {
    /// The reason code a [`LoginError::Busy`] login is refused with: 0x9F Connection
    /// rate exceeded (3.x: return code 3, server unavailable). See [`pool`] for why
    /// not 0x88 Server unavailable.
    pub const BUSY_REASON: ReasonCode = ReasonCode::ConnectionRateExceeded;
}

impl From<ReasonCode> for LoginError {
    fn from(reason: ReasonCode) -> Self {
        Self::Refused(reason)
    }
}

/// The security configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The password file.
    #[error("auth.password_file: {0}")]
    Passwd(#[from] PasswdError),
    /// The JWT keys.
    #[error("auth.jwt: {0}")]
    Jwt(#[from] JwtKeyError),
    /// The ACL file (`auth.acl_file`).
    #[error("ACL file {0}")]
    Acl(#[from] AclError),
}

/// The loaded policy: immutable, replaced whole by [`Security::reload`].
#[derive(Debug)]
struct Policy {
    /// The password file's users, if `auth.password_file` is set.
    passwords: Option<PasswordFile>,
    /// JWT keys and rules, if `[auth.jwt]` has a key.
    jwt: Option<JwtVerifier>,
    /// Clients without credentials may connect.
    allow_anonymous: bool,
    /// Whether any authentication is configured (else the user name is taken as
    /// given).
    authenticating: bool,
    /// How long after the CONNECT a refusal is sent: `failed_login_delay_ms`, or twice
    /// the slowest password check if longer (see the module's login rules).
    refusal_delay: Duration,
    /// The ACL file's rules; `None` when `auth.acl_file` is not set.
    acl: Option<Acl>,
}

impl Default for Policy {
    /// Open: no authentication, anyone may connect.
    fn default() -> Self {
        Self {
            passwords: None,
            jwt: None,
            allow_anonymous: true,
            authenticating: false,
            refusal_delay: Duration::ZERO,
            acl: None,
        }
    }
}

impl Policy {
    fn load(config: &AuthConfig) -> Result<Self, SecurityError> {
        let passwords = config
            .password_file
            .as_deref()
            .map(PasswordFile::load)
            .transpose()?;
        let jwt = config
            .jwt
            .configured()
            .then(|| JwtVerifier::load(&config.jwt))
            .transpose()?;
        let acl = match config.acl_file.as_deref() {
            Some(path) => {
                let acl = Acl::load(path)?;
                info!(path = %path.display(), rules = acl.rule_count(), "ACL loaded");
                Some(acl)
            }
            None => None,
        };
        Ok(Self {
            acl,
            passwords,
            jwt,
            allow_anonymous: config.anonymous_allowed(),
            authenticating: config.configured(),
            refusal_delay: config.failed_login_delay(),
        })
    }

    fn token(&self, token: &str, username: Option<&str>) -> Result<Identity, ReasonCode> {
        let Some(jwt) = &self.jwt else {
            return Err(ReasonCode::BadUserNameOrPassword);
        };
        let claims = jwt.verify(token).map_err(|err| {
            info!(%err, "JWT refused");
            ReasonCode::BadUserNameOrPassword
        })?;
        if username.is_some_and(|u| !u.is_empty() && u != &*claims.username) {
            info!(token_user = %claims.username, "JWT refused: CONNECT names another user");
            return Err(ReasonCode::BadUserNameOrPassword);
        }
        Ok(Identity {
            username: Some(claims.username),
            permissions: claims.permissions,
        })
    }

    /// Checks `password` against `username`'s line on `pool`; an unknown user is
    /// checked against the decoy, so it costs the same.
    async fn password(
        &self,
        pool: &PasswordPool,
        username: Option<&str>,
        password: &[u8],
    ) -> Result<Identity, LoginError> {
        let username = username
            .filter(|u| !u.is_empty())
            .ok_or(ReasonCode::BadUserNameOrPassword)?;
        let credential = self
            .passwords
            .as_ref()
            .and_then(|p| p.password(username))
            .cloned();
        let known = credential.is_some();
        match pool
            .verify(credential, Bytes::copy_from_slice(password))
            .await
        {
            Ok(true) if known => Ok(Identity {
                username: Some(username.into()),
                permissions: None,
            }),
            Ok(_) => Err(ReasonCode::BadUserNameOrPassword.into()),
            Err(PoolError::Busy) => Err(LoginError::Busy),
            Err(PoolError::Failed) => Err(ReasonCode::UnspecifiedError.into()),
        }
    }
}

/// The broker's authentication and authorization, shared by every connection.
#[derive(Debug, Default)]
pub struct Security {
    /// Where the files are read from (start and [`reload`](Self::reload)).
    config: AuthConfig,
    policy: Arc<RwLock<Arc<Policy>>>,
    /// Whether the policy holds an ACL: read without the lock on every check, so a
    /// broker without one pays nothing per message.
    acl_loaded: AtomicBool,
    /// The password check workers, started by the first password login (a broker
    /// without a password file never starts them).
    pool: OnceLock<PasswordPool>,
}

impl Security {
    /// A policy that lets everyone in and allows everything (no authentication
    /// configured).
    pub fn open() -> Self {
        Self::default()
    }

    /// Loads the policy `config` describes (password file, JWT keys, ACL file); an
    /// error names the file and line.
    pub fn load(config: &AuthConfig) -> Result<Self, SecurityError> {
        let security = Self {
            config: config.clone(),
            ..Self::default()
        };
        security.reload()?;
        Ok(security)
    }

    /// Re-reads the configured files (SIGHUP) and swaps the whole policy. Open
    /// connections keep their identity, and their next publish, subscribe or delivery
    /// is checked against the new rules; new logins use the new users and keys. On
    /// error the old policy stays.
    pub fn reload(&self) -> Result<(), SecurityError> {
        let mut policy = Policy::load(&self.config)?;
        if let Some(passwords) = &policy.passwords {
            // Twice the measured cost: a check on a busier machine than now still ends
            // before the deadline.
            let slowest = self.pool().slowest_check(&passwords.cost_samples());
            policy.refusal_delay = policy.refusal_delay.max(slowest * 2);
        }
        info!(
            users = policy
                .passwords
                .as_ref()
                .map_or(0, PasswordFile::user_count),
            jwt = policy.jwt.is_some(),
            anonymous = policy.allow_anonymous,
            refusal_delay_ms = policy.refusal_delay.as_millis(),
            "security policy loaded"
        );
        let acl_loaded = policy.acl.is_some();
        *self.policy.write() = Arc::new(policy);
        self.acl_loaded.store(acl_loaded, Ordering::Release);
        Ok(())
    }

    /// The configured ACL file, if any.
    pub fn acl_file(&self) -> Option<&std::path::Path> {
        self.config.acl_file.as_deref()
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

    /// Whether the password file holds SCRAM-SHA-256 credentials (then the broker
    /// offers the `SCRAM-SHA-256` authentication method).
    pub fn has_scram(&self) -> bool {
        self.policy()
            .passwords
            .as_ref()
            .is_some_and(PasswordFile::has_scram)
    }

    /// The SCRAM-SHA-256 mechanism over this policy's password file (it follows
    /// reloads), to register in [`enhanced::AuthRegistry`].
    pub fn scram_mechanism(&self) -> scram::ScramMechanism {
        scram::ScramMechanism::new(self.policy.clone())
    }

    fn pool(&self) -> &PasswordPool {
        self.pool.get_or_init(|| {
            let pool = PasswordPool::new(self.config.password_workers, self.config.password_queue);
            info!(
                workers = pool.workers(),
                queue = self.config.password_queue,
                "password check pool started"
            );
            pool
        })
    }

    /// How long after a CONNECT arrived its refusal is sent (see the module's login
    /// rules): the same for every refusal, whether or how the user exists.
    pub fn refusal_delay(&self) -> Duration {
        self.policy().refusal_delay
    }

    /// Checks a CONNECT's credentials (see the module's login rules). A password is
    /// checked on the [`pool`] (costly by design; the async workers only wait for it).
    pub async fn login(&self, request: &LoginRequest<'_>) -> Result<Identity, LoginError> {
        let policy = self.policy();
        let open = !policy.authenticating && policy.allow_anonymous;
        if open || request.cert_username.is_some() {
            return Ok(Identity {
                username: request
                    .cert_username
                    .or(request.username)
                    .map(ByteString::from),
                permissions: None,
            });
        }
        if request.authentication_method.is_some() {
            // The exchange decides, and sets the identity when it succeeds.
            return Ok(Identity::default());
        }
        match (request.password, request.bearer_token, request.username) {
            (Some(password), _, username) => match std::str::from_utf8(password) {
                Ok(text) if policy.jwt.is_some() && jwt::looks_like_jwt(text) => {
                    Ok(policy.token(text, username)?)
                }
                _ => policy.password(self.pool(), username, password).await,
            },
            (None, Some(token), username) => Ok(policy.token(token, username)?),
            (None, None, Some(_)) => Err(ReasonCode::BadUserNameOrPassword.into()),
            (None, None, None) if policy.allow_anonymous => Ok(Identity::default()),
            (None, None, None) => Err(ReasonCode::NotAuthorized.into()),
        }
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
        let config = AuthConfig {
            acl_file: Some(path),
            ..AuthConfig::default()
        };
        Security::load(&config).unwrap()
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
        let config = AuthConfig {
            acl_file: Some(path.clone()),
            ..AuthConfig::default()
        };
        let security = Security::load(&config).unwrap();
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
