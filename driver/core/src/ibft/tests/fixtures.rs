// SPDX-License-Identifier: BSD-2-Clause
//! The real iPXE tables decode as iPXE was told, and survive the builder.

use super::*;

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
            ip: v4(127, 0, 0, 1),
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
    assert!(boot
        .candidates
        .iter()
        .all(|c| c.nic.ip == v4(127, 0, 0, 15)));
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
