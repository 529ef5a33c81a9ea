// SPDX-License-Identifier: BSD-2-Clause
//! NOP-Out (RFC 7143 §11.18) and NOP-In (§11.19): keepalive pings in both directions.
//!
//! Our ping: NOP-Out with a real ITT and TTT 0xffffffff, answered by a NOP-In with that ITT.
//! The target's ping: NOP-In with ITT 0xffffffff and a TTT other than 0xffffffff, answered by a
//! NOP-Out echoing TTT, LUN and ping data, with ITT 0xffffffff and the I bit.

use super::{field, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT, RESERVED_TAG};
use crate::lun::Lun;
use crate::sn::Sn;

/// NOP-Out (initiator → target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
}

impl Default for NopOut {
    #[inline]
    fn default() -> Self {
        NopOut {
            immediate: true,
            lun: Lun::default(),
            itt: 0,
            ttt: RESERVED_TAG,
            cmd_sn: Sn(0),
            exp_stat_sn: Sn(0),
        }
    }
}

impl NopOut {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::NopOut)?;
        Ok(NopOut {
            immediate: bhs.immediate(),
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
        })
    }

    /// The answer to a target's ping `nop_in` (echo its TTT and LUN; the caller echoes the ping
    /// data as the data segment).
    #[inline]
    pub fn answer(nop_in: &NopIn, cmd_sn: Sn, exp_stat_sn: Sn) -> NopOut {
        NopOut {
            immediate: true,
            lun: nop_in.lun,
            itt: RESERVED_TAG,
            ttt: nop_in.ttt,
            cmd_sn,
            exp_stat_sn,
        }
    }
}

impl Header for NopOut {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::NopOut
    }
    #[inline]
    fn immediate(&self) -> bool {
        self.immediate
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
    }
}

/// NOP-In (target → initiator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopIn {
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub sns: TargetSns,
}

impl Default for NopIn {
    #[inline]
    fn default() -> Self {
        NopIn {
            lun: Lun::default(),
            itt: RESERVED_TAG,
            ttt: RESERVED_TAG,
            sns: TargetSns {
                stat_sn: Sn(0),
                exp_cmd_sn: Sn(0),
                max_cmd_sn: Sn(0),
            },
        }
    }
}

impl NopIn {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::NopIn)?;
        Ok(NopIn {
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            sns: bhs.target_sns(),
        })
    }

    /// The target pings us and wants a NOP-Out back.
    #[inline]
    pub fn is_ping(&self) -> bool {
        self.ttt != RESERVED_TAG
    }
}

impl Header for NopIn {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::NopIn
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_target_sns(self.sns);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Digests;
    use super::*;

    #[test]
    fn nop_in_ping_and_answer() {
        let ping = NopIn {
            lun: Lun::from_number(1).unwrap(),
            itt: RESERVED_TAG,
            ttt: 0x42,
            sns: TargetSns {
                stat_sn: Sn(10),
                exp_cmd_sn: Sn(20),
                max_cmd_sn: Sn(30),
            },
        };
        assert!(ping.is_ping());
        assert!(!NopIn::default().is_ping());
        let wire = emit_with(&ping, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x20;
        expected[1] = 0x80;
        expected[9] = 1;
        expected[16..20].copy_from_slice(&[0xff; 4]);
        expected[23] = 0x42;
        expected[27] = 10;
        expected[31] = 20;
        expected[35] = 30;
        assert_eq!(wire, expected);
        round_trip(ping.clone().into());

        let ans = NopOut::answer(&ping, Sn(20), Sn(11));
        let wire = emit_with(&ans, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x40;
        expected[1] = 0x80;
        expected[9] = 1;
        expected[16..20].copy_from_slice(&[0xff; 4]);
        expected[23] = 0x42;
        expected[27] = 20;
        expected[31] = 11;
        assert_eq!(wire, expected);
        round_trip(ans.into());
        round_trip(NopOut::default().into());
    }
}
