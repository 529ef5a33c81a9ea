// SPDX-License-Identifier: BSD-2-Clause
//! The iSCSI root path of RFC 4173 §5, the form DHCP's Root Path option, iPXE's `sanboot` and
//! dracut's `netroot=` take a boot target in:
//!
//! ```text
//! iscsi:<servername>:<protocol>:<port>:<LUN>:<targetname>
//! iscsi:192.0.2.10::3260:1:iqn.2026-01.org.example:host1-root
//! iscsi:[2001:db8::10]::::iqn.2026-01.org.example:host1-root
//! ```
//!
//! Read as iPXE reads it (`iscsi_parse_root_path`, `scsi_parse_lun`): the first four fields end
//! at a `:` outside brackets, the target name is the rest (it holds colons itself); an empty
//! protocol means TCP, an empty port 3260, an empty LUN 0. The LUN is hexadecimal, up to four
//! groups of up to four digits joined by `-`, each group one 16-bit level of the 8-byte SAM LUN
//! in wire order: `1` is LUN 1 (`00 01 00 …`), `a` LUN 10, `0-1` a second-level LUN. Stricter
//! than iPXE where iPXE silently reads garbage: a port must be 1-65535, a LUN group 1-4 hex
//! digits, the protocol empty or 6, the server an IPv4 address, a bracketed IPv6 address or a
//! host name, the target an iSCSI name ([`crate::iscsi_name`]).
//!
//! Text from here ends up in log lines: every error quotes the offending text with `{:?}`,
//! which escapes control characters.

use alloc::string::{String, ToString};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::escape::Quoted;
use crate::iscsi_name::{self, NameError};
use crate::lun::Lun;

/// The iSCSI well-known port, used when the root path leaves the port empty.
pub const DEFAULT_PORT: u16 = 3260;
/// RFC 4173's protocol number for TCP, the only transport iSCSI has.
pub const PROTOCOL_TCP: u8 = 6;
/// The scheme, compared without regard to case.
pub const SCHEME: &str = "iscsi:";

/// Where the target is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    Ip(IpAddr),
    /// A DNS name: `isbootctl` resolves it; the kernel has no resolver and refuses it.
    Name(String),
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Server::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Server::Name(n) => f.write_str(n),
        }
    }
}

/// A parsed root path; defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootPath {
    pub server: Server,
    pub port: u16,
    pub lun: Lun,
    pub target: String,
}

/// Which field of the root path something is wrong with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Server,
    Protocol,
    Port,
    Lun,
    Target,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Server => "server",
            Field::Protocol => "protocol",
            Field::Port => "port",
            Field::Lun => "LUN",
            Field::Target => "target name",
        })
    }
}

/// Why a root path was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootPathError {
    /// Does not start with `iscsi:`.
    NotIscsi,
    /// Fewer than five fields after the scheme (`found` of them).
    TooFewFields { found: usize },
    /// A `[` without its `]`, or brackets anywhere but around the whole server field.
    Brackets,
    /// A field holds something it may not; `text` is the field as given.
    Invalid {
        field: Field,
        text: String,
        why: &'static str,
    },
    /// The target name is not an iSCSI name.
    TargetName(NameError),
}

impl fmt::Display for RootPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootPathError::NotIscsi => {
                f.write_str("not an iSCSI root path (iscsi:SERVER:PROTOCOL:PORT:LUN:TARGET)")
            }
            RootPathError::TooFewFields { found } => write!(
                f,
                "{found} of the 5 fields after \"iscsi:\" \
                 (SERVER:PROTOCOL:PORT:LUN:TARGET; empty fields take defaults, the colons stay)"
            ),
            RootPathError::Brackets => {
                f.write_str("brackets go around an IPv6 server address only, as [2001:db8::1]")
            }
            RootPathError::Invalid { field, text, why } => {
                write!(f, "{field} {}: {why}", Quoted(text))
            }
            RootPathError::TargetName(e) => write!(f, "target name: {e}"),
        }
    }
}

impl core::error::Error for RootPathError {}

fn invalid(field: Field, text: &str, why: &'static str) -> RootPathError {
    RootPathError::Invalid {
        field,
        text: text.to_string(),
        why,
    }
}

/// Splits off the next field: up to the first `:` outside brackets.
fn next_field(s: &str) -> Option<(&str, &str)> {
    let mut in_brackets = false;
    for (i, c) in s.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            ':' if !in_brackets => return Some((s.get(..i)?, s.get(i.checked_add(1)?..)?)),
            _ => {}
        }
    }
    None
}

impl RootPath {
    /// Parses `iscsi:<servername>:<protocol>:<port>:<LUN>:<targetname>`.
    pub fn parse(s: &str) -> Result<RootPath, RootPathError> {
        let rest = match s.get(..SCHEME.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => {
                s.get(SCHEME.len()..).unwrap_or_default()
            }
            _ => return Err(RootPathError::NotIscsi),
        };
        let mut fields = [""; 4];
        let mut tail = rest;
        for (found, slot) in fields.iter_mut().enumerate() {
            let Some((field, after)) = next_field(tail) else {
                // An unclosed '[' swallowed the colons.
                return Err(if tail.contains('[') {
                    RootPathError::Brackets
                } else {
                    RootPathError::TooFewFields { found }
                });
            };
            *slot = field;
            tail = after;
        }
        let [server, protocol, port, lun] = fields;
        if [protocol, port, lun].iter().any(|f| f.contains(['[', ']'])) {
            return Err(RootPathError::Brackets);
        }
        let server = parse_server(server)?;
        parse_protocol(protocol)?;
        let port = parse_port(port)?;
        let lun = parse_lun(lun)?;
        let target = parse_target(tail)?;
        Ok(RootPath {
            server,
            port,
            lun,
            target,
        })
    }

    /// The address to connect to, when the server is one (not a name).
    pub fn ip(&self) -> Option<IpAddr> {
        match self.server {
            Server::Ip(ip) => Some(ip),
            Server::Name(_) => None,
        }
    }
}

/// The canonical form: protocol empty, port and LUN always written; `parse` reads it back
/// unchanged.
impl fmt::Display for RootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}::{}:", self.server, self.port)?;
        write_lun(f, &self.lun)?;
        write!(f, ":{}", self.target)
    }
}

/// The LUN as RFC 4173 writes it: hexadecimal 16-bit levels joined by `-`, trailing zero levels
/// left out (LUN 0 is `0`).
pub fn write_lun(f: &mut dyn fmt::Write, lun: &Lun) -> fmt::Result {
    let b = lun.0;
    let levels = [
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]),
    ];
    let used = levels
        .iter()
        .rposition(|&l| l != 0)
        .map_or(1, |last| last.saturating_add(1));
    for (i, level) in levels.iter().take(used).enumerate() {
        if i > 0 {
            f.write_char('-')?;
        }
        write!(f, "{level:x}")?;
    }
    Ok(())
}

// Not inlined into `RootPath::parse` (its one caller): 192 bytes less of the module.
#[inline(never)]
fn parse_server(s: &str) -> Result<Server, RootPathError> {
    let bad = |why| invalid(Field::Server, s, why);
    if s.is_empty() {
        return Err(bad(
            "empty; target discovery is not supported, give the target's address",
        ));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let v6 = inner.strip_suffix(']').ok_or(RootPathError::Brackets)?;
        if v6.contains(['[', ']']) {
            return Err(RootPathError::Brackets);
        }
        if v6.contains('%') {
            return Err(bad(
                "a zone is not supported: the boot NIC is the link a link-local target is on",
            ));
        }
        return v6
            .parse::<Ipv6Addr>()
            .map(|a| Server::Ip(IpAddr::V6(a)))
            .map_err(|_| bad("not an IPv6 address inside [...]"));
    }
    if s.contains(['[', ']']) {
        return Err(RootPathError::Brackets);
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s
            .parse::<Ipv4Addr>()
            .map(|a| Server::Ip(IpAddr::V4(a)))
            .map_err(|_| bad("not an IPv4 address"));
    }
    if !valid_hostname(s) {
        return Err(bad("not an IPv4 address, [IPv6 address] or host name"));
    }
    Ok(Server::Name(s.to_string()))
}

/// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-',
/// 1-63 bytes each, 253 in all (a trailing dot allowed).
pub fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_protocol(s: &str) -> Result<(), RootPathError> {
    match s {
        "" => Ok(()),
        p if p.parse::<u8>() == Ok(PROTOCOL_TCP) => Ok(()),
        p => Err(invalid(
            Field::Protocol,
            p,
            "iSCSI runs over TCP only: leave it empty or write 6",
        )),
    }
}

fn parse_port(s: &str) -> Result<u16, RootPathError> {
    if s.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(Field::Port, s, "not a number"));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid(
            Field::Port,
            s,
            "outside 1-65535 (leave it empty for 3260)",
        )),
        Ok(p) => Ok(p),
    }
}

fn parse_lun(s: &str) -> Result<Lun, RootPathError> {
    let mut b = [0u8; 8];
    if s.is_empty() {
        return Ok(Lun(b));
    }
    let mut count = 0usize;
    for (level, slot) in s.split('-').zip(b.chunks_exact_mut(2)) {
        count = count.saturating_add(1);
        if level.is_empty() || level.len() > 4 || !level.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                Field::Lun,
                s,
                "hexadecimal levels of 1-4 digits joined by '-' (RFC 4173), e.g. 1, a, 0-1",
            ));
        }
        let v = u16::from_str_radix(level, 16)
            .map_err(|_| invalid(Field::Lun, s, "not hexadecimal"))?;
        slot.copy_from_slice(&v.to_be_bytes());
    }
    if s.split('-').count() > count {
        return Err(invalid(Field::Lun, s, "more than 4 levels"));
    }
    Ok(Lun(b))
}

fn parse_target(s: &str) -> Result<String, RootPathError> {
    if s.is_empty() {
        return Err(invalid(
            Field::Target,
            s,
            "empty; the target name is required",
        ));
    }
    iscsi_name::check(s).map_err(RootPathError::TargetName)?;
    Ok(s.to_string())
}
