//! [`Link`]: the lean connection under every bench client. One transport (TCP, TLS or
//! WebSocket), one read buffer decoded with `protocol::decode`, one write buffer sent
//! with a single `write_all`. No session state machine and no driver task: each
//! scenario's loop keeps only the state it measures, so the tool stays cheaper than
//! the broker it loads.

use std::io;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::FutureExt as _;
use native_client::transport::BoxIo;
use native_client::{BrokerUrl, ProtocolVersion, QoS, ReasonCode, TopicFilter};
use protocol::packet::{self, Connect, Disconnect, Limits, Packet, Subscribe, Subscription};
use protocol::{ConnAck, SubscriptionOptions};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where and how every client of a run connects.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The broker.
    pub(super) url: BrokerUrl,
    /// rustls configuration for `mqtts://` and `wss://`.
    pub(super) tls: Option<Arc<ClientConfig>>,
    /// Protocol level of every CONNECT.
    pub(super) version: ProtocolVersion,
    /// Optional credentials, the same for every client.
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    /// Keep Alive in seconds; `conn` sends PINGREQs while holding.
    pub(super) keep_alive: u16,
    /// Limit on TCP + TLS + WebSocket + CONNECT→CONNACK.
    pub(super) connect_timeout: Duration,
}

/// Read buffer size: one `read` takes up to this much, and every whole packet in it
/// is handled before the next `read`.
const READ_CAPACITY: usize = 64 * 1024;

/// One open MQTT connection.
pub(super) struct Link {
    io: BoxIo,
    /// Bytes received and not yet decoded.
    read: BytesMut,
    /// Packets queued for the next [`Link::flush`].
    pub(super) write: BytesMut,
    /// The decoder's view of this connection (protocol level, no size limit).
    limits: Limits,
    /// The broker's Receive Maximum (MQTT 5 CONNACK; 65535 when absent or 3.1.1): a
    /// publisher never has more QoS 1/2 messages unacknowledged [MQTT-3.3.4-7].
    pub(super) receive_maximum: u16,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("version", &self.limits.version)
            .field("read", &self.read.len())
            .field("write", &self.write.len())
            .finish_non_exhaustive()
    }
}

/// How a connection attempt ended when the transport opened.
#[derive(Debug)]
pub(super) enum Connected {
    /// CONNACK with success.
    Accepted(Link),
    /// CONNACK with an error reason code.
    Refused(ReasonCode),
}

impl Link {
    /// Opens the transport and sends CONNECT; waits for the CONNACK.
    pub(super) async fn connect(target: &Target, client_id: &str) -> anyhow::Result<Connected> {
        tokio::time::timeout(
            target.connect_timeout,
            Self::connect_inner(target, client_id),
        )
        .await
        .map_err(|_| anyhow!("no CONNACK within {:?}", target.connect_timeout))?
    }

    async fn connect_inner(target: &Target, client_id: &str) -> anyhow::Result<Connected> {
        let io = open(target).await?;
        let mut link = Link {
            io,
            read: BytesMut::with_capacity(READ_CAPACITY),
            write: BytesMut::with_capacity(READ_CAPACITY),
            limits: Limits {
                version: target.version,
                ..Limits::default()
            },
            receive_maximum: u16::MAX,
        };
        let mut connect = Connect::new(target.version, client_id);
        connect.keep_alive = target.keep_alive;
        connect.username = target.username.clone().map(Into::into);
        connect.password = target.password.clone().map(Bytes::from);
        link.queue(&Packet::Connect(Box::new(connect)))?;
        link.flush().await?;
        match link.recv().await? {
            Packet::ConnAck(ConnAck { reason_code, .. }) if reason_code.is_error() => {
                Ok(Connected::Refused(reason_code))
            }
            Packet::ConnAck(connack) => {
                if let Some(max) = connack.properties.receive_maximum {
                    link.receive_maximum = max.get();
                }
                Ok(Connected::Accepted(link))
            }
            other => bail!("expected CONNACK, got {}", other.packet_type()),
        }
    }

    /// [`Link::connect`] for clients that must connect: a refusal is an error.
    pub(super) async fn open(target: &Target, client_id: &str) -> anyhow::Result<Link> {
        match Self::connect(target, client_id)
            .await
            .with_context(|| format!("{client_id} connecting to {}", target.url))?
        {
            Connected::Accepted(link) => Ok(link),
            Connected::Refused(code) => {
                bail!("{client_id}: the broker refused the connection: {code:?}")
            }
        }
    }

    /// The protocol level of this connection.
    pub(super) fn version(&self) -> ProtocolVersion {
        self.limits.version
    }

    /// Subscribes to `filter` and waits for a SUBACK granting it.
    pub(super) async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let filter =
            TopicFilter::new(filter).map_err(|err| anyhow!("topic filter `{filter}`: {err}"))?;
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            subscriptions: vec![Subscription {
                filter,
                options: SubscriptionOptions::new(qos),
            }],
            properties: Default::default(),
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        loop {
            match self.recv().await? {
                Packet::SubAck(suback) => {
                    return match suback.reason_codes.first() {
                        Some(code) if !code.is_error() => Ok(()),
                        code => bail!("subscription refused: {code:?}"),
                    };
                }
                // Retained messages may come before the SUBACK; a bench topic has none
                // that matter, and they are not answered here.
                Packet::Publish(_) => {}
                other => bail!("expected SUBACK, got {}", other.packet_type()),
            }
        }
    }

    /// Appends `packet` to the write buffer.
    pub(super) fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        packet::encode(packet, self.limits.version, &mut self.write)?;
        Ok(())
    }

    /// Sends everything queued in one write.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        if !self.write.is_empty() {
            self.io.write_all(&self.write).await?;
            // A no-op on TCP; TLS and WebSocket send their buffered record or frame.
            self.io.flush().await?;
            self.write.clear();
        }
        Ok(())
    }

    /// The next whole packet already received, if any.
    pub(super) fn next_packet(&mut self) -> anyhow::Result<Option<Packet>> {
        Ok(packet::decode(&mut self.read, &self.limits)?)
    }

    /// Waits for more bytes. The end of the stream is an error: no bench client
    /// expects the broker to close first.
    pub(super) async fn fill(&mut self) -> anyhow::Result<()> {
        self.read.reserve(READ_CAPACITY);
        let n = self.io.read_buf(&mut self.read).await?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        Ok(())
    }

    /// Reads what has arrived without waiting; `true` if anything did. `read_buf` is
    /// cancel safe, so polling it once and dropping it loses nothing.
    pub(super) fn try_fill(&mut self) -> anyhow::Result<bool> {
        self.read.reserve(READ_CAPACITY);
        match self.io.read_buf(&mut self.read).now_or_never() {
            None => Ok(false),
            Some(Ok(0)) => bail!("the broker closed the connection"),
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => Err(err.into()),
        }
    }

    /// The next packet, reading as needed.
    pub(super) async fn recv(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = self.next_packet()? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    /// Sends DISCONNECT (normal) and closes; errors are ignored, the run is over.
    pub(super) async fn disconnect(mut self) {
        if self
            .queue(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .is_ok()
        {
            let _ = self.flush().await;
        }
        let _ = self.io.shutdown().await;
    }
}

/// Opens TCP, then TLS for `mqtts`/`wss`, then the WebSocket upgrade for `ws`/`wss`
/// (native-client's transports).
async fn open(target: &Target) -> anyhow::Result<BoxIo> {
    Ok(native_client::transport::open(&target.url, target.tls.as_ref(), None).await?)
}
