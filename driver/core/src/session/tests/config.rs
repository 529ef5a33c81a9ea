// SPDX-License-Identifier: BSD-2-Clause
//! SessionConfig::from_boot: the iBFT's candidates become the session's targets.

use super::*;

const MUTUAL_IBFT: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin");
const TWO_TARGETS_IBFT: &[u8] =
    include_bytes!("../../../../../tests/data/ibft/ibft-ipxe-dhcp-two-targets.bin");

fn boot_config(table: &[u8]) -> crate::ibft::BootConfig {
    crate::ibft::parse(table)
        .expect("fixture parses")
        .ibft
        .boot_config()
        .expect("fixture has a boot target")
}

#[test]
fn config_from_a_real_ibft_with_mutual_chap() {
    let boot = boot_config(MUTUAL_IBFT);
    let cfg = SessionConfig::from_boot(&boot, Isid([0x80, 0, 0, 0, 0, 1]));
    assert_eq!(cfg.initiator_name, "iqn.2025-01.test.rig:initiator-ipxe");
    assert_eq!(cfg.targets.len(), 1);
    let t = &cfg.targets[0];
    assert_eq!(t.name, "iqn.2025-01.test.rig:tgt-mutual");
    assert_eq!(t.portal.addr, "127.0.0.1:3260".parse().unwrap());
    let chap = t.chap.as_ref().expect("CHAP configured");
    assert_eq!(chap.initiator.name, "rigin");
    assert_eq!(chap.initiator.secret.expose(), b"rigin-secret-12");
    let target = chap.target.as_ref().expect("mutual");
    assert_eq!(target.name, "rigout");
    assert_eq!(target.secret.expose(), b"rigout-secret-12");
    // Secrets never show in Debug output.
    let dbg = alloc::format!("{cfg:?}");
    assert!(!dbg.contains("rigin-secret-12") && !dbg.contains("rigout-secret-12"));
}

#[test]
fn config_from_a_real_ibft_keeps_the_alternate_target() {
    let boot = boot_config(TWO_TARGETS_IBFT);
    let cfg = SessionConfig::from_boot(&boot, Isid([0x80, 0, 0, 0, 0, 1]));
    assert_eq!(cfg.targets.len(), boot.candidates.len());
    assert!(cfg.targets.len() >= 2, "{:?}", cfg.targets);
    assert_ne!(cfg.targets[0], cfg.targets[1]);
}
