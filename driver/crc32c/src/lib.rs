// SPDX-License-Identifier: BSD-2-Clause
//! CRC32C (Castagnoli), the iSCSI header and data digest (RFC 7143 §13.1).
//!
//! On x86_64 CPUs with SSE4.2 the `crc32` instruction does the work (three interleaved chains for
//! large buffers, see `hw`); elsewhere a slice-by-8 table path. Both give identical results; the
//! choice is made once at run time with CPUID. `no_std`, usable in the kernel: the hardware path
//! uses general-purpose registers only. The kernel module builds it with the `kernel` feature,
//! which hands the work to the kernel's `calculate_crc32c` instead (see `hw`).
#![no_std]
#![deny(unsafe_code)]

// Miri cannot run inline assembly: under it the portable path stands in.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod hw;
mod table;

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
        self.state = paths::update(self.state, data);
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

/// The individual algorithms, for tests and benchmarks that compare them.
///
/// Each advances a raw CRC register (no initial or final inversion): `crc32c(d)` is
/// `!update(!0, d)`.
pub mod paths {
    pub use crate::table::{update_bytewise, update_slice8};

    /// The fastest path this CPU offers; with the `kernel` feature, the kernel's.
    #[inline]
    pub fn update(crc: u32, data: &[u8]) -> u32 {
        #[cfg(all(feature = "kernel", target_arch = "x86_64", not(miri)))]
        {
            crate::hw::kernel_update(crc, data)
        }
        #[cfg(not(all(feature = "kernel", target_arch = "x86_64", not(miri))))]
        match update_hardware(crc, data) {
            Some(crc) => crc,
            None => update_slice8(crc, data),
        }
    }

    /// Whether the SSE4.2 path runs on this CPU.
    pub fn hardware_available() -> bool {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            crate::hw::Sse42::get().is_some()
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            false
        }
    }

    /// The SSE4.2 path, or `None` on a CPU (or architecture) without it.
    #[inline]
    pub fn update_hardware(crc: u32, data: &[u8]) -> Option<u32> {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            crate::hw::Sse42::get().map(|hw| hw.update(crc, data))
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            let _ = (crc, data);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::paths::*;
    use super::*;
    use std::vec::Vec;

    /// The bitwise definition, independent of every table.
    fn reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    /// xorshift64*: deterministic test data without a dependency.
    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn all_paths(data: &[u8]) -> Vec<(&'static str, u32)> {
        let mut out = std::vec![
            ("dispatch", crc32c(data)),
            ("bytewise", !update_bytewise(!0, data)),
            ("slice8", !update_slice8(!0, data)),
        ];
        if let Some(hw) = update_hardware(!0, data) {
            out.push(("sse4.2", !hw));
        }
        out
    }

    #[test]
    fn rfc3720_b4_vectors() {
        let ascending: Vec<u8> = (0u8..32).collect();
        let descending: Vec<u8> = (0u8..32).rev().collect();
        // An iSCSI Read (10) command PDU, RFC 3720 B.4.
        let read10: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let vectors: [(&[u8], u32); 6] = [
            (&[0u8; 32], 0x8A91_36AA),
            (&[0xffu8; 32], 0x62A8_AB43),
            (&ascending, 0x46DD_794E),
            (&descending, 0x113F_DB5C),
            (&read10, 0xD996_3A56),
            (b"123456789", 0xE306_9283),
        ];
        for (data, want) in vectors {
            for (path, got) in all_paths(data) {
                assert_eq!(got, want, "{path} on {data:02x?}");
            }
        }
    }

    #[test]
    fn every_length_and_misalignment_agrees_across_paths() {
        let buf = random_bytes(0x5eed, 1024 + 16);
        // Miri is ~1000x slower: there, a sample of lengths.
        let step = if cfg!(miri) { 37 } else { 1 };
        for start in 0..8 {
            for len in (0..=1024).step_by(step) {
                let data = &buf[start..start + len];
                let want = reference(data);
                for (path, got) in all_paths(data) {
                    assert_eq!(got, want, "{path} len {len} start {start}");
                }
            }
        }
    }

    #[test]
    fn large_buffers_cross_every_block_boundary() {
        // Lengths around the three-chain round sizes (3 * 256 and 3 * 8192) and beyond.
        let buf = random_bytes(7, 3 * 3 * 8192 + 1000);
        for len in [
            767,
            768,
            769,
            1535,
            1536,
            8192,
            24575,
            24576,
            24577,
            24576 + 768,
            65536,
            73_728,
            buf.len(),
        ] {
            let data = &buf[..len];
            let want = !update_bytewise(!0, data);
            for (path, got) in all_paths(data) {
                assert_eq!(got, want, "{path} len {len}");
            }
        }
    }

    #[test]
    fn incremental_updates_equal_one_shot() {
        let buf = random_bytes(42, 100_000);
        let whole = crc32c(&buf);
        for split in [0, 1, 7, 8, 9, 767, 768, 24_576, 50_001, 99_999, 100_000] {
            let (a, b) = buf.split_at(split);
            assert_eq!(Crc32c::new().update(a).update(b).finish(), whole, "{split}");
        }
        let mut c = Crc32c::default();
        for chunk in buf.chunks(333) {
            c = c.update(chunk);
        }
        assert_eq!(c.finish(), whole);
        assert_eq!(Crc32c::new().finish(), 0);
    }

    #[test]
    fn detection_matches_the_cpu() {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        assert_eq!(
            hardware_available(),
            std::is_x86_feature_detected!("sse4.2")
        );
        assert_eq!(update_hardware(0, b"x").is_some(), hardware_available());
    }
}
