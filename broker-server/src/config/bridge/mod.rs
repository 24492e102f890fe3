//! `[[bridges]]`: connections from this broker to other MQTT brokers (see
//! `crate::bridge` and `docs/bridges.md`).
//!
//! Each entry is checked whole when it is read ([`BridgeConfig`] is built from
//! [`RawBridgeConfig`] with `try_from`), so a bad address, a bad topic rule or two
//! rules that overlap stop the start with the file, the line of the entry and a message
//! that names the bridge and the key; an unknown key is named by its path
//! (`bridges[0].adress`).
//!
//! Topic rules use mosquitto's `topic` grammar (`rule`: [`TopicRule`]).

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::DropPolicy;

mod rule;

pub use rule::{Direction, TopicRule, filters_overlap};

/// MQTT version the bridge speaks to the remote broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeProtocol {
    /// MQTT 3.1.1 (mosquitto's `bridge_protocol_version mqttv311`).
    Mqttv311,
    /// MQTT 5.0 (default): No Local and the hop marker prevent loops.
    #[default]
    Mqttv5,
}

/// One `[[bridges]]` entry as written; [`BridgeConfig`] is it checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridgeConfig {
    name: String,
    address: Vec<String>,
    #[serde(default)]
    protocol: BridgeProtocol,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default = "yes")]
    try_private: bool,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    key_file: Option<std::path::PathBuf>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default = "yes")]
    clean_start: bool,
    #[serde(default)]
    session_expiry_secs: u32,
    #[serde(default = "sixty")]
    keepalive_secs: u16,
    #[serde(default = "restart_initial")]
    restart_initial_ms: u64,
    #[serde(default = "restart_max")]
    restart_max_ms: u64,
    #[serde(default = "half")]
    restart_jitter: f64,
    #[serde(default = "inflight")]
    max_inflight: u16,
    #[serde(default = "outbox_messages")]
    outbox_max_messages: usize,
    #[serde(default = "outbox_bytes")]
    outbox_max_bytes: usize,
    #[serde(default)]
    outbox_drop_policy: DropPolicy,
    #[serde(default)]
    notification_topic: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
}

fn yes() -> bool {
    true
}
fn sixty() -> u16 {
    60
}
fn restart_initial() -> u64 {
    1000
}
fn restart_max() -> u64 {
    30_000
}
fn half() -> f64 {
    0.5
}
fn inflight() -> u16 {
    32
}
fn outbox_messages() -> usize {
    10_000
}
fn outbox_bytes() -> usize {
    64 * 1024 * 1024
}

/// One remote broker address: host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BridgeAddress {
    /// Parses `host[:port]` (`[v6]:port` for IPv6); `default_port` when none is given.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not host[:port]");
        if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => default_port,
                _ => after
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            return Ok(Self {
                host: host.into(),
                port,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
            None => (text, default_port),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || port == 0 || !host.chars().all(valid) {
            return Err(bad());
        }
        Ok(Self {
            host: host.into(),
            port,
        })
    }
}

impl fmt::Display for BridgeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One bridge to a remote broker, checked. Defaults are those of [`RawBridgeConfig`]'s
/// keys, listed in `broker.toml` and `docs/bridges.md`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawBridgeConfig")]
pub struct BridgeConfig {
    /// Names the bridge in logs, `$SYS/broker/bridges/{name}/state`, `/metrics` and the
    /// admin API (mosquitto's `connection`). Letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Remote brokers, tried in order: the next one after a connection fails
    /// (mosquitto's `address` list). Port default 1883, 8883 with `tls`.
    pub address: Vec<BridgeAddress>,
    /// MQTT version towards the remote. Default `mqttv5`.
    pub protocol: BridgeProtocol,
    /// Client identifier on the remote. Default `bridge-{name}`.
    pub client_id: String,
    /// User name on the remote. Default none.
    pub username: Option<String>,
    /// Password on the remote. Default none.
    pub password: Option<String>,
    /// MQTT 3.1.1: connect with the bridge flag (protocol level 0x84, mosquitto's
    /// `try_private`), so that the remote does not echo our messages and keeps their
    /// retain flag. A remote that refuses it is connected to without it. Default true.
    pub try_private: bool,
    /// TLS towards the remote (`mqtts`). Default false.
    pub tls: bool,
    /// PEM CA certificates the remote's certificate is checked against. Default: the
    /// system's trust store.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate (with `key_file`) for mutual TLS. Default none.
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
    /// Name the remote's certificate must carry. Default: the address's host.
    pub server_name: Option<String>,
    /// Clean start (3.1.1: clean session) on the remote. Default true.
    pub clean_start: bool,
    /// MQTT 5 session expiry on the remote, seconds. Default 0.
    pub session_expiry_secs: u32,
    /// Keep alive towards the remote, seconds (0: none). Default 60.
    pub keepalive_secs: u16,
    /// First delay before reconnecting, milliseconds; doubled per failed attempt.
    /// Default 1000.
    pub restart_initial_ms: u64,
    /// Longest delay between attempts, milliseconds. Default 30000.
    pub restart_max_ms: u64,
    /// Random fraction taken off each delay (0 to 1). Default 0.5.
    pub restart_jitter: f64,
    /// QoS 1/2 messages (and QoS 0 writes) in flight to the remote. Default 32.
    pub max_inflight: u16,
    /// Messages waiting for the remote (the outbox). Default 10000.
    pub outbox_max_messages: usize,
    /// Payload bytes waiting for the remote. Default 64 MiB.
    pub outbox_max_bytes: usize,
    /// What a full outbox drops. Default `drop-newest`.
    pub outbox_drop_policy: DropPolicy,
    /// Also publish `1` / `0` (retained) on this local topic when the bridge connects
    /// / disconnects (mosquitto's `notification_topic`). Default none.
    pub notification_topic: Option<String>,
    /// The topic rules, mosquitto's grammar (see the module docs).
    pub topics: Vec<TopicRule>,
}

impl BridgeConfig {
    /// Whether the bridge keeps one session with the remote across dropped
    /// connections: `clean_start = false` and (MQTT 5) a session expiry. Its client
    /// then reconnects by itself and resumes the session, re-sending what the remote
    /// did not acknowledge with the same packet ids (QoS 2 exactly once).
    pub fn resumes_session(&self) -> bool {
        !self.clean_start
            && (self.protocol == BridgeProtocol::Mqttv311 || self.session_expiry_secs > 0)
    }
}

impl TryFrom<RawBridgeConfig> for BridgeConfig {
    type Error = String;

    fn try_from(raw: RawBridgeConfig) -> Result<Self, String> {
        let name = raw.name;
        let fail = |key: &str, message: String| format!("bridge `{name}`: {key}: {message}");
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || !name.chars().all(valid) {
            return Err(fail(
                "name",
                "letters, digits, `-`, `_` and `.` only".into(),
            ));
        }
        if raw.address.is_empty() {
            return Err(fail("address", "at least one `host:port` is needed".into()));
        }
        let default_port = if raw.tls { 8883 } else { 1883 };
        let address = raw
            .address
            .iter()
            .map(|a| BridgeAddress::parse(a, default_port))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| fail("address", err))?;
        if raw.cert_file.is_some() != raw.key_file.is_some() {
            return Err(fail(
                "cert_file",
                "cert_file and key_file go together".into(),
            ));
        }
        if !raw.tls && (raw.ca_file.is_some() || raw.cert_file.is_some()) {
            return Err(fail("tls", "ca_file / cert_file need `tls = true`".into()));
        }
        if raw.restart_initial_ms == 0 || raw.restart_max_ms < raw.restart_initial_ms {
            return Err(fail(
                "restart_max_ms",
                "restart_initial_ms must be > 0 and at most restart_max_ms".into(),
            ));
        }
        if !(0.0..=1.0).contains(&raw.restart_jitter) {
            return Err(fail("restart_jitter", "between 0 and 1".into()));
        }
        if raw.max_inflight == 0 {
            return Err(fail("max_inflight", "at least 1".into()));
        }
        if raw.topics.is_empty() {
            return Err(fail("topics", "at least one topic rule is needed".into()));
        }
        let topics = raw
            .topics
            .iter()
            .map(|line| {
                TopicRule::parse(line).map_err(|err| fail("topics", format!("`{line}`: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&topics).map_err(|err| fail("topics", err))?;
        if let Some(topic) = &raw.notification_topic {
            protocol::TopicName::new(topic.clone())
                .map_err(|err| fail("notification_topic", err.to_string()))?;
        }
        Ok(Self {
            client_id: raw.client_id.unwrap_or_else(|| format!("bridge-{name}")),
            name,
            address,
            protocol: raw.protocol,
            username: raw.username,
            password: raw.password,
            try_private: raw.try_private,
            tls: raw.tls,
            ca_file: raw.ca_file,
            cert_file: raw.cert_file,
            key_file: raw.key_file,
            server_name: raw.server_name,
            clean_start: raw.clean_start,
            session_expiry_secs: raw.session_expiry_secs,
            keepalive_secs: raw.keepalive_secs,
            restart_initial_ms: raw.restart_initial_ms,
            restart_max_ms: raw.restart_max_ms,
            restart_jitter: raw.restart_jitter,
            max_inflight: raw.max_inflight,
            outbox_max_messages: raw.outbox_max_messages,
            outbox_max_bytes: raw.outbox_max_bytes,
            outbox_drop_policy: raw.outbox_drop_policy,
            notification_topic: raw.notification_topic,
            topics,
        })
    }
}

/// Two rules that carry the same messages the same way would forward them twice (and
/// the renaming would be ambiguous): refused.
fn check_overlaps(rules: &[TopicRule]) -> Result<(), String> {
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            let out = a.direction.sends()
                && b.direction.sends()
                && filters_overlap(a.local_filter.as_str(), b.local_filter.as_str());
            let inward = a.direction.receives()
                && b.direction.receives()
                && filters_overlap(a.remote_filter.as_str(), b.remote_filter.as_str());
            if out || inward {
                return Err(format!("`{a}` and `{b}` overlap"));
            }
        }
    }
    Ok(())
}

/// Reads `bridges`, refusing two bridges with one name (their `$SYS` topics and
/// metrics would mix).
pub(crate) fn deserialize_bridges<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<BridgeConfig>, D::Error> {
    let bridges = Vec::<BridgeConfig>::deserialize(deserializer)?;
    for (i, a) in bridges.iter().enumerate() {
        if bridges[i + 1..].iter().any(|b| b.name == a.name) {
            return Err(serde::de::Error::custom(format!(
                "bridge `{}`: name: two bridges have this name",
                a.name
            )));
        }
    }
    Ok(bridges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Override};
    use std::path::Path;

    const BRIDGE: &str = "[[bridges]]\nname = \"up\"\naddress = [\"127.0.0.1:1884\", \"backup\"]\ntopics = [\"a/# both 1\"]\n";

    #[test]
    fn a_bridge_parses_with_defaults() {
        let config = Config::from_toml(BRIDGE, Path::new("b.toml")).unwrap();
        let bridge = &config.bridges[0];
        assert_eq!(bridge.client_id, "bridge-up");
        assert_eq!(bridge.address[1].port, 1883);
        assert_eq!(bridge.protocol, BridgeProtocol::Mqttv5);
        assert!(bridge.clean_start);
    }

    #[test]
    fn errors_name_file_line_bridge_and_key() {
        let text = "[sys]\n\n[[bridges]]\nname = \"up\"\naddress = [\"host:notaport\"]\ntopics = [\"#\"]\n";
        let err = Config::from_toml(text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("b.toml:3: bridges[0]: bridge `up`: address: `host:notaport`"),
            "{err}"
        );

        let text = BRIDGE.replace("[\"a/# both 1\"]", "[\"a/# both 1\", \"a/b out 0\"]");
        let err = Config::from_toml(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bridge `up`: topics: `a/# both 1` and `a/b out 0` overlap"),
            "{err}"
        );

        let text = BRIDGE.replace("name =", "adress = \"x\"\nname =");
        let err = Config::from_toml(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("adress"), "{err}");

        let twice = format!("{BRIDGE}{BRIDGE}");
        let err = Config::from_toml(&twice, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("two bridges"), "{err}");
    }

    #[test]
    fn overrides_reach_bridges() {
        let set = [Override::parse_assignment(
            "--set",
            "bridges=[{name=\"x\", address=[\"h:1\"], topics=[\"t in\"]}]",
        )
        .unwrap()];
        let config = Config::load(None, &set).unwrap();
        assert_eq!(config.bridges[0].topics[0].direction, Direction::In);
        let bad = [Override::parse_assignment(
            "--set",
            "bridges=[{name=\"x\", address=[\"h:1\"], topics=[\"t up\"]}]",
        )
        .unwrap()];
        let err = Config::load(None, &bad).unwrap_err().to_string();
        assert!(err.contains("bridge `x`: topics:"), "{err}");
    }
}
