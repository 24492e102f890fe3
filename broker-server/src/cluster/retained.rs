//! Retained messages shared by the nodes: stream `<P>_RETAINED`, one message per subject
//! `p.t.<T>` (the topic as a subject, [`super::subject`]; the message as [`super::wire`]
//! writes it).
//!
//! - [`RetainedStore::set`] stores a retained message (the stream keeps only the latest of
//!   each subject), or clears the topic for an empty payload (purges the subject).
//! - [`RetainedStore::matching`] fetches, for a new subscription, the last message of each
//!   subject the filter's NATS subjects match: one read for a filter without wildcards,
//!   otherwise an ordered consumer delivering the last message per subject of the
//!   filter's subjects. Only matching messages leave the server; never the whole stream.
//!   What comes back is re-checked with MQTT's own matching (the `$` rule
//!   \[MQTT-4.7.2-1\], which NATS wildcards ignore), and expired messages are skipped.
//!
//! `$SYS/...` topics are this node's own status: not stored here.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use futures::StreamExt as _;
use protocol::{ReasonCode, TopicFilter};
use web_time::Instant;

use super::config::ClusterConfig;
use super::routing::MsgIds;
use super::subject::{decode_topic, encode_filter, encode_topic, fits_control_line};
use super::wire;
use crate::broker::backplane::Refused;
use crate::message::Message;

/// The most retained messages one [`RetainedStore::matching`] returns; the rest are
/// left out (and logged): a bound on what one subscription can make a node hold.
pub const MAX_MATCHING: usize = 100_000;

/// The retained messages of the cluster (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RetainedStore {
    /// JetStream on the node's connection.
    js: jetstream::Context,
    /// The stream, `<P>_RETAINED`.
    stream: stream::Stream<()>,
    /// The head of the subjects, `p.t`.
    head: String,
    /// This node's name (`Mqtt-Node`).
    node: String,
    /// The `Nats-Msg-Id`s of what it stores.
    ids: Arc<MsgIds>,
    /// `cluster.nats.max_control_line`.
    max_control_line: usize,
    /// `cluster.publish_timeout_ms`.
    timeout: Duration,
}

/// The name of the retained stream under `prefix`.
pub fn retained_stream(prefix: &str) -> String {
    format!("{}_RETAINED", prefix.to_uppercase())
}

impl RetainedStore {
    /// Creates or updates the stream (idempotent) and waits until it has a leader.
    pub async fn open(client: async_nats::Client, cfg: &ClusterConfig) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(cfg.publish_timeout_ms);
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout.max(Duration::from_secs(5)))
            .build(client);
        let prefix = &cfg.nats.prefix;
        let name = retained_stream(prefix);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.t.>")],
            storage: stream::StorageType::File,
            num_replicas: usize::from(cfg.replicas),
            max_messages_per_subject: 1,
            allow_direct: true,
            ..Default::default()
        };
        super::routing::ensure_stream(&js, config).await?;
        let stream = js
            .get_stream_no_info(&name)
            .await
            .map_err(|err| anyhow::anyhow!("stream {name}: {err}"))?;
        Ok(Self {
            js,
            stream,
            head: format!("{prefix}.t"),
            node: cfg.node.clone().unwrap_or_default(),
            ids: Arc::new(MsgIds::new(cfg.node.as_deref().unwrap_or_default())),
            max_control_line: cfg.nats.max_control_line,
            timeout,
        })
    }

    /// Stores `message` as its topic's retained message, or clears the topic when the
    /// payload is empty. Resolves once the stream has done it (retrying meanwhile);
    /// Refused (0x80) when not done within `cluster.publish_timeout_ms`, at once for a message larger than NATS'
    /// `max_payload` (0x95) or a topic whose subject does not fit the control line (0x90).
    /// `$SYS/...` topics: Ok, nothing stored.
    pub async fn set(&self, message: &Message) -> Result<(), Refused> {
        if message.topic.starts_with("$SYS/") || message.topic == "$SYS" {
            return Ok(());
        }
        let subject = encode_topic(&self.head, &message.topic);
        if !fits_control_line(&subject, self.max_control_line) {
            return Err(Refused {
                reason: ReasonCode::TopicNameInvalid,
                detail: format!(
                    "retained topic {:?}: its NATS subject is longer than the control line allows",
                    message.topic
                ),
            });
        }
        if message.payload.is_empty() {
            let purge = self.stream.purge().filter(subject);
            return match tokio::time::timeout(self.timeout, purge).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(unavailable(format!("clearing failed: {err}"))),
                Err(_) => Err(unavailable(self.timed_out())),
            };
        }
        let mut headers = wire::encode(message, &self.node);
        // A retry must not store an older value over a newer one stored meanwhile.
        headers.insert("Nats-Msg-Id", self.ids.next());
        let size = super::routing::header_len(&headers) + message.payload.len();
        let max = self.js.client().server_info().max_payload;
        if max > 0 && size > max {
            return Err(Refused {
                reason: ReasonCode::PacketTooLarge,
                detail: format!("message of {size} bytes: larger than NATS max_payload {max}"),
            });
        }
        let publish = super::routing::Publish {
            subject,
            headers,
            payload: message.payload.clone(),
        };
        super::routing::store(self.js.clone(), publish, self.timeout, None)
            .await
            .map(drop)
    }

    /// The retained messages whose topics `filter` matches (its topic filter, for a shared
    /// one), not expired at `now`; at most [`MAX_MATCHING`].
    pub async fn matching(
        &self,
        filter: &TopicFilter,
        now: Instant,
    ) -> anyhow::Result<Vec<Message>> {
        let subjects = encode_filter(&self.head, filter.filter())?;
        let mut raw = Vec::new();
        if !filter.has_wildcards() {
            match self
                .stream
                .get_last_raw_message_by_subject(&subjects.wildcard)
                .await
            {
                Ok(message) => raw.push((
                    message.subject.to_string(),
                    message.headers,
                    message.payload,
                )),
                Err(err) if is_not_found(err.kind()) => {}
                Err(err) => anyhow::bail!("retained {filter}: {err}"),
            }
        } else {
            self.last_per_subject(subjects.iter().map(str::to_owned).collect(), &mut raw)
                .await?;
        }
        let mut out = Vec::with_capacity(raw.len());
        for (subject, headers, payload) in raw {
            let decoded = decode_topic(&self.head, &subject)
                .map_err(|err| err.to_string())
                .and_then(|topic| {
                    wire::decode(topic.into(), &headers, payload).map_err(|err| err.to_string())
                });
            match decoded {
                Ok((message, _node)) => {
                    if !message.is_expired(now) && filter.matches(&message.topic) {
                        out.push(message);
                    }
                }
                Err(err) => {
                    tracing::warn!(%subject, %err, "skipped a retained message that is not ours")
                }
            }
        }
        Ok(out)
    }

    /// The last message of each subject matching `subjects` (filter subjects that do not
    /// overlap: [`encode_filter`]'s), through an ordered consumer; at most
    /// [`MAX_MATCHING`].
    async fn last_per_subject(
        &self,
        subjects: Vec<String>,
        out: &mut Vec<(String, async_nats::HeaderMap, bytes::Bytes)>,
    ) -> anyhow::Result<()> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects: subjects,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await?;
        let _delete = ConsumerGuard::new(&self.js, consumer.cached_info());
        let mut pending = consumer.cached_info().num_pending;
        if pending == 0 {
            // The count in the creation's answer can lag just-stored messages on a busy
            // server: ask once more before concluding there are none.
            let mut consumer = consumer.clone();
            pending = consumer.info().await?.num_pending;
            if pending == 0 {
                return Ok(());
            }
        }
        let mut messages = consumer.messages().await?;
        while pending > 0 {
            let next =
                tokio::time::timeout(self.timeout.max(Duration::from_secs(5)), messages.next());
            let message = match next.await {
                Ok(Some(message)) => message?,
                Ok(None) => break,
                Err(_) => anyhow::bail!("retained messages: no answer in time"),
            };
            pending = message.info().map_or(0, |info| info.pending);
            if out.len() == MAX_MATCHING {
                tracing::warn!(
                    limit = MAX_MATCHING,
                    "retained messages matching one filter left out past the limit"
                );
                break;
            }
            let message = message.message;
            out.push((
                message.subject.to_string(),
                message.headers.unwrap_or_default(),
                message.payload,
            ));
        }
        Ok(())
    }

    /// What a timeout tells the client.
    fn timed_out(&self) -> String {
        format!(
            "the cluster did not answer within {} ms",
            self.timeout.as_millis()
        )
    }
}

/// Deletes an ephemeral consumer when dropped (in the background), instead of leaving it
/// to the server's inactivity threshold: one exists per wildcard lookup or replay.
#[derive(Debug)]
pub(crate) struct ConsumerGuard {
    /// JetStream, to delete with.
    js: jetstream::Context,
    /// The consumer's stream.
    stream: String,
    /// The consumer.
    name: String,
}

impl ConsumerGuard {
    /// A guard for the consumer `info` describes.
    pub(crate) fn new(js: &jetstream::Context, info: &jetstream::consumer::Info) -> Self {
        Self {
            js: js.clone(),
            stream: info.stream_name.clone(),
            name: info.name.clone(),
        }
    }
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let (js, stream, name) = (
            self.js.clone(),
            std::mem::take(&mut self.stream),
            std::mem::take(&mut self.name),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Gone already (recreated under another name, expired): nothing to do.
                let _ = js.delete_consumer_from_stream(&name, &stream).await;
            });
        }
    }
}

/// A refusal for an unreachable or failing cluster.
fn unavailable(detail: String) -> Refused {
    Refused {
        reason: ReasonCode::UnspecifiedError,
        detail,
    }
}

/// Whether a "last message of subject" read failed because there is none.
fn is_not_found(kind: LastRawMessageErrorKind) -> bool {
    match kind {
        LastRawMessageErrorKind::NoMessageFound => true,
        LastRawMessageErrorKind::JetStream(err) => err.error_code() == ErrorCode::NO_MESSAGE_FOUND,
        _ => false,
    }
}
