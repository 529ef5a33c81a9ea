// SPDX-License-Identifier: BSD-2-Clause
//! Portable paths and the tables every path shares, all computed at compile time.
//!
//! CRC32C is "reflected": bit i of the 32-bit register is the coefficient of x^(31-i), and one
//! input bit is absorbed by `crc = (crc >> 1) ^ (POLY if crc & 1)`. The register update is linear
//! over GF(2), which gives two tools used here: tables that absorb 8 bytes at a time
//! (slice-by-8), and a "shift" that advances a register over n zero bytes in four lookups, which
//! lets the hardware path run independent chains and join them.

/// The Castagnoli polynomial 0x1EDC6F41, bit-reversed.
pub const POLY: u32 = 0x82F6_3B78;

/// `TABLES[0]` is the classic byte table; `TABLES[k][b]` is the register after byte `b` followed
/// by `k` zero bytes, so eight lookups absorb eight bytes at once.
pub(crate) static TABLES: [[u32; 256]; 8] = slice_tables();

const fn slice_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = (crc >> 1) ^ (POLY & (crc & 1).wrapping_neg());
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// The byte-at-a-time table algorithm (what isboot and libiscsi run): one lookup per byte.
pub fn update_bytewise(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = (crc >> 8) ^ TABLES[0][usize::from((crc as u8) ^ b)];
    }
    crc
}

/// Slice-by-8: eight independent lookups per 8-byte word.
pub fn update_slice8(mut crc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let v = u64::from_le_bytes(word) ^ u64::from(crc);
        let byte = |i: u32| usize::from((v >> (8 * i)) as u8);
        crc = TABLES[7][byte(0)]
            ^ TABLES[6][byte(1)]
            ^ TABLES[5][byte(2)]
            ^ TABLES[4][byte(3)]
            ^ TABLES[3][byte(4)]
            ^ TABLES[2][byte(5)]
            ^ TABLES[1][byte(6)]
            ^ TABLES[0][byte(7)];
    }
    update_bytewise(crc, words.remainder())
}

/// A 32x32 GF(2) matrix as its columns: `m[j]` is the image of the register bit `1 << j`.
type Matrix = [u32; 32];

const fn mat_vec(m: &Matrix, mut v: u32) -> u32 {
    let mut out = 0;
    let mut j = 0;
    while v != 0 {
        if v & 1 != 0 {
            out ^= m[j];
        }
        v >>= 1;
        j += 1;
    }
    out
}

const fn mat_mul(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [0u32; 32];
    let mut j = 0;
    while j < 32 {
        out[j] = mat_vec(a, b[j]);
        j += 1;
    }
    out
}

/// The operator "absorb `bytes` zero bytes", by squaring the one-zero-bit operator.
const fn zeros_operator(bytes: usize) -> Matrix {
    let mut one_bit = [0u32; 32];
    one_bit[0] = POLY;
    let mut j = 1;
    while j < 32 {
        one_bit[j] = 1 << (j - 1);
        j += 1;
    }
    let mut result = [0u32; 32];
    let mut j = 0;
    while j < 32 {
        result[j] = 1 << j;
        j += 1;
    }
    let mut n = bytes * 8;
    let mut power = one_bit;
    while n != 0 {
        if n & 1 != 0 {
            result = mat_mul(&power, &result);
        }
        power = mat_mul(&power, &power);
        n >>= 1;
    }
    result
}

/// Lookup tables for "advance the register over `bytes` zero bytes": the operator applied to each
/// byte of the register, one table per byte position.
pub(crate) const fn shift_tables(bytes: usize) -> [[u32; 256]; 4] {
    let m = zeros_operator(bytes);
    let mut t = [[0u32; 256]; 4];
    let mut k = 0;
    while k < 4 {
        let mut b = 0;
        while b < 256 {
            t[k][b] = mat_vec(&m, (b as u32) << (8 * k));
            b += 1;
        }
        k += 1;
    }
    t
}

/// Advances `crc` over as many zero bytes as `table` was made for.
#[inline]
pub(crate) fn shift(table: &[[u32; 256]; 4], crc: u32) -> u32 {
    let [a, b, c, d] = crc.to_le_bytes();
    table[0][usize::from(a)]
        ^ table[1][usize::from(b)]
        ^ table[2][usize::from(c)]
        ^ table[3][usize::from(d)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_the_bitwise_definition() {
        // Entry 0x80 of the CRC32C table, as published in RFC 3720 B.4's table.
        assert_eq!(TABLES[0][0x01], 0xF26B_8303);
        assert_eq!(TABLES[0][0x80], 0x82F6_3B78);
    }

    #[test]
    fn shift_equals_feeding_zero_bytes() {
        static T: [[u32; 256]; 4] = shift_tables(100);
        for crc in [1u32, 0x8000_0000, 0xdead_beef, 0xffff_ffff, 0x1234_5678] {
            assert_eq!(shift(&T, crc), update_bytewise(crc, &[0u8; 100]));
        }
        assert_eq!(shift(&T, 0), 0);
    }
}
