// SPDX-License-Identifier: BSD-2-Clause
//! Login Request (RFC 7143 §11.12) and Login Response (§11.13).
//!
//! The key=value data segment is handled by `crate::text`; this is only the header.

use super::{field, Bhs, BhsMut, Error, Header, Opcode, TargetSns};
use crate::sn::Sn;

const TRANSIT_BIT: u8 = 0x80;
const CONTINUE_BIT: u8 = 0x40;
const CSG_SHIFT: u8 = 2;
const STAGE_MASK: u8 = 0x03;

/// Status-Class 0 (success).
pub const LOGIN_STATUS_SUCCESS: u8 = 0;

/// Login stage (CSG/NSG).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Stage {
    #[default]
    Security,
    Operational,
    FullFeature,
}

impl Stage {
    fn from_bits(v: u8) -> Result<Stage, Error> {
        match v & STAGE_MASK {
            0 => Ok(Stage::Security),
            1 => Ok(Stage::Operational),
            3 => Ok(Stage::FullFeature),
            _ => Err(Error::ReservedStage),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Stage::Security => 0,
            Stage::Operational => 1,
            Stage::FullFeature => 3,
        }
    }
}

fn login_flags(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> u8 {
    let mut f = (csg.bits() << CSG_SHIFT) | nsg.bits();
    if transit {
        f |= TRANSIT_BIT;
    }
    if cont {
        f |= CONTINUE_BIT;
    }
    f
}

/// (transit, continue, csg, nsg). NSG is only defined with T set; without it a reserved value
/// there is tolerated and read as CSG.
fn parse_login_flags(flags: u8) -> Result<(bool, bool, Stage, Stage), Error> {
    let transit = flags & TRANSIT_BIT != 0;
    let csg = Stage::from_bits(flags >> CSG_SHIFT)?;
    let nsg = match Stage::from_bits(flags) {
        Ok(s) => s,
        Err(_) if !transit => csg,
        Err(e) => return Err(e),
    };
    Ok((transit, flags & CONTINUE_BIT != 0, csg, nsg))
}

/// Login Request (initiator → target). Always sent with the I bit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: we want to move to `nsg`.
    pub transit: bool,
    /// C: the text data continues in the next PDU.
    pub continue_bit: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
}

impl LoginRequest {
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::LoginRequest)?;
        let (transit, continue_bit, csg, nsg) = parse_login_flags(bhs.flags())?;
        let isid = bhs.array(field::ISID);
        Ok(LoginRequest {
            transit,
            continue_bit,
            csg,
            nsg,
            version_max: bhs.u8_at(field::VERSION_MAX),
            version_min: bhs.u8_at(field::VERSION_MIN),
            isid,
            tsih: bhs.u16_at(field::TSIH),
            itt: bhs.itt(),
            cid: bhs.u16_at(field::CID),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
        })
    }
}

impl Header for LoginRequest {
    fn opcode(&self) -> Opcode {
        Opcode::LoginRequest
    }
    fn immediate(&self) -> bool {
        true
    }
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(login_flags(
            self.transit,
            self.continue_bit,
            self.csg,
            self.nsg,
        ));
        bhs.set_u8(field::VERSION_MAX, self.version_max);
        bhs.set_u8(field::VERSION_MIN, self.version_min);
        bhs.put(field::ISID, &self.isid);
        bhs.set_u16(field::TSIH, self.tsih);
        bhs.set_itt(self.itt);
        bhs.set_u16(field::CID, self.cid);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
    }
}

/// Login Response (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub continue_bit: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub sns: TargetSns,
    /// 0 success, 1 redirection, 2 initiator error, 3 target error (RFC 7143 §11.13.5).
    pub status_class: u8,
    pub status_detail: u8,
}

impl LoginResponse {
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::LoginResponse)?;
        let (transit, continue_bit, csg, nsg) = parse_login_flags(bhs.flags())?;
        let isid = bhs.array(field::ISID);
        Ok(LoginResponse {
            transit,
            continue_bit,
            csg,
            nsg,
            version_max: bhs.u8_at(field::VERSION_MAX),
            version_active: bhs.u8_at(field::VERSION_MIN),
            isid,
            tsih: bhs.u16_at(field::TSIH),
            itt: bhs.itt(),
            sns: bhs.target_sns(),
            status_class: bhs.u8_at(field::STATUS_CLASS),
            status_detail: bhs.u8_at(field::STATUS_DETAIL),
        })
    }
}

impl Header for LoginResponse {
    fn opcode(&self) -> Opcode {
        Opcode::LoginResponse
    }
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(login_flags(
            self.transit,
            self.continue_bit,
            self.csg,
            self.nsg,
        ));
        bhs.set_u8(field::VERSION_MAX, self.version_max);
        bhs.set_u8(field::VERSION_MIN, self.version_active);
        bhs.put(field::ISID, &self.isid);
        bhs.set_u16(field::TSIH, self.tsih);
        bhs.set_itt(self.itt);
        bhs.set_target_sns(self.sns);
        bhs.set_u8(field::STATUS_CLASS, self.status_class);
        bhs.set_u8(field::STATUS_DETAIL, self.status_detail);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Digests, Pdu};
    use super::*;

    #[test]
    fn first_login_request_known_bytes() {
        // Operational stage straight to full feature, as we log in without CHAP.
        let req = LoginRequest {
            transit: true,
            continue_bit: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a],
            tsih: 0,
            itt: 0,
            cid: 1,
            cmd_sn: Sn(1),
            exp_stat_sn: Sn(0),
        };
        let wire = emit_with(&req, b"a=b\0", Digests::default());
        let mut expected = [0u8; 52];
        expected[0] = 0x43;
        expected[1] = 0x87;
        expected[7] = 4;
        expected[8..14].copy_from_slice(&[0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
        expected[21] = 1;
        expected[27] = 1;
        expected[48..52].copy_from_slice(b"a=b\0");
        assert_eq!(wire, expected);
        round_trip(req.into());
    }

    #[test]
    fn login_response_round_trip_and_known_bytes() {
        let resp = LoginResponse {
            transit: true,
            continue_bit: false,
            csg: Stage::Security,
            nsg: Stage::Operational,
            version_max: 0,
            version_active: 0,
            isid: [1, 2, 3, 4, 5, 6],
            tsih: 0x0102,
            itt: 9,
            sns: TargetSns {
                stat_sn: Sn(0x55),
                exp_cmd_sn: Sn(2),
                max_cmd_sn: Sn(3),
            },
            status_class: 2,
            status_detail: 1,
        };
        let wire = emit_with(&resp, &[], Digests::default());
        assert_eq!(wire[0], 0x23);
        assert_eq!(wire[1], 0x81);
        assert_eq!(&wire[14..16], &[1, 2]);
        assert_eq!(&wire[36..38], &[2, 1]);
        assert_eq!(&wire[38..48], &[0; 10]);
        round_trip(resp.clone().into());
        round_trip(
            LoginResponse {
                continue_bit: true,
                transit: false,
                nsg: Stage::Security,
                ..resp
            }
            .into(),
        );
    }

    #[test]
    fn reserved_stage_is_refused() {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x23;
        bhs[1] = 0x80 | (2 << 2) | 3;
        assert_eq!(Pdu::parse(&bhs), Err(Error::ReservedStage));
        bhs[1] = 0x80 | (1 << 2) | 2;
        assert_eq!(Pdu::parse(&bhs), Err(Error::ReservedStage));
        // Without T the NSG field is not defined.
        bhs[1] = (1 << 2) | 2;
        let Ok(Pdu::LoginResponse(r)) = Pdu::parse(&bhs) else {
            panic!("Login Response expected");
        };
        assert_eq!(r.nsg, Stage::Operational);
    }
}
