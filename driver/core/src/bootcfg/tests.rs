// SPDX-License-Identifier: BSD-2-Clause
//! The root path parser, the loader configuration (every variable's errors name it; secrets never
//! show), the source setting and the numeric tunables.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::loader::*;
use super::rootpath::{Field, RootPath, RootPathError, Server};
use super::tunables::{self, Clamped, Problem, Timeouts};
use super::{Mode, Source};
use crate::ibft::{ChapType, Ibft};
use crate::iscsi_name::NameError;
use crate::lun::Lun;
use crate::secret::Secret;
use crate::session::{Isid, SessionConfig};

const IQN: &str = "iqn.2026-01.org.example:host1-root";
const INITIATOR: &str = "iqn.2026-01.org.example:host1";

fn rp(s: &str) -> RootPath {
    RootPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn lun(b: [u8; 8]) -> Lun {
    Lun(b)
}

// ---- root path ---------------------------------------------------------------------------------

#[test]
fn root_path_with_every_field() {
    let p = rp("iscsi:192.0.2.10:6:3261:1:iqn.2026-01.org.example:host1-root");
    assert_eq!(
        p,
        RootPath {
            server: Server::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            port: 3261,
            lun: lun([0, 1, 0, 0, 0, 0, 0, 0]),
            target: IQN.into(),
        }
    );
    assert_eq!(p.ip(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))));
}

#[test]
fn empty_fields_take_the_defaults() {
    let p = rp("iscsi:192.0.2.10::::iqn.2026-01.org.example:host1-root");
    assert_eq!((p.port, p.lun, p.target.as_str()), (3260, Lun([0; 8]), IQN));
}

#[test]
fn ipv6_server_in_brackets_keeps_its_colons() {
    let p = rp("iscsi:[2001:db8::10]::3260:0:iqn.2026-01.org.example:host1-root");
    let want: Ipv6Addr = "2001:db8::10".parse().unwrap();
    assert_eq!(p.server, Server::Ip(IpAddr::V6(want)));
    assert_eq!(p.target, IQN);
}

#[test]
fn host_names_are_kept_as_names() {
    let p = rp("iscsi:san.example.org::::iqn.2026-01.org.example:host1-root");
    assert_eq!(p.server, Server::Name("san.example.org".into()));
    assert_eq!(p.ip(), None);
}

#[test]
fn the_scheme_is_case_insensitive() {
    assert_eq!(
        rp("ISCSI:192.0.2.10::::iqn.2026-01.org.example:x"),
        rp("iscsi:192.0.2.10::::iqn.2026-01.org.example:x")
    );
}

#[test]
fn the_lun_is_hexadecimal_levels_as_ipxe_reads_it() {
    for (text, bytes) in [
        ("0", [0u8; 8]),
        ("1", [0, 1, 0, 0, 0, 0, 0, 0]),
        ("a", [0, 0x0a, 0, 0, 0, 0, 0, 0]),
        ("10", [0, 0x10, 0, 0, 0, 0, 0, 0]),
        ("4001", [0x40, 0x01, 0, 0, 0, 0, 0, 0]),
        ("0-1", [0, 0, 0, 1, 0, 0, 0, 0]),
        (
            "4752-3A4F-6b7e-2F99",
            [0x47, 0x52, 0x3a, 0x4f, 0x6b, 0x7e, 0x2f, 0x99],
        ),
    ] {
        let p = rp(&format!("iscsi:192.0.2.1:::{text}:{IQN}"));
        assert_eq!(p.lun, Lun(bytes), "{text}");
    }
    // The LUN a user means by "10" in RFC 4173 is sixteen.
    assert_eq!(
        rp(&format!("iscsi:192.0.2.1:::10:{IQN}")).lun.number(),
        Some(16)
    );
    assert_eq!(
        rp(&format!("iscsi:192.0.2.1:::4001:{IQN}")).lun.number(),
        Some(1)
    );
}

#[test]
fn display_is_canonical_and_parses_back() {
    for s in [
        "iscsi:192.0.2.10:6:3261:1:iqn.2026-01.org.example:host1-root",
        "iscsi:[2001:db8::10]::::iqn.2026-01.org.example:host1-root",
        "iscsi:san.example.org:::0-1:eui.02004567A425678D",
        "iscsi:192.0.2.1:::4752-3A4F-6b7e-2F99:naa.52004567BA64678D",
        "iscsi:192.0.2.1:::0-0-0-1:naa.52004567BA64678D",
    ] {
        let p = rp(s);
        let text = p.to_string();
        assert_eq!(rp(&text), p, "{s} -> {text}");
    }
    assert_eq!(
        rp("iscsi:192.0.2.10::::iqn.2026-01.org.example:host1-root").to_string(),
        "iscsi:192.0.2.10::3260:0:iqn.2026-01.org.example:host1-root"
    );
    assert_eq!(
        rp("iscsi:[2001:db8::10]:::a:iqn.2026-01.org.example:host1-root").to_string(),
        "iscsi:[2001:db8::10]::3260:a:iqn.2026-01.org.example:host1-root"
    );
}

fn bad(s: &str) -> RootPathError {
    match RootPath::parse(s) {
        Ok(p) => panic!("{s} parsed as {p:?}"),
        Err(e) => e,
    }
}

fn invalid_field(s: &str) -> (Field, String) {
    match bad(s) {
        RootPathError::Invalid { field, text, .. } => (field, text),
        other => panic!("{s}: {other:?}"),
    }
}

#[test]
fn malformed_root_paths_say_which_field() {
    assert_eq!(bad("nfs:192.0.2.1:/root"), RootPathError::NotIscsi);
    assert_eq!(bad("iscsi"), RootPathError::NotIscsi);
    assert_eq!(bad(""), RootPathError::NotIscsi);
    assert_eq!(
        bad("iscsi:192.0.2.1:iqn.2026-01.org.example"),
        RootPathError::TooFewFields { found: 1 }
    );
    assert_eq!(
        bad("iscsi:192.0.2.1:::"),
        RootPathError::TooFewFields { found: 3 }
    );
    assert_eq!(bad("iscsi:[2001:db8::1::::x"), RootPathError::Brackets);
    assert_eq!(bad("iscsi:2001:db8]::::x"), RootPathError::Brackets);
    assert_eq!(bad("iscsi:x[1]::::x"), RootPathError::Brackets);
    assert_eq!(
        bad(&format!("iscsi:192.0.2.1::[1]::{IQN}")),
        RootPathError::Brackets
    );
    for (s, field, text) in [
        (format!("iscsi:::::{IQN}"), Field::Server, ""),
        (
            format!("iscsi:300.1.1.1::::{IQN}"),
            Field::Server,
            "300.1.1.1",
        ),
        (
            format!("iscsi:010.0.0.1::::{IQN}"),
            Field::Server,
            "010.0.0.1",
        ),
        (
            format!("iscsi:[192.0.2.1]::::{IQN}"),
            Field::Server,
            "[192.0.2.1]",
        ),
        (
            format!("iscsi:[fe80::1%em0]::::{IQN}"),
            Field::Server,
            "[fe80::1%em0]",
        ),
        (
            format!("iscsi:bad_host::::{IQN}"),
            Field::Server,
            "bad_host",
        ),
        (format!("iscsi:-lead::::{IQN}"), Field::Server, "-lead"),
        (format!("iscsi:192.0.2.1:17:::{IQN}"), Field::Protocol, "17"),
        (
            format!("iscsi:192.0.2.1:tcp:::{IQN}"),
            Field::Protocol,
            "tcp",
        ),
        (format!("iscsi:192.0.2.1::0::{IQN}"), Field::Port, "0"),
        (
            format!("iscsi:192.0.2.1::65536::{IQN}"),
            Field::Port,
            "65536",
        ),
        (
            format!("iscsi:192.0.2.1::+3260::{IQN}"),
            Field::Port,
            "+3260",
        ),
        (
            format!("iscsi:192.0.2.1::3260x::{IQN}"),
            Field::Port,
            "3260x",
        ),
        (format!("iscsi:192.0.2.1:::g:{IQN}"), Field::Lun, "g"),
        (
            format!("iscsi:192.0.2.1:::12345:{IQN}"),
            Field::Lun,
            "12345",
        ),
        (format!("iscsi:192.0.2.1:::1--2:{IQN}"), Field::Lun, "1--2"),
        (format!("iscsi:192.0.2.1:::1-:{IQN}"), Field::Lun, "1-"),
        (
            format!("iscsi:192.0.2.1:::1-2-3-4-5:{IQN}"),
            Field::Lun,
            "1-2-3-4-5",
        ),
        (format!("iscsi:192.0.2.1:::+1:{IQN}"), Field::Lun, "+1"),
        ("iscsi:192.0.2.1::::".to_string(), Field::Target, ""),
    ] {
        assert_eq!(invalid_field(&s), (field, text.to_string()), "{s}");
    }
    assert_eq!(
        bad("iscsi:192.0.2.1::::iqn.2026-01.org.Example:x"),
        RootPathError::TargetName(NameError::Uppercase)
    );
    assert_eq!(
        bad("iscsi:192.0.2.1::::target1"),
        RootPathError::TargetName(NameError::UnknownType)
    );
}

#[test]
fn root_path_errors_read_as_sentences_and_escape_control_characters() {
    assert_eq!(
        bad(&format!("iscsi:192.0.2.1::0::{IQN}")).to_string(),
        "port \"0\": outside 1-65535 (leave it empty for 3260)"
    );
    assert_eq!(
        bad(&format!("iscsi:192.0.2.1:::g:{IQN}")).to_string(),
        "LUN \"g\": hexadecimal levels of 1-4 digits joined by '-' (RFC 4173), e.g. 1, a, 0-1"
    );
    let e = bad(&format!("iscsi:evil\u{1b}x::::{IQN}")).to_string();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("\\u{1b}"), "{e}");
    assert!(bad("iscsi:1::x").to_string().contains("2 of the 5 fields"));
}

#[test]
fn multibyte_text_anywhere_never_panics() {
    for s in [
        "iscsi:\u{e9}::::x",
        "iscsi:[\u{e9}]::::x",
        "iscsi:1.2.3.4:\u{e9}:::x",
        "iscsi:1.2.3.4::\u{e9}::x",
        "iscsi:1.2.3.4:::\u{e9}:x",
        "iscsi:1.2.3.4::::\u{e9}",
        "iscs\u{e9}:",
        "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
    ] {
        assert!(RootPath::parse(s).is_err(), "{s}");
    }
}

// ---- loader configuration ----------------------------------------------------------------------

#[derive(Default)]
struct Kenv(BTreeMap<String, String>);

impl Kenv {
    fn with(pairs: &[(&str, &str)]) -> Kenv {
        Kenv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
    fn set(mut self, k: &str, v: &str) -> Kenv {
        self.0.insert(k.into(), v.into());
        self
    }
    fn unset(mut self, k: &str) -> Kenv {
        self.0.remove(k);
        self
    }
}

impl Env for Kenv {
    fn get(&self, name: &str) -> Option<String> {
        assert!(
            !SECRETS.contains(&name),
            "{name} must be read with get_secret"
        );
        self.0.get(name).cloned()
    }
    fn get_secret(&self, name: &str) -> Option<Secret> {
        self.0.get(name).map(|v| Secret::new(v.as_bytes()))
    }
}

const CHAP_S: &str = "initiator-s3cr";
const REV_S: &str = "target-s3cret1";

fn base() -> Kenv {
    Kenv::with(&[
        (
            ROOT_PATH,
            "iscsi:192.0.2.10::3260:1:iqn.2026-01.org.example:host1-root",
        ),
        (INITIATOR_NAME, INITIATOR),
        (NIC_MAC, "58:9c:fc:0b:00:01"),
        (NIC_ADDRESS, "192.0.2.20"),
        (NIC_PREFIX, "24"),
        (NIC_GATEWAY, "192.0.2.1"),
    ])
}

/// `from_env`'s configuration, checked against what the firmware path makes of a table holding
/// the same pair: `from_env` builds it without the table, so every accepted environment must
/// pass the table's checks and come out the same.
fn loaded(env: &Kenv) -> Loaded {
    let l = from_env(env).unwrap_or_else(|e| panic!("{e}"));
    let c = &l.config;
    let b = c.boot().unwrap();
    let table = Ibft {
        signature: *b"iBFT",
        oem_id: *b"loader",
        oem_table_id: *b"isboot\0\0",
        control_flags: 0,
        initiator: Some(c.initiator.clone()),
        nics: alloc::vec![Some(b.nic.clone())],
        targets: alloc::vec![Some(b.target.clone())],
    };
    let mut firmware = table
        .into_boot_config()
        .unwrap_or_else(|e| panic!("the firmware checks refuse it: {e}"));
    firmware.source = Source::Loader;
    firmware.candidates[0].ifname = b.ifname.clone();
    assert_eq!(&firmware, c);
    l
}

fn err(env: &Kenv) -> LoaderError {
    match from_env(env) {
        Ok(l) => panic!("accepted: {l:?}"),
        Err(e) => e,
    }
}

#[test]
fn tunables_alone_make_the_same_boot_config_an_ibft_would() {
    let l = loaded(&base());
    assert_eq!(l.nic_source, NicSource::Tunables);
    let c = &l.config;
    assert_eq!(c.source, Source::Loader);
    assert_eq!(c.initiator_name, INITIATOR);
    assert_eq!(c.initiator.name.as_deref(), Some(INITIATOR));
    assert!(c.skipped.is_empty());
    assert_eq!(c.candidates.len(), 1);
    let b = c.boot().unwrap();
    assert_eq!(b.ifname, None);
    assert_eq!(b.nic.mac, [0x58, 0x9c, 0xfc, 0x0b, 0x00, 0x01]);
    assert_eq!(b.nic.ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20))));
    assert_eq!(b.nic.prefix_len, 24);
    assert_eq!(b.nic.gateway, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(b.nic.vlan_id(), None);
    assert!(b.nic.is_valid());
    let t = &b.target;
    assert_eq!(t.ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))));
    assert_eq!((t.port, t.lun.number()), (3260, Some(1)));
    assert_eq!(t.name.as_deref(), Some(IQN));
    assert_eq!(t.chap_type, ChapType::None);
    assert!(t.is_boot_selected());
    // The session takes it exactly as it takes a firmware table's.
    let s = SessionConfig::from_boot(c, Isid([0x80, 0, 0, 0, 0, 1]));
    assert_eq!(s.initiator_name, INITIATOR);
    assert_eq!(s.targets.len(), 1);
    assert_eq!(s.targets[0].portal.addr.to_string(), "192.0.2.10:3260");
    assert_eq!(s.targets[0].name, IQN);
    assert!(s.targets[0].chap.is_none());
}

#[test]
fn chap_and_mutual_chap_reach_the_session() {
    let env = base().set(CHAP_NAME, "host1").set(CHAP_SECRET, CHAP_S);
    let c = loaded(&env).config;
    assert_eq!(c.candidates[0].target.chap_type, ChapType::Chap);
    let s = SessionConfig::from_boot(&c, Isid([0x80, 0, 0, 0, 0, 1]));
    let chap = s.targets[0].chap.as_ref().unwrap();
    assert_eq!(chap.initiator.name, "host1");
    assert!(chap.initiator.secret.ct_eq(CHAP_S.as_bytes()));
    assert!(chap.target.is_none());

    let env = env
        .set(REVERSE_CHAP_NAME, "target1")
        .set(REVERSE_CHAP_SECRET, REV_S);
    let c = loaded(&env).config;
    assert_eq!(c.candidates[0].target.chap_type, ChapType::Mutual);
    let s = SessionConfig::from_boot(&c, Isid([0x80, 0, 0, 0, 0, 1]));
    let chap = s.targets[0].chap.as_ref().unwrap();
    let back = chap.target.as_ref().unwrap();
    assert_eq!(back.name, "target1");
    assert!(back.secret.ct_eq(REV_S.as_bytes()));
    // Nothing printable carries a secret.
    let dbg = format!("{c:?} {s:?}");
    assert!(!dbg.contains(CHAP_S) && !dbg.contains(REV_S), "{dbg}");
}

#[test]
fn the_nic_from_the_loaders_boot_netif_variables() {
    // What stand/common/dev_net.c exports after a PXE boot without a gateway.
    let env = base()
        .unset(NIC_MAC)
        .unset(NIC_ADDRESS)
        .unset(NIC_PREFIX)
        .unset(NIC_GATEWAY)
        .set(NETIF_HWADDR, "58:9c:fc:0b:00:01")
        .set(NETIF_IP, "192.0.2.20")
        .set(NETIF_NETMASK, "255.255.255.0")
        .set(NETIF_GATEWAY, "0.0.0.0")
        .set("boot.netif.server", "192.0.2.1");
    let l = loaded(&env);
    assert_eq!(l.nic_source, NicSource::LoaderNetif);
    let b = l.config.candidates[0].clone();
    assert_eq!(b.nic.mac, [0x58, 0x9c, 0xfc, 0x0b, 0, 1]);
    assert_eq!(b.nic.prefix_len, 24);
    assert_eq!(b.nic.gateway, None);
    assert_eq!(b.ifname, None);
    // bhyveload -e boot.netif.name=vtnet0 without a hardware address: by name.
    let env = env.unset(NETIF_HWADDR).set(NETIF_NAME, "vtnet0");
    let b = loaded(&env).config.candidates[0].clone();
    assert_eq!(b.ifname.as_deref(), Some("vtnet0"));
    assert_eq!(b.nic.mac, [0; 6]);
    // Explicit net.isboot.nic_* win over boot.netif.*.
    let env = env
        .set(NIC_NAME, "em1")
        .set(NIC_ADDRESS, "198.51.100.7")
        .set(NIC_PREFIX, "255.255.255.128")
        .set(NIC_VLAN, "100");
    let l = loaded(&env);
    assert_eq!(l.nic_source, NicSource::Tunables);
    let b = &l.config.candidates[0];
    assert_eq!(b.ifname.as_deref(), Some("em1"));
    assert_eq!(b.nic.prefix_len, 25);
    assert_eq!(b.nic.vlan_id(), Some(100));
}

#[test]
fn ipv6_from_tunables() {
    let env = base()
        .set(
            ROOT_PATH,
            "iscsi:[2001:db8::10]::::iqn.2026-01.org.example:host1-root",
        )
        .set(NIC_ADDRESS, "2001:db8::20")
        .set(NIC_PREFIX, "64")
        .set(NIC_GATEWAY, "fe80::1");
    let b = loaded(&env).config.candidates[0].clone();
    assert_eq!(b.nic.prefix_len, 64);
    assert_eq!(b.target.ip, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(b.nic.gateway, Some("fe80::1".parse().unwrap()));
}

#[test]
fn empty_values_count_as_unset() {
    let env = base()
        .set(NIC_GATEWAY, "")
        .set(CHAP_NAME, "")
        .set(CHAP_SECRET, "");
    let b = loaded(&env).config.candidates[0].clone();
    assert_eq!(b.nic.gateway, None);
    assert_eq!(b.target.chap_type, ChapType::None);
}

/// Each broken environment, and the text its error must say (the variable first).
#[test]
fn every_error_names_the_variable() {
    let cases: [(Kenv, &str); 30] = [
        (base().unset(ROOT_PATH), "net.isboot.root_path is not set"),
        (
            base().set(ROOT_PATH, "iscsi:192.0.2.10::0:1:iqn.2026-01.org.example:x"),
            "net.isboot.root_path=\"iscsi:192.0.2.10::0:1:iqn.2026-01.org.example:x\": port \"0\"",
        ),
        (
            base().set(ROOT_PATH, "iscsi:san.example::::iqn.2026-01.org.example:x"),
            "server \"san.example\" is a host name, and the kernel has no resolver",
        ),
        (base().unset(INITIATOR_NAME), "net.isboot.initiator_name is not set"),
        (
            base().set(INITIATOR_NAME, "host1"),
            "net.isboot.initiator_name=\"host1\": expected iqn., eui. or naa.",
        ),
        (
            base().set(CHAP_NAME, "host1"),
            "net.isboot.chap_name is set without net.isboot.chap_secret",
        ),
        (
            base().set(CHAP_SECRET, CHAP_S),
            "net.isboot.chap_secret is set without net.isboot.chap_name",
        ),
        (
            base().set(CHAP_NAME, "host1").set(CHAP_SECRET, "short"),
            "net.isboot.chap_secret: 5 bytes; a CHAP secret has 12 to 255",
        ),
        (
            base().set(CHAP_NAME, "a\u{7}b").set(CHAP_SECRET, CHAP_S),
            "net.isboot.chap_name=\"a\\u{7}b\": a CHAP name is 1-255 bytes",
        ),
        (
            base()
                .set(REVERSE_CHAP_NAME, "t")
                .set(REVERSE_CHAP_SECRET, REV_S),
            "net.isboot.reverse_chap_name (mutual CHAP) needs one-way CHAP too: net.isboot.chap_name",
        ),
        (
            base()
                .set(CHAP_NAME, "h")
                .set(CHAP_SECRET, CHAP_S)
                .set(REVERSE_CHAP_NAME, "t"),
            "net.isboot.reverse_chap_name is set without net.isboot.reverse_chap_secret",
        ),
        (
            base()
                .set(CHAP_NAME, "h")
                .set(CHAP_SECRET, CHAP_S)
                .set(REVERSE_CHAP_NAME, "t")
                .set(REVERSE_CHAP_SECRET, CHAP_S),
            "net.isboot.reverse_chap_secret must differ (RFC 7143 section 9.2.1) from net.isboot.chap_secret",
        ),
        (
            base().set(NIC_NAME, "em0"),
            "net.isboot.nic_name and net.isboot.nic_mac are both set",
        ),
        (
            base().unset(NIC_MAC),
            "neither net.isboot.nic_name nor net.isboot.nic_mac is set",
        ),
        (
            base().unset(NIC_MAC).set(NIC_NAME, "em0;rm"),
            "net.isboot.nic_name=\"em0;rm\": an interface name is",
        ),
        (
            base().unset(NIC_MAC).set(NIC_NAME, "averyveryverylongname0"),
            "net.isboot.nic_name=\"averyveryverylongname0\"",
        ),
        (
            base().set(NIC_MAC, "58:9c:fc:0b:00"),
            "net.isboot.nic_mac=\"58:9c:fc:0b:00\": a MAC address is six hex bytes",
        ),
        (
            base().set(NIC_MAC, "01:00:5e:00:00:01"),
            "net.isboot.nic_mac=\"01:00:5e:00:00:01\": not the unicast address",
        ),
        (base().unset(NIC_ADDRESS), "net.isboot.nic_address is not set"),
        (
            base().set(NIC_ADDRESS, "192.0.2.300"),
            "net.isboot.nic_address=\"192.0.2.300\": not an IPv4 or IPv6 address",
        ),
        (
            base().set(NIC_ADDRESS, "0.0.0.0"),
            "net.isboot.nic_address=\"0.0.0.0\": not an address an interface can have",
        ),
        (base().unset(NIC_PREFIX), "net.isboot.nic_prefix is not set"),
        (
            base().set(NIC_PREFIX, "33"),
            "net.isboot.nic_prefix=\"33\": a prefix length for 192.0.2.20 is 0-32",
        ),
        (
            base().set(NIC_PREFIX, "255.0.255.0"),
            "net.isboot.nic_prefix=\"255.0.255.0\": the netmask's ones are not contiguous",
        ),
        (
            base().set(NIC_GATEWAY, "2001:db8::1"),
            "net.isboot.nic_gateway=\"2001:db8::1\": not of the address family",
        ),
        (
            base().set(NIC_VLAN, "4095"),
            "net.isboot.nic_vlan=\"4095\": a VLAN id is 1-4094",
        ),
        (
            base().set(ROOT_PATH, "iscsi:[2001:db8::10]::::iqn.2026-01.org.example:x"),
            "net.isboot.root_path names a target of another address family than net.isboot.nic_address",
        ),
        (
            Kenv::with(&[
                (ROOT_PATH, "iscsi:192.0.2.10::::iqn.2026-01.org.example:x"),
                (INITIATOR_NAME, INITIATOR),
            ]),
            "no boot NIC: set net.isboot.nic_name or net.isboot.nic_mac",
        ),
        (
            Kenv::with(&[
                (ROOT_PATH, "iscsi:192.0.2.10::::iqn.2026-01.org.example:x"),
                (INITIATOR_NAME, INITIATOR),
                (NETIF_IP, "192.0.2.20"),
                (NETIF_NETMASK, "255.255.255.0"),
            ]),
            "neither boot.netif.hwaddr nor boot.netif.name is set",
        ),
        (
            Kenv::with(&[
                (ROOT_PATH, "iscsi:192.0.2.10::::iqn.2026-01.org.example:x"),
                (INITIATOR_NAME, INITIATOR),
                (NETIF_IP, "192.0.2.20"),
                (NETIF_HWADDR, "58:9c:fc:0b:00:01"),
            ]),
            "boot.netif.netmask is not set",
        ),
    ];
    for (env, want) in cases {
        let e = err(&env).to_string();
        assert!(e.contains(want), "wanted {want:?} in {e:?}");
        for s in [CHAP_S, REV_S] {
            assert!(!e.contains(s), "secret in {e:?}");
        }
    }
}

#[test]
fn a_secret_is_never_shown_even_when_it_is_the_wrong_length() {
    let long = "x".repeat(300);
    for v in ["tiny-secret", long.as_str()] {
        let env = base().set(CHAP_NAME, "h").set(CHAP_SECRET, v);
        let e = err(&env);
        assert!(matches!(
            e,
            LoaderError::Invalid {
                var: CHAP_SECRET,
                value: None,
                ..
            }
        ));
        let text = format!("{e} {e:?}");
        assert!(!text.contains(v), "{text}");
    }
}

#[test]
fn the_secret_variables_are_the_ones_get_secret_reads() {
    // Kenv::get panics when asked for a secret: a full mutual configuration reads both secrets
    // through get_secret only.
    let env = base()
        .set(CHAP_NAME, "h")
        .set(CHAP_SECRET, CHAP_S)
        .set(REVERSE_CHAP_NAME, "t")
        .set(REVERSE_CHAP_SECRET, REV_S);
    loaded(&env);
    assert_eq!(SECRETS, [CHAP_SECRET, REVERSE_CHAP_SECRET]);
    for s in SECRETS {
        assert!(VARIABLES.contains(&s));
    }
}

#[test]
fn mac_and_prefix_forms() {
    assert_eq!(
        parse_mac(NIC_MAC, "2:0:0:0:a:ff"),
        Ok([2, 0, 0, 0, 0x0a, 0xff])
    );
    for bad in [
        "",
        "2:0:0:0:0",
        "2:0:0:0:0:0:0",
        "2:0:0:0:0:100",
        "2-0-0-0-0-1",
        "2:0:0:0:0:g",
    ] {
        assert!(parse_mac(NIC_MAC, bad).is_err(), "{bad}");
    }
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(parse_prefix(NIC_PREFIX, "255.255.255.255", v4), Ok(32));
    assert_eq!(parse_prefix(NIC_PREFIX, "0.0.0.0", v4), Ok(0));
    assert_eq!(parse_prefix(NIC_PREFIX, "255.255.240.0", v4), Ok(20));
    assert_eq!(parse_prefix(NIC_PREFIX, "128", v6), Ok(128));
    assert!(parse_prefix(NIC_PREFIX, "129", v6).is_err());
    assert!(parse_prefix(NIC_PREFIX, "255.255.255.0", v6).is_err());
    assert!(parse_prefix(NIC_PREFIX, "-1", v4).is_err());
}

#[test]
fn source_setting() {
    assert_eq!(mode(&Kenv::default()), Ok(Mode::Auto));
    for m in Mode::SETTINGS {
        let env = Kenv::with(&[(SOURCE, m)]);
        assert_eq!(mode(&env).map(Mode::setting), Ok(m));
    }
    let e = mode(&Kenv::with(&[(SOURCE, "dhcp")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "net.isboot.source=\"dhcp\": expected auto, ibft or loader"
    );
    assert!(Mode::Auto.uses_ibft() && Mode::Ibft.uses_ibft() && !Mode::Loader.uses_ibft());
    assert!(is_configured(&base()));
    assert!(!is_configured(&base().set(ROOT_PATH, "")));
}

// ---- numeric tunables --------------------------------------------------------------------------

#[test]
fn tunable_defaults_are_the_session_defaults() {
    let mut cfg = SessionConfig::new(INITIATOR.into(), Isid([0x80, 0, 0, 0, 0, 1]), alloc::vec![]);
    let before = format!(
        "{:?}",
        (cfg.connect_timeout, cfg.login_timeout, cfg.timeouts)
    );
    Timeouts::default().apply(&mut cfg);
    let after = format!(
        "{:?}",
        (cfg.connect_timeout, cfg.login_timeout, cfg.timeouts)
    );
    assert_eq!(before, after);
    for t in tunables::ALL {
        assert!(t.min <= t.default && t.default <= t.max, "{}", t.name);
        assert!(t.name.starts_with("net.isboot."), "{}", t.name);
    }
    assert_eq!(Timeouts::default().command_timeout(), None);
}

#[test]
fn out_of_range_values_are_clamped_and_reported() {
    let env = Kenv::with(&[
        ("net.isboot.connect_timeout", "0"),
        ("net.isboot.nop_timeout", "1000000"),
        ("net.isboot.command_timeout", "30"),
    ]);
    let mut seen = alloc::vec::Vec::new();
    let t = Timeouts::from_env(&env, &mut |p| seen.push(p));
    assert_eq!((t.connect, t.nop_timeout, t.command), (1, 3600, 30));
    assert_eq!(
        t.command_timeout(),
        Some(core::time::Duration::from_secs(30))
    );
    assert_eq!(
        seen,
        [
            Problem::Clamped(Clamped {
                name: "net.isboot.connect_timeout",
                given: 0,
                used: 1,
                min: 1,
                max: 300
            }),
            Problem::Clamped(Clamped {
                name: "net.isboot.nop_timeout",
                given: 1_000_000,
                used: 3600,
                min: 1,
                max: 3600
            })
        ]
    );
    assert_eq!(
        seen[0].to_string(),
        "net.isboot.connect_timeout=0 is outside 1-300"
    );
    let mut cfg = SessionConfig::new(INITIATOR.into(), Isid([0x80, 0, 0, 0, 0, 1]), alloc::vec![]);
    t.apply(&mut cfg);
    assert_eq!(cfg.connect_timeout.as_secs(), 1);
    assert_eq!(cfg.timeouts.nop_timeout.as_secs(), 3600);
}

#[test]
fn the_time2wait_cap_reaches_the_session() {
    let env = Kenv::with(&[("net.isboot.time2wait_max", "5")]);
    let t = Timeouts::from_env(&env, &mut |p| panic!("{p}"));
    let mut cfg = SessionConfig::new(INITIATOR.into(), Isid([0x80, 0, 0, 0, 0, 1]), alloc::vec![]);
    assert_eq!(cfg.max_time2wait.as_secs(), 60);
    t.apply(&mut cfg);
    assert_eq!(cfg.max_time2wait.as_secs(), 5);
}

#[test]
fn the_digest_setting_comes_from_the_environment() {
    use crate::text::DigestOffer;
    let read = |v: Option<&str>| {
        let env = match v {
            Some(v) => Kenv::with(&[("net.isboot.digests", v)]),
            None => Kenv::with(&[]),
        };
        tunables::digests_from_env(&env)
    };
    assert_eq!(read(None), Ok(DigestOffer::PreferNone));
    assert_eq!(read(Some("")), Ok(DigestOffer::PreferNone));
    assert_eq!(read(Some(" require ")), Ok(DigestOffer::Crc32c));
    assert_eq!(read(Some("\tforbid\n")), Ok(DigestOffer::None));
    assert!(read(Some("forbid\u{3000}")).is_err());
    assert_eq!(read(Some("forbid")), Ok(DigestOffer::None));
    assert_eq!(read(Some("prefer")), Ok(DigestOffer::PreferCrc32c));
    assert_eq!(read(Some("allow")), Ok(DigestOffer::PreferNone));
    let e = read(Some("CRC32C")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "net.isboot.digests=\"CRC32C\" is not one of allow, prefer, require, forbid"
    );
}

#[test]
fn tunables_from_the_environment_say_what_they_replaced() {
    let env = Kenv::with(&[
        ("net.isboot.nop_interval", " 7 "),
        ("net.isboot.nop_timeout", "0"),
        ("net.isboot.login_timeout", "ten"),
        ("net.isboot.root_wait", "99999999999999999999999"),
        ("net.isboot.command_timeout", ""),
        ("net.isboot.connect_timeout", "-5"),
    ]);
    let mut seen = alloc::vec::Vec::new();
    let t = Timeouts::from_env(&env, &mut |p| seen.push(format!("{p}; using {}", p.used())));
    assert_eq!(
        (
            t.nop_interval,
            t.nop_timeout,
            t.login,
            t.root_wait,
            t.command,
            t.connect
        ),
        (7, 1, 15, 3600, 0, 1)
    );
    assert_eq!(t.time2wait_max, tunables::TIME2WAIT_MAX.default);
    assert_eq!(
        seen,
        [
            "net.isboot.connect_timeout=-5 is outside 1-300; using 1",
            "net.isboot.login_timeout=\"ten\" is not a number of seconds; using 15",
            "net.isboot.nop_timeout=0 is outside 1-3600; using 1",
            "net.isboot.root_wait=9223372036854775807 is outside 1-3600; using 3600",
        ]
    );
    assert!(matches!(
        tunables::NOP_TIMEOUT.read(Some("x1")),
        Err(Problem::NotANumber { used: 15, .. })
    ));
    assert_eq!(tunables::NOP_TIMEOUT.read(None), Ok(15));
    assert_eq!(tunables::NOP_TIMEOUT.read(Some("+20")), Ok(20));
    // Blanks are ASCII ones, as the kernel's own tunables (strtoq's isspace) take them.
    assert_eq!(tunables::NOP_TIMEOUT.read(Some("\t20\r\n")), Ok(20));
    assert!(matches!(
        tunables::NOP_TIMEOUT.read(Some("\u{a0}20")),
        Err(Problem::NotANumber { used: 15, .. })
    ));
}

#[test]
fn no_nic_message_names_the_variables() {
    assert_eq!(
        LoaderError::NoNic.to_string(),
        format!(
            "no boot NIC: set {NIC_NAME} or {NIC_MAC} with {NIC_ADDRESS} and {NIC_PREFIX} \
             (the loader exported no {NETIF_IP})"
        )
    );
}
