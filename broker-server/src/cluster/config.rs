//! The `[cluster]` section: which backplane joins this node to the others, and its NATS
//! connection (`[cluster.nats]`).
//!
//! Every key has a default, written next to it below and in `broker.toml`. With the
//! default `backend = "none"` the section is not checked further and the broker runs as
//! one node. `backend = "nats"` is checked completely at load, and a node that cannot
//! reach NATS at start does not start: a broker told to run in a cluster never silently
//! runs alone instead.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::subject::CONTROL_LINE_RESERVE;

/// Which backplane the node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterBackend {
    /// No cluster: this broker is the only node (default).
    #[default]
    None,
    /// A NATS JetStream cluster carries messages, sessions and retained messages
    /// between nodes. Not built yet: refused at load.
    Nats,
}

/// `[cluster]`: the node's place in a cluster of brokers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `none` (default) or `nats`.
    pub backend: ClusterBackend,
    /// This node's name, unique in the cluster: `[A-Za-z0-9_-]`, 1–32 characters (it is
    /// used in NATS subjects, KV keys and as the NATS connection name). Required with
    /// `nats`. Default unset.
    pub node: Option<String>,
    /// Shards of the QoS 1/2 message streams: one Raft group each, so their leaders
    /// spread over the servers; a topic always lands in the same shard (per-topic order).
    /// Fixed when the cluster is first created; a node configured differently refuses
    /// to start. Default 8.
    pub shards: u16,
    /// Copies JetStream keeps of every stream and bucket (1–5; 3 survives the loss of
    /// one server). Default 3.
    pub replicas: u8,
    /// Seconds QoS 1/2 messages stay in the streams: the longest an offline session can
    /// be away and still get everything replayed. Default 86400 (one day).
    pub retention_secs: u64,
    /// Longest an offline persistent session is kept, whatever Session Expiry Interval
    /// its client asked for (the KV entry's TTL). Default 604800 (one week).
    pub offline_session_retention_secs: u64,
    /// Seconds between this node's liveness heartbeats. Default 2.
    pub heartbeat_secs: u64,
    /// Seconds without a heartbeat after which the other nodes take a node for dead
    /// and publish its clients' wills; at least two heartbeats, so one late heartbeat
    /// is not a death. Default 6.
    pub node_ttl_secs: u64,
    /// Milliseconds to wait for JetStream to confirm a QoS 1/2 message before the
    /// PUBLISH is refused instead of acknowledged; covers the election of a new stream
    /// leader when a NATS server dies (a few seconds). Default 5000.
    pub publish_timeout_ms: u64,
    /// Seconds a node has to acknowledge a shared subscription's QoS 1/2 message (its
    /// member's PUBACK/PUBCOMP) before the cluster gives it to a member on another node:
    /// how long a dead node's unacknowledged shared messages wait. Default 30.
    pub shared_ack_wait_secs: u64,
    /// The NATS connection.
    pub nats: NatsConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            backend: ClusterBackend::None,
            node: None,
            shards: 8,
            replicas: 3,
            retention_secs: 86_400,
            offline_session_retention_secs: 604_800,
            heartbeat_secs: 2,
            node_ttl_secs: 6,
            publish_timeout_ms: 5000,
            shared_ack_wait_secs: 30,
            nats: NatsConfig::default(),
        }
    }
}

/// `[cluster.nats]`: how the node reaches the NATS servers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`, or `host:port`); several,
    /// so the node reconnects to another server when one goes down. Required with
    /// `nats`. Default `[]`.
    pub urls: Vec<String>,
    /// First token of every subject and name of every stream and bucket, so several
    /// broker clusters can share one NATS account: `[A-Za-z0-9_-]`, 1–32 characters.
    /// Default `mqtt`.
    pub prefix: String,
    /// NATS credentials file (`.creds`: user JWT and nkey seed). Default unset.
    pub credentials_file: Option<PathBuf>,
    /// User name, with `password`. Default unset.
    pub user: Option<String>,
    /// Password, with `user`; better given as `BROKER_CLUSTER__NATS__PASSWORD`.
    /// Default unset.
    pub password: Option<String>,
    /// Authentication token; better given as `BROKER_CLUSTER__NATS__TOKEN`. Default
    /// unset.
    pub token: Option<String>,
    /// PEM CA certificates the servers' certificates are verified against. Default
    /// unset: the system's roots (when a `tls://` URL or the server asks for TLS).
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, with `tls_key`, for servers that verify clients.
    /// Default unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default unset.
    pub tls_key: Option<PathBuf>,
    /// The servers' `max_control_line` in bytes: NATS does not advertise it, and a
    /// publish whose subject makes the line longer closes the connection, so topics whose
    /// subject would not fit are refused. Must match the servers. Default 4096 (NATS's
    /// default; 16384 is recommended on the servers, escaping can triple a topic).
    pub max_control_line: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            prefix: "mqtt".into(),
            credentials_file: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            max_control_line: 4096,
        }
    }
}

/// The longest node name and prefix.
const MAX_NAME_LEN: usize = 32;
/// Most shards: each is a Raft group on every replica.
const MAX_SHARDS: u16 = 1024;
/// JetStream's largest replica count.
const MAX_REPLICAS: u8 = 5;
/// Smallest `max_control_line` accepted: room for a subject beyond the line's reserve.
const MIN_CONTROL_LINE: usize = 1024;
const _: () = assert!(MIN_CONTROL_LINE > CONTROL_LINE_RESERVE);

/// A `[cluster]` section that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// `nats` without servers.
    #[error("cluster.backend = \"nats\" needs cluster.nats.urls (the NATS servers)")]
    MissingUrls,
    /// A URL that is empty, has spaces or a scheme NATS clients do not speak.
    #[error(
        "cluster.nats.urls: `{0}` is not a NATS server URL (nats://host:port, tls://host:port or host:port)"
    )]
    BadUrl(String),
    /// `nats` without a node name.
    #[error("cluster.backend = \"nats\" needs cluster.node (this node's unique name)")]
    MissingNode,
    /// A node name or prefix outside the charset or length.
    #[error("{key} = {value:?}: use 1 to 32 of the characters A-Z a-z 0-9 _ -")]
    BadName {
        /// `cluster.node` or `cluster.nats.prefix`.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A number out of its range.
    #[error("{key} = {value}: {expected}")]
    OutOfRange {
        /// The dotted key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The range, in words.
        expected: String,
    },
    /// Two ways to authenticate, or half of one.
    #[error("cluster.nats: {0}")]
    Credentials(&'static str),
}

impl ClusterConfig {
    /// Checks what the `nats` backend needs; `none` needs nothing and is always valid.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        if self.backend == ClusterBackend::None {
            return Ok(());
        }
        let node = self
            .node
            .as_deref()
            .ok_or(ClusterConfigError::MissingNode)?;
        check_name("cluster.node", node)?;
        let nats = &self.nats;
        check_name("cluster.nats.prefix", &nats.prefix)?;
        if nats.urls.is_empty() {
            return Err(ClusterConfigError::MissingUrls);
        }
        if let Some(url) = nats.urls.iter().find(|url| !is_nats_url(url)) {
            return Err(ClusterConfigError::BadUrl(url.clone()));
        }
        let range = |key, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else if max == u64::MAX {
                Err(ClusterConfigError::OutOfRange {
                    key,
                    value,
                    expected: format!("at least {min}"),
                })
            } else {
                Err(ClusterConfigError::OutOfRange {
                    key,
                    value,
                    expected: format!("from {min} to {max}"),
                })
            }
        };
        range("cluster.shards", self.shards.into(), 1, MAX_SHARDS.into())?;
        range(
            "cluster.replicas",
            self.replicas.into(),
            1,
            MAX_REPLICAS.into(),
        )?;
        range("cluster.retention_secs", self.retention_secs, 1, u64::MAX)?;
        range(
            "cluster.offline_session_retention_secs",
            self.offline_session_retention_secs,
            1,
            u64::MAX,
        )?;
        range("cluster.heartbeat_secs", self.heartbeat_secs, 1, u64::MAX)?;
        range(
            "cluster.node_ttl_secs",
            self.node_ttl_secs,
            self.heartbeat_secs.saturating_mul(2),
            u64::MAX,
        )
        .map_err(|_| ClusterConfigError::OutOfRange {
            key: "cluster.node_ttl_secs",
            value: self.node_ttl_secs,
            expected: format!(
                "at least twice cluster.heartbeat_secs ({}), so one late heartbeat is not taken for a dead node",
                self.heartbeat_secs
            ),
        })?;
        range(
            "cluster.publish_timeout_ms",
            self.publish_timeout_ms,
            1,
            u64::MAX,
        )?;
        range(
            "cluster.nats.max_control_line",
            nats.max_control_line as u64,
            MIN_CONTROL_LINE as u64,
            u64::MAX,
        )?;
        self.nats.validate_credentials()
    }
}

impl NatsConfig {
    /// At most one way to authenticate, each complete; TLS client certificate and key
    /// together.
    fn validate_credentials(&self) -> Result<(), ClusterConfigError> {
        let ways = [
            self.credentials_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if ways.iter().filter(|&&way| way).count() > 1 {
            return Err(ClusterConfigError::Credentials(
                "choose one of credentials_file, user/password and token",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(ClusterConfigError::Credentials(
                "user and password go together",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ClusterConfigError::Credentials(
                "tls_cert and tls_key go together",
            ));
        }
        Ok(())
    }
}

fn check_name(key: &'static str, value: &str) -> Result<(), ClusterConfigError> {
    let valid = (1..=MAX_NAME_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ClusterConfigError::BadName {
            key,
            value: value.to_owned(),
        })
    }
}

/// `nats://…`, `tls://…` or a bare `host:port` (what the NATS clients accept without
/// optional features), with no whitespace.
fn is_nats_url(url: &str) -> bool {
    let rest = match url.split_once("://") {
        Some(("nats" | "tls", rest)) => rest,
        Some(_) => return false,
        None => url,
    };
    !rest.is_empty() && !url.chars().any(char::is_whitespace)
}

/// Deserializes `[cluster]` and refuses what cannot run: an invalid section, and for now
/// any section that asks for a backend (see the module docs). Used by
/// [`crate::config::Config`], so the file, `--set` and `BROKER_CLUSTER__…` are all
/// checked, and the broker stops before it opens a listener.
pub(crate) fn deserialize_checked<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ClusterConfig, D::Error> {
    let config = ClusterConfig::deserialize(deserializer)?;
    config.validate().map_err(serde::de::Error::custom)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Override};
    use std::path::Path;

    fn nats() -> ClusterConfig {
        ClusterConfig {
            backend: ClusterBackend::Nats,
            node: Some("n1".into()),
            nats: NatsConfig {
                urls: vec!["nats://127.0.0.1:4222".into(), "10.0.0.2:4222".into()],
                ..NatsConfig::default()
            },
            ..ClusterConfig::default()
        }
    }

    fn load(overrides: &[&str]) -> Result<Config, String> {
        let overrides: Vec<Override> = overrides
            .iter()
            .map(|o| Override::parse_assignment("--set", o).unwrap())
            .collect();
        Config::load(None, &overrides).map_err(|err| err.to_string())
    }

    #[test]
    fn defaults_are_single_node() {
        let config = Config::default().cluster;
        assert_eq!(config.backend, ClusterBackend::None);
        assert_eq!(config.shards, 8);
        assert_eq!(config.replicas, 3);
        assert_eq!(config.nats.prefix, "mqtt");
        assert_eq!(config.nats.max_control_line, 4096);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_key_is_settable_by_flag_and_environment() {
        let config = load(&[
            "cluster.node=n1",
            "cluster.shards=16",
            "cluster.nats.urls=[\"nats://a:4222\"]",
            "cluster.nats.prefix=mq",
            "cluster.nats.max_control_line=16384",
        ])
        .unwrap();
        assert_eq!(config.cluster.node.as_deref(), Some("n1"));
        assert_eq!(config.cluster.shards, 16);
        assert_eq!(config.cluster.nats.urls, ["nats://a:4222"]);
        assert_eq!(config.cluster.nats.prefix, "mq");
        assert_eq!(config.cluster.nats.max_control_line, 16384);

        let env = Override::from_env([
            ("BROKER_CLUSTER__NODE".to_string(), "n2".to_string()),
            (
                "BROKER_CLUSTER__NATS__PASSWORD".to_string(),
                "secret".to_string(),
            ),
        ]);
        let config = Config::load(None, &env).unwrap();
        assert_eq!(config.cluster.node.as_deref(), Some("n2"));
        assert_eq!(config.cluster.nats.password.as_deref(), Some("secret"));
    }

    #[test]
    fn unknown_cluster_key_is_refused_with_its_line() {
        let text = "[cluster]\nnode = \"n1\"\n\n[cluster.nats]\nurl = \"nats://a\"\n";
        let err = Config::from_toml(text, Path::new("broker.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broker.toml:5: cluster.nats"), "{err}");
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn a_complete_nats_section_validates() {
        assert_eq!(nats().validate(), Ok(()));
    }

    #[test]
    fn a_nats_backend_loads_from_a_file_and_from_overrides() {
        let config = load(&[
            "cluster.backend=nats",
            "cluster.node=n1",
            "cluster.nats.urls=[\"nats://127.0.0.1:4222\"]",
        ])
        .unwrap();
        assert_eq!(config.cluster.backend, ClusterBackend::Nats);

        let text = "[cluster]\nbackend = \"nats\"\nnode = \"n1\"\n[cluster.nats]\nurls = [\"nats://a:4222\"]\n";
        let config = Config::from_toml(text, Path::new("broker.toml")).unwrap();
        assert_eq!(config.cluster.node.as_deref(), Some("n1"));
    }

    #[test]
    fn nats_without_urls_or_node_says_what_is_missing() {
        let err = load(&["cluster.backend=nats", "cluster.node=n1"]).unwrap_err();
        assert!(err.contains("needs cluster.nats.urls"), "{err}");
        let err =
            load(&["cluster.backend=nats", "cluster.nats.urls=[\"nats://a:1\"]"]).unwrap_err();
        assert!(err.contains("needs cluster.node"), "{err}");
    }

    #[test]
    fn invalid_sections() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                ClusterConfig {
                    node: Some("n 1".into()),
                    ..nats()
                },
                "cluster.node = \"n 1\"",
            ),
            (
                ClusterConfig {
                    node: Some("n.1".into()),
                    ..nats()
                },
                "cluster.node",
            ),
            (
                ClusterConfig {
                    node: Some(String::new()),
                    ..nats()
                },
                "cluster.node",
            ),
            (
                ClusterConfig {
                    node: Some("x".repeat(33)),
                    ..nats()
                },
                "cluster.node",
            ),
            (
                ClusterConfig {
                    shards: 0,
                    ..nats()
                },
                "cluster.shards = 0: from 1 to 1024",
            ),
            (
                ClusterConfig {
                    replicas: 6,
                    ..nats()
                },
                "cluster.replicas = 6",
            ),
            (
                ClusterConfig {
                    heartbeat_secs: 0,
                    ..nats()
                },
                "cluster.heartbeat_secs",
            ),
            (
                ClusterConfig {
                    heartbeat_secs: 4,
                    node_ttl_secs: 6,
                    ..nats()
                },
                "at least twice cluster.heartbeat_secs (4)",
            ),
            (
                ClusterConfig {
                    publish_timeout_ms: 0,
                    ..nats()
                },
                "cluster.publish_timeout_ms",
            ),
            (
                ClusterConfig {
                    retention_secs: 0,
                    ..nats()
                },
                "cluster.retention_secs",
            ),
        ];
        let nats_cases: Vec<(NatsConfig, &str)> = vec![
            (
                NatsConfig {
                    prefix: "mqtt.x".into(),
                    ..nats().nats
                },
                "cluster.nats.prefix",
            ),
            (
                NatsConfig {
                    urls: vec!["ws://a:80".into()],
                    ..nats().nats
                },
                "`ws://a:80` is not a NATS server URL",
            ),
            (
                NatsConfig {
                    urls: vec!["nats://".into()],
                    ..nats().nats
                },
                "not a NATS server URL",
            ),
            (
                NatsConfig {
                    urls: vec!["nats://a b".into()],
                    ..nats().nats
                },
                "not a NATS server URL",
            ),
            (
                NatsConfig {
                    max_control_line: 512,
                    ..nats().nats
                },
                "cluster.nats.max_control_line = 512",
            ),
            (
                NatsConfig {
                    user: Some("u".into()),
                    ..nats().nats
                },
                "user and password go together",
            ),
            (
                NatsConfig {
                    token: Some("t".into()),
                    credentials_file: Some("x.creds".into()),
                    ..nats().nats
                },
                "choose one of",
            ),
            (
                NatsConfig {
                    tls_cert: Some("c.pem".into()),
                    ..nats().nats
                },
                "tls_cert and tls_key go together",
            ),
        ];
        let cases = cases.into_iter().chain(
            nats_cases
                .into_iter()
                .map(|(n, e)| (ClusterConfig { nats: n, ..nats() }, e)),
        );
        for (config, expected) in cases {
            let err = config.validate().expect_err(expected).to_string();
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }

    #[test]
    fn backend_none_ignores_the_rest() {
        let config = ClusterConfig {
            node: Some("not a valid name".into()),
            shards: 0,
            ..ClusterConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
}
