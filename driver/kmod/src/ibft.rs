// SPDX-License-Identifier: BSD-2-Clause
//! Finding the iBFT the firmware left behind and copying it out (parsing is the core's).
//!
//! 1. ACPI: tables `iBFT`, `IBFT` (ACPI 3.0b's name) and `BIFT` (Broadcom), instance
//!    `hw.ibft.acpi_table` (1-based, for machines where several iSCSI firmwares publish one).
//!    On UEFI boots this is the only legal place.
//! 2. Legacy BIOS boots only: the low-memory scan of 0x80000–0xFFFFF on 16-byte boundaries
//!    (`isboot_core::ibft::scan`), which skips decoys by length and checksum. iPXE under BIOS
//!    leaves the table in hidden base memory and lists it nowhere else.
//!
//! The table is copied into kernel memory right away and the mapping dropped; the copy is
//! zeroed when the caller is done with it, since it holds the CHAP secrets in plain text.

use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::ptr;
use core::sync::atomic::{compiler_fence, Ordering};

use isboot_core::ibft::{scan, HEADER_LEN, LEGACY_SCAN_END, LEGACY_SCAN_START, SIGNATURES};

use crate::bindings as sys;

/// Largest table accepted. Real tables are well under 4 KiB (iPXE's: ~600 bytes); the bound
/// keeps a corrupt length field from asking for a large allocation.
pub const MAX_TABLE_LEN: usize = 64 * 1024;

/// Video memory and option ROMs at 0xA0000–0xBFFFF are never read.
const LEGACY_HOLE: (u64, u64) = (0xa_0000, 0xc_0000);

/// Where a table was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Acpi { signature: [u8; 4], instance: u32 },
    LowMemory { phys_addr: u64 },
}

impl fmt::Display for Source {
    #[optimize(size)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By value: an integer formatted through a reference instantiates the reference's
        // `Display` here, at opt-level 2 (~250 bytes each), beside core's own.
        match *self {
            Source::Acpi {
                signature,
                instance,
            } => {
                let sig = core::str::from_utf8(&signature).unwrap_or("????");
                write!(f, "ACPI table {sig} instance {instance}")
            }
            Source::LowMemory { phys_addr } => write!(f, "base memory at {phys_addr:#x}"),
        }
    }
}

/// A copy of the table. Zeroed on drop: it holds CHAP secrets.
#[derive(Debug)]
pub struct Found {
    pub table: Vec<u8>,
    pub source: Source,
}

impl Drop for Found {
    #[optimize(size)]
    fn drop(&mut self) {
        for b in self.table.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference; a volatile write is not elided.
            unsafe { ptr::write_volatile(b, 0) };
        }
        compiler_fence(Ordering::SeqCst);
    }
}

/// Why no table could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireError {
    /// No ACPI table, and (on BIOS boots) nothing valid in base memory.
    NotFound {
        uefi: bool,
    },
    /// The ACPI table claims more than [`MAX_TABLE_LEN`] bytes.
    TooLong {
        source: Source,
        len: usize,
    },
    NoMemory {
        len: usize,
    },
    /// pmap_mapbios failed for the scan window.
    MapFailed {
        phys_addr: u64,
        len: usize,
    },
}

impl AcquireError {
    #[optimize(size)]
    pub fn errno(&self) -> i32 {
        (match self {
            AcquireError::NotFound { .. } => sys::ENXIO,
            AcquireError::TooLong { .. } => sys::EFBIG,
            AcquireError::NoMemory { .. } | AcquireError::MapFailed { .. } => sys::ENOMEM,
        }) as i32
    }
}

impl fmt::Display for AcquireError {
    #[optimize(size)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By value, as `Source`'s.
        match *self {
            AcquireError::NotFound { uefi: true } => f.write_str(
                "no iBFT: no ACPI table iBFT/IBFT/BIFT (UEFI boot: no base-memory scan); \
                 was the machine booted from iSCSI?",
            ),
            AcquireError::NotFound { uefi: false } => f.write_str(
                "no iBFT: no ACPI table iBFT/IBFT/BIFT and no valid table in base memory \
                 0x80000-0xfffff; was the machine booted from iSCSI?",
            ),
            AcquireError::TooLong { source, len } => {
                write!(
                    f,
                    "iBFT in {source} claims {len} bytes (limit {MAX_TABLE_LEN})"
                )
            }
            AcquireError::NoMemory { len } => write!(f, "no memory for a {len}-byte iBFT copy"),
            AcquireError::MapFailed { phys_addr, len } => {
                write!(f, "cannot map {len} bytes of base memory at {phys_addr:#x}")
            }
        }
    }
}

/// Finds the table: ACPI first, then (BIOS boots) base memory.
#[optimize(size)]
#[inline(never)]
pub fn acquire() -> Result<Found, AcquireError> {
    let instance = crate::sysctl::acpi_table_instance();
    for signature in SIGNATURES {
        if let Some(found) = from_acpi(signature, instance)? {
            return Ok(found);
        }
    }
    // SAFETY: reads a boot-time flag; no preconditions.
    let uefi = unsafe { sys::isboot_efi_boot() } != 0;
    if uefi {
        return Err(AcquireError::NotFound { uefi });
    }
    for (start, end) in [
        (LEGACY_SCAN_START, LEGACY_HOLE.0),
        (LEGACY_HOLE.1, LEGACY_SCAN_END),
    ] {
        if let Some(found) = from_low_memory(start, end.saturating_sub(start) as usize)? {
            return Ok(found);
        }
    }
    Err(AcquireError::NotFound { uefi })
}

#[optimize(size)]
fn acpi_copy(signature: &[u8; 4], instance: u32, buf: &mut [u8]) -> Option<usize> {
    let mut len = 0usize;
    let dst = if buf.is_empty() {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast::<c_void>()
    };
    // SAFETY: `signature` holds the 4 bytes the helper reads; `dst` is null or valid for
    // `buf.len()` bytes, which bounds the copy; `len` is a valid out pointer.
    let err = unsafe {
        sys::isboot_acpi_table_copy(
            signature.as_ptr().cast(),
            instance,
            dst,
            buf.len(),
            &mut len,
        )
    };
    (err == 0).then_some(len)
}

#[optimize(size)]
fn from_acpi(signature: [u8; 4], instance: u32) -> Result<Option<Found>, AcquireError> {
    let source = Source::Acpi {
        signature,
        instance,
    };
    let Some(len) = acpi_copy(&signature, instance, &mut []) else {
        return Ok(None);
    };
    if len > MAX_TABLE_LEN {
        return Err(AcquireError::TooLong { source, len });
    }
    // A table shorter than its header is copied anyway: the parser names what is wrong with it.
    let want = len.max(HEADER_LEN);
    let mut table = Vec::new();
    table
        .try_reserve_exact(want)
        .map_err(|_| AcquireError::NoMemory { len: want })?;
    table.resize(want, 0);
    let mut found = Found { table, source };
    match acpi_copy(&signature, instance, &mut found.table) {
        Some(len) => {
            found.table.truncate(len);
            Ok(Some(found))
        }
        None => Ok(None),
    }
}

/// A read-only mapping of physical memory from pmap_mapbios, unmapped on drop.
struct BiosMap {
    va: *mut u8,
    len: usize,
}

impl BiosMap {
    #[optimize(size)]
    fn new(phys_addr: u64, len: usize) -> Result<Self, AcquireError> {
        // SAFETY: maps `len` bytes of physical memory below 1 MiB (firmware and base RAM, which
        // the kernel does not hand out for other uses); returns null on failure.
        let va = unsafe { sys::isboot_mapbios(phys_addr, len) }.cast::<u8>();
        if va.is_null() {
            return Err(AcquireError::MapFailed { phys_addr, len });
        }
        Ok(Self { va, len })
    }

    #[optimize(size)]
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping covers `len` readable bytes and lives as long as `self`; nothing
        // in the kernel writes this memory while the module loads.
        unsafe { core::slice::from_raw_parts(self.va, self.len) }
    }
}

impl Drop for BiosMap {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: `va`/`len` are exactly what pmap_mapbios returned and were given; no slice
        // into the mapping outlives `self`.
        unsafe { sys::isboot_unmapbios(self.va.cast(), self.len) }
    }
}

#[optimize(size)]
fn from_low_memory(start: u64, len: usize) -> Result<Option<Found>, AcquireError> {
    let map = BiosMap::new(start, len)?;
    let image = map.bytes();
    let Some(hit) = scan(image, start) else {
        return Ok(None);
    };
    let Some(bytes) = hit.table(image) else {
        return Ok(None);
    };
    let mut table = Vec::new();
    table
        .try_reserve_exact(bytes.len())
        .map_err(|_| AcquireError::NoMemory { len: bytes.len() })?;
    table.extend_from_slice(bytes);
    Ok(Some(Found {
        table,
        source: Source::LowMemory {
            phys_addr: hit.phys_addr,
        },
    }))
}
