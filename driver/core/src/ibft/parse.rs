// SPDX-License-Identifier: BSD-2-Clause
//! Parsing and validation.
//!
//! What can never panic: the table slice is cut to the header's length once; every structure is
//! checked (`offset + length <= table length`, `length >= minimum`) before a [`Fields`] view of it
//! exists; every string is checked (`offset + length <= table length`) before it is copied. Field
//! reads go through `get`, so even a wrong constant would read zeros rather than panic.

use crate::lun::Lun;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv6Addr};

use super::{
    id, ChapType, Error, Ibft, Initiator, Nic, Origin, PciBdf, StringField, Structure, Target,
    Warning, CONTROL_MIN_LEN, CONTROL_OFFSET, HEADER_LEN, INITIATOR_MIN_LEN, NIC_MIN_LEN,
    SIGNATURES, TARGET_MIN_LEN,
};
use crate::secret::Secret;

/// At most this many Control (NIC, target) pairs are read. The spec sets no limit, but each pair
/// costs kernel memory and real firmware writes two (iPXE, EDK2 up to a handful); a larger count
/// is reported as [`Warning::TooManyPairs`] and the rest ignored.
pub const MAX_PAIRS: usize = 32;

/// Offsets inside the Control structure.
mod control {
    pub const EXTENSIONS: usize = 6;
    pub const INITIATOR: usize = 8;
    pub const FIRST_PAIR: usize = 10;
}

/// A parsed table and what the parser chose to skip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub ibft: Ibft,
    pub warnings: Vec<Warning>,
}

/// Parses and validates a table. `bytes` starts at the table; it may be longer than the table
/// (a mapped page), never shorter.
#[inline(never)]
pub fn parse(bytes: &[u8]) -> Result<Parsed, Error> {
    let table = check_header(bytes)?;
    let mut p = Parser {
        table,
        warnings: Vec::new(),
    };
    let ibft = p.table()?;
    Ok(Parsed {
        ibft,
        warnings: p.warnings,
    })
}

/// Checks signature, length, revision and checksum; returns the table cut to its length.
pub(crate) fn check_header(bytes: &[u8]) -> Result<&[u8], Error> {
    let header = bytes.get(..HEADER_LEN).ok_or(Error::Truncated {
        needed: HEADER_LEN,
        available: bytes.len(),
    })?;
    let h = Fields(header);
    let signature = h.array::<4>(0);
    if !SIGNATURES.contains(&signature) {
        return Err(Error::BadSignature { found: signature });
    }
    let length = h.u32(4);
    let min = CONTROL_OFFSET + usize::from(CONTROL_MIN_LEN);
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if len < min {
        return Err(Error::LengthTooSmall { length });
    }
    let table = bytes.get(..len).ok_or(Error::Truncated {
        needed: len,
        available: bytes.len(),
    })?;
    let revision = h.u8(8);
    if revision != 1 {
        return Err(Error::BadRevision { found: revision });
    }
    let sum = table.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    if sum != 0 {
        return Err(Error::BadChecksum { sum });
    }
    Ok(table)
}

/// A checked view of one structure (or the header).
///
/// # Invariants
/// Built only from a slice at least as long as the structure's minimum length, so every read at a
/// fixed field offset is in bounds; reads still use `get` and yield zeros past the end.
#[derive(Clone, Copy)]
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u8(self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }

    fn u16(self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }

    fn u32(self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }

    fn array<const N: usize>(self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = at.checked_add(N).and_then(|end| self.0.get(at..end)) {
            out.copy_from_slice(src);
        }
        out
    }

    fn ip(self, at: usize) -> Option<IpAddr> {
        decode_ip(self.array(at))
    }
}

/// A 16-byte iBFT address: all zero or `::ffff:0.0.0.0` is unset, `::ffff:a.b.c.d` is IPv4,
/// anything else IPv6.
pub(crate) fn decode_ip(raw: [u8; 16]) -> Option<IpAddr> {
    let v6 = Ipv6Addr::from(raw);
    if v6.is_unspecified() {
        return None;
    }
    match v6.to_ipv4_mapped() {
        Some(v4) if v4.is_unspecified() => None,
        Some(v4) => Some(IpAddr::V4(v4)),
        None => Some(IpAddr::V6(v6)),
    }
}

struct Parser<'a> {
    table: &'a [u8],
    warnings: Vec<Warning>,
}

impl<'a> Parser<'a> {
    fn table(&mut self) -> Result<Ibft, Error> {
        let h = Fields(self.table);
        let control = self
            .structure(
                Structure::Control,
                CONTROL_OFFSET,
                id::CONTROL,
                CONTROL_MIN_LEN,
            )?
            .ok_or(Error::WrongStructureId {
                structure: Structure::Control,
                offset: CONTROL_OFFSET,
                expected: id::CONTROL,
                found: self.table.get(CONTROL_OFFSET).copied().unwrap_or(0),
            })?;
        let extensions = control.u16(control::EXTENSIONS);
        if extensions != 0 {
            self.warnings
                .push(Warning::ControlExtensions { value: extensions });
        }
        let control_len = control.u16(2);
        let pair_bytes = usize::from(control_len).saturating_sub(control::FIRST_PAIR);
        if pair_bytes % 4 != 0 {
            self.warnings.push(Warning::ControlTrailingBytes {
                length: control_len,
            });
        }
        let mut pairs = pair_bytes / 4;
        let last_used = (0..pairs).rev().find(|&k| {
            let (nic_at, target_at) = pair_offsets(k);
            control.u16(nic_at) != 0 || control.u16(target_at) != 0
        });
        pairs = last_used.map_or(0, |k| k.saturating_add(1));
        if pairs > MAX_PAIRS {
            self.warnings.push(Warning::TooManyPairs {
                pairs,
                read: MAX_PAIRS,
            });
            pairs = MAX_PAIRS;
        }

        let initiator = match self.structure(
            Structure::Initiator,
            usize::from(control.u16(control::INITIATOR)),
            id::INITIATOR,
            INITIATOR_MIN_LEN,
        )? {
            Some(f) => Some(self.initiator(f)?),
            None => None,
        };

        let mut nics = Vec::with_capacity(pairs);
        let mut targets = Vec::with_capacity(pairs);
        for k in 0..pairs {
            let (nic_at, target_at) = pair_offsets(k);
            let nic_off = usize::from(control.u16(nic_at));
            let target_off = usize::from(control.u16(target_at));
            let nic = match self.structure(Structure::Nic(k), nic_off, id::NIC, NIC_MIN_LEN)? {
                Some(f) => Some(self.nic(k, f)?),
                None => None,
            };
            let target = match self.structure(
                Structure::Target(k),
                target_off,
                id::TARGET,
                TARGET_MIN_LEN,
            )? {
                Some(f) => Some(self.target(k, f)?),
                None => None,
            };
            nics.push(nic);
            targets.push(target);
        }
        trim_trailing_none(&mut nics);
        trim_trailing_none(&mut targets);

        Ok(Ibft {
            signature: h.array(0),
            oem_id: h.array(10),
            oem_table_id: h.array(16),
            control_flags: control.u8(5),
            initiator,
            nics,
            targets,
        })
    }

    /// Validates the structure at `offset` (0 = absent). Unknown ids become a warning and an
    /// absent slot; a known id in the wrong slot is an error.
    fn structure(
        &mut self,
        structure: Structure,
        offset: usize,
        expected: u8,
        minimum: u16,
    ) -> Result<Option<Fields<'a>>, Error> {
        if offset == 0 {
            return Ok(None);
        }
        if offset < HEADER_LEN {
            return Err(Error::StructureInHeader { structure, offset });
        }
        let table_length = self.table.len();
        let out_of_range = |length: usize| Error::StructureOutOfRange {
            structure,
            offset,
            length,
            table_length,
        };
        let head = self
            .table
            .get(offset..offset.saturating_add(6))
            .map(Fields)
            .ok_or(out_of_range(6))?;
        let found = head.u8(0);
        let version = head.u8(1);
        let length = head.u16(2);
        if found != expected {
            if (id::CONTROL..=id::TARGET).contains(&found) {
                return Err(Error::WrongStructureId {
                    structure,
                    offset,
                    expected,
                    found,
                });
            }
            self.warnings.push(Warning::UnknownStructure {
                structure,
                offset,
                id: found,
            });
            return Ok(None);
        }
        if version != 1 {
            self.warnings
                .push(Warning::UnexpectedVersion { structure, version });
        }
        if length < minimum {
            return Err(Error::StructureTooShort {
                structure,
                offset,
                length,
                minimum,
            });
        }
        let body = self
            .table
            .get(offset..offset.saturating_add(usize::from(length)))
            .ok_or(out_of_range(usize::from(length)))?;
        Ok(Some(Fields(body)))
    }

    /// The bytes of the string whose (length, offset) pair sits at `at` in `f`. Firmware that
    /// counts the NUL terminator in the length works with C readers, which stop at it, so a NUL
    /// ends the string here too (with a warning): names end at the first NUL; secrets, which
    /// may hold any byte, lose only trailing NULs. A string of NULs only is absent.
    fn bytes(
        &mut self,
        structure: Structure,
        field: StringField,
        f: Fields<'_>,
        at: usize,
    ) -> Result<Option<&'a [u8]>, Error> {
        let length = f.u16(at);
        let offset = f.u16(at.saturating_add(2));
        if length == 0 {
            return Ok(None);
        }
        if offset == 0 {
            return Err(Error::StringZeroOffset {
                structure,
                field,
                length,
            });
        }
        let start = usize::from(offset);
        let raw = self
            .table
            .get(start..start.saturating_add(usize::from(length)))
            .ok_or(Error::StringOutOfRange {
                structure,
                field,
                offset,
                length,
                table_length: self.table.len(),
            })?;
        let end = if field.is_secret() {
            raw.iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last.saturating_add(1))
        } else {
            raw.iter().position(|&b| b == 0).unwrap_or(raw.len())
        };
        if end == raw.len() {
            return Ok(Some(raw));
        }
        self.warnings
            .push(Warning::StringWithNul { structure, field });
        Ok(raw.get(..end).filter(|s| !s.is_empty()))
    }

    fn text(
        &mut self,
        structure: Structure,
        field: StringField,
        f: Fields<'_>,
        at: usize,
    ) -> Result<Option<String>, Error> {
        match self.bytes(structure, field, f, at)? {
            None => Ok(None),
            Some(b) => core::str::from_utf8(b)
                .map(|s| Some(String::from(s)))
                .map_err(|_| Error::StringNotUtf8 {
                    structure,
                    field,
                    offset: f.u16(at.saturating_add(2)),
                }),
        }
    }

    fn secret(
        &mut self,
        structure: Structure,
        field: StringField,
        f: Fields<'_>,
        at: usize,
    ) -> Result<Option<Secret>, Error> {
        Ok(self.bytes(structure, field, f, at)?.map(Secret::new))
    }

    fn initiator(&mut self, f: Fields<'_>) -> Result<Initiator, Error> {
        Ok(Initiator {
            index: f.u8(4),
            flags: f.u8(5),
            isns_server: f.ip(6),
            slp_server: f.ip(22),
            primary_radius: f.ip(38),
            secondary_radius: f.ip(54),
            name: self.text(Structure::Initiator, StringField::InitiatorName, f, 70)?,
        })
    }

    // `nic` and `target` are not inlined into `table`, their one caller: each alone saved
    // ~250 bytes of the module.
    #[inline(never)]
    fn nic(&mut self, k: usize, f: Fields<'_>) -> Result<Nic, Error> {
        Ok(Nic {
            index: f.u8(4),
            flags: f.u8(5),
            ip: f.ip(6),
            prefix_len: f.u8(22),
            origin: Origin::from_raw(f.u8(23)),
            gateway: f.ip(24),
            primary_dns: f.ip(40),
            secondary_dns: f.ip(56),
            dhcp_server: f.ip(72),
            vlan: f.u16(88),
            mac: f.array(90),
            pci_bdf: PciBdf::from_raw(f.u16(96)),
            hostname: self.text(Structure::Nic(k), StringField::Hostname, f, 98)?,
        })
    }

    #[inline(never)]
    fn target(&mut self, k: usize, f: Fields<'_>) -> Result<Target, Error> {
        let s = Structure::Target(k);
        Ok(Target {
            index: f.u8(4),
            flags: f.u8(5),
            ip: f.ip(6),
            port: f.u16(22),
            lun: Lun(f.array(24)),
            chap_type: ChapType::from_raw(f.u8(32)),
            nic_index: f.u8(33),
            name: self.text(s, StringField::TargetName, f, 34)?,
            chap_name: self.text(s, StringField::ChapName, f, 38)?,
            chap_secret: self.secret(s, StringField::ChapSecret, f, 42)?,
            reverse_chap_name: self.text(s, StringField::ReverseChapName, f, 46)?,
            reverse_chap_secret: self.secret(s, StringField::ReverseChapSecret, f, 50)?,
        })
    }
}

/// Offsets in the Control structure of pair `k`'s NIC and target offset fields. `k` is below
/// the Control length / 4, so the sums cannot saturate.
fn pair_offsets(k: usize) -> (usize, usize) {
    let nic = control::FIRST_PAIR.saturating_add(k.saturating_mul(4));
    (nic, nic.saturating_add(2))
}

fn trim_trailing_none<T>(v: &mut Vec<Option<T>>) {
    while matches!(v.last(), Some(None)) {
        v.pop();
    }
}
