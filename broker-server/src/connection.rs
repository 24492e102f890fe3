//! One task per client connection: it owns the socket and the connection's
//! `protocol::ServerSession`, feeds the session what the socket reads, carries out what
//! the session reports (routing, subscribing, session takeover) and writes everything
//! the session queued in one write per burst.
//!
//! The driver is generic over its byte stream, so TCP, TLS and WebSocket share it.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use protocol::session::{
    AcceptOptions, CloseReason, SendOutcome, ServerEvent, ServerOptions, ServerSession,
};
use protocol::{
    AckProperties, Connect, ProtocolVersion, Publish, PublishProperties, QoS, ReasonCode,
    RetainHandling, Subscribe, Unsubscribe, Will,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use web_time::Instant;

use crate::broker::{Attached, Broker};
use crate::clock;
use crate::message::{Delivery, Message};
use crate::router::{SharedInflight, SubEntry, SubscribeOutcome};
use crate::session::{Session, StoredSubscription};

/// How much the read buffer grows by when it is full.
const READ_CHUNK: usize = 4096;

/// The session options every connection starts with, from the configuration.
pub fn server_options(broker: &Broker) -> ServerOptions {
    let limits = &broker.config.limits;
    let inflight = NonZeroU16::new(limits.max_inflight).unwrap_or(NonZeroU16::MIN);
    ServerOptions {
        maximum_packet_size: NonZeroU32::new(limits.max_packet_size).unwrap_or(NonZeroU32::MIN),
        receive_maximum: inflight,
        topic_alias_maximum: limits.topic_alias_maximum,
        max_keep_alive: (limits.max_keep_alive_secs > 0).then_some(limits.max_keep_alive_secs),
        max_inflight: inflight,
        ..ServerOptions::default()
    }
}

/// Per-connection state beyond the protocol session.
struct Connection {
    broker: Arc<Broker>,
    peer: SocketAddr,
    session: ServerSession,
    attached: Option<Attached>,
    /// The client's will, published on an abnormal end.
    will: Option<Will>,
    /// Session Expiry Interval in force, in seconds (3.x: 0 or "never").
    expiry_interval: u32,
    version: ProtocolVersion,
    client_id: ByteString,
    /// Reused buffers: routing results and deliveries taken from the mailbox.
    route_scratch: Vec<(Arc<Session>, Delivery)>,
    batch: Vec<Delivery>,
    connected_counted: bool,
    /// Shared-subscription deliveries in the protocol session, to re-route to their
    /// group if the session ends unacknowledged (`router::shared`).
    shared_inflight: SharedInflight,
    /// Fires when a new connection takes the session over; `None` once it fired.
    kick: Option<tokio::sync::oneshot::Receiver<ReasonCode>>,
}

/// Serves one client until the connection ends or `shutdown` changes to `true`.
pub async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = clock::now();
    let connect_deadline = now + broker.config.limits.connect_timeout();
    let session = ServerSession::new(server_options(&broker), now);
    let mut conn = Connection {
        broker,
        peer,
        session,
        attached: None,
        will: None,
        expiry_interval: 0,
        version: ProtocolVersion::V5,
        client_id: ByteString::new(),
        route_scratch: Vec::new(),
        batch: Vec::new(),
        connected_counted: false,
        kick: None,
        shared_inflight: SharedInflight::default(),
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    loop {
        conn.drive().await;
        if conn.session.poll_transmit(&mut wbuf) {
            let len = wbuf.len();
            if writer.write_all(&wbuf).await.is_err() {
                conn.session.handle_connection_lost();
                conn.drive().await;
            } else {
                conn.broker.metrics.bytes_sent.add(len as u64);
            }
            wbuf.clear();
        }
        if conn.session.is_closed() {
            break;
        }
        let deadline = match conn.session.poll_timeout() {
            _ if !conn.session.is_connected() && conn.attached.is_none() => Some(connect_deadline),
            timeout => timeout,
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(clock::to_tokio(at)).await,
                None => std::future::pending().await,
            }
        };
        let attached_session = conn
            .attached
            .as_ref()
            .filter(|_| conn.session.is_connected())
            .map(|attached| attached.session.clone());
        let mailbox = async move {
            match attached_session {
                Some(session) => session.notified().await,
                None => std::future::pending().await,
            }
        };
        let kick = &mut conn.kick;
        let kicked = async move {
            match kick.as_mut() {
                Some(rx) => rx.await,
                None => std::future::pending().await,
            }
        };
        let mut kick_result = None;
        if rbuf.capacity() - rbuf.len() < 64 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            read = reader.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => conn.session.handle_connection_lost(),
                Ok(n) => {
                    conn.broker.metrics.bytes_received.add(n as u64);
                    conn.session.handle_bytes(&mut rbuf, clock::now());
                }
            },
            () = sleep => {
                if conn.session.is_connected() || conn.attached.is_some() {
                    conn.session.handle_timeout(clock::now());
                } else {
                    debug!(peer = %conn.peer, "no CONNECT within the connect timeout");
                    conn.session.handle_connection_lost();
                }
            }
            () = mailbox => {}
            reason = kicked => kick_result = Some(reason),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    conn.session.disconnect(ReasonCode::ServerShuttingDown);
                }
            }
        }
        if let Some(result) = kick_result {
            conn.kick = None;
            if let Ok(reason) = result {
                info!(client_id = %conn.client_id, "session taken over by a new connection");
                conn.session.disconnect(reason);
            }
        }
    }
    let _ = writer.shutdown().await;
    conn.finish();
}

impl Connection {
    /// Handles every event the session has, then fills the client's window from the
    /// mailbox, until neither produces anything more.
    async fn drive(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                self.handle_event(event).await;
            }
            if self.pull_mailbox() {
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Moves deliveries from the session's mailbox into the protocol session, as many
    /// QoS 1/2 as the client's window takes (QoS 0 are not windowed).
    fn pull_mailbox(&mut self) -> bool {
        let Some(attached) = &self.attached else {
            return false;
        };
        if !self.session.is_connected() {
            return false;
        }
        let session = attached.session.clone();
        let quota = self.session.send_quota();
        session.take(quota, &mut self.batch);
        if self.batch.is_empty() {
            return false;
        }
        let now = clock::now();
        for delivery in std::mem::take(&mut self.batch) {
            self.send_delivery(&delivery, now);
        }
        true
    }

    fn send_delivery(&mut self, delivery: &Delivery, now: Instant) {
        let message = &delivery.message;
        if message.is_expired(now) {
            self.broker.metrics.messages_dropped.inc();
            return;
        }
        let mut properties = message.properties.clone();
        properties.message_expiry_interval = message.remaining_expiry(now);
        properties.subscription_identifiers = delivery.subscription_ids.to_vec();
        let publish = Publish {
            dup: false,
            qos: delivery.qos,
            retain: delivery.retain,
            topic: message.topic.clone(),
            packet_id: None,
            payload: message.payload.clone(),
            properties,
        };
        let outcome = self.session.send_publish(publish);
        if let Ok(
            SendOutcome::Sent {
                packet_id: Some(packet_id),
            }
            | SendOutcome::Queued { packet_id },
        ) = outcome
        {
            self.shared_inflight.sent(packet_id, delivery);
        }
        match outcome {
            Ok(SendOutcome::Dropped { size, maximum }) => {
                debug!(client_id = %self.client_id, size, maximum, "message larger than the client's maximum packet size dropped");
                self.broker.metrics.messages_dropped.inc();
            }
            Ok(_) => self.broker.metrics.messages_sent.at(delivery.qos).inc(),
            Err(err) => debug!(client_id = %self.client_id, %err, "delivery not sent"),
        }
    }

    async fn handle_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connect(connect) => self.on_connect(*connect).await,
            ServerEvent::Publish(publish) => self.on_publish(publish),
            ServerEvent::Subscribe(subscribe) => self.on_subscribe(subscribe),
            ServerEvent::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe),
            ServerEvent::Delivered { packet_id, .. } => self.shared_inflight.finished(packet_id),
            ServerEvent::Released { .. } => {}
            ServerEvent::Auth(_) => {
                // No enhanced authentication method is configured (§4.12).
                if self.session.is_connected() {
                    self.session.disconnect(ReasonCode::BadAuthenticationMethod);
                } else {
                    let _ = self.session.reject(ReasonCode::BadAuthenticationMethod);
                }
            }
            ServerEvent::Closed {
                reason,
                publish_will,
            } => self.on_closed(reason, publish_will),
            _ => {}
        }
    }

    async fn on_connect(&mut self, connect: Connect) {
        self.version = connect.protocol;
        let broker = self.broker.clone();
        let limits = &broker.config.limits;
        if !broker
            .metrics
            .clients_connected
            .inc_below(limits.max_connections as u64)
        {
            broker.metrics.connections_refused.inc();
            warn!(peer = %self.peer, "connection refused: max_connections reached");
            let _ = self.session.reject(ReasonCode::QuotaExceeded);
            return;
        }
        // The slot is ours from here on; `finish` gives it back.
        self.connected_counted = true;
        if connect.properties.authentication_method.is_some() {
            let _ = self.session.reject(ReasonCode::BadAuthenticationMethod);
            return;
        }
        if let Some(will) = &connect.will
            && !self.topic_within_limits(&will.topic)
        {
            let _ = self.session.reject(ReasonCode::TopicNameInvalid);
            return;
        }
        let mut assigned = None;
        let client_id = if connect.client_id.is_empty() {
            if connect.protocol == ProtocolVersion::V3_1 {
                // MQTT 3.1 requires 1 to 23 characters.
                let _ = self.session.reject(ReasonCode::ClientIdentifierNotValid);
                return;
            }
            let id = broker.assign_client_id();
            if connect.protocol.is_v5() {
                assigned = Some(id.clone());
            }
            id
        } else {
            connect.client_id.clone()
        };
        let expiry = match connect.protocol {
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
            _ if connect.clean_start => 0,
            _ => u32::MAX,
        };
        let granted_expiry = expiry.min(limits.max_session_expiry_secs);

        let (attached, ended) = broker.attach(&client_id, connect.clean_start).await;
        if let Some(old) = ended {
            self.end_replaced_session(&old);
        }
        let resumed = if attached.present {
            self.resume(&attached.session)
        } else {
            None
        };
        self.client_id = client_id;
        self.expiry_interval = granted_expiry;
        self.will = connect.will;
        let options = AcceptOptions {
            assigned_client_identifier: assigned,
            session_expiry_interval: (granted_expiry != expiry && connect.protocol.is_v5())
                .then_some(granted_expiry),
            response_information: connect
                .properties
                .request_response_information
                .unwrap_or(false)
                .then(|| response_information(&self.client_id))
                .flatten(),
            ..AcceptOptions::default()
        };
        let present = attached.present;
        let (attached, kick) = attached.split_kick();
        self.kick = Some(kick);
        self.attached = Some(attached);
        match self.session.accept(options, resumed) {
            Ok(()) => {
                info!(client_id = %self.client_id, peer = %self.peer, version = %self.version, present, "client connected");
            }
            Err(err) => warn!(client_id = %self.client_id, %err, "accept failed"),
        }
    }

    /// Takes a stored session's state for resumption and cancels its pending will
    /// [MQTT-3.1.3-9].
    fn resume(&mut self, session: &Session) -> Option<protocol::session::SessionState> {
        let mut detached = session.detached.lock();
        self.shared_inflight = std::mem::take(&mut detached.shared_inflight);
        detached.generation += 1;
        detached.pending_will = None;
        detached.expires_at = None;
        detached.protocol.take()
    }

    /// A Clean Start replaced `old`: its subscriptions go, and a will still waiting out
    /// its delay is published now that the session ended (§3.1.3.2.2).
    fn end_replaced_session(&mut self, old: &Arc<Session>) {
        let will = {
            let mut detached = old.detached.lock();
            detached.generation += 1;
            detached.pending_will.take()
        };
        self.broker.end_session(old);
        if let Some((_, will)) = will {
            publish_will(&self.broker, will, &old.client_id);
        }
    }

    fn topic_within_limits(&self, topic: &str) -> bool {
        let limits = &self.broker.config.limits;
        topic.len() <= limits.max_topic_length
            && topic.split('/').count() <= limits.max_topic_levels
    }

    fn on_publish(&mut self, publish: Publish) {
        let metrics = &self.broker.metrics;
        metrics.messages_received.at(publish.qos).inc();
        if !self.topic_within_limits(&publish.topic) {
            warn!(client_id = %self.client_id, "topic over max_topic_length / max_topic_levels");
            self.session.disconnect(ReasonCode::TopicNameInvalid);
            return;
        }
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        let message = message_from(publish, self.client_id.clone(), clock::now());
        let routed = self.broker.publish(message, &mut self.route_scratch);
        if let Some(packet_id) = packet_id.filter(|_| qos != QoS::AtMostOnce) {
            let reason = if routed == 0 && self.version.is_v5() {
                ReasonCode::NoMatchingSubscribers
            } else {
                ReasonCode::Success
            };
            if let Err(err) = self.session.ack_publish(packet_id, reason) {
                debug!(client_id = %self.client_id, %err, "ack failed");
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) {
        let Some(attached) = &self.attached else {
            return;
        };
        let session = attached.session.clone();
        let broker = self.broker.clone();
        let max_subscriptions = broker.config.limits.max_subscriptions_per_client;
        let subscription_id = subscribe.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        let now = clock::now();
        for subscription in subscribe.subscriptions {
            let filter = subscription.filter;
            let options = subscription.options;
            // A shared filter's limits apply to its filter part, not `$share/{group}/`.
            if !self.topic_within_limits(filter.filter()) {
                codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            {
                let stored = session.subscriptions.lock();
                if max_subscriptions > 0
                    && stored.len() >= max_subscriptions
                    && !stored.contains_key(&filter)
                {
                    codes.push(ReasonCode::QuotaExceeded);
                    continue;
                }
            }
            let entry = SubEntry {
                session: session.clone(),
                options,
                id: subscription_id,
            };
            let outcome = broker.router.subscribe(&filter, entry);
            session.subscriptions.lock().insert(
                filter.clone(),
                StoredSubscription {
                    options,
                    id: subscription_id,
                },
            );
            codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages are not sent for shared subscriptions [MQTT-3.8.4-?],
            // and per Retain Handling otherwise [MQTT-3.3.1-9] [MQTT-3.3.1-10].
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => outcome == SubscribeOutcome::New,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in broker.router.retained().matching(filter.filter(), now) {
                    let qos = message.qos.min(options.qos);
                    let ids = subscription_id.into_iter().collect();
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: ids,
                        shared_group: None,
                    });
                }
            }
        }
        if let Err(err) = self
            .session
            .suback(subscribe.packet_id, codes, AckProperties::default())
        {
            debug!(client_id = %self.client_id, %err, "SUBACK failed");
        }
        for delivery in &retained {
            self.send_delivery(delivery, now);
        }
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let Some(attached) = &self.attached else {
            return;
        };
        let session = attached.session.clone();
        let codes = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                let existed = self.broker.router.unsubscribe(filter, &session.client_id);
                session.subscriptions.lock().remove(filter);
                if existed {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                }
            })
            .collect();
        if let Err(err) =
            self.session
                .unsuback(unsubscribe.packet_id, codes, AckProperties::default())
        {
            debug!(client_id = %self.client_id, %err, "UNSUBACK failed");
        }
    }

    fn on_closed(&mut self, reason: CloseReason, publish_will: bool) {
        match &reason {
            CloseReason::ProtocolViolation(violation) => {
                self.broker.metrics.protocol_errors.inc();
                info!(client_id = %self.client_id, peer = %self.peer, %violation, "protocol violation");
            }
            CloseReason::ClientDisconnected(disconnect) => {
                if let Some(expiry) = disconnect.properties.session_expiry_interval {
                    self.expiry_interval =
                        expiry.min(self.broker.config.limits.max_session_expiry_secs);
                }
            }
            _ => debug!(client_id = %self.client_id, ?reason, "connection closed"),
        }
        if !publish_will {
            self.will = None;
        }
    }

    /// After the socket closed: store or end the session, handle the will.
    fn finish(mut self) {
        if self.connected_counted {
            self.broker.metrics.clients_connected.dec();
        }
        let Some(attached) = self.attached.take() else {
            return;
        };
        let session = attached.session.clone();
        let now = clock::now();
        let state = self.session.take_state();
        session.set_online(false);
        // Deliveries taken from the mailbox but not sent are inside `state` (QoS 1/2).
        let will = self.will.take();
        let will_delay = will
            .as_ref()
            .map_or(0, |w| w.properties.will_delay_interval.unwrap_or(0))
            .min(self.expiry_interval);
        let shared_inflight = std::mem::take(&mut self.shared_inflight);
        // A takeover does not keep a session whose expiry is 0 (3.x clean session):
        // it ended with this connection, and the new one starts afresh (§3.1.4,
        // §4.1).
        if self.expiry_interval == 0 {
            {
                // `end_session` re-routes the unacknowledged shared messages in them.
                let mut detached = session.detached.lock();
                detached.protocol = Some(state);
                detached.shared_inflight = shared_inflight;
            }
            self.broker.end_session(&session);
            if let Some(will) = will {
                publish_will(&self.broker, will, &self.client_id);
            }
        } else {
            let generation = {
                let mut detached = session.detached.lock();
                detached.generation += 1;
                detached.protocol = Some(state);
                detached.shared_inflight = shared_inflight;
                detached.expiry_interval = self.expiry_interval;
                detached.expires_at = (self.expiry_interval != u32::MAX)
                    .then(|| now + Duration::from_secs(u64::from(self.expiry_interval)));
                if let Some(will) = will.as_ref().filter(|_| will_delay > 0) {
                    detached.pending_will = Some((
                        now + Duration::from_secs(u64::from(will_delay)),
                        will.clone(),
                    ));
                }
                detached.generation
            };
            if let Some(will) = will.filter(|_| will_delay == 0) {
                publish_will(&self.broker, will, &self.client_id);
            }
            crate::expiry::arm(self.broker.clone(), session, generation);
        }
        attached.release();
    }
}

/// The Response Information (§4.10) given to a client whose CONNECT sets Request
/// Response Information: the topic prefix `response/{client_id}`. A requester
/// subscribes to `response/{client_id}/#` and sends requests with a Response Topic under
/// it (e.g. `response/{client_id}/req-42`). It is a plain topic, not a `$` one, so any
/// client may publish the response and ordinary filters see it; the broker reserves
/// nothing else about it. `None` (nothing sent) when the client identifier would not
/// make a valid topic (it contains `+`, `#` or U+0000).
pub fn response_information(client_id: &str) -> Option<ByteString> {
    let prefix = format!("response/{client_id}");
    protocol::topic::validate_topic_name(&prefix)
        .is_ok()
        .then(|| prefix.into())
}

/// Builds the broker's message from a client's PUBLISH received at `now`.
pub fn message_from(publish: Publish, origin: ByteString, now: Instant) -> Message {
    let mut properties = publish.properties;
    let expires_at = properties
        .message_expiry_interval
        .take()
        .map(|secs| now + Duration::from_secs(u64::from(secs)));
    properties.topic_alias = None;
    properties.subscription_identifiers = Vec::new();
    Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties,
        expires_at,
        origin,
    }
}

/// Publishes a will as a message from `client_id` (§3.1.2.5).
pub fn publish_will(broker: &Broker, will: Will, client_id: &ByteString) {
    let now = clock::now();
    let mut properties = PublishProperties::default();
    let wp = will.properties;
    properties.payload_format_indicator = wp.payload_format_indicator;
    properties.message_expiry_interval = wp.message_expiry_interval;
    properties.content_type = wp.content_type;
    properties.response_topic = wp.response_topic;
    properties.correlation_data = wp.correlation_data;
    properties.user_properties = wp.user_properties;
    let publish = Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic.into_inner(),
        packet_id: None,
        payload: will.payload,
        properties,
    };
    info!(%client_id, topic = %publish.topic, "publishing will");
    let message = message_from(publish, client_id.clone(), now);
    broker.publish(message, &mut Vec::new());
}
