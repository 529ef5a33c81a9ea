// SPDX-License-Identifier: BSD-2-Clause
//! isbootctl: the userland companion of isboot.ko.
//!
//! `isbootctl ibft` shows the boot firmware's table as the driver reads it (same parser);
//! `isbootctl boot` does what the driver does at boot, from userland, as a preflight check;
//! `isbootctl loader-conf` writes the loader tunables of a boot without an iBFT.
#![forbid(unsafe_code)]

mod args;
mod boot;
mod hostini;
mod ibftcmd;
mod json;
mod loaderconf;
mod part;
mod sys;
mod text;

use std::net::SocketAddr;

use isboot_core::chap::Credentials;
use isboot_core::secret::Secret;
use std::process::ExitCode;

use args::{BootArgs, Command, IbftArgs, LoaderConfArgs, PartArgs, Usage};
use isboot_core::bootcfg::{BootConfig, Server};
use text::esc;

/// sysexits(3) EX_USAGE: the command line was wrong; nothing was read or contacted.
const EX_USAGE: u8 = 64;

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
    let result = match args::parse(std::env::args_os().skip(1).collect()) {
        Ok(Command::Help(topic)) => {
            print!("{}", args::help_text(topic));
            Ok(())
        }
        Ok(Command::Version) => {
            println!("isbootctl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Command::Ibft(a)) => cmd_ibft(&a),
        Ok(Command::Part(a)) => cmd_part(&a),
        Ok(Command::Boot(a)) => cmd_boot(&a),
        Ok(Command::LoaderConf(a)) => cmd_loader_conf(&a),
        Err(u) => Err(Failure::Usage(u)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(u)) => {
            eprint!("isbootctl: {}\n{}", esc(&u.message), u.synopsis);
            ExitCode::from(EX_USAGE)
        }
        Err(Failure::Error(m)) => {
            eprintln!("isbootctl: {}", esc(&m));
            ExitCode::FAILURE
        }
    }
}

fn cmd_ibft(a: &IbftArgs) -> Result<(), Failure> {
    let loaded = ibftcmd::load(a.file.as_deref())?;
    if let (Some(portal), Some(out)) = (&a.rewrite, &a.output) {
        let addr = portal.resolve()?;
        let bytes = ibftcmd::rewrite(&loaded, addr.ip(), addr.port())?;
        std::fs::write(out, &bytes).map_err(|e| format!("{out}: {e}"))?;
        let l = ibftcmd::load(Some(out))?;
        print!("{}", ibftcmd::to_text(&l, false));
        return Ok(());
    }
    if a.json {
        println!("{}", ibftcmd::to_json(&loaded, a.show_secrets).render());
    } else {
        print!("{}", ibftcmd::to_text(&loaded, a.show_secrets));
    }
    Ok(())
}

fn cmd_part(a: &PartArgs) -> Result<(), Failure> {
    let file = a.image.as_str();
    let bs = a.block_size;
    let mut disk = part::FileDisk::open(file, bs)?;
    let table = part::read_table(&mut disk).map_err(|e| format!("{file}: {e}"))?;
    print!("{}", part::describe(&table, &esc(file), "", bs));
    let sep = if matches!(table.scheme, part::Scheme::Gpt { .. }) {
        'p'
    } else {
        's'
    };
    for p in &table.partitions {
        if let Some(fs) = part::probe_fs(&mut disk, p) {
            println!("  {sep}{}: {}", p.index, esc(&fs.to_string()));
        }
    }
    Ok(())
}

/// What a boot configuration (an iBFT's or a loader.conf's) says about its boot pair.
#[derive(Default)]
struct Base {
    origin: Vec<String>,
    initiator: Option<String>,
    portal: Option<SocketAddr>,
    target: Option<String>,
    lun: Option<u64>,
    chap: Option<Credentials>,
    mutual: Option<Credentials>,
}

fn base_from_config(cfg: &BootConfig, source: &str) -> Result<Base, String> {
    let c = cfg
        .boot()
        .ok_or_else(|| format!("{source}: no boot target"))?;
    let t = &c.target;
    let cred = |n: &Option<String>, s: &Option<Secret>| match (n, s) {
        (Some(n), Some(s)) => Some(Credentials {
            name: n.clone(),
            secret: s.clone(),
        }),
        _ => None,
    };
    let (chap, mutual) = match t.chap_type {
        isboot_core::ibft::ChapType::None => (None, None),
        isboot_core::ibft::ChapType::Chap => (cred(&t.chap_name, &t.chap_secret), None),
        _ => (
            cred(&t.chap_name, &t.chap_secret),
            cred(&t.reverse_chap_name, &t.reverse_chap_secret),
        ),
    };
    Ok(Base {
        origin: Vec::new(),
        initiator: Some(cfg.initiator_name.clone()),
        portal: t.ip.map(|ip| SocketAddr::new(ip, t.port_or_default())),
        target: t.name.clone(),
        lun: Some(
            t.lun.number().ok_or_else(|| {
                format!("{source}: LUN {:02x?} is not a single-level LUN", t.lun.0)
            })?,
        ),
        chap,
        mutual,
    })
}

/// Boot parameters from the table, root path or loader.conf (if any) with the flags laid over
/// them.
fn boot_params(a: &BootArgs) -> Result<boot::BootParams, Failure> {
    let u = |m: &str| {
        Failure::Usage(Usage {
            message: m.to_string(),
            synopsis: args::BOOT_SYNOPSIS,
        })
    };
    let flags_only = a.ibft.is_none() && a.portal.is_some() && a.target.is_some();
    let base = if let Some(rp) = &a.root_path {
        let portal = match &rp.server {
            Server::Ip(ip) => SocketAddr::new(*ip, rp.port),
            Server::Name(host) => args::Portal::Name(host.clone(), rp.port).resolve()?,
        };
        Base {
            origin: vec![format!("root path {rp}")],
            portal: Some(portal),
            target: Some(rp.target.clone()),
            lun: Some(rp.lun.number().ok_or_else(|| {
                format!(
                    "--root-path: LUN {:02x?} is not a single-level LUN",
                    rp.lun.0
                )
            })?),
            ..Base::default()
        }
    } else if let Some(file) = &a.loader_conf {
        let text = text::read_file_capped(file, loaderconf::FILE_MAX)?;
        let text = String::from_utf8(text).map_err(|_| format!("{file}: not UTF-8 text"))?;
        let vars = loaderconf::parse_conf(&text).map_err(|e| format!("{file}: {e}"))?;
        let loaded = loaderconf::check(&vars).map_err(|e| format!("{file}: {e}"))?;
        let mut b = base_from_config(&loaded.config, file)?;
        b.origin
            .push(format!("{file} (NIC from {})", loaded.nic_source));
        b
    } else if !flags_only {
        let l = ibftcmd::load(a.ibft.as_deref())?;
        let cfg = l
            .parsed
            .ibft
            .boot_config()
            .map_err(|e| format!("{}: {e}", l.source))?;
        let mut b = base_from_config(&cfg, &l.source)?;
        let pair = cfg.boot().map_or(0, |c| c.pair);
        b.origin.push(format!("iBFT {} (target{pair})", l.source));
        b
    } else {
        Base::default()
    };
    let Base {
        mut origin,
        mut initiator,
        mut portal,
        mut target,
        mut lun,
        mut chap,
        mut mutual,
    } = base;
    let mut over = Vec::new();
    if let Some(v) = &a.initiator {
        initiator = Some(v.clone());
        over.push("--initiator");
    }
    if let Some(v) = &a.portal {
        portal = Some(v.resolve()?);
        over.push("--portal");
    }
    if let Some(v) = &a.target {
        target = Some(v.clone());
        over.push("--target");
    }
    if let Some(v) = a.lun {
        lun = Some(u64::from(v));
        over.push("--lun");
    }
    let cred = |c: &args::Cred| Credentials {
        name: c.name.clone(),
        secret: Secret::new(&c.secret),
    };
    if let Some(c) = &a.chap {
        chap = Some(cred(c));
        over.push("--chap");
    }
    if let Some(c) = &a.mutual {
        mutual = Some(cred(c));
        over.push("--mutual");
    }
    match (&chap, &mutual) {
        (None, Some(_)) => {
            return Err(u(
                "--mutual needs CHAP credentials too (--chap or the table's)",
            ))
        }
        (Some(c), Some(m)) if c.secret == m.secret => return Err(u(
            "the target's CHAP secret must differ from the initiator's (RFC 7143 section 9.2.1)",
        )),
        _ => {}
    }
    for (flag, cred) in [("--chap", &chap), ("--mutual", &mutual)] {
        if let Some(c) = cred {
            if c.secret.len() > args::CHAP_SECRET_PORTABLE {
                eprintln!(
                    "isbootctl: note: the {flag} secret is {} bytes; some targets and initiators \
                     accept at most {} (RFC 7143 requires support up to 128 bits)",
                    c.secret.len(),
                    args::CHAP_SECRET_PORTABLE
                );
            }
        }
    }
    if !over.is_empty() {
        origin.push(format!("flags {}", over.join(" ")));
    }
    let initiator = match initiator {
        Some(i) => i,
        None => default_initiator(),
    };
    Ok(boot::BootParams {
        initiator,
        portal: portal.ok_or_else(|| u("no target address: give --portal or an iBFT"))?,
        target: target.ok_or_else(|| u("no target name: give --target or an iBFT"))?,
        lun: lun.unwrap_or(0),
        chap,
        mutual,
        origin: origin.join(", "),
    })
}

/// iqn.2026-11.org.isboot:isbootctl.HOST, HOST reduced to what an iSCSI name may hold.
fn default_initiator() -> String {
    let host = text::read_file_capped("/etc/hostname", 256)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "iqn.2026-11.org.isboot:isbootctl.{}",
        if host.is_empty() { "host" } else { &host }
    )
}

fn cmd_boot(a: &BootArgs) -> Result<(), Failure> {
    let p = boot_params(a)?;
    let mut ini = hostini::HostInitiator::new(
        std::time::Duration::from_secs(a.timeout),
        a.debug,
        a.digests,
    );
    let r = boot::run(&p, &mut ini, &mut |line| {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{}", esc(line));
        let _ = o.flush();
    });
    match r {
        Ok(summary) => {
            println!("isbootctl: {}", esc(&summary));
            Ok(())
        }
        Err(summary) => Err(Failure::Error(summary)),
    }
}

/// Everything loader-conf can refuse is its command line: nothing is read or contacted.
fn cmd_loader_conf(a: &LoaderConfArgs) -> Result<(), Failure> {
    let u = |message: String| {
        Failure::Usage(Usage {
            message,
            synopsis: args::LOADER_CONF_SYNOPSIS,
        })
    };
    let r = &a.request;
    let pairs = loaderconf::variables(r).map_err(u)?;
    let mut vars = loaderconf::Vars::default();
    for (n, v) in &pairs {
        vars.0.insert((*n).to_string(), v.clone());
    }
    if let Some(m) = &r.mountfrom {
        vars.0.insert("vfs.root.mountfrom".into(), m.clone());
    }
    loaderconf::check(&vars).map_err(u)?;
    let root = r
        .root_path
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if a.bhyveload {
        print!(
            "{}",
            loaderconf::render_bhyveload(&pairs, r.mountfrom.as_deref())
        );
    } else {
        print!(
            "{}",
            loaderconf::render_conf(&pairs, r.mountfrom.as_deref(), &root)
        );
    }
    Ok(())
}
