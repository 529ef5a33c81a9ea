// SPDX-License-Identifier: BSD-2-Clause
//! Logout Request (RFC 7143 §11.14) and Logout Response (§11.15).

use super::{field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT};
use crate::sn::Sn;

const REASON_MASK: u8 = 0x7f;

u8_enum! {
    /// Logout reason codes (RFC 7143 §11.14.1).
    pub enum LogoutReason {
        #[default]
        CloseSession = 0,
        CloseConnection = 1,
        RemoveConnectionForRecovery = 2,
    }
}

u8_enum! {
    /// Logout response codes (RFC 7143 §11.15.1).
    pub enum LogoutResponseCode {
        #[default]
        Success = 0,
        CidNotFound = 1,
        RecoveryNotSupported = 2,
        CleanupFailed = 3,
    }
}

/// Logout Request (initiator → target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: LogoutReason,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
}

impl Default for LogoutRequest {
    #[inline]
    fn default() -> Self {
        LogoutRequest {
            immediate: true,
            reason: LogoutReason::CloseSession,
            itt: 0,
            cid: 0,
            cmd_sn: Sn(0),
            exp_stat_sn: Sn(0),
        }
    }
}

impl LogoutRequest {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::LogoutRequest)?;
        Ok(LogoutRequest {
            immediate: bhs.immediate(),
            reason: LogoutReason::from(bhs.u8_at(field::LOGOUT_REASON) & REASON_MASK),
            itt: bhs.itt(),
            cid: bhs.u16_at(field::CID),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
        })
    }
}

impl Header for LogoutRequest {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::LogoutRequest
    }
    #[inline]
    fn immediate(&self) -> bool {
        self.immediate
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT | (u8::from(self.reason) & REASON_MASK));
        bhs.set_itt(self.itt);
        bhs.set_u16(field::CID, self.cid);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
    }
}

/// Logout Response (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutResponse {
    pub response: LogoutResponseCode,
    pub itt: u32,
    pub sns: TargetSns,
    /// Seconds to wait before reconnecting (recovery logouts).
    pub time2wait: u16,
    /// Seconds the target keeps the connection's state.
    pub time2retain: u16,
}

impl LogoutResponse {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::LogoutResponse)?;
        Ok(LogoutResponse {
            response: LogoutResponseCode::from(bhs.u8_at(field::RESPONSE)),
            itt: bhs.itt(),
            sns: bhs.target_sns(),
            time2wait: bhs.u16_at(field::TIME2WAIT),
            time2retain: bhs.u16_at(field::TIME2RETAIN),
        })
    }
}

impl Header for LogoutResponse {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::LogoutResponse
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_u8(field::RESPONSE, u8::from(self.response));
        bhs.set_itt(self.itt);
        bhs.set_target_sns(self.sns);
        bhs.set_u16(field::TIME2WAIT, self.time2wait);
        bhs.set_u16(field::TIME2RETAIN, self.time2retain);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Digests;
    use super::*;

    #[test]
    fn logout_request_known_bytes() {
        let req = LogoutRequest {
            immediate: true,
            reason: LogoutReason::CloseSession,
            itt: 0x0c,
            cid: 1,
            cmd_sn: Sn(0x1000),
            exp_stat_sn: Sn(0x2000),
        };
        let wire = emit_with(&req, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x46;
        expected[1] = 0x80;
        expected[19] = 0x0c;
        expected[21] = 1;
        expected[24..28].copy_from_slice(&[0, 0, 0x10, 0]);
        expected[28..32].copy_from_slice(&[0, 0, 0x20, 0]);
        assert_eq!(wire, expected);
        round_trip(req.into());
    }

    #[test]
    fn logout_response_round_trip() {
        let resp = LogoutResponse {
            response: LogoutResponseCode::CidNotFound,
            itt: 3,
            sns: TargetSns {
                stat_sn: Sn(4),
                exp_cmd_sn: Sn(5),
                max_cmd_sn: Sn(6),
            },
            time2wait: 2,
            time2retain: 20,
        };
        let wire = emit_with(&resp, &[], Digests::default());
        assert_eq!(wire[2], 1);
        assert_eq!(&wire[40..44], &[0, 2, 0, 20]);
        round_trip(resp.into());
    }
}
