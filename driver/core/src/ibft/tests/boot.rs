// SPDX-License-Identifier: BSD-2-Clause
//! Choosing the boot pair: flags, order, address families and unusable targets.

use super::*;

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
