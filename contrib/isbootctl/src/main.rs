// SPDX-License-Identifier: BSD-2-Clause
//! isbootctl: the userland companion of isboot.ko.
//!
//! `isbootctl ibft` shows the boot firmware's table as the driver reads it (same parser);
//! `isbootctl boot` does what the driver does at boot, from userland, as a preflight check.
#![forbid(unsafe_code)]

mod boot;
mod hostini;
mod ibftcmd;
mod json;
mod part;
mod sys;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use isboot_core::chap::Credentials;
use isboot_core::secret::Secret;
use std::process::ExitCode;

const USAGE: &str = "\
usage: isbootctl ibft [--json] [--show-secrets] [FILE]
       isbootctl ibft --rewrite HOST:PORT --output OUT [FILE]
       isbootctl boot [--ibft FILE] [--portal HOST:PORT] [--target IQN] [--lun N]
                      [--chap NAME:SECRET] [--mutual NAME:SECRET] [--initiator IQN]
                      [--digests] [--timeout SECONDS] [--debug 0-3]
       isbootctl part [--block-size N] IMAGE
       isbootctl help

ibft   Decode and validate an iSCSI Boot Firmware Table. FILE is a raw table (starting with
       \"iBFT\") or an image of physical memory from address 0 (qemu's pmemsave, /dev/mem),
       which is scanned like the kernel scans low memory. Without FILE the running system's
       table is read (Linux: /sys/firmware/acpi/tables/iBFT, then /dev/mem; FreeBSD: the ACPI
       table found from machdep.acpi_root through /dev/mem, then a /dev/mem low-memory scan).
       --json          one JSON object instead of text
       --show-secrets  print CHAP secrets (redacted by default)
       --rewrite HOST:PORT --output OUT
                       write a copy of the table whose boot target is HOST:PORT (to try a
                       firmware's table against another target); OUT is a raw table

boot   Do what isboot.ko does at boot, from userland: log in, REPORT LUNS, INQUIRY, READ
       CAPACITY, read the partition table (and the UFS superblock of the root partition), log
       out. Parameters come from the iBFT (FILE, or the running system's when neither --ibft
       nor both --portal and --target are given); flags override the table. --mutual sets the
       name and secret the target must prove. Prints a transcript like the kernel's boot
       messages and a summary; exit status 0 only if the disk is usable as a FreeBSD boot disk.
       Secrets given as flags are visible to other users in ps(1): prefer the table.
       --timeout bounds the login and each command (default 30), --debug sets the session's
       message level as net.isboot.debug does.

part   Show the partition table (GPT or MBR, FreeBSD type names) of a disk image file, as
       `isbootctl boot` shows the boot disk's. --block-size defaults to 512.
";

/// A command-line error: shown with the usage, exit status 2.
struct Usage(String);

enum Failure {
    Usage(Usage),
    Error(String),
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Self {
        Failure::Usage(u)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ibft") => cmd_ibft(&args[1..]),
        Some("part") => cmd_part(&args[1..]),
        Some("boot") => cmd_boot(&args[1..]),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Usage(format!("unknown command {other:?}")).into()),
        None => Err(Usage("no command given".into()).into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(Usage(m))) => {
            eprintln!("isbootctl: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Error(m)) => {
            eprintln!("isbootctl: {m}");
            ExitCode::FAILURE
        }
    }
}

/// Options and positional arguments, parsed against the flags a command accepts.
struct Args {
    flags: Vec<String>,
    values: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String], flags: &[&str], valued: &[&str]) -> Result<Args, Usage> {
        let mut a = Args {
            flags: Vec::new(),
            values: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.positional.extend(it.by_ref().cloned());
                break;
            }
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if flags.contains(&name) && inline.is_none() {
                    a.flags.push(name.to_string());
                } else if valued.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| Usage(format!("--{name} needs a value")))?,
                    };
                    a.values.push((name.to_string(), v));
                } else {
                    return Err(Usage(format!("unknown option --{name}")));
                }
            } else if arg.starts_with('-') && arg.len() > 1 {
                return Err(Usage(format!("unknown option {arg}")));
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// The last value given for `name` (later flags override earlier ones).
    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn at_most_one_file(&self) -> Result<Option<&str>, Usage> {
        match self.positional.as_slice() {
            [] => Ok(None),
            [f] => Ok(Some(f)),
            more => Err(Usage(format!(
                "expected at most one FILE, got {}",
                more.len()
            ))),
        }
    }
}

/// Parses `HOST:PORT` (IPv6 as `[ADDR]:PORT`); HOST may be a name.
fn parse_portal(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 3260));
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:3260")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("portal {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("portal {s:?}: no address"))
}

fn cmd_ibft(argv: &[String]) -> Result<(), Failure> {
    let a = Args::parse(argv, &["json", "show-secrets"], &["rewrite", "output"])?;
    let file = a.at_most_one_file()?;
    if a.value("rewrite").is_some() != a.value("output").is_some() {
        return Err(Usage("--rewrite and --output go together".into()).into());
    }
    let loaded = ibftcmd::load(file)?;
    if let (Some(portal), Some(out)) = (a.value("rewrite"), a.value("output")) {
        let addr = parse_portal(portal)?;
        let bytes = ibftcmd::rewrite(&loaded, addr.ip(), addr.port())?;
        std::fs::write(out, &bytes).map_err(|e| format!("{out}: {e}"))?;
        let l = ibftcmd::load(Some(out))?;
        print!("{}", ibftcmd::to_text(&l, false));
        return Ok(());
    }
    let show = a.flag("show-secrets");
    if a.flag("json") {
        println!("{}", ibftcmd::to_json(&loaded, show).render());
    } else {
        print!("{}", ibftcmd::to_text(&loaded, show));
    }
    Ok(())
}

fn cmd_part(argv: &[String]) -> Result<(), Failure> {
    let a = Args::parse(argv, &[], &["block-size"])?;
    let file = a
        .at_most_one_file()?
        .ok_or_else(|| Usage("part needs an IMAGE".into()))?;
    let bs = match a.value("block-size") {
        None => 512,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| Usage(format!("--block-size {v:?} is not a number")))?,
    };
    let mut disk = part::FileDisk::open(file, bs)?;
    let table = part::read_table(&mut disk).map_err(|e| format!("{file}: {e}"))?;
    print!("{}", part::describe(&table, file, "", bs));
    let sep = if matches!(table.scheme, part::Scheme::Gpt { .. }) {
        'p'
    } else {
        's'
    };
    for p in &table.partitions {
        if let Some(fs) = part::probe_fs(&mut disk, p) {
            println!("  {sep}{}: {fs}", p.index);
        }
    }
    Ok(())
}

fn split_cred(flag: &str, v: &str) -> Result<Credentials, Usage> {
    match v.split_once(':') {
        Some((n, s)) if !n.is_empty() && !s.is_empty() => Ok(Credentials {
            name: n.to_string(),
            secret: Secret::new(s.as_bytes()),
        }),
        _ => Err(Usage(format!("--{flag} wants NAME:SECRET"))),
    }
}

/// Boot parameters from the table (if any) with the flags laid over them.
fn boot_params(a: &Args) -> Result<boot::BootParams, Failure> {
    let flags_only =
        a.value("ibft").is_none() && a.value("portal").is_some() && a.value("target").is_some();
    let mut origin = Vec::new();
    let mut initiator = None;
    let mut portal = None;
    let mut target = None;
    let mut lun = None;
    let mut chap = None;
    let mut mutual = None;
    if !flags_only {
        let l = ibftcmd::load(a.value("ibft"))?;
        let cfg = l
            .parsed
            .ibft
            .boot_config()
            .map_err(|e| format!("{}: {e}", l.source))?;
        let c = cfg
            .boot()
            .ok_or_else(|| format!("{}: no boot target", l.source))?;
        let t = &c.target;
        origin.push(format!("iBFT {} (target{})", l.source, c.pair));
        initiator = Some(cfg.initiator_name.clone());
        portal = t.ip.map(|ip| SocketAddr::new(ip, t.port_or_default()));
        target = t.name.clone();
        lun = Some(t.lun.number().ok_or_else(|| {
            format!(
                "{}: LUN {:02x?} is not a single-level LUN",
                l.source, t.lun.0
            )
        })?);
        let cred = |n: &Option<String>, s: &Option<Secret>| match (n, s) {
            (Some(n), Some(s)) => Some(Credentials {
                name: n.clone(),
                secret: s.clone(),
            }),
            _ => None,
        };
        match t.chap_type {
            isboot_core::ibft::ChapType::None => {}
            isboot_core::ibft::ChapType::Chap => chap = cred(&t.chap_name, &t.chap_secret),
            _ => {
                chap = cred(&t.chap_name, &t.chap_secret);
                mutual = cred(&t.reverse_chap_name, &t.reverse_chap_secret);
            }
        }
    }
    let mut over = Vec::new();
    if let Some(v) = a.value("initiator") {
        initiator = Some(v.to_string());
        over.push("--initiator");
    }
    if let Some(v) = a.value("portal") {
        portal = Some(parse_portal(v)?);
        over.push("--portal");
    }
    if let Some(v) = a.value("target") {
        target = Some(v.to_string());
        over.push("--target");
    }
    if let Some(v) = a.value("lun") {
        lun = Some(
            v.parse()
                .map_err(|_| Usage(format!("--lun {v:?} is not a number")))?,
        );
        over.push("--lun");
    }
    if let Some(v) = a.value("chap") {
        chap = Some(split_cred("chap", v)?);
        over.push("--chap");
    }
    if let Some(v) = a.value("mutual") {
        mutual = Some(split_cred("mutual", v)?);
        over.push("--mutual");
    }
    if mutual.is_some() && chap.is_none() {
        return Err(
            Usage("--mutual needs CHAP credentials too (--chap or the table's)".into()).into(),
        );
    }
    if !over.is_empty() {
        origin.push(format!("flags {}", over.join(" ")));
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    let initiator = initiator.unwrap_or_else(|| {
        format!(
            "iqn.2026-11.org.isboot:isbootctl.{}",
            if host.is_empty() { "host" } else { host }
        )
    });
    Ok(boot::BootParams {
        initiator,
        portal: portal
            .ok_or_else(|| Usage("no target address: give --portal or an iBFT".into()))?,
        target: target.ok_or_else(|| Usage("no target name: give --target or an iBFT".into()))?,
        lun: lun.unwrap_or(0),
        chap,
        mutual,
        origin: origin.join(", "),
    })
}

fn cmd_boot(argv: &[String]) -> Result<(), Failure> {
    let a = Args::parse(
        argv,
        &["digests", "help"],
        &[
            "ibft",
            "portal",
            "target",
            "lun",
            "chap",
            "mutual",
            "initiator",
            "timeout",
            "debug",
        ],
    )?;
    if a.flag("help") {
        print!("{USAGE}");
        return Ok(());
    }
    if !a.positional.is_empty() {
        return Err(Usage(format!("unexpected argument {:?}", a.positional[0])).into());
    }
    let timeout = match a.value("timeout") {
        None => 30,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| Usage(format!("--timeout {v:?}")))?,
    };
    let debug = match a.value("debug") {
        None => 0,
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|d| *d <= 3)
            .ok_or_else(|| Usage(format!("--debug {v:?} (0-3)")))?,
    };
    let p = boot_params(&a)?;
    let mut ini = hostini::HostInitiator::new(
        std::time::Duration::from_secs(timeout),
        debug,
        a.flag("digests"),
    );
    let r = boot::run(&p, &mut ini, &mut |line| {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    });
    match r {
        Ok(summary) => {
            println!("isbootctl: {summary}");
            Ok(())
        }
        Err(summary) => {
            println!("isbootctl: {summary}");
            Err(Failure::Error("boot preflight failed".into()))
        }
    }
}
