// SPDX-License-Identifier: BSD-2-Clause
//! SNACK Request (RFC 7143 §11.16). Only used at ErrorRecoveryLevel > 0; encoded so that a
//! session at a higher level (or a test target) has it.

use super::{field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, FINAL_BIT};
use crate::lun::Lun;
use crate::sn::Sn;

const TYPE_MASK: u8 = 0x0f;

u8_enum! {
    /// SNACK types (RFC 7143 §11.16.1).
    pub enum SnackType {
        #[default]
        DataR2t = 0,
        Status = 1,
        DataAck = 2,
        RData = 3,
    }
}

/// SNACK Request (initiator → target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnackRequest {
    pub snack_type: SnackType,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: Sn,
    pub beg_run: u32,
    pub run_length: u32,
}

impl SnackRequest {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::SnackRequest)?;
        Ok(SnackRequest {
            snack_type: SnackType::from(bhs.u8_at(field::SNACK_TYPE) & TYPE_MASK),
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            exp_stat_sn: bhs.exp_stat_sn(),
            beg_run: bhs.u32_at(field::BEG_RUN),
            run_length: bhs.u32_at(field::RUN_LENGTH),
        })
    }
}

impl Header for SnackRequest {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::SnackRequest
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT | (u8::from(self.snack_type) & TYPE_MASK));
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
        bhs.set_u32(field::BEG_RUN, self.beg_run);
        bhs.set_u32(field::RUN_LENGTH, self.run_length);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Digests;
    use super::*;

    #[test]
    fn status_snack_known_bytes() {
        let s = SnackRequest {
            snack_type: SnackType::Status,
            lun: Lun::default(),
            itt: 0xffff_ffff,
            ttt: 0,
            exp_stat_sn: Sn(8),
            beg_run: 5,
            run_length: 2,
        };
        let wire = emit_with(&s, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x10;
        expected[1] = 0x81;
        expected[16..20].copy_from_slice(&[0xff; 4]);
        expected[31] = 8;
        expected[43] = 5;
        expected[47] = 2;
        assert_eq!(wire, expected);
        round_trip(s.into());
    }
}
