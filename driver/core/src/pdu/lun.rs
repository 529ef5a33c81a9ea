// SPDX-License-Identifier: BSD-2-Clause
//! The 8-byte SAM LUN as carried in the BHS (and the iBFT), in wire order.
//!
//! Single-level LUNs below 256 use peripheral device addressing (`00 nn 00 00 00 00 00 00`),
//! larger ones up to 16383 flat space addressing (`40|hi lo 00 ...`), as SAM-5 §4.7 describes.
//! isboot read these 8 bytes as a little-endian integer, so LUN 1 became 256; here the bytes
//! are kept as they are and decoded by the addressing method.

use core::fmt;

/// A LUN field, kept as its 8 raw wire bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Lun(pub [u8; 8]);

/// Address method bits (top two bits of byte 0).
const METHOD_MASK: u8 = 0xc0;
const METHOD_PERIPHERAL: u8 = 0x00;
const METHOD_FLAT: u8 = 0x40;
/// The largest LUN flat space addressing can express (14 bits).
pub const MAX_FLAT_LUN: u16 = 0x3fff;

impl Lun {
    /// Encodes a single-level LUN: peripheral addressing below 256, flat addressing up to
    /// [`MAX_FLAT_LUN`]; `None` above.
    pub fn from_number(lun: u16) -> Option<Lun> {
        let [hi, lo] = lun.to_be_bytes();
        let mut b = [0u8; 8];
        if lun < 256 {
            b[1] = lo;
        } else if lun <= MAX_FLAT_LUN {
            b[0] = METHOD_FLAT | hi;
            b[1] = lo;
        } else {
            return None;
        }
        Some(Lun(b))
    }

    /// Decodes a single-level LUN in peripheral (bus 0) or flat addressing. `None` for other
    /// address methods, a non-zero bus, or more levels (bytes 2..8 non-zero): such LUNs are
    /// still usable as raw bytes.
    pub fn number(&self) -> Option<u16> {
        let b = self.0;
        if b[2..].iter().any(|&x| x != 0) {
            return None;
        }
        match b[0] & METHOD_MASK {
            METHOD_PERIPHERAL if b[0] == 0 => Some(u16::from(b[1])),
            METHOD_FLAT => Some(u16::from_be_bytes([b[0] & !METHOD_MASK, b[1]])),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl From<[u8; 8]> for Lun {
    fn from(b: [u8; 8]) -> Self {
        Lun(b)
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "Lun({n})"),
            None => write!(f, "Lun({:02x?})", self.0),
        }
    }
}

impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{n}"),
            None => {
                for (i, b) in self.0.iter().enumerate() {
                    if i > 0 && i % 2 == 0 {
                        f.write_str("-")?;
                    }
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
    fn lun_one_is_00_01() {
        // What iPXE writes into the iBFT and what tgtd's disk LUN looks like on the wire.
        let l = Lun::from_number(1).unwrap();
        assert_eq!(l.0, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Lun([0, 1, 0, 0, 0, 0, 0, 0]).number(), Some(1));
        assert_eq!(Lun::default().number(), Some(0));
    }

    #[test]
    fn above_255_uses_flat_addressing() {
        assert_eq!(Lun::from_number(255).unwrap().0[..2], [0x00, 0xff]);
        assert_eq!(Lun::from_number(256).unwrap().0[..2], [0x41, 0x00]);
        assert_eq!(Lun::from_number(0x3fff).unwrap().0[..2], [0x7f, 0xff]);
        assert_eq!(Lun::from_number(0x4000), None);
        for n in [0u16, 1, 255, 256, 1000, 0x3fff] {
            assert_eq!(Lun::from_number(n).unwrap().number(), Some(n));
        }
        // Flat addressing of a small LUN is also valid.
        assert_eq!(Lun([0x40, 0x05, 0, 0, 0, 0, 0, 0]).number(), Some(5));
    }

    #[test]
    fn other_forms_are_kept_raw() {
        // Bus 1 peripheral, logical unit addressing, extended, second level.
        assert_eq!(Lun([0x01, 0x02, 0, 0, 0, 0, 0, 0]).number(), None);
        assert_eq!(Lun([0x80, 0x02, 0, 0, 0, 0, 0, 0]).number(), None);
        assert_eq!(Lun([0xc0, 0x02, 0, 0, 0, 0, 0, 0]).number(), None);
        let two_level = Lun([0, 1, 0, 2, 0, 0, 0, 0]);
        assert_eq!(two_level.number(), None);
        assert_eq!(format!("{two_level}"), "0001-0002-0000-0000");
        assert_eq!(format!("{:?}", Lun::from_number(3).unwrap()), "Lun(3)");
    }
}
