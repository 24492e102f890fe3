//! [`BrokerUrl`]: where the client connects, parsed from `mqtt://`, `mqtts://`, `ws://`
//! or `wss://` URLs.
//!
//! A small hand-written parser rather than the `url` crate: broker URLs are a narrow
//! grammar (`scheme://[user[:password]@]host[:port][/path]`) and the scheme decides the
//! default port, which `url` knows only for `ws`/`wss`.

use std::fmt;

/// How bytes reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `mqtt://` (also `tcp://`): MQTT over TCP, default port 1883.
    Mqtt,
    /// `mqtts://` (also `ssl://`, `tls://`): MQTT over TLS, default port 8883.
    Mqtts,
    /// `ws://`: MQTT over WebSocket, default port 80, default path `/mqtt`.
    Ws,
    /// `wss://`: MQTT over WebSocket over TLS, default port 443, default path `/mqtt`.
    Wss,
}

impl Scheme {
    /// Whether the transport is TLS.
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// Whether the transport is WebSocket.
    pub const fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 1883,
            Self::Mqtts => 8883,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }
}

/// A parsed broker URL.
///
/// ```
/// use native_client::{BrokerUrl, Scheme};
///
/// let url: BrokerUrl = "mqtts://alice:secret@broker.example:8884".parse().unwrap();
/// assert_eq!(url.scheme, Scheme::Mqtts);
/// assert_eq!((url.host.as_str(), url.port), ("broker.example", 8884));
/// assert_eq!(url.username.as_deref(), Some("alice"));
///
/// let url: BrokerUrl = "ws://[::1]".parse().unwrap();
/// assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("::1", 80, "/mqtt"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, the scheme's default when the URL has none.
    pub port: u16,
    /// The path: for WebSocket the HTTP path (default `/mqtt`); for `mqtt(s)://` what
    /// follows the authority, without the leading `/` (the `mqtt` command line takes a
    /// topic from it, like `mosquitto_pub -L`), empty when there is none.
    pub path: String,
    /// User name from `user@` or `user:password@`.
    pub username: Option<String>,
    /// Password from `user:password@`.
    pub password: Option<String>,
}

/// Why a string is not a [`BrokerUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid broker URL `{url}`: {reason}")]
pub struct UrlError {
    /// The string given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl std::str::FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let fail = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(fail(
            "expected scheme://host[:port], e.g. mqtt://localhost:1883",
        ))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            _ => return Err(fail("unknown scheme (use mqtt, mqtts, ws or wss)")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                None => (Some(info.to_owned()), None),
            },
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(fail("unclosed `[` in an IPv6 address"))?;
            let port = match after {
                "" => None,
                port => Some(
                    port.strip_prefix(':')
                        .ok_or(fail("expected `:port` after `]`"))?,
                ),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(fail("missing host"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or(fail("port is not a number from 1 to 65535"))?,
            None => scheme.default_port(),
        };
        let path = if scheme.is_websocket() {
            if path.is_empty() { "/mqtt" } else { path }.to_owned()
        } else {
            path.trim_start_matches('/').to_owned()
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
            username,
            password,
        })
    }
}

impl BrokerUrl {
    /// `host:port` as `TcpStream::connect` takes it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerUrl {
    /// The URL without credentials (safe to log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.name(), self.authority())?;
        if self.scheme.is_websocket() {
            f.write_str(&self.path)
        } else if self.path.is_empty() {
            Ok(())
        } else {
            write!(f, "/{}", self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> BrokerUrl {
        url.parse().unwrap()
    }

    #[test]
    fn schemes_have_their_default_ports() {
        assert_eq!(parse("mqtt://h").port, 1883);
        assert_eq!(parse("tcp://h").port, 1883);
        assert_eq!(parse("mqtts://h").port, 8883);
        assert_eq!(parse("ws://h").port, 80);
        assert_eq!(parse("wss://h").port, 443);
        assert_eq!(parse("MQTT://h:1").port, 1);
    }

    #[test]
    fn path_is_the_topic_for_mqtt_and_the_http_path_for_websocket() {
        assert_eq!(parse("mqtt://h:1/a/b").path, "a/b");
        assert_eq!(parse("ws://h:1/ws").path, "/ws");
        assert_eq!(parse("wss://h").path, "/mqtt");
    }

    #[test]
    fn credentials_and_ipv6_hosts_are_split_out() {
        let url = parse("mqtt://u:p:w@[::1]:1884");
        assert_eq!(url.username.as_deref(), Some("u"));
        assert_eq!(url.password.as_deref(), Some("p:w"));
        assert_eq!(url.host, "::1");
        assert_eq!(url.authority(), "[::1]:1884");
        assert_eq!(url.to_string(), "mqtt://[::1]:1884");
    }

    #[test]
    fn malformed_urls_say_what_is_wrong() {
        for (url, reason) in [
            ("localhost:1883", "expected scheme"),
            ("http://h", "unknown scheme"),
            ("mqtt://:1883", "missing host"),
            ("mqtt://h:x", "port"),
            ("mqtt://h:0", "port"),
            ("mqtt://[::1", "unclosed"),
        ] {
            let err = url.parse::<BrokerUrl>().unwrap_err();
            assert!(err.reason.contains(reason), "{url}: {err}");
        }
    }
}
