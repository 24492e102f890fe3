//! The `[auth]` section of the configuration: password file, anonymous access, the
//! failed-login delay, the password check pool and JWT bearer tokens (`[auth.jwt]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Authentication (`[auth]`). With nothing set, every client may connect (anonymous
/// access on); once a password file or a JWT key is configured, clients must log in
/// unless `allow_anonymous = true`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Password file (`broker-server passwd FILE add USER` writes it; lines written by
    /// mosquitto's `mosquitto_passwd` work as they are). Re-read on SIGHUP. Default
    /// unset.
    pub password_file: Option<PathBuf>,
    /// Let clients without credentials (no user name, password or token) connect.
    /// Default unset: true when no authentication is configured, false otherwise.
    pub allow_anonymous: Option<bool>,
    /// Milliseconds from a CONNECT's arrival to its refusal (slows password guessing;
    /// each connection waits on its own). At least twice the slowest password check,
    /// so that every refusal takes as long ([`crate::security`]). Default 1000.
    pub failed_login_delay_ms: u64,
    /// Threads that check passwords ([`crate::security::pool`]); each keeps one
    /// argon2 working memory (19 MiB at the default cost), so this bounds what
    /// password checks cost in memory and CPU under a login flood. Default 0: one per
    /// core.
    pub password_workers: usize,
    /// Password checks that may wait for a worker; a CONNECT beyond them is refused at
    /// once with 0x9F Connection rate exceeded (3.x: return code 3) and counted in
    /// `mqtt_limit_hits_total{limit="password_queue"}`. Default 16.
    pub password_queue: usize,
    /// JWT bearer tokens.
    pub jwt: JwtConfig,
    /// The ACL file: which topics each user and client may publish to, subscribe to
    /// and receive from ([`crate::security::acl`] documents the format). Re-read on
    /// SIGHUP. Default unset: every client may do everything. Once set, anything the
    /// file does not allow is refused.
    pub acl_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password_file: None,
            allow_anonymous: None,
            failed_login_delay_ms: 1000,
            password_workers: 0,
            password_queue: 16,
            jwt: JwtConfig::default(),
            acl_file: None,
        }
    }
}

impl AuthConfig {
    /// Whether any way to log in is configured.
    pub fn configured(&self) -> bool {
        self.password_file.is_some() || self.jwt.configured()
    }

    /// `allow_anonymous` with its default applied.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(!self.configured())
    }

    /// The failed-login delay as a duration.
    pub fn failed_login_delay(&self) -> Duration {
        Duration::from_millis(self.failed_login_delay_ms)
    }
}

/// JWT bearer tokens (`[auth.jwt]`): a token is accepted in CONNECT's Password (the
/// User Name may be empty or must be the token's user), or, over WebSocket, in the
/// upgrade request's `Authorization: Bearer` header or the `cookie` named here.
/// Tokens must be signed (HS256, RS256 or ES256) by a configured key and unexpired
/// (`exp` is required).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret for HS256 tokens. Better given as `BROKER_AUTH__JWT__HMAC_SECRET`
    /// than in a file. Default unset.
    pub hmac_secret: Option<String>,
    /// PEM public key (RSA for RS256, EC P-256 for ES256). Default unset.
    pub public_key_file: Option<PathBuf>,
    /// JWKS file (`{"keys": [...]}`, as an identity provider publishes at
    /// `jwks_uri`); a token's `kid` picks the key. Re-read on SIGHUP. Default unset.
    pub jwks_file: Option<PathBuf>,
    /// Required `aud` claim (the token must name this audience). Default unset: `aud`
    /// is not checked.
    pub audience: Option<String>,
    /// Required `iss` claim. Default unset: not checked.
    pub issuer: Option<String>,
    /// Claim holding the MQTT user name. Default `sub`.
    pub username_claim: String,
    /// Claim holding topic permissions, an object `{"publish": [filters],
    /// "subscribe": [filters]}`; a token without it gets what the ACL gives its user.
    /// Default `mqtt`.
    pub permissions_claim: String,
    /// Cookie carrying the token on WebSocket upgrades (e.g. set by the web app next
    /// to the broker). Default unset: only the `Authorization` header is read. Pair it
    /// with `http.allowed_origins`, so other sites' pages cannot use the cookie.
    pub cookie: Option<String>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`. Default 30.
    pub leeway_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hmac_secret: None,
            public_key_file: None,
            jwks_file: None,
            audience: None,
            issuer: None,
            username_claim: "sub".into(),
            permissions_claim: "mqtt".into(),
            cookie: None,
            leeway_secs: 30,
        }
    }
}

impl JwtConfig {
    /// Whether a key is configured (JWT login on).
    pub fn configured(&self) -> bool {
        self.hmac_secret.is_some() || self.public_key_file.is_some() || self.jwks_file.is_some()
    }
}
