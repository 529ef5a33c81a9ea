// SPDX-License-Identifier: BSD-2-Clause
//! The iSCSI Boot Firmware Table (iBFT v1.03): parse, validate, choose the boot pair, find it in a
//! memory image, and build one.
//!
//! Firmware (BIOS option ROM, iPXE, UEFI) logs in to the boot target and leaves this table behind;
//! it is the only thing the driver knows about the boot disk. Everything in it is untrusted: every
//! structure and string is bounds-checked against the table's length before it is read, and a
//! broken table yields an [`Error`] that names the structure, the field and the offsets involved.
//!
//! The parsed [`Ibft`] owns its data (`alloc`), so the kernel can unmap the table right after
//! [`parse`]. Things the specification allows a reader to skip (unknown structure ids, odd
//! versions, trailing bytes) are reported as [`Warning`]s instead of failing the boot.
//!
//! Layout (all integers little-endian, offsets from the table start, 0 = absent):
//!
//! ```text
//! 0   header    48 B  "iBFT", length, revision 1, checksum, oem_id[6], oem_table_id[8]
//! 48  control  >=18 B  id 1: extensions, initiator, (nic0, target0), (nic1, target1), more pairs…
//!     initiator >=74 B id 2: iSNS, SLP, RADIUS 1/2, name
//!     nic      >=102 B id 3: ip, prefix, origin, gateway, dns1/2, dhcp, vlan, mac, pci bdf, hostname
//!     target    >=54 B id 4: ip, port, lun[8], chap type, nic index, name, CHAP (reverse) name/secret
//! ```

mod boot;
mod build;
mod parse;
mod scan;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::lun::Lun;
use crate::secret::Secret;

/// The boot configuration is not the iBFT's alone (the loader's environment is its other
/// source); it lives in [`crate::bootcfg`] and is named here too, where it began.
pub use crate::bootcfg::{BootCandidate, BootConfig};
pub use boot::{BootError, SkipReason, Skipped};
pub use build::{build, set_checksum, BuildError};
pub use parse::{parse, Parsed, MAX_PAIRS};
pub use scan::{scan, scan_all, ScanHit, LEGACY_SCAN_END, LEGACY_SCAN_START};

/// Size of the table header.
pub const HEADER_LEN: usize = 48;
/// Offset of the Control structure (it follows the header).
pub const CONTROL_OFFSET: usize = HEADER_LEN;
/// Minimum length of each structure (iBFT v1.03); longer ones are accepted.
pub const CONTROL_MIN_LEN: u16 = 18;
pub const INITIATOR_MIN_LEN: u16 = 74;
pub const NIC_MIN_LEN: u16 = 102;
pub const TARGET_MIN_LEN: u16 = 54;

/// Structure ids from the common structure header.
pub mod id {
    pub const CONTROL: u8 = 1;
    pub const INITIATOR: u8 = 2;
    pub const NIC: u8 = 3;
    pub const TARGET: u8 = 4;
    pub const EXTENSIONS: u8 = 5;
}

/// Common flag bits (byte 5 of every structure header).
pub mod flags {
    /// The structure holds valid data.
    pub const BLOCK_VALID: u8 = 1 << 0;
    /// Firmware booted (or would boot) from this structure. Some firmware sets only this bit.
    pub const FIRMWARE_BOOT_SELECTED: u8 = 1 << 1;
    /// NIC: the address is global (not link-local).
    pub const NIC_GLOBAL: u8 = 1 << 2;
    /// Target: CHAP secrets come from RADIUS.
    pub const TARGET_RADIUS_CHAP: u8 = 1 << 2;
    /// Target: reverse CHAP secrets come from RADIUS.
    pub const TARGET_RADIUS_RCHAP: u8 = 1 << 3;
    /// Control: firmware logs in to one target only ("single login", also read as boot failover).
    pub const CONTROL_SINGLE_LOGIN: u8 = 1 << 0;
}

/// The signatures a table may carry: `iBFT` (spec, legacy scan), `IBFT` (ACPI 3.0b's name) and
/// `BIFT` (Broadcom firmware).
pub const SIGNATURES: [[u8; 4]; 3] = [*b"iBFT", *b"IBFT", *b"BIFT"];

/// Whether a structure's flags mark it usable. The spec's bit is "block valid"; some firmware sets
/// only "firmware boot selected", which implies validity, so either bit counts.
pub fn flags_valid(flags: u8) -> bool {
    flags & (self::flags::BLOCK_VALID | self::flags::FIRMWARE_BOOT_SELECTED) != 0
}

/// A whole iBFT, owned.
///
/// `nics[i]` and `targets[i]` are the Control structure's i-th (NIC, target) offset pair; a `None`
/// is an absent (zero or skipped) offset. [`parse`] never leaves a trailing `None`, so
/// `parse(build(t)) == t` holds for every parsed `t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ibft {
    pub signature: [u8; 4],
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
    /// Control flags ([`flags::CONTROL_SINGLE_LOGIN`]).
    pub control_flags: u8,
    pub initiator: Option<Initiator>,
    pub nics: Vec<Option<Nic>>,
    pub targets: Vec<Option<Target>>,
}

/// The Initiator structure.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Initiator {
    pub index: u8,
    pub flags: u8,
    pub isns_server: Option<IpAddr>,
    pub slp_server: Option<IpAddr>,
    pub primary_radius: Option<IpAddr>,
    pub secondary_radius: Option<IpAddr>,
    /// The initiator's iSCSI name (InitiatorName).
    pub name: Option<String>,
}

/// How the NIC's address was obtained (Windows' `NL_PREFIX_ORIGIN`, as the spec says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Other,
    Manual,
    WellKnown,
    Dhcp,
    RouterAdvertisement,
    /// "Unchanged": EDK2 writes 16 (`IpPrefixOriginUnchanged`), iPXE writes 0x0f. Keeps the byte.
    Unchanged(u8),
    Unknown(u8),
}

impl Origin {
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Origin::Other,
            1 => Origin::Manual,
            2 => Origin::WellKnown,
            3 => Origin::Dhcp,
            4 => Origin::RouterAdvertisement,
            0x0f | 16 => Origin::Unchanged(raw),
            other => Origin::Unknown(other),
        }
    }

    pub fn raw(self) -> u8 {
        match self {
            Origin::Other => 0,
            Origin::Manual => 1,
            Origin::WellKnown => 2,
            Origin::Dhcp => 3,
            Origin::RouterAdvertisement => 4,
            Origin::Unchanged(raw) | Origin::Unknown(raw) => raw,
        }
    }
}

/// PCI bus/device/function of a NIC (`bus << 8 | device << 3 | function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PciBdf {
    pub bus: u8,
    /// 0..=31
    pub device: u8,
    /// 0..=7
    pub function: u8,
}

impl PciBdf {
    pub fn from_raw(raw: u16) -> Self {
        let [bus, devfn] = raw.to_be_bytes();
        Self {
            bus,
            device: devfn >> 3,
            function: devfn & 7,
        }
    }

    pub fn raw(self) -> u16 {
        u16::from(self.bus) << 8 | u16::from(self.device & 0x1f) << 3 | u16::from(self.function & 7)
    }
}

impl fmt::Display for PciBdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// A NIC structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub index: u8,
    pub flags: u8,
    pub ip: Option<IpAddr>,
    pub prefix_len: u8,
    pub origin: Origin,
    pub gateway: Option<IpAddr>,
    pub primary_dns: Option<IpAddr>,
    pub secondary_dns: Option<IpAddr>,
    pub dhcp_server: Option<IpAddr>,
    /// The raw 802.1Q tag control field (0 = no VLAN); see [`Nic::vlan_id`].
    pub vlan: u16,
    pub mac: [u8; 6],
    pub pci_bdf: PciBdf,
    pub hostname: Option<String>,
}

impl Nic {
    /// The VLAN id (low 12 bits of the tag), or `None` when the NIC is untagged.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.vlan & 0x0fff {
            0 => None,
            id => Some(id),
        }
    }

    /// The 802.1p priority carried in the tag's top three bits.
    pub fn vlan_priority(&self) -> u8 {
        (self.vlan >> 13) as u8
    }

    pub fn is_valid(&self) -> bool {
        flags_valid(self.flags)
    }
}

/// Authentication the firmware used for a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChapType {
    None,
    Chap,
    Mutual,
    /// A value the spec does not define; a login must refuse it rather than guess.
    Unknown(u8),
}

impl ChapType {
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => ChapType::None,
            1 => ChapType::Chap,
            2 => ChapType::Mutual,
            other => ChapType::Unknown(other),
        }
    }

    pub fn raw(self) -> u8 {
        match self {
            ChapType::None => 0,
            ChapType::Chap => 1,
            ChapType::Mutual => 2,
            ChapType::Unknown(raw) => raw,
        }
    }
}

/// A Target structure. Secrets are [`Secret`]s: `Debug` of a target shows them redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub index: u8,
    pub flags: u8,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub lun: Lun,
    pub chap_type: ChapType,
    /// The `index` of the NIC this target is reached through.
    pub nic_index: u8,
    /// The target's iSCSI name (TargetName).
    pub name: Option<String>,
    pub chap_name: Option<String>,
    pub chap_secret: Option<Secret>,
    pub reverse_chap_name: Option<String>,
    pub reverse_chap_secret: Option<Secret>,
}

impl Target {
    pub fn is_valid(&self) -> bool {
        flags_valid(self.flags)
    }

    pub fn is_boot_selected(&self) -> bool {
        self.flags & flags::FIRMWARE_BOOT_SELECTED != 0
    }
}

/// Which structure of the table something refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Structure {
    Header,
    Control,
    Initiator,
    /// NIC of Control pair `n`.
    Nic(usize),
    /// Target of Control pair `n`.
    Target(usize),
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Structure::Header => f.write_str("header"),
            Structure::Control => f.write_str("control"),
            Structure::Initiator => f.write_str("initiator"),
            Structure::Nic(n) => write!(f, "nic{n}"),
            Structure::Target(n) => write!(f, "target{n}"),
        }
    }
}

/// The string fields of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringField {
    InitiatorName,
    Hostname,
    TargetName,
    ChapName,
    ChapSecret,
    ReverseChapName,
    ReverseChapSecret,
}

impl StringField {
    /// CHAP secrets are bytes, not text.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            StringField::ChapSecret | StringField::ReverseChapSecret
        )
    }
}

impl fmt::Display for StringField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StringField::InitiatorName => "initiator name",
            StringField::Hostname => "hostname",
            StringField::TargetName => "target name",
            StringField::ChapName => "CHAP name",
            StringField::ChapSecret => "CHAP secret",
            StringField::ReverseChapName => "reverse CHAP name",
            StringField::ReverseChapSecret => "reverse CHAP secret",
        })
    }
}

/// Why a table was refused. Every variant names the structure and the offsets involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes were given than the table needs (`needed` counts from the table start).
    Truncated {
        needed: usize,
        available: usize,
    },
    BadSignature {
        found: [u8; 4],
    },
    /// The header's length cannot hold the header and the Control structure.
    LengthTooSmall {
        length: u32,
    },
    BadRevision {
        found: u8,
    },
    /// The bytes of the table do not sum to zero (mod 256).
    BadChecksum {
        sum: u8,
    },
    /// A structure's header or body reaches past the table's end.
    StructureOutOfRange {
        structure: Structure,
        offset: usize,
        length: usize,
        table_length: usize,
    },
    /// A structure offset points into the 48-byte table header.
    StructureInHeader {
        structure: Structure,
        offset: usize,
    },
    /// A known structure id where another was expected (e.g. a NIC in a target slot).
    WrongStructureId {
        structure: Structure,
        offset: usize,
        expected: u8,
        found: u8,
    },
    /// A structure shorter than the spec's minimum.
    StructureTooShort {
        structure: Structure,
        offset: usize,
        length: u16,
        minimum: u16,
    },
    /// A string reaches past the table's end.
    StringOutOfRange {
        structure: Structure,
        field: StringField,
        offset: u16,
        length: u16,
        table_length: usize,
    },
    /// A string with a length but offset 0 (offset 0 means "absent").
    StringZeroOffset {
        structure: Structure,
        field: StringField,
        length: u16,
    },
    /// A string that must be text (names) is not UTF-8.
    StringNotUtf8 {
        structure: Structure,
        field: StringField,
        offset: u16,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By value (every field is Copy): a field formatted through a reference takes the
        // reference's formatting impl, `&usize`'s `LowerHex` a function of its own.
        match *self {
            Error::Truncated { needed, available } => {
                write!(f, "iBFT truncated: needs {needed} bytes, {available} available")
            }
            Error::BadSignature { found } => {
                // As `{:02x?}` writes it, without `[u8; 4]`'s `Debug` (a list builder).
                let [a, b, c, d] = found;
                write!(
                    f,
                    "iBFT signature [{a:02x}, {b:02x}, {c:02x}, {d:02x}] is none of iBFT/IBFT/BIFT"
                )
            }
            Error::LengthTooSmall { length } => {
                write!(f, "iBFT length {length} cannot hold header and control structure")
            }
            Error::BadRevision { found } => write!(f, "iBFT revision {found}, expected 1"),
            Error::BadChecksum { sum } => {
                write!(f, "iBFT checksum wrong: bytes sum to {sum:#04x}, not 0")
            }
            Error::StructureOutOfRange {
                structure,
                offset,
                length,
                table_length,
            } => write!(
                f,
                "iBFT {structure} at {offset:#x} (+{length}) reaches past table length {table_length}"
            ),
            Error::StructureInHeader { structure, offset } => {
                write!(f, "iBFT {structure} offset {offset:#x} points into the table header")
            }
            Error::WrongStructureId {
                structure,
                offset,
                expected,
                found,
            } => write!(
                f,
                "iBFT {structure} at {offset:#x} has structure id {found}, expected {expected}"
            ),
            Error::StructureTooShort {
                structure,
                offset,
                length,
                minimum,
            } => write!(
                f,
                "iBFT {structure} at {offset:#x} is {length} bytes, minimum {minimum}"
            ),
            Error::StringOutOfRange {
                structure,
                field,
                offset,
                length,
                table_length,
            } => write!(
                f,
                "iBFT {structure} {field} at {offset:#x} (+{length}) reaches past table length {table_length}"
            ),
            Error::StringZeroOffset {
                structure,
                field,
                length,
            } => write!(f, "iBFT {structure} {field} has length {length} but offset 0"),
            Error::StringNotUtf8 {
                structure,
                field,
                offset,
            } => write!(f, "iBFT {structure} {field} at {offset:#x} is not UTF-8"),
        }
    }
}

impl core::error::Error for Error {}

/// Something a reader may skip, reported so the driver can log it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A Control offset points to a structure id this version does not know (or to an
    /// extensions structure, id 5, which it does not use); that slot is treated as absent.
    UnknownStructure {
        structure: Structure,
        offset: usize,
        id: u8,
    },
    /// A structure version other than 1.
    UnexpectedVersion { structure: Structure, version: u8 },
    /// Control's "extensions" field is non-zero (reserved in v1.03).
    ControlExtensions { value: u16 },
    /// The Control structure's length leaves a half pair (one u16) after its last full pair.
    ControlTrailingBytes { length: u16 },
    /// More (NIC, target) pairs than [`MAX_PAIRS`]; only the first `read` were read.
    TooManyPairs { pairs: usize, read: usize },
    /// A string whose length counts a NUL (the spec's excludes it); read up to the NUL.
    StringWithNul {
        structure: Structure,
        field: StringField,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By value, as `Error`'s.
        match *self {
            Warning::UnknownStructure {
                structure,
                offset,
                id,
            } => write!(
                f,
                "iBFT {structure} at {offset:#x} has unknown structure id {id}; ignored"
            ),
            Warning::UnexpectedVersion { structure, version } => {
                write!(
                    f,
                    "iBFT {structure} has version {version}, expected 1; read as 1"
                )
            }
            Warning::ControlExtensions { value } => {
                write!(f, "iBFT control extensions field is {value:#x}; ignored")
            }
            Warning::ControlTrailingBytes { length } => {
                write!(
                    f,
                    "iBFT control length {length} ends in half a pair; ignored"
                )
            }
            Warning::TooManyPairs { pairs, read } => {
                write!(
                    f,
                    "iBFT control lists {pairs} NIC/target pairs; only the first {read} read"
                )
            }
            Warning::StringWithNul { structure, field } => {
                write!(f, "iBFT {structure} {field} contains a NUL; read up to it")
            }
        }
    }
}
