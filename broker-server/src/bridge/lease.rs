//! In a cluster, one node runs each bridge: the holder of its lease
//! ([`crate::cluster::lease`], key = the bridge's name). The others stand by, trying
//! to take the lease every `cluster.heartbeat_secs`; when the holder stops (it deletes
//! the key) or dies (the key expires after `cluster.node_ttl_secs`), one of them takes
//! over.
//!
//! Only the holder's outbox subscribes to the bridge's local filters (messages
//! published on any node reach it through the cluster); a standby's outbox subscribes
//! when it takes the lease and unsubscribes when it loses it. What a holder's outbox
//! still held when it went is not moved: it waits in that node's store until the node
//! holds the lease again (see `docs/bridges.md`).
//!
//! On a single node ([`Plane::Local`]) the bridge just runs.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use protocol::QoS;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{BridgeStatus, Role, link, subscribe_outbox, unsubscribe_outbox};
use crate::broker::Broker;
use crate::broker::backplane::Plane;
use crate::cluster::lease::{Leases, Renewal};
use crate::message::Message;

/// Why a node stopped holding a lease.
enum Left {
    /// The broker is shutting down: the lease is given up.
    Shutdown,
    /// The bridge ended by itself (its TLS files cannot be read): given up too.
    Ended,
    /// Another node holds it now, or renewals failed for too long.
    Lost,
}

/// Runs the bridge of `status` (on a cluster node: while this node holds its lease)
/// until `shutdown`.
pub(super) async fn run(
    broker: Arc<Broker>,
    status: Arc<BridgeStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Plane::Nats(plane) = &broker.backplane else {
        subscribe_outbox(&broker, &status).await;
        return link::run(broker, status, shutdown).await;
    };
    let name = status.config.name.clone();
    let leases = loop {
        match Leases::open(
            plane.link.client.clone(),
            &broker.config.cluster,
            &plane.node,
        )
        .await
        {
            Ok(leases) => break leases,
            Err(err) => {
                tracing::error!(bridge = %name, error = %err, "bridge: cannot open the lease bucket; trying again");
                *status.last_error.lock() = Some(format!("{err:#}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    };
    loop {
        let Some(revision) = stand_by(&broker, &status, &leases, &mut shutdown).await else {
            return;
        };
        tracing::info!(bridge = %name, node = %plane.node, "bridge lease taken: this node runs the bridge");
        set_role(&broker, &status, Role::Holder, Some(plane.node.clone()));
        subscribe_outbox(&broker, &status).await;
        let (left, revision) = hold(&broker, &status, &leases, revision, &mut shutdown).await;
        unsubscribe_outbox(&broker, &status);
        match left {
            Left::Shutdown | Left::Ended => {
                leases.release(&name, revision).await;
                return;
            }
            Left::Lost => {
                tracing::warn!(bridge = %name, "bridge lease lost: this node stands by");
            }
        }
    }
}

/// Waits as a standby until this node takes the lease: its revision; `None` at
/// shutdown.
async fn stand_by(
    broker: &Broker,
    status: &BridgeStatus,
    leases: &Leases,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<u64> {
    let mut shown: Option<String> = None;
    loop {
        match leases.acquire(&status.config.name).await {
            Ok(Ok(revision)) => return Some(revision),
            Ok(Err(holder)) => {
                let holder = Some(holder).filter(|h| !h.is_empty());
                if shown.as_ref() != holder.as_ref() || shown.is_none() {
                    set_role(broker, status, Role::Standby, holder.clone());
                    shown = holder;
                }
            }
            Err(err) => {
                tracing::debug!(bridge = %status.config.name, error = %err, "bridge lease: NATS failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(leases.renew_every) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

/// Runs the bridge while renewing the lease held at `revision`; why it stopped, and the
/// last revision.
async fn hold(
    broker: &Arc<Broker>,
    status: &Arc<BridgeStatus>,
    leases: &Leases,
    mut revision: u64,
    shutdown: &mut watch::Receiver<bool>,
) -> (Left, u64) {
    let (stop, stopped) = watch::channel(false);
    let bridge = link::run(broker.clone(), status.clone(), stopped);
    tokio::pin!(bridge);
    let mut renewed = Instant::now();
    // Given up before anyone else may take it: one renewal period before it expires.
    let give_up = leases.ttl.saturating_sub(leases.renew_every);
    let left = loop {
        tokio::select! {
            () = &mut bridge => {
                // It returned by itself: nothing to stop.
                return (Left::Ended, revision);
            }
            _ = tokio::time::sleep(leases.renew_every) => {
                match leases.renew(&status.config.name, revision).await {
                    Renewal::Held(next) => {
                        revision = next;
                        renewed = Instant::now();
                    }
                    Renewal::Lost => break Left::Lost,
                    Renewal::Failed(err) => {
                        tracing::warn!(bridge = %status.config.name, error = %err, "bridge lease renewal failed");
                        if renewed.elapsed() >= give_up {
                            break Left::Lost;
                        }
                    }
                }
            }
            _ = shutdown.changed() => break Left::Shutdown,
        }
    };
    let _ = stop.send(true);
    bridge.await;
    (left, revision)
}

/// Records this node's role for the bridge and publishes it, retained, on
/// `$SYS/broker/bridges/{name}/role` (`holder` / `standby`).
fn set_role(broker: &Broker, status: &BridgeStatus, role: Role, holder: Option<String>) {
    *status.role.lock() = (role, holder);
    let topic = format!("$SYS/broker/bridges/{}/role", status.config.name);
    broker.publish(Message {
        topic: topic.into(),
        payload: bytes::Bytes::from_static(role.as_str().as_bytes()),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
        expires_at: None,
        origin: ByteString::new(),
    });
}
