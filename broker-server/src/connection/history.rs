//! A client's history request: a PUBLISH to `$history/query` (MQTT 5 request/response,
//! docs/history.md) is answered on its Response Topic from [`crate::history`], not
//! routed.

use protocol::client::history::{HistoryError, QUERY_TOPIC};
use protocol::session::SendOutcome;
use protocol::{Publish, PublishProperties, QoS, ReasonCode};
use tracing::debug;

use super::Connection;
use crate::security::Access;

/// Room left in a reply packet for its fixed header, topic and properties.
const REPLY_OVERHEAD: usize = 512;

impl Connection {
    /// Whether `publish` is a history request (which [`Self::on_history_query`] takes).
    pub(super) fn is_history_query(publish: &Publish) -> bool {
        &*publish.topic == QUERY_TOPIC
    }

    /// Acknowledges a history request and answers it on its Response Topic with its
    /// Correlation Data: the history, or the error. A request without a Response Topic
    /// (MQTT 3.x cannot give one) gets no answer. The request needs no publish
    /// permission on `$history/query`; the filter is checked against the subscribe
    /// rules and each topic against the read rules (as a subscription's deliveries).
    pub(super) fn on_history_query(&mut self, publish: Publish) {
        if let Some(packet_id) = publish.packet_id.filter(|_| publish.qos != QoS::AtMostOnce) {
            self.acknowledge(packet_id, publish.qos, ReasonCode::Success, false, None);
        }
        let Some(response_topic) = publish.properties.response_topic.clone() else {
            debug!(client_id = %self.client_id, "history request without a response topic: not answered");
            return;
        };
        if !self.may(Access::Receive, &response_topic) {
            self.broker.metrics.acl_denied.receive.inc();
            debug!(client_id = %self.client_id, topic = %response_topic, "history reply topic not readable: not answered");
            return;
        }
        let correlation = publish.properties.correlation_data.clone();
        let qos = publish.qos.min(QoS::AtLeastOnce);
        let mut budget = usize::MAX;
        // At most twice: the second time within the client's Maximum Packet Size, which
        // the first attempt's refusal names.
        for _ in 0..2 {
            let body = self
                .broker
                .history
                .answer(
                    &publish.payload,
                    |filter| self.may(Access::Subscribe, filter),
                    |topic| self.may(Access::Receive, topic),
                    budget,
                )
                .unwrap_or_else(|err: HistoryError| {
                    debug!(client_id = %self.client_id, %err, "history request refused");
                    err.encode()
                });
            let properties = PublishProperties {
                correlation_data: correlation.clone(),
                content_type: Some("application/json".into()),
                payload_format_indicator: Some(true),
                ..PublishProperties::default()
            };
            let reply = Publish {
                dup: false,
                qos,
                retain: false,
                topic: response_topic.clone(),
                packet_id: None,
                payload: body.into(),
                properties: properties.into(),
            };
            match self.session.send_publish(reply) {
                Ok(SendOutcome::Dropped { maximum, .. }) if budget == usize::MAX => {
                    let maximum = usize::try_from(maximum).unwrap_or(usize::MAX);
                    budget = maximum.saturating_sub(REPLY_OVERHEAD + response_topic.len());
                }
                Ok(_) => return,
                Err(err) => {
                    debug!(client_id = %self.client_id, %err, "history reply failed");
                    return;
                }
            }
        }
    }
}
