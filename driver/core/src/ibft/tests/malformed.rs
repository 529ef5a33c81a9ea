// SPDX-License-Identifier: BSD-2-Clause
//! Built tables, one per way a table can be broken: each is refused or warned about by name.

use super::*;

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
