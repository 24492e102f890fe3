//! MQTT over TCP.

use std::sync::Arc;

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::clients::{ConnectionMeta, Transport};
use crate::connection;

/// Accepts connections on `listener` until `shutdown` turns `true`.
pub(crate) async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, "MQTT over TCP listening");
    let label: Arc<str> = local.map_or_else(String::new, |a| a.to_string()).into();
    let stats = broker.clients.add_listener(label.clone(), Transport::Tcp);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                broker.metrics.connections_total.inc();
                stats.accepted.inc();
                // Over the per-IP limit: closed before anything is read.
                let Ok(admitted) = broker.admission.admit(peer, &broker.metrics.limit_hits) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                crate::transport::bound_unsent(&stream);
                let meta = ConnectionMeta {
                    peer,
                    listener: label.clone(),
                    transport: Transport::Tcp,
                    cert_username: None,
                    bearer_token: None,
                    refused_by: admitted.refusal,
                };
                // The connection's place in the per-IP count is given back when it ends.
                // (`map`, not an `async` block around the future: that would hold the
                // connection's state twice.)
                let serve = connection::serve_with(broker.clone(), stream, meta);
                tokio::spawn(serve.map(move |()| drop(admitted)));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
