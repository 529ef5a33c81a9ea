// SPDX-License-Identifier: BSD-2-Clause
//! The text of the `hw.ibft.*` sysctls and of the `hw.ibft.verbose` boot summary.
//!
//! These strings are the user-visible contract isboot established (README.md promises to keep them): scripts read
//! `hw.ibft.target_name` and friends. Absent values are empty strings, the LUN is the number a user
//! would type (LUN 1 is `1`, not isboot's 256), addresses print as `core::net` formats them (`isboot_core::ipfmt`).
//! CHAP names and secrets appear nowhere here.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use isboot_core::bootcfg::Source;
use isboot_core::ibft::{BootCandidate, BootConfig, ChapType, Nic};
use isboot_core::ipfmt::Ip;

/// One `hw.ibft.*` value, in the order of the C side's `enum isboot_str`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IbftField {
    InitiatorName,
    InitiatorAddress,
    TargetName,
    TargetAddress,
    TargetPort,
    TargetLun,
    NicPrefix,
    NicGateway,
}

impl IbftField {
    pub const ALL: [IbftField; 8] = [
        IbftField::InitiatorName,
        IbftField::InitiatorAddress,
        IbftField::TargetName,
        IbftField::TargetAddress,
        IbftField::TargetPort,
        IbftField::TargetLun,
        IbftField::NicPrefix,
        IbftField::NicGateway,
    ];

    /// The sysctl's name under `hw.ibft`.
    pub fn name(self) -> &'static str {
        match self {
            IbftField::InitiatorName => "initiator_name",
            IbftField::InitiatorAddress => "initiator_address",
            IbftField::TargetName => "target_name",
            IbftField::TargetAddress => "target_address",
            IbftField::TargetPort => "target_port",
            IbftField::TargetLun => "target_lun",
            IbftField::NicPrefix => "nic_prefix",
            IbftField::NicGateway => "nic_gateway",
        }
    }
}

/// The value of `field` for the boot pair of `cfg`.
pub fn ibft_value(cfg: &BootConfig, field: IbftField) -> String {
    let mut value = String::new();
    // A String's write never fails.
    let _ = write_ibft_value(&mut value, cfg, field);
    value
}

/// [`ibft_value`], written into `out`: the module formats each value into one buffer, with
/// core's integer and address formatting, instead of building a `String` per value.
pub fn write_ibft_value(
    out: &mut dyn fmt::Write,
    cfg: &BootConfig,
    field: IbftField,
) -> fmt::Result {
    let Some(boot) = cfg.boot() else {
        return match field {
            IbftField::InitiatorName => out.write_str(&cfg.initiator_name),
            _ => Ok(()),
        };
    };
    let (nic, target) = (&boot.nic, &boot.target);
    match field {
        IbftField::InitiatorName => out.write_str(&cfg.initiator_name),
        IbftField::InitiatorAddress => write!(out, "{}", OptIp(nic.ip)),
        IbftField::TargetName => out.write_str(target.name.as_deref().unwrap_or_default()),
        IbftField::TargetAddress => write!(out, "{}", OptIp(target.ip)),
        IbftField::TargetPort => write!(out, "{}", target.port_or_default()),
        IbftField::TargetLun => write!(out, "{}", target.lun),
        IbftField::NicPrefix => write!(out, "{}", nic.prefix_len),
        IbftField::NicGateway => write!(out, "{}", OptIp(nic.gateway)),
    }
}

/// Every `hw.ibft.*` value of `cfg`, in [`IbftField::ALL`] order.
pub fn ibft_values(cfg: &BootConfig) -> Vec<(IbftField, String)> {
    IbftField::ALL
        .iter()
        .map(|&f| (f, ibft_value(cfg, f)))
        .collect()
}

/// The authentication method, never a CHAP name.
struct Auth(ChapType);

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ChapType::None => f.write_str("none"),
            ChapType::Chap => f.write_str("CHAP"),
            ChapType::Mutual => f.write_str("mutual CHAP"),
            ChapType::Unknown(raw) => write!(f, "unknown ({raw})"),
        }
    }
}

/// An address, or nothing.
struct OptIp(Option<IpAddr>);

impl fmt::Display for OptIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => Ip(a).fmt(f),
            None => Ok(()),
        }
    }
}

/// How a NIC is found, and what it has beyond its address: the middle and the end of its line.
struct NicWhich<'a>(&'a Nic, Option<&'a str>);
struct NicExtras<'a>(&'a Nic);

impl fmt::Display for NicWhich<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0.mac;
        match self.1 {
            Some(name) => write!(f, "interface {name}"),
            None => write!(
                f,
                "mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} pci {}",
                m[0], m[1], m[2], m[3], m[4], m[5], self.0.pci_bdf
            ),
        }
    }
}

impl fmt::Display for NicExtras<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(gw) = self.0.gateway {
            write!(f, " gateway {}", Ip(gw))?;
        }
        if let Some(vlan) = self.0.vlan_id() {
            write!(f, " vlan {vlan}")?;
        }
        Ok(())
    }
}

fn candidate_lines(c: &BootCandidate, line: &mut dyn FnMut(fmt::Arguments<'_>)) {
    let (pair, nic, t) = (c.pair, &c.nic, &c.target);
    line(format_args!(
        "pair {pair} nic {}: {} address {}/{}{}",
        nic.index,
        NicWhich(nic, c.ifname.as_deref()),
        OptIp(nic.ip),
        nic.prefix_len,
        NicExtras(nic)
    ));
    line(format_args!(
        "pair {pair} target {}: {} at {}:{} lun {} auth {}",
        t.index,
        t.name.as_deref().unwrap_or("(no name)"),
        OptIp(t.ip),
        t.port_or_default(),
        t.lun,
        Auth(t.chap_type)
    ));
}

/// The `hw.ibft.verbose` summary: one console line per item, boot pair first, each handed to
/// `line` as it is formatted (the module logs it; no line is built as a `String` first). Names
/// of CHAP users and their secrets are left out; only the authentication method is shown. A
/// configuration from the loader's tunables says so first.
pub fn summary_lines(cfg: &BootConfig, line: &mut dyn FnMut(fmt::Arguments<'_>)) {
    if cfg.source == Source::Loader {
        line(format_args!("from loader tunables (net.isboot.root_path)"));
    }
    line(format_args!("initiator {}", cfg.initiator_name));
    for (i, c) in cfg.candidates.iter().enumerate() {
        if i == 1 {
            line(format_args!("alternates for failover:"));
        }
        candidate_lines(c, line);
    }
    for s in &cfg.skipped {
        line(format_args!("skipped: {s}"));
    }
}

/// [`summary_lines`], collected.
pub fn summary(cfg: &BootConfig) -> Vec<String> {
    let mut out = Vec::new();
    summary_lines(cfg, &mut |l| out.push(format!("{l}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use isboot_core::ibft::parse;

    const CHAP: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-chap.bin");
    const MUTUAL: &[u8] =
        include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin");
    const TWO: &[u8] = include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-two-targets.bin");

    fn config(table: &[u8]) -> BootConfig {
        parse(table).unwrap().ibft.boot_config().unwrap()
    }

    #[test]
    fn sysctl_values_of_a_real_ipxe_table() {
        let values = ibft_values(&config(CHAP));
        let get = |f| values.iter().find(|(g, _)| *g == f).unwrap().1.as_str();
        assert_eq!(
            get(IbftField::InitiatorName),
            "iqn.2025-01.test.rig:initiator-ipxe"
        );
        assert_eq!(get(IbftField::InitiatorAddress), "127.0.0.15");
        assert_eq!(get(IbftField::TargetName), "iqn.2025-01.test.rig:tgt-chap");
        assert_eq!(get(IbftField::TargetAddress), "127.0.0.1");
        assert_eq!(get(IbftField::TargetPort), "3260");
        // iPXE writes LUN 1 as 00 01 00..; isboot showed 256.
        assert_eq!(get(IbftField::TargetLun), "1");
        assert_eq!(get(IbftField::NicPrefix), "24");
        assert_eq!(get(IbftField::NicGateway), "127.0.0.1");
        assert_eq!(values.len(), 8);
    }

    #[test]
    fn field_order_matches_the_c_enum_and_names_match_the_contract() {
        let names: std::vec::Vec<_> = IbftField::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "initiator_name",
                "initiator_address",
                "target_name",
                "target_address",
                "target_port",
                "target_lun",
                "nic_prefix",
                "nic_gateway"
            ]
        );
    }

    #[test]
    fn absent_gateway_is_an_empty_string() {
        let mut cfg = config(CHAP);
        cfg.candidates[0].nic.gateway = None;
        assert_eq!(ibft_value(&cfg, IbftField::NicGateway), "");
    }

    #[test]
    fn ipv6_addresses_print_in_standard_form() {
        let mut cfg = config(CHAP);
        cfg.candidates[0].target.ip = Some("fd00::1:2".parse().unwrap());
        assert_eq!(ibft_value(&cfg, IbftField::TargetAddress), "fd00::1:2");
    }

    #[test]
    fn summary_never_shows_chap_names_or_secrets() {
        for table in [CHAP, MUTUAL] {
            let cfg = config(table);
            let text = summary(&cfg).join("\n");
            let t = &cfg.candidates[0].target;
            for s in [&t.chap_name, &t.reverse_chap_name].into_iter().flatten() {
                assert!(!text.contains(s.as_str()), "CHAP name {s} in {text}");
            }
            for secret in ["rigin-secret-12", "rigout-secret"] {
                assert!(!text.contains(secret), "secret in {text}");
            }
            assert!(text.contains("auth "), "{text}");
        }
    }

    #[test]
    fn a_configuration_from_tunables_shows_its_interface_and_source() {
        let mut cfg = config(CHAP);
        cfg.source = Source::Loader;
        cfg.candidates[0].ifname = Some("vtnet0".into());
        let lines = summary(&cfg);
        assert_eq!(lines[0], "from loader tunables (net.isboot.root_path)");
        assert_eq!(
            lines[2],
            "pair 0 nic 0: interface vtnet0 address 127.0.0.15/24 gateway 127.0.0.1"
        );
    }

    /// Every kind of summary line, with and without its optional parts.
    fn summary_variants() -> std::vec::Vec<String> {
        let mut out = std::vec::Vec::new();
        for table in [CHAP, MUTUAL, TWO] {
            out.extend(summary(&config(table)));
        }
        let mut cfg = config(TWO);
        cfg.source = Source::Loader;
        cfg.candidates[0].ifname = Some("vtnet0".into());
        cfg.candidates[0].nic.gateway = None;
        cfg.candidates[0].nic.vlan = 0x2064;
        cfg.candidates[0].nic.ip = None;
        cfg.candidates[0].target.ip = Some("fd00::1:2".parse().unwrap());
        cfg.candidates[0].target.name = None;
        cfg.candidates[0].target.chap_type = ChapType::Unknown(7);
        cfg.candidates[0].target.port = 0;
        cfg.skipped.push(isboot_core::ibft::Skipped {
            pair: 3,
            reason: isboot_core::ibft::SkipReason::NoNic { nic_index: 2 },
        });
        out.extend(summary(&cfg));
        out
    }

    #[test]
    fn summary_lines_read_as_they_always_did() {
        let lines = summary_variants();
        assert_eq!(lines, GOLDEN);
    }

    const GOLDEN: &[&str] = &[
        "initiator iqn.2025-01.test.rig:initiator-ipxe",
        "pair 0 nic 0: mac 52:54:00:12:34:56 pci 00:02.0 address 127.0.0.15/24 gateway 127.0.0.1",
        "pair 0 target 0: iqn.2025-01.test.rig:tgt-chap at 127.0.0.1:3260 lun 1 auth CHAP",
        "initiator iqn.2025-01.test.rig:initiator-ipxe",
        "pair 0 nic 0: mac 52:54:00:12:34:56 pci 00:02.0 address 127.0.0.15/24 gateway 127.0.0.1",
        "pair 0 target 0: iqn.2025-01.test.rig:tgt-mutual at 127.0.0.1:3260 lun 1 auth mutual CHAP",
        "initiator iqn.2025-01.test.rig:initiator-ipxe",
        "pair 0 nic 0: mac 52:54:00:12:34:56 pci 00:02.0 address 127.0.0.15/24 gateway 127.0.0.1",
        "pair 0 target 0: iqn.2025-01.test.rig:tgt-nochap at 127.0.0.1:3260 lun 1 auth none",
        "alternates for failover:",
        "pair 1 nic 0: mac 52:54:00:12:34:56 pci 00:02.0 address 127.0.0.15/24 gateway 127.0.0.1",
        "pair 1 target 1: iqn.2025-01.test.rig.istgt:disk-mutual at 127.0.0.1:3261 lun 0 auth mutual CHAP",
        "from loader tunables (net.isboot.root_path)",
        "initiator iqn.2025-01.test.rig:initiator-ipxe",
        "pair 0 nic 0: interface vtnet0 address /24 vlan 100",
        "pair 0 target 0: (no name) at fd00::1:2:3260 lun 1 auth unknown (7)",
        "alternates for failover:",
        "pair 1 nic 0: mac 52:54:00:12:34:56 pci 00:02.0 address 127.0.0.15/24 gateway 127.0.0.1",
        "pair 1 target 1: iqn.2025-01.test.rig.istgt:disk-mutual at 127.0.0.1:3261 lun 0 auth mutual CHAP",
        "skipped: iBFT target3 skipped: no NIC with index 2",
    ];

    #[test]
    fn summary_lists_the_boot_pair_first_then_alternates() {
        let cfg = config(TWO);
        let lines = summary(&cfg);
        assert!(lines[0].starts_with("initiator iqn."), "{lines:?}");
        assert!(lines[1].contains("mac 52:54:00:12:34:56"), "{lines:?}");
        assert!(lines[2].contains(" at 127.0.0.1:3260 lun "), "{lines:?}");
        if cfg.candidates.len() > 1 {
            assert_eq!(lines[3], "alternates for failover:");
        }
    }
}
