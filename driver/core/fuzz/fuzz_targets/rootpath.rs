// SPDX-License-Identifier: BSD-2-Clause
//! The RFC 4173 root path and the loader configuration built from tunables.
//!
//! Input: lines. The first is parsed as a root path; every line is also one variable of a
//! loader environment, its first character choosing the variable (the character's code modulo
//! 18 indexes `NAMES`: `6` is the first, `7` the root path, ...) and the rest its value.
//! Properties: nothing panics; a parsed root path prints in a form that parses back equal,
//! with a valid target name; the environment's outcome (config or error text) depends on the
//! secrets only through their lengths and their equality: the same environment with the
//! secrets' letters shifted gives the same text, so no secret can appear in an error message
//! or in the configuration's Debug output.
#![no_main]

use std::collections::BTreeMap;

use isboot_core::bootcfg::loader::{self, Env, SECRETS};
use isboot_core::bootcfg::rootpath::{RootPath, Server};
use isboot_core::iscsi_name;
use isboot_core::secret::Secret;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 18] = [
    loader::SOURCE,
    loader::ROOT_PATH,
    loader::INITIATOR_NAME,
    loader::CHAP_NAME,
    loader::CHAP_SECRET,
    loader::REVERSE_CHAP_NAME,
    loader::REVERSE_CHAP_SECRET,
    loader::NIC_NAME,
    loader::NIC_MAC,
    loader::NIC_ADDRESS,
    loader::NIC_PREFIX,
    loader::NIC_GATEWAY,
    loader::NIC_VLAN,
    loader::NETIF_NAME,
    loader::NETIF_HWADDR,
    loader::NETIF_IP,
    loader::NETIF_NETMASK,
    loader::NETIF_GATEWAY,
];

struct Kenv(BTreeMap<&'static str, String>);

impl Env for Kenv {
    fn get(&self, name: &str) -> Option<String> {
        assert!(!SECRETS.contains(&name), "{name} read as text");
        self.0.get(name).cloned()
    }
    fn get_secret(&self, name: &str) -> Option<Secret> {
        self.0.get(name).map(|v| Secret::new(v.as_bytes()))
    }
}

/// A letter-for-letter change that keeps lengths, emptiness and equality between values.
fn shift(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            other => other,
        })
        .collect()
}

fn outcome(env: &Kenv) -> String {
    let mode = format!("{:?}", loader::mode(env));
    match loader::from_env(env) {
        Ok(l) => format!("{mode} ok {l:?}"),
        Err(e) => format!("{mode} error {e} / {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = text.split('\n').next().unwrap_or_default();
    if let Ok(p) = RootPath::parse(first) {
        let printed = p.to_string();
        assert_eq!(RootPath::parse(&printed).as_ref(), Ok(&p), "{printed}");
        assert_eq!(iscsi_name::check(&p.target), Ok(()));
        assert_ne!(p.port, 0);
        if let Server::Ip(std::net::IpAddr::V6(_)) = p.server {
            assert!(printed.contains('['));
        }
    }

    let mut vars = BTreeMap::new();
    for line in text.split('\n') {
        let Some(c) = line.chars().next() else {
            continue;
        };
        let name = NAMES[c as usize % NAMES.len()];
        vars.insert(name, line[c.len_utf8()..].to_string());
    }
    let plain = Kenv(vars.clone());
    let mut shifted = vars;
    for s in SECRETS {
        if let Some(v) = shifted.get_mut(s) {
            *v = shift(v);
        }
    }
    let shifted = Kenv(shifted);
    assert_eq!(outcome(&plain), outcome(&shifted));
});
