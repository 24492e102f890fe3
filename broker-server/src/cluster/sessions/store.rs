//! The bucket plumbing of [`super::Sessions`] and the reaper: creating buckets, reading
//! a record, compare-and-set writes with an optional per-record TTL, deletes, and the
//! bound on every call.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use protocol::ReasonCode;

use super::{Inner, Record};
use crate::broker::backplane::Refused;

/// How long [`super::Sessions::open`] waits for a new bucket's replicas to elect a leader.
const LEADER_PATIENCE: Duration = Duration::from_secs(10);
/// The pause before a write that found no responders is tried again.
const LEADER_PAUSE: Duration = Duration::from_millis(100);
/// A compare-and-set write that did not happen.
#[derive(Debug)]
pub(in crate::cluster) enum WriteError {
    /// Another write came first (wrong expected revision), or the stream was between
    /// leaders for a moment (no responders, after a pause): read again and retry.
    Lost,
    /// NATS failed or did not answer.
    Failed(String),
}

/// The bucket names for a prefix: `<P>_SESSIONS`, `<P>_NODES`, `<P>_REAPED`.
pub(in crate::cluster) fn bucket(prefix: &str, name: &str) -> String {
    format!("{}_{name}", prefix.to_ascii_uppercase())
}

pub(in crate::cluster) fn unavailable(detail: impl Into<String>) -> Refused {
    Refused {
        reason: ReasonCode::ServerUnavailable,
        detail: detail.into(),
    }
}

/// Whether a JetStream write failed on its expected revision. async-nats 0.52 maps only
/// the error code 10071 to `WrongLastSequence`; servers since 2.12 answer 10164 (the
/// same refusal, constant text), which it reports as "other": so the JetStream error
/// is looked for along the error's sources.
pub(in crate::cluster) fn wrong_revision(err: &(dyn std::error::Error + 'static)) -> bool {
    use jetstream::ErrorCode;
    const WRONG_LAST_SEQUENCE: [ErrorCode; 2] = [
        ErrorCode::STREAM_WRONG_LAST_SEQUENCE,
        ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT,
    ];
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(js) = err.downcast_ref::<jetstream::Error>()
            && WRONG_LAST_SEQUENCE.contains(&js.error_code())
        {
            return true;
        }
        if let Some(publish) = err.downcast_ref::<jetstream::context::PublishError>()
            && publish.kind() == jetstream::context::PublishErrorKind::WrongLastSequence
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Opens a bucket, creating it (or updating its settings) as configured, and waits
/// until its replicas elected a leader: before that, every write fails. JetStream may
/// refuse for a moment what it takes a moment to do (two nodes creating the bucket at
/// once, a server not yet known as a peer): retried for up to [`LEADER_PATIENCE`].
pub(in crate::cluster) async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> anyhow::Result<kv::Store> {
    let name = config.bucket.clone();
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    let store = loop {
        match js.create_or_update_key_value(config.clone()).await {
            Ok(store) => break store,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("creating the NATS key-value bucket {name}: {err}")
            }
            Err(err) => {
                tracing::debug!(%err, bucket = name, "creating a bucket: trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    loop {
        let info = store.stream.get_info().await;
        if let Ok(info) = &info
            && info.cluster.as_ref().is_none_or(|c| c.leader.is_some())
        {
            return Ok(store);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the NATS key-value bucket {name} has no leader (no JetStream quorum?)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `call` until it succeeds, for up to [`LEADER_PATIENCE`]: for the setup calls of
/// `open`, which a busy or just-formed JetStream may time out once or twice.
pub(super) async fn retrying<T, E, F>(mut call: impl FnMut() -> F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        match call().await {
            Ok(done) => return Ok(done),
            Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
            Err(err) => {
                tracing::debug!(%err, "cluster setup call failed: trying again");
                tokio::time::sleep(LEADER_PAUSE).await;
            }
        }
    }
}

/// Whether a JetStream write found nobody to take it ("no responders"): the stream
/// has no leader for a moment (just created, or electing one), or its subjects are not
/// yet known to the server the client is on.
fn between_leaders(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(publish) = err.downcast_ref::<jetstream::context::PublishError>()
            && publish.kind() == jetstream::context::PublishErrorKind::StreamNotFound
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// The last message under `key` in `store`, read from the stream's leader (see
/// [`Inner::read`]); `None` if there is none.
pub(in crate::cluster) async fn last_value(
    store: &kv::Store,
    key: &str,
) -> Result<Option<StreamMessage>, String> {
    use jetstream::stream::LastRawMessageErrorKind;
    let subject = format!("{}{key}", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) => Ok(Some(message)),
        Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

/// Whether a KV message removes its key: a delete or purge (`KV-Operation`), or the
/// marker left when a TTL ran out (`Nats-Marker-Reason`).
pub(in crate::cluster) fn removed(message: &StreamMessage) -> bool {
    let operation = message.headers.get("KV-Operation").map(|op| op.as_str());
    matches!(operation, Some("DEL" | "PURGE"))
        || message.headers.get("Nats-Marker-Reason").is_some()
}

impl Inner {
    /// Runs `call` within the operation timeout; a timeout is 0x88.
    pub(in crate::cluster) async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, Refused>>,
    ) -> Result<T, Refused> {
        match tokio::time::timeout(self.op_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!(
                "session {what}: no answer from NATS JetStream within {} ms",
                self.op_timeout.as_millis()
            ))),
        }
    }

    /// The record under `key` and the revision to write against (0: none ever, or
    /// expired without a trace). A deleted or expired record reads as `None` with its
    /// marker's revision; a damaged one too (it is then overwritten, with a warning).
    ///
    /// Read from the stream's leader (`STREAM.MSG.GET`), not with a direct get
    /// (`Store::entry`), which any replica answers and a lagging one answers with an
    /// older revision: a compare-and-set against it fails, and a caller shown it (the
    /// admin API, a test) sees a write undone.
    pub(in crate::cluster) async fn read(
        &self,
        key: &str,
    ) -> Result<(Option<Record>, u64), Refused> {
        let message = match last_value(&self.kv, key).await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok((None, 0)),
            Err(err) => return Err(unavailable(format!("reading session {key}: {err}"))),
        };
        if removed(&message) {
            return Ok((None, message.sequence));
        }
        match Record::decode(&message.payload) {
            Ok(record) => Ok((Some(record), message.sequence)),
            Err(err) => {
                tracing::warn!(key, %err, "damaged cluster session record: replaced");
                Ok((None, message.sequence))
            }
        }
    }

    /// Writes `value` under `key` if its last revision is still `revision` (0: the key
    /// has no value), with a per-record TTL in seconds. The raw JetStream publish, since
    /// async-nats 0.52 has no KV update with a TTL: headers
    /// `Nats-Expected-Last-Subject-Sequence` and `Nats-TTL` on `$KV.<bucket>.<key>`.
    pub(in crate::cluster) async fn write(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
        ttl: Option<u64>,
    ) -> Result<u64, WriteError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
        if let Some(ttl) = ttl {
            headers.insert(
                async_nats::header::NATS_MESSAGE_TTL,
                ttl.max(1).to_string().as_str(),
            );
        }
        let subject = format!(
            "{}{key}",
            self.kv.put_prefix.as_ref().unwrap_or(&self.kv.prefix)
        );
        let ack = self
            .js
            .publish_with_headers(subject, headers, value)
            .await
            .map_err(|err| WriteError::Failed(err.to_string()))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(err) if wrong_revision(&err) => Err(WriteError::Lost),
            Err(err) if between_leaders(&err) => {
                tokio::time::sleep(LEADER_PAUSE).await;
                Err(WriteError::Lost)
            }
            Err(err) => Err(WriteError::Failed(err.to_string())),
        }
    }

    /// Deletes `key` if its last revision is still `revision`.
    pub(super) async fn delete(&self, key: &str, revision: u64) -> Result<(), WriteError> {
        match self.kv.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(err) if wrong_revision(&err) => Err(WriteError::Lost),
            Err(err) if between_leaders(&err) => {
                tokio::time::sleep(LEADER_PAUSE).await;
                Err(WriteError::Lost)
            }
            Err(err) => Err(WriteError::Failed(err.to_string())),
        }
    }

    /// The TTL of an offline record: its expiry (at most the offline retention), plus
    /// `node_ttl_secs` so that a reaper's will timer runs before the record goes.
    pub(in crate::cluster) fn offline_ttl(&self, record: &Record) -> u64 {
        u64::from(record.expiry_interval).min(self.offline_retention) + self.node_ttl
    }
}
