//! Which connections may open: open sockets per IP and connection rates, decided at
//! accept time (see the module above for why each refusal is what it is).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Limit, LimitHits, TokenBucket};
use crate::config::LimitsConfig;

/// Which connections may open: open sockets per IP and connection rates, checked at
/// accept time for every listener (TCP, TLS, HTTP). On the HTTP listener the rates
/// count `/mqtt` upgrades only, not page loads or metrics scrapes.
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<AdmissionInner>,
}

#[derive(Debug)]
struct AdmissionInner {
    max_per_ip: usize,
    rate: u32,
    rate_per_ip: u32,
    /// The broker-wide connection rate bucket (`None`: unlimited).
    global: Mutex<Option<TokenBucket>>,
    ips: Mutex<IpTable>,
}

/// Per-IP state. Entries are kept while the IP has sockets open or its rate bucket is
/// not full again, so the table holds only addresses active lately.
#[derive(Debug, Default)]
struct IpTable {
    map: HashMap<IpAddr, IpState>,
    /// Prune idle entries when the table grows past this.
    prune_at: usize,
}

impl IpTable {
    /// The state of `ip`, created if new; idle entries are pruned first when the
    /// table has grown.
    fn entry(&mut self, ip: IpAddr, rate_per_ip: u32, now: Instant) -> &mut IpState {
        if self.map.len() >= self.prune_at {
            self.map.retain(|_, state| {
                state.open > 0 || state.rate.as_mut().is_some_and(|b| !b.is_full(now))
            });
            self.prune_at = (self.map.len() * 2).max(1024);
        }
        self.map.entry(ip).or_insert_with(|| IpState {
            open: 0,
            rate: (rate_per_ip > 0)
                .then(|| TokenBucket::new(f64::from(rate_per_ip), f64::from(rate_per_ip), now)),
        })
    }
}

#[derive(Debug)]
struct IpState {
    open: usize,
    rate: Option<TokenBucket>,
}

/// A connection let in. Holds its place in the per-IP count until dropped.
#[derive(Debug)]
pub struct Admitted {
    slot: Option<IpSlot>,
    /// A rate limit the connection is over: its CONNECT is to be refused with
    /// [`Limit::connack_reason`].
    pub refusal: Option<Limit>,
}

#[derive(Debug)]
struct IpSlot {
    admission: Arc<AdmissionInner>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut table = self.admission.ips.lock();
        if let Some(state) = table.map.get_mut(&self.ip) {
            state.open = state.open.saturating_sub(1);
            if state.open == 0 && state.rate.as_mut().is_none_or(|b| b.is_full(now)) {
                table.map.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// The admission limits of `config`.
    pub fn new(config: &LimitsConfig) -> Self {
        let now = Instant::now();
        let rate = config.max_connections_per_sec;
        Self {
            inner: Arc::new(AdmissionInner {
                max_per_ip: config.max_connections_per_ip,
                rate,
                rate_per_ip: config.max_connections_per_sec_per_ip,
                global: Mutex::new(
                    (rate > 0).then(|| TokenBucket::new(f64::from(rate), f64::from(rate), now)),
                ),
                ips: Mutex::new(IpTable {
                    map: HashMap::new(),
                    prune_at: 1024,
                }),
            }),
        }
    }

    /// Decides on an MQTT connection just accepted from `peer`: `Err` with the limit
    /// when it is to be closed at once (open sockets per IP); otherwise its place in
    /// the per-IP count and the connection rate it is over, if any. Hits are counted
    /// and logged in `hits`.
    pub fn admit(&self, peer: SocketAddr, hits: &LimitHits) -> Result<Admitted, Limit> {
        let mut admitted = self.admit_socket(peer, hits)?;
        admitted.refusal = self.check_rate(peer, hits);
        Ok(admitted)
    }

    /// Like [`admit`](Self::admit) without the connection rates: for the HTTP
    /// listener, where the rates apply to the `/mqtt` upgrade ([`check_rate`](
    /// Self::check_rate)), not to every page load or metrics scrape.
    pub fn admit_socket(&self, peer: SocketAddr, hits: &LimitHits) -> Result<Admitted, Limit> {
        let inner = &self.inner;
        if inner.max_per_ip == 0 {
            return Ok(Admitted {
                slot: None,
                refusal: None,
            });
        }
        let now = Instant::now();
        let ip = peer.ip().to_canonical();
        let mut table = inner.ips.lock();
        let state = table.entry(ip, inner.rate_per_ip, now);
        if state.open >= inner.max_per_ip {
            drop(table);
            hits.hit(Limit::ConnectionsPerIp, peer, "");
            return Err(Limit::ConnectionsPerIp);
        }
        state.open += 1;
        Ok(Admitted {
            slot: Some(IpSlot {
                admission: inner.clone(),
                ip,
            }),
            refusal: None,
        })
    }

    /// Takes a new connection from `peer` out of the connection rates; the limit it is
    /// over, if any (its CONNECT is to be refused with 0x9F).
    pub fn check_rate(&self, peer: SocketAddr, hits: &LimitHits) -> Option<Limit> {
        let inner = &self.inner;
        if inner.rate == 0 && inner.rate_per_ip == 0 {
            return None;
        }
        let now = Instant::now();
        let mut refusal = None;
        if inner.rate_per_ip > 0 {
            let mut table = inner.ips.lock();
            let state = table.entry(peer.ip().to_canonical(), inner.rate_per_ip, now);
            if let Some(bucket) = &mut state.rate
                && !bucket.try_take(1.0, now)
            {
                refusal = Some(Limit::ConnectionRatePerIp);
            }
        }
        if refusal.is_none()
            && let Some(bucket) = inner.global.lock().as_mut()
            && !bucket.try_take(1.0, now)
        {
            refusal = Some(Limit::ConnectionRate);
        }
        if let Some(limit) = refusal {
            hits.hit(limit, peer, "");
        }
        refusal
    }

    /// IP addresses with state kept now (tests: the table stays bounded).
    pub fn tracked_ips(&self) -> usize {
        self.inner.ips.lock().map.len()
    }
}

impl Admitted {
    /// Whether the connection holds a place in the per-IP count.
    pub fn counted(&self) -> bool {
        self.slot.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ReasonCode;

    fn config(f: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
        let mut config = LimitsConfig::default();
        f(&mut config);
        config
    }

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn open_sockets_per_ip_are_capped_and_freed_on_drop() {
        let admission = Admission::new(&config(|c| c.max_connections_per_ip = 2));
        let hits = LimitHits::default();
        let a = admission.admit(peer([10, 0, 0, 1], 1), &hits).unwrap();
        let b = admission.admit(peer([10, 0, 0, 1], 2), &hits).unwrap();
        assert!(a.counted() && b.refusal.is_none());
        assert_eq!(
            admission.admit(peer([10, 0, 0, 1], 3), &hits).unwrap_err(),
            Limit::ConnectionsPerIp
        );
        // Another address is not affected.
        let _other = admission.admit(peer([10, 0, 0, 2], 1), &hits).unwrap();
        drop(a);
        let _c = admission.admit(peer([10, 0, 0, 1], 4), &hits).unwrap();
        assert_eq!(hits.get(Limit::ConnectionsPerIp), 1);
        drop((b, _c, _other));
        assert_eq!(admission.tracked_ips(), 0, "idle addresses are forgotten");
    }

    #[test]
    fn connection_rates_refuse_with_0x9f() {
        let admission = Admission::new(&config(|c| {
            c.max_connections_per_sec_per_ip = 2;
            c.max_connections_per_sec = 3;
        }));
        let hits = LimitHits::default();
        let refusals: Vec<_> = [[1, 1, 1, 1]; 3]
            .into_iter()
            .chain([[2, 2, 2, 2]; 2])
            .map(|ip| admission.admit(peer(ip, 1), &hits).unwrap().refusal)
            .collect();
        assert_eq!(
            refusals,
            [
                None,
                None,
                Some(Limit::ConnectionRatePerIp),
                None,
                Some(Limit::ConnectionRate)
            ]
        );
        assert_eq!(
            Limit::ConnectionRate.connack_reason(),
            ReasonCode::ConnectionRateExceeded
        );
        assert_eq!(hits.get(Limit::ConnectionRatePerIp), 1);
        assert_eq!(hits.get(Limit::ConnectionRate), 1);
    }

    #[test]
    fn no_limits_means_no_state() {
        let admission = Admission::new(&LimitsConfig::default());
        let hits = LimitHits::default();
        let admitted = admission.admit(peer([1, 2, 3, 4], 5), &hits).unwrap();
        assert!(!admitted.counted() && admitted.refusal.is_none());
        assert_eq!(admission.tracked_ips(), 0);
    }
}
