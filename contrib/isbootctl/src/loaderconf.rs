// SPDX-License-Identifier: BSD-2-Clause
//! The loader's side of a boot without an iBFT: `isbootctl loader-conf` writes the
//! `net.isboot.*` lines (loader.conf(5), or `bhyveload -e` arguments) for a target, and
//! `isbootctl boot --loader-conf FILE` reads such a file back, so that a machine can be
//! prepared and its boot tried before it reboots.
//!
//! Both go through the kernel's own checks (`isboot_core::bootcfg::from_env`): what is printed
//! is what the module accepts. The loader-specific limits are checked here: the kernel drops a
//! variable whose `name=value` exceeds 256 bytes at boot (kern_environment.c:
//! `KENV_MNAMELEN + 1 + KENV_MVALLEN + 1` with the terminator), and loader.conf's Lua parser
//! (stand/lua/config.lua) expands `$NAME` and takes `\` as an escape inside quotes, so those are
//! escaped in what is written and unescaped in what is read.

use std::collections::BTreeMap;

use isboot_core::bootcfg::loader::{self as vars, Env};
use isboot_core::bootcfg::{self, Loaded, RootPath};
use isboot_core::secret::Secret;

/// The kernel keeps a loader variable only if `name=value` and its NUL fit here.
pub const KENV_ENTRY_MAX: usize = 128 + 1 + 128 + 1;
/// The largest file `boot --loader-conf` reads.
pub const FILE_MAX: u64 = 64 * 1024;

/// The loader's environment as a map (from a file, or made by `loader-conf`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars(pub BTreeMap<String, String>);

impl Env for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn get_secret(&self, name: &str) -> Option<Secret> {
        self.0.get(name).map(|v| Secret::new(v.as_bytes()))
    }
}

/// What `loader-conf` is asked to write, checked by the command-line parser.
#[derive(Debug, Default)]
pub struct Request {
    pub root_path: Option<RootPath>,
    pub initiator: String,
    pub chap: Option<(String, Vec<u8>)>,
    pub mutual: Option<(String, Vec<u8>)>,
    /// An interface name or a MAC address.
    pub nic: Option<String>,
    pub address: Option<(std::net::IpAddr, u8)>,
    pub gateway: Option<std::net::IpAddr>,
    pub vlan: Option<u16>,
    pub source: Option<bootcfg::Mode>,
    pub mountfrom: Option<String>,
}

/// The variables for `r`, in the order they are printed (isboot_load and
/// vfs.root.mountfrom aside).
pub fn variables(r: &Request) -> Result<Vec<(&'static str, String)>, String> {
    let root = r
        .root_path
        .as_ref()
        .ok_or("no target: give --root-path, or --portal and --target")?;
    let mut v: Vec<(&'static str, String)> = Vec::new();
    if let Some(m) = r.source {
        v.push((vars::SOURCE, m.setting().to_string()));
    }
    v.push((vars::ROOT_PATH, root.to_string()));
    v.push((vars::INITIATOR_NAME, r.initiator.clone()));
    let text = |b: &[u8], what: &str| {
        String::from_utf8(b.to_vec()).map_err(|_| format!("the {what} secret is not UTF-8 text"))
    };
    if let Some((n, s)) = &r.chap {
        v.push((vars::CHAP_NAME, n.clone()));
        v.push((vars::CHAP_SECRET, text(s, "--chap")?));
    }
    if let Some((n, s)) = &r.mutual {
        v.push((vars::REVERSE_CHAP_NAME, n.clone()));
        v.push((vars::REVERSE_CHAP_SECRET, text(s, "--mutual")?));
    }
    if let Some(nic) = &r.nic {
        let var = if vars::parse_mac(vars::NIC_MAC, nic).is_ok() {
            vars::NIC_MAC
        } else {
            vars::NIC_NAME
        };
        v.push((var, nic.clone()));
        let (ip, prefix) = r.address.ok_or("--nic needs --address ADDRESS/PREFIX")?;
        v.push((vars::NIC_ADDRESS, ip.to_string()));
        v.push((vars::NIC_PREFIX, prefix.to_string()));
        if let Some(g) = r.gateway {
            v.push((vars::NIC_GATEWAY, g.to_string()));
        }
        if let Some(id) = r.vlan {
            v.push((vars::NIC_VLAN, id.to_string()));
        }
    } else if r.address.is_some() || r.gateway.is_some() || r.vlan.is_some() {
        return Err("--address, --gateway and --vlan describe the --nic: give --nic".into());
    }
    Ok(v)
}

/// Checks `env` as the kernel will, and the loader's own limits. Without a NIC in `env` the
/// loader's `boot.netif.*` are expected at boot: a stand-in for them lets the rest be checked
/// (the loader exports IPv4 only, so an IPv6 target then needs a NIC of its own).
pub fn check(env: &Vars) -> Result<Loaded, String> {
    for (name, value) in &env.0 {
        let len = name.len() + 1 + value.len() + 1;
        if len > KENV_ENTRY_MAX {
            return Err(format!(
                "{name}: {len} bytes with its name; the kernel drops a loader variable longer \
                 than {KENV_ENTRY_MAX} (KENV_MNAMELEN + KENV_MVALLEN)"
            ));
        }
    }
    let nic_given = vars::NIC_VARIABLES
        .iter()
        .chain([&vars::NETIF_IP])
        .any(|n| env.0.get(*n).is_some_and(|v| !v.is_empty()));
    let mut probe = env.clone();
    if !nic_given {
        let target_v6 = env
            .0
            .get(vars::ROOT_PATH)
            .and_then(|r| RootPath::parse(r).ok())
            .and_then(|r| r.ip())
            .is_some_and(|ip| ip.is_ipv6());
        if target_v6 {
            return Err(
                "an IPv6 target needs --nic and --address: the loader's boot.netif.* are IPv4 only"
                    .into(),
            );
        }
        for (k, v) in [
            (vars::NETIF_IP, "192.0.2.1"),
            (vars::NETIF_NETMASK, "255.255.255.0"),
            (vars::NETIF_HWADDR, "02:00:00:00:00:01"),
        ] {
            probe.0.insert(k.to_string(), v.to_string());
        }
    }
    bootcfg::from_env(&probe).map_err(|e| e.to_string())
}

/// `value` quoted for loader.conf: `"`, `\` and `$` escaped with a backslash.
pub fn quote_conf(value: &str) -> String {
    let mut o = String::with_capacity(value.len() + 2);
    o.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$') {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

/// `word` quoted for sh(1) when it needs it.
pub fn quote_sh(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/=@%+,[]".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The loader.conf(5) text.
pub fn render_conf(pairs: &[(&str, String)], mountfrom: Option<&str>, root: &str) -> String {
    let mut o = format!("# isboot(4): root file system on {root}\n");
    if pairs.iter().any(|(n, _)| vars::SECRETS.contains(n)) {
        o.push_str("# CHAP secrets below: keep this file readable by root only (chmod 600)\n");
    }
    o.push_str("isboot_load=\"YES\"\n");
    for (n, v) in pairs {
        o.push_str(&format!("{n}={}\n", quote_conf(v)));
    }
    if let Some(m) = mountfrom {
        o.push_str(&format!("vfs.root.mountfrom={}\n", quote_conf(m)));
    }
    o
}

/// `-e NAME=VALUE` arguments for bhyveload(8), one line, quoted for sh. `isboot_load` is not
/// among them: the loader loads the modules its loader.conf files name, not its environment's.
pub fn render_bhyveload(pairs: &[(&str, String)], mountfrom: Option<&str>) -> String {
    let mut args: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("-e {}", quote_sh(&format!("{n}={v}"))))
        .collect();
    if let Some(m) = mountfrom {
        args.push(format!(
            "-e {}",
            quote_sh(&format!("vfs.root.mountfrom={m}"))
        ));
    }
    args.join(" ") + "\n"
}

/// Reads loader.conf lines the way stand/lua/config.lua does for plain variables: `# comment`,
/// `name="value"` (with `\` escapes) or `name=word`, an optional `# comment` after. Module
/// lines (`*_load` and friends) and `exec` are skipped; `$` expansion is refused.
pub fn parse_conf(text: &str) -> Result<Vars, String> {
    let mut vars = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = line.split_once('=').ok_or_else(|| bad("no '='"))?;
        let name = name.trim_end();
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(bad(&format!("{name:?} is not a variable name")));
        }
        let rest = rest.trim_start();
        let (value, tail) = if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => v.push(e),
                        None => return Err(bad("'\\' at the end of the line")),
                    },
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '$' => return Err(bad("'$' expansion is not supported here: write \\$")),
                    c => v.push(c),
                }
            }
            let end = end.ok_or_else(|| bad("no closing '\"'"))?;
            (v, &q[end..])
        } else {
            let word_end = rest
                .find(|c: char| c.is_whitespace() || c == '#')
                .unwrap_or(rest.len());
            let word = &rest[..word_end];
            if word.contains(['$', '"', '\\']) {
                return Err(bad("a value with '$', '\"' or '\\' must be quoted"));
            }
            (word.to_string(), &rest[word_end..])
        };
        let tail = tail.trim_start();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err(bad("text after the value"));
        }
        // config.lua's MODULEEXPR: a module name has no '.', so net.isboot.chap_name is a
        // variable and isboot_name a module line.
        let module_line = [
            "_load", "_name", "_type", "_flags", "_before", "_after", "_error",
        ]
        .iter()
        .any(|s| {
            name.strip_suffix(s).is_some_and(|m| {
                !m.is_empty()
                    && m.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            })
        });
        if module_line || name == "exec" {
            continue;
        }
        vars.insert(name.to_string(), value);
    }
    Ok(Vars(vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            root_path: Some(
                RootPath::parse("iscsi:192.0.2.10::3260:1:iqn.2026-01.org.example:host1-root")
                    .expect("root path"),
            ),
            initiator: "iqn.2026-01.org.example:host1".into(),
            ..Request::default()
        }
    }

    fn vars_of(pairs: &[(&str, String)]) -> Vars {
        Vars(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn what_is_written_reads_back_and_passes_the_kernels_checks() {
        let mut r = request();
        r.chap = Some(("host1".into(), b"a$b\"c\\d-secret".to_vec()));
        r.mutual = Some(("tgt".into(), b"target's s3cret".to_vec()));
        r.nic = Some("58:9c:fc:0b:00:01".into());
        r.address = Some(("192.0.2.20".parse().expect("ip"), 24));
        r.gateway = Some("192.0.2.1".parse().expect("ip"));
        r.vlan = Some(7);
        r.source = Some(bootcfg::Mode::Loader);
        let pairs = variables(&r).expect("variables");
        let text = render_conf(&pairs, Some("ufs:/dev/gpt/rootfs"), "iscsi:x");
        assert!(text.contains("chmod 600"), "{text}");
        assert!(
            text.contains("net.isboot.chap_secret=\"a\\$b\\\"c\\\\d-secret\"\n"),
            "{text}"
        );
        assert!(text.contains("isboot_load=\"YES\"\n"), "{text}");
        let back = parse_conf(&text).expect("parse");
        assert_eq!(
            back.0.get("vfs.root.mountfrom").map(String::as_str),
            Some("ufs:/dev/gpt/rootfs")
        );
        assert!(!back.0.contains_key("isboot_load"));
        let mut want = vars_of(&pairs);
        want.0
            .insert("vfs.root.mountfrom".into(), "ufs:/dev/gpt/rootfs".into());
        assert_eq!(back, want);
        let l = check(&back).expect("kernel checks");
        let b = l.config.boot().expect("boot pair");
        assert_eq!(b.nic.vlan_id(), Some(7));
        assert!(b
            .target
            .chap_secret
            .as_ref()
            .expect("secret")
            .ct_eq(b"a$b\"c\\d-secret"));
    }

    #[test]
    fn the_nic_by_name_and_without_one() {
        let mut r = request();
        r.nic = Some("vtnet0".into());
        r.address = Some(("2001:db8::20".parse().expect("ip"), 64));
        let pairs = variables(&r).expect("variables");
        assert!(pairs.contains(&(vars::NIC_NAME, "vtnet0".to_string())));
        // An IPv4 target with an IPv6 interface address: the kernel's check says so.
        let e = check(&vars_of(&pairs)).expect_err("family");
        assert!(e.contains("another address family"), "{e}");
        // No NIC: the loader's boot.netif.* will say; IPv4 targets only.
        let pairs = variables(&request()).expect("variables");
        assert!(check(&vars_of(&pairs)).is_ok());
        let mut r = request();
        r.root_path = RootPath::parse("iscsi:[2001:db8::10]::::iqn.2026-01.org.example:x").ok();
        let e = check(&vars_of(&variables(&r).expect("variables"))).expect_err("v6");
        assert!(e.contains("IPv6 target needs --nic"), "{e}");
        let mut r = request();
        r.gateway = Some("192.0.2.1".parse().expect("ip"));
        assert!(variables(&r).expect_err("no nic").contains("give --nic"));
    }

    #[test]
    fn variables_the_kernel_would_drop_are_refused() {
        let mut r = request();
        let long = format!("iqn.2026-01.org.example:{}", "a".repeat(199));
        r.root_path = RootPath::parse(&format!("iscsi:192.0.2.10::::{long}")).ok();
        let e = check(&vars_of(&variables(&r).expect("variables"))).expect_err("long");
        assert!(e.starts_with("net.isboot.root_path: 2"), "{e}");
        assert!(e.contains("drops a loader variable longer than 258"), "{e}");
    }

    #[test]
    fn bhyveload_arguments_are_quoted_for_sh() {
        let mut r = request();
        r.chap = Some(("host1".into(), b"it's a secret".to_vec()));
        let pairs = variables(&r).expect("variables");
        let line = render_bhyveload(&pairs, Some("ufs:/dev/gpt/rootfs"));
        assert_eq!(
            line,
            "-e net.isboot.root_path=iscsi:192.0.2.10::3260:1:iqn.2026-01.org.example:host1-root \
             -e net.isboot.initiator_name=iqn.2026-01.org.example:host1 \
             -e net.isboot.chap_name=host1 \
             -e 'net.isboot.chap_secret=it'\\''s a secret' \
             -e vfs.root.mountfrom=ufs:/dev/gpt/rootfs\n"
        );
    }

    #[test]
    fn loader_conf_forms() {
        let text = "# comment\n\
                    \n\
                    isboot_load=\"YES\"   # modules are not variables\n\
                    isboot_name=\"isboot\"\n\
                    net.isboot.chap_name=\"h\"\n\
                    kernel=kernel\n\
                    net.isboot.debug=1\n\
                    net.isboot.root_path = \"iscsi:1.2.3.4::::iqn.2026-01.org.example:x\" # after\n\
                    exec=\"echo hi\"\n";
        let v = parse_conf(text).expect("parse");
        assert_eq!(
            v.0.keys().collect::<Vec<_>>(),
            [
                "kernel",
                "net.isboot.chap_name",
                "net.isboot.debug",
                "net.isboot.root_path"
            ]
        );
        assert_eq!(
            v.0["net.isboot.root_path"],
            "iscsi:1.2.3.4::::iqn.2026-01.org.example:x"
        );
        for (bad, why) in [
            ("x", "line 1: no '='"),
            ("a b=c", "line 1: \"a b\" is not a variable name"),
            ("x=\"open", "line 1: no closing '\"'"),
            ("x=\"a\\", "line 1: '\\' at the end of the line"),
            ("x=\"$HOME\"", "line 1: '$' expansion is not supported here"),
            ("x=a$b", "line 1: a value with '$'"),
            ("x=\"a\" b", "line 1: text after the value"),
        ] {
            let e = parse_conf(bad).expect_err(bad);
            assert!(e.starts_with(why), "{bad}: {e}");
        }
    }
}
