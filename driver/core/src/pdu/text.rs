// SPDX-License-Identifier: BSD-2-Clause
//! Text Request (RFC 7143 §11.10) and Text Response (§11.11). Keys live in `crate::text`.

use super::{field, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT};
use crate::lun::Lun;
use crate::sn::Sn;

const CONTINUE_BIT: u8 = 0x40;

fn flags(final_bit: bool, continue_bit: bool) -> u8 {
    (if final_bit { FINAL_BIT } else { 0 }) | (if continue_bit { CONTINUE_BIT } else { 0 })
}

/// Text Request (initiator → target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_bit: bool,
    /// C: the text continues in the next PDU.
    pub continue_bit: bool,
    pub lun: Lun,
    pub itt: u32,
    /// [`super::RESERVED_TAG`] to start, or the target's TTT to continue.
    pub ttt: u32,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
}

impl TextRequest {
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::TextRequest)?;
        Ok(TextRequest {
            immediate: bhs.immediate(),
            final_bit: bhs.final_bit(),
            continue_bit: bhs.flags() & CONTINUE_BIT != 0,
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
        })
    }
}

impl Header for TextRequest {
    fn opcode(&self) -> Opcode {
        Opcode::TextRequest
    }
    fn immediate(&self) -> bool {
        self.immediate
    }
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(flags(self.final_bit, self.continue_bit));
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
    }
}

/// Text Response (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextResponse {
    pub final_bit: bool,
    pub continue_bit: bool,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub sns: TargetSns,
}

impl TextResponse {
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::TextResponse)?;
        Ok(TextResponse {
            final_bit: bhs.final_bit(),
            continue_bit: bhs.flags() & CONTINUE_BIT != 0,
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            sns: bhs.target_sns(),
        })
    }
}

impl Header for TextResponse {
    fn opcode(&self) -> Opcode {
        Opcode::TextResponse
    }
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(flags(self.final_bit, self.continue_bit));
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_target_sns(self.sns);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Digests, RESERVED_TAG};
    use super::*;

    #[test]
    fn send_targets_request_known_bytes() {
        let req = TextRequest {
            immediate: true,
            final_bit: true,
            continue_bit: false,
            lun: Lun::default(),
            itt: 2,
            ttt: RESERVED_TAG,
            cmd_sn: Sn(3),
            exp_stat_sn: Sn(4),
        };
        let data = b"SendTargets=All\0";
        let wire = emit_with(&req, data, Digests::default());
        let mut expected = [0u8; 64];
        expected[0] = 0x44;
        expected[1] = 0x80;
        expected[7] = 16;
        expected[19] = 2;
        expected[20..24].copy_from_slice(&[0xff; 4]);
        expected[27] = 3;
        expected[31] = 4;
        expected[48..64].copy_from_slice(data);
        assert_eq!(wire, expected);
        round_trip(req.into());
    }

    #[test]
    fn text_response_round_trip() {
        let resp = TextResponse {
            final_bit: false,
            continue_bit: true,
            lun: Lun::default(),
            itt: 2,
            ttt: 0x77,
            sns: TargetSns {
                stat_sn: Sn(5),
                exp_cmd_sn: Sn(6),
                max_cmd_sn: Sn(7),
            },
        };
        let wire = emit_with(&resp, &[], Digests::default());
        assert_eq!(wire[1], 0x40);
        round_trip(resp.into());
    }
}
