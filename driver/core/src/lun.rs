// SPDX-License-Identifier: BSD-2-Clause
//! The 8-byte SAM LUN (SAM-5 §4.7) as the iBFT and every iSCSI PDU carry it: wire (big-endian)
//! order. The one LUN type of the project: the iBFT parser, the PDUs, the session's requests and
//! the kernel glue (which converts it to CAM's `lun_id_t`) all use it.
//!
//! iPXE writes LUN 1 as `00 01 00 00 00 00 00 00` (peripheral device addressing, bus 0). isboot
//! read the eight bytes as a little-endian integer and got 256; here the bytes stay as they are
//! and [`Lun::number`] decodes the addressing method. Single-level LUNs below 256 use peripheral
//! addressing, larger ones up to [`MAX_FLAT_LUN`] flat space addressing, as targets and iPXE do.

use core::fmt;

/// An 8-byte SAM LUN in wire order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lun(pub [u8; 8]);

/// The largest LUN flat space addressing can express (14 bits).
pub const MAX_FLAT_LUN: u16 = 0x3fff;

/// The first level of a LUN, decoded by its address method (top two bits of byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LunAddress {
    /// Method 00b: bus identifier and an 8-bit LUN (bus 0 is the "simple" LUN 0..=255).
    Peripheral { bus: u8, lun: u8 },
    /// Method 01b: a 14-bit flat LUN.
    Flat(u16),
    /// Method 10b: target, bus and a 5-bit LUN.
    LogicalUnit { target: u8, bus: u8, lun: u8 },
    /// Extended method, well-known logical unit (`C1 xx`).
    WellKnown(u8),
    /// Extended flat space (`D2 xx xx xx`): a 24-bit LUN.
    ExtendedFlat(u32),
    /// Long extended flat space (`E2 xx xx xx xx xx`): a 40-bit LUN.
    LongExtendedFlat(u64),
    /// `FF FF FF FF FF FF FF FF`: logical unit not specified.
    NotSpecified,
    /// An extended address this code does not decode; the first byte is kept.
    OtherExtended(u8),
}

impl Lun {
    pub const fn raw(&self) -> [u8; 8] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// All eight bytes as one big-endian integer (the SAM "64-bit LUN" value).
    pub const fn to_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The address of the first level.
    pub fn first_level(&self) -> LunAddress {
        let b = self.0;
        match b[0] >> 6 {
            0b00 => LunAddress::Peripheral {
                bus: b[0] & 0x3f,
                lun: b[1],
            },
            0b01 => LunAddress::Flat(u16::from(b[0] & 0x3f) << 8 | u16::from(b[1])),
            0b10 => LunAddress::LogicalUnit {
                target: b[0] & 0x3f,
                bus: b[1] >> 5,
                lun: b[1] & 0x1f,
            },
            _ => match b[0] {
                0xc1 => LunAddress::WellKnown(b[1]),
                0xd2 => LunAddress::ExtendedFlat(u32::from_be_bytes([0, b[1], b[2], b[3]])),
                0xe2 => LunAddress::LongExtendedFlat(u64::from_be_bytes([
                    0, 0, 0, b[1], b[2], b[3], b[4], b[5],
                ])),
                0xff if b == [0xff; 8] => LunAddress::NotSpecified,
                other => LunAddress::OtherExtended(other),
            },
        }
    }

    /// Length in bytes of the first-level address.
    fn first_level_len(&self) -> usize {
        match self.first_level() {
            LunAddress::ExtendedFlat(_) => 4,
            LunAddress::LongExtendedFlat(_) => 6,
            LunAddress::NotSpecified => 8,
            _ => 2,
        }
    }

    /// Whether only the first level is used (every byte after it is zero).
    pub fn is_single_level(&self) -> bool {
        self.0
            .get(self.first_level_len()..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
    }

    /// The LUN number a user would write (`iscsi:…:1:iqn…` → 1): defined for single-level
    /// peripheral addressing on bus 0 and the flat-space methods; `None` for anything else.
    pub fn number(&self) -> Option<u64> {
        if !self.is_single_level() {
            return None;
        }
        match self.first_level() {
            LunAddress::Peripheral { bus: 0, lun } => Some(u64::from(lun)),
            LunAddress::Flat(n) => Some(u64::from(n)),
            LunAddress::ExtendedFlat(n) => Some(u64::from(n)),
            LunAddress::LongExtendedFlat(n) => Some(n),
            _ => None,
        }
    }

    /// The single-level LUN for `n`, in the shortest method SAM-5 offers (the one targets and
    /// iPXE use: peripheral below 256, flat below 16384). `None` beyond 40 bits.
    pub fn from_number(n: u64) -> Option<Lun> {
        let mut b = [0u8; 8];
        if n < 0x100 {
            b[1] = n as u8;
        } else if n < 0x4000 {
            b[..2].copy_from_slice(&(0x4000 | n as u16).to_be_bytes());
        } else if n < 1 << 24 {
            b[0] = 0xd2;
            b[1..4].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        } else if n < 1 << 40 {
            b[0] = 0xe2;
            b[1..6].copy_from_slice(&n.to_be_bytes()[3..]);
        } else {
            return None;
        }
        Some(Lun(b))
    }
}

impl From<[u8; 8]> for Lun {
    fn from(b: [u8; 8]) -> Self {
        Lun(b)
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lun({self})")
    }
}

/// The number when there is one (`1`), otherwise the eight bytes in hex.
impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{n}"),
            None => {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn ipxe_lun_1_is_1_not_256() {
        let lun = Lun([0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lun.number(), Some(1));
        assert_eq!(lun.first_level(), LunAddress::Peripheral { bus: 0, lun: 1 });
        assert_eq!(lun.to_u64(), 0x0001_0000_0000_0000);
        assert_eq!(format!("{lun}"), "1");
        assert_eq!(Lun::from_number(1), Some(lun));
    }

    #[test]
    fn every_method_decodes() {
        assert_eq!(Lun([0; 8]).number(), Some(0));
        let flat = Lun([0x41, 0x23, 0, 0, 0, 0, 0, 0]);
        assert_eq!(flat.first_level(), LunAddress::Flat(0x123));
        assert_eq!(flat.number(), Some(0x123));
        let bus = Lun([0x02, 0x05, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bus.first_level(), LunAddress::Peripheral { bus: 2, lun: 5 });
        assert_eq!(bus.number(), None);
        let lu = Lun([0x85, 0x43, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            lu.first_level(),
            LunAddress::LogicalUnit {
                target: 5,
                bus: 2,
                lun: 3
            }
        );
        assert_eq!(lu.number(), None);
        let wlun = Lun([0xc1, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(wlun.first_level(), LunAddress::WellKnown(1));
        assert_eq!(wlun.number(), None);
        let ext = Lun([0xd2, 0x12, 0x34, 0x56, 0, 0, 0, 0]);
        assert_eq!(ext.first_level(), LunAddress::ExtendedFlat(0x12_3456));
        assert_eq!(ext.number(), Some(0x12_3456));
        let long = Lun([0xe2, 1, 2, 3, 4, 5, 0, 0]);
        assert_eq!(
            long.first_level(),
            LunAddress::LongExtendedFlat(0x01_0203_0405)
        );
        assert_eq!(long.number(), Some(0x01_0203_0405));
        assert_eq!(Lun([0xff; 8]).first_level(), LunAddress::NotSpecified);
        assert_eq!(Lun([0xff; 8]).number(), None);
        assert_eq!(
            Lun([0xf0, 0, 0, 0, 0, 0, 0, 0]).first_level(),
            LunAddress::OtherExtended(0xf0)
        );
    }

    #[test]
    fn a_second_level_means_no_single_number() {
        let two = Lun([0, 1, 0, 2, 0, 0, 0, 0]);
        assert!(!two.is_single_level());
        assert_eq!(two.number(), None);
        assert_eq!(format!("{two}"), "0001000200000000");
    }

    #[test]
    fn from_number_round_trips_at_every_method_boundary() {
        for n in [
            0u64,
            1,
            255,
            256,
            0x3fff,
            0x4000,
            0xff_ffff,
            0x100_0000,
            (1 << 40) - 1,
        ] {
            let lun = Lun::from_number(n).unwrap();
            assert_eq!(lun.number(), Some(n), "{n:#x} -> {:02x?}", lun.0);
        }
        assert_eq!(Lun::from_number(1 << 40), None);
        assert_eq!(Lun::from_number(256).unwrap().0[..2], [0x41, 0x00]);
    }

    #[test]
    fn other_forms_have_no_number_and_print_raw() {
        // Flat addressing of a small LUN is valid too.
        assert_eq!(Lun([0x40, 0x05, 0, 0, 0, 0, 0, 0]).number(), Some(5));
        assert_eq!(
            Lun::from_number(u64::from(MAX_FLAT_LUN)).unwrap().0[..2],
            [0x7f, 0xff]
        );
        // Bus 1 peripheral, logical unit addressing, an unknown extended method.
        for raw in [[0x01, 0x02], [0x80, 0x02], [0xc0, 0x02]] {
            let lun = Lun([raw[0], raw[1], 0, 0, 0, 0, 0, 0]);
            assert_eq!(lun.number(), None, "{raw:02x?}");
            assert_eq!(
                format!("{lun:?}"),
                format!("Lun({:02x}{:02x}000000000000)", raw[0], raw[1])
            );
        }
        assert_eq!(format!("{:?}", Lun::from_number(3).unwrap()), "Lun(3)");
    }
}
