//! MQTT over TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::connection;

/// Accepts connections on `listener` until `shutdown` turns `true`.
pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, "MQTT over TCP listening");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                broker.metrics.connections_total.inc();
                spawn_connection(&broker, stream, peer, &shutdown);
            }
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn spawn_connection(
    broker: &Arc<Broker>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shutdown: &watch::Receiver<bool>,
) {
    tokio::spawn(connection::serve(
        broker.clone(),
        stream,
        peer,
        shutdown.clone(),
    ));
}
