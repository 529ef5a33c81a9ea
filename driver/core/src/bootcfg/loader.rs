// SPDX-License-Identifier: BSD-2-Clause
//! The boot configuration from the loader's environment, for machines without an iBFT: a PXE,
//! TFTP or UEFI HTTP network boot of loader(8), `bhyveload`, or a loader on a USB stick.
//!
//! | variable | value |
//! |---|---|
//! | `net.isboot.root_path` | the target, `iscsi:SERVER:PROTOCOL:PORT:LUN:TARGETNAME` ([`RootPath`]) |
//! | `net.isboot.initiator_name` | this machine's iSCSI name |
//! | `net.isboot.chap_name`, `net.isboot.chap_secret` | one-way CHAP (secret 12 or more bytes) |
//! | `net.isboot.reverse_chap_name`, `net.isboot.reverse_chap_secret` | mutual CHAP: what the target proves |
//! | `net.isboot.nic_name` or `net.isboot.nic_mac` | the boot NIC by name (`em0`) or MAC |
//! | `net.isboot.nic_address`, `net.isboot.nic_prefix` | its address and prefix length (or IPv4 netmask) |
//! | `net.isboot.nic_gateway` | optional gateway |
//! | `net.isboot.nic_vlan` | optional VLAN id 1-4094 on that NIC |
//!
//! Without `net.isboot.nic_*`, the NIC is what the loader exported after its own network boot
//! (stand/common/dev_net.c, stand/efi/libefi/efihttp.c): `boot.netif.ip`, `boot.netif.netmask`
//! (dotted), `boot.netif.gateway` (`0.0.0.0` when there is none) and `boot.netif.hwaddr`
//! (`xx:xx:xx:xx:xx:xx`); `boot.netif.name` (which the kernel itself sets only later, in
//! nfs_diskless.c, so normally only `bhyveload -e` or loader.conf set it) names the interface
//! when there is no `boot.netif.hwaddr`.
//!
//! Every mistake is an error that names the variable and says what is wrong; the value is
//! quoted (`{:?}`, control characters escaped) except for secrets, of which only the length is
//! ever shown. The secrets are read through [`Env::get_secret`] straight into
//! [`Secret`]s; removing them from the kernel environment (readable by every user through
//! kenv(1)) is the platform's job, for every name in [`SECRETS`], whatever source is used.

use alloc::string::{String, ToString};
use alloc::vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use super::rootpath::{RootPath, Server};
use super::{BootCandidate, BootConfig, Source};
use crate::escape::Quoted;
use crate::ibft::{flags, ChapType, Initiator, Nic, Origin, PciBdf, Target};
use crate::ipfmt::Ip;
use crate::iscsi_name;
use crate::secret::Secret;

pub const SOURCE: &str = "net.isboot.source";
pub const ROOT_PATH: &str = "net.isboot.root_path";
pub const INITIATOR_NAME: &str = "net.isboot.initiator_name";
pub const CHAP_NAME: &str = "net.isboot.chap_name";
pub const CHAP_SECRET: &str = "net.isboot.chap_secret";
pub const REVERSE_CHAP_NAME: &str = "net.isboot.reverse_chap_name";
pub const REVERSE_CHAP_SECRET: &str = "net.isboot.reverse_chap_secret";
pub const NIC_NAME: &str = "net.isboot.nic_name";
pub const NIC_MAC: &str = "net.isboot.nic_mac";
pub const NIC_ADDRESS: &str = "net.isboot.nic_address";
pub const NIC_PREFIX: &str = "net.isboot.nic_prefix";
pub const NIC_GATEWAY: &str = "net.isboot.nic_gateway";
pub const NIC_VLAN: &str = "net.isboot.nic_vlan";
pub const NETIF_NAME: &str = "boot.netif.name";
pub const NETIF_HWADDR: &str = "boot.netif.hwaddr";
pub const NETIF_IP: &str = "boot.netif.ip";
pub const NETIF_NETMASK: &str = "boot.netif.netmask";
pub const NETIF_GATEWAY: &str = "boot.netif.gateway";

/// The variables holding secrets: the platform removes each from the environment once the
/// module has read them (and on every load, whichever source it boots from).
pub const SECRETS: [&str; 2] = [CHAP_SECRET, REVERSE_CHAP_SECRET];

/// Every `net.isboot.*` variable of the boot configuration, in the order the documentation
/// lists them.
pub const VARIABLES: [&str; 13] = [
    SOURCE,
    ROOT_PATH,
    INITIATOR_NAME,
    CHAP_NAME,
    CHAP_SECRET,
    REVERSE_CHAP_NAME,
    REVERSE_CHAP_SECRET,
    NIC_NAME,
    NIC_MAC,
    NIC_ADDRESS,
    NIC_PREFIX,
    NIC_GATEWAY,
    NIC_VLAN,
];

/// The variables that describe the NIC; any of them set means the NIC comes from them, not
/// from `boot.netif.*`.
pub const NIC_VARIABLES: [&str; 6] = [
    NIC_NAME,
    NIC_MAC,
    NIC_ADDRESS,
    NIC_PREFIX,
    NIC_GATEWAY,
    NIC_VLAN,
];

/// RFC 7143 §9.2.1: a CHAP secret with fewer than 96 random bits needs IPsec, which a boot
/// has not; `isbootctl` refuses the same.
pub const CHAP_SECRET_MIN: usize = 12;
/// Longer than any target accepts, and than the kernel environment holds (128 bytes).
pub const CHAP_SECRET_MAX: usize = 255;
/// CHAP names: 1-255 bytes of text without control characters.
pub const CHAP_NAME_MAX: usize = 255;
/// `IFNAMSIZ - 1`: the longest interface name FreeBSD has.
pub const IFNAME_MAX: usize = 15;

/// The loader's environment as the platform reads it (kern_getenv(9) in the kernel, a map in
/// tests and in `isbootctl`).
pub trait Env {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
    /// The value of a secret variable, copied straight into a [`Secret`] (no other copy is
    /// left behind by the platform).
    fn get_secret(&self, name: &str) -> Option<Secret>;
}

/// Where the NIC of a loader configuration was described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicSource {
    /// `net.isboot.nic_*`.
    Tunables,
    /// The loader's `boot.netif.*`.
    LoaderNetif,
}

impl fmt::Display for NicSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NicSource::Tunables => "net.isboot.nic_*",
            NicSource::LoaderNetif => "boot.netif.*",
        })
    }
}

/// A configuration read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub config: BootConfig,
    pub nic_source: NicSource,
}

/// Why the environment holds no usable configuration. Every variant names the variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoaderError {
    /// `var` must be set and is not.
    Missing { var: &'static str },
    /// One of `var` and `other` must be set; neither is.
    MissingOneOf {
        var: &'static str,
        other: &'static str,
    },
    /// Only one of `var` and `other` may be set; both are.
    OneOf {
        var: &'static str,
        other: &'static str,
    },
    /// `var` holds something it may not. `value` is `None` for a secret, which is never shown.
    Invalid {
        var: &'static str,
        value: Option<String>,
        why: String,
    },
    /// `var` cannot go with (or without) `other`; `why` joins the two names.
    Conflict {
        var: &'static str,
        why: &'static str,
        other: &'static str,
    },
    /// No NIC is described: neither `net.isboot.nic_*` nor the loader's `boot.netif.*`.
    NoNic,
}

/// [`LoaderError::NoNic`]'s message, the variables' names written out: as five arguments to
/// `write!` they cost module code (a test checks it against the constants).
const NO_NIC: &str = "no boot NIC: set net.isboot.nic_name or net.isboot.nic_mac with \
                      net.isboot.nic_address and net.isboot.nic_prefix (the loader exported no \
                      boot.netif.ip)";

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaderError::Missing { var } => write!(f, "{var} is not set"),
            LoaderError::MissingOneOf { var, other } => {
                write!(f, "neither {var} nor {other} is set")
            }
            LoaderError::OneOf { var, other } => {
                write!(f, "{var} and {other} are both set: set one of them")
            }
            LoaderError::Invalid {
                var,
                value: Some(v),
                why,
            } => write!(f, "{var}={}: {why}", Quoted(v)),
            LoaderError::Invalid {
                var,
                value: None,
                why,
            } => write!(f, "{var}: {why}"),
            LoaderError::Conflict { var, why, other } => write!(f, "{var} {why} {other}"),
            LoaderError::NoNic => f.write_str(NO_NIC),
        }
    }
}

impl core::error::Error for LoaderError {}

// `why` as `format_args!` where it has parts: a `String` made for it would be copied again.
fn invalid(var: &'static str, value: &str, why: impl fmt::Display) -> LoaderError {
    invalid_dyn(var, Some(value), &why)
}

// Not inlined: built at each of its 20 callers, the two copies cost module code. `value` is
// `None` for a secret, which is never shown.
#[inline(never)]
fn invalid_dyn(var: &'static str, value: Option<&str>, why: &dyn fmt::Display) -> LoaderError {
    LoaderError::Invalid {
        var,
        value: value.map(str::to_string),
        why: why.to_string(),
    }
}

/// The value of `var`, or `None` when unset. An empty value counts as unset, as loader.conf
/// writes `var=""` to clear a variable.
fn get(env: &dyn Env, var: &str) -> Option<String> {
    env.get(var).filter(|v| !v.is_empty())
}

fn secret(env: &dyn Env, var: &str) -> Option<Secret> {
    env.get_secret(var).filter(|s| !s.is_empty())
}

/// `net.isboot.source`, [`Mode::Auto`](super::Mode::Auto) when unset.
pub fn mode(env: &dyn Env) -> Result<super::Mode, LoaderError> {
    match get(env, SOURCE) {
        None => Ok(super::Mode::Auto),
        Some(v) => super::Mode::from_setting(&v)
            .ok_or_else(|| invalid(SOURCE, &v, "expected auto, ibft or loader")),
    }
}

/// Whether the environment asks for a boot from tunables at all (`net.isboot.root_path` set).
pub fn is_configured(env: &dyn Env) -> bool {
    get(env, ROOT_PATH).is_some()
}

/// Reads and checks the loader configuration.
#[inline(never)]
pub fn from_env(env: &dyn Env) -> Result<Loaded, LoaderError> {
    let Some(rp_text) = get(env, ROOT_PATH) else {
        return Err(LoaderError::Missing { var: ROOT_PATH });
    };
    let root = RootPath::parse(&rp_text).map_err(|e| invalid(ROOT_PATH, &rp_text, e))?;
    let target_ip = match &root.server {
        Server::Ip(ip) => *ip,
        Server::Name(n) => {
            return Err(invalid(
                ROOT_PATH,
                &rp_text,
                format_args!(
                    "server {} is a host name, and the kernel has no resolver: give its address",
                    Quoted(n)
                ),
            ))
        }
    };
    let Some(initiator_name) = get(env, INITIATOR_NAME) else {
        return Err(LoaderError::Missing {
            var: INITIATOR_NAME,
        });
    };
    iscsi_name::check(&initiator_name).map_err(|e| invalid(INITIATOR_NAME, &initiator_name, e))?;
    let (chap_type, chap, reverse) = chap(env)?;
    let (nic, ifname, nic_source) = nic(env)?;
    if nic.ip.map(|a| a.is_ipv4()) != Some(target_ip.is_ipv4()) {
        let var = match nic_source {
            NicSource::Tunables => NIC_ADDRESS,
            NicSource::LoaderNetif => NETIF_IP,
        };
        return Err(LoaderError::Conflict {
            var: ROOT_PATH,
            why: "names a target of another address family than",
            other: var,
        });
    }
    let (chap_name, chap_secret) = chap.map_or((None, None), |(n, s)| (Some(n), Some(s)));
    let (reverse_chap_name, reverse_chap_secret) =
        reverse.map_or((None, None), |(n, s)| (Some(n), Some(s)));
    let selected = flags::BLOCK_VALID | flags::FIRMWARE_BOOT_SELECTED;
    // What `Ibft::into_boot_config` makes of a table holding this one pair, built directly:
    // every check it makes was made above with the variable's name (a test runs the firmware
    // checks on what comes out), and building the table only to take it apart was code.
    let config = BootConfig {
        source: Source::Loader,
        initiator: Initiator {
            flags: selected,
            name: Some(initiator_name.clone()),
            ..Initiator::default()
        },
        initiator_name,
        candidates: vec![BootCandidate {
            pair: 0,
            nic,
            target: Target {
                index: 0,
                flags: selected,
                ip: Some(target_ip),
                port: root.port,
                lun: root.lun,
                chap_type,
                nic_index: 0,
                name: Some(root.target),
                chap_name,
                chap_secret,
                reverse_chap_name,
                reverse_chap_secret,
            },
            ifname,
        }],
        skipped: vec![],
    };
    Ok(Loaded { config, nic_source })
}

type Cred = (String, Secret);

fn chap_name(env: &dyn Env, var: &'static str) -> Result<Option<String>, LoaderError> {
    let Some(n) = get(env, var) else {
        return Ok(None);
    };
    if n.len() > CHAP_NAME_MAX || n.chars().any(char::is_control) {
        return Err(invalid(
            var,
            &n,
            "a CHAP name is 1-255 bytes without control characters",
        ));
    }
    Ok(Some(n))
}

fn chap_secret(env: &dyn Env, var: &'static str) -> Result<Option<Secret>, LoaderError> {
    let Some(s) = secret(env, var) else {
        return Ok(None);
    };
    if s.len() < CHAP_SECRET_MIN || s.len() > CHAP_SECRET_MAX {
        return Err(invalid_dyn(
            var,
            None,
            &format_args!(
                "{} bytes; a CHAP secret has {CHAP_SECRET_MIN} to {CHAP_SECRET_MAX} \
                 (RFC 7143 section 9.2.1 wants 96 bits or more without IPsec)",
                s.len()
            ),
        ));
    }
    Ok(Some(s))
}

/// Both halves of a credential, or neither.
fn cred(
    env: &dyn Env,
    name_var: &'static str,
    secret_var: &'static str,
) -> Result<Option<Cred>, LoaderError> {
    match (chap_name(env, name_var)?, chap_secret(env, secret_var)?) {
        (Some(n), Some(s)) => Ok(Some((n, s))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(LoaderError::Conflict {
            var: name_var,
            why: "is set without",
            other: secret_var,
        }),
        (None, Some(_)) => Err(LoaderError::Conflict {
            var: secret_var,
            why: "is set without",
            other: name_var,
        }),
    }
}

// `chap`, `nic` and `nic_from_netif` are not inlined into `from_env` (each called once):
// compiled on their own they are 320 bytes smaller in the module in all.
#[inline(never)]
fn chap(env: &dyn Env) -> Result<(ChapType, Option<Cred>, Option<Cred>), LoaderError> {
    let forward = cred(env, CHAP_NAME, CHAP_SECRET)?;
    let reverse = cred(env, REVERSE_CHAP_NAME, REVERSE_CHAP_SECRET)?;
    match (&forward, &reverse) {
        (None, None) => Ok((ChapType::None, None, None)),
        (Some(_), None) => Ok((ChapType::Chap, forward, None)),
        (None, Some(_)) => Err(LoaderError::Conflict {
            var: REVERSE_CHAP_NAME,
            why: "(mutual CHAP) needs one-way CHAP too:",
            other: CHAP_NAME,
        }),
        (Some((_, s)), Some((_, r))) if s == r => Err(LoaderError::Conflict {
            var: REVERSE_CHAP_SECRET,
            why: "must differ (RFC 7143 section 9.2.1) from",
            other: CHAP_SECRET,
        }),
        (Some(_), Some(_)) => Ok((ChapType::Mutual, forward, reverse)),
    }
}

/// The NIC, its name when it is chosen by name, and where it was described.
#[inline(never)]
fn nic(env: &dyn Env) -> Result<(Nic, Option<String>, NicSource), LoaderError> {
    if NIC_VARIABLES.iter().any(|v| get(env, v).is_some()) {
        return nic_from_tunables(env).map(|(n, name)| (n, name, NicSource::Tunables));
    }
    if get(env, NETIF_IP).is_some() {
        return nic_from_netif(env).map(|(n, name)| (n, name, NicSource::LoaderNetif));
    }
    Err(LoaderError::NoNic)
}

fn blank_nic(ip: IpAddr, prefix_len: u8, gateway: Option<IpAddr>, origin: Origin) -> Nic {
    Nic {
        index: 0,
        flags: flags::BLOCK_VALID | flags::FIRMWARE_BOOT_SELECTED,
        ip: Some(ip),
        prefix_len,
        origin,
        gateway,
        primary_dns: None,
        secondary_dns: None,
        dhcp_server: None,
        vlan: 0,
        mac: [0; 6],
        pci_bdf: PciBdf::default(),
        hostname: None,
    }
}

fn nic_from_tunables(env: &dyn Env) -> Result<(Nic, Option<String>), LoaderError> {
    let name = get(env, NIC_NAME);
    let mac = get(env, NIC_MAC);
    let (ifname, mac) = match (name, mac) {
        (Some(_), Some(_)) => {
            return Err(LoaderError::OneOf {
                var: NIC_NAME,
                other: NIC_MAC,
            })
        }
        (None, None) => {
            return Err(LoaderError::MissingOneOf {
                var: NIC_NAME,
                other: NIC_MAC,
            })
        }
        (Some(n), None) => (Some(check_ifname(NIC_NAME, n)?), [0; 6]),
        (None, Some(m)) => (None, parse_mac(NIC_MAC, &m)?),
    };
    let (ip, prefix, gateway) = addressing(env, [NIC_ADDRESS, NIC_PREFIX, NIC_GATEWAY])?;
    let mut nic = blank_nic(ip, prefix, gateway, Origin::Manual);
    nic.mac = mac;
    if let Some(v) = get(env, NIC_VLAN) {
        nic.vlan = match v.parse::<u16>() {
            Ok(id @ 1..=4094) => id,
            _ => return Err(invalid(NIC_VLAN, &v, "a VLAN id is 1-4094")),
        };
    }
    Ok((nic, ifname))
}

#[inline(never)]
fn nic_from_netif(env: &dyn Env) -> Result<(Nic, Option<String>), LoaderError> {
    let (ip, prefix, gateway) = addressing(env, [NETIF_IP, NETIF_NETMASK, NETIF_GATEWAY])?;
    if ip.is_ipv6() {
        return Err(invalid(
            NETIF_IP,
            &Ip(ip).to_string(),
            "the loader exports IPv4 only",
        ));
    }
    let mut nic = blank_nic(ip, prefix, gateway, Origin::Other);
    let ifname = match (get(env, NETIF_HWADDR), get(env, NETIF_NAME)) {
        (Some(m), _) => {
            nic.mac = parse_mac(NETIF_HWADDR, &m)?;
            None
        }
        (None, Some(n)) => Some(check_ifname(NETIF_NAME, n)?),
        (None, None) => {
            return Err(LoaderError::MissingOneOf {
                var: NETIF_HWADDR,
                other: NETIF_NAME,
            })
        }
    };
    Ok((nic, ifname))
}

/// An interface name as FreeBSD writes them: a letter, then letters, digits, '.', '_' or '-',
/// at most [`IFNAME_MAX`] bytes (`em0`, `vtnet0`, `em0.100`, `bootnet0`).
pub fn valid_ifname(n: &str) -> bool {
    n.len() <= IFNAME_MAX
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The interface's address, prefix and optional gateway from the variables `[address,
/// prefix, gateway]`.
fn addressing(
    env: &dyn Env,
    [addr_var, prefix_var, gw_var]: [&'static str; 3],
) -> Result<(IpAddr, u8, Option<IpAddr>), LoaderError> {
    let Some(addr) = get(env, addr_var) else {
        return Err(LoaderError::Missing { var: addr_var });
    };
    let ip = parse_host_ip(addr_var, &addr)?;
    let Some(prefix) = get(env, prefix_var) else {
        return Err(LoaderError::Missing { var: prefix_var });
    };
    let prefix = parse_prefix(prefix_var, &prefix, ip)?;
    let gateway = match get(env, gw_var) {
        None => None,
        Some(g) => gateway(gw_var, &g, ip)?,
    };
    Ok((ip, prefix, gateway))
}

fn check_ifname(var: &'static str, n: String) -> Result<String, LoaderError> {
    if !valid_ifname(&n) {
        return Err(invalid(
            var,
            &n,
            "an interface name is 1-15 letters, digits, '.', '_' or '-', starting with a letter",
        ));
    }
    Ok(n)
}

/// `xx:xx:xx:xx:xx:xx`, one or two hex digits a byte (as the kernel's nfs_diskless reads
/// `boot.netif.hwaddr`); a unicast address.
pub fn parse_mac(var: &'static str, s: &str) -> Result<[u8; 6], LoaderError> {
    let bad = || invalid(var, s, "a MAC address is six hex bytes joined by ':'");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for slot in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *slot = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac == [0; 6] || mac[0] & 1 != 0 {
        return Err(invalid(var, s, "not the unicast address of an interface"));
    }
    Ok(mac)
}

/// An interface address: IPv4 or IPv6, not unspecified, multicast or broadcast.
fn parse_host_ip(var: &'static str, s: &str) -> Result<IpAddr, LoaderError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| invalid(var, s, "not an IPv4 or IPv6 address"))?;
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(a) if a == Ipv4Addr::BROADCAST);
    if unusable {
        return Err(invalid(var, s, "not an address an interface can have"));
    }
    Ok(ip)
}

/// A prefix length (`24`, `64`), or for IPv4 a contiguous netmask (`255.255.255.0`).
pub fn parse_prefix(var: &'static str, s: &str, ip: IpAddr) -> Result<u8, LoaderError> {
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    if let Ok(n) = s.parse::<u8>() {
        return if n <= max {
            Ok(n)
        } else {
            Err(invalid(
                var,
                s,
                format_args!("a prefix length for {} is 0-{max}", Ip(ip)),
            ))
        };
    }
    match s.parse::<Ipv4Addr>() {
        Ok(mask) if ip.is_ipv4() => {
            let m = u32::from(mask);
            if m.leading_ones().saturating_add(m.trailing_zeros()) == 32 {
                u8::try_from(m.leading_ones()).map_err(|_| invalid(var, s, "bad netmask"))
            } else {
                Err(invalid(var, s, "the netmask's ones are not contiguous"))
            }
        }
        _ => Err(invalid(
            var,
            s,
            format_args!("a prefix length (0-{max}) or an IPv4 netmask"),
        )),
    }
}

/// A gateway of `ip`'s family; the unspecified address (the loader's `0.0.0.0`) means none.
fn gateway(var: &'static str, s: &str, ip: IpAddr) -> Result<Option<IpAddr>, LoaderError> {
    let g: IpAddr = s
        .parse()
        .map_err(|_| invalid(var, s, "not an IPv4 or IPv6 address"))?;
    if g.is_unspecified() {
        return Ok(None);
    }
    if g.is_ipv4() != ip.is_ipv4() {
        return Err(invalid(
            var,
            s,
            format_args!(
                "not of the address family of the interface address {}",
                Ip(ip)
            ),
        ));
    }
    if g.is_multicast() || g == ip {
        return Err(invalid(var, s, "not a router's address"));
    }
    Ok(Some(g))
}
