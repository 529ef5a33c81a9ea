// SPDX-License-Identifier: BSD-2-Clause
//! CRC32C for the iSCSI digests: the kernel's `calculate_crc32c` (sys/libkern/gsb_crc32.c, the
//! function iscsi(4)'s icl_soft uses; it takes SSE4.2's `crc32` where the CPU has it, else
//! tables). isboot-crc32c's `kernel` feature calls it through `isboot_crc32c_update`, so that
//! the crate's own tables (20 KiB) and SSE4.2 chains stay out of the module.

use crate::bindings;

/// Advances a raw CRC32C register (no initial or final inversion, as `calculate_crc32c` and
/// `isboot_crc32c::paths::update` both count) over `data`.
#[unsafe(no_mangle)]
pub extern "Rust" fn isboot_crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = crc;
    // `length` is an unsigned int: a larger buffer goes in pieces that fit it.
    for piece in data.chunks(u32::MAX as usize) {
        let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
        // SAFETY: `piece` is valid for reads of `len` bytes (its whole length, below 2^32), and
        // calculate_crc32c only reads them; it keeps no pointer after returning.
        crc = unsafe { bindings::calculate_crc32c(crc, piece.as_ptr(), len) };
    }
    crc
}
