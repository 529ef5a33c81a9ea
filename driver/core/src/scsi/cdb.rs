// SPDX-License-Identifier: BSD-2-Clause
//! SCSI command descriptor blocks (SBC-4, SPC-5): the operation codes isboot uses, builders for
//! the commands it sends, and the parsers for what a target (or a test's fake target) needs to
//! read back out of them. The [`Cdb`] container itself is the SCSI Command PDU's field type.

use crate::lun::Lun;
use crate::pdu::Cdb;

/// Operation codes.
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// SERVICE ACTION IN(16); READ CAPACITY(16) is its service action 0x10.
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
}

/// READ CAPACITY(16)'s service action within SERVICE ACTION IN(16).
pub const READ_CAPACITY_16: u8 = 0x10;

/// A CDB from bytes this module laid out (always 6 to 16 bytes, within [`Cdb`]'s bounds).
fn cdb(bytes: &[u8]) -> Cdb {
    let c = Cdb::new(bytes);
    debug_assert!(c.is_ok(), "a {}-byte CDB", bytes.len());
    c.unwrap_or_default()
}

/// READ(16) or WRITE(16) of `blocks` blocks at `lba`.
pub fn rw16(write: bool, lba: u64, blocks: u32) -> Cdb {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lba.to_be_bytes();
    let [n0, n1, n2, n3] = blocks.to_be_bytes();
    let code = if write { op::WRITE_16 } else { op::READ_16 };
    cdb(&[
        code, 0, l0, l1, l2, l3, l4, l5, l6, l7, n0, n1, n2, n3, 0, 0,
    ])
}

/// READ/WRITE(10) when the LBA and length fit in its fields, else (16).
pub fn read_write(write: bool, lba: u64, blocks: u32) -> Cdb {
    match (u32::try_from(lba), u16::try_from(blocks)) {
        (Ok(l), Ok(n)) => {
            let [l0, l1, l2, l3] = l.to_be_bytes();
            let [n0, n1] = n.to_be_bytes();
            let code = if write { op::WRITE_10 } else { op::READ_10 };
            cdb(&[code, 0, l0, l1, l2, l3, 0, n0, n1, 0])
        }
        _ => rw16(write, lba, blocks),
    }
}

/// Standard INQUIRY data, at most `alloc_len` bytes.
pub fn inquiry(alloc_len: u16) -> Cdb {
    let [a0, a1] = alloc_len.to_be_bytes();
    cdb(&[op::INQUIRY, 0, 0, a0, a1, 0])
}

/// READ CAPACITY(16), at most `alloc_len` bytes of answer.
pub fn read_capacity16(alloc_len: u32) -> Cdb {
    let [a0, a1, a2, a3] = alloc_len.to_be_bytes();
    cdb(&[
        op::SERVICE_ACTION_IN_16,
        READ_CAPACITY_16,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        a0,
        a1,
        a2,
        a3,
        0,
        0,
    ])
}

/// REPORT LUNS (select report 0: every LUN), at most `alloc_len` bytes of answer.
pub fn report_luns(alloc_len: u32) -> Cdb {
    let [a0, a1, a2, a3] = alloc_len.to_be_bytes();
    cdb(&[op::REPORT_LUNS, 0, 0, 0, 0, 0, a0, a1, a2, a3, 0, 0])
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    Some(u32::from_be_bytes(b.get(at..end)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    Some(u64::from_be_bytes(b.get(at..end)?.try_into().ok()?))
}

/// Whether `cdb` is a READ(10)/(16) (`Some(false)`) or WRITE(10)/(16) (`Some(true)`).
pub fn is_write(cdb: &[u8]) -> Option<bool> {
    match *cdb.first()? {
        op::READ_10 | op::READ_16 => Some(false),
        op::WRITE_10 | op::WRITE_16 => Some(true),
        _ => None,
    }
}

/// LBA and block count of a READ/WRITE (10) or (16); `None` for any other CDB or one too
/// short for its fields.
pub fn lba_and_blocks(cdb: &[u8]) -> Option<(u64, u32)> {
    match *cdb.first()? {
        op::READ_10 | op::WRITE_10 => {
            let blocks = u16::from_be_bytes(cdb.get(7..9)?.try_into().ok()?);
            Some((u64::from(be_u32(cdb, 2)?), u32::from(blocks)))
        }
        op::READ_16 | op::WRITE_16 => Some((be_u64(cdb, 2)?, be_u32(cdb, 10)?)),
        _ => None,
    }
}

/// The READ CAPACITY(16) answer: (number of blocks, block length in bytes).
pub fn parse_read_capacity16(data: &[u8]) -> Option<(u64, u32)> {
    Some((be_u64(data, 0)?.saturating_add(1), be_u32(data, 8)?))
}

/// The LUNs a REPORT LUNS answer lists (as many as arrived, bounded by its LUN LIST LENGTH).
pub fn parse_report_luns(data: &[u8]) -> impl Iterator<Item = Lun> + '_ {
    let listed = be_u32(data, 0).map_or(0, |n| (n / 8) as usize);
    data.get(8..)
        .unwrap_or_default()
        .chunks_exact(8)
        .take(listed)
        .filter_map(|e| <[u8; 8]>::try_from(e).ok().map(Lun))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_use_ten_bytes_when_they_fit() {
        assert_eq!(
            read_write(false, 0x0102_0304, 0x0506).as_slice(),
            [0x28, 0, 1, 2, 3, 4, 0, 5, 6, 0]
        );
        let c = read_write(true, 1 << 32, 8);
        assert_eq!(c.as_slice()[0], op::WRITE_16);
        assert_eq!(&c.as_slice()[2..10], &(1u64 << 32).to_be_bytes());
        assert_eq!(&c.as_slice()[10..14], &8u32.to_be_bytes());
        assert_eq!(read_write(false, 0, 70_000).as_slice()[0], op::READ_16);
    }

    #[test]
    fn lba_and_blocks_read_back_what_the_builders_wrote() {
        for (lba, blocks) in [(0, 1), (0xffff_ffff, 0xffff), (1 << 40, 70_000)] {
            for write in [false, true] {
                for c in [read_write(write, lba, blocks), rw16(write, lba, blocks)] {
                    assert_eq!(lba_and_blocks(c.as_slice()), Some((lba, blocks)));
                    assert_eq!(is_write(c.as_slice()), Some(write));
                }
            }
        }
        assert_eq!(lba_and_blocks(&[op::READ_16, 0, 0]), None, "too short");
        assert_eq!(lba_and_blocks(inquiry(36).as_slice()), None);
        assert_eq!(is_write(inquiry(36).as_slice()), None);
    }

    #[test]
    fn control_commands_and_their_answers() {
        assert_eq!(inquiry(96).as_slice(), [0x12, 0, 0, 0, 96, 0]);
        let rc = read_capacity16(32);
        assert_eq!(
            (rc.as_slice()[0], rc.as_slice()[1], rc.as_slice()[13]),
            (0x9e, 0x10, 32)
        );
        assert_eq!(rc.len(), 16);
        let rl = report_luns(2056);
        assert_eq!(rl.as_slice()[0], 0xa0);
        assert_eq!(&rl.as_slice()[6..10], &2056u32.to_be_bytes());
        let mut cap = [0u8; 32];
        cap[..8].copy_from_slice(&99u64.to_be_bytes());
        cap[8..12].copy_from_slice(&4096u32.to_be_bytes());
        assert_eq!(parse_read_capacity16(&cap), Some((100, 4096)));
        assert_eq!(parse_read_capacity16(&cap[..11]), None);
        // Two LUNs listed, three entries sent, the last one cut short.
        let mut luns = alloc::vec![0, 0, 0, 16, 0, 0, 0, 0];
        luns.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(
            parse_report_luns(&luns).collect::<alloc::vec::Vec<_>>(),
            [
                Lun([0, 1, 0, 0, 0, 0, 0, 0]),
                Lun([0x41, 0, 0, 0, 0, 0, 0, 0])
            ]
        );
        assert_eq!(parse_report_luns(&[0, 0]).count(), 0);
    }
}
