// SPDX-License-Identifier: BSD-2-Clause
//! Reject (RFC 7143 §11.17): the target refuses a PDU; the data segment holds the rejected
//! PDU's header, whose ITT tells the session which task was hit.

use super::{
    field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, TargetSns, BHS_LEN, FINAL_BIT, RESERVED_TAG,
};
use crate::sn::Sn;

u8_enum! {
    /// Reject reason codes (RFC 7143 §11.17.1).
    pub enum RejectReason {
        DataDigestError = 0x02,
        SnackReject = 0x03,
        #[default]
        ProtocolError = 0x04,
        CommandNotSupported = 0x05,
        ImmediateCommandReject = 0x06,
        TaskInProgress = 0x07,
        InvalidDataAck = 0x08,
        InvalidPduField = 0x09,
        LongOperationReject = 0x0a,
        NegotiationReset = 0x0b,
        WaitingForLogout = 0x0c,
    }
}

/// Reject (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub sns: TargetSns,
    /// DataSN/R2TSN to be retransmitted (data SNACK rejects), else 0.
    pub data_sn: Sn,
}

impl Reject {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::Reject)?;
        Ok(Reject {
            reason: RejectReason::from(bhs.u8_at(field::REJECT_REASON)),
            sns: bhs.target_sns(),
            data_sn: bhs.sn_at(field::DATA_SN),
        })
    }

    /// The rejected PDU's BHS from the Reject's data segment.
    #[inline]
    pub fn rejected_header(data: &[u8]) -> Result<Bhs<'_>, Error> {
        Bhs::new_checked(data).map_err(|_| Error::Truncated {
            needed: BHS_LEN,
            got: data.len(),
        })
    }
}

impl Header for Reject {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::Reject
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_u8(field::REJECT_REASON, u8::from(self.reason));
        bhs.set_itt(RESERVED_TAG);
        bhs.set_target_sns(self.sns);
        bhs.set_sn(field::DATA_SN, self.data_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Digests, Opcode, RawPdu};
    use super::*;

    #[test]
    fn reject_carries_the_rejected_header() {
        let r = Reject {
            reason: RejectReason::InvalidPduField,
            sns: TargetSns {
                stat_sn: Sn(1),
                exp_cmd_sn: Sn(2),
                max_cmd_sn: Sn(3),
            },
            data_sn: Sn(0),
        };
        let mut bad = [0u8; 48];
        bad[0] = 0x01;
        bad[16..20].copy_from_slice(&[0, 0, 0, 0x2a]);
        let wire = emit_with(&r, &bad, Digests::default());
        assert_eq!(&wire[..4], &[0x3f, 0x80, 0x09, 0]);
        assert_eq!(&wire[16..20], &[0xff; 4]);
        let (raw, _) = RawPdu::split(&wire, Digests::default(), 8192).unwrap();
        let h = Reject::rejected_header(raw.data).unwrap();
        assert_eq!(h.opcode(), Opcode::ScsiCommand);
        assert_eq!(h.itt(), 0x2a);
        assert!(Reject::rejected_header(&bad[..40]).is_err());
        round_trip(r.into());
    }
}
