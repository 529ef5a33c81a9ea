// SPDX-License-Identifier: BSD-2-Clause
//! SCSI Command (RFC 7143 §11.3, with the AHS of §11.2.2) and SCSI Response (§11.4).
//!
//! CDBs longer than 16 bytes go into an Extended CDB AHS (isboot panicked on them); a
//! bidirectional command carries its expected read length in a second AHS. The response's
//! data segment (SenseLength, sense data, response data) is bounded by the segment.

use super::{field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT};
use crate::lun::Lun;
use crate::mem::SmallBytes;
use crate::sn::Sn;
use core::fmt;

const READ_BIT: u8 = 0x40;
const WRITE_BIT: u8 = 0x20;
const ATTR_MASK: u8 = 0x07;

const BIDI_OVERFLOW_BIT: u8 = 0x10;
const BIDI_UNDERFLOW_BIT: u8 = 0x08;
pub(super) const OVERFLOW_BIT: u8 = 0x04;
pub(super) const UNDERFLOW_BIT: u8 = 0x02;

const AHS_TYPE_EXTENDED_CDB: u8 = 1;
const AHS_TYPE_BIDI_READ_LEN: u8 = 2;
/// AHSLength of the bidirectional read length AHS: reserved byte + 4-byte length.
const BIDI_AHS_LENGTH: u16 = 5;

/// The longest CDB we carry: SPC's variable-length CDB maximum.
pub const MAX_CDB_LEN: usize = 260;

u8_enum! {
    /// Task attribute (ATTR field, SAM task attributes).
    pub enum TaskAttr {
        Untagged = 0,
        #[default]
        Simple = 1,
        Ordered = 2,
        HeadOfQueue = 3,
        Aca = 4,
    }
}

/// A CDB of 1..=[`MAX_CDB_LEN`] bytes: up to 16 held inline, longer ones (rare: variable-length
/// CDBs) on the heap, so that a request stays small enough to move cheaply.
///
/// The BHS's CDB field is always 16 bytes, so a parsed CDB is at least 16 bytes long (the
/// wire does not say how many of them the command uses; the opcode does).
#[derive(Clone, PartialEq, Eq)]
pub struct Cdb {
    bytes: SmallBytes<{ field::CDB_LEN }>,
}

impl Cdb {
    /// A copy of `cdb`; [`Error::NoMemory`] when a CDB longer than 16 bytes finds no memory.
    #[inline]
    pub fn new(cdb: &[u8]) -> Result<Cdb, Error> {
        if cdb.is_empty() || cdb.len() > MAX_CDB_LEN {
            return Err(Error::BadCdbLength(cdb.len()));
        }
        let bytes = SmallBytes::new(cdb).map_err(|_| Error::NoMemory)?;
        Ok(Cdb { bytes })
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Bytes beyond the 16 that fit in the BHS.
    #[inline]
    fn extension(&self) -> &[u8] {
        self.as_slice().get(field::CDB_LEN..).unwrap_or(&[])
    }
}

impl Default for Cdb {
    /// A 6-byte all-zero CDB (TEST UNIT READY).
    #[inline]
    fn default() -> Self {
        Cdb {
            bytes: SmallBytes::inline(&[0; 6]).unwrap_or(SmallBytes::EMPTY),
        }
    }
}

impl fmt::Debug for Cdb {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cdb({:02x?})", self.as_slice())
    }
}

/// SCSI Command (initiator → target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// F: no unsolicited Data-Out follows this PDU.
    pub final_bit: bool,
    pub read: bool,
    pub write: bool,
    pub attr: TaskAttr,
    pub lun: Lun,
    pub itt: u32,
    /// Expected Data Transfer Length (the write length for bidirectional commands).
    pub expected_data_len: u32,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
    pub cdb: Cdb,
    /// Bidirectional Read Expected Data Transfer Length (sent as an AHS).
    pub bidi_read_len: Option<u32>,
}

impl ScsiCommand {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>, ahs: &[u8]) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::ScsiCommand)?;
        let flags = bhs.u8_at(field::FLAGS);
        let mut cdb_bytes = [0u8; MAX_CDB_LEN];
        if let Some(head) = cdb_bytes.get_mut(..field::CDB_LEN) {
            head.copy_from_slice(&bhs.array::<{ field::CDB_LEN }>(field::CDB));
        }
        let mut cdb_len = field::CDB_LEN;
        let mut bidi_read_len = None;
        let mut seen_ext = false;
        // `off` stays below `ahs.len()` inside the loop, so the saturating sums are exact.
        let mut off = 0usize;
        while off < ahs.len() {
            let Some(&[l0, l1, ahs_type, _]) = ahs.get(off..off.saturating_add(4)) else {
                return Err(Error::AhsOverrun { offset: off });
            };
            let length = usize::from(u16::from_be_bytes([l0, l1]));
            // AHSLength counts the bytes after AHSType (the type-specific byte and the rest).
            let start = off.saturating_add(3);
            let body = ahs
                .get(start..start.saturating_add(length))
                .ok_or(Error::AhsOverrun { offset: off })?;
            match ahs_type {
                AHS_TYPE_EXTENDED_CDB if !seen_ext && length >= 2 => {
                    let ext = body.get(1..).unwrap_or(&[]);
                    let total = field::CDB_LEN.saturating_add(ext.len());
                    let dst = cdb_bytes
                        .get_mut(field::CDB_LEN..total)
                        .ok_or(Error::BadCdbLength(total))?;
                    dst.copy_from_slice(ext);
                    cdb_len = total;
                    seen_ext = true;
                }
                AHS_TYPE_BIDI_READ_LEN if bidi_read_len.is_none() => match body {
                    &[_, a, b, c, d] => bidi_read_len = Some(u32::from_be_bytes([a, b, c, d])),
                    _ => return Err(Error::BadAhs { ahs_type }),
                },
                other => return Err(Error::BadAhs { ahs_type: other }),
            }
            off = off.saturating_add(super::padded_len(3 + length));
        }
        Ok(ScsiCommand {
            immediate: bhs.immediate(),
            final_bit: bhs.final_bit(),
            read: flags & READ_BIT != 0,
            write: flags & WRITE_BIT != 0,
            attr: TaskAttr::from(flags & ATTR_MASK),
            lun: bhs.lun(),
            itt: bhs.itt(),
            expected_data_len: bhs.u32_at(field::EXPECTED_DATA_LEN),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
            cdb: Cdb::new(cdb_bytes.get(..cdb_len).unwrap_or_default())?,
            bidi_read_len,
        })
    }

    #[inline]
    fn ext_cdb_ahs_len(&self) -> usize {
        let ext = self.cdb.extension().len();
        if ext == 0 {
            0
        } else {
            super::padded_len(ext.saturating_add(4))
        }
    }
}

impl Header for ScsiCommand {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::ScsiCommand
    }
    #[inline]
    fn immediate(&self) -> bool {
        self.immediate
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        let mut flags = u8::from(self.attr) & ATTR_MASK;
        if self.final_bit {
            flags |= FINAL_BIT;
        }
        if self.read {
            flags |= READ_BIT;
        }
        if self.write {
            flags |= WRITE_BIT;
        }
        bhs.set_flags(flags);
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::EXPECTED_DATA_LEN, self.expected_data_len);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
        let cdb = self.cdb.as_slice();
        bhs.put(field::CDB, cdb.get(..field::CDB_LEN).unwrap_or(cdb));
    }
    #[inline]
    fn ahs_len(&self) -> usize {
        let bidi = if self.bidi_read_len.is_some() { 8 } else { 0 };
        self.ext_cdb_ahs_len().saturating_add(bidi)
    }
    #[inline]
    fn emit_ahs(&self, buf: &mut [u8]) {
        let ext = self.cdb.extension();
        let mut off = 0;
        if !ext.is_empty() {
            // At most MAX_CDB_LEN - 16 + 1, far below u16::MAX.
            let length = u16::try_from(ext.len().saturating_add(1)).unwrap_or(u16::MAX);
            if let Some(h) = buf.get_mut(0..4) {
                h.copy_from_slice(&[
                    length.to_be_bytes()[0],
                    length.to_be_bytes()[1],
                    AHS_TYPE_EXTENDED_CDB,
                    0,
                ]);
            }
            if let Some(d) = buf.get_mut(4..ext.len().saturating_add(4)) {
                d.copy_from_slice(ext);
            }
            off = self.ext_cdb_ahs_len();
        }
        if let (Some(len), Some(h)) = (self.bidi_read_len, buf.get_mut(off..off.saturating_add(8)))
        {
            let l = BIDI_AHS_LENGTH.to_be_bytes();
            let v = len.to_be_bytes();
            h.copy_from_slice(&[
                l[0],
                l[1],
                AHS_TYPE_BIDI_READ_LEN,
                0,
                v[0],
                v[1],
                v[2],
                v[3],
            ]);
        }
    }
}

/// A residual count with its meaning (RFC 7143 §11.4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residual {
    /// Exactly the expected amount was transferred.
    #[default]
    None,
    /// The target transferred this many bytes less than expected.
    Underflow(u32),
    /// The target had this many bytes more than expected (they were not transferred).
    Overflow(u32),
}

impl Residual {
    #[inline]
    pub(super) fn parse(flags: u8, overflow: u8, underflow: u8, count: u32) -> Result<Self, Error> {
        match (flags & overflow != 0, flags & underflow != 0) {
            (true, true) => Err(Error::OverflowAndUnderflow),
            (true, false) => Ok(Residual::Overflow(count)),
            (false, true) => Ok(Residual::Underflow(count)),
            (false, false) => Ok(Residual::None),
        }
    }

    /// (flag bits, count) for emitting.
    #[inline]
    pub(super) fn encode(self, overflow: u8, underflow: u8) -> (u8, u32) {
        match self {
            Residual::None => (0, 0),
            Residual::Underflow(n) => (underflow, n),
            Residual::Overflow(n) => (overflow, n),
        }
    }
}

/// SCSI Response (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiResponse {
    /// iSCSI service response: 0 command completed at target, 1 target failure.
    pub response: u8,
    /// SCSI status (valid when `response` is 0).
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub sns: TargetSns,
    pub exp_data_sn: Sn,
    /// Bidirectional read residual (o/u bits).
    pub bidi_residual: Residual,
    /// Residual of the (write, or unidirectional) transfer (O/U bits).
    pub residual: Residual,
}

/// iSCSI Response value: command completed at target.
pub const RESPONSE_COMPLETED: u8 = 0;

impl ScsiResponse {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::ScsiResponse)?;
        let flags = bhs.flags();
        Ok(ScsiResponse {
            response: bhs.u8_at(field::RESPONSE),
            status: bhs.u8_at(field::STATUS),
            itt: bhs.itt(),
            snack_tag: bhs.u32_at(field::SNACK_TAG),
            sns: bhs.target_sns(),
            exp_data_sn: bhs.sn_at(field::EXP_DATA_SN),
            bidi_residual: Residual::parse(
                flags,
                BIDI_OVERFLOW_BIT,
                BIDI_UNDERFLOW_BIT,
                bhs.u32_at(field::BIDI_RESIDUAL),
            )?,
            residual: Residual::parse(
                flags,
                OVERFLOW_BIT,
                UNDERFLOW_BIT,
                bhs.u32_at(field::RESIDUAL),
            )?,
        })
    }

    /// True when the target completed the command (`response` 0) with SCSI status GOOD.
    #[inline]
    pub fn is_good(&self) -> bool {
        self.response == RESPONSE_COMPLETED && self.status == 0
    }
}

impl Header for ScsiResponse {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::ScsiResponse
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        let (bf, bc) = self
            .bidi_residual
            .encode(BIDI_OVERFLOW_BIT, BIDI_UNDERFLOW_BIT);
        let (f, c) = self.residual.encode(OVERFLOW_BIT, UNDERFLOW_BIT);
        bhs.set_flags(FINAL_BIT | bf | f);
        bhs.set_u8(field::RESPONSE, self.response);
        bhs.set_u8(field::STATUS, self.status);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::SNACK_TAG, self.snack_tag);
        bhs.set_target_sns(self.sns);
        bhs.set_sn(field::EXP_DATA_SN, self.exp_data_sn);
        bhs.set_u32(field::BIDI_RESIDUAL, bc);
        bhs.set_u32(field::RESIDUAL, c);
    }
}

/// The data segment of a SCSI Response (or of an Async Message SCSI event), split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseData<'a> {
    /// Sense data, exactly SenseLength bytes.
    pub sense: &'a [u8],
    /// iSCSI response data after the sense data (rarely used).
    pub response_data: &'a [u8],
}

/// Splits a SCSI Response data segment into sense and response data, refusing a SenseLength
/// that runs past the segment (isboot copied SenseLength bytes whatever the segment held).
#[inline]
pub fn parse_response_data(data: &[u8]) -> Result<ResponseData<'_>, Error> {
    let (len_bytes, rest) = match data {
        [] => return Ok(ResponseData::default()),
        [_] => return Err(Error::SenseLengthTruncated),
        [a, b, rest @ ..] => ([*a, *b], rest),
    };
    let sense_len = usize::from(u16::from_be_bytes(len_bytes));
    if sense_len > rest.len() {
        return Err(Error::SenseLengthTooLong {
            sense_len,
            segment: data.len(),
        });
    }
    let (sense, response_data) = rest.split_at(sense_len);
    Ok(ResponseData {
        sense,
        response_data,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Digests, Pdu, RawPdu};
    use super::*;
    use alloc::vec::Vec;

    fn read10() -> ScsiCommand {
        ScsiCommand {
            final_bit: true,
            read: true,
            attr: TaskAttr::Simple,
            lun: Lun::from_number(1).unwrap(),
            itt: 0x1234_5678,
            expected_data_len: 4096,
            cmd_sn: Sn(0x11),
            exp_stat_sn: Sn(0x22),
            // Padded to the BHS's 16 bytes, as a parsed CDB always is.
            cdb: Cdb::new(&[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            ..ScsiCommand::default()
        }
    }

    #[test]
    fn read10_known_bytes() {
        // RFC 7143 §11.3 layout written out by hand.
        let mut expected = [0u8; 48];
        expected[0] = 0x01;
        expected[1] = 0x80 | 0x40 | 0x01; // F, R, ATTR=Simple
        expected[8..16].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        expected[16..20].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        expected[20..24].copy_from_slice(&[0, 0, 0x10, 0]);
        expected[24..28].copy_from_slice(&[0, 0, 0, 0x11]);
        expected[28..32].copy_from_slice(&[0, 0, 0, 0x22]);
        expected[32..42].copy_from_slice(&[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]);
        let wire = emit_with(&read10(), &[], Digests::default());
        assert_eq!(wire, expected);
    }

    #[test]
    fn write_with_immediate_data_round_trips() {
        let cmd = ScsiCommand {
            immediate: false,
            read: false,
            write: true,
            attr: TaskAttr::Ordered,
            ..read10()
        };
        round_trip(cmd.into());
    }

    #[test]
    fn long_cdb_goes_into_an_extended_cdb_ahs() {
        let cdb: Vec<u8> = (1..=32u8).collect();
        let cmd = ScsiCommand {
            cdb: Cdb::new(&cdb).unwrap(),
            ..read10()
        };
        let wire = emit_with(&cmd, &[], Digests::default());
        // 16 extra bytes: AHSLength 17, type 1, reserved, 16 bytes, padded to 20 -> 5 words.
        assert_eq!(wire[4], 5);
        assert_eq!(&wire[48..52], &[0x00, 0x11, 0x01, 0x00]);
        assert_eq!(&wire[52..68], &cdb[16..]);
        assert_eq!(wire.len(), 48 + 20);
        assert_eq!(&wire[32..48], &cdb[..16]);
        round_trip(cmd.into());
        // An odd length exercises the AHS padding.
        let cdb: Vec<u8> = (1..=17u8).collect();
        let cmd = ScsiCommand {
            cdb: Cdb::new(&cdb).unwrap(),
            bidi_read_len: Some(512),
            ..read10()
        };
        let wire = emit_with(&cmd, &[], Digests::default());
        assert_eq!(wire[4], 2 + 2);
        assert_eq!(&wire[48..53], &[0x00, 0x02, 0x01, 0x00, 17]);
        assert_eq!(&wire[53..56], &[0, 0, 0]);
        assert_eq!(&wire[56..64], &[0x00, 0x05, 0x02, 0x00, 0, 0, 2, 0]);
        round_trip(cmd.into());
        let max: Vec<u8> = (0..MAX_CDB_LEN).map(|i| i as u8).collect();
        round_trip(
            ScsiCommand {
                cdb: Cdb::new(&max).unwrap(),
                ..read10()
            }
            .into(),
        );
    }

    #[test]
    fn header_digest_covers_the_ahs() {
        let cdb: Vec<u8> = (1..=32u8).collect();
        let cmd = ScsiCommand {
            cdb: Cdb::new(&cdb).unwrap(),
            ..read10()
        };
        let both = Digests {
            header: true,
            data: true,
        };
        let wire = emit_with(&cmd, &[7; 512], both);
        assert_eq!(&wire[5..8], &[0, 2, 0]);
        assert_eq!(
            super::super::check_header_digest(&wire[..68], &wire[68..72]),
            Ok(())
        );
        assert!(super::super::check_header_digest(&wire[..48], &wire[68..72]).is_err());
        let (raw, _) = RawPdu::split(&wire, both, 8192).unwrap();
        assert_eq!(raw.header.len(), 68);
        assert_eq!(raw.parse().unwrap(), Pdu::ScsiCommand(cmd));
    }

    #[test]
    fn cdb_length_limits() {
        assert_eq!(Cdb::new(&[]), Err(Error::BadCdbLength(0)));
        assert_eq!(
            Cdb::new(&[0u8; MAX_CDB_LEN + 1]),
            Err(Error::BadCdbLength(MAX_CDB_LEN + 1))
        );
    }

    #[test]
    fn malformed_ahs_is_an_error() {
        let wire = emit_with(&read10(), &[], Digests::default());
        let mut h = wire[..48].to_vec();
        h[4] = 1;
        // AHSLength 9 runs past the 4-byte AHS.
        h.extend_from_slice(&[0, 9, 1, 0]);
        assert_eq!(Pdu::parse(&h), Err(Error::AhsOverrun { offset: 0 }));
        h[48..52].copy_from_slice(&[0, 1, 7, 0]);
        assert_eq!(Pdu::parse(&h), Err(Error::BadAhs { ahs_type: 7 }));
        // A too-long extended CDB.
        let mut h = wire[..48].to_vec();
        h[4] = 255;
        h.extend_from_slice(&[0x03, 0xf9, 0x01, 0x00]);
        h.resize(48 + 1020, 0);
        assert_eq!(Pdu::parse(&h), Err(Error::BadCdbLength(16 + 1016)));
    }

    fn response() -> ScsiResponse {
        ScsiResponse {
            response: 0,
            status: 2,
            itt: 7,
            snack_tag: 0,
            sns: TargetSns {
                stat_sn: Sn(100),
                exp_cmd_sn: Sn(12),
                max_cmd_sn: Sn(43),
            },
            exp_data_sn: Sn(3),
            bidi_residual: Residual::None,
            residual: Residual::Underflow(512),
        }
    }

    #[test]
    fn response_known_bytes_and_round_trip() {
        let wire = emit_with(&response(), &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x21;
        expected[1] = 0x80 | 0x02;
        expected[3] = 2;
        expected[16..20].copy_from_slice(&[0, 0, 0, 7]);
        expected[24..28].copy_from_slice(&[0, 0, 0, 100]);
        expected[28..32].copy_from_slice(&[0, 0, 0, 12]);
        expected[32..36].copy_from_slice(&[0, 0, 0, 43]);
        expected[36..40].copy_from_slice(&[0, 0, 0, 3]);
        expected[44..48].copy_from_slice(&[0, 0, 2, 0]);
        assert_eq!(wire, expected);
        round_trip(response().into());
        round_trip(
            ScsiResponse {
                residual: Residual::Overflow(9),
                bidi_residual: Residual::Underflow(1),
                ..response()
            }
            .into(),
        );
        assert!(!response().is_good());
        assert!(ScsiResponse::default().is_good());
    }

    #[test]
    fn overflow_and_underflow_together_are_refused() {
        let mut wire = emit_with(&response(), &[], Digests::default());
        wire[1] |= 0x04 | 0x02;
        assert_eq!(Pdu::parse(&wire), Err(Error::OverflowAndUnderflow));
        let mut wire = emit_with(&response(), &[], Digests::default());
        wire[1] |= 0x10 | 0x08;
        assert_eq!(Pdu::parse(&wire), Err(Error::OverflowAndUnderflow));
    }

    #[test]
    fn sense_length_is_bounded_by_the_segment() {
        assert_eq!(parse_response_data(&[]), Ok(ResponseData::default()));
        assert_eq!(parse_response_data(&[0]), Err(Error::SenseLengthTruncated));
        let d = [0, 3, 0x70, 0, 5, 0xee];
        let r = parse_response_data(&d).unwrap();
        assert_eq!(r.sense, &[0x70, 0, 5]);
        assert_eq!(r.response_data, &[0xee]);
        assert_eq!(
            parse_response_data(&[0, 18, 0x70, 0]),
            Err(Error::SenseLengthTooLong {
                sense_len: 18,
                segment: 4
            })
        );
        assert_eq!(
            parse_response_data(&[0xff, 0xff]),
            Err(Error::SenseLengthTooLong {
                sense_len: 0xffff,
                segment: 2
            })
        );
        // Through the receive path: a CHECK CONDITION with 18 bytes of sense.
        let mut seg = alloc::vec![0, 18];
        seg.extend_from_slice(&[0x70; 18]);
        let wire = emit_with(&response(), &seg, Digests::default());
        let (raw, _) = RawPdu::split(&wire, Digests::default(), 8192).unwrap();
        assert_eq!(parse_response_data(raw.data).unwrap().sense, &[0x70; 18]);
    }
}
