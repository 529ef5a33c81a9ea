// SPDX-License-Identifier: BSD-2-Clause
//! SCSI Data-Out (RFC 7143 §11.7), SCSI Data-In (§11.7) and Ready To Transfer (§11.8).
//!
//! Parsing only decodes fields; whether an offset, length or DataSN fits the command is the
//! session's check (it knows the buffer).

use super::scsi::{Residual, OVERFLOW_BIT, UNDERFLOW_BIT};
use super::{field, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT};
use crate::lun::Lun;
use crate::sn::Sn;

const ACK_BIT: u8 = 0x40;
const STATUS_BIT: u8 = 0x01;

/// SCSI Data-Out (initiator → target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataOut {
    /// F: last PDU of this sequence (unsolicited burst or R2T).
    pub final_bit: bool,
    pub lun: Lun,
    pub itt: u32,
    /// The R2T's TTT, or [`super::RESERVED_TAG`] for unsolicited data.
    pub ttt: u32,
    pub exp_stat_sn: Sn,
    pub data_sn: Sn,
    pub buffer_offset: u32,
}

impl DataOut {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::DataOut)?;
        Ok(DataOut {
            final_bit: bhs.final_bit(),
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            exp_stat_sn: bhs.exp_stat_sn(),
            data_sn: bhs.sn_at(field::DATA_SN),
            buffer_offset: bhs.u32_at(field::BUFFER_OFFSET),
        })
    }
}

impl Header for DataOut {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::DataOut
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(if self.final_bit { FINAL_BIT } else { 0 });
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
        bhs.set_sn(field::DATA_SN, self.data_sn);
        bhs.set_u32(field::BUFFER_OFFSET, self.buffer_offset);
    }
}

/// SCSI Data-In (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataIn {
    /// F: last PDU of the sequence.
    pub final_bit: bool,
    /// A: the target asks for a DataACK SNACK (ERL > 0 only).
    pub ack: bool,
    /// S bit with the SCSI status: the command is complete and no SCSI Response follows.
    pub status: Option<u8>,
    /// Residual, meaningful only with `status` (the O/U bits are ignored otherwise).
    pub residual: Residual,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    /// Valid only with `status`.
    pub sns: TargetSns,
    pub data_sn: Sn,
    pub buffer_offset: u32,
}

impl DataIn {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::DataIn)?;
        let flags = bhs.flags();
        let s = flags & STATUS_BIT != 0;
        if s && flags & FINAL_BIT == 0 {
            return Err(Error::StatusWithoutFinal);
        }
        let residual = if s {
            Residual::parse(
                flags,
                OVERFLOW_BIT,
                UNDERFLOW_BIT,
                bhs.u32_at(field::RESIDUAL),
            )?
        } else {
            Residual::None
        };
        Ok(DataIn {
            final_bit: flags & FINAL_BIT != 0,
            ack: flags & ACK_BIT != 0,
            status: s.then(|| bhs.u8_at(field::STATUS)),
            residual,
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            sns: bhs.target_sns(),
            data_sn: bhs.sn_at(field::DATA_SN),
            buffer_offset: bhs.u32_at(field::BUFFER_OFFSET),
        })
    }
}

impl Header for DataIn {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::DataIn
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        let mut flags = 0;
        if self.final_bit {
            flags |= FINAL_BIT;
        }
        if self.ack {
            flags |= ACK_BIT;
        }
        if let Some(status) = self.status {
            let (rf, count) = self.residual.encode(OVERFLOW_BIT, UNDERFLOW_BIT);
            flags |= STATUS_BIT | rf;
            bhs.set_u8(field::STATUS, status);
            bhs.set_u32(field::RESIDUAL, count);
        }
        bhs.set_flags(flags);
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_target_sns(self.sns);
        bhs.set_sn(field::DATA_SN, self.data_sn);
        bhs.set_u32(field::BUFFER_OFFSET, self.buffer_offset);
    }
}

/// Ready To Transfer (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct R2t {
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub sns: TargetSns,
    pub r2t_sn: Sn,
    pub buffer_offset: u32,
    pub desired_len: u32,
}

impl R2t {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::R2t)?;
        Ok(R2t {
            lun: bhs.lun(),
            itt: bhs.itt(),
            ttt: bhs.u32_at(field::TTT),
            sns: bhs.target_sns(),
            r2t_sn: bhs.sn_at(field::R2T_SN),
            buffer_offset: bhs.u32_at(field::BUFFER_OFFSET),
            desired_len: bhs.u32_at(field::DESIRED_LEN),
        })
    }
}

impl Header for R2t {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::R2t
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::TTT, self.ttt);
        bhs.set_target_sns(self.sns);
        bhs.set_sn(field::R2T_SN, self.r2t_sn);
        bhs.set_u32(field::BUFFER_OFFSET, self.buffer_offset);
        bhs.set_u32(field::DESIRED_LEN, self.desired_len);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Digests, Pdu, RESERVED_TAG};
    use super::*;

    #[test]
    fn data_out_known_bytes() {
        let d = DataOut {
            final_bit: true,
            lun: Lun::from_number(1).unwrap(),
            itt: 5,
            ttt: 0x0a0b_0c0d,
            exp_stat_sn: Sn(9),
            data_sn: Sn(2),
            buffer_offset: 0x2000,
        };
        let wire = emit_with(&d, &[0xde, 0xad], Digests::default());
        let mut expected = [0u8; 52];
        expected[0] = 0x05;
        expected[1] = 0x80;
        expected[7] = 2;
        expected[9] = 1;
        expected[19] = 5;
        expected[20..24].copy_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d]);
        expected[31] = 9;
        expected[39] = 2;
        expected[40..44].copy_from_slice(&[0, 0, 0x20, 0]);
        expected[48..50].copy_from_slice(&[0xde, 0xad]);
        assert_eq!(wire, expected);
        round_trip(d.into());
        round_trip(
            DataOut {
                final_bit: false,
                ttt: RESERVED_TAG,
                ..DataOut::default()
            }
            .into(),
        );
    }

    #[test]
    fn data_in_with_status_known_bytes() {
        let d = DataIn {
            final_bit: true,
            ack: false,
            status: Some(0),
            residual: Residual::Underflow(0x100),
            itt: 3,
            ttt: RESERVED_TAG,
            sns: TargetSns {
                stat_sn: Sn(0x10),
                exp_cmd_sn: Sn(0x20),
                max_cmd_sn: Sn(0x30),
            },
            data_sn: Sn(1),
            buffer_offset: 8192,
            ..DataIn::default()
        };
        let wire = emit_with(&d, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x25;
        expected[1] = 0x80 | 0x02 | 0x01;
        expected[19] = 3;
        expected[20..24].copy_from_slice(&[0xff; 4]);
        expected[27] = 0x10;
        expected[31] = 0x20;
        expected[35] = 0x30;
        expected[39] = 1;
        expected[40..44].copy_from_slice(&[0, 0, 0x20, 0]);
        expected[44..48].copy_from_slice(&[0, 0, 1, 0]);
        assert_eq!(wire, expected);
        round_trip(d.clone().into());
        round_trip(
            DataIn {
                status: Some(2),
                residual: Residual::Overflow(7),
                ack: true,
                ..d.clone()
            }
            .into(),
        );
        round_trip(
            DataIn {
                final_bit: false,
                status: None,
                residual: Residual::None,
                ..d
            }
            .into(),
        );
    }

    #[test]
    fn data_in_flag_rules() {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x25;
        bhs[1] = 0x01; // S without F
        assert_eq!(Pdu::parse(&bhs), Err(Error::StatusWithoutFinal));
        bhs[1] = 0x80 | 0x01 | 0x04 | 0x02;
        assert_eq!(Pdu::parse(&bhs), Err(Error::OverflowAndUnderflow));
        // Without S the residual bits carry no meaning and are ignored.
        bhs[1] = 0x04;
        bhs[44..48].copy_from_slice(&[0, 0, 0, 9]);
        let Ok(Pdu::DataIn(d)) = Pdu::parse(&bhs) else {
            panic!("Data-In expected");
        };
        assert_eq!(d.status, None);
        assert_eq!(d.residual, Residual::None);
    }

    #[test]
    fn r2t_known_bytes_and_round_trip() {
        let r = R2t {
            lun: Lun::default(),
            itt: 0x11,
            ttt: 0x22,
            sns: TargetSns {
                stat_sn: Sn(0x33),
                exp_cmd_sn: Sn(0x44),
                max_cmd_sn: Sn(0x55),
            },
            r2t_sn: Sn(0x66),
            buffer_offset: 0x77,
            desired_len: 0x88,
        };
        let wire = emit_with(&r, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x31;
        expected[1] = 0x80;
        for (at, v) in [
            (19, 0x11),
            (23, 0x22),
            (27, 0x33),
            (31, 0x44),
            (35, 0x55),
            (39, 0x66),
            (43, 0x77),
            (47, 0x88),
        ] {
            expected[at] = v;
        }
        assert_eq!(wire, expected);
        round_trip(r.into());
    }
}
