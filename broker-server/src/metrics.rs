//! Broker-wide counters, shared by every connection task. Plain relaxed atomics: each is
//! an independent figure, read for `$SYS` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use protocol::QoS;

/// A monotonically increasing count or a current level.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one (for levels such as connected clients).
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds one unless that would reach `limit`; `false` if it would. Atomic, so
    /// concurrent callers can never push the level past the limit together.
    pub fn inc_below(&self, limit: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Message and byte counts per QoS.
#[derive(Debug, Default)]
pub struct PerQoS([Counter; 3]);

impl PerQoS {
    /// The counter for `qos`.
    pub fn at(&self, qos: QoS) -> &Counter {
        &self.0[qos as usize]
    }

    /// The sum over all QoS levels.
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// Everything the broker counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Clients connected now.
    pub clients_connected: Counter,
    /// Connections accepted since start (TCP level).
    pub connections_total: Counter,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: Counter,
    /// PUBLISH packets received, per QoS.
    pub messages_received: PerQoS,
    /// PUBLISH packets sent, per QoS.
    pub messages_sent: PerQoS,
    /// Application payload bytes of the PUBLISH packets received, per QoS.
    pub payload_bytes_received: PerQoS,
    /// Application payload bytes of the PUBLISH packets sent, per QoS.
    pub payload_bytes_sent: PerQoS,
    /// Bytes read from clients (every packet, every transport).
    pub bytes_received: Counter,
    /// Bytes written to clients.
    pub bytes_sent: Counter,
    /// Messages dropped because a session queue was full, or a message did not fit the
    /// client's Maximum Packet Size, or it expired while queued.
    pub messages_dropped: Counter,
    /// Connections closed for a protocol violation.
    pub protocol_errors: Counter,
    /// CONNECTs refused for bad credentials or authorization.
    pub auth_failures: Counter,
    /// Abuse limits reached, per limit ([`crate::limits`]).
    pub limit_hits: crate::limits::LimitHits,
    /// Accesses the ACL or the credential's permissions refused ([`crate::security`]).
    pub acl_denied: AclDenials,
    /// Acknowledgements for a packet identifier no flow had: ignored or answered 0x92
    /// rather than closing the connection, and counted here so that a client whose
    /// session state disagrees with the broker's still shows.
    pub acks_not_in_flight: AcksNotInFlight,
}

/// Acknowledgements for a packet identifier not in flight, by packet
/// ([`protocol::session::ServerEvent::AckNotInFlight`]).
#[derive(Debug, Default)]
pub struct AcksNotInFlight {
    /// PUBACK (ignored).
    pub puback: Counter,
    /// PUBREC (answered PUBREL 0x92).
    pub pubrec: Counter,
    /// PUBREL (answered PUBCOMP 0x92): usual after a reconnect.
    pub pubrel: Counter,
    /// PUBCOMP (ignored).
    pub pubcomp: Counter,
}

impl AcksNotInFlight {
    /// Counts one `packet`; other packet types are not acknowledgements and ignored.
    pub fn hit(&self, packet: protocol::PacketType) {
        use protocol::PacketType as T;
        match packet {
            T::PubAck => self.puback.inc(),
            T::PubRec => self.pubrec.inc(),
            T::PubRel => self.pubrel.inc(),
            T::PubComp => self.pubcomp.inc(),
            _ => {}
        }
    }

    /// `(label, count)` for each packet, for `/metrics`.
    pub fn by_packet(&self) -> [(&'static str, u64); 4] {
        [
            ("puback", self.puback.get()),
            ("pubrec", self.pubrec.get()),
            ("pubrel", self.pubrel.get()),
            ("pubcomp", self.pubcomp.get()),
        ]
    }
}

/// Refused accesses, by what was attempted.
#[derive(Debug, Default)]
pub struct AclDenials {
    /// PUBLISH packets refused (v5: PUBACK/PUBREC 0x87; 3.x: acknowledged, dropped).
    pub publish: Counter,
    /// SUBSCRIBE filters refused (0x87; 3.x 0x80).
    pub subscribe: Counter,
    /// Messages (routed, queued or retained) not delivered to a subscriber that may not
    /// read their topic.
    pub receive: Counter,
    /// Wills not published because their owner may not publish to the will topic.
    pub will: Counter,
}

impl AclDenials {
    /// `(label, count)` for each kind, for `/metrics`.
    pub fn by_access(&self) -> [(&'static str, u64); 4] {
        [
            ("publish", self.publish.get()),
            ("subscribe", self.subscribe.get()),
            ("receive", self.receive.get()),
            ("will", self.will.get()),
        ]
    }
}

/// The store's figures for `/metrics` ([`crate::storage`]), as `(name, type, help,
/// value)`: render each as one sample without labels.
pub(crate) fn store_figures(
    storage: &crate::storage::Storage,
) -> Vec<(&'static str, &'static str, &'static str, u64)> {
    let stats = storage.stats();
    let get = crate::storage::StoreStats::get;
    vec![
        (
            "mqtt_store_size_bytes",
            "gauge",
            "Size of the store file (0 with storage.backend = \"memory\").",
            get(&stats.size_bytes),
        ),
        (
            "mqtt_store_messages",
            "gauge",
            "Message bodies in the store (each stored once for every session queue that holds it).",
            get(&stats.messages),
        ),
        (
            "mqtt_store_queued_messages",
            "gauge",
            "Queue entries in the store: messages waiting for, or in flight to, persistent sessions.",
            get(&stats.queued),
        ),
        (
            "mqtt_store_commits_total",
            "counter",
            "Store transactions committed (one per group commit).",
            get(&stats.commits),
        ),
        (
            "mqtt_store_operations_total",
            "counter",
            "Store operations applied.",
            get(&stats.operations),
        ),
        (
            "mqtt_store_errors_total",
            "counter",
            "Store batches that failed (a failed commit, then every later one until restart); the acknowledgements waiting on them were refused.",
            get(&stats.errors),
        ),
        (
            "mqtt_store_recovery_milliseconds",
            "gauge",
            "Time the last start spent opening, repairing and loading the store.",
            get(&stats.recovery_ms),
        ),
        (
            "mqtt_store_recovered_messages",
            "gauge",
            "Queued messages recovered from the store at the last start.",
            get(&stats.recovered_messages),
        ),
    ]
}
