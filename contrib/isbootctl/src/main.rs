// SPDX-License-Identifier: BSD-2-Clause
//! isbootctl: the userland companion of isboot.ko.
//!
//! `isbootctl ibft` shows the boot firmware's table as the driver reads it (same parser);
//! `isbootctl boot` does what the driver does at boot, from userland, as a preflight check.

#[cfg(test)]
mod boot;
mod ibftcmd;
mod json;
mod part;
mod sys;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

const USAGE: &str = "\
usage: isbootctl ibft [--json] [--show-secrets] [FILE]
       isbootctl ibft --rewrite HOST:PORT --output OUT [FILE]
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

/// Parses HOST:PORT (IPv6 as [ADDR]:PORT); HOST may be a name.
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
    Ok(())
}
