//! A connection's start and end: CONNECT (limits, client identifier, session attach,
//! takeover, resume) and what happens to the session and the will when it closes.
//!
//! # Takeover and who a session belongs to
//!
//! A session belongs to the user it was created under ([`Owner`]). A CONNECT whose
//! identity is another user (or anonymous against a named owner, or the other way
//! round) for that client identifier is refused with CONNACK 0x87 Not authorized
//! (3.x: return code 5), whether the session is online or offline, and its connection
//! and messages are left as they were: nothing is lost. With
//! `sessions.allow_cross_user_takeover` (mosquitto's behaviour) it is let in, the
//! session passes to it, and what it is then sent is authorized for it: the messages
//! in flight by [`Connection::resume`], the queued ones as they leave the mailbox.
//! What it may not read is dropped and counted (`acl_denied.receive`), and is lost to
//! the previous owner too; the subscriptions stay, and deliveries on them are checked
//! one by one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use protocol::session::{AcceptOptions, OutboundMessage};
use protocol::{Auth, AuthProperties, Connect, ProtocolVersion, ReasonCode, Will};
use tracing::{debug, info, warn};

use super::Connection;
use crate::broker::AttachError;
use crate::broker::backplane::Connecting;
use crate::clock;
use crate::limits::Limit;
use crate::security::enhanced::{AuthStep, Exchange};
use crate::security::{Access, Identity, LoginError, LoginRequest};
use crate::session::{Owner, Session};

impl Connection {
    fn enhanced(&mut self) -> &mut super::EnhancedAuth {
        self.enhanced.get_or_insert_with(Default::default)
    }

    fn exchange(&self) -> Option<&Exchange> {
        self.enhanced.as_ref()?.exchange.as_ref()
    }

    fn take_exchange(&mut self) -> Option<Exchange> {
        self.enhanced.as_mut()?.exchange.take()
    }

    fn has_pending_connect(&self) -> bool {
        self.enhanced
            .as_ref()
            .is_some_and(|e| e.pending_connect.is_some())
    }

    fn take_pending_connect(&mut self) -> Option<Connect> {
        self.enhanced.as_mut()?.pending_connect.take()
    }

    pub(super) async fn on_connect(&mut self, connect: Connect) {
        self.version = connect.protocol;
        self.bridge = connect.bridge && !connect.protocol.is_v5();
        let broker = self.broker.clone();
        let limits = &broker.config.limits;
        // Counted and logged when the connection was accepted (`crate::limits`).
        if let Some(limit) = self.meta.refused_by {
            let _ = self.session.reject(limit.connack_reason());
            return;
        }
        if broker.clients.is_closing() {
            let _ = self.session.reject(ReasonCode::ServerUnavailable);
            return;
        }
        if !broker
            .metrics
            .clients_connected
            .inc_below(limits.max_connections as u64)
        {
            broker.metrics.connections_refused.inc();
            let hits = &broker.metrics.limit_hits;
            hits.hit(Limit::MaxConnections, self.meta.peer, &connect.client_id);
            let _ = self.session.reject(ReasonCode::QuotaExceeded);
            return;
        }
        // The slot is ours from here on; `finish` gives it back.
        self.connected_counted = true;
        let received = tokio::time::Instant::now();
        match self.login(&connect).await {
            Ok(identity) => self.set_identity(identity),
            Err(LoginError::Busy) => {
                let hits = &broker.metrics.limit_hits;
                hits.hit(Limit::PasswordQueue, self.meta.peer, &connect.client_id);
                let _ = self.session.reject(Limit::PasswordQueue.connack_reason());
                return;
            }
            Err(LoginError::Refused(reason)) => {
                broker.metrics.auth_failures.inc();
                warn!(peer = %self.meta.peer, client_id = %connect.client_id, username = ?connect.username, %reason, "login refused");
                self.refuse_login(reason, received).await;
                return;
            }
        }
        if let Some(method) = connect.properties.authentication_method.clone() {
            let Some(mechanism) = broker.auth.get(&method) else {
                let _ = self.session.reject(ReasonCode::BadAuthenticationMethod);
                return;
            };
            let mut state = mechanism.begin(&connect.client_id, connect.username.as_deref());
            let step = state.step(connect.properties.authentication_data.as_deref());
            let enhanced = self.enhanced();
            enhanced.exchange = Some(Exchange { method, state });
            enhanced.pending_connect = Some(connect);
            self.auth_step(step).await;
            return;
        }
        self.complete_connect(connect, None).await;
    }

    /// Carries out what the authentication exchange asked for: a challenge, the end of
    /// the CONNECT (or re-authentication), or a refusal.
    pub(super) async fn auth_step(&mut self, step: AuthStep) {
        let Some(method) = self.exchange().map(|e| e.method.clone()) else {
            return;
        };
        match step {
            AuthStep::Continue(data) => {
                let auth = auth_packet(ReasonCode::ContinueAuthentication, method, Some(data));
                if let Err(err) = self.session.send_auth(auth) {
                    debug!(client_id = %self.client_id, %err, "AUTH not sent");
                }
            }
            AuthStep::Success(data) => {
                let identity = self.take_exchange().and_then(|e| e.state.identity());
                if let Some(identity) = identity {
                    let reauth = !self.has_pending_connect();
                    if reauth && identity.username != self.identity().username {
                        // Re-authentication proves who the connection already is; it
                        // cannot switch users.
                        warn!(client_id = %self.client_id, "re-authentication as another user refused");
                        self.broker.metrics.auth_failures.inc();
                        self.session.disconnect(ReasonCode::NotAuthorized);
                        return;
                    }
                    self.set_identity(identity);
                }
                if let Some(connect) = self.take_pending_connect() {
                    self.complete_connect(connect, Some((method, data))).await;
                } else if let Err(err) =
                    self.session
                        .send_auth(auth_packet(ReasonCode::Success, method, data))
                {
                    debug!(client_id = %self.client_id, %err, "AUTH not sent");
                }
            }
            AuthStep::Failure(reason) => {
                self.take_exchange();
                self.broker.metrics.auth_failures.inc();
                warn!(peer = %self.meta.peer, %reason, "enhanced authentication failed");
                if self.take_pending_connect().is_some() {
                    self.refuse_login(reason, tokio::time::Instant::now()).await;
                } else {
                    self.session.disconnect(reason);
                }
            }
        }
    }

    /// Checks the CONNECT's credentials ([`crate::security::Security::login`]). A
    /// password check (argon2id costs milliseconds of CPU by design) runs on the
    /// security's bounded pool of threads, so it stalls neither this worker's other
    /// connections nor, under a login flood, the broker's memory.
    async fn login(&mut self, connect: &Connect) -> Result<Identity, LoginError> {
        let security = &self.broker.security;
        security
            .login(&LoginRequest {
                client_id: &connect.client_id,
                username: connect.username.as_deref(),
                password: connect.password.as_deref(),
                bearer_token: self.meta.bearer_token.as_deref(),
                cert_username: self.meta.cert_username.as_deref(),
                peer: self.meta.peer,
                authentication_method: connect.properties.authentication_method.as_deref(),
            })
            .await
    }

    /// Refuses a CONNECT at [`crate::security::Security::refusal_delay`] after
    /// `since` (when its credentials arrived), which slows down password guessing and
    /// makes every refusal take as long, whatever the credential checked (each
    /// connection waits on its own task, holding no password worker).
    async fn refuse_login(&mut self, reason: ReasonCode, since: tokio::time::Instant) {
        tokio::time::sleep_until(since + self.broker.security.refusal_delay()).await;
        let _ = self.session.reject(reason);
    }

    /// An AUTH from the client: the next step of the exchange, or the start of a
    /// re-authentication (§4.12.1).
    pub(super) async fn on_auth(&mut self, auth: Auth) {
        let method = auth.properties.authentication_method.clone();
        let data = auth.properties.authentication_data.clone();
        let continuing = auth.reason_code == ReasonCode::ContinueAuthentication
            && self
                .exchange()
                .is_some_and(|e| Some(&e.method) == method.as_ref());
        let reauth = auth.reason_code == ReasonCode::ReAuthenticate
            && self.exchange().is_none()
            && self.session.is_connected()
            && method.is_some()
            && method.as_ref() == self.enhanced.as_ref().and_then(|e| e.method.as_ref());
        if continuing {
            let step = match self.enhanced.as_mut().and_then(|e| e.exchange.as_mut()) {
                Some(exchange) => exchange.state.step(data.as_deref()),
                None => return,
            };
            self.auth_step(step).await;
        } else if let (true, Some(method)) = (reauth, method) {
            let Some(mechanism) = self.broker.auth.get(&method) else {
                self.session.disconnect(ReasonCode::BadAuthenticationMethod);
                return;
            };
            let mut state = mechanism.begin(&self.client_id, None);
            let step = state.step(data.as_deref());
            self.enhanced().exchange = Some(Exchange { method, state });
            self.auth_step(step).await;
        } else if self.take_pending_connect().is_some() {
            // [MQTT-4.12.0-?]: a different method, or an unexpected reason code.
            let _ = self.session.reject(ReasonCode::ProtocolError);
        } else {
            self.session.disconnect(ReasonCode::ProtocolError);
        }
    }

    /// The rest of CONNECT once the client is authenticated: limits, client identifier,
    /// session attach (takeover, resume) and CONNACK.
    async fn complete_connect(
        &mut self,
        connect: Connect,
        auth: Option<(ByteString, Option<Bytes>)>,
    ) {
        let broker = self.broker.clone();
        let limits = &broker.config.limits;
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
            // A copy, not a reference into the CONNECT's receive buffer, which it would
            // keep alive for the session's life.
            ByteString::from(String::from(&*connect.client_id))
        };
        let expiry = match connect.protocol {
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
            _ if connect.clean_start => 0,
            _ => u32::MAX,
        };
        let granted_expiry = expiry.min(limits.max_session_expiry_secs);

        let owner = Owner::of(self.identity().username.as_ref());
        let connecting = Connecting {
            owner,
            clean_start: connect.clean_start,
            expiry_interval: granted_expiry,
            will: connect.will.clone(),
            here: false,
        };
        let (attached, ended) = match broker.attach(&client_id, connecting).await {
            Ok(attached) => attached,
            Err(err @ AttachError::NotOwner { .. }) => {
                broker.metrics.auth_failures.inc();
                warn!(peer = %self.meta.peer, %client_id, username = ?self.identity().username, %err, "session takeover by another user refused");
                let _ = self.session.reject(ReasonCode::NotAuthorized);
                return;
            }
            Err(AttachError::NotClaimed(refused)) => {
                warn!(peer = %self.meta.peer, %client_id, %refused, "session not claimed");
                let _ = self.session.reject(refused.reason);
                return;
            }
        };
        if let Some(old) = ended {
            self.end_replaced_session(&old);
        }
        // Set before `resume`, which checks read access (`%c` patterns need it).
        self.client_id = client_id;
        let resumed = if attached.present {
            self.resume(&attached.session)
        } else {
            None
        };
        self.expiry_interval = granted_expiry;
        self.will = connect.will.map(Box::new);
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
            authentication_method: auth.as_ref().map(|(method, _)| method.clone()),
            authentication_data: auth.as_ref().and_then(|(_, data)| data.clone()),
            ..AcceptOptions::default()
        };
        if let Some((method, _)) = auth {
            self.enhanced().method = Some(method);
        }
        let present = attached.present;
        let session = attached.session.clone();
        self.attached = Some(attached);
        self.store_session(&session).await;
        match self.session.accept(options, resumed) {
            Ok(()) => {
                info!(client_id = %self.client_id, peer = %self.meta.peer, version = %self.version, present, "client connected");
            }
            Err(err) => warn!(client_id = %self.client_id, %err, "accept failed"),
        }
    }

    /// Takes a stored session's state for resumption and cancels its pending will
    /// [MQTT-3.1.3-9].
    ///
    /// The messages in flight in it (sent before, unacknowledged; re-sent after
    /// CONNACK) are checked against the read rules of the identity connecting now, as
    /// every queued message is when it leaves the mailbox
    /// ([`Connection::send_delivery`]): the session may have passed to another user
    /// (`sessions.allow_cross_user_takeover`, or a session stored without an owner),
    /// and the rules may have been reloaded since they were sent. One that may not be
    /// read is dropped, its stored copy deleted, and counted as a refused delivery.
    /// This runs once per resume, not per message sent.
    pub(super) fn resume(&mut self, session: &Session) -> Option<protocol::session::SessionState> {
        let mut state = {
            let mut detached = session.detached();
            self.shared_inflight = std::mem::take(&mut detached.shared_inflight);
            detached.generation += 1;
            detached.pending_will = None;
            detached.expires_at = None;
            detached.protocol.take()
        };
        if let Some(state) = &mut state
            && self.broker.security.enforces(self.identity())
        {
            let mut denied = Vec::new();
            state.outbound.retain(|flow| match flow {
                // A PUBREL carries no message: it always goes.
                OutboundMessage::Publish(publish) if !self.may(Access::Receive, &publish.topic) => {
                    debug!(client_id = %self.client_id, username = ?self.identity().username, topic = %publish.topic, "in-flight message not authorized for this identity: dropped");
                    denied.extend(publish.packet_id);
                    false
                }
                _ => true,
            });
            for packet_id in denied {
                self.broker.metrics.acl_denied.receive.inc();
                self.broker.storage.delivered(session, packet_id);
                self.shared_inflight.finished(packet_id);
            }
        }
        state
    }

    /// A Clean Start replaced `old`: its subscriptions go, and a will still waiting out
    /// its delay is published now that the session ended (§3.1.3.2.2).
    pub(super) fn end_replaced_session(&mut self, old: &Arc<Session>) {
        let will = {
            let mut detached = old.detached();
            detached.generation += 1;
            detached.pending_will.take()
        };
        self.broker.end_session(old);
        let will = will.map(|will| *will);
        if let Some((_, will)) = will {
            self.broker.publish_will(will, &old.client_id);
        }
    }

    /// Whether the will's owner may publish to its topic, checked when the connection
    /// ends (a delayed will is checked then, not again when its delay runs out). A will
    /// that may not be published is dropped with a log line.
    fn will_allowed(&self, will: &Will) -> bool {
        let allowed = self.may(Access::Publish, &will.topic);
        if !allowed {
            self.broker.metrics.acl_denied.will.inc();
            info!(client_id = %self.client_id, username = ?self.identity().username, topic = %will.topic, "will not authorized: not published");
        }
        allowed
    }

    /// After the socket closed: store or end the session, handle the will.
    pub(super) fn finish(mut self) {
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
        let will = self
            .will
            .take()
            .map(|will| *will)
            .filter(|will| self.will_allowed(will));
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
                let mut detached = session.detached();
                detached.protocol = Some(state);
                detached.shared_inflight = shared_inflight;
            }
            self.broker.end_session(&session);
            if let Some(will) = will {
                self.broker.publish_will(will, &self.client_id);
            }
        } else {
            let generation = {
                let mut detached = session.detached();
                detached.generation += 1;
                detached.protocol = Some(state);
                detached.shared_inflight = shared_inflight;
                detached.expiry_interval = self.expiry_interval;
                detached.expires_at = (self.expiry_interval != u32::MAX)
                    .then(|| now + Duration::from_secs(u64::from(self.expiry_interval)));
                if let Some(will) = will.as_ref().filter(|_| will_delay > 0) {
                    detached.pending_will = Some(Box::new((
                        now + Duration::from_secs(u64::from(will_delay)),
                        will.clone(),
                    )));
                }
                detached.generation
            };
            let (expires_at, pending_will) = {
                let detached = session.detached();
                (
                    detached.expires_at,
                    detached.pending_will.as_deref().cloned(),
                )
            };
            let storage = &self.broker.storage;
            storage.put_session(&session, self.expiry_interval, expires_at, pending_will);
            if let Some(will) = will.filter(|_| will_delay == 0) {
                self.broker.publish_will(will, &self.client_id);
            }
            self.broker.detached(&session);
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
pub(super) fn response_information(client_id: &str) -> Option<ByteString> {
    let prefix = format!("response/{client_id}");
    protocol::topic::validate_topic_name(&prefix)
        .is_ok()
        .then(|| prefix.into())
}

fn auth_packet(reason_code: ReasonCode, method: ByteString, data: Option<Bytes>) -> Auth {
    Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(method),
            authentication_data: data,
            ..AuthProperties::default()
        }
        .into(),
    }
}
