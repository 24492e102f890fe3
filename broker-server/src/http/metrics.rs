//! `/metrics`: the broker's figures in the Prometheus text exposition format (0.0.4).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mqtt_connections` | gauge | `listener`, `transport`, `protocol` |
//! | `mqtt_connections_accepted_total` | counter | `listener`, `transport` |
//! | `mqtt_connections_refused_total` | counter | |
//! | `mqtt_sessions`, `mqtt_sessions_online` | gauge | |
//! | `mqtt_subscriptions` | gauge | |
//! | `mqtt_retained_messages` | gauge | |
//! | `mqtt_messages_received_total`, `mqtt_messages_sent_total` | counter | `qos` |
//! | `mqtt_payload_bytes_received_total`, `mqtt_payload_bytes_sent_total` | counter | `qos` |
//! | `mqtt_bytes_received_total`, `mqtt_bytes_sent_total` | counter | |
//! | `mqtt_messages_dropped_total` | counter | |
//! | `mqtt_inflight_messages`, `mqtt_queued_messages` | gauge | |
//! | `mqtt_auth_failures_total`, `mqtt_protocol_errors_total` | counter | |
//! | `mqtt_acl_denied_total` | counter | `access` (`publish`, `subscribe`, `receive`, `will`) |
//! | `mqtt_unknown_acks_total` | counter | `packet` (`puback`, `pubrec`, `pubrel`, `pubcomp`) |
//! | `mqtt_limit_hits_total` | counter | `limit` (configuration key, [`crate::limits`]) |
//! | `mqtt_uptime_seconds` | gauge | |
//! | `mqtt_build_info` | gauge (1) | `version` |
//!
//! Each figure is read when scraped: counters from [`crate::metrics::Metrics`], levels
//! from the registries (so nothing on the message path updates a metric only for this
//! page).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use protocol::{ProtocolVersion, QoS};

use super::HttpState;
use crate::broker::Broker;
use crate::metrics::PerQoS;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn handler(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&state.broker),
    )
}

/// The protocol version as a label value: `3.1`, `3.1.1`, `5.0`.
pub(crate) fn version_label(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
        _ => "other",
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

struct Writer(String);

impl Writer {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    fn per_qos(&mut self, name: &str, help: &str, counts: &PerQoS) {
        self.header(name, "counter", help);
        for (qos, label) in [
            (QoS::AtMostOnce, "0"),
            (QoS::AtLeastOnce, "1"),
            (QoS::ExactlyOnce, "2"),
        ] {
            self.sample(name, &[("qos", label)], counts.at(qos).get());
        }
    }
}

/// Every metric, in the text format.
pub fn render(broker: &Broker) -> String {
    let m = &broker.metrics;
    let mut w = Writer(String::with_capacity(4096));

    let clients = broker.clients.list();
    let mut connections: BTreeMap<(String, &'static str, &'static str), u64> = BTreeMap::new();
    let mut inflight = 0u64;
    for client in &clients {
        let key = (
            client.meta.listener.to_string(),
            client.meta.transport.as_str(),
            version_label(client.version),
        );
        *connections.entry(key).or_default() += 1;
        inflight += client.inflight.load(Ordering::Relaxed) as u64;
    }
    w.header(
        "mqtt_connections",
        "gauge",
        "MQTT connections open now, by listener, transport and protocol version.",
    );
    for ((listener, transport, protocol), count) in &connections {
        let labels = [
            ("listener", listener.as_str()),
            ("transport", *transport),
            ("protocol", *protocol),
        ];
        w.sample("mqtt_connections", &labels, *count);
    }
    w.header(
        "mqtt_connections_accepted_total",
        "counter",
        "Connections accepted by each listener (WebSocket: upgrades to /mqtt).",
    );
    for listener in broker.clients.listeners() {
        let labels = [
            ("listener", &*listener.listener),
            ("transport", listener.transport.as_str()),
        ];
        w.sample(
            "mqtt_connections_accepted_total",
            &labels,
            listener.accepted.get(),
        );
    }
    w.single(
        "mqtt_connections_refused_total",
        "counter",
        "CONNECTs refused because limits.max_connections was reached.",
        m.connections_refused.get(),
    );

    let sessions = broker.sessions();
    let online = sessions.iter().filter(|s| s.is_online()).count() as u64;
    let queued: u64 = sessions.iter().map(|s| s.queue_len() as u64).sum();
    w.single(
        "mqtt_sessions",
        "gauge",
        "Sessions, online and offline.",
        sessions.len() as u64,
    );
    w.single(
        "mqtt_sessions_online",
        "gauge",
        "Sessions with a connection attached.",
        online,
    );
    w.single(
        "mqtt_subscriptions",
        "gauge",
        "Subscriptions, shared ones included.",
        broker.router.subscription_count() as u64,
    );
    w.single(
        "mqtt_retained_messages",
        "gauge",
        "Retained messages.",
        broker.router.retained().len() as u64,
    );

    w.per_qos(
        "mqtt_messages_received_total",
        "PUBLISH packets received from clients, by QoS.",
        &m.messages_received,
    );
    w.per_qos(
        "mqtt_messages_sent_total",
        "PUBLISH packets sent to clients, by delivery QoS.",
        &m.messages_sent,
    );
    w.per_qos(
        "mqtt_payload_bytes_received_total",
        "Payload bytes of the PUBLISH packets received, by QoS.",
        &m.payload_bytes_received,
    );
    w.per_qos(
        "mqtt_payload_bytes_sent_total",
        "Payload bytes of the PUBLISH packets sent, by delivery QoS.",
        &m.payload_bytes_sent,
    );
    w.single(
        "mqtt_bytes_received_total",
        "counter",
        "Bytes read from clients, every packet and transport.",
        m.bytes_received.get(),
    );
    w.single(
        "mqtt_bytes_sent_total",
        "counter",
        "Bytes written to clients, every packet and transport.",
        m.bytes_sent.get(),
    );
    w.single(
        "mqtt_messages_dropped_total",
        "counter",
        "Deliveries dropped: full session queue (limits.queue_drop_policy), larger than \
         the client's Maximum Packet Size, or expired while queued.",
        m.messages_dropped.get(),
    );
    w.single(
        "mqtt_inflight_messages",
        "gauge",
        "Outbound QoS 1 and 2 messages awaiting acknowledgement.",
        inflight,
    );
    w.single(
        "mqtt_queued_messages",
        "gauge",
        "Deliveries waiting in session queues.",
        queued,
    );
    w.single(
        "mqtt_auth_failures_total",
        "counter",
        "Authentication failures.",
        m.auth_failures.get(),
    );
    w.header(
        "mqtt_acl_denied_total",
        "counter",
        "Accesses refused by the ACL or the credential's permissions, by what was attempted.",
    );
    for (access, count) in m.acl_denied.by_access() {
        w.sample("mqtt_acl_denied_total", &[("access", access)], count);
    }
    w.single(
        "mqtt_protocol_errors_total",
        "counter",
        "Connections closed for a protocol violation.",
        m.protocol_errors.get(),
    );
    w.header(
        "mqtt_unknown_acks_total",
        "counter",
        "Acknowledgements for a packet identifier not in flight, by packet: PUBACK and \
         PUBCOMP ignored, PUBREC and PUBREL answered with 0x92. Usual for PUBREL after a \
         reconnect; otherwise the client's session state disagrees with the broker's.",
    );
    for (packet, count) in m.acks_not_in_flight.by_packet() {
        w.sample("mqtt_unknown_acks_total", &[("packet", packet)], count);
    }
    w.header(
        "mqtt_limit_hits_total",
        "counter",
        "Abuse limits reached, by the limit's configuration key: connections refused or \
         closed, clients throttled or disconnected, subscriptions refused.",
    );
    for limit in crate::limits::Limit::ALL {
        let hits = m.limit_hits.get(limit);
        w.sample("mqtt_limit_hits_total", &[("limit", limit.key())], hits);
    }
    w.single(
        "mqtt_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        crate::clock::now()
            .saturating_duration_since(broker.started_at)
            .as_secs(),
    );
    w.header("mqtt_build_info", "gauge", "The broker's version.");
    w.sample(
        "mqtt_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    // Storage: size, stored messages and queue entries, commits, errors, recovery time.
    for (name, kind, help, value) in crate::metrics::store_figures(&broker.storage) {
        w.single(name, kind, help, value);
    }
    // Cluster: the NATS connection, the nodes, cross-node traffic and handovers.
    if let crate::broker::backplane::Plane::Nats(plane) = &broker.backplane {
        for (name, _, kind, help, value) in plane.figures() {
            w.single(name, kind, help, value);
        }
    }
    bridges(broker, &mut w);
    w.0
}

/// `mqtt_bridge_*{bridge="name"}`: one sample per configured bridge (none without).
fn bridges(broker: &Broker, w: &mut Writer) {
    let bridges = broker.bridges.list();
    if bridges.is_empty() {
        return;
    }
    type Figure = fn(&crate::bridge::BridgeStatus) -> u64;
    w.single(
        "mqtt_bridge_looped_total",
        "counter",
        "Messages dropped because they carried this broker's hop marker: they went round a loop of bridges.",
        broker.bridges.looped_count(),
    );
    let figures: [(&str, &str, &str, Figure); 8] = [
        (
            "mqtt_bridge_active",
            "gauge",
            "1 while this node runs the bridge (always on a single node; in a cluster, while it holds the bridge's lease).",
            |b| u64::from(b.role.lock().0 != crate::bridge::Role::Standby),
        ),
        (
            "mqtt_bridge_connected",
            "gauge",
            "1 while the bridge is connected to its remote broker.",
            |b| u64::from(b.connected.load(Ordering::Relaxed)),
        ),
        (
            "mqtt_bridge_connect_attempts_total",
            "counter",
            "Connection attempts to the remote broker.",
            |b| b.connect_attempts.load(Ordering::Relaxed),
        ),
        (
            "mqtt_bridge_messages_in_total",
            "counter",
            "Messages received from the remote broker and published here.",
            |b| b.messages_in.load(Ordering::Relaxed),
        ),
        (
            "mqtt_bridge_messages_out_total",
            "counter",
            "Messages the remote broker acknowledged (QoS 0: written).",
            |b| b.messages_out.load(Ordering::Relaxed),
        ),
        (
            "mqtt_bridge_outbox_messages",
            "gauge",
            "Messages waiting for the remote broker.",
            |b| b.outbox.queue_len() as u64,
        ),
        (
            "mqtt_bridge_dropped_total",
            "counter",
            "Messages lost: full outbox, refused by the remote.",
            |b| b.dropped.load(Ordering::Relaxed),
        ),
        (
            "mqtt_bridge_loops_total",
            "counter",
            "Messages from the remote dropped because they had passed this broker before.",
            |b| b.loops.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, figure) in figures {
        w.header(name, kind, help);
        for bridge in bridges {
            w.sample(name, &[("bridge", &bridge.config.name)], figure(bridge));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let broker = Broker::new(Config::default());
        broker.metrics.messages_received.at(QoS::AtLeastOnce).add(3);
        broker.metrics.acl_denied.will.inc();
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let hits = &broker.metrics.limit_hits;
        hits.hit(crate::limits::Limit::PublishFlood, peer, "c");
        let text = render(&broker);
        assert!(text.contains("mqtt_messages_received_total{qos=\"1\"} 3\n"));
        assert!(text.contains("mqtt_acl_denied_total{access=\"will\"} 1\n"));
        assert!(text.contains("mqtt_acl_denied_total{access=\"publish\"} 0\n"));
        assert!(text.contains("mqtt_limit_hits_total{limit=\"publish_burst\"} 1\n"));
        assert!(text.contains("mqtt_limit_hits_total{limit=\"max_connections_per_ip\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(series.starts_with("mqtt_"), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
