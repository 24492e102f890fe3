//! The background tasks of [`super::Sessions`]: the watch that tells this node it lost
//! a session, and the handoff service.

use std::sync::Arc;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tokio::sync::oneshot;

use super::{Inner, Record, SessionEvent};

/// `<p>.ctl.<node>.handoff`.
pub(super) fn handoff_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.ctl.{node}.handoff")
}

/// Follows every write to the bucket; a write by another node, after this node's claim,
/// to a session this node holds is a takeover. The watch is an ordered consumer: it resumes
/// by itself after a reconnect; if it fails for good, it is started again after the
/// last revision seen.
pub(super) async fn watch_sessions(inner: Arc<Inner>, mut watch: kv::Watch) {
    let mut last = 0;
    loop {
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::warn!(%err, "cluster session watch failed");
                    break;
                }
            };
            last = entry.revision;
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let held = inner.held.lock().get(&entry.key).cloned();
            let Some(held) = held else { continue };
            let record = match Record::decode(&entry.value) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(key = entry.key, %err, "damaged cluster session record");
                    continue;
                }
            };
            if record.node != inner.node && entry.revision > held.revision {
                inner.unhold(&entry.key, held.epoch);
                let event = SessionEvent::TakenOver {
                    client_id: held.client_id,
                    by: record.node,
                };
                if inner.events.send(event).await.is_err() {
                    return;
                }
            }
        }
        loop {
            tokio::time::sleep(inner.op_timeout).await;
            match inner.kv.watch_all_from_revision(last + 1).await {
                Ok(again) => {
                    watch = again;
                    break;
                }
                Err(err) => tracing::warn!(%err, "restarting the cluster session watch"),
            }
        }
    }
}

/// Answers handoff requests: each goes to the broker as [`SessionEvent::Handoff`]; its
/// answer (or, after the timeout, an empty one) goes back to the requester.
pub(super) async fn serve_handoffs(inner: Arc<Inner>, mut requests: async_nats::Subscriber) {
    while let Some(request) = requests.next().await {
        let Some(reply_to) = request.reply.clone() else {
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let client_id = String::from_utf8_lossy(&request.payload).into_owned();
            // Absent (an older node): the session continues.
            let continues = request
                .headers
                .as_ref()
                .and_then(|h| h.get(super::CONTINUES_HEADER))
                .is_none_or(|v| v.as_str() != "0");
            let (reply, answer) = oneshot::channel();
            let asked = async {
                inner
                    .events
                    .send(SessionEvent::Handoff {
                        client_id,
                        continues,
                        reply,
                    })
                    .await
                    .ok()?;
                answer.await.ok()
            };
            let payload = tokio::time::timeout(inner.op_timeout, asked)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            tracing::debug!(bytes = payload.len(), "answering a handoff request");
            if let Err(err) = inner.client.publish(reply_to, payload).await {
                tracing::debug!(%err, "answering a handoff request");
            }
        });
    }
}
