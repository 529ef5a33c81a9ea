// SPDX-License-Identifier: BSD-2-Clause
//! `isbootctl ibft`: find, validate and show an iBFT, with the core's own parser, so what the
//! admin sees is what the kernel module will use.

use std::fmt::Write as _;
use std::net::IpAddr;

use isboot_core::ibft::{self, ChapType, Ibft, Nic, Origin, Target};
use isboot_core::secret::Secret;

use crate::json::Json;
use crate::sys;
use crate::text::{self, esc};

/// A table and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub parsed: ibft::Parsed,
    /// The table's own bytes (cut to its length).
    pub raw: Vec<u8>,
    /// Human description of the source ("FILE", "FILE at offset 0x9e620 (memory image)", ...).
    pub source: String,
}

/// Reads a table from FILE (raw table or memory image), or from the running system.
pub fn load(file: Option<&str>) -> Result<Loaded, String> {
    let (bytes, source, image) = match file {
        Some(f) => {
            // A table, or a memory image of which only the first MiB (the legacy scan
            // range) matters: a larger file (a whole RAM dump) is read that far only.
            let b = text::read_file_capped(f, ibft::LEGACY_SCAN_END)?;
            (b, f.to_string(), true)
        }
        None => {
            let found = sys::system_ibft(&ibft::SIGNATURES)?;
            let image = found.source.starts_with("/dev/mem (legacy");
            (found.bytes, found.source, image)
        }
    };
    if bytes.len() >= 4 && ibft::SIGNATURES.iter().any(|s| bytes[..4] == s[..]) {
        let parsed = ibft::parse(&bytes).map_err(|e| format!("{source}: {e}"))?;
        let len = table_len(&bytes);
        return Ok(Loaded {
            parsed,
            raw: bytes[..len].to_vec(),
            source,
        });
    }
    if !image {
        return Err(format!(
            "{source}: not an iBFT (signature {:02x?})",
            bytes.get(..4).unwrap_or(&bytes)
        ));
    }
    // A memory image starting at physical address 0 (qemu's `pmemsave 0 0x100000`, /dev/mem).
    let mut last_err = None;
    for hit in ibft::scan_all(&bytes, 0) {
        let Some(table) = hit.table(&bytes) else {
            continue;
        };
        match ibft::parse(table) {
            Ok(parsed) => {
                return Ok(Loaded {
                    parsed,
                    raw: table.to_vec(),
                    source: format!(
                        "{source} at physical {:#x} (memory image scan)",
                        hit.phys_addr
                    ),
                })
            }
            // The header and checksum are fine but the inside is not: say so if nothing better turns up.
            Err(e) => {
                last_err = Some(format!(
                    "{source}: table at physical {:#x}: {e}",
                    hit.phys_addr
                ))
            }
        }
    }
    Err(last_err.unwrap_or_else(|| {
        format!(
            "{source}: no valid iBFT (neither a table at offset 0 nor one in a scan of physical \
             {:#x}-{:#x} of a memory image starting at address 0; {} bytes given)",
            ibft::LEGACY_SCAN_START,
            ibft::LEGACY_SCAN_END - 1,
            bytes.len()
        )
    }))
}

fn table_len(bytes: &[u8]) -> usize {
    let len = bytes
        .get(4..8)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    len.min(bytes.len())
}

fn ip(a: Option<IpAddr>) -> Option<String> {
    a.map(|a| a.to_string())
}

pub fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn origin(o: Origin) -> String {
    match o {
        Origin::Other => "other".into(),
        Origin::Manual => "manual".into(),
        Origin::WellKnown => "well-known".into(),
        Origin::Dhcp => "dhcp".into(),
        Origin::RouterAdvertisement => "router-advertisement".into(),
        Origin::Unchanged(_) => "unchanged".into(),
        Origin::Unknown(raw) => format!("unknown({raw})"),
    }
}

pub fn chap(c: ChapType) -> String {
    match c {
        ChapType::None => "none".into(),
        ChapType::Chap => "chap".into(),
        ChapType::Mutual => "mutual".into(),
        ChapType::Unknown(raw) => format!("unknown({raw})"),
    }
}

fn secret(s: &Option<Secret>, show: bool) -> Option<String> {
    s.as_ref().map(|s| {
        if show {
            String::from_utf8_lossy(s.expose()).into_owned()
        } else {
            "<redacted>".into()
        }
    })
}

fn dns(n: &Nic) -> Vec<String> {
    [n.primary_dns, n.secondary_dns]
        .into_iter()
        .flatten()
        .map(|a| a.to_string())
        .collect()
}

pub fn lun_text(t: &Target) -> String {
    t.lun
        .number()
        .map_or_else(|| format!("0x{}", hex(&t.lun.0)), |n| n.to_string())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The (pair of the boot NIC, pair of the boot target), as the driver will choose them.
fn boot_pair(t: &Ibft) -> Result<(usize, usize), String> {
    let cfg = t.boot_config().map_err(|e| e.to_string())?;
    let c = cfg.boot().ok_or("no boot candidate")?;
    let nic_pair = t
        .nics
        .iter()
        .position(|n| n.as_ref() == Some(&c.nic))
        .ok_or("boot NIC not in the table")?;
    Ok((nic_pair, c.pair))
}

pub fn to_json(l: &Loaded, show_secrets: bool) -> Json {
    let t = &l.parsed.ibft;
    let nics: Vec<Json> = t
        .nics
        .iter()
        .flatten()
        .map(|n| {
            Json::obj()
                .with("index", n.index)
                .with("ip", ip(n.ip))
                .with("prefix", n.prefix_len)
                .with("gateway", ip(n.gateway))
                .with("dns", dns(n))
                .with("dhcp_server", ip(n.dhcp_server))
                .with("vlan", n.vlan_id().unwrap_or(0))
                .with("mac", mac(&n.mac))
                .with("origin", origin(n.origin))
                .with("pci_bdf", n.pci_bdf.to_string())
                .with("hostname", n.hostname.clone())
                .with("valid", n.is_valid())
                .with(
                    "boot_selected",
                    n.flags & ibft::flags::FIRMWARE_BOOT_SELECTED != 0,
                )
        })
        .collect();
    let targets: Vec<Json> = t
        .targets
        .iter()
        .flatten()
        .map(|g| {
            Json::obj()
                .with("index", g.index)
                .with("ip", ip(g.ip))
                .with("port", g.port_or_default())
                .with("lun", g.lun.number())
                .with("lun_raw", hex(&g.lun.0))
                .with("name", g.name.clone())
                .with("chap", chap(g.chap_type))
                .with("chap_name", g.chap_name.clone())
                .with("chap_secret", secret(&g.chap_secret, show_secrets))
                .with("reverse_chap_name", g.reverse_chap_name.clone())
                .with(
                    "reverse_chap_secret",
                    secret(&g.reverse_chap_secret, show_secrets),
                )
                .with("nic_index", g.nic_index)
                .with("valid", g.is_valid())
                .with("boot_selected", g.is_boot_selected())
        })
        .collect();
    let boot = match boot_pair(t) {
        Ok((n, g)) => Json::obj().with("nic", n).with("target", g),
        Err(_) => Json::Null,
    };
    Json::obj()
        .with("source", l.source.clone())
        .with(
            "table",
            Json::obj()
                .with(
                    "signature",
                    String::from_utf8_lossy(&t.signature).into_owned(),
                )
                .with("length", l.raw.len())
                .with("oem_id", printable(&t.oem_id))
                .with("oem_table_id", printable(&t.oem_table_id)),
        )
        .with(
            "initiator",
            Json::obj().with("name", t.initiator.as_ref().and_then(|i| i.name.clone())),
        )
        .with("nics", nics)
        .with("targets", targets)
        .with("boot", boot)
        .with(
            "warnings",
            l.parsed
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>(),
        )
}

fn printable(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .take_while(|c| **c != 0)
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    s.trim_end().to_string()
}

fn opt(a: Option<IpAddr>) -> String {
    a.map_or_else(|| "-".into(), |a| a.to_string())
}

pub fn to_text(l: &Loaded, show_secrets: bool) -> String {
    let t = &l.parsed.ibft;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "iBFT from {}: {} bytes, signature {}, OEM \"{}\" \"{}\"",
        esc(&l.source),
        l.raw.len(),
        String::from_utf8_lossy(&t.signature),
        printable(&t.oem_id),
        printable(&t.oem_table_id)
    );
    let _ = writeln!(
        o,
        "initiator: {}",
        esc(t
            .initiator
            .as_ref()
            .and_then(|i| i.name.as_deref())
            .unwrap_or("(no name)"))
    );
    for (pair, n) in t.nics.iter().enumerate() {
        let Some(n) = n else { continue };
        let _ = write!(
            o,
            "nic{pair}: {}/{} gateway {} dns",
            opt(n.ip),
            n.prefix_len,
            opt(n.gateway)
        );
        let d = dns(n);
        let _ = write!(
            o,
            " {}",
            if d.is_empty() {
                "-".into()
            } else {
                d.join(",")
            }
        );
        let _ = write!(
            o,
            " dhcp {} mac {} pci {} origin {}",
            opt(n.dhcp_server),
            mac(&n.mac),
            n.pci_bdf,
            origin(n.origin)
        );
        if let Some(v) = n.vlan_id() {
            let _ = write!(o, " vlan {v}");
        }
        if let Some(h) = &n.hostname {
            let _ = write!(o, " hostname {}", esc(h));
        }
        let _ = writeln!(
            o,
            "{}",
            flags(
                n.is_valid(),
                n.flags & ibft::flags::FIRMWARE_BOOT_SELECTED != 0
            )
        );
    }
    for (pair, g) in t.targets.iter().enumerate() {
        let Some(g) = g else { continue };
        let addr = match g.ip {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", g.port_or_default()),
            other => format!("{}:{}", opt(other), g.port_or_default()),
        };
        let _ = write!(
            o,
            "target{pair}: {} at {addr} lun {} via nic index {} auth {}",
            esc(g.name.as_deref().unwrap_or("(no name)")),
            lun_text(g),
            g.nic_index,
            chap(g.chap_type)
        );
        if let Some(n) = &g.chap_name {
            let _ = write!(
                o,
                " user {} secret {}",
                esc(n),
                esc(&secret(&g.chap_secret, show_secrets).unwrap_or_else(|| "-".into()))
            );
        }
        if let Some(n) = &g.reverse_chap_name {
            let _ = write!(
                o,
                " target-user {} target-secret {}",
                esc(n),
                esc(&secret(&g.reverse_chap_secret, show_secrets).unwrap_or_else(|| "-".into()))
            );
        }
        let _ = writeln!(o, "{}", flags(g.is_valid(), g.is_boot_selected()));
    }
    match t.boot_config() {
        Ok(cfg) => {
            if let Ok((n, g)) = boot_pair(t) {
                let _ = writeln!(o, "boot: nic{n} -> target{g}");
            }
            for s in &cfg.skipped {
                let _ = writeln!(o, "note: {}", esc(&s.to_string()));
            }
        }
        Err(e) => {
            let _ = writeln!(o, "boot: none: {}", esc(&e.to_string()));
        }
    }
    for w in &l.parsed.warnings {
        let _ = writeln!(o, "warning: {}", esc(&w.to_string()));
    }
    o
}

fn flags(valid: bool, selected: bool) -> String {
    match (valid, selected) {
        (true, true) => " [valid, boot-selected]".into(),
        (true, false) => " [valid]".into(),
        (false, true) => " [boot-selected]".into(),
        (false, false) => " [not valid]".into(),
    }
}

/// Points the boot target at `addr:port` (for testing a table against a local target) and
/// returns the rebuilt table.
pub fn rewrite(l: &Loaded, addr: IpAddr, port: u16) -> Result<Vec<u8>, String> {
    let mut t = l.parsed.ibft.clone();
    let (_, g) = boot_pair(&t)?;
    let target = t
        .targets
        .get_mut(g)
        .and_then(Option::as_mut)
        .ok_or("boot target vanished")?;
    target.ip = Some(addr);
    target.port = port;
    let out = ibft::build(&t).map_err(|e| format!("cannot build the rewritten table: {e}"))?;
    ibft::parse(&out).map_err(|e| format!("rewritten table does not parse back: {e}"))?;
    Ok(out)
}
