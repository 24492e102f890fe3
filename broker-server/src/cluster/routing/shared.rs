//! QoS 1/2 messages of a shared subscription (`$share/{group}/{filter}`) across nodes:
//! one durable pull consumer per group, filter and shard stream, pulled by every node
//! with a member of the group.
//!
//! JetStream hands each stored message to one puller, and takes it back unless the
//! puller acknowledges it within the ack wait: a node acknowledges once its member
//! finished the message's flow (PUBACK, PUBCOMP) or took it at QoS 0, and answers NAK
//! when no member here could take it. A node that dies with messages its members had not
//! acknowledged leaves them unacknowledged: JetStream gives them to a member on another
//! node after the ack wait (`cluster.shared_ack_wait_secs`). QoS 0 messages of the group go through
//! a NATS queue group instead (nothing stored, nothing to re-send).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use protocol::TopicFilter;

use super::{Inbound, Inner, shard_stream, share_queue};
use crate::cluster::subject::{decode_topic, encode_filter};
use crate::cluster::{StreamPos, wire};

/// Messages a group's consumer hands out before acknowledgements come back.
const MAX_ACK_PENDING: i64 = 1024;
/// How long one pull request of a node waits for messages before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(4);
/// A group's consumer nobody pulls from for this long is removed by the server.
const INACTIVE: Duration = Duration::from_secs(3600);

/// The acknowledgement of one message of a shared group's consumer.
#[derive(Debug, Clone)]
pub struct ClusterAck {
    client: async_nats::Client,
    reply: async_nats::Subject,
}

/// Two acknowledgements are the same when they answer the same message.
impl PartialEq for ClusterAck {
    fn eq(&self, other: &Self) -> bool {
        self.reply == other.reply
    }
}

impl Eq for ClusterAck {}

impl ClusterAck {
    /// The member took care of it: JetStream forgets it.
    pub fn ack(&self) {
        self.answer(b"+ACK");
    }

    /// No member here can take it: JetStream gives it to another puller at once.
    pub fn nak(&self) {
        self.answer(b"-NAK");
    }

    fn answer(&self, what: &'static [u8]) {
        let sent = tokio::task::unconstrained(
            self.client
                .publish(self.reply.clone(), Bytes::from_static(what)),
        )
        .now_or_never();
        if !matches!(sent, Some(Ok(()))) {
            // Unanswered, the message comes again after the ack wait: at least once.
            tracing::debug!("a shared message's acknowledgement was not sent");
        }
    }
}

/// Pulls the shared group `filter`'s stored messages from every shard until the task
/// is cancelled (its last member here left). A group's consumer that does not exist
/// yet starts at `since` (when the first member here subscribed), so what was published
/// after the SUBACK is not missed while the consumer is being created.
pub(super) async fn pull(inner: Arc<Inner>, filter: TopicFilter, since: std::time::SystemTime) {
    let Some(queue) = share_queue(&filter) else {
        return;
    };
    let mut pulls = Vec::new();
    for shard in 0..inner.shards {
        let head = format!("{}.q.{shard}", inner.prefix);
        let subjects = match encode_filter(&head, filter.filter()) {
            Ok(subjects) => subjects.iter().map(str::to_owned).collect(),
            Err(err) => {
                tracing::warn!(%filter, %err, "shared group not pulled from the cluster");
                return;
            }
        };
        let name = format!("{queue}-{shard}");
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subjects: subjects,
            deliver_policy: DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from(since),
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: inner.shared_ack_wait,
            max_ack_pending: MAX_ACK_PENDING,
            inactive_threshold: INACTIVE,
            ..Default::default()
        };
        pulls.push(pull_shard(
            inner.clone(),
            filter.clone(),
            shard,
            name,
            config,
        ));
    }
    futures::future::join_all(pulls).await;
}

/// One shard's consumer of the group: (re)created and pulled until cancelled.
async fn pull_shard(
    inner: Arc<Inner>,
    filter: TopicFilter,
    shard: u16,
    name: String,
    config: pull::Config,
) {
    let stream_name = shard_stream(&inner.prefix, shard);
    let head = format!("{}.q.{shard}", inner.prefix);
    loop {
        let consumer: Result<consumer::PullConsumer, String> = async {
            let stream = inner
                .js
                .get_stream_no_info(&stream_name)
                .await
                .map_err(|err| err.to_string())?;
            stream
                .get_or_create_consumer(&name, config.clone())
                .await
                .map_err(|err| err.to_string())
        }
        .await;
        let messages = match consumer {
            // Short pull requests: a dead node's waiting requests would otherwise take
            // the messages given back after the ack wait until they expire.
            Ok(consumer) => consumer
                .stream()
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_EXPIRES / 2)
                .messages()
                .await
                .map_err(|err| err.to_string()),
            Err(err) => Err(err),
        };
        match messages {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    let Ok(message) = message else {
                        break; // the stream errored (NATS down): set up again below
                    };
                    let Some(inbound) = decode(&inner, &head, shard, &filter, message) else {
                        continue;
                    };
                    if inner.inbound.send(inbound).await.is_err() {
                        return; // the broker is gone
                    }
                }
            }
            Err(err) => tracing::debug!(%filter, shard, %err, "shared group consumer: retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The inbound message of a group consumer's message, with its acknowledgement.
fn decode(
    inner: &Inner,
    head: &str,
    shard: u16,
    filter: &TopicFilter,
    message: async_nats::jetstream::Message,
) -> Option<Inbound> {
    let seq = message.info().ok().map(|info| info.stream_sequence);
    let message = message.message;
    let ack = ClusterAck {
        client: inner.client.clone(),
        reply: message.reply.clone()?,
    };
    let decoded = decode_topic(head, message.subject.as_str())
        .map_err(|err| err.to_string())
        .and_then(|topic| {
            let headers = message.headers.clone().unwrap_or_default();
            wire::decode(topic.into(), &headers, message.payload.clone())
                .map_err(|err| err.to_string())
        });
    match decoded {
        Ok((decoded, _node)) => Some(Inbound {
            message: decoded,
            pos: seq.map(|seq| StreamPos { shard, seq }),
            shared: Some(filter.clone()),
            ack: Some(ack),
        }),
        Err(err) => {
            tracing::warn!(subject = %message.subject, %err, "dropped a shared message that is not ours");
            ack.ack();
            None
        }
    }
}
