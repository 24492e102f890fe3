//! One bridge's task: connect to the remote (the next address after a failure), run
//! the connection (`super::forward`) until it is lost, wait out the backoff, again;
//! until shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use native_client::{
    Client, ConnectOptions, ConnectOptionsExt, ProtocolVersion, ReasonCode, ReconnectOptions,
    TlsOptions,
};
use tokio::sync::watch;

use super::forward::{Ended, serve};
use super::{BridgeStatus, publish_state};
use crate::broker::Broker;
use crate::config::{BridgeConfig, BridgeProtocol};

/// Runs the bridge of `status` until `shutdown` turns true.
pub(super) async fn run(
    broker: Arc<Broker>,
    status: Arc<BridgeStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &status.config;
    let name = config.name.as_str();
    publish_state(&broker, &status, false);
    let tls = match tls_options(config) {
        Ok(tls) => tls,
        Err(err) => {
            tracing::error!(bridge = name, %err, "bridge not started: cannot load its TLS files");
            *status.last_error.lock() = Some(err);
            return;
        }
    };
    let backoff = ReconnectOptions {
        enabled: true,
        initial_delay: Duration::from_millis(config.restart_initial_ms),
        max_delay: Duration::from_millis(config.restart_max_ms),
        jitter: config.restart_jitter,
    };
    let mut failures = 0u32;
    let mut next = 0usize;
    // MQTT 3.1.1 bridge flag: tried until a remote refuses it.
    let mut private = config.try_private && config.protocol == BridgeProtocol::Mqttv311;
    loop {
        let address = &config.address[next % config.address.len()];
        *status.remote.lock() = Some(address.to_string());
        status.connect_attempts.fetch_add(1, Ordering::Relaxed);
        let mut options = connect_options(config, &address.to_string(), tls.clone());
        if config.resumes_session() {
            // The client reconnects by itself and resumes the remote session; `serve`
            // hands over to the next address after a few failed attempts.
            options = options.reconnect(backoff.clone());
        }
        options.session.bridge = private;
        let connected = tokio::select! {
            connected = Client::connect(options) => connected,
            _ = shutdown.changed() => break,
        };
        match connected {
            Ok(client) => {
                failures = 0;
                *status.last_error.lock() = None;
                tracing::info!(bridge = name, %address, "bridge connected");
                let ended = serve(&broker, &status, &client, &mut shutdown).await;
                publish_state(&broker, &status, false);
                match ended {
                    Ended::Shutdown => {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            client.disconnect(ReasonCode::Success),
                        )
                        .await;
                        break;
                    }
                    Ended::Lost(why) => {
                        tracing::warn!(bridge = name, %address, reason = %why, "bridge connection lost");
                        *status.last_error.lock() = Some(why);
                        client.abort();
                    }
                }
            }
            Err(err) if private && refuses_bridge_flag(&err) => {
                tracing::info!(bridge = name, %address, error = %err, "the remote refuses the bridge flag (try_private): connecting without it");
                private = false;
                continue;
            }
            Err(err) => {
                let text = err.to_string();
                tracing::error!(bridge = name, %address, error = %text, "bridge cannot connect");
                *status.last_error.lock() = Some(text);
                next += 1;
            }
        }
        failures = failures.saturating_add(1);
        let delay = backoff.delay(failures, fastrand::f64());
        tracing::debug!(bridge = name, ?delay, "bridge reconnects after a delay");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
    }
    if status.connected.load(Ordering::Acquire) {
        publish_state(&broker, &status, false);
    }
}

/// Whether a failed connection looks like a remote that does not know the MQTT 3.1.1
/// bridge flag: it refused the protocol level, or closed the connection unanswered.
fn refuses_bridge_flag(err: &native_client::ConnectError) -> bool {
    use native_client::{ConnectError, ConnectFailure};
    match err {
        ConnectError::Handshake(ConnectFailure::Refused { reason_code, .. }) => {
            *reason_code == ReasonCode::UnsupportedProtocolVersion
        }
        ConnectError::Handshake(ConnectFailure::Closed(_)) => true,
        _ => false,
    }
}

/// The client options of one connection to `address` (`host:port`). The client does
/// not reconnect by itself (unless the session is resumed, see `run`): this task
/// does, so that it can fail over.
fn connect_options(
    config: &BridgeConfig,
    address: &str,
    tls: Option<TlsOptions>,
) -> ConnectOptions {
    let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
    let version = match config.protocol {
        BridgeProtocol::Mqttv311 => ProtocolVersion::V3_1_1,
        BridgeProtocol::Mqttv5 => ProtocolVersion::V5,
    };
    let mut options = ConnectOptions::new(format!("{scheme}://{address}"))
        .client_id(config.client_id.clone())
        .version(version)
        .keep_alive(Duration::from_secs(u64::from(config.keepalive_secs)))
        .clean_start(config.clean_start)
        .session_expiry(config.session_expiry_secs)
        .reconnect(ReconnectOptions::disabled())
        // Publications are only handed to the client while it is connected; the
        // outbox is the queue.
        .offline_queue(
            usize::from(config.max_inflight),
            native_client::DropPolicy::Reject,
        );
    options.session.connect_timeout = Duration::from_secs(10);
    // The bridge reads its subscriptions at once; a burst from the remote must not be
    // dropped by the client's per-subscription buffer.
    options.subscription_capacity = 65_536;
    if let Some(username) = &config.username {
        options = options.credentials(
            username.clone(),
            config.password.clone().unwrap_or_default(),
        );
    } else if let Some(password) = &config.password {
        options = options.token(password.clone());
    }
    if let Some(tls) = tls {
        options = options.tls(tls);
    }
    options
}

/// The TLS options of a bridge with `tls = true`, its files read.
fn tls_options(config: &BridgeConfig) -> Result<Option<TlsOptions>, String> {
    if !config.tls {
        return Ok(None);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))
    };
    let mut tls = TlsOptions::default();
    if let Some(ca) = &config.ca_file {
        tls = tls.ca_pem(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        tls = tls.client_auth(read(cert)?, read(key)?);
    }
    if let Some(name) = &config.server_name {
        tls = tls.server_name(name.clone());
    }
    Ok(Some(tls))
}
