//! The options `mqtt pub` and `mqtt sub` share (connection, TLS, credentials, will), in
//! mosquitto_pub/sub's spelling, and their translation into [`ConnectOptions`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use native_client::{
    BrokerUrl, ConnectOptions, ConnectOptionsExt, ProtocolVersion, QoS, ReconnectOptions,
    TlsOptions, Will, WillProperties,
};

use crate::failure::Failure;

/// Connection options of both subcommands.
#[derive(Debug, Args)]
pub(crate) struct ConnArgs {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "localhost")]
    pub(crate) host: String,
    /// Broker port [default: 1883, or 8883 with TLS].
    #[arg(short = 'p', long)]
    pub(crate) port: Option<u16>,
    /// Broker URL instead of host and port: mqtt(s)://[user[:password]@]host[:port][/topic],
    /// or ws(s)://host[:port]/path.
    #[arg(short = 'L', long)]
    pub(crate) url: Option<String>,
    /// Client identifier [default: mqtt-pub-XXXX / mqtt-sub-XXXX].
    #[arg(short = 'i', long = "id")]
    pub(crate) client_id: Option<String>,
    /// MQTT version: 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31).
    #[arg(short = 'V', long = "protocol-version", default_value = "5", value_parser = parse_version)]
    pub(crate) version: ProtocolVersion,
    /// User name.
    #[arg(short = 'u', long)]
    pub(crate) username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    pub(crate) password: Option<String>,
    /// Keep alive in seconds (0 disables).
    #[arg(short = 'k', long, default_value_t = 60)]
    pub(crate) keepalive: u16,
    /// Keep the session when disconnected (clean start off).
    #[arg(short = 'c', long = "disable-clean-session")]
    pub(crate) persistent: bool,
    /// MQTT 5 session expiry interval in seconds (with -c; default: kept forever).
    #[arg(short = 'x', long = "session-expiry-interval")]
    pub(crate) session_expiry: Option<u32>,
    /// Seconds to wait for the connection (TCP, TLS and CONNACK).
    #[arg(long = "connect-timeout", default_value_t = 10)]
    pub(crate) connect_timeout: u64,

    /// PEM file of the CA(s) to trust; enables TLS.
    #[arg(long, help_heading = "TLS")]
    pub(crate) cafile: Option<PathBuf>,
    /// Use TLS trusting the operating system's certificates.
    #[arg(long = "tls-use-os-certs", help_heading = "TLS")]
    pub(crate) os_certs: bool,
    /// PEM client certificate for mutual TLS; enables TLS.
    #[arg(long, requires = "key", help_heading = "TLS")]
    pub(crate) cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, requires = "cert", help_heading = "TLS")]
    pub(crate) key: Option<PathBuf>,
    /// Do not verify the server certificate (testing only: anyone on the path can read
    /// and change the traffic); enables TLS.
    #[arg(long, help_heading = "TLS")]
    pub(crate) insecure: bool,

    /// Will topic: published by the broker if the connection ends abnormally.
    #[arg(long = "will-topic", help_heading = "Will")]
    pub(crate) will_topic: Option<String>,
    /// Will payload.
    #[arg(long = "will-payload", requires = "will_topic", help_heading = "Will")]
    pub(crate) will_payload: Option<String>,
    /// Will QoS.
    #[arg(long = "will-qos", default_value = "0", value_parser = parse_qos, help_heading = "Will")]
    pub(crate) will_qos: QoS,
    /// Retain the will.
    #[arg(long = "will-retain", requires = "will_topic", help_heading = "Will")]
    pub(crate) will_retain: bool,

    /// Log protocol details to stderr.
    #[arg(short = 'd', long)]
    pub(crate) debug: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub(crate) help: Option<bool>,
}

/// `-V`: the spellings mosquitto accepts, and the plain numbers.
pub(crate) fn parse_version(text: &str) -> Result<ProtocolVersion, String> {
    match text.to_ascii_lowercase().as_str() {
        "5" | "50" | "5.0" | "mqttv5" | "mqttv50" => Ok(ProtocolVersion::V5),
        "311" | "3.1.1" | "4" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        "31" | "3.1" | "3" | "mqttv31" => Ok(ProtocolVersion::V3_1),
        _ => Err(format!(
            "unknown protocol version `{text}` (use 5, 311 or 31)"
        )),
    }
}

/// The broker URL of `mqtt pub`, `sub` and `bench`: `url` (`-L`) with `port` (`-p`)
/// replacing its port if given, else `host` and `port` with `mqtts://` when `tls`.
pub(crate) fn broker_url(
    url: Option<&str>,
    host: &str,
    port: Option<u16>,
    tls: bool,
) -> Result<BrokerUrl, Failure> {
    let text = match url {
        Some(url) => url.to_owned(),
        None => {
            let scheme = if tls { "mqtts" } else { "mqtt" };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            match port {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            }
        }
    };
    let mut parsed: BrokerUrl = text
        .parse()
        .map_err(|err| Failure::Usage(format!("{err}")))?;
    if url.is_some()
        && let Some(port) = port
    {
        parsed.port = port;
    }
    Ok(parsed)
}

/// `-q`: 0, 1 or 2.
pub(crate) fn parse_qos(text: &str) -> Result<QoS, String> {
    text.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not `{text}`"))
}

impl ConnArgs {
    /// Whether any TLS option asks for TLS.
    fn wants_tls(&self) -> bool {
        self.cafile.is_some() || self.cert.is_some() || self.insecure || self.os_certs
    }

    /// The broker URL: `-L`, or host and port with the scheme the TLS options imply.
    pub(crate) fn broker_url(&self) -> Result<BrokerUrl, Failure> {
        let parsed = broker_url(self.url.as_deref(), &self.host, self.port, self.wants_tls())?;
        if self.url.is_some() && self.wants_tls() && !parsed.scheme.is_tls() {
            return Err(Failure::Usage(format!(
                "TLS options given but the URL `{parsed}` is not mqtts:// or wss://"
            )));
        }
        Ok(parsed)
    }

    /// The client options; `role` names the default client id (`pub`, `sub`).
    pub(crate) fn connect_options(
        &self,
        url: &BrokerUrl,
        role: &str,
    ) -> Result<ConnectOptions, Failure> {
        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(|| format!("mqtt-{role}-{:08x}", fastrand::u32(..)));
        let mut options = ConnectOptions::new(url.to_string())
            .client_id(client_id)
            .version(self.version)
            .keep_alive(Duration::from_secs(u64::from(self.keepalive)))
            .clean_start(!self.persistent)
            .reconnect(ReconnectOptions::default());
        options.session.connect_timeout = Duration::from_secs(self.connect_timeout.max(1));
        if self.persistent && self.version.is_v5() {
            options.session.session_expiry_interval = self.session_expiry.unwrap_or(u32::MAX);
        }
        let username = self.username.clone().or_else(|| url.username.clone());
        let password = self.password.clone().or_else(|| url.password.clone());
        if let Some(username) = username {
            options = options.credentials(username, password.unwrap_or_default());
        } else if password.is_some() {
            return Err(Failure::Usage(
                "a password (-P) needs a user name (-u)".into(),
            ));
        }
        if let Some(topic) = &self.will_topic {
            let topic = topic
                .parse()
                .map_err(|err| Failure::Usage(format!("--will-topic `{topic}`: {err}")))?;
            options = options.will_message(Will {
                topic,
                payload: self.will_payload.clone().unwrap_or_default().into(),
                qos: self.will_qos,
                retain: self.will_retain,
                properties: WillProperties::default(),
            });
        }
        if url.scheme.is_tls() {
            options = options.tls(self.tls_options()?);
        }
        Ok(options)
    }

    fn tls_options(&self) -> Result<TlsOptions, Failure> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).map_err(|err| {
                Failure::Usage(format!("cannot read {what} {}: {err}", path.display()))
            })
        };
        let mut tls = TlsOptions::default().danger_accept_invalid_certs(self.insecure);
        if let Some(path) = &self.cafile {
            tls = tls.ca_pem(read(path, "CA file")?);
            tls.system_roots = self.os_certs;
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.client_auth(read(cert, "certificate")?, read(key, "key")?);
        }
        Ok(tls)
    }
}
