//! `$SYS` topics, with mosquitto's names where mosquitto has them, published retained
//! every `sys.interval_secs`.
//!
//! | topic | value |
//! |---|---|
//! | `$SYS/broker/version` | `broker-server <version>` |
//! | `$SYS/broker/uptime` | `<n> seconds` |
//! | `$SYS/broker/clients/connected` | clients connected now |
//! | `$SYS/broker/clients/disconnected` | persistent sessions without a connection |
//! | `$SYS/broker/clients/total` | connected + disconnected |
//! | `$SYS/broker/messages/received`, `sent` | PUBLISH packets since start |
//! | `$SYS/broker/publish/messages/dropped` | deliveries dropped (full queues, too large, expired) |
//! | `$SYS/broker/bytes/received`, `sent` | bytes since start |
//! | `$SYS/broker/subscriptions/count` | subscriptions |
//! | `$SYS/broker/retained messages/count` | retained messages |
//! | `$SYS/broker/load/{messages,bytes}/{received,sent}/{1min,5min,15min}` | per-minute moving averages |
//! | `$SYS/broker/load/connections/{1min,5min,15min}` | connections accepted per minute |
//! | `$SYS/broker/store/{backend,bytes,messages,queued,commits,errors}` | the store ([`crate::storage`]; durable backends only) |
//! | `$SYS/broker/store/recovery/{milliseconds,sessions,messages}` | what the last start recovered, and how long it took |

use std::time::Duration;

use bytes::Bytes;
use web_time::Instant;

use crate::broker::Broker;
use crate::message::Message;

const WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

/// Per-minute exponential moving averages of a counter over 1, 5 and 15 minutes, as
/// mosquitto computes its `load` figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    last: u64,
    averages: [f64; 3],
}

impl Load {
    /// Feeds the counter's value after `elapsed`.
    pub(crate) fn update(&mut self, value: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let per_minute = value.saturating_sub(self.last) as f64 * 60.0 / secs;
        self.last = value;
        for (avg, (_, window)) in self.averages.iter_mut().zip(WINDOWS) {
            *avg += (per_minute - *avg) * (1.0 - (-secs / window).exp());
        }
    }
}

/// The `$SYS` publisher's memory between ticks.
#[derive(Debug)]
pub(crate) struct SysPublisher {
    last_tick: Instant,
    loads: Vec<(&'static str, Load)>,
}

impl SysPublisher {
    /// A publisher starting at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        let names = [
            "messages/received",
            "messages/sent",
            "bytes/received",
            "bytes/sent",
            "connections",
        ];
        Self {
            last_tick: now,
            loads: names.into_iter().map(|n| (n, Load::default())).collect(),
        }
    }

    /// The `$SYS` topics and values at `now`.
    pub(crate) fn snapshot(&mut self, broker: &Broker, now: Instant) -> Vec<(String, String)> {
        let m = &broker.metrics;
        let elapsed = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        let connected = m.clients_connected.get();
        let total = broker.session_count() as u64;
        let mut out = vec![
            (
                "version".into(),
                format!("broker-server {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "uptime".into(),
                format!(
                    "{} seconds",
                    now.saturating_duration_since(broker.started_at).as_secs()
                ),
            ),
            ("clients/connected".into(), connected.to_string()),
            (
                "clients/disconnected".into(),
                total.saturating_sub(connected).to_string(),
            ),
            ("clients/total".into(), total.to_string()),
            (
                "messages/received".into(),
                m.messages_received.total().to_string(),
            ),
            ("messages/sent".into(), m.messages_sent.total().to_string()),
            (
                "publish/messages/dropped".into(),
                m.messages_dropped.get().to_string(),
            ),
            ("bytes/received".into(), m.bytes_received.get().to_string()),
            ("bytes/sent".into(), m.bytes_sent.get().to_string()),
            (
                "subscriptions/count".into(),
                broker.router.subscription_count().to_string(),
            ),
            (
                "retained messages/count".into(),
                broker.router.retained().len().to_string(),
            ),
        ];
        if broker.storage.is_durable() {
            out.extend(crate::storage::sys_topics(&broker.storage));
        }
        if broker.history.is_enabled() {
            out.extend(broker.history.sys_topics());
        }
        if let crate::broker::backplane::Plane::Nats(plane) = &broker.backplane {
            out.push(("cluster/node".into(), plane.node.clone()));
            let mut names: Vec<String> = plane.nodes().into_iter().map(|n| n.name).collect();
            names.sort();
            out.push(("cluster/nodes/list".into(), names.join(", ")));
            for (_, topic, _, _, value) in plane.figures() {
                out.push((format!("cluster/{topic}"), value.to_string()));
            }
        }
        for (name, load) in &mut self.loads {
            let value = match *name {
                "messages/received" => m.messages_received.total(),
                "messages/sent" => m.messages_sent.total(),
                "bytes/received" => m.bytes_received.get(),
                "bytes/sent" => m.bytes_sent.get(),
                _ => m.connections_total.get(),
            };
            load.update(value, elapsed);
            for ((window, _), avg) in WINDOWS.iter().zip(load.averages) {
                out.push((format!("load/{name}/{window}"), format!("{avg:.2}")));
            }
        }
        out.into_iter()
            .map(|(k, v): (String, String)| (format!("$SYS/broker/{k}"), v))
            .collect()
    }

    /// Publishes the snapshot as retained QoS 0 messages.
    pub(crate) fn publish(&mut self, broker: &Broker, now: Instant) {
        for (topic, value) in self.snapshot(broker, now) {
            let message = Message {
                topic: topic.into(),
                payload: Bytes::from(value),
                qos: protocol::QoS::AtMostOnce,
                retain: true,
                properties: Default::default(),
                expires_at: None,
                origin: "".into(),
            };
            broker.publish(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_converges_to_the_steady_rate_per_minute() {
        let mut load = Load::default();
        let mut value = 0;
        for _ in 0..600 {
            value += 10; // 10 per 10 s = 60 per minute, for 100 minutes
            load.update(value, Duration::from_secs(10));
        }
        assert!((load.averages[0] - 60.0).abs() < 0.5, "{:?}", load.averages);
        assert!((load.averages[2] - 60.0).abs() < 5.0, "{:?}", load.averages);
    }

    #[test]
    fn snapshot_names_mosquitto_topics() {
        let broker = Broker::new(crate::config::Config::default());
        broker.metrics.clients_connected.inc();
        let mut sys = SysPublisher::new(Instant::now());
        let snapshot = sys.snapshot(&broker, Instant::now());
        let get = |t: &str| {
            snapshot
                .iter()
                .find(|(k, _)| k == t)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("$SYS/broker/clients/connected").as_deref(), Some("1"));
        assert!(
            get("$SYS/broker/version")
                .unwrap()
                .starts_with("broker-server ")
        );
        assert!(get("$SYS/broker/load/messages/received/15min").is_some());
    }
}
