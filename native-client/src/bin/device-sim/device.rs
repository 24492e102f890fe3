//! One simulated device: a task with its own connection that announces itself
//! (`$state` init → `$description` → values → `$state` ready), publishes telemetry at
//! its rate, answers `/set` commands, and drops out or flaps when told to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use native_client::{Client, ConnectOptions, Message, PublishOptions, QoS, ReasonCode};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::model::{self, Command, State, TELEMETRY};

/// What every device shares: the settings and the counters of the summary.
#[derive(Debug)]
pub(crate) struct Fleet {
    /// Connection options without client id and will (set per device).
    pub(crate) connect: ConnectOptions,
    pub(crate) root: String,
    /// Telemetry messages per second per device.
    pub(crate) rate: f64,
    pub(crate) telemetry_qos: QoS,
    /// Probability per second that a connected device drops out.
    pub(crate) dropout_prob: f64,
    /// How long a dropped-out device stays away.
    pub(crate) dropout: Duration,
    /// Flapping: drop the connection this often and come right back.
    pub(crate) flap: Option<Duration>,
    /// `--convention ha`: the Home Assistant discovery prefix (`None`: Homie 5).
    pub(crate) ha_prefix: Option<String>,
    pub(crate) sent: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropouts: AtomicU64,
}

/// How one connection of a device ended.
pub(crate) enum End {
    /// Shut down: the device said `disconnected` and left.
    Shutdown,
    /// Dropped out (no DISCONNECT, so the will says `lost`); come back after a while.
    Dropout(Duration),
    /// A `reboot` command: leave politely and come back.
    Reboot,
    /// The client ended by itself (reconnect gave up); start over.
    Lost,
}

/// Runs device `id` until `shutdown` turns true.
pub(crate) async fn run(
    fleet: Arc<Fleet>,
    id: String,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = State::new(seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    while !*shutdown.borrow() {
        let client = match connect(&fleet, &id).await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!("{id}: {err}");
                let wait = Duration::from_millis(rng.u64(1000..5000));
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let ended = if fleet.ha_prefix.is_some() {
            crate::ha::session(&fleet, &id, &client, &mut state, &mut rng, &mut shutdown).await
        } else {
            session(&fleet, &id, &client, &mut state, &mut rng, &mut shutdown).await
        };
        let end = match ended {
            Ok(end) => end,
            Err(err) => {
                tracing::warn!("{id}: {err}");
                client.abort();
                End::Lost
            }
        };
        match end {
            End::Shutdown => return,
            End::Dropout(away) => {
                fleet.dropouts.fetch_add(1, Ordering::Relaxed);
                client.abort();
                if sleep_or_shutdown(away, &mut shutdown).await {
                    return;
                }
            }
            End::Reboot => {
                let _ = client.disconnect(ReasonCode::Success).await;
                if sleep_or_shutdown(Duration::from_millis(200), &mut shutdown).await {
                    return;
                }
            }
            End::Lost => {}
        }
    }
}

/// Sleeps `wait`; `true` if shutdown came first.
async fn sleep_or_shutdown(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = shutdown.changed() => true,
    }
}

fn topic(fleet: &Fleet, id: &str, rest: &str) -> String {
    format!("{}/5/{id}/{rest}", fleet.root)
}

async fn connect(fleet: &Fleet, id: &str) -> Result<Client, native_client::ConnectError> {
    let (will, payload) = match fleet.ha_prefix {
        Some(_) => (crate::ha::availability_topic(fleet, id), "offline"),
        None => (topic(fleet, id, "$state"), "lost"),
    };
    let options = fleet
        .connect
        .clone()
        .client_id(id)
        .will(&will, payload, QoS::AtLeastOnce, true);
    Client::connect(options).await
}

fn retained(qos: QoS) -> PublishOptions {
    PublishOptions::new(qos).retain(true)
}

/// One connection's life: announce, then telemetry and commands until it ends.
async fn session(
    fleet: &Fleet,
    id: &str,
    client: &Client,
    state: &mut State,
    rng: &mut fastrand::Rng,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<End, native_client::Error> {
    let at_least_once = QoS::AtLeastOnce;
    let mut commands = client
        .subscribe(topic(fleet, id, "+/+/set"), at_least_once)
        .await?;
    client
        .publish(topic(fleet, id, "$state"), "init", retained(at_least_once))
        .await?;
    let description = model::description(id).to_string();
    client
        .publish(
            topic(fleet, id, "$description"),
            description,
            retained(at_least_once),
        )
        .await?;
    for property in model::PROPERTIES.iter().filter(|p| p.retained) {
        if let Some(value) = state.value(property.id) {
            let path = format!("{}/{}", property.node, property.id);
            client
                .publish(topic(fleet, id, &path), value, retained(at_least_once))
                .await?;
        }
    }
    client
        .publish(topic(fleet, id, "$state"), "ready", retained(at_least_once))
        .await?;

    let period = Duration::from_secs_f64(1.0 / fleet.rate.max(0.001));
    // Devices start at random phases so a fleet does not publish in bursts.
    let start = Instant::now() + period.mul_f64(rng.f64());
    let mut telemetry = tokio::time::interval_at(start, period);
    telemetry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut each_second = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let flap_at = fleet
        .flap
        .map(|every| Instant::now() + every.mul_f64(0.5 + rng.f64()));
    let mut turn = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                let _ = client.publish(topic(fleet, id, "$state"), "disconnected", retained(at_least_once)).await;
                let _ = client.disconnect(ReasonCode::Success).await;
                return Ok(End::Shutdown);
            }
            _ = telemetry.tick() => {
                state.drift(period.as_secs_f64());
                let property = TELEMETRY[turn % TELEMETRY.len()];
                turn += 1;
                let node = model::PROPERTIES.iter().find(|p| p.id == property).map_or("env", |p| p.node);
                if let Some(value) = state.value(property) {
                    client
                        .publish(topic(fleet, id, &format!("{node}/{property}")), value, retained(fleet.telemetry_qos))
                        .await?;
                    fleet.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ok(End::Lost) };
                if handle_command(fleet, id, client, state, &command).await? {
                    // A reboot: announce again on a fresh connection.
                    let _ = client.publish(topic(fleet, id, "$state"), "init", retained(at_least_once)).await;
                    return Ok(End::Reboot);
                }
            }
            _ = each_second.tick() => {
                if fleet.dropout_prob > 0.0 && rng.f64() < fleet.dropout_prob {
                    let away = fleet.dropout.mul_f64(0.5 + rng.f64());
                    return Ok(End::Dropout(away));
                }
            }
            () = sleep_until(flap_at) => {
                return Ok(End::Dropout(Duration::from_millis(rng.u64(100..1000))));
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Validates, applies and acknowledges one `/set`. Returns `true` for a reboot.
async fn handle_command(
    fleet: &Fleet,
    id: &str,
    client: &Client,
    state: &mut State,
    message: &Message,
) -> Result<bool, native_client::Error> {
    fleet.commands.fetch_add(1, Ordering::Relaxed);
    // {root}/5/{dev}/{node}/{prop}/set
    let levels: Vec<&str> = message.topic().split('/').collect();
    let (node, prop) = match levels.as_slice() {
        [.., node, prop, "set"] => (*node, *prop),
        _ => ("", ""),
    };
    let result = match model::find(node, prop) {
        Some(property) => model::parse_set(property, &message.payload),
        None => Err(format!("{node}/{prop}: no such property")),
    };
    let reply = match &result {
        Ok(_) => r#"{"ok":true}"#.to_owned(),
        Err(error) => {
            fleet.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!("{id}: rejected {node}/{prop}: {error}");
            serde_json::json!({ "ok": false, "error": error }).to_string()
        }
    };
    let mut reboot = false;
    if let Ok(command) = &result {
        match state.apply(command) {
            Some(changed) => {
                let value = state.value(changed).unwrap_or_default();
                let path = format!("{node}/{changed}");
                let qos = QoS::AtLeastOnce;
                client
                    .publish(
                        topic(fleet, id, &format!("{path}/$target")),
                        value.clone(),
                        retained(qos),
                    )
                    .await?;
                client
                    .publish(topic(fleet, id, &path), value, retained(qos))
                    .await?;
            }
            None => reboot = *command == Command::Reboot,
        }
    }
    if message.response_topic().is_some() {
        client
            .respond(message, reply, PublishOptions::new(QoS::AtLeastOnce))
            .await?;
    }
    Ok(reboot)
}
