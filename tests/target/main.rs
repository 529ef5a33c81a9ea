// SPDX-License-Identifier: BSD-2-Clause
//! `isboot-target`: one of the test harness's real targets (tgtd, istgt, LIO) for shell scripts,
//! so that they set targets up exactly as the Rust tests do instead of keeping a second copy.
//!
//! ```text
//! isboot-target KIND [--chap USER:SECRET [--mutual USER:SECRET]] [--digests]
//!               [--size BYTES | --disk FILE] [--port PORT] [--iqn IQN] [--log FILE]
//!               [--null] [--pdu BYTES]
//! ```
//!
//! Starts the target on 127.0.0.1 (in the caller's network namespace), prints `KEY=VALUE` lines
//! (`kind`, `port`, `iqn`, `lun`, `disk`) and then `ready`, and serves until its standard input
//! reaches end of file: the caller holds a pipe open and closes it to stop the target (which
//! also happens when the caller dies). The target's log goes to `--log` when it stops, and to
//! stderr when it fails to start. Exit status 0 after a clean stop, 1 when the target did not
//! start, 2 for a usage error.

use std::io::Read;
use std::path::PathBuf;
use std::process::exit;

use isboot_tests::target::{Auth, Config, Kind, Target};

fn usage() -> ! {
    eprintln!(
        "usage: isboot-target tgtd|istgt|lio [--chap USER:SECRET [--mutual USER:SECRET]] \
         [--digests] [--size BYTES | --disk FILE] [--port PORT] [--iqn IQN] [--log FILE] \
         [--null] [--pdu BYTES]"
    );
    exit(2)
}

fn pair(v: &str) -> (String, String) {
    match v.split_once(':') {
        Some((u, s)) if !u.is_empty() && !s.is_empty() => (u.to_string(), s.to_string()),
        _ => usage(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args
        .next()
        .and_then(|k| Kind::from_name(&k))
        .unwrap_or_else(|| usage());
    let mut cfg = Config::new(64 << 20);
    let (mut chap, mut mutual, mut disk, mut log) = (None, None, None, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--chap" => chap = Some(pair(&value())),
            "--mutual" => mutual = Some(pair(&value())),
            "--digests" => cfg.digests = true,
            "--size" => cfg.size = value().parse().unwrap_or_else(|_| usage()),
            "--disk" => disk = Some(PathBuf::from(value())),
            "--port" => cfg.port = Some(value().parse().unwrap_or_else(|_| usage())),
            "--iqn" => cfg.iqn = Some(value()),
            "--log" => log = Some(PathBuf::from(value())),
            // For profiling the initiator as tests/bench does: tgtd's null store, target PDUs.
            "--null" => cfg.null_store = true,
            "--pdu" => cfg.max_recv_dsl = Some(value().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    cfg.auth = match (chap, mutual) {
        (None, None) => Auth::None,
        (Some((user, secret)), None) => Auth::Chap { user, secret },
        (Some((user, secret)), Some((target_user, target_secret))) => Auth::Mutual {
            user,
            secret,
            target_user,
            target_secret,
        },
        (None, Some(_)) => usage(),
    };
    let started = match &disk {
        Some(d) => Target::start_serving(kind, cfg, d),
        None => Target::start(kind, cfg),
    };
    let target = match started {
        Ok(t) => t,
        Err(e) => {
            eprintln!("isboot-target: {} did not start: {e}", kind.name());
            exit(1)
        }
    };
    println!("kind={}", kind.name());
    println!("port={}", target.port());
    println!("iqn={}", target.iqn());
    println!("lun={}", target.lun());
    println!("disk={}", target.disk_path().display());
    println!("ready");
    // Serve until the caller closes our input; what it writes is ignored.
    let mut sink = [0u8; 256];
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    while matches!(input.read(&mut sink), Ok(n) if n > 0) {}
    if let Some(path) = log {
        if let Err(e) = std::fs::write(&path, target.log()) {
            eprintln!("isboot-target: writing {}: {e}", path.display());
        }
    }
    drop(target);
}
