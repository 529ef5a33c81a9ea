// SPDX-License-Identifier: BSD-2-Clause
//! CRC32C (Castagnoli), the iSCSI header and data digest (RFC 7143 §13.1).
#![no_std]

/// Incremental CRC32C. `Crc32c::new().update(a).update(b).finish()` equals `crc32c(a ++ b)`.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub const fn new() -> Self {
        Self { state: !0 }
    }

    #[must_use]
    pub fn update(mut self, data: &[u8]) -> Self {
        // Bitwise reference implementation; replaced by the table and hardware paths.
        for &b in data {
            self.state ^= u32::from(b);
            for _ in 0..8 {
                let mask = (self.state & 1).wrapping_neg();
                self.state = (self.state >> 1) ^ (0x82F6_3B78 & mask);
            }
        }
        self
    }

    pub fn finish(self) -> u32 {
        !self.state
    }
}

/// CRC32C of `data`, as iSCSI puts it on the wire (little-endian u32 of this value).
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3720_b4_vectors() {
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
