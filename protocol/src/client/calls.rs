//! [`client_calls!`](crate::client_calls): the public calls of both clients' `Client`
//! (`publish`, `subscribe`, `history`, `request`, `request_with`, `respond`,
//! `disconnect`, `drop_connection`, `abort`), `Subscription` (`filter`,
//! `granted_qos`, `recv`) and `ConnectError` (`reason_code`), written once, signatures
//! and docs included, and expanded inside each client's `impl` blocks.
//!
//! The two `Client` types are their crates' own (each adds what its runtime adds:
//! `connect`, `events`, the state the driver keeps), so the calls cannot be methods of
//! one generic type without changing either API. The macro keeps one text of them;
//! what they do is [`Handle`](super::Handle)'s, which they call after checking and
//! converting the application's arguments.

/// What [`client_calls!`](crate::client_calls) names, so that the crates expanding it
/// need no dependency of their own for it.
#[doc(hidden)]
pub mod reexport {
    pub use bytes::Bytes;
    pub use bytestring::ByteString;
}

/// Expands the calls both clients share (see the module docs of
/// `protocol::client::calls`): `client_calls!(Client)` inside `impl Client`,
/// `client_calls!(Subscription)` inside `impl Subscription`,
/// `client_calls!(ConnectError)` inside `impl ConnectError`. The expanding crate
/// provides:
///
/// - a field `core: protocol::client::Handle<P>` in `Client`, for its [`Port`] `P`;
/// - `Subscription`, a tuple struct around `protocol::client::LocalSubscription<P>`
///   whose `P::Receiver` has `async fn recv(&mut self) -> Option<Message>`;
/// - `ConnectError`, an enum with a variant `Handshake(ConnectFailure)`;
/// - `protocol` with the `history` feature.
///
/// [`Port`]: crate::client::Port
#[macro_export]
macro_rules! client_calls {
    (ConnectError) => {
        /// The broker's reason code when it refused the connection.
        pub fn reason_code(&self) -> Option<$crate::ReasonCode> {
            match self {
                Self::Handshake(failure) => failure.reason_code(),
                _ => None,
            }
        }
    };
    (Subscription) => {
        /// The topic filter.
        pub fn filter(&self) -> &str {
            self.0.filter()
        }

        /// The QoS the broker granted.
        pub fn granted_qos(&self) -> $crate::QoS {
            self.0.granted_qos()
        }

        /// The next message; `None` once the client has ended.
        pub async fn recv(&mut self) -> Option<$crate::client::Message> {
            self.0.receiver().recv().await
        }
    };
    (Client) => {
        /// Publishes `payload` to `topic`. Resolves when the broker acknowledged it
        /// (QoS 1: PUBACK, QoS 2: PUBCOMP) or, at QoS 0, when the transport took it
        /// (written to the socket, or handed to the WebSocket). While disconnected the
        /// message waits in the offline queue.
        ///
        /// `options` is a [`PublishOptions`](crate::PublishOptions) or just a
        /// [`QoS`](crate::QoS).
        pub async fn publish(
            &self,
            topic: impl Into<$crate::client::calls::reexport::ByteString>,
            payload: impl Into<$crate::client::calls::reexport::Bytes>,
            options: impl Into<$crate::client::PublishOptions>,
        ) -> Result<$crate::client::PublishOutcome, $crate::client::Error> {
            let outgoing = $crate::client::Outgoing::new(topic, payload, options)?;
            self.core.publish(outgoing).await
        }

        /// Subscribes to `filter` and returns the stream of matching messages once the
        /// broker granted it (SUBACK). Dropping the [`Subscription`] unsubscribes,
        /// unless another live `Subscription` of this client uses the same filter.
        /// After a reconnect to a broker that lost the session, the client subscribes
        /// again by itself.
        ///
        /// `options` is a [`SubscribeOptions`](crate::SubscribeOptions) or just a
        /// [`QoS`](crate::QoS).
        pub async fn subscribe(
            &self,
            filter: impl Into<$crate::client::calls::reexport::ByteString>,
            options: impl Into<$crate::client::SubscribeOptions>,
        ) -> Result<Subscription, $crate::client::Error> {
            let filter = $crate::TopicFilter::new(filter)?;
            let options = options.into().options;
            Ok(Subscription(self.core.subscribe(filter, options).await?))
        }

        /// The broker's recorded history of the topics matching `query.filter` (MQTT 5
        /// request/response on `$history/query`, docs/history.md): samples oldest
        /// first, only of topics this client may read.
        /// [`Error::History`](crate::Error::History) when the broker refuses (bad
        /// request, not authorized, history disabled);
        /// [`Error::NeedsV5`](crate::Error::NeedsV5) on MQTT 3.x.
        pub async fn history(
            &self,
            query: &$crate::client::history::HistoryQuery,
            timeout: ::std::time::Duration,
        ) -> Result<$crate::client::history::HistoryReply, $crate::client::Error> {
            let topic = $crate::client::history::QUERY_TOPIC;
            let reply = self.request(topic, query.encode(), timeout).await?;
            $crate::client::history::decode_reply(&reply)
        }

        /// MQTT 5 request/response: publishes `payload` to `topic` at QoS 1 with a
        /// Response Topic (this client's, see
        /// [`ConnectOptions::response_topic`](crate::ConnectOptions::response_topic))
        /// and fresh Correlation Data, and returns the first response carrying that
        /// correlation data, or [`Error::Timeout`](crate::Error::Timeout).
        pub async fn request(
            &self,
            topic: impl Into<$crate::client::calls::reexport::ByteString>,
            payload: impl Into<$crate::client::calls::reexport::Bytes>,
            timeout: ::std::time::Duration,
        ) -> Result<$crate::client::Message, $crate::client::Error> {
            let options = $crate::client::PublishOptions::new($crate::QoS::AtLeastOnce);
            self.request_with(topic, payload, options, timeout).await
        }

        /// [`request`](Self::request) with explicit options (QoS, message expiry,
        /// content type, user properties). Correlation data is set here; the response
        /// topic is `options.properties.response_topic` when given (e.g. the Homie
        /// convention's `dash/{client-id}/res/{dev}`, one per device), else the
        /// client's. The client subscribes to each response topic it uses, once.
        pub async fn request_with(
            &self,
            topic: impl Into<$crate::client::calls::reexport::ByteString>,
            payload: impl Into<$crate::client::calls::reexport::Bytes>,
            options: $crate::client::PublishOptions,
            timeout: ::std::time::Duration,
        ) -> Result<$crate::client::Message, $crate::client::Error> {
            let version = $crate::client::Port::version(self.core.port());
            let outgoing = $crate::client::Outgoing::request(version, topic, payload, options)?;
            self.core.request(outgoing, timeout).await
        }

        /// Answers `request` (a message with an MQTT 5 Response Topic): publishes
        /// `payload` to its response topic with its correlation data echoed.
        pub async fn respond(
            &self,
            request: &$crate::client::Message,
            payload: impl Into<$crate::client::calls::reexport::Bytes>,
            options: $crate::client::PublishOptions,
        ) -> Result<$crate::client::PublishOutcome, $crate::client::Error> {
            let outgoing = $crate::client::Outgoing::response(request, payload, options)?;
            self.core.publish(outgoing).await
        }

        /// Sends DISCONNECT with `reason` (Success for a normal disconnection;
        /// [`ReasonCode::DisconnectWithWillMessage`](crate::ReasonCode::DisconnectWithWillMessage)
        /// asks an MQTT 5 broker to publish the will), closes the connection and ends
        /// the client: every handle's operations fail with
        /// [`Error::Closed`](crate::Error::Closed) afterwards and subscriptions end.
        pub async fn disconnect(
            &self,
            reason: $crate::ReasonCode,
        ) -> Result<(), $crate::client::Error> {
            self.core.disconnect(reason).await
        }

        /// Closes the transport without DISCONNECT, as a network failure would (the
        /// broker publishes the will), then reconnects per the reconnect options.
        pub fn drop_connection(&self) {
            self.core.drop_connection(true);
        }

        /// Closes the transport without DISCONNECT (the broker publishes the will) and
        /// ends the client.
        pub fn abort(&self) {
            self.core.drop_connection(false);
        }
    };
}
