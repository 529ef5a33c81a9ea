// SPDX-License-Identifier: BSD-2-Clause
//! Asynchronous Message (RFC 7143 §11.9): the target tells us about an event.
//!
//! isboot reconnected on every one of these; the session decides per event (a logout request
//! gets a Logout, a SCSI event carries sense data in the data segment, see
//! [`super::parse_response_data`]).

use super::{
    field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT, RESERVED_TAG,
};
use crate::lun::Lun;

u8_enum! {
    /// AsyncEvent codes (RFC 7143 §11.9.1).
    pub enum AsyncEvent {
        /// SCSI asynchronous event; sense data in the data segment.
        #[default]
        ScsiEvent = 0,
        /// Log out within Parameter3 seconds.
        LogoutRequest = 1,
        /// The target drops connection Parameter1; wait Parameter2 (Time2Wait) before
        /// reconnecting, state kept Parameter3 (Time2Retain) seconds.
        DropConnection = 2,
        /// The target drops all connections; Parameter2/3 as above.
        DropAllConnections = 3,
        /// Renegotiate operational parameters (a Text Request).
        RequestNegotiation = 4,
        /// iSER or other transport-specific event.
        TransportSpecific = 5,
        VendorSpecific = 255,
    }
}

/// Asynchronous Message (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: Lun,
    pub sns: TargetSns,
    pub event: AsyncEvent,
    pub vcode: u8,
    pub parameter1: u16,
    pub parameter2: u16,
    pub parameter3: u16,
}

impl AsyncMessage {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::AsyncMessage)?;
        Ok(AsyncMessage {
            lun: bhs.lun(),
            sns: bhs.target_sns(),
            event: AsyncEvent::from(bhs.u8_at(field::ASYNC_EVENT)),
            vcode: bhs.u8_at(field::ASYNC_VCODE),
            parameter1: bhs.u16_at(field::PARAMETER1),
            parameter2: bhs.u16_at(field::PARAMETER2),
            parameter3: bhs.u16_at(field::PARAMETER3),
        })
    }
}

impl Header for AsyncMessage {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::AsyncMessage
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_lun(self.lun);
        bhs.set_itt(RESERVED_TAG);
        bhs.set_target_sns(self.sns);
        bhs.set_u8(field::ASYNC_EVENT, u8::from(self.event));
        bhs.set_u8(field::ASYNC_VCODE, self.vcode);
        bhs.set_u16(field::PARAMETER1, self.parameter1);
        bhs.set_u16(field::PARAMETER2, self.parameter2);
        bhs.set_u16(field::PARAMETER3, self.parameter3);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Digests;
    use super::*;
    use crate::sn::Sn;

    #[test]
    fn logout_request_event_known_bytes() {
        let m = AsyncMessage {
            lun: Lun::default(),
            sns: TargetSns {
                stat_sn: Sn(7),
                exp_cmd_sn: Sn(8),
                max_cmd_sn: Sn(9),
            },
            event: AsyncEvent::LogoutRequest,
            vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: 5,
        };
        let wire = emit_with(&m, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x32;
        expected[1] = 0x80;
        expected[16..20].copy_from_slice(&[0xff; 4]);
        expected[27] = 7;
        expected[31] = 8;
        expected[35] = 9;
        expected[36] = 1;
        expected[43] = 5;
        assert_eq!(wire, expected);
        round_trip(m.clone().into());
        round_trip(
            AsyncMessage {
                event: AsyncEvent::Unknown(0x80),
                parameter1: 1,
                parameter2: 2,
                ..m
            }
            .into(),
        );
    }
}
