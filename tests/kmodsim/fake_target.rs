// SPDX-License-Identifier: BSD-2-Clause
//! `isboot-fake-target --fault NAME [--times N] [--size BYTES]`: the scripted misbehaving
//! target of tests/it (`isboot_tests::fake`) as a process, for the in-process kernel harness
//! (tests/kmodsim, scenario `hostile`). Prints `listening 127.0.0.1:PORT` once it accepts,
//! serves until stdin closes or SIGTERM ends it, then prints what it saw. `--fault dribble` is a
//! well-behaved target that sends the last 20 bytes of every answer 5 ms after the rest (counted
//! as the fault firing).

use std::io::Read;

use isboot_tests::fake::{FakeConfig, FakeTarget, Fault};

fn fault(name: &str) -> Option<Fault> {
    Some(match name {
        "none" | "dribble" => Fault::None,
        "wrong-itt" => Fault::WrongItt,
        "data-in-beyond-buffer" => Fault::DataInBeyondBuffer,
        "data-in-offset-gap" => Fault::DataInOffsetGap,
        "oversized-segment" => Fault::OversizedSegment,
        "bad-data-digest" => Fault::BadDataDigest,
        "bad-header-digest" => Fault::BadHeaderDigest,
        "sense-too-long" => Fault::SenseTooLong,
        "r2t-beyond-transfer" => Fault::R2tBeyondTransfer,
        "reset-mid-transfer" => Fault::ResetMidTransfer,
        "silence" => Fault::Silence,
        "async-logout-request" => Fault::AsyncLogoutRequest,
        "async-drop-connection" => Fault::AsyncDropConnection,
        "reject-command" => Fault::RejectCommand,
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut f = Fault::None;
    let mut dribble = false;
    let mut times = 1;
    let mut size = 4 << 20;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().map(String::as_str).unwrap_or("");
        match a.as_str() {
            "--fault" => match fault(v) {
                Some(x) => {
                    f = x;
                    dribble = v == "dribble";
                }
                None => {
                    eprintln!("isboot-fake-target: unknown fault {v}");
                    std::process::exit(2);
                }
            },
            "--times" => times = v.parse().unwrap_or(1),
            "--size" => size = v.parse().unwrap_or(size),
            _ => {
                eprintln!("usage: isboot-fake-target --fault NAME [--times N] [--size BYTES]");
                std::process::exit(2);
            }
        }
    }
    let mut cfg = FakeConfig::new(size, f);
    cfg.times = times;
    let target = match FakeTarget::start(cfg) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("isboot-fake-target: {e}");
            std::process::exit(1);
        }
    };
    target.set_dribble(dribble);
    println!("listening {}", target.addr());
    // Until stdin closes (or SIGTERM, which ends the process at once).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let s = target.stats();
    println!(
        "stats connections {} logins {} commands {} faults {} violations {}",
        s.connections,
        s.logins,
        s.commands,
        u64::from(s.faults_fired) + target.dribbled(),
        s.violations.len()
    );
    for v in &s.violations {
        println!("violation {v}");
    }
}
