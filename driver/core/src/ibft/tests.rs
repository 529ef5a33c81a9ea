// SPDX-License-Identifier: BSD-2-Clause
//! iBFT tests: the real iPXE tables in tests/data/ibft (values from the .txt beside each .bin),
//! round trips through the builder, and one built table per way a table can be broken.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::secret::Secret;

const NOCHAP: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-nochap.bin");
const CHAP: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-chap.bin");
const MUTUAL: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin");
const TWO: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-two-targets.bin");
const FIXTURES: [(&str, &[u8]); 4] = [
    ("nochap", NOCHAP),
    ("chap", CHAP),
    ("mutualchap", MUTUAL),
    ("two-targets", TWO),
];

fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

fn parse_ok(bytes: &[u8]) -> Ibft {
    let p = parse(bytes).unwrap_or_else(|e| panic!("parse failed: {e}"));
    assert_eq!(p.warnings, vec![], "unexpected warnings");
    p.ibft
}

/// The parts every iPXE fixture shares: header, initiator and the one DHCP NIC
/// (ip=10.0.2.15/24 origin=dhcp gw=10.0.2.2 dns1=10.0.2.3 dhcp=10.0.2.2 mac 52:54:00:12:34:56
/// at PCI 00:02.0).
fn assert_ipxe_common(t: &Ibft, length: usize, bytes: &[u8]) {
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
            ip: v4(10, 0, 2, 15),
            prefix_len: 24,
            origin: Origin::Dhcp,
            gateway: v4(10, 0, 2, 2),
            primary_dns: v4(10, 0, 2, 3),
            secondary_dns: None,
            dhcp_server: v4(10, 0, 2, 2),
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

fn tgtd_target(name: &str, chap_type: ChapType) -> Target {
    Target {
        index: 0,
        flags: 0x03,
        ip: v4(10, 0, 2, 2),
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

#[test]
fn fixture_nochap_decodes_as_ipxe_was_told() {
    let t = parse_ok(NOCHAP);
    assert_ipxe_common(&t, 580, NOCHAP);
    assert_eq!(t.targets.len(), 1);
    let tgt = t.targets[0].as_ref().unwrap();
    assert_eq!(
        *tgt,
        tgtd_target("iqn.2025-01.test.rig:tgt-nochap", ChapType::None)
    );
    assert_eq!(tgt.lun.number(), Some(1));
}

#[test]
fn fixture_chap_decodes_as_ipxe_was_told() {
    let t = parse_ok(CHAP);
    assert_ipxe_common(&t, 600, CHAP);
    assert_eq!(t.targets.len(), 1);
    let tgt = t.targets[0].as_ref().unwrap();
    let mut want = tgtd_target("iqn.2025-01.test.rig:tgt-chap", ChapType::Chap);
    want.chap_name = s("rigin");
    want.chap_secret = Some(Secret::new(b"rigin-secret-12"));
    assert_eq!(*tgt, want);
    assert_eq!(
        tgt.chap_secret.as_ref().unwrap().expose(),
        b"rigin-secret-12"
    );
}

#[test]
fn fixture_mutualchap_decodes_as_ipxe_was_told() {
    let t = parse_ok(MUTUAL);
    assert_ipxe_common(&t, 626, MUTUAL);
    assert_eq!(t.targets.len(), 1);
    let tgt = t.targets[0].as_ref().unwrap();
    let mut want = tgtd_target("iqn.2025-01.test.rig:tgt-mutual", ChapType::Mutual);
    want.chap_name = s("rigin");
    want.chap_secret = Some(Secret::new(b"rigin-secret-12"));
    want.reverse_chap_name = s("rigout");
    want.reverse_chap_secret = Some(Secret::new(b"rigout-secret-12"));
    assert_eq!(*tgt, want);
    assert_eq!(
        tgt.reverse_chap_secret.as_ref().unwrap().expose(),
        b"rigout-secret-12"
    );
}

#[test]
fn fixture_two_targets_decodes_as_ipxe_was_told() {
    let t = parse_ok(TWO);
    assert_ipxe_common(&t, 665, TWO);
    // Control: nic1 = 0, target1 = 0x1c0: the second target shares NIC 0.
    assert_eq!(t.targets.len(), 2);
    assert_eq!(
        *t.targets[0].as_ref().unwrap(),
        tgtd_target("iqn.2025-01.test.rig:tgt-nochap", ChapType::None)
    );
    let istgt = t.targets[1].as_ref().unwrap();
    assert_eq!(
        *istgt,
        Target {
            index: 1,
            flags: 0x03,
            ip: v4(10, 0, 2, 2),
            port: 3261,
            lun: Lun([0; 8]),
            chap_type: ChapType::Mutual,
            nic_index: 0,
            name: s("iqn.2025-01.test.rig.istgt:disk-mutual"),
            chap_name: s("rigin"),
            chap_secret: Some(Secret::new(b"rigin-secret-12")),
            reverse_chap_name: s("rigout"),
            reverse_chap_secret: Some(Secret::new(b"rigout-secret-12")),
        }
    );
    assert_eq!(istgt.lun.number(), Some(0));

    let boot = t.boot_config().unwrap();
    assert_eq!(boot.initiator_name, "iqn.2025-01.test.rig:initiator-ipxe");
    let order: Vec<_> = boot
        .candidates
        .iter()
        .map(|c| (c.pair, c.target.port))
        .collect();
    assert_eq!(order, [(0, 3260), (1, 3261)]);
    assert!(boot.candidates.iter().all(|c| c.nic.ip == v4(10, 0, 2, 15)));
    assert_eq!(boot.skipped, []);
}

#[test]
fn every_fixture_yields_a_boot_pair_on_the_dhcp_nic() {
    for (name, bytes) in FIXTURES {
        let boot = parse_ok(bytes).boot_config().unwrap();
        let c = boot.boot().unwrap();
        assert_eq!(c.pair, 0, "{name}");
        assert_eq!(c.target.port_or_default(), 3260, "{name}");
        assert_eq!(c.target.lun.number(), Some(1), "{name}");
        assert_eq!(c.nic.mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56], "{name}");
    }
}

#[test]
fn debug_of_parsed_tables_and_boot_configs_shows_no_secret() {
    for (name, bytes) in FIXTURES {
        let p = parse(bytes).unwrap();
        let boot = p.ibft.boot_config().unwrap();
        for text in [
            format!("{p:?}"),
            format!("{p:#?}"),
            format!("{boot:?}"),
            format!("{boot:#?}"),
        ] {
            assert!(!text.contains("secret-12"), "{name}: {text}");
        }
        if name != "nochap" {
            assert!(format!("{p:?}").contains("<redacted>"), "{name}");
        }
    }
}

#[test]
fn fixtures_round_trip_through_the_builder() {
    for (name, bytes) in FIXTURES {
        let t = parse_ok(bytes);
        let built = build(&t).unwrap();
        assert_eq!(parse_ok(&built), t, "{name}");
        // The builder's own layout is a fixed point.
        assert_eq!(build(&parse_ok(&built)).unwrap(), built, "{name}");
    }
}

#[test]
fn a_fixture_can_be_pointed_at_another_target() {
    let mut t = parse_ok(CHAP);
    let tgt = t.targets[0].as_mut().unwrap();
    tgt.ip = v4(127, 0, 0, 1);
    tgt.port = 13260;
    tgt.name = s("iqn.2025-01.local:demo");
    let again = parse_ok(&build(&t).unwrap());
    let c = again.boot_config().unwrap().candidates.remove(0);
    assert_eq!(c.target.ip, v4(127, 0, 0, 1));
    assert_eq!(c.target.port, 13260);
    assert_eq!(c.target.name.as_deref(), Some("iqn.2025-01.local:demo"));
    assert_eq!(c.target.chap_secret, Some(Secret::new(b"rigin-secret-12")));
}

// ---- built tables ------------------------------------------------------------------------------

fn sample_nic(index: u8) -> Nic {
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

fn sample_target(index: u8, nic_index: u8) -> Target {
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

fn sample() -> Ibft {
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

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Offsets of the structures in a built table, read back from its Control structure.
fn initiator_off(b: &[u8]) -> usize {
    u16_at(b, CONTROL_OFFSET + 8)
}
fn nic_off(b: &[u8], k: usize) -> usize {
    u16_at(b, CONTROL_OFFSET + 10 + 4 * k)
}
fn target_off(b: &[u8], k: usize) -> usize {
    u16_at(b, CONTROL_OFFSET + 12 + 4 * k)
}

/// Writes `bytes` at `at` and fixes the checksum, so the parser gets past the header.
fn patched(t: &Ibft, at: impl Fn(&[u8]) -> usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = build(t).unwrap();
    let at = at(&b);
    b[at..at + bytes.len()].copy_from_slice(bytes);
    set_checksum(&mut b);
    b
}

fn parse_err(b: &[u8]) -> Error {
    match parse(b) {
        Ok(p) => panic!("parsed a broken table: {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn built_tables_round_trip() {
    let t = sample();
    let b = build(&t).unwrap();
    assert_eq!(parse_ok(&b), t);
    assert_eq!(b.iter().fold(0u8, |s, &x| s.wrapping_add(x)), 0);
    assert_eq!(&b[..4], b"iBFT");
    assert_eq!(
        u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize,
        b.len()
    );
}

#[test]
fn acpi_signatures_are_accepted() {
    for sig in [*b"IBFT", *b"BIFT"] {
        let t = Ibft {
            signature: sig,
            ..sample()
        };
        assert_eq!(parse_ok(&build(&t).unwrap()).signature, sig);
    }
}

#[test]
fn truncated_tables_are_refused() {
    let b = build(&sample()).unwrap();
    assert_eq!(
        parse_err(&b[..47]),
        Error::Truncated {
            needed: 48,
            available: 47
        }
    );
    assert_eq!(
        parse_err(&b[..b.len() - 1]),
        Error::Truncated {
            needed: b.len(),
            available: b.len() - 1
        }
    );
    assert_eq!(
        parse_err(&[]),
        Error::Truncated {
            needed: 48,
            available: 0
        }
    );
}

#[test]
fn a_longer_slice_is_cut_to_the_table_length() {
    let t = sample();
    let mut b = build(&t).unwrap();
    b.extend_from_slice(&[0xa5; 100]);
    assert_eq!(parse_ok(&b), t);
}

#[test]
fn bad_checksum_is_refused() {
    let mut b = build(&sample()).unwrap();
    b[9] = b[9].wrapping_add(3);
    assert_eq!(parse_err(&b), Error::BadChecksum { sum: 3 });
}

#[test]
fn wrong_revision_and_signature_are_refused() {
    let b = patched(&sample(), |_| 8, &[2]);
    assert_eq!(parse_err(&b), Error::BadRevision { found: 2 });
    let b = patched(&sample(), |_| 0, b"ibft");
    assert_eq!(parse_err(&b), Error::BadSignature { found: *b"ibft" });
}

#[test]
fn a_length_too_small_for_control_is_refused() {
    let mut b = build(&sample()).unwrap();
    b[4..8].copy_from_slice(&60u32.to_le_bytes());
    b.truncate(60);
    set_checksum(&mut b);
    assert_eq!(parse_err(&b), Error::LengthTooSmall { length: 60 });
}

#[test]
fn structure_offsets_out_of_range_are_refused() {
    let t = sample();
    let len = build(&t).unwrap().len();
    // A NIC header that fits but whose body does not.
    let off = (len - 10) as u16;
    let b = patched(&t, |_| CONTROL_OFFSET + 10, &off.to_le_bytes());
    // The bytes at `off` are heap text, not a NIC id: make them one.
    let mut b2 = b.clone();
    b2[off as usize..off as usize + 4].copy_from_slice(&[3, 1, 102, 0]);
    set_checksum(&mut b2);
    assert_eq!(
        parse_err(&b2),
        Error::StructureOutOfRange {
            structure: Structure::Nic(0),
            offset: len - 10,
            length: 102,
            table_length: len
        }
    );
    // An offset whose 6-byte header does not fit.
    let off = (len - 3) as u16;
    let b = patched(&t, |_| CONTROL_OFFSET + 12, &off.to_le_bytes());
    assert_eq!(
        parse_err(&b),
        Error::StructureOutOfRange {
            structure: Structure::Target(0),
            offset: len - 3,
            length: 6,
            table_length: len
        }
    );
    // Past the end altogether.
    let b = patched(&t, |_| CONTROL_OFFSET + 8, &0xfff0u16.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        Error::StructureOutOfRange {
            structure: Structure::Initiator,
            offset: 0xfff0,
            ..
        }
    ));
}

#[test]
fn offsets_into_the_header_are_refused() {
    let b = patched(&sample(), |_| CONTROL_OFFSET + 10, &16u16.to_le_bytes());
    assert_eq!(
        parse_err(&b),
        Error::StructureInHeader {
            structure: Structure::Nic(0),
            offset: 16
        }
    );
}

#[test]
fn short_structures_are_refused() {
    let t = sample();
    let b = patched(&t, |b| nic_off(b, 0) + 2, &101u16.to_le_bytes());
    assert_eq!(
        parse_err(&b),
        Error::StructureTooShort {
            structure: Structure::Nic(0),
            offset: nic_off(&b, 0),
            length: 101,
            minimum: 102
        }
    );
    let b = patched(&t, |b| target_off(b, 0) + 2, &53u16.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        Error::StructureTooShort {
            structure: Structure::Target(0),
            length: 53,
            minimum: 54,
            ..
        }
    ));
    let b = patched(&t, |b| initiator_off(b) + 2, &73u16.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        Error::StructureTooShort {
            structure: Structure::Initiator,
            minimum: 74,
            ..
        }
    ));
    let b = patched(&t, |_| CONTROL_OFFSET + 2, &17u16.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        Error::StructureTooShort {
            structure: Structure::Control,
            offset: 48,
            minimum: 18,
            ..
        }
    ));
}

#[test]
fn longer_structures_are_accepted() {
    // Linux demands exact lengths; the spec gives minimums. A target claiming 60 bytes (its
    // neighbour's padding) is read normally.
    let t = sample();
    let b = patched(&t, |b| target_off(b, 0) + 2, &60u16.to_le_bytes());
    assert_eq!(parse_ok(&b), t);
}

#[test]
fn a_known_structure_in_the_wrong_slot_is_refused() {
    let t = sample();
    let b = patched(&t, |b| target_off(b, 0), &[id::NIC]);
    assert!(matches!(
        parse_err(&b),
        Error::WrongStructureId {
            structure: Structure::Target(0),
            expected: 4,
            found: 3,
            ..
        }
    ));
    let b = patched(&t, |_| CONTROL_OFFSET, &[id::TARGET]);
    assert_eq!(
        parse_err(&b),
        Error::WrongStructureId {
            structure: Structure::Control,
            offset: 48,
            expected: 1,
            found: 4
        }
    );
}

#[test]
fn unknown_structure_ids_are_warnings_and_the_slot_is_absent() {
    let mut t = sample();
    t.nics.push(Some(sample_nic(1)));
    let b = patched(&t, |b| nic_off(b, 1), &[0x77]);
    let p = parse(&b).unwrap();
    assert_eq!(
        p.warnings,
        [Warning::UnknownStructure {
            structure: Structure::Nic(1),
            offset: nic_off(&b, 1),
            id: 0x77
        }]
    );
    t.nics.pop();
    assert_eq!(p.ibft, t);
    // An extensions structure (id 5) is skipped the same way.
    let b = patched(&t, |b| target_off(b, 0), &[id::EXTENSIONS]);
    let p = parse(&b).unwrap();
    assert!(matches!(
        p.warnings[..],
        [Warning::UnknownStructure { id: 5, .. }]
    ));
    assert_eq!(p.ibft.targets, []);
    assert!(matches!(
        p.ibft.boot_config(),
        Err(BootError::NoUsableTarget { ref skipped }) if skipped.is_empty()
    ));
}

#[test]
fn a_string_length_that_counts_the_nul_is_read_up_to_the_nul() {
    // The spec's lengths exclude the NUL, but C readers (Linux, isboot) stop at the first NUL,
    // so firmware that counts it works with them: it must work here too, not send
    // "TargetName=iqn…\0" or a secret with a NUL to the target.
    let t = sample();
    let name_len = u16::try_from("iqn.2025-01.example:t0".len() + 1).unwrap();
    let b = patched(&t, |b| target_off(b, 0) + 34, &name_len.to_le_bytes());
    let secret_len = u16::try_from(b"0123456789ab".len() + 1).unwrap();
    let b = {
        let mut b = b;
        let at = target_off(&b, 0) + 42;
        b[at..at + 2].copy_from_slice(&secret_len.to_le_bytes());
        set_checksum(&mut b);
        b
    };
    let p = parse(&b).unwrap();
    assert_eq!(p.ibft, t);
    assert_eq!(
        p.warnings,
        [
            Warning::StringWithNul {
                structure: Structure::Target(0),
                field: StringField::TargetName
            },
            Warning::StringWithNul {
                structure: Structure::Target(0),
                field: StringField::ChapSecret
            }
        ]
    );
    assert!(p.warnings[0].to_string().contains("target name"));
}

#[test]
fn odd_versions_extensions_and_half_pairs_are_warnings() {
    let t = sample();
    let b = patched(&t, |b| nic_off(b, 0) + 1, &[2]);
    let p = parse(&b).unwrap();
    assert_eq!(
        p.warnings,
        [Warning::UnexpectedVersion {
            structure: Structure::Nic(0),
            version: 2
        }]
    );
    assert_eq!(p.ibft, t);
    let b = patched(&t, |_| CONTROL_OFFSET + 6, &[0x34, 0x12]);
    assert_eq!(
        parse(&b).unwrap().warnings,
        [Warning::ControlExtensions { value: 0x1234 }]
    );
    let b = patched(&t, |_| CONTROL_OFFSET + 2, &20u16.to_le_bytes());
    let p = parse(&b).unwrap();
    assert_eq!(p.warnings, [Warning::ControlTrailingBytes { length: 20 }]);
    assert_eq!(p.ibft, t);
}

#[test]
fn zero_offsets_mean_absent_structures() {
    let t = sample();
    let b = patched(&t, |_| CONTROL_OFFSET + 8, &[0; 6]);
    let p = parse_ok(&b);
    assert_eq!(p.initiator, None);
    assert_eq!(p.nics, []);
    assert_eq!(p.targets, []);
    assert_eq!(p.boot_config(), Err(BootError::NoInitiator));
}

#[test]
fn strings_with_a_length_and_zero_offset_are_refused() {
    let t = sample();
    let b = patched(&t, |b| target_off(b, 0) + 36, &[0, 0]);
    assert_eq!(
        parse_err(&b),
        Error::StringZeroOffset {
            structure: Structure::Target(0),
            field: StringField::TargetName,
            length: 22
        }
    );
    // Zero length with any offset is an absent string.
    let b = patched(&t, |b| nic_off(b, 0) + 98, &[0, 0]);
    assert_eq!(parse_ok(&b).nics[0].as_ref().unwrap().hostname, None);
}

#[test]
fn strings_out_of_range_are_refused() {
    let t = sample();
    let len = build(&t).unwrap().len();
    // Starts inside, runs one byte past the end.
    let mut pair = [0u8; 4];
    pair[..2].copy_from_slice(&5u16.to_le_bytes());
    pair[2..].copy_from_slice(&((len - 4) as u16).to_le_bytes());
    let b = patched(&t, |b| target_off(b, 0) + 42, &pair);
    assert_eq!(
        parse_err(&b),
        Error::StringOutOfRange {
            structure: Structure::Target(0),
            field: StringField::ChapSecret,
            offset: (len - 4) as u16,
            length: 5,
            table_length: len
        }
    );
    // Ends exactly at the table's end: fine (those 4 bytes end in the heap's last NUL).
    pair[..2].copy_from_slice(&4u16.to_le_bytes());
    let b = patched(&t, |b| target_off(b, 0) + 42, &pair);
    assert_eq!(
        parse(&b).unwrap().warnings,
        [Warning::StringWithNul {
            structure: Structure::Target(0),
            field: StringField::ChapSecret
        }]
    );
    // Maximum offset and length must not overflow anything.
    let b = patched(&t, |b| initiator_off(b) + 70, &[0xff; 4]);
    assert!(matches!(
        parse_err(&b),
        Error::StringOutOfRange {
            structure: Structure::Initiator,
            field: StringField::InitiatorName,
            offset: 0xffff,
            length: 0xffff,
            ..
        }
    ));
}

#[test]
fn names_must_be_utf8_but_secrets_are_bytes() {
    let mut t = sample();
    let b = patched(&t, |b| u16_at(b, target_off(b, 0) + 36), &[0xff]);
    assert_eq!(
        parse_err(&b),
        Error::StringNotUtf8 {
            structure: Structure::Target(0),
            field: StringField::TargetName,
            offset: u16_at(&b, target_off(&b, 0) + 36) as u16
        }
    );
    let secret = [0xff, 0x00, 0x80, 0x41];
    t.targets[0].as_mut().unwrap().chap_secret = Some(Secret::new(&secret));
    let p = parse_ok(&build(&t).unwrap());
    assert_eq!(
        p.targets[0]
            .as_ref()
            .unwrap()
            .chap_secret
            .as_ref()
            .unwrap()
            .expose(),
        secret
    );
}

#[test]
fn more_than_two_pairs_are_read() {
    let mut t = sample();
    t.nics = vec![Some(sample_nic(0)), None, Some(sample_nic(2))];
    t.targets = vec![
        Some(sample_target(0, 0)),
        Some(sample_target(1, 2)),
        None,
        Some(sample_target(3, 2)),
    ];
    let b = build(&t).unwrap();
    assert_eq!(u16_at(&b, CONTROL_OFFSET + 2), 10 + 4 * 4);
    assert_eq!(parse_ok(&b), t);
    let boot = t.boot_config().unwrap();
    let got: Vec<_> = boot
        .candidates
        .iter()
        .map(|c| (c.pair, c.nic.index, c.target.index))
        .collect();
    assert_eq!(got, [(0, 0, 0), (1, 2, 1), (3, 2, 3)]);
}

#[test]
fn too_many_pairs_are_capped_with_a_warning() {
    let mut t = sample();
    t.targets = (0..MAX_PAIRS as u8)
        .map(|i| Some(sample_target(i, 0)))
        .collect();
    let b = build(&t).unwrap();
    assert_eq!(parse_ok(&b), t);
    t.targets.push(Some(sample_target(99, 0)));
    assert_eq!(
        build(&t),
        Err(BuildError::TooManyPairs {
            pairs: MAX_PAIRS + 1
        })
    );
    // A hand-grown Control structure of 40 pairs whose last pair names the only target (a
    // target without strings, so that moving it needs no heap fix-ups).
    let bare = Ibft {
        initiator: None,
        nics: vec![],
        targets: vec![Some(Target {
            name: None,
            chap_type: ChapType::None,
            chap_name: None,
            chap_secret: None,
            ..sample_target(0, 0)
        })],
        ..sample()
    };
    let b = build(&bare).unwrap();
    let ctl_len = 10 + 4 * 40;
    let tgt = (CONTROL_OFFSET + ctl_len).next_multiple_of(16);
    let mut grown = vec![0u8; tgt];
    grown[..CONTROL_OFFSET].copy_from_slice(&b[..CONTROL_OFFSET]);
    grown[CONTROL_OFFSET..CONTROL_OFFSET + 4].copy_from_slice(&[1, 1, ctl_len as u8, 0]);
    let last = CONTROL_OFFSET + 10 + 4 * 39 + 2;
    grown[last..last + 2].copy_from_slice(&(tgt as u16).to_le_bytes());
    grown.extend_from_slice(&b[target_off(&b, 0)..target_off(&b, 0) + 54]);
    let len = grown.len() as u32;
    grown[4..8].copy_from_slice(&len.to_le_bytes());
    set_checksum(&mut grown);
    let p = parse(&grown).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.warnings,
        [Warning::TooManyPairs {
            pairs: 40,
            read: MAX_PAIRS
        }]
    );
    // The target beyond the cap is not read; one inside it is.
    grown[last - 4 * 8..last - 4 * 8 + 2].copy_from_slice(&(tgt as u16).to_le_bytes());
    set_checksum(&mut grown);
    let p = parse(&grown).unwrap();
    assert_eq!(p.ibft.targets.len(), 32);
    assert_eq!(p.ibft.targets[31], bare.targets[0]);
}

#[test]
fn ipv6_addresses_round_trip_and_choose_the_pair() {
    let mut t = sample();
    let nic = t.nics[0].as_mut().unwrap();
    let addr: Ipv6Addr = "2001:db8::15".parse().unwrap();
    nic.ip = Some(IpAddr::V6(addr));
    nic.prefix_len = 64;
    nic.origin = Origin::RouterAdvertisement;
    nic.flags |= flags::NIC_GLOBAL;
    nic.gateway = Some(IpAddr::V6("fe80::1".parse().unwrap()));
    nic.primary_dns = Some(IpAddr::V6("2001:db8::53".parse().unwrap()));
    nic.dhcp_server = Some(IpAddr::V6("2001:db8::2".parse().unwrap()));
    t.targets[0].as_mut().unwrap().ip = Some(IpAddr::V6("2001:db8::100".parse().unwrap()));
    let b = build(&t).unwrap();
    // On the wire: raw 16 bytes, not IPv4-mapped.
    let o = nic_off(&b, 0);
    assert_eq!(b[o + 6..o + 22], addr.octets());
    let p = parse_ok(&b);
    assert_eq!(p, t);
    let c = p.boot_config().unwrap().candidates.remove(0);
    assert_eq!(c.nic.ip, Some(IpAddr::V6(addr)));
    // A v6 prefix over 128 (or a v4 one over 32) leaves the target unusable.
    t.nics[0].as_mut().unwrap().prefix_len = 129;
    assert!(matches!(
        t.boot_config(),
        Err(BootError::NoUsableTarget { ref skipped })
            if skipped[..] == [Skipped { pair: 0, reason: SkipReason::NicBadPrefix { nic_index: 0, prefix_len: 129 } }]
    ));
}

#[test]
fn ipv4_mapped_zero_is_unset() {
    let t = sample();
    let mut mapped_zero = [0u8; 16];
    mapped_zero[10] = 0xff;
    mapped_zero[11] = 0xff;
    let b = patched(&t, |b| nic_off(b, 0) + 24, &mapped_zero);
    assert_eq!(parse_ok(&b).nics[0].as_ref().unwrap().gateway, None);
    assert_eq!(parse::decode_ip([0; 16]), None);
    assert_eq!(
        parse::decode_ip(Ipv6Addr::LOCALHOST.octets()),
        Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
    );
}

#[test]
fn vlan_is_read_with_its_priority() {
    let mut t = sample();
    t.nics[0].as_mut().unwrap().vlan = 5 << 13 | 42;
    let p = parse_ok(&build(&t).unwrap());
    let nic = p.nics[0].as_ref().unwrap();
    assert_eq!(nic.vlan_id(), Some(42));
    assert_eq!(nic.vlan_priority(), 5);
    assert_eq!(p, t);
}

#[test]
fn both_unchanged_origin_encodings_are_accepted() {
    for raw in [0x0f, 16] {
        let b = patched(&sample(), |b| nic_off(b, 0) + 23, &[raw]);
        let p = parse_ok(&b);
        let o = p.nics[0].as_ref().unwrap().origin;
        assert_eq!(o, Origin::Unchanged(raw));
        assert_eq!(o.raw(), raw);
        assert_eq!(build(&p).unwrap(), b, "origin {raw} written back unchanged");
    }
    assert_eq!(Origin::from_raw(9), Origin::Unknown(9));
}

#[test]
fn boot_selected_target_comes_first_and_either_flag_bit_counts() {
    let mut t = sample();
    t.nics = vec![Some(sample_nic(0)), Some(sample_nic(1))];
    let mut only_selected = sample_target(1, 1);
    only_selected.flags = flags::FIRMWARE_BOOT_SELECTED;
    let mut invalid = sample_target(2, 0);
    invalid.flags = 0;
    t.targets = vec![
        Some(sample_target(0, 0)),
        Some(only_selected),
        Some(invalid),
    ];
    let boot = parse_ok(&build(&t).unwrap()).boot_config().unwrap();
    let order: Vec<_> = boot
        .candidates
        .iter()
        .map(|c| (c.pair, c.nic.index))
        .collect();
    assert_eq!(order, [(1, 1), (0, 0)]);
    assert_eq!(
        boot.skipped,
        [Skipped {
            pair: 2,
            reason: SkipReason::NotValid
        }]
    );
}

#[test]
fn unusable_targets_are_skipped_with_a_reason() {
    let nic_missing = {
        let mut t = sample_target(0, 7);
        t.flags = 3;
        t
    };
    let cases: [(Target, SkipReason); 6] = [
        (nic_missing, SkipReason::NoNic { nic_index: 7 }),
        (
            Target {
                ip: None,
                ..sample_target(0, 0)
            },
            SkipReason::NoAddress,
        ),
        (
            Target {
                name: None,
                ..sample_target(0, 0)
            },
            SkipReason::NoName,
        ),
        (
            Target {
                chap_secret: None,
                ..sample_target(0, 0)
            },
            SkipReason::ChapIncomplete,
        ),
        (
            Target {
                chap_type: ChapType::Mutual,
                ..sample_target(0, 0)
            },
            SkipReason::ChapIncomplete,
        ),
        (
            Target {
                chap_type: ChapType::Unknown(9),
                ..sample_target(0, 0)
            },
            SkipReason::UnknownChapType { raw: 9 },
        ),
    ];
    for (target, reason) in cases {
        let mut t = sample();
        t.targets = vec![Some(target)];
        let t = parse_ok(&build(&t).unwrap());
        let err = t.boot_config().unwrap_err();
        assert_eq!(
            err,
            BootError::NoUsableTarget {
                skipped: vec![Skipped { pair: 0, reason }]
            }
        );
        assert!(err.to_string().contains("target0 skipped"));
    }
    let mut t = sample();
    t.nics[0].as_mut().unwrap().flags = 0;
    assert!(matches!(
        t.boot_config(),
        Err(BootError::NoUsableTarget { ref skipped })
            if skipped[0].reason == SkipReason::NicNotValid { nic_index: 0 }
    ));
    t.nics[0].as_mut().unwrap().flags = 1;
    t.nics[0].as_mut().unwrap().ip = None;
    assert!(matches!(
        t.boot_config(),
        Err(BootError::NoUsableTarget { ref skipped })
            if skipped[0].reason == SkipReason::NicNoAddress { nic_index: 0 }
    ));
    let mut t = sample();
    t.initiator.as_mut().unwrap().name = None;
    assert_eq!(t.boot_config(), Err(BootError::NoInitiatorName));
}

#[test]
fn nic_found_by_slot_when_indexes_do_not_match() {
    // Firmware that leaves every structure index 0 still pairs target1 with NIC slot 1.
    let mut t = sample();
    let mut second = sample_nic(1);
    second.index = 5;
    t.nics = vec![Some(sample_nic(0)), Some(second)];
    t.targets = vec![Some(sample_target(0, 1))];
    assert_eq!(t.nic_for(t.targets[0].as_ref().unwrap()).unwrap().index, 5);
}

#[test]
fn errors_and_warnings_print_what_was_wrong() {
    let e = Error::StringOutOfRange {
        structure: Structure::Target(1),
        field: StringField::ChapSecret,
        offset: 0x200,
        length: 16,
        table_length: 0x201,
    };
    assert_eq!(
        e.to_string(),
        "iBFT target1 CHAP secret at 0x200 (+16) reaches past table length 513"
    );
    assert_eq!(
        Error::BadChecksum { sum: 3 }.to_string(),
        "iBFT checksum wrong: bytes sum to 0x03, not 0"
    );
    assert_eq!(
        Warning::UnknownStructure {
            structure: Structure::Nic(1),
            offset: 0x100,
            id: 9
        }
        .to_string(),
        "iBFT nic1 at 0x100 has unknown structure id 9; ignored"
    );
}

#[test]
fn every_single_byte_corruption_of_a_fixture_is_handled() {
    // Not a fuzzer, but cheap: flip each byte of each fixture (with and without a fixed
    // checksum); the parser must answer without panicking and a parsed result must rebuild.
    for (_, bytes) in FIXTURES {
        for i in 0..bytes.len() {
            for fix in [false, true] {
                let mut b = bytes.to_vec();
                b[i] ^= 0x5a;
                if fix {
                    set_checksum(&mut b);
                }
                if let Ok(p) = parse(&b) {
                    let again = parse(&build(&p.ibft).unwrap()).unwrap();
                    assert_eq!(again.ibft, p.ibft);
                    let _ = p.ibft.boot_config();
                }
            }
        }
    }
}

// ---- memory-image scan -------------------------------------------------------------------------

const MIB: usize = 0x10_0000;

fn image_with(tables: &[(usize, &[u8])]) -> Vec<u8> {
    let mut image = vec![0u8; MIB];
    for &(at, bytes) in tables {
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    image
}

#[test]
fn scan_skips_decoys_and_finds_the_table() {
    let mut stale = TWO.to_vec();
    stale[0x190] ^= 1; // an old copy whose checksum no longer matches
    let mut bad_revision = NOCHAP.to_vec();
    bad_revision[8] = 2;
    set_checksum(&mut bad_revision);
    let image = image_with(&[
        (0x8_0000, b"iBFT"),                 // bare string, garbage length 0
        (0x8_1000, b"iBFT\x89\x67\x45\xc5"), // code bytes: length runs past 1 MiB
        (0x8_2008, NOCHAP),                  // valid but not 16-byte aligned
        (0x9_0000, &stale),
        (0x9_1000, &bad_revision),
        (0xa_0000, CHAP), // in the VGA hole: never scanned
        (0x9_e620, TWO),
        (0xc_0000, MUTUAL),
        (0xf_ff00, &MUTUAL[..0x100]), // would run past 1 MiB
    ]);
    let hits: Vec<_> = scan_all(&image, 0).collect();
    assert_eq!(
        hits,
        [
            ScanHit {
                phys_addr: 0x9_e620,
                offset: 0x9_e620,
                length: 665
            },
            ScanHit {
                phys_addr: 0xc_0000,
                offset: 0xc_0000,
                length: 626
            },
        ]
    );
    let first = scan(&image, 0).unwrap();
    assert_eq!(parse_ok(first.table(&image).unwrap()), parse_ok(TWO));
}

#[test]
fn scan_honours_the_image_base_address() {
    let image = image_with(&[(0x9_e620, TWO)]);
    // The same memory given as the slice [0x80000, 0x100000).
    let hit = scan(&image[0x8_0000..], 0x8_0000).unwrap();
    assert_eq!(hit.phys_addr, 0x9_e620);
    assert_eq!(hit.offset, 0x1_e620);
    assert_eq!(hit.table(&image[0x8_0000..]).unwrap(), TWO);
    // An image starting mid-way (unaligned base) still scans physical 16-byte boundaries.
    let hit = scan(&image[0x9_e000 - 3..], 0x9_e000 - 3).unwrap();
    assert_eq!(hit.phys_addr, 0x9_e620);
    // An image that ends inside the table finds nothing; one beyond the scan window neither.
    assert_eq!(scan(&image[..0x9_e700], 0), None);
    assert_eq!(scan(&image, 0x10_0000), None);
    assert_eq!(scan(&image, u64::MAX - 3), None);
    assert_eq!(scan(&[], 0), None);
}

#[test]
fn scan_finds_the_table_in_a_real_low_memory_layout() {
    // As in iPXE's pmemsave dumps: the table at 0x9e620, and iBFT strings elsewhere.
    let mut image = image_with(&[(0x9_e620, MUTUAL)]);
    for at in [0x8_8000usize, 0xd_0000, 0xf_0010] {
        image[at..at + 8].copy_from_slice(b"iBFT\xff\xff\xff\xff");
    }
    assert_eq!(scan(&image, 0).map(|h| h.phys_addr), Some(0x9_e620));
}
