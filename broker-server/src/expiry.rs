//! Timers for sessions without a connection: the will waiting out its Will Delay
//! Interval (§3.1.3.2.2) and the session's own expiry (§4.1). One task per detached
//! session sleeps until the earlier deadline; a generation number makes it a no-op if
//! a connection resumed the session meanwhile.

use std::sync::Arc;

use crate::broker::Broker;
use crate::clock;
use crate::session::Session;

/// Starts the timer task for `session`, detached at `generation`.
pub(crate) fn arm(broker: Arc<Broker>, session: Arc<Session>, generation: u64) {
    tokio::spawn(async move {
        loop {
            let next = {
                let detached = session.detached();
                if detached.generation != generation {
                    return;
                }
                let will_at = detached.pending_will.as_deref().map(|(at, _)| *at);
                match (will_at, detached.expires_at) {
                    (Some(w), Some(e)) => Some(w.min(e)),
                    (w, e) => w.or(e),
                }
            };
            let Some(at) = next else { return };
            tokio::time::sleep_until(clock::to_tokio(at)).await;
            let now = clock::now();
            let (will, expired) = {
                let mut detached = session.detached();
                if detached.generation != generation {
                    return;
                }
                let expired = detached.expires_at.is_some_and(|e| now >= e);
                let will_due = detached
                    .pending_will
                    .as_deref()
                    .is_some_and(|(at, _)| now >= *at);
                // The will goes out when its delay passes or when the session ends,
                // whichever is first.
                let will = if will_due || expired {
                    detached.pending_will.take().map(|will| *will)
                } else {
                    None
                };
                if expired {
                    // The protocol state stays for `end_session`, which re-routes the
                    // shared-subscription messages in it (`router::shared`).
                    detached.generation += 1;
                }
                if will.is_some() && !expired {
                    // The stored record loses the will before it goes out.
                    let (interval, expires_at) = (detached.expiry_interval, detached.expires_at);
                    drop(detached);
                    broker
                        .storage
                        .put_session(&session, interval, expires_at, None);
                }
                (will, expired)
            };
            if let Some((_, will)) = will {
                broker.publish_will(will, &session.client_id);
            }
            if expired {
                tracing::debug!(client_id = %session.client_id, "session expired");
                broker.end_session(&session);
                return;
            }
        }
    });
}
