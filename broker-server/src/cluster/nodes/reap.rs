//! Cleaning up after a dead node (see the parent module's docs): the race for the reap
//! key, taking over its sessions, and its wills, at once or when due.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt as _;
use protocol::Will;
use tokio::task::JoinSet;
use web_time::Instant;

use super::reap_key;
use crate::cluster::sessions::{
    Inner, Record, SessionEvent, WriteError, expires_at, last_value, next_epoch, unavailable,
};

/// Compare-and-set attempts on one record while reaping.
const CAS_TRIES: usize = 5;
/// Scans of the session records a reaper tries before it gives up (NATS failing).
const SCAN_TRIES: usize = 10;
/// The longest a listing of every session key may take (a stream of keys, however many
/// there are, ending when NATS says it delivered them all).
const LIST_PATIENCE: Duration = Duration::from_secs(60);
/// Records read at once while scanning.
const SCAN_CONCURRENCY: usize = 16;

/// A will the reaper took, and when it is due.
struct Taken {
    key: String,
    client_id: String,
    /// The epoch the reaper wrote.
    epoch: u64,
    will: Will,
    due: Instant,
}

/// Cleans up after run `started` of `node` if this node wins the race for it: takes
/// its sessions, emits the wills due now, then waits out the delayed ones. Returns the
/// run if the race could not be run (NATS failing), to be tried again.
pub(super) async fn reap(
    inner: Arc<Inner>,
    reaped: kv::Store,
    node: String,
    started: u64,
) -> Option<(String, u64)> {
    let key = reap_key(&node, started);
    let claim = reaped.create(&key, Bytes::from(inner.node.clone()));
    match tokio::time::timeout(inner.op_timeout, claim).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
            // Ours, from an earlier attempt whose answer was lost (or this node's own
            // previous run, which created it and died): the clean-up is ours to do.
            match tokio::time::timeout(inner.op_timeout, last_value(&reaped, &key)).await {
                Ok(Ok(Some(winner))) if winner.payload == inner.node.as_bytes() => {}
                Ok(Ok(_)) => return None,
                _ => return Some((node, started)),
            }
        }
        Ok(Err(err)) => {
            tracing::warn!(%err, node, "cannot race for the clean-up of a dead node");
            return Some((node, started));
        }
        Err(_) => {
            tracing::warn!(
                node,
                "cannot race for the clean-up of a dead node: no answer"
            );
            return Some((node, started));
        }
    }
    tracing::warn!(node, "cluster node died: taking over its sessions");
    // What a failed scan took over is kept: the next scan no longer finds it (held by
    // this node now), and its will must not be lost.
    let mut taken = Vec::new();
    for attempt in 1..=SCAN_TRIES {
        match scan(&inner, &node, started, &mut taken).await {
            Ok(()) => break,
            Err(err) if attempt < SCAN_TRIES => {
                tracing::warn!(%err, node, "scanning a dead node's sessions; trying again");
                tokio::time::sleep(inner.op_timeout).await;
            }
            Err(err) => tracing::error!(%err, node, "gave up scanning a dead node's sessions"),
        }
    }
    let now = Instant::now();
    let (due, delayed): (Vec<Taken>, Vec<Taken>) = taken.into_iter().partition(|t| t.due <= now);
    let wills = due
        .into_iter()
        .map(|t| (t.client_id, without_delay(t.will)))
        .collect();
    let event = SessionEvent::NodeDied {
        node: node.clone(),
        wills,
    };
    if inner.events.send(event).await.is_err() {
        return None;
    }
    let mut timers = JoinSet::new();
    for taken in delayed {
        timers.spawn(delayed_will(inner.clone(), node.clone(), taken));
    }
    while timers.join_next().await.is_some() {}
    None
}

/// The will to publish: its delay is over.
fn without_delay(mut will: Will) -> Will {
    will.properties.will_delay_interval = None;
    will
}

/// Takes over every record `node` held in run `started` or before that is connected
/// or has a will waiting, adding the wills to `taken` (also when the scan then fails).
/// A record already taken is held by this node, so a failed scan is simply run again.
async fn scan(
    inner: &Arc<Inner>,
    node: &str,
    started: u64,
    taken: &mut Vec<Taken>,
) -> Result<(), String> {
    let list = async {
        inner
            .kv
            .keys()
            .await
            .map_err(|err| format!("listing session keys: {err}"))?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<String>, _>>()
            .map_err(|err| format!("listing session keys: {err}"))
    };
    let keys = tokio::time::timeout(LIST_PATIENCE, list)
        .await
        .map_err(|_| format!("listing session keys: not done in {LIST_PATIENCE:?}"))??;
    let results: Vec<Result<Option<Taken>, String>> = futures::stream::iter(keys)
        .map(|key| take_over(inner, node, started, key))
        .buffer_unordered(SCAN_CONCURRENCY)
        .collect()
        .await;
    let mut failure = None;
    for result in results {
        match result {
            Ok(found) => taken.extend(found),
            Err(err) => failure = Some(err),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Takes one record of the dead node if it needs it; returns its will if any.
async fn take_over(
    inner: &Arc<Inner>,
    node: &str,
    started: u64,
    key: String,
) -> Result<Option<Taken>, String> {
    inner
        .bounded("takeover", async {
            for _ in 0..CAS_TRIES {
                let (Some(record), revision) = inner.read(&key).await? else {
                    return Ok(None);
                };
                let waiting = !record.connected && record.will_due.is_some();
                if record.node != node
                    || record.node_started > started
                    || !(record.connected || waiting)
                {
                    return Ok(None);
                }
                let now = Instant::now();
                let due = if record.connected {
                    record.will.as_ref().map(|will| {
                        let delay = will.properties.will_delay_interval.unwrap_or(0);
                        now + Duration::from_secs(delay.min(record.expiry_interval).into())
                    })
                } else {
                    record.will_due
                };
                let mut next = Record {
                    node: inner.node.clone(),
                    node_started: inner.liveness.started(),
                    epoch: next_epoch(Some(&record), revision),
                    connected: false,
                    expires_at: if record.connected {
                        expires_at(record.expiry_interval)
                    } else {
                        record.expires_at
                    },
                    will_due: due,
                    ..record.clone()
                };
                let now_due = due.is_some_and(|due| due <= now);
                if now_due || next.will.is_none() {
                    next.will = None;
                    next.will_due = None;
                }
                let ttl = inner.offline_ttl(&next);
                match inner.write(&key, next.encode(), revision, Some(ttl)).await {
                    Ok(_) => {
                        return Ok(record.will.zip(due).map(|(will, due)| Taken {
                            key: key.clone(),
                            client_id: record.client_id.to_string(),
                            epoch: next.epoch,
                            will,
                            due,
                        }));
                    }
                    Err(WriteError::Lost) => continue,
                    Err(WriteError::Failed(err)) => {
                        return Err(unavailable(err));
                    }
                }
            }
            Ok(None)
        })
        .await
        .map_err(|refused| refused.detail)
}

/// Waits until a taken will is due, then, if the session is still offline and held by
/// this node at the epoch it wrote, clears the will from the record and emits it.
async fn delayed_will(inner: Arc<Inner>, node: String, taken: Taken) {
    tokio::time::sleep(taken.due.saturating_duration_since(Instant::now())).await;
    for _ in 0..SCAN_TRIES {
        let cleared = inner
            .bounded("will", async {
                for _ in 0..CAS_TRIES {
                    let (Some(mut record), revision) = inner.read(&taken.key).await? else {
                        return Ok(false);
                    };
                    if record.node != inner.node
                        || record.epoch != taken.epoch
                        || record.connected
                        || record.will.is_none()
                    {
                        return Ok(false);
                    }
                    record.will = None;
                    record.will_due = None;
                    let ttl = inner.offline_ttl(&record);
                    match inner
                        .write(&taken.key, record.encode(), revision, Some(ttl))
                        .await
                    {
                        Ok(_) => return Ok(true),
                        Err(WriteError::Lost) => continue,
                        Err(WriteError::Failed(err)) => {
                            return Err(unavailable(err));
                        }
                    }
                }
                Ok(false)
            })
            .await;
        match cleared {
            Ok(true) => {
                let event = SessionEvent::NodeDied {
                    node,
                    wills: vec![(taken.client_id, without_delay(taken.will))],
                };
                let _ = inner.events.send(event).await;
                return;
            }
            Ok(false) => return,
            Err(refused) => {
                tracing::warn!(
                    detail = refused.detail,
                    "publishing a delayed will: retrying"
                );
                tokio::time::sleep(inner.op_timeout).await;
            }
        }
    }
}
