//! # protocol
//!
//! The one MQTT implementation of this workspace: a codec for MQTT 3.1, 3.1.1 and 5.0
//! and the sans-IO session state machines built on it. It runs unchanged in the broker,
//! in the native client and, compiled to wasm32, in the browser.
//!
//! ```text
//!            bytes in                                   bytes out
//!               │                                           ▲
//!   ┌───────────▼───────────────────────────────────────────┴──────────┐
//!   │ codec: decode(&mut BytesMut, &Limits) ─► Packet ─► encode(..)    │
//!   ├──────────────────────────────────────────────────────────────────┤
//!   │ session: handle_*(.., now) ─► state ─► poll_transmit / poll_event │
//!   │          handle_timeout(now) ◄─ poll_timeout()                    │
//!   └──────────────────────────────────────────────────────────────────┘
//!       no sockets, no tasks, no clock: the caller owns all IO and time
//! ```
//!
//! # Layout
//!
//! - [`packet`]: the [`Packet`] model (one struct per packet type, one module each),
//!   [`decode`] and [`encode`].
//! - [`property`]: MQTT 5 properties, one struct per packet's set.
//! - [`reason`]: [`ReasonCode`] and the 3.x return code mapping.
//! - [`error`]: [`DecodeError`] (each naming the spec statement it enforces and the
//!   reason code to send) and [`EncodeError`].
//! - [`topic`]: validated [`TopicName`] / [`TopicFilter`], matching, shared
//!   subscriptions.
//! - [`session`]: the sans-IO state machines, [`ClientSession`] and [`ServerSession`]:
//!   handshake, QoS 1/2 flows, flow control, topic aliases, keep alive.
//! - [`client`]: the MQTT client above the session, shared by both clients:
//!   [`client::Connection`] (commands, session events, the offline queue, request
//!   correlation, reconnect backoff), [`client::Handle`] (the calls of a client handle,
//!   with [`client_calls!`] for their public signatures), its options, errors and
//!   events. Sans-IO like the rest; `native-client` and `web-client` keep only their
//!   socket, timer and channels.
//! - `wire` (private): the spec's primitive data types.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use protocol::{decode, encode, Limits, Packet, ProtocolVersion, Publish};
//!
//! let mut buf = BytesMut::new();
//! let publish = Packet::Publish(Publish::new("sensors/t1", "21.5"));
//! encode(&publish, ProtocolVersion::V5, &mut buf).unwrap();
//! assert_eq!(decode(&mut buf, &Limits::default()).unwrap(), Some(publish));
//! assert!(buf.is_empty());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod packet;
pub mod property;
pub mod reason;
pub mod session;
pub mod topic;
mod wire;

pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Limits, MAX_PACKET_SIZE, Packet, PacketId, PacketType,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, RetainHandling, SubAck,
    Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will, decode, encode,
    encoded_len,
};
pub use property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, PublishProps, SubscribeProperties, UnsubscribeProperties, UserProperties,
    WillProperties,
};
pub use reason::ReasonCode;
pub use session::{
    AcceptOptions, ClientEvent, ClientOptions, ClientSession, ServerEvent, ServerOptions,
    ServerSession, SessionError, SessionState,
};
pub use topic::{TopicFilter, TopicName};
