//! Which web pages may open `/mqtt` (`http.allowed_origins`).
//!
//! A browser lets any page open a WebSocket to any address, sending the page's origin
//! (`scheme://host:port`) in `Origin`; the broker decides. The check protects browser
//! users (their cookies, their view of a broker on `localhost` or the LAN) from other
//! sites; clients that send no `Origin` (devices, command-line tools: not a browser
//! page) are always allowed.
//!
//! - A list of origins: only those pass, compared as (scheme, host, port) with the
//!   host's case and the default ports (80 for `http`/`ws`, 443 for `https`/`wss`)
//!   normalised. The dashboard served by the broker itself is a page like any other:
//!   its origin (`https://broker.example.com`) must be listed too.
//! - `"*"`, or an empty list (the default): any origin, the development default, with
//!   a warning at start. The broker cannot tell its own origin: behind a proxy, NAT or
//!   Docker's port mapping, and under a host name, the address its socket sees is not
//!   the one in the browser, so a default narrower than "any" would break the
//!   dashboard of a plain `docker run -p 8080:8080`. Some non-browser clients also
//!   send an `Origin` naming the host they connect to (paho-mqtt for Python does).
//!
//! The request's `Host` header is never used: the client chooses it (a DNS rebinding
//! page sends `Host: evil.example` with `Origin: http://evil.example`, as paho-mqtt
//! does for a broker reached by name), so a "same origin as Host" rule would let any
//! site in.

use std::fmt;
use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use tracing::warn;

/// A web origin, normalised: lowercase scheme and host, port always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http`, `https`, `ws` or `wss`.
    scheme: String,
    /// Lowercase host name, or an IP address (IPv6 without brackets).
    host: String,
    /// The explicit port, else the scheme's default.
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (an optional trailing `/`), as browsers send it
    /// and as `http.allowed_origins` lists it. `None` for anything else: `null` (sandboxed
    /// frames, `file:` pages), user info, paths, unknown schemes.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_suffix('/').unwrap_or(text);
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', '\\', ' ']) {
            return None;
        }
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (v6, after) = rest.split_once(']')?;
            // One spelling per address: `[0:0::1]` is `[::1]`.
            let v6 = v6.parse::<std::net::Ipv6Addr>().ok()?.to_string();
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            None => default_port,
            Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                port.parse().ok()?
            }
            Some(_) => return None,
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme: web_scheme(&scheme).to_owned(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host as an IP address, if it is one.
    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(ip)) => write!(f, "{}://[{ip}]:{}", self.scheme, self.port),
            _ => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

/// `ws`/`wss` name the same origins as `http`/`https` (a page's origin is always the
/// latter; a configuration may say either).
fn web_scheme(scheme: &str) -> &str {
    match scheme {
        "ws" => "http",
        "wss" => "https",
        other => other,
    }
}

/// `http.allowed_origins`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `"*"` or the empty list: any page.
    Any,
    /// Only these.
    List(Vec<Origin>),
}

impl AllowedOrigins {
    /// The policy `http.allowed_origins` names, logging what it means once: entries
    /// that are not origins are ignored with a warning (they could never match).
    pub fn from_config(list: &[String]) -> Self {
        if list.is_empty() || list.iter().any(|entry| entry.trim() == "*") {
            warn!(
                "http.allowed_origins is {}: any web site's pages may open /mqtt with their \
                 visitors' cookies and network position (fine for development); list your \
                 web app's and the dashboard's origins, e.g. [\"https://broker.example.com\"]",
                if list.is_empty() { "empty" } else { "\"*\"" }
            );
            return Self::Any;
        }
        let origins = list
            .iter()
            .filter_map(|entry| {
                let origin = Origin::parse(entry);
                if origin.is_none() {
                    warn!(
                        entry = %entry,
                        "http.allowed_origins: not an origin (scheme://host[:port]), ignored"
                    );
                }
                origin
            })
            .collect();
        Self::List(origins)
    }

    /// Whether a request with `headers` may open `/mqtt`. Requests without `Origin`
    /// are not from a browser page and always may.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::ORIGIN) else {
            return true;
        };
        match self {
            Self::Any => true,
            Self::List(list) => value
                .to_str()
                .ok()
                .and_then(Origin::parse)
                .is_some_and(|origin| list.contains(&origin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn origin(text: &str) -> Option<String> {
        Origin::parse(text).map(|o| o.to_string())
    }

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            origin("HTTPS://App.Example.com").as_deref(),
            Some("https://app.example.com:443")
        );
        assert_eq!(
            origin("https://app.example.com:443/").as_deref(),
            Some("https://app.example.com:443")
        );
        assert_eq!(
            origin("http://app.example.com").as_deref(),
            Some("http://app.example.com:80")
        );
        assert_eq!(
            origin("wss://app.example.com").as_deref(),
            Some("https://app.example.com:443")
        );
        assert_eq!(
            origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:",
            "https://app.example.com:99999",
            "https://app.example.com:+1",
            "https://",
            "http://[::1",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_list_allows_exactly_its_origins_and_never_trusts_host() {
        let policy = AllowedOrigins::from_config(&[
            "https://app.example.com".into(),
            "http://[::1]:8080".into(),
            "not an origin".into(),
        ]);
        let allows = |o: &str| policy.allows(&with_origin(o));
        assert!(allows("https://app.example.com"));
        assert!(allows("https://APP.example.com:443"));
        assert!(allows("http://[0:0::1]:8080"));
        assert!(!allows("http://app.example.com"));
        assert!(!allows("https://app.example.com:8443"));
        assert!(!allows("https://evil.example"));
        assert!(!allows("null"));
        let mut rebinding = with_origin("http://evil.example");
        rebinding.insert(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(!policy.allows(&rebinding));
        assert!(policy.allows(&HeaderMap::new()));
    }

    #[test]
    fn an_empty_list_or_a_star_allows_any_origin() {
        for list in [vec![], vec!["*".to_string()]] {
            let policy = AllowedOrigins::from_config(&list);
            assert_eq!(policy, AllowedOrigins::Any);
            assert!(policy.allows(&with_origin("https://evil.example")));
        }
    }
}
