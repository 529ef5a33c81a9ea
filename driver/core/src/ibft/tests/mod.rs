// SPDX-License-Identifier: BSD-2-Clause
//! iBFT tests, mirrored per file: the real iPXE tables in tests/data/ibft (values from the .txt
//! beside each .bin) and round trips through the builder (`fixtures.rs`), one built table per
//! way a table can be broken (`malformed.rs`), the choice of the boot pair (`boot.rs`), the
//! memory-image scan (`scan.rs`). The helpers here build the tables.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::secret::Secret;

pub(super) const NOCHAP: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-nochap.bin");
pub(super) const CHAP: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-chap.bin");
pub(super) const MUTUAL: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin");
pub(super) const TWO: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-two-targets.bin");
pub(super) const FIXTURES: [(&str, &[u8]); 4] = [
    ("nochap", NOCHAP),
    ("chap", CHAP),
    ("mutualchap", MUTUAL),
    ("two-targets", TWO),
];

pub(super) fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

pub(super) fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

pub(super) fn parse_ok(bytes: &[u8]) -> Ibft {
    let p = parse(bytes).unwrap_or_else(|e| panic!("parse failed: {e}"));
    assert_eq!(p.warnings, vec![], "unexpected warnings");
    p.ibft
}

/// The parts every iPXE fixture shares: header, initiator and the one DHCP NIC
/// (ip=127.0.0.15/24 origin=dhcp gw=127.0.0.1 dns1=127.0.0.3 dhcp=127.0.0.1 mac 52:54:00:12:34:56
/// at PCI 00:02.0).
pub(super) fn assert_ipxe_common(t: &Ibft, length: usize, bytes: &[u8]) {
    assert_eq!(bytes.len(), length);
    assert_eq!(&t.signature, b"iBFT");
    assert_eq!(&t.oem_id, b"FENSYS");
    assert_eq!(&t.oem_table_id, b"iPXE\0\0\0\0");
    assert_eq!(t.control_flags, 0);
    let i = t.initiator.as_ref().unwrap();
    assert_eq!(
        *i,
        Initiator {
            index: 0,
            flags: 0x03,
            isns_server: None,
            slp_server: None,
            primary_radius: None,
            secondary_radius: None,
            name: s("iqn.2025-01.test.rig:initiator-ipxe"),
        }
    );
    assert_eq!(t.nics.len(), 1);
    let nic = t.nics[0].as_ref().unwrap();
    assert_eq!(
        *nic,
        Nic {
            index: 0,
            flags: 0x03,
            ip: v4(127, 0, 0, 15),
            prefix_len: 24,
            origin: Origin::Dhcp,
            gateway: v4(127, 0, 0, 1),
            primary_dns: v4(127, 0, 0, 3),
            secondary_dns: None,
            dhcp_server: v4(127, 0, 0, 1),
            vlan: 0,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            pci_bdf: PciBdf {
                bus: 0,
                device: 2,
                function: 0
            },
            hostname: None,
        }
    );
    assert_eq!(nic.vlan_id(), None);
    assert_eq!(nic.pci_bdf.raw(), 0x0010);
    assert_eq!(format!("{}", nic.pci_bdf), "00:02.0");
}

pub(super) fn tgtd_target(name: &str, chap_type: ChapType) -> Target {
    Target {
        index: 0,
        flags: 0x03,
        ip: v4(127, 0, 0, 1),
        port: 3260,
        lun: Lun([0, 1, 0, 0, 0, 0, 0, 0]),
        chap_type,
        nic_index: 0,
        name: s(name),
        chap_name: None,
        chap_secret: None,
        reverse_chap_name: None,
        reverse_chap_secret: None,
    }
}

// ---- built tables ------------------------------------------------------------------------------

pub(super) fn sample_nic(index: u8) -> Nic {
    Nic {
        index,
        flags: flags::BLOCK_VALID,
        ip: v4(192, 168, 7, 10 + index),
        prefix_len: 24,
        origin: Origin::Manual,
        gateway: v4(192, 168, 7, 1),
        primary_dns: v4(192, 168, 7, 2),
        secondary_dns: v4(192, 168, 7, 3),
        dhcp_server: None,
        vlan: 0,
        mac: [2, 0, 0, 0, 0, index],
        pci_bdf: PciBdf {
            bus: 3,
            device: 0x1f,
            function: 7,
        },
        hostname: s("diskless"),
    }
}

pub(super) fn sample_target(index: u8, nic_index: u8) -> Target {
    Target {
        index,
        flags: flags::BLOCK_VALID,
        ip: v4(192, 168, 7, 100 + index),
        port: 3260 + u16::from(index),
        lun: Lun::from_number(u64::from(index)).unwrap(),
        chap_type: ChapType::Chap,
        nic_index,
        name: Some(format!("iqn.2025-01.example:t{index}")),
        chap_name: s("user"),
        chap_secret: Some(Secret::new(b"0123456789ab")),
        reverse_chap_name: None,
        reverse_chap_secret: None,
    }
}

pub(super) fn sample() -> Ibft {
    Ibft {
        signature: *b"iBFT",
        oem_id: *b"ISBOOT",
        oem_table_id: *b"TESTTBL\0",
        control_flags: 0,
        initiator: Some(Initiator {
            index: 0,
            flags: flags::BLOCK_VALID,
            name: s("iqn.2025-01.example:initiator"),
            ..Initiator::default()
        }),
        nics: vec![Some(sample_nic(0))],
        targets: vec![Some(sample_target(0, 0))],
    }
}

pub(super) fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Offsets of the structures in a built table, read back from its Control structure.
pub(super) fn initiator_off(b: &[u8]) -> usize {
    u16_at(b, CONTROL_OFFSET + 8)
}
pub(super) fn nic_off(b: &[u8], k: usize) -> usize {
    u16_at(b, CONTROL_OFFSET + 10 + 4 * k)
}
pub(super) fn target_off(b: &[u8], k: usize) -> usize {
    u16_at(b, CONTROL_OFFSET + 12 + 4 * k)
}

/// Writes `bytes` at `at` and fixes the checksum, so the parser gets past the header.
pub(super) fn patched(t: &Ibft, at: impl Fn(&[u8]) -> usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = build(t).unwrap();
    let at = at(&b);
    b[at..at + bytes.len()].copy_from_slice(bytes);
    set_checksum(&mut b);
    b
}

pub(super) fn parse_err(b: &[u8]) -> Error {
    match parse(b) {
        Ok(p) => panic!("parsed a broken table: {p:?}"),
        Err(e) => e,
    }
}

mod boot;
mod fixtures;
mod malformed;
mod scan;
