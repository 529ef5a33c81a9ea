// SPDX-License-Identifier: BSD-2-Clause
//! Writing a table from an [`Ibft`]: used by tests to make broken tables on purpose, and by the
//! userland demo to point a real firmware table at another target.
//!
//! Layout: header, Control (at least two pairs, as v1.0 readers expect), the structures each at a
//! 16-byte boundary like iPXE places them, then the string heap (each string NUL-terminated, which
//! the spec does not require but C readers assume). `parse(build(t)) == t` for every parsed `t`.

#![cfg_attr(
    not(test),
    expect(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "writes an `Ibft` value (never firmware bytes) into a buffer it sized itself; \
                  `finish` refuses tables beyond the 16-bit offsets"
    )
)]

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use super::{
    id, Ibft, Initiator, Nic, Target, CONTROL_MIN_LEN, CONTROL_OFFSET, HEADER_LEN,
    INITIATOR_MIN_LEN, MAX_PAIRS, NIC_MIN_LEN, TARGET_MIN_LEN,
};

/// Why a table could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The table would exceed 65535 bytes, beyond what its 16-bit offsets address.
    TooLarge { length: usize },
    /// More pairs than a reader accepts ([`MAX_PAIRS`]).
    TooManyPairs { pairs: usize },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::TooLarge { length } => {
                write!(
                    f,
                    "iBFT would be {length} bytes, more than 16-bit offsets reach"
                )
            }
            BuildError::TooManyPairs { pairs } => {
                write!(
                    f,
                    "iBFT with {pairs} NIC/target pairs, at most {MAX_PAIRS} allowed"
                )
            }
        }
    }
}

impl core::error::Error for BuildError {}

/// Sets the checksum byte so that all bytes of `table` sum to zero (mod 256). `table` is exactly
/// the table (its header's length); shorter than a header, it is left alone.
pub fn set_checksum(table: &mut [u8]) {
    let Some(slot) = table.get_mut(9) else {
        return;
    };
    *slot = 0;
    let sum = table.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    if let Some(slot) = table.get_mut(9) {
        *slot = sum.wrapping_neg();
    }
}

/// Writes `t` as a complete, checksummed table.
pub fn build(t: &Ibft) -> Result<Vec<u8>, BuildError> {
    let pairs = t.nics.len().max(t.targets.len());
    if pairs > MAX_PAIRS {
        return Err(BuildError::TooManyPairs { pairs });
    }
    let control_len = usize::from(CONTROL_MIN_LEN).max(10 + 4 * pairs);
    let mut w = Writer {
        buf: alloc::vec![0u8; CONTROL_OFFSET],
        strings: Vec::new(),
    };
    w.buf[..4].copy_from_slice(&t.signature);
    w.buf[8] = 1;
    w.buf[10..16].copy_from_slice(&t.oem_id);
    w.buf[16..24].copy_from_slice(&t.oem_table_id);

    let control = w.structure(id::CONTROL, control_len, 0, t.control_flags);
    debug_assert_eq!(control, CONTROL_OFFSET);
    if let Some(i) = &t.initiator {
        let off = w.initiator(i);
        w.u16(control + 8, off);
    }
    for k in 0..pairs {
        if let Some(Some(nic)) = t.nics.get(k) {
            let off = w.nic(nic);
            w.u16(control + 10 + 4 * k, off);
        }
        if let Some(Some(target)) = t.targets.get(k) {
            let off = w.target(target);
            w.u16(control + 12 + 4 * k, off);
        }
    }
    w.finish()
}

struct Writer<'a> {
    buf: Vec<u8>,
    /// (position of a string's length field, its bytes), written into the heap at the end.
    strings: Vec<(usize, &'a [u8])>,
}

impl<'a> Writer<'a> {
    /// Appends a structure at the next 16-byte boundary; returns its offset.
    fn structure(&mut self, id: u8, len: usize, index: u8, flags: u8) -> usize {
        let off = self.buf.len().next_multiple_of(16);
        self.buf.resize(off + len, 0);
        self.buf[off] = id;
        self.buf[off + 1] = 1;
        self.u16(off + 2, len);
        self.buf[off + 4] = index;
        self.buf[off + 5] = flags;
        off
    }

    /// Writes a 16-bit field; values that do not fit are caught by `finish`'s length check,
    /// since every offset written is below the final length.
    fn u16(&mut self, at: usize, v: usize) {
        let v = u16::try_from(v).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn ip(&mut self, at: usize, ip: Option<IpAddr>) {
        let raw = match ip {
            None => [0; 16],
            Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
            Some(IpAddr::V6(v6)) => v6.octets(),
        };
        self.buf[at..at + 16].copy_from_slice(&raw);
    }

    fn string(&mut self, at: usize, s: Option<&'a [u8]>) {
        if let Some(s) = s.filter(|s| !s.is_empty()) {
            self.strings.push((at, s));
        }
    }

    fn initiator(&mut self, i: &'a Initiator) -> usize {
        let o = self.structure(
            id::INITIATOR,
            usize::from(INITIATOR_MIN_LEN),
            i.index,
            i.flags,
        );
        self.ip(o + 6, i.isns_server);
        self.ip(o + 22, i.slp_server);
        self.ip(o + 38, i.primary_radius);
        self.ip(o + 54, i.secondary_radius);
        self.string(o + 70, i.name.as_deref().map(str::as_bytes));
        o
    }

    fn nic(&mut self, n: &'a Nic) -> usize {
        let o = self.structure(id::NIC, usize::from(NIC_MIN_LEN), n.index, n.flags);
        self.ip(o + 6, n.ip);
        self.buf[o + 22] = n.prefix_len;
        self.buf[o + 23] = n.origin.raw();
        self.ip(o + 24, n.gateway);
        self.ip(o + 40, n.primary_dns);
        self.ip(o + 56, n.secondary_dns);
        self.ip(o + 72, n.dhcp_server);
        self.u16(o + 88, usize::from(n.vlan));
        self.buf[o + 90..o + 96].copy_from_slice(&n.mac);
        self.u16(o + 96, usize::from(n.pci_bdf.raw()));
        self.string(o + 98, n.hostname.as_deref().map(str::as_bytes));
        o
    }

    fn target(&mut self, t: &'a Target) -> usize {
        let o = self.structure(id::TARGET, usize::from(TARGET_MIN_LEN), t.index, t.flags);
        self.ip(o + 6, t.ip);
        self.u16(o + 22, usize::from(t.port));
        self.buf[o + 24..o + 32].copy_from_slice(&t.lun.0);
        self.buf[o + 32] = t.chap_type.raw();
        self.buf[o + 33] = t.nic_index;
        self.string(o + 34, t.name.as_deref().map(str::as_bytes));
        self.string(o + 38, t.chap_name.as_deref().map(str::as_bytes));
        self.string(o + 42, t.chap_secret.as_ref().map(|s| s.expose()));
        self.string(o + 46, t.reverse_chap_name.as_deref().map(str::as_bytes));
        self.string(o + 50, t.reverse_chap_secret.as_ref().map(|s| s.expose()));
        o
    }

    fn finish(mut self) -> Result<Vec<u8>, BuildError> {
        let strings = core::mem::take(&mut self.strings);
        for (at, s) in strings {
            let off = self.buf.len();
            self.buf.extend_from_slice(s);
            self.buf.push(0);
            if self.buf.len() > usize::from(u16::MAX) {
                return Err(BuildError::TooLarge {
                    length: self.buf.len(),
                });
            }
            self.u16(at, s.len());
            self.u16(at + 2, off);
        }
        let length = self.buf.len();
        if length > usize::from(u16::MAX) {
            return Err(BuildError::TooLarge { length });
        }
        self.buf[4..8].copy_from_slice(&(length as u32).to_le_bytes());
        set_checksum(&mut self.buf);
        debug_assert!(self.buf.len() >= HEADER_LEN);
        Ok(self.buf)
    }
}
