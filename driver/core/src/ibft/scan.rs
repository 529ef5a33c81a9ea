// SPDX-License-Identifier: BSD-2-Clause
//! Finding a table in a memory image the way legacy-BIOS readers do.
//!
//! Under BIOS, firmware (iPXE among others) leaves the table in base memory without listing it in
//! ACPI; the only way to find it is to scan 0x80000–0xFFFFF on 16-byte boundaries for `iBFT`,
//! skipping the VGA/option-ROM hole 0xA0000–0xBFFFF. RAM also holds decoys: the bare string in
//! firmware code and stale copies with a wrong checksum. A hit counts only when its length keeps it
//! below 1 MiB, its revision is 1 and its bytes sum to zero; otherwise the scan moves on.

use core::ops::Range;

use super::parse::check_header;
use super::HEADER_LEN;

/// First physical address scanned.
pub const LEGACY_SCAN_START: u64 = 0x8_0000;
/// End (exclusive) of the scan: a table must end at or below 1 MiB.
pub const LEGACY_SCAN_END: u64 = 0x10_0000;
/// Video memory and option ROMs: never scanned.
const HOLE: Range<u64> = 0xa_0000..0xc_0000;

/// A table found by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanHit {
    /// Physical address of the table.
    pub phys_addr: u64,
    /// Offset of the table in the image.
    pub offset: usize,
    /// The table's length (from its header).
    pub length: usize,
}

impl ScanHit {
    /// The table's bytes within the image the scan was given.
    pub fn table<'a>(&self, image: &'a [u8]) -> Option<&'a [u8]> {
        image.get(self.offset..self.offset.checked_add(self.length)?)
    }
}

/// The first valid table in `image`, which holds the physical range `[base, base + image.len())`.
pub fn scan(image: &[u8], base: u64) -> Option<ScanHit> {
    scan_all(image, base).next()
}

/// Every valid table in `image` (see [`scan`]), lowest address first.
pub fn scan_all(image: &[u8], base: u64) -> impl Iterator<Item = ScanHit> + '_ {
    let image_end = base.saturating_add(image.len() as u64);
    let last = LEGACY_SCAN_END.min(image_end);
    // A base too close to u64::MAX has no 16-byte boundary left: nothing to scan.
    let first = base
        .max(LEGACY_SCAN_START)
        .checked_next_multiple_of(16)
        .unwrap_or(last);
    (first..last)
        .step_by(16)
        .filter(|addr| !HOLE.contains(addr))
        .filter_map(move |addr| hit_at(image, base, addr))
}

fn hit_at(image: &[u8], base: u64, addr: u64) -> Option<ScanHit> {
    let offset = usize::try_from(addr.checked_sub(base)?).ok()?;
    let rest = image.get(offset..)?;
    if rest.get(..4)? != b"iBFT" || rest.len() < HEADER_LEN {
        return None;
    }
    let length = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    if addr.checked_add(u64::from(length))? > LEGACY_SCAN_END {
        return None;
    }
    let table = check_header(rest).ok()?;
    Some(ScanHit {
        phys_addr: addr,
        offset,
        length: table.len(),
    })
}
