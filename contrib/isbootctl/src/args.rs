// SPDX-License-Identifier: BSD-2-Clause
//! The command line: parsed with lexopt, every value checked here, before a file is opened or a
//! connection made. A bad argument is a [`Usage`] error: one line on stderr, the command's
//! synopsis, exit status 64 (EX_USAGE, sysexits(3)).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use isboot_core::text::DigestOffer;
use lexopt::prelude::*;

/// A command-line error. `synopsis` is the usage of the command it concerns.
#[derive(Debug)]
pub struct Usage {
    pub message: String,
    pub synopsis: &'static str,
}

fn usage(message: impl Into<String>, synopsis: &'static str) -> Usage {
    Usage {
        message: message.into(),
        synopsis,
    }
}

pub const IBFT_SYNOPSIS: &str = "\
usage: isbootctl ibft [--json] [--show-secrets] [FILE]
       isbootctl ibft --rewrite HOST[:PORT] --output OUT [FILE]
";
pub const BOOT_SYNOPSIS: &str = "\
usage: isbootctl boot [--ibft FILE] [--portal HOST[:PORT]] [--target NAME] [--lun N]
                      [--chap NAME:SECRET] [--mutual NAME:SECRET] [--initiator NAME]
                      [--digests[=MODE]] [--timeout SECONDS] [--debug 0-3]
       isbootctl boot --root-path iscsi:... | --loader-conf FILE [options as above]
";
pub const LOADER_CONF_SYNOPSIS: &str = "\
usage: isbootctl loader-conf --root-path iscsi:... | --portal ADDR[:PORT] --target NAME [--lun N]
                             --initiator NAME [--chap NAME:SECRET [--mutual NAME:SECRET]]
                             [--nic NAME|MAC --address ADDR/PREFIX [--gateway ADDR] [--vlan ID]]
                             [--source auto|ibft|loader] [--mountfrom FSTYPE:DEVICE] [--bhyveload]
";
pub const PART_SYNOPSIS: &str = "usage: isbootctl part [--block-size N] IMAGE\n";
pub const SYNOPSIS: &str = "\
usage: isbootctl ibft [--json] [--show-secrets] [FILE]
       isbootctl ibft --rewrite HOST[:PORT] --output OUT [FILE]
       isbootctl boot [--ibft FILE] [--portal HOST[:PORT]] [--target NAME] [--lun N]
                      [--chap NAME:SECRET] [--mutual NAME:SECRET] [--initiator NAME]
                      [--digests[=MODE]] [--timeout SECONDS] [--debug 0-3]
       isbootctl boot --root-path iscsi:... | --loader-conf FILE [options as above]
       isbootctl loader-conf --root-path iscsi:... | --portal ADDR[:PORT] --target NAME [--lun N]
                             --initiator NAME [--chap NAME:SECRET [--mutual NAME:SECRET]]
                             [--nic NAME|MAC --address ADDR/PREFIX [--gateway ADDR] [--vlan ID]]
                             [--source auto|ibft|loader] [--mountfrom FSTYPE:DEVICE] [--bhyveload]
       isbootctl part [--block-size N] IMAGE
       isbootctl help [COMMAND] | --help | --version
";

pub const IBFT_HELP: &str = "\
Decode and validate an iSCSI Boot Firmware Table. FILE is a raw table (starting with
\"iBFT\") or an image of physical memory from address 0 (qemu's pmemsave, /dev/mem), which is
scanned like the kernel scans low memory; it must be a regular file, of which the first MiB is
read. Without FILE the running system's table is read (FreeBSD: the ACPI table found from
machdep.acpi_root through /dev/mem, then a /dev/mem low-memory scan; Linux:
/sys/firmware/acpi/tables/iBFT, then /dev/mem). Control characters in the table's strings are
shown escaped (\\xNN).
  --json          one JSON object instead of text
  --show-secrets  print CHAP secrets (redacted by default)
  --rewrite HOST[:PORT] --output OUT
                  write a copy of the table whose boot target is HOST:PORT (default port
                  3260), to try a firmware's table against another target; OUT is a raw table
";
pub const BOOT_HELP: &str = "\
Do what isboot.ko does at boot, from userland: log in, REPORT LUNS, INQUIRY, READ CAPACITY,
read the partition table (and the UFS superblock of the root partition), log out. Parameters
come from the iBFT (--ibft FILE, or the running system's when neither --ibft nor both --portal
and --target are given), from an RFC 4173 root path (--root-path), or from the net.isboot.*
lines of a loader.conf (--loader-conf FILE, checked as the kernel checks them); the other
options override them. Prints a transcript like the kernel's boot messages; exit status 0
only if the disk is usable as a FreeBSD boot disk.
  --root-path iscsi:SERVER:PROTOCOL:PORT:LUN:TARGET
                         the target as iPXE's sanboot and net.isboot.root_path take it: the
                         LUN in hexadecimal, empty fields for 3260 and LUN 0
  --loader-conf FILE     a loader.conf(5) with net.isboot.* (see loader-conf)
  --portal HOST[:PORT]   an IPv4 address, [IPv6] or a host name; port 1-65535, default 3260
  --target NAME          the target's iSCSI name: iqn.YYYY-MM.domain[:...], eui. (16 hex
  --initiator NAME       digits) or naa. (16 or 32 hex digits), at most 223 bytes
  --lun N                0-16383 (single-level LUN)
  --chap NAME:SECRET     one-way CHAP; the secret must be at least 12 bytes (RFC 7143
  --mutual NAME:SECRET   section 9.2.1); --mutual sets what the target must prove, with a
                         different secret
  --digests[=MODE]       CRC32C header and data digests: allow (the default, as the
                         kernel: offer None,CRC32C and let the target choose), prefer
                         (CRC32C,None; --digests alone), require (CRC32C only) or forbid
                         (None only); as the net.isboot.digests tunable
  --timeout SECONDS      bounds the login and each command, 1-3600 (default 30)
  --debug 0-3            the session's message level, as net.isboot.debug
Secrets given as options are visible to other users in ps(1): prefer the table.
";
pub const LOADER_CONF_HELP: &str = "\
Print the loader.conf(5) lines that make isboot.ko boot from a target without an iBFT
(net.isboot.root_path and the other net.isboot.* tunables), or with --bhyveload the same as
bhyveload(8) -e arguments on one line for sh(1). The lines are checked as the kernel will check
them. Without --nic the NIC is the one the loader booted from (boot.netif.*, IPv4 only).
  --root-path iscsi:...  the target (or --portal ADDR[:PORT] --target NAME [--lun N], LUN in
                         decimal; written in the root path in hexadecimal, as RFC 4173 says)
  --initiator NAME       this machine's iSCSI name, as the target's ACL knows it
  --chap NAME:SECRET     one-way CHAP; --mutual NAME:SECRET adds what the target proves
  --nic NAME|MAC         the interface (em0) or its MAC address (58:9c:fc:0b:00:01)
  --address ADDR/PREFIX  its address and prefix length, IPv4 or IPv6
  --gateway ADDR         a router to the target, when it is on another network
  --vlan ID              a VLAN on the interface, 1-4094
  --source MODE          net.isboot.source: auto (iBFT first), ibft or loader
  --mountfrom FSTYPE:DEVICE
                         vfs.root.mountfrom, e.g. ufs:/dev/gpt/rootfs
  --bhyveload            bhyveload -e arguments; isboot_load=\"YES\" stays in the guest's
                         /boot/loader.conf, since the loader loads only modules its files name
Secrets end up in the output: keep the file mode 0600. The kernel removes them from its
environment once read.
";
pub const PART_HELP: &str = "\
Show the partition table (GPT or MBR, FreeBSD type names) of a disk image, a regular file, as
`isbootctl boot` shows the boot disk's, and the UFS file systems in it.
  --block-size N  512 (default) to 65536, a power of two
";

/// What a command line asks for.
#[derive(Debug)]
pub enum Command {
    Help(Option<&'static str>),
    Version,
    Ibft(IbftArgs),
    Boot(BootArgs),
    LoaderConf(LoaderConfArgs),
    Part(PartArgs),
}

#[derive(Debug)]
pub struct LoaderConfArgs {
    pub request: crate::loaderconf::Request,
    pub bhyveload: bool,
}

#[derive(Debug, Default)]
pub struct IbftArgs {
    pub json: bool,
    pub show_secrets: bool,
    pub rewrite: Option<Portal>,
    pub output: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug)]
pub struct PartArgs {
    pub block_size: u32,
    pub image: String,
}

#[derive(Debug)]
pub struct BootArgs {
    pub ibft: Option<String>,
    pub root_path: Option<isboot_core::bootcfg::RootPath>,
    pub loader_conf: Option<String>,
    pub portal: Option<Portal>,
    pub target: Option<String>,
    pub initiator: Option<String>,
    pub lun: Option<u16>,
    pub chap: Option<Cred>,
    pub mutual: Option<Cred>,
    /// What to offer for HeaderDigest and DataDigest (`--digests[=MODE]`).
    pub digests: DigestOffer,
    pub timeout: u64,
    pub debug: u8,
}

/// CHAP credentials. The secret stays out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Cred {
    pub name: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Cred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cred({:?}, <{} bytes>)", self.name, self.secret.len())
    }
}

/// A target portal as given: an address, or a host name to resolve when it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Portal {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Portal {
    /// The address to connect to (a name is resolved now; the first address wins).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        match self {
            Portal::Addr(a) => Ok(*a),
            Portal::Name(host, port) => {
                use std::net::ToSocketAddrs;
                (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| format!("portal {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("portal {host}: no address"))
            }
        }
    }
}

pub const DEFAULT_PORT: u16 = 3260;
/// RFC 7143 §9.2.1: a CHAP secret with fewer than 96 random bits needs IPsec, which an iSCSI
/// boot does not have.
pub const CHAP_SECRET_MIN: usize = isboot_core::bootcfg::loader::CHAP_SECRET_MIN;
/// RFC 7143 §9.2.1 requires support for secrets up to 128 bits; some targets and initiators
/// refuse longer ones.
pub const CHAP_SECRET_PORTABLE: usize = 16;

/// Parses `HOST[:PORT]`: an IPv4 address, `[IPv6]` (a bare IPv6 address, without a port, is
/// accepted too) or a DNS name (RFC 1123 labels); the port is 1-65535.
pub fn parse_portal(s: &str) -> Result<Portal, String> {
    let bad = |why: &str| format!("portal {s:?}: {why}");
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(_) => Err(bad("the port must be 1-65535")),
            Err(_) => Err(bad("the port is not a number")),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| bad("not an IPv6 address inside [...]"))?;
        let port = match tail {
            "" => DEFAULT_PORT,
            t => port(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("expected :PORT after ']'"))?,
            )?,
        };
        return Ok(Portal::Addr(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if s.matches(':').count() > 1 {
        return s
            .parse::<Ipv6Addr>()
            .map(|ip| Portal::Addr(SocketAddr::new(IpAddr::V6(ip), DEFAULT_PORT)))
            .map_err(|_| bad("an IPv6 address with a port is written [ADDRESS]:PORT"));
    }
    let (host, p) = match s.split_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (s, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| Portal::Addr(SocketAddr::new(IpAddr::V4(ip), p)))
            .map_err(|_| bad("not an IPv4 address"));
    }
    if !isboot_core::bootcfg::rootpath::valid_hostname(host) {
        return Err(bad("not an IP address or host name"));
    }
    Ok(Portal::Name(host.to_string(), p))
}

/// Checks an iSCSI name with the core's rules ([`isboot_core::iscsi_name`]), the ones the
/// kernel applies to the loader tunables.
pub fn check_iscsi_name(s: &str) -> Result<(), String> {
    isboot_core::iscsi_name::check(s).map_err(|e| format!("{s:?} is not an iSCSI name: {e}"))
}

/// `NAME:SECRET` for --chap and --mutual. The secret is split at the first ':'.
fn parse_cred(flag: &str, v: &str) -> Result<Cred, String> {
    let Some((name, secret)) = v.split_once(':') else {
        return Err(format!("--{flag} wants NAME:SECRET"));
    };
    if name.is_empty() {
        return Err(format!("--{flag}: empty CHAP name"));
    }
    if name.len() > 255 || name.chars().any(char::is_control) {
        return Err(format!(
            "--{flag}: the CHAP name must be 1-255 bytes without control characters"
        ));
    }
    if secret.len() < CHAP_SECRET_MIN {
        return Err(format!(
            "--{flag}: the CHAP secret is {} bytes; RFC 7143 wants at least {CHAP_SECRET_MIN} \
             (96 bits) without IPsec",
            secret.len()
        ));
    }
    Ok(Cred {
        name: name.to_string(),
        secret: secret.as_bytes().to_vec(),
    })
}

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    flag: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!(
            "--{flag} {v:?}: expected a number from {lo} to {hi}"
        )),
    }
}

fn string(v: OsString, what: &str) -> Result<String, String> {
    v.into_string()
        .map_err(|v| format!("{what} {v:?} is not valid UTF-8"))
}

/// Parses the whole command line (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Command, Usage> {
    let mut p = lexopt::Parser::from_args(args);
    let first = p.next().map_err(|e| usage(e.to_string(), SYNOPSIS))?;
    match first {
        None => Err(usage("no command given", SYNOPSIS)),
        Some(Short('h') | Long("help")) => Ok(Command::Help(None)),
        Some(Short('V') | Long("version")) => Ok(Command::Version),
        Some(Value(cmd)) => match cmd.to_str() {
            Some("ibft") => ibft(p),
            Some("boot") => boot(p),
            Some("loader-conf") => loader_conf(p),
            Some("part") => part(p),
            Some("help") => help(p),
            _ => Err(usage(format!("unknown command {cmd:?}"), SYNOPSIS)),
        },
        Some(other) => Err(usage(other.unexpected().to_string(), SYNOPSIS)),
    }
}

fn help(mut p: lexopt::Parser) -> Result<Command, Usage> {
    let topic = match p.next().map_err(|e| usage(e.to_string(), SYNOPSIS))? {
        None => None,
        Some(Value(v)) => Some(match v.to_str() {
            Some("ibft") => "ibft",
            Some("boot") => "boot",
            Some("loader-conf") => "loader-conf",
            Some("part") => "part",
            _ => return Err(usage(format!("no help on {v:?}"), SYNOPSIS)),
        }),
        Some(other) => return Err(usage(other.unexpected().to_string(), SYNOPSIS)),
    };
    if let Some(extra) = p.next().map_err(|e| usage(e.to_string(), SYNOPSIS))? {
        return Err(usage(extra.unexpected().to_string(), SYNOPSIS));
    }
    Ok(Command::Help(topic))
}

fn ibft(mut p: lexopt::Parser) -> Result<Command, Usage> {
    let u = |m: String| usage(m, IBFT_SYNOPSIS);
    let mut a = IbftArgs::default();
    while let Some(arg) = p.next().map_err(|e| u(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some("ibft"))),
            Long("json") => a.json = true,
            Long("show-secrets") => a.show_secrets = true,
            Long("rewrite") => {
                let v = string(p.value().map_err(|e| u(e.to_string()))?, "--rewrite").map_err(u)?;
                a.rewrite = Some(parse_portal(&v).map_err(|e| u(format!("--rewrite: {e}")))?);
            }
            Long("output") => {
                a.output =
                    Some(string(p.value().map_err(|e| u(e.to_string()))?, "--output").map_err(u)?)
            }
            Value(v) if a.file.is_none() => a.file = Some(string(v, "FILE").map_err(u)?),
            Value(v) => return Err(u(format!("unexpected argument {v:?}: at most one FILE"))),
            other => return Err(u(other.unexpected().to_string())),
        }
    }
    if a.rewrite.is_some() != a.output.is_some() {
        return Err(u("--rewrite and --output go together".into()));
    }
    if a.rewrite.is_some() && (a.json || a.show_secrets) {
        return Err(u(
            "--rewrite prints the new table as text: no --json or --show-secrets".into(),
        ));
    }
    Ok(Command::Ibft(a))
}

fn part(mut p: lexopt::Parser) -> Result<Command, Usage> {
    let u = |m: String| usage(m, PART_SYNOPSIS);
    let mut block_size = 512;
    let mut image = None;
    while let Some(arg) = p.next().map_err(|e| u(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some("part"))),
            Long("block-size") => {
                let v =
                    string(p.value().map_err(|e| u(e.to_string()))?, "--block-size").map_err(u)?;
                block_size = number("block-size", &v, 512u32, 65536).map_err(u)?;
                if !block_size.is_power_of_two() {
                    return Err(u(format!("--block-size {v}: not a power of two")));
                }
            }
            Value(v) if image.is_none() => image = Some(string(v, "IMAGE").map_err(u)?),
            Value(v) => return Err(u(format!("unexpected argument {v:?}: one IMAGE"))),
            other => return Err(u(other.unexpected().to_string())),
        }
    }
    let image = image.ok_or_else(|| u("part needs an IMAGE".into()))?;
    Ok(Command::Part(PartArgs { block_size, image }))
}

fn boot(mut p: lexopt::Parser) -> Result<Command, Usage> {
    let u = |m: String| usage(m, BOOT_SYNOPSIS);
    let mut a = BootArgs {
        ibft: None,
        root_path: None,
        loader_conf: None,
        portal: None,
        target: None,
        initiator: None,
        lun: None,
        chap: None,
        mutual: None,
        digests: DigestOffer::default(),
        timeout: 30,
        debug: 0,
    };
    let value = |p: &mut lexopt::Parser, flag: &str| -> Result<String, Usage> {
        string(
            p.value().map_err(|e| u(e.to_string()))?,
            &format!("--{flag}"),
        )
        .map_err(u)
    };
    while let Some(arg) = p.next().map_err(|e| u(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some("boot"))),
            Long("digests") => {
                a.digests = match p.optional_value() {
                    None => DigestOffer::PreferCrc32c,
                    Some(v) => {
                        let v = string(v, "--digests").map_err(u)?;
                        DigestOffer::from_setting(&v).ok_or_else(|| {
                            u(format!(
                                "--digests={v}: expected {}",
                                DigestOffer::SETTINGS.join(", ")
                            ))
                        })?
                    }
                }
            }
            Long("ibft") => a.ibft = Some(value(&mut p, "ibft")?),
            Long("root-path") => {
                a.root_path = Some(parse_root_path(&value(&mut p, "root-path")?).map_err(u)?)
            }
            Long("loader-conf") => a.loader_conf = Some(value(&mut p, "loader-conf")?),
            Long("portal") => {
                let v = value(&mut p, "portal")?;
                a.portal = Some(parse_portal(&v).map_err(|e| u(format!("--portal: {e}")))?);
            }
            Long("target") => {
                let v = value(&mut p, "target")?;
                check_iscsi_name(&v).map_err(|e| u(format!("--target: {e}")))?;
                a.target = Some(v);
            }
            Long("initiator") => {
                let v = value(&mut p, "initiator")?;
                check_iscsi_name(&v).map_err(|e| u(format!("--initiator: {e}")))?;
                a.initiator = Some(v);
            }
            Long("lun") => {
                let v = value(&mut p, "lun")?;
                a.lun = Some(number("lun", &v, 0, isboot_core::lun::MAX_FLAT_LUN).map_err(u)?);
            }
            Long("chap") => a.chap = Some(parse_cred("chap", &value(&mut p, "chap")?).map_err(u)?),
            Long("mutual") => {
                a.mutual = Some(parse_cred("mutual", &value(&mut p, "mutual")?).map_err(u)?)
            }
            Long("timeout") => {
                a.timeout = number("timeout", &value(&mut p, "timeout")?, 1, 3600).map_err(u)?
            }
            Long("debug") => {
                a.debug = number("debug", &value(&mut p, "debug")?, 0, 3).map_err(u)?
            }
            Value(v) => {
                let hint = match v.to_str().and_then(DigestOffer::from_setting) {
                    Some(d) => format!(" (a digest mode is written --digests={})", d.setting()),
                    None => String::new(),
                };
                return Err(u(format!("unexpected argument {v:?}{hint}")));
            }
            other => return Err(u(other.unexpected().to_string())),
        }
    }
    check_mutual(&a.chap, &a.mutual).map_err(u)?;
    let sources = [
        a.ibft.is_some(),
        a.root_path.is_some(),
        a.loader_conf.is_some(),
    ];
    if sources.iter().filter(|&&s| s).count() > 1 {
        return Err(u(
            "--ibft, --root-path and --loader-conf are three sources: give one".into(),
        ));
    }
    if a.root_path.is_some() && (a.portal.is_some() || a.target.is_some() || a.lun.is_some()) {
        return Err(u(
            "--root-path names the target: no --portal, --target or --lun with it".into(),
        ));
    }
    Ok(Command::Boot(a))
}

fn check_mutual(chap: &Option<Cred>, mutual: &Option<Cred>) -> Result<(), String> {
    match (chap, mutual) {
        (Some(c), Some(m)) if c.secret == m.secret => Err(
            "--mutual: the target's secret must differ from the initiator's (RFC 7143 section 9.2.1)"
                .into(),
        ),
        _ => Ok(()),
    }
}

fn parse_root_path(v: &str) -> Result<isboot_core::bootcfg::RootPath, String> {
    isboot_core::bootcfg::RootPath::parse(v).map_err(|e| format!("--root-path {v:?}: {e}"))
}

/// `ADDRESS/PREFIX`, IPv4 or IPv6.
fn parse_address(v: &str) -> Result<(IpAddr, u8), String> {
    let bad = |why: &str| format!("--address {v:?}: {why}");
    let (a, p) = v
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 192.0.2.20/24"))?;
    let ip: IpAddr = a.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match p.parse::<u8>() {
        Ok(n) if n <= max => Ok((ip, n)),
        _ => Err(bad(&format!("the prefix length is 0-{max}"))),
    }
}

fn loader_conf(mut p: lexopt::Parser) -> Result<Command, Usage> {
    let u = |m: String| usage(m, LOADER_CONF_SYNOPSIS);
    let value = |p: &mut lexopt::Parser, flag: &str| -> Result<String, Usage> {
        string(
            p.value().map_err(|e| u(e.to_string()))?,
            &format!("--{flag}"),
        )
        .map_err(u)
    };
    let mut r = crate::loaderconf::Request::default();
    let mut initiator = None;
    let (mut portal, mut target, mut lun) = (None, None, None);
    let (mut chap, mut mutual) = (None, None);
    let mut bhyveload = false;
    while let Some(arg) = p.next().map_err(|e| u(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some("loader-conf"))),
            Long("root-path") => {
                r.root_path = Some(parse_root_path(&value(&mut p, "root-path")?).map_err(u)?)
            }
            Long("portal") => {
                let v = value(&mut p, "portal")?;
                match parse_portal(&v).map_err(|e| u(format!("--portal: {e}")))? {
                    Portal::Addr(a) => portal = Some(a),
                    Portal::Name(..) => {
                        return Err(u(format!(
                            "--portal {v:?}: the kernel has no resolver; give an address"
                        )))
                    }
                }
            }
            Long("target") => {
                let v = value(&mut p, "target")?;
                check_iscsi_name(&v).map_err(|e| u(format!("--target: {e}")))?;
                target = Some(v);
            }
            Long("lun") => {
                let v = value(&mut p, "lun")?;
                lun = Some(number("lun", &v, 0, isboot_core::lun::MAX_FLAT_LUN).map_err(u)?);
            }
            Long("initiator") => {
                let v = value(&mut p, "initiator")?;
                check_iscsi_name(&v).map_err(|e| u(format!("--initiator: {e}")))?;
                initiator = Some(v);
            }
            Long("chap") => chap = Some(parse_cred("chap", &value(&mut p, "chap")?).map_err(u)?),
            Long("mutual") => {
                mutual = Some(parse_cred("mutual", &value(&mut p, "mutual")?).map_err(u)?)
            }
            Long("nic") => {
                let v = value(&mut p, "nic")?;
                let is_mac = v.contains(':');
                let ok = if is_mac {
                    isboot_core::bootcfg::loader::parse_mac("--nic", &v).is_ok()
                } else {
                    isboot_core::bootcfg::loader::valid_ifname(&v)
                };
                if !ok {
                    return Err(u(format!(
                        "--nic {v:?}: an interface name (em0) or a unicast MAC address \
                         (58:9c:fc:0b:00:01)"
                    )));
                }
                r.nic = Some(v);
            }
            Long("address") => {
                r.address = Some(parse_address(&value(&mut p, "address")?).map_err(u)?)
            }
            Long("gateway") => {
                let v = value(&mut p, "gateway")?;
                r.gateway = Some(
                    v.parse()
                        .map_err(|_| u(format!("--gateway {v:?}: not an IPv4 or IPv6 address")))?,
                );
            }
            Long("vlan") => {
                r.vlan = Some(number("vlan", &value(&mut p, "vlan")?, 1, 4094).map_err(u)?)
            }
            Long("source") => {
                let v = value(&mut p, "source")?;
                r.source =
                    Some(isboot_core::bootcfg::Mode::from_setting(&v).ok_or_else(|| {
                        u(format!("--source {v:?}: expected auto, ibft or loader"))
                    })?);
            }
            Long("mountfrom") => {
                let v = value(&mut p, "mountfrom")?;
                let ok = v.split_once(':').is_some_and(|(fs, dev)| {
                    !fs.is_empty()
                        && !dev.is_empty()
                        && fs.bytes().all(|b| b.is_ascii_alphanumeric())
                        && !v.chars().any(|c| c.is_control() || c.is_whitespace())
                });
                if !ok {
                    return Err(u(format!(
                        "--mountfrom {v:?}: expected FSTYPE:DEVICE, e.g. ufs:/dev/gpt/rootfs"
                    )));
                }
                r.mountfrom = Some(v);
            }
            Long("bhyveload") => bhyveload = true,
            Value(v) => return Err(u(format!("unexpected argument {v:?}"))),
            other => return Err(u(other.unexpected().to_string())),
        }
    }
    check_mutual(&chap, &mutual).map_err(u)?;
    if mutual.is_some() && chap.is_none() {
        return Err(u("--mutual needs --chap".into()));
    }
    if r.nic.is_some() != r.address.is_some() {
        return Err(u(if r.nic.is_some() {
            "--nic needs --address ADDRESS/PREFIX".into()
        } else {
            "--address describes the --nic: give --nic".into()
        }));
    }
    if r.nic.is_none() && (r.gateway.is_some() || r.vlan.is_some()) {
        return Err(u(
            "--gateway and --vlan describe the --nic: give --nic".into()
        ));
    }
    r.initiator = initiator.ok_or_else(|| u("loader-conf needs --initiator NAME".into()))?;
    match (&r.root_path, portal, target) {
        (Some(_), None, None) if lun.is_none() => {}
        (Some(_), ..) => {
            return Err(u(
                "--root-path names the target: no --portal, --target or --lun with it".into(),
            ))
        }
        (None, Some(a), Some(t)) => {
            let lun = isboot_core::lun::Lun::from_number(u64::from(lun.unwrap_or(0)))
                .ok_or_else(|| u("--lun out of range".into()))?;
            r.root_path = Some(isboot_core::bootcfg::RootPath {
                server: isboot_core::bootcfg::Server::Ip(a.ip()),
                port: a.port(),
                lun,
                target: t,
            });
        }
        (None, ..) => {
            return Err(u(
                "no target: give --root-path, or --portal and --target".into()
            ))
        }
    }
    r.chap = chap.map(|c| (c.name, c.secret));
    r.mutual = mutual.map(|c| (c.name, c.secret));
    Ok(Command::LoaderConf(LoaderConfArgs {
        request: r,
        bhyveload,
    }))
}

/// The full help of a command (synopsis and description), or of all of them.
pub fn help_text(topic: Option<&str>) -> String {
    match topic {
        Some("ibft") => format!("{IBFT_SYNOPSIS}\n{IBFT_HELP}"),
        Some("boot") => format!("{BOOT_SYNOPSIS}\n{BOOT_HELP}"),
        Some("loader-conf") => format!("{LOADER_CONF_SYNOPSIS}\n{LOADER_CONF_HELP}"),
        Some("part") => format!("{PART_SYNOPSIS}\n{PART_HELP}"),
        _ => format!(
            "{SYNOPSIS}\nibft\n{}\nboot\n{}\nloader-conf\n{}\npart\n{}\nExit status: 0 success, 1 failure (for boot: the disk is not usable), 64 usage error.\n",
            indent(IBFT_HELP),
            indent(BOOT_HELP),
            indent(LOADER_CONF_HELP),
            indent(PART_HELP)
        ),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn portals_in_every_written_form() {
        for (s, want) in [
            ("192.0.2.1", Portal::Addr(addr("192.0.2.1:3260"))),
            ("192.0.2.1:3261", Portal::Addr(addr("192.0.2.1:3261"))),
            ("[::1]:3260", Portal::Addr(addr("[::1]:3260"))),
            ("[fe80::1]", Portal::Addr(addr("[fe80::1]:3260"))),
            ("2001:db8::5", Portal::Addr(addr("[2001:db8::5]:3260"))),
            (
                "target.example.org:860",
                Portal::Name("target.example.org".into(), 860),
            ),
            ("san", Portal::Name("san".into(), 3260)),
        ] {
            assert_eq!(parse_portal(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn bad_portals_say_what_is_wrong() {
        for (s, why) in [
            ("192.0.2.1:0", "1-65535"),
            ("192.0.2.1:65536", "1-65535"),
            ("192.0.2.1:x", "not a number"),
            ("[::1", "missing ']'"),
            ("[::1]3260", ":PORT"),
            ("[192.0.2.1]:3260", "IPv6"),
            ("::1:3260:", "[ADDRESS]:PORT"),
            ("300.1.1.1", "IPv4"),
            (":3260", "no host"),
            ("bad_host:1", "host name"),
            ("-lead.example", "host name"),
        ] {
            let e = parse_portal(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn iscsi_names_are_the_cores_with_the_name_quoted() {
        // The rules themselves are tested in isboot_core::iscsi_name.
        assert_eq!(
            check_iscsi_name("iqn.2026-01.org.example:host1-root"),
            Ok(())
        );
        assert_eq!(
            check_iscsi_name("iqn.2026-01.org.Example"),
            Err("\"iqn.2026-01.org.Example\" is not an iSCSI name: iSCSI names are lowercase (RFC 3722)".into())
        );
    }

    fn boot_args(args: &[&str]) -> Result<BootArgs, String> {
        let v = std::iter::once("boot")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        match parse(v) {
            Ok(Command::Boot(a)) => Ok(a),
            Ok(other) => panic!("{other:?}"),
            Err(u) => Err(u.message),
        }
    }

    #[test]
    fn digest_modes() {
        let base = [
            "--portal",
            "192.0.2.1",
            "--target",
            "iqn.2026-01.org.example:d",
        ];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            boot_args(&v)
        };
        assert_eq!(with(&[]).unwrap().digests, DigestOffer::PreferNone);
        assert_eq!(
            with(&["--digests"]).unwrap().digests,
            DigestOffer::PreferCrc32c
        );
        for (mode, want) in [
            ("allow", DigestOffer::PreferNone),
            ("prefer", DigestOffer::PreferCrc32c),
            ("require", DigestOffer::Crc32c),
            ("forbid", DigestOffer::None),
        ] {
            let flag = format!("--digests={mode}");
            assert_eq!(with(&[flag.as_str()]).unwrap().digests, want, "{mode}");
        }
        let e = with(&["--digests=always"]).unwrap_err();
        assert_eq!(
            e,
            "--digests=always: expected allow, prefer, require, forbid"
        );
        let e = with(&["--digests", "require"]).unwrap_err();
        assert!(
            e.ends_with("(a digest mode is written --digests=require)"),
            "{e}"
        );
    }

    #[test]
    fn chap_secrets_shorter_than_96_bits_are_refused() {
        assert!(parse_cred("chap", "user:0123456789a").is_err());
        let c = parse_cred("chap", "user:0123456789ab").expect("12 bytes");
        assert_eq!(
            (c.name.as_str(), c.secret.as_slice()),
            ("user", &b"0123456789ab"[..])
        );
        // The secret may hold ':' itself.
        let c = parse_cred("chap", "u:a:b:c:d:e:f:g").expect("colons");
        assert_eq!(c.secret, b"a:b:c:d:e:f:g");
        assert!(format!("{c:?}").contains("<13 bytes>"));
    }
}
