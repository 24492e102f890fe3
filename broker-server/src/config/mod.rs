//! Configuration: one TOML file, then environment variables, then command-line flags.
//!
//! Every key has a default (written next to it below and in `broker.toml`, the
//! commented example beside this crate). Unknown keys and bad values are errors that
//! name the file, the line and the key; an override names the variable or flag.
//!
//! Overrides use dotted keys: `--set limits.max_connections=500` on the command line,
//! `BROKER_LIMITS__MAX_CONNECTIONS=500` in the environment (prefix `BROKER_`, `__`
//! between sections and keys). Values are TOML (`500`, `"text"`, `true`, `["a", "b"]`);
//! a bare word is taken as a string.
//!
//! This module owns every plain configuration type (the `[storage]` backend and fsync
//! policy in `storage`, the `[auth]` section in `auth`, the shared-subscription
//! strategy): the modules that act on them import them from here, and the
//! configuration depends on none of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod auth;
mod bridge;
mod history;
mod storage;

pub use auth::{AuthConfig, JwtConfig};
pub use bridge::{
    BridgeAddress, BridgeConfig, BridgeProtocol, Direction, TopicRule, filters_overlap,
};
pub use history::HistoryConfig;
pub use storage::{Backend, FsyncPolicy, StorageConfig};

/// The broker's whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network listeners.
    pub listeners: ListenersConfig,
    /// Protocol and resource limits.
    pub limits: LimitsConfig,
    /// Session behaviour.
    pub sessions: SessionsConfig,
    /// `$SYS` topics.
    pub sys: SysConfig,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP listener: `/mqtt` (WebSocket), dashboard, metrics, health, admin API.
    pub http: HttpConfig,
    /// Certificate and key of the TLS listeners (MQTT over TLS, HTTPS/WSS).
    pub tls: TlsConfig,
    /// Durable state: backend, data directory, fsync policy ([`crate::storage`]).
    pub storage: StorageConfig,
    /// Who may connect and what they may do: password file, JWT, anonymous access,
    /// ACL file ([`crate::security`]).
    pub auth: AuthConfig,
    /// Cluster mode: the backplane joining this node to other brokers
    /// ([`crate::cluster::config`]). Default `backend = "none"`: one node.
    #[serde(deserialize_with = "crate::cluster::config::deserialize_checked")]
    pub cluster: crate::cluster::config::ClusterConfig,
    /// The bounded topic history served on `$history/query` ([`crate::history`]).
    pub history: HistoryConfig,
    /// Bridges to other MQTT brokers (`[[bridges]]`, [`bridge`]). Default none.
    #[serde(deserialize_with = "bridge::deserialize_bridges")]
    pub bridges: Vec<BridgeConfig>,
}

/// Where the broker listens.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    /// MQTT over TCP. Default `["0.0.0.0:1883"]`. Port 0 picks a free port (tests).
    pub tcp: Vec<SocketAddr>,
    /// MQTT over TLS (conventionally port 8883), with the `[tls]` certificate. Default
    /// `[]`: a TLS listener needs `tls.cert` and `tls.key`.
    pub tls: Vec<SocketAddr>,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        Self {
            tcp: vec![SocketAddr::from(([0, 0, 0, 0], 1883))],
            tls: Vec::new(),
        }
    }
}

/// The HTTP listener (`crate::http`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Plain HTTP (and `ws://`) addresses. Default `["0.0.0.0:8080"]`; `[]` turns plain
    /// HTTP off.
    pub listeners: Vec<SocketAddr>,
    /// HTTPS (and `wss://`) addresses, with the `[tls]` certificate. Default `[]`.
    pub tls_listeners: Vec<SocketAddr>,
    /// Serve the dashboard at `/`. Default true.
    pub dashboard: bool,
    /// Directory of the built dashboard (`trunk build --release` writes `dist/`).
    /// Default unset: the copy compiled in with the `embed-dashboard` feature, else
    /// `dist` in the working directory.
    pub dashboard_dir: Option<PathBuf>,
    /// Bearer token for the admin API (`/api/...`). Default unset: the admin API is
    /// disabled (403). Better given as `BROKER_HTTP__ADMIN_TOKEN` than in a file.
    pub admin_token: Option<String>,
    /// Broker users (of the password file, or JWT users) who may log in to the admin
    /// API with their password (`POST /api/login`, e.g. the dashboard's operator
    /// login). Default `[]`. Ignored unless `[auth]` checks passwords.
    pub admin_users: Vec<String>,
    /// Seconds a token from `POST /api/login` stays valid. Default 900.
    pub admin_session_secs: u64,
    /// Origins (`https://app.example.com`: scheme, host, port; case and default ports
    /// normalised) whose pages may open `/mqtt`. `"*"` or an empty list (default, for
    /// development; a warning is logged at start) allows any. With a list, the
    /// dashboard served by the broker is a page like any other: list its origin too
    /// (the request's `Host` header is not trusted, it is the client's choice).
    /// Requests without an `Origin` header (not from a browser) are always allowed:
    /// the check protects browser users from other sites (`crate::http::origin`).
    pub allowed_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listeners: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            tls_listeners: Vec::new(),
            dashboard: true,
            dashboard_dir: None,
            admin_token: None,
            admin_users: Vec::new(),
            admin_session_secs: 900,
            allowed_origins: Vec::new(),
        }
    }
}

/// TLS for `listeners.tls` and `http.tls_listeners` (`crate::transport::tls`). Files
/// are read at start and again on SIGHUP; connections already open keep their session.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first. Default unset.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Default unset.
    pub key: Option<PathBuf>,
    /// PEM file of CA certificates that client certificates are verified against
    /// (mutual TLS). Default unset: clients are not asked for a certificate.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate (true, default) or let
    /// them connect without one (false; a certificate given is still verified).
    pub require_client_cert: bool,
    /// Use the Common Name of a verified client certificate as the MQTT user name,
    /// replacing the one in CONNECT (mosquitto's `use_identity_as_username`). Default
    /// false.
    pub cert_cn_as_username: bool,
    /// Seconds a client has to finish the TLS handshake. Default 10.
    pub handshake_timeout_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            client_ca: None,
            require_client_cert: true,
            cert_cn_as_username: false,
            handshake_timeout_secs: 10,
        }
    }
}

/// What a queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropPolicy {
    /// Refuse the new message (default): what is queued keeps its order.
    #[default]
    DropNewest,
    /// Drop the oldest queued message to make room: the client gets the freshest data.
    DropOldest,
}

/// Limits. Each protects the broker from one kind of overload.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent client connections; more are refused (v5 CONNACK 0x97 / 3.x
    /// "server unavailable"). Default 100000.
    pub max_connections: usize,
    /// Largest packet accepted, in bytes (advertised as Maximum Packet Size). Default
    /// 8 MiB (8388608).
    pub max_packet_size: u32,
    /// QoS 1 and 2 messages in flight per client in each direction (advertised as
    /// Receive Maximum). Default 32.
    pub max_inflight: u16,
    /// Messages queued per session beyond the inflight window. Default 1000.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session. Default 64 MiB (67108864).
    pub max_queued_bytes: usize,
    /// What a full queue drops. Default `drop-newest`.
    pub queue_drop_policy: DropPolicy,
    /// Longest topic name or filter, in bytes. Default 65535.
    pub max_topic_length: usize,
    /// Most levels in a topic name or filter. Default 128.
    pub max_topic_levels: usize,
    /// Subscriptions per client; 0 means no limit. Default 1000.
    pub max_subscriptions_per_client: usize,
    /// Seconds a new connection has to send its whole CONNECT, counted from the
    /// accept (a CONNECT trickled in byte by byte gets no more time), and, on the HTTP
    /// listener, to send the request that opens `/mqtt`. Default 10.
    pub connect_timeout_secs: u64,
    /// Bytes a connection may send before its CONNECT is accepted (the CONNECT and
    /// anything pipelined behind it); more closes it. Bounds what a socket that never
    /// completes its CONNECT makes the broker buffer (otherwise up to
    /// `max_packet_size`). 0 = only `max_packet_size`. Default 1 MiB (1048576).
    pub max_bytes_before_connect: usize,
    /// Open connections from one IP address, counted from the accept (before CONNECT);
    /// more are closed at once, before anything is read. 0 (default) = unlimited:
    /// devices behind one NAT and every client of a reverse proxy share an address.
    pub max_connections_per_ip: usize,
    /// New connections per second, whole broker (a token bucket holding one second's
    /// worth). Over it, the connection's CONNECT is answered with CONNACK 0x9F
    /// Connection rate exceeded (3.x: server unavailable). On the HTTP listener only
    /// `/mqtt` upgrades count. 0 (default) = unlimited.
    pub max_connections_per_sec: u32,
    /// New connections per second from one IP address, as `max_connections_per_sec`.
    /// 0 (default) = unlimited.
    pub max_connections_per_sec_per_ip: u32,
    /// PUBLISH packets per second one client may send (token bucket refilled at this
    /// rate, holding `publish_burst`). A client over it is throttled (the broker stops
    /// reading its socket until the bucket refills); one that keeps going, sending more
    /// than a further `publish_burst` over the rate before its bucket is full again, is
    /// disconnected with 0x96 Message rate too high (3.x: the socket is closed). 0
    /// (default) = unlimited.
    pub max_publish_per_sec: u32,
    /// Burst of PUBLISH packets allowed above `max_publish_per_sec`; 0 (default) = one
    /// second's worth.
    pub publish_burst: u32,
    /// Seconds a write to a client may make no progress (it stopped reading: its socket
    /// buffer is full) before the connection is closed, as EMQX's `send_timeout`. A
    /// client that reads slowly but steadily is not affected: progress is one byte
    /// taken, and the kernel reports it every few KiB (`transport::bound_unsent`). 0 =
    /// wait forever.
    /// Default 15.
    pub write_timeout_secs: u64,
    /// Bytes per second read from one client, every packet counted. Over it the broker
    /// stops reading the socket until the budget refills (TCP back-pressure slows the
    /// client down; nothing is dropped). 0 (default) = unlimited.
    pub max_inbound_bytes_per_sec: u64,
    /// Largest keep alive accepted, in seconds; a client asking for more (or for 0)
    /// gets this as Server Keep Alive (v5; MQTT 3.x has no way to tell a client, so
    /// 3.x clients keep their own). Default 0 = accept any.
    pub max_keep_alive_secs: u16,
    /// Largest session expiry interval granted, in seconds. Default 4294967295 (never).
    pub max_session_expiry_secs: u32,
    /// Topic aliases accepted per connection (advertised Topic Alias Maximum). Default 64.
    pub topic_alias_maximum: u16,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_packet_size: 8 * 1024 * 1024,
            max_inflight: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_drop_policy: DropPolicy::DropNewest,
            max_topic_length: 65_535,
            max_topic_levels: 128,
            max_subscriptions_per_client: 1000,
            connect_timeout_secs: 10,
            max_bytes_before_connect: 1024 * 1024,
            max_connections_per_ip: 0,
            max_connections_per_sec: 0,
            max_connections_per_sec_per_ip: 0,
            max_publish_per_sec: 0,
            publish_burst: 0,
            max_inbound_bytes_per_sec: 0,
            write_timeout_secs: 15,
            max_keep_alive_secs: 0,
            max_session_expiry_secs: u32::MAX,
            topic_alias_maximum: 64,
        }
    }
}

impl LimitsConfig {
    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// Session behaviour.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Queue QoS 0 messages for offline persistent sessions (mosquitto's
    /// `queue_qos0_messages`). Default false.
    pub queue_qos0_offline: bool,
    /// How shared subscription groups pick a member: `round-robin` (default),
    /// `random` or `sticky`.
    pub shared_strategy: SharedStrategy,
    /// Whether a client may take over (resume, or end with a clean start) a session
    /// that another user owns: one created under another user name, or anonymously
    /// when the new client has a user name (or the other way round). Default false: a
    /// client identifier is not a credential, so such a CONNECT is refused with CONNACK
    /// 0x87 Not authorized (3.x: return code 5) and the session, its connection and its
    /// messages are left alone. `true` behaves like mosquitto (the client identifier
    /// alone picks the session): the session passes to the new user, and every message
    /// in flight or queued in it is checked against the new user's read rules; those it
    /// may not read are dropped and counted as refused deliveries. See
    /// [`crate::broker::Broker::attach`] and [`crate::session::Owner`].
    pub allow_cross_user_takeover: bool,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            queue_qos0_offline: false,
            shared_strategy: SharedStrategy::RoundRobin,
            allow_cross_user_takeover: false,
        }
    }
}

/// How a shared subscription group picks the member that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedStrategy {
    /// Each member in turn (default), skipping members that are offline.
    #[default]
    RoundRobin,
    /// A random online member.
    Random,
    /// The same member until it goes offline.
    Sticky,
}

/// `$SYS` topics.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SysConfig {
    /// Seconds between `$SYS` updates; 0 turns them off. Default 10.
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self { interval_secs: 10 }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `broker_server=debug`. Default `info`.
    /// `RUST_LOG` wins when set.
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key or value is wrong.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// Dotted key path (`limits.max_connections`), or `-` when the TOML itself is
        /// broken.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An override (flag or environment variable) is wrong.
    #[error("{source_name}: {key}: {message}")]
    Override {
        /// The flag or variable.
        source_name: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// One override of a dotted key, with where it came from for error messages.
#[derive(Debug, Clone)]
pub struct Override {
    /// `--set` or the environment variable's name.
    pub source_name: String,
    /// Dotted key, e.g. `limits.max_connections`.
    pub key: String,
    /// The value as written.
    pub value: String,
}

impl Override {
    /// Parses `key=value` (a `--set` argument).
    pub fn parse_assignment(source_name: &str, text: &str) -> Result<Self, ConfigError> {
        let (key, value) = text.split_once('=').ok_or_else(|| ConfigError::Override {
            source_name: source_name.into(),
            key: text.into(),
            message: "expected KEY=VALUE".into(),
        })?;
        Ok(Self {
            source_name: source_name.into(),
            key: key.trim().into(),
            value: value.trim().into(),
        })
    }

    /// Overrides from `BROKER_SECTION__KEY=value` variables.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Self> {
        let mut out: Vec<Self> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("BROKER_")?;
                let key = rest.to_ascii_lowercase().replace("__", ".");
                Some(Self {
                    source_name: name,
                    key,
                    value,
                })
            })
            .collect();
        out.sort_by(|a, b| a.source_name.cmp(&b.source_name));
        out
    }
}

impl Config {
    /// Parses a TOML document read from `path` (used for messages).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::load(Some((text, path)), &[])
    }

    /// Loads `file` (if any), then applies `overrides` in order.
    pub fn load(file: Option<(&str, &Path)>, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        if let Some((text, path)) = file {
            table = text
                .parse::<toml::Table>()
                .map_err(|err| invalid(path, text, "-", &err))?;
            // Deserialize the file alone first so its errors carry a line number.
            let de =
                toml::Deserializer::parse(text).map_err(|err| invalid(path, text, "-", &err))?;
            serde_path_to_error::deserialize::<_, Config>(de).map_err(|err| {
                let key = err.path().to_string();
                invalid(path, text, &key, err.inner())
            })?;
        }
        if overrides.is_empty() {
            return deserialize_table(table, None);
        }
        for o in overrides {
            set_dotted(&mut table, o)?;
        }
        deserialize_table(table, overrides.last())
    }

    /// Reads and loads `path`, then the overrides.
    pub fn load_file(path: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::load(Some((&text, path)), overrides)
    }
}

fn deserialize_table(table: toml::Table, last: Option<&Override>) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table)).map_err(|err| {
        let key = err.path().to_string();
        ConfigError::Override {
            source_name: last.map_or_else(|| "overrides".into(), |o| o.source_name.clone()),
            key,
            message: err.inner().message().to_string(),
        }
    })
}

fn invalid(path: &Path, text: &str, key: &str, err: &toml::de::Error) -> ConfigError {
    let line = err.span().map_or(1, |span| {
        text[..span.start.min(text.len())].lines().count().max(1)
    });
    let line = match err.span() {
        Some(span) if text[..span.start.min(text.len())].ends_with('\n') => line + 1,
        _ => line,
    };
    ConfigError::Invalid {
        path: path.into(),
        line,
        key: if key.is_empty() || key == "." {
            "-".into()
        } else {
            key.into()
        },
        message: err.message().to_string(),
    }
}

fn set_dotted(table: &mut toml::Table, o: &Override) -> Result<(), ConfigError> {
    let error = |message: &str| ConfigError::Override {
        source_name: o.source_name.clone(),
        key: o.key.clone(),
        message: message.into(),
    };
    let value = parse_value(&o.value);
    let mut parts: Vec<&str> = o.key.split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| error("empty key"))?;
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| error("not a section"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// A TOML value if the text is one, else the text as a string.
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "broker.toml";

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(
            Config::from_toml("", Path::new(PATH)).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../../broker.toml");
        assert_eq!(
            Config::from_toml(text, Path::new(PATH)).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "[limits]\nmax_connections = 5\nmax_conections = 6\n";
        let err = Config::from_toml(text, Path::new(PATH))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broker.toml:3: limits"), "{err}");
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let text = "[sys]\n\n[limits]\nmax_inflight = \"many\"\n";
        let err = Config::from_toml(text, Path::new(PATH))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("broker.toml:4: limits.max_inflight:"),
            "{err}"
        );
    }

    #[test]
    fn broken_toml_names_line() {
        let err = Config::from_toml("[limits\n", Path::new(PATH))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broker.toml:1: -:"), "{err}");
    }

    #[test]
    fn overrides_apply_in_order_and_name_their_source() {
        let env = Override::from_env([
            (
                "BROKER_LIMITS__MAX_CONNECTIONS".to_string(),
                "7".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        let mut overrides = env;
        overrides.push(Override::parse_assignment("--set", "log.level=debug").unwrap());
        overrides
            .push(Override::parse_assignment("--set", "listeners.tcp=[\"127.0.0.1:0\"]").unwrap());
        let config = Config::load(
            Some(("[limits]\nmax_connections = 5\n", Path::new(PATH))),
            &overrides,
        )
        .unwrap();
        assert_eq!(config.limits.max_connections, 7);
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.listeners.tcp, vec!["127.0.0.1:0".parse().unwrap()]);

        let bad = [Override::parse_assignment("--set", "limits.max_inflight=-1").unwrap()];
        let err = Config::load(None, &bad).unwrap_err().to_string();
        assert!(err.starts_with("--set: limits.max_inflight:"), "{err}");
    }
}
