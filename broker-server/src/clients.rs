//! The connections open now: who each client is, where it came from and how, for the
//! admin API (`GET /api/clients`), for `/metrics` (connections per listener and protocol
//! version) and for disconnecting a client on an operator's request.
//!
//! A connection task registers once its CONNECT is accepted and is removed when the
//! [`Registration`] it holds drops, so the registry cannot keep a finished connection.
//! Keyed by a connection number, not by client identifier: during a session takeover
//! the old and the new connection of one client are both open for a moment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::ProtocolVersion;
use tokio::sync::Notify;

use crate::metrics::Counter;

/// How a client reached the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Transport {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket (`ws://.../mqtt`).
    Ws,
    /// MQTT over WebSocket over TLS (`wss://.../mqtt`).
    Wss,
}

impl Transport {
    /// The lowercase name used in metrics labels and the admin API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the transport knows about a connection before MQTT starts.
#[derive(Debug, Clone)]
pub struct ConnectionMeta {
    /// The client's address (the TCP peer; a reverse proxy's address when behind one).
    pub peer: SocketAddr,
    /// The listener's bound address, as metrics label it.
    pub listener: Arc<str>,
    /// How the client came.
    pub transport: Transport,
    /// The Common Name of a verified client certificate, when `tls.cert_cn_as_username`
    /// makes it the MQTT user name.
    pub cert_username: Option<ByteString>,
    /// A bearer token from the WebSocket upgrade request (`Authorization` header or
    /// cookie), checked at CONNECT like a password.
    pub bearer_token: Option<Arc<str>>,
    /// A connection rate limit the connection came in over (`crate::limits`): its
    /// CONNECT is refused with that limit's reason code.
    pub refused_by: Option<crate::limits::Limit>,
}

impl ConnectionMeta {
    /// A plain TCP connection from `peer` on no named listener (tests, embedding).
    pub fn tcp(peer: SocketAddr) -> Self {
        Self {
            peer,
            listener: Arc::from(""),
            transport: Transport::Tcp,
            cert_username: None,
            bearer_token: None,
            refused_by: None,
        }
    }
}

/// One open, accepted connection.
#[derive(Debug)]
pub struct ClientEntry {
    /// The client identifier (assigned by the broker when the client sent none).
    pub client_id: ByteString,
    /// The user name from CONNECT (or the certificate's Common Name).
    pub username: Option<ByteString>,
    /// Transport facts.
    pub meta: ConnectionMeta,
    /// The MQTT version spoken.
    pub version: ProtocolVersion,
    /// Wall-clock time the CONNECT was accepted.
    pub connected_at: SystemTime,
    /// Outbound QoS 1 and 2 messages in flight, kept current by the connection task.
    pub inflight: AtomicUsize,
    /// Woken to make the connection close with 0x98 Administrative action.
    kick: Notify,
}

impl ClientEntry {
    /// Asks the connection to close (MQTT 5 clients get DISCONNECT 0x98).
    pub fn disconnect(&self) {
        self.kick.notify_one();
    }

    /// Resolves once [`Self::disconnect`] was called (now or before).
    pub async fn disconnect_requested(&self) {
        self.kick.notified().await;
    }
}

/// Per-listener figures.
#[derive(Debug)]
pub struct ListenerStats {
    /// The bound address.
    pub listener: Arc<str>,
    /// The transport it serves.
    pub transport: Transport,
    /// Connections accepted since start (before MQTT CONNECT).
    pub accepted: Counter,
}

/// Every open connection, and every listener.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<ClientEntry>>>,
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
}

impl ClientRegistry {
    /// Adds an accepted connection; it stays listed while the registration lives.
    pub fn register(
        self: &Arc<Self>,
        client_id: ByteString,
        username: Option<ByteString>,
        meta: ConnectionMeta,
        version: ProtocolVersion,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(ClientEntry {
            client_id,
            username,
            meta,
            version,
            connected_at: SystemTime::now(),
            inflight: AtomicUsize::new(0),
            kick: Notify::new(),
        });
        self.entries.lock().insert(id, entry.clone());
        Registration {
            registry: self.clone(),
            id,
            entry,
        }
    }

    /// Every open connection, oldest first.
    pub fn list(&self) -> Vec<Arc<ClientEntry>> {
        let mut entries: Vec<(u64, Arc<ClientEntry>)> = self
            .entries
            .lock()
            .iter()
            .map(|(id, entry)| (*id, entry.clone()))
            .collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        entries.into_iter().map(|(_, entry)| entry).collect()
    }

    /// The newest open connection of `client_id`.
    pub fn get(&self, client_id: &str) -> Option<Arc<ClientEntry>> {
        self.entries
            .lock()
            .iter()
            .filter(|(_, entry)| entry.client_id == client_id)
            .max_by_key(|(id, _)| **id)
            .map(|(_, entry)| entry.clone())
    }

    /// Asks every open connection of `client_id` to close; `false` if none is open.
    pub fn disconnect(&self, client_id: &str) -> bool {
        let entries = self.entries.lock();
        let mut found = false;
        for entry in entries.values().filter(|e| e.client_id == client_id) {
            entry.disconnect();
            found = true;
        }
        found
    }

    /// Adds a listener; its accept loop counts on the returned stats.
    pub fn add_listener(&self, listener: Arc<str>, transport: Transport) -> Arc<ListenerStats> {
        let stats = Arc::new(ListenerStats {
            listener,
            transport,
            accepted: Counter::default(),
        });
        self.listeners.lock().push(stats.clone());
        stats
    }

    /// Every listener, in the order they were added.
    pub fn listeners(&self) -> Vec<Arc<ListenerStats>> {
        self.listeners.lock().clone()
    }
}

/// A connection's place in the [`ClientRegistry`]; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ClientRegistry>,
    id: u64,
    entry: Arc<ClientEntry>,
}

impl Registration {
    /// The registered entry.
    pub fn entry(&self) -> &Arc<ClientEntry> {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ConnectionMeta {
        ConnectionMeta::tcp(SocketAddr::from(([127, 0, 0, 1], 5000)))
    }

    #[test]
    fn a_registration_lists_the_client_until_dropped() {
        let registry = Arc::new(ClientRegistry::default());
        let first = registry.register("c".into(), None, meta(), ProtocolVersion::V5);
        let second = registry.register("c".into(), None, meta(), ProtocolVersion::V3_1_1);
        assert_eq!(registry.list().len(), 2);
        assert_eq!(
            registry.get("c").map(|e| e.version),
            Some(ProtocolVersion::V3_1_1)
        );
        drop(second);
        assert_eq!(
            registry.get("c").map(|e| e.version),
            Some(ProtocolVersion::V5)
        );
        drop(first);
        assert!(registry.list().is_empty());
        assert!(!registry.disconnect("c"));
    }

    #[tokio::test]
    async fn disconnect_wakes_the_connection_even_if_it_was_not_waiting_yet() {
        let registry = Arc::new(ClientRegistry::default());
        let registration = registry.register("c".into(), None, meta(), ProtocolVersion::V5);
        assert!(registry.disconnect("c"));
        registration.entry().disconnect_requested().await;
    }
}
