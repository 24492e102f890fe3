//! The handshake: CONNECT, then the broker's `accept` (CONNACK advertising our limits,
//! the stored session resumed) or `reject`, and the refusals the session makes itself.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use super::{AcceptOptions, CloseReason, Phase, ServerEvent, ServerSession};
use crate::packet::{ConnAck, Connect, MAX_PACKET_SIZE, Packet, PacketType, ProtocolVersion, QoS};
use crate::property::ConnAckProperties;
use crate::reason::ReasonCode;
use crate::session::alias::{InboundAliases, OutboundAliases};
use crate::session::{SessionError, SessionState, check_size, write};

impl ServerSession {
    /// Accepts the CONNECT reported by [`ServerEvent::Connect`]: sends CONNACK, then
    /// re-sends `resumed`'s unacknowledged messages (PUBLISH with DUP set, PUBREL) in
    /// their order [MQTT-4.4.0-1], and processes packets the client pipelined.
    ///
    /// `resumed` is the stored session, if there is one; it is ignored when the client
    /// asked for Clean Start (then Session Present is 0 [MQTT-3.2.2-2]).
    pub fn accept(
        &mut self,
        options: AcceptOptions,
        resumed: Option<SessionState>,
    ) -> Result<(), SessionError> {
        if !matches!(self.phase, Phase::AwaitingAccept { .. }) {
            return Err(SessionError::InvalidState("accept"));
        }
        let v5 = self.version.is_v5();
        let resumed = if self.clean_start { None } else { resumed };
        let server_keep_alive = if v5 {
            options.server_keep_alive.or_else(|| {
                self.options
                    .max_keep_alive
                    .filter(|&max| self.client_keep_alive == 0 || self.client_keep_alive > max)
            })
        } else {
            None
        };
        let mut connack = ConnAck::new(ReasonCode::Success);
        connack.session_present = resumed.is_some();
        if v5 {
            connack.properties = Box::new(self.connack_properties(options, server_keep_alive));
            let mut packet = Packet::ConnAck(connack);
            if check_size(&packet, self.version, self.client.maximum_packet_size).is_err()
                && let Packet::ConnAck(connack) = &mut packet
            {
                // [MQTT-3.2.2-19] [MQTT-3.2.2-20]
                connack.properties.reason_string = None;
                connack.properties.user_properties.clear();
            }
            write(&mut self.tx, &packet, self.version)?;
        } else {
            write(&mut self.tx, &Packet::ConnAck(connack), self.version)?;
        }

        self.phase = Phase::Connected;
        self.accepted = true;
        self.keep_alive = Duration::from_secs(u64::from(
            server_keep_alive.unwrap_or(self.client_keep_alive),
        ));
        self.inbound_aliases = InboundAliases::new(if v5 {
            self.options.topic_alias_maximum
        } else {
            0
        });
        self.outbound_aliases = OutboundAliases::new(if v5 {
            self.client_topic_alias_maximum
        } else {
            0
        });
        if let Some(state) = resumed {
            self.inbound.restore(&state.inbound_awaiting_release);
            self.outbound.restore(state.outbound, state.next_packet_id);
        }
        self.inbound
            .start(v5.then_some(self.options.receive_maximum.get()));
        self.outbound.start(
            self.client_receive_maximum
                .min(self.options.max_inflight.get()),
        );
        self.flush();
        self.process();
        Ok(())
    }

    fn connack_properties(
        &self,
        options: AcceptOptions,
        server_keep_alive: Option<u16>,
    ) -> ConnAckProperties {
        let ours = &self.options;
        ConnAckProperties {
            session_expiry_interval: options.session_expiry_interval,
            receive_maximum: (ours.receive_maximum != NonZeroU16::MAX)
                .then_some(ours.receive_maximum),
            maximum_qos: (ours.maximum_qos != QoS::ExactlyOnce).then_some(ours.maximum_qos),
            retain_available: (!ours.retain_available).then_some(false),
            maximum_packet_size: (ours.maximum_packet_size.get() < MAX_PACKET_SIZE)
                .then_some(ours.maximum_packet_size),
            assigned_client_identifier: options.assigned_client_identifier,
            topic_alias_maximum: (ours.topic_alias_maximum > 0).then_some(ours.topic_alias_maximum),
            reason_string: options.reason_string,
            user_properties: options.user_properties,
            wildcard_subscription_available: (!ours.wildcard_subscription_available)
                .then_some(false),
            subscription_identifiers_available: (!ours.subscription_identifiers_available)
                .then_some(false),
            shared_subscription_available: (!ours.shared_subscription_available).then_some(false),
            server_keep_alive,
            response_information: options.response_information,
            server_reference: options.server_reference,
            authentication_method: options.authentication_method,
            authentication_data: options.authentication_data,
        }
    }

    /// Refuses the CONNECT reported by [`ServerEvent::Connect`] with `reason` (an error
    /// code CONNACK allows; others become 0x80 Unspecified error). MQTT 3.x clients get
    /// the nearest return code ([`ReasonCode::to_v3_connack`]). The session closes.
    pub fn reject(&mut self, reason: ReasonCode) -> Result<(), SessionError> {
        if !matches!(self.phase, Phase::AwaitingAccept { .. }) {
            return Err(SessionError::InvalidState("reject"));
        }
        self.refuse(connack_code(reason));
        Ok(())
    }

    pub(super) fn refuse(&mut self, reason: ReasonCode) {
        self.send(Packet::ConnAck(ConnAck::new(reason)));
        self.close(CloseReason::Rejected(reason));
    }

    pub(super) fn handle_connect(&mut self, connect: Box<Connect>) {
        self.version = connect.protocol;
        self.clean_start = connect.clean_start;
        self.client_keep_alive = connect.keep_alive;
        let v5 = self.version.is_v5();
        let empty_id = connect.client_id.is_empty();
        let refusal = if (self.version == ProtocolVersion::V3_1 && empty_id)
            || (self.version == ProtocolVersion::V3_1_1 && empty_id && !connect.clean_start)
        {
            Some(ReasonCode::ClientIdentifierNotValid)
        } else if let Some(will) = &connect.will {
            if will.qos > self.options.maximum_qos {
                Some(ReasonCode::QoSNotSupported)
            } else if will.retain && !self.options.retain_available {
                Some(ReasonCode::RetainNotSupported)
            } else {
                None
            }
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.refuse(reason);
            return;
        }
        if v5 {
            let props = &connect.properties;
            self.client.maximum_packet_size = props
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get);
            self.client_receive_maximum = props.receive_maximum.map_or(u16::MAX, NonZeroU16::get);
            self.client_topic_alias_maximum = props.topic_alias_maximum.unwrap_or(0);
            self.session_expiry_interval = props.session_expiry_interval.unwrap_or(0);
        }
        let enhanced_auth = v5 && connect.properties.authentication_method.is_some();
        self.phase = Phase::AwaitingAccept { enhanced_auth };
        self.events.push_back(ServerEvent::Connect(connect));
    }
}

/// `reason` as CONNACK can carry it.
pub(super) fn connack_code(reason: ReasonCode) -> ReasonCode {
    if reason.is_error() && reason.allowed_in(PacketType::ConnAck) {
        reason
    } else {
        ReasonCode::UnspecifiedError
    }
}

/// The protocol level byte of the CONNECT at the front of `bytes`, read without
/// decoding it (to answer a CONNECT that fails to decode in the client's version).
pub(super) fn peek_connect_level(bytes: &[u8]) -> Option<u8> {
    if bytes.first()? >> 4 != PacketType::Connect as u8 {
        return None;
    }
    // Fixed header: type byte, then a Variable Byte Integer of 1 to 4 bytes.
    let mut at = 1;
    loop {
        let byte = *bytes.get(at)?;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return None;
        }
    }
    // Protocol Name: a two-byte length and the name; then the level.
    let name_len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    bytes.get(at + 2 + name_len).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_the_protocol_level_of_a_connect() {
        assert_eq!(
            peek_connect_level(&[0x10, 0x0A, 0, 4, b'M', b'Q', b'T', b'T', 5]),
            Some(5)
        );
        assert_eq!(
            peek_connect_level(&[
                0x10, 0x80, 0x01, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3
            ]),
            Some(3)
        );
        assert_eq!(peek_connect_level(&[0x10, 0x0A, 0, 4, b'M']), None);
        assert_eq!(
            peek_connect_level(&[0x30, 0x0A, 0, 4, b'M', b'Q', b'T', b'T', 5]),
            None
        );
        assert_eq!(
            peek_connect_level(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            None
        );
        assert_eq!(peek_connect_level(&[]), None);
    }

    #[test]
    fn connack_codes_are_ones_connack_allows() {
        assert_eq!(
            connack_code(ReasonCode::PacketTooLarge),
            ReasonCode::PacketTooLarge
        );
        assert_eq!(
            connack_code(ReasonCode::TopicFilterInvalid),
            ReasonCode::UnspecifiedError
        );
        assert_eq!(
            connack_code(ReasonCode::Success),
            ReasonCode::UnspecifiedError
        );
    }
}
