//! The receiver side of QoS 1 and QoS 2 (§4.3.2, §4.3.3) and of flow control (§4.9),
//! shared by the client and the server session.
//!
//! ```text
//!   PUBLISH QoS 1 ──► Unacknowledged ──ack──► PUBACK, done
//!   PUBLISH QoS 2 ──► Unacknowledged ──ack──► PUBREC, AwaitingRelease ──PUBREL──► PUBCOMP, done
//!                                      └─ack ≥ 0x80──► PUBREC, done
//! ```
//!
//! The application (the broker, for a server session) sees each message once, at
//! PUBLISH; *ack* is its go-ahead to acknowledge. A client session acknowledges at once;
//! a server session waits for the broker to have stored the message. A re-sent PUBLISH
//! of a flow that is not finished is not surfaced again: while unacknowledged it is
//! absorbed (our acknowledgement will answer it), while awaiting PUBREL it gets its
//! PUBREC again (§4.3.3) — this is what makes QoS 2 exactly once.
//!
//! Receive Maximum: flows started on the current connection and not finished (PUBACK
//! or PUBCOMP sent, or PUBREC with an error) count against the maximum we advertised; one
//! more is *Receive Maximum exceeded* (0x93) [MQTT-3.3.4-7] [MQTT-3.3.4-9]. Flows
//! carried over from an earlier connection do not count, because the peer's quota is
//! re-initialised with each connection (§4.9).

use super::ProtocolViolation;
use super::packet_id::{BurstRoom, IdMap};
use crate::packet::{Packet, PacketId, PubAck, PubRec, QoS};
use crate::reason::ReasonCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Surfaced; waiting for the application's go-ahead to acknowledge.
    Unacknowledged(QoS),
    /// QoS 2, PUBREC sent; waiting for PUBREL.
    AwaitingRelease,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    stage: Stage,
    /// Counts against Receive Maximum (started on the current connection).
    counted: bool,
}

/// What a PUBLISH with a packet identifier is, for this receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// A new message: surface it, then acknowledge when told.
    New,
    /// A re-send of a message surfaced and not acknowledged yet: ignore it.
    Duplicate,
    /// A re-send of a QoS 2 message already acknowledged with PUBREC: send PUBREC
    /// again, do not surface it.
    AlreadyReceived,
}

/// Inbound QoS 1 and 2 flows of one session.
#[derive(Debug)]
pub(crate) struct Inbound {
    flows: IdMap<Flow>,
    /// Flows with `counted` set.
    counted: usize,
    /// Our Receive Maximum; `None` for MQTT 3.x, which has none.
    receive_maximum: Option<u16>,
    /// The most flows at once since `flows` was last empty.
    burst: BurstRoom,
}

impl Inbound {
    /// No flows; `receive_maximum` as advertised (`None`: not enforced).
    pub(crate) fn new(receive_maximum: Option<u16>) -> Self {
        Self {
            flows: IdMap::default(),
            counted: 0,
            receive_maximum,
            burst: BurstRoom::default(),
        }
    }

    /// A new connection: flows still open were started on an earlier one and stop
    /// counting against Receive Maximum.
    pub(crate) fn start(&mut self, receive_maximum: Option<u16>) {
        self.receive_maximum = receive_maximum;
        self.counted = 0;
        for flow in self.flows.values_mut() {
            flow.counted = false;
        }
    }

    /// Classifies a PUBLISH at `qos` (1 or 2) with identifier `id`.
    pub(crate) fn on_publish(
        &mut self,
        id: PacketId,
        qos: QoS,
    ) -> Result<Arrival, ProtocolViolation> {
        match self.flows.get(&id).map(|flow| flow.stage) {
            Some(Stage::Unacknowledged(stage_qos)) if stage_qos == qos => Ok(Arrival::Duplicate),
            Some(Stage::AwaitingRelease) if qos == QoS::ExactlyOnce => Ok(Arrival::AlreadyReceived),
            Some(_) => Err(ProtocolViolation::PacketIdInUse(id)),
            None => {
                if let Some(maximum) = self.receive_maximum
                    && self.counted >= usize::from(maximum)
                {
                    return Err(ProtocolViolation::ReceiveMaximumExceeded(maximum));
                }
                self.flows.insert(
                    id,
                    Flow {
                        stage: Stage::Unacknowledged(qos),
                        counted: true,
                    },
                );
                self.counted += 1;
                self.burst.saw(self.flows.len());
                Ok(Arrival::New)
            }
        }
    }

    /// The application's go-ahead for message `id`: the PUBACK or PUBREC to send, with
    /// `reason`. `None` if no message `id` awaits one.
    pub(crate) fn acknowledge(&mut self, id: PacketId, reason: ReasonCode) -> Option<Packet> {
        let flow = self.flows.get_mut(&id)?;
        match flow.stage {
            Stage::Unacknowledged(QoS::ExactlyOnce) => {
                if reason.is_error() {
                    self.finish(id);
                } else {
                    flow.stage = Stage::AwaitingRelease;
                }
                Some(Packet::PubRec(PubRec::with_reason(id, reason)))
            }
            Stage::Unacknowledged(_) => {
                self.finish(id);
                Some(Packet::PubAck(PubAck::with_reason(id, reason)))
            }
            Stage::AwaitingRelease => None,
        }
    }

    /// Handles PUBREL: `true` if it released a message (answer PUBCOMP), `false` if no
    /// message awaited it (answer PUBCOMP with 0x92 Packet Identifier not found).
    pub(crate) fn on_pubrel(&mut self, id: PacketId) -> Result<bool, ProtocolViolation> {
        match self.flows.get(&id).map(|flow| flow.stage) {
            Some(Stage::AwaitingRelease) => {
                self.finish(id);
                Ok(true)
            }
            Some(Stage::Unacknowledged(_)) => Err(ProtocolViolation::PacketIdInUse(id)),
            None => Ok(false),
        }
    }

    fn finish(&mut self, id: PacketId) {
        if let Some(flow) = self.flows.remove(&id)
            && flow.counted
        {
            self.counted -= 1;
        }
        // A burst's room is let go once the flows need far less ([`BurstRoom`]).
        if self.flows.is_empty() {
            if self.burst.spare(self.flows.capacity()) {
                self.flows = IdMap::default();
            }
            self.burst.restart();
        }
    }

    /// Messages surfaced and not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.flows
            .values()
            .filter(|flow| matches!(flow.stage, Stage::Unacknowledged(_)))
            .count()
    }

    /// The identifiers awaiting PUBREL, in increasing order.
    pub(crate) fn awaiting_release(&self) -> Vec<PacketId> {
        let mut ids: Vec<PacketId> = self
            .flows
            .iter()
            .filter(|(_, flow)| flow.stage == Stage::AwaitingRelease)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Restores identifiers awaiting PUBREL from stored state.
    pub(crate) fn restore(&mut self, ids: &[PacketId]) {
        for &id in ids {
            self.flows.entry(id).or_insert(Flow {
                stage: Stage::AwaitingRelease,
                counted: false,
            });
        }
    }

    /// Forgets every flow (the session ended, or a new one started).
    pub(crate) fn clear(&mut self) {
        self.flows.clear();
        self.counted = 0;
    }

    /// Whether no flow is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::packet_id::KEEP;

    fn id(value: u16) -> PacketId {
        PacketId::new(value).expect("non-zero")
    }

    #[test]
    fn the_flows_let_a_burst_go_once_traffic_falls_back() {
        let mut inbound = Inbound::new(Some(200));
        let burst = |inbound: &mut Inbound, count: u16| {
            for value in 1..=count {
                assert_eq!(
                    inbound.on_publish(id(value), QoS::AtLeastOnce),
                    Ok(Arrival::New)
                );
            }
            for value in 1..=count {
                assert!(
                    inbound
                        .acknowledge(id(value), ReasonCode::Success)
                        .is_some()
                );
            }
        };
        // Bursts of one size keep their room...
        burst(&mut inbound, 150);
        let room = inbound.flows.capacity();
        assert!(room >= 150);
        burst(&mut inbound, 150);
        assert_eq!(inbound.flows.capacity(), room);
        // ...which goes once the traffic is a trickle.
        burst(&mut inbound, 1);
        assert!(
            inbound.flows.capacity() <= KEEP,
            "{}",
            inbound.flows.capacity()
        );
    }

    #[test]
    fn qos2_is_surfaced_once_until_pubrel() {
        let mut inbound = Inbound::new(Some(10));
        assert_eq!(
            inbound.on_publish(id(7), QoS::ExactlyOnce),
            Ok(Arrival::New)
        );
        assert_eq!(
            inbound.on_publish(id(7), QoS::ExactlyOnce),
            Ok(Arrival::Duplicate)
        );
        let ack = inbound.acknowledge(id(7), ReasonCode::Success);
        assert!(matches!(ack, Some(Packet::PubRec(_))));
        assert_eq!(
            inbound.on_publish(id(7), QoS::ExactlyOnce),
            Ok(Arrival::AlreadyReceived)
        );
        assert_eq!(inbound.awaiting_release(), vec![id(7)]);
        assert_eq!(inbound.on_pubrel(id(7)), Ok(true));
        assert_eq!(inbound.on_pubrel(id(7)), Ok(false));
        assert_eq!(
            inbound.on_publish(id(7), QoS::ExactlyOnce),
            Ok(Arrival::New),
            "id reused"
        );
    }

    #[test]
    fn receive_maximum_counts_until_the_final_acknowledgement() {
        let mut inbound = Inbound::new(Some(2));
        inbound.on_publish(id(1), QoS::AtLeastOnce).unwrap();
        inbound.on_publish(id(2), QoS::ExactlyOnce).unwrap();
        assert_eq!(
            inbound.on_publish(id(3), QoS::AtLeastOnce),
            Err(ProtocolViolation::ReceiveMaximumExceeded(2))
        );
        inbound.acknowledge(id(2), ReasonCode::Success);
        assert!(
            inbound.on_publish(id(3), QoS::AtLeastOnce).is_err(),
            "PUBREC is not the end"
        );
        inbound.acknowledge(id(1), ReasonCode::Success);
        assert_eq!(
            inbound.on_publish(id(3), QoS::AtLeastOnce),
            Ok(Arrival::New)
        );
    }

    #[test]
    fn pubrec_with_an_error_ends_the_flow() {
        let mut inbound = Inbound::new(Some(1));
        inbound.on_publish(id(1), QoS::ExactlyOnce).unwrap();
        inbound.acknowledge(id(1), ReasonCode::NotAuthorized);
        assert!(inbound.is_empty());
        assert_eq!(
            inbound.on_publish(id(2), QoS::ExactlyOnce),
            Ok(Arrival::New)
        );
    }

    #[test]
    fn carried_over_flows_do_not_count_on_a_new_connection() {
        let mut inbound = Inbound::new(Some(1));
        inbound.restore(&[id(5)]);
        inbound.start(Some(1));
        assert_eq!(
            inbound.on_publish(id(6), QoS::AtLeastOnce),
            Ok(Arrival::New)
        );
        assert_eq!(
            inbound.on_publish(id(5), QoS::ExactlyOnce),
            Ok(Arrival::AlreadyReceived)
        );
    }

    #[test]
    fn conflicting_reuse_of_an_identifier_is_a_violation() {
        let mut inbound = Inbound::new(None);
        inbound.on_publish(id(1), QoS::ExactlyOnce).unwrap();
        assert_eq!(
            inbound.on_publish(id(1), QoS::AtLeastOnce),
            Err(ProtocolViolation::PacketIdInUse(id(1)))
        );
        assert_eq!(
            inbound.on_pubrel(id(1)),
            Err(ProtocolViolation::PacketIdInUse(id(1)))
        );
    }
}
