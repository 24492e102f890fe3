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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use bytestring::ByteString;
use parking_lot::Mutex;
use protocol::{ProtocolVersion, ReasonCode};

use crate::metrics::Counter;
use crate::session::KickHandle;

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
    pub meta: Arc<ConnectionMeta>,
    /// The MQTT version spoken.
    pub version: ProtocolVersion,
    /// Wall-clock time the CONNECT was accepted.
    pub connected_at: SystemTime,
    /// Outbound QoS 1 and 2 messages in flight, kept current by the connection task.
    pub inflight: AtomicUsize,
    /// Asks the connection to close, through its session.
    kick: KickHandle,
}

impl ClientEntry {
    /// Asks the connection to close (MQTT 5 clients get DISCONNECT 0x98).
    pub fn disconnect(&self) {
        self.kick.kick(ReasonCode::AdministrativeAction);
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
    /// Set by [`Self::disconnect_all`]: a connection registering after it is asked
    /// to close at once.
    closing: AtomicBool,
    /// The open connections' keep-alive deadlines (`crate::connection`'s keep-alive
    /// wheel).
    pub(crate) keep_alive: Arc<crate::connection::KeepAliveWheel>,
}

impl ClientRegistry {
    /// Adds an accepted connection; it stays listed while the registration lives.
    pub fn register(
        self: &Arc<Self>,
        client_id: ByteString,
        username: Option<ByteString>,
        meta: Arc<ConnectionMeta>,
        version: ProtocolVersion,
        kick: KickHandle,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(ClientEntry {
            client_id,
            username,
            meta,
            version,
            connected_at: SystemTime::now(),
            inflight: AtomicUsize::new(0),
            kick,
        });
        self.entries.lock().insert(id, entry.clone());
        if self.closing.load(Ordering::Acquire) {
            entry.kick.kick(ReasonCode::ServerShuttingDown);
        }
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

    /// Asks every open connection, and every one that registers from now on, to close
    /// with 0x8B Server shutting down.
    pub fn disconnect_all(&self) {
        self.closing.store(true, Ordering::Release);
        for entry in self.entries.lock().values() {
            entry.kick.kick(ReasonCode::ServerShuttingDown);
        }
    }

    /// Whether [`Self::disconnect_all`] was called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
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

    fn meta() -> Arc<ConnectionMeta> {
        Arc::new(ConnectionMeta::tcp(SocketAddr::from((
            [127, 0, 0, 1],
            5000,
        ))))
    }

    #[test]
    fn a_registration_lists_the_client_until_dropped() {
        let registry = Arc::new(ClientRegistry::default());
        let first = registry.register(
            "c".into(),
            None,
            meta(),
            ProtocolVersion::V5,
            KickHandle::default(),
        );
        let second = registry.register(
            "c".into(),
            None,
            meta(),
            ProtocolVersion::V3_1_1,
            KickHandle::default(),
        );
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

    fn session() -> Arc<crate::session::Session> {
        let limits = crate::session::QueueLimits {
            max_messages: 10,
            max_bytes: 1000,
            queue_qos0_offline: false,
            policy: crate::config::DropPolicy::DropNewest,
        };
        Arc::new(crate::session::Session::new("c".into(), limits))
    }

    #[test]
    fn disconnect_kicks_the_attach_it_was_registered_with() {
        let registry = Arc::new(ClientRegistry::default());
        let session = session();
        let old = session.next_epoch();
        let current = session.next_epoch();
        let kick = KickHandle::new(&session, current);
        let _registration = registry.register("c".into(), None, meta(), ProtocolVersion::V5, kick);
        assert!(registry.disconnect("c"));
        assert_eq!(
            session.kicked(current),
            Some(ReasonCode::AdministrativeAction)
        );
        assert_eq!(
            session.kicked(old),
            None,
            "an older attach is not the one asked"
        );
    }

    #[test]
    fn after_disconnect_all_a_new_registration_is_kicked_at_once() {
        let registry = Arc::new(ClientRegistry::default());
        let session = session();
        let first = session.next_epoch();
        let _a = registry.register(
            "c".into(),
            None,
            meta(),
            ProtocolVersion::V5,
            KickHandle::new(&session, first),
        );
        registry.disconnect_all();
        assert_eq!(session.kicked(first), Some(ReasonCode::ServerShuttingDown));
        let second = session.next_epoch();
        let _b = registry.register(
            "c".into(),
            None,
            meta(),
            ProtocolVersion::V5,
            KickHandle::new(&session, second),
        );
        assert_eq!(session.kicked(second), Some(ReasonCode::ServerShuttingDown));
    }
}
