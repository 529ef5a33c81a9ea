// SPDX-License-Identifier: BSD-2-Clause
//! The SSE4.2 `crc32` instruction: the crate's only `unsafe`.
//!
//! `crc32` works on general-purpose registers, so it is usable in the FreeBSD kernel, where XMM
//! registers are off limits. It is reached through `asm!` rather than the `_mm_crc32_u64`
//! intrinsic: intrinsics need `#[target_feature(enable = "sse4.2")]` functions, and LLVM may
//! auto-vectorise those with XMM code. Support is detected once with CPUID and cached.
//!
//! One `crc32q` has a latency of three cycles and a throughput of one per cycle, so the large-
//! buffer path runs three independent chains over three adjacent blocks and joins them with the
//! table-driven shift (advance a register over a block of zero bytes, then XOR).
//!
//! With the `kernel` feature the module does not use any of this: `kernel_update` calls the
//! kernel's own CRC32C through a function the kernel module defines.
#![expect(
    unsafe_code,
    reason = "inline asm for the crc32 instruction and CPUID, each proven by a SAFETY comment"
)]

#[cfg(feature = "kernel")]
unsafe extern "Rust" {
    /// Advances a raw CRC32C register (no inversions) over `data`. Defined by the FreeBSD kernel
    /// module (driver/kmod/src/crc.rs) over the kernel's `calculate_crc32c`; safe to call: it
    /// reads `data` only.
    safe fn isboot_crc32c_update(crc: u32, data: &[u8]) -> u32;
}

/// The kernel's CRC32C (the `kernel` feature).
#[cfg(feature = "kernel")]
#[inline]
pub(crate) fn kernel_update(crc: u32, data: &[u8]) -> u32 {
    isboot_crc32c_update(crc, data)
}

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::table::{shift, shift_tables};

/// Bytes per chain in the large-block loop (three chains: 24 KiB per round).
const LONG: usize = 8192;
/// Bytes per chain in the medium-block loop (three chains: 768 bytes per round).
const SHORT: usize = 256;
/// Bytes per chain for what is left (three chains: 192 bytes per round), so that a 512-byte
/// sector still gets two interleaved rounds.
const TINY: usize = 64;
const _: () = assert!(LONG % 8 == 0 && SHORT % 8 == 0 && TINY % 8 == 0);

static LONG_SHIFT: [[u32; 256]; 4] = shift_tables(LONG);
static SHORT_SHIFT: [[u32; 256]; 4] = shift_tables(SHORT);
static TINY_SHIFT: [[u32; 256]; 4] = shift_tables(TINY);

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Proof that this CPU executes SSE4.2's `crc32`.
///
/// # Invariants
/// A value exists only after CPUID reported SSE4.2 (established in [`Sse42::get`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sse42(());

impl Sse42 {
    /// `Some` when the CPU has SSE4.2. The first call runs CPUID; later calls read the cache.
    /// Racing first calls both run CPUID and store the same answer.
    #[inline]
    pub(crate) fn get() -> Option<Self> {
        let known = match DETECTED.load(Ordering::Relaxed) {
            UNKNOWN => {
                let found = if cpuid_has_sse42() { PRESENT } else { ABSENT };
                DETECTED.store(found, Ordering::Relaxed);
                found
            }
            known => known,
        };
        // INVARIANT: PRESENT is stored only when CPUID reported SSE4.2.
        (known == PRESENT).then_some(Sse42(()))
    }

    #[inline(always)]
    fn u64(self, crc: u32, v: u64) -> u32 {
        let mut c = u64::from(crc);
        // SAFETY: `self` exists only on CPUs with SSE4.2 (type invariant), so the instruction
        // exists; it reads and writes only the two named registers and touches no memory, stack
        // or flags.
        unsafe {
            asm!("crc32 {c}, {v}", c = inout(reg) c, v = in(reg) v,
                 options(pure, nomem, nostack, preserves_flags));
        }
        // crc32 with a 64-bit destination zero-extends its 32-bit result.
        c as u32
    }

    #[inline(always)]
    fn u8(self, crc: u32, v: u8) -> u32 {
        let mut c = crc;
        // SAFETY: as in `u64`: SSE4.2 is present, registers only.
        unsafe {
            asm!("crc32 {c:e}, {v}", c = inout(reg) c, v = in(reg_byte) v,
                 options(pure, nomem, nostack, preserves_flags));
        }
        c
    }

    /// Advances the raw register `crc` over `data`.
    pub(crate) fn update(self, crc: u32, data: &[u8]) -> u32 {
        let (crc, data) = self.chains::<LONG>(crc, data, &LONG_SHIFT);
        let (crc, data) = self.chains::<SHORT>(crc, data, &SHORT_SHIFT);
        let (crc, data) = self.chains::<TINY>(crc, data, &TINY_SHIFT);
        self.single(crc, data)
    }

    /// Three chains over rounds of `3 * N` bytes; returns the register and what is left.
    #[inline(always)]
    fn chains<'a, const N: usize>(
        self,
        mut crc: u32,
        mut data: &'a [u8],
        join: &[[u32; 256]; 4],
    ) -> (u32, &'a [u8]) {
        while let Some((round, rest)) = data.split_at_checked(3 * N) {
            let (a, bc) = round.split_at(N);
            let (b, c) = bc.split_at(N);
            let (mut ca, mut cb, mut cc) = (crc, 0u32, 0u32);
            for ((x, y), z) in a
                .chunks_exact(8)
                .zip(b.chunks_exact(8))
                .zip(c.chunks_exact(8))
            {
                ca = self.u64(ca, word(x));
                cb = self.u64(cb, word(y));
                cc = self.u64(cc, word(z));
            }
            // Linearity: crc(a ++ b) = shift_|b|(crc(a)) ^ crc_from_zero(b).
            crc = shift(join, ca) ^ cb;
            crc = shift(join, crc) ^ cc;
            data = rest;
        }
        (crc, data)
    }

    fn single(self, mut crc: u32, data: &[u8]) -> u32 {
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            crc = self.u64(crc, word(w));
        }
        for &b in words.remainder() {
            crc = self.u8(crc, b);
        }
        crc
    }
}

/// An 8-byte chunk as a little-endian word (chunks_exact(8) always gives eight bytes).
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    chunk.try_into().map_or(0, u64::from_le_bytes)
}

#[allow(
    unused_unsafe,
    reason = "__cpuid is an unsafe fn up to Rust 1.8x and safe in newer releases"
)]
fn cpuid_has_sse42() -> bool {
    // SAFETY: CPUID exists on every x86_64 CPU and leaf 1 on every one of them; it only writes
    // the four result registers (the intrinsic preserves rbx for LLVM).
    let leaf1 = unsafe { core::arch::x86_64::__cpuid(1) };
    leaf1.ecx & (1 << 20) != 0
}
