// SPDX-License-Identifier: BSD-2-Clause
//! isboot's initiator against libiscsi on the same target: a benchmark, not a test.
//!
//! ```text
//! isboot-bench run PORTAL IQN LUN read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS
//! isboot-bench compare PEER [SECONDS] [tgtd|istgt ...]
//! ```
//!
//! `run` drives one workload over a session to a target that is already running and prints the
//! same line as the libiscsi peer (`tests/bench/libiscsi-peer.c`). `compare` starts each target
//! with the test harness, runs every workload with the peer (the program at PEER) and with
//! isboot alternately on the same target, and prints a table of the ratios isboot / libiscsi.
//! Throughput here is CPU-bound (initiator, target and TCP share two cores) and swings from run
//! to run, which is why both initiators run side by side in one invocation.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use isboot_host::disk::{DiskConfig, HostDisk, Pending};
use isboot_tests::target::{Config, Kind, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
    RandRead,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "read" => Some(Mode::Read),
            "write" => Some(Mode::Write),
            "randread" => Some(Mode::RandRead),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Write => "write",
            Mode::RandRead => "randread",
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Result {
    ops: u64,
    bytes: u64,
    secs: f64,
}

impl Result {
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn iops(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn line(&self) -> String {
        format!(
            "ops={} bytes={} secs={:.3} mbps={:.1} iops={:.0}",
            self.ops,
            self.bytes,
            self.secs,
            self.mbps(),
            self.iops()
        )
    }
    fn parse(line: &str) -> Option<Result> {
        let mut r = Result::default();
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "ops" => r.ops = v.parse().ok()?,
                "bytes" => r.bytes = v.parse().ok()?,
                "secs" => r.secs = v.parse().ok()?,
                _ => {}
            }
        }
        (r.secs > 0.0).then_some(r)
    }
}

/// Runs `mode` with `block` bytes per command and `depth` commands in flight for `secs`.
fn run(
    disk: &HostDisk,
    mode: Mode,
    block: u32,
    depth: usize,
    secs: f64,
) -> std::result::Result<Result, String> {
    let bl = disk.block_len();
    let (lbas, _) = disk.read_capacity().map_err(|e| e.to_string())?;
    let per = u64::from(block / bl);
    if per == 0 || block % bl != 0 || per > lbas {
        return Err(format!("block size {block} does not fit {bl}-byte blocks"));
    }
    let slots = lbas / per;
    let data = (0..block).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = 0u64;
    let mut inflight: VecDeque<Pending> = VecDeque::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut r = Result::default();
    loop {
        let now = Instant::now();
        while now < deadline && inflight.len() < depth {
            let lba = match mode {
                Mode::RandRead => {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng % slots) * per
                }
                Mode::Read | Mode::Write => {
                    let l = next;
                    next = if next + 2 * per > lbas { 0 } else { next + per };
                    l
                }
            };
            let p = match mode {
                Mode::Write => disk.submit_write(lba, data.clone()),
                Mode::Read | Mode::RandRead => disk.submit_read(lba, per as u32),
            }
            .map_err(|e| e.to_string())?;
            inflight.push_back(p);
        }
        let Some(p) = inflight.pop_front() else {
            break;
        };
        p.wait().map_err(|e| e.to_string())?;
        r.ops += 1;
        r.bytes += u64::from(block);
    }
    r.secs = start.elapsed().as_secs_f64();
    Ok(r)
}

fn usage() -> ! {
    eprintln!(
        "usage: isboot-bench run PORTAL IQN LUN read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS\n       \
         isboot-bench compare PEER [SECONDS] [tgtd|istgt ...]"
    );
    std::process::exit(2)
}

const WORKLOADS: [(Mode, u32, usize); 6] = [
    (Mode::Write, 1 << 20, 1),
    (Mode::Write, 1 << 20, 8),
    (Mode::Read, 1 << 20, 1),
    (Mode::Read, 1 << 20, 8),
    (Mode::RandRead, 4096, 1),
    (Mode::RandRead, 4096, 32),
];

fn peer(
    peer: &str,
    url: &str,
    mode: Mode,
    block: u32,
    depth: usize,
    secs: f64,
) -> std::result::Result<Result, String> {
    let out = Command::new(peer)
        .args([
            url,
            mode.name(),
            &block.to_string(),
            &depth.to_string(),
            &secs.to_string(),
        ])
        .output()
        .map_err(|e| format!("{peer}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{peer} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Result::parse(stdout.trim()).ok_or_else(|| format!("unreadable peer output {stdout:?}"))
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn compare(peer_path: &str, secs: f64, kinds: &[Kind]) -> std::result::Result<(), String> {
    // ISBOOT_BENCH_REPS runs each workload that many times per initiator (alternately) and
    // reports the medians; ISBOOT_BENCH_ONLY keeps the workloads whose label contains it.
    let reps: usize = std::env::var("ISBOOT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let only = std::env::var("ISBOOT_BENCH_ONLY").ok();
    let ab = std::env::var_os("ISBOOT_BENCH_AB").is_some();
    if reps > 1 {
        println!("(median of {reps} alternating runs of {secs} s each)");
    }
    if ab {
        println!("| target | workload | libiscsi | isboot | isboot/libiscsi | isboot handoff | handoff/libiscsi |");
        println!("|---|---|---|---|---|---|---|");
    } else {
        println!("| target | workload | libiscsi | isboot | isboot/libiscsi |");
        println!("|---|---|---|---|---|");
    }
    for &kind in kinds {
        let t = Target::start(
            kind,
            Config {
                queue_depth: Some(64),
                ..Config::new(512 << 20)
            },
        )
        .map_err(|e| e.to_string())?;
        let mut cfg = DiskConfig::new(
            t.addr(),
            t.iqn(),
            t.lun() as u16,
            "iqn.2026-11.org.isboot:bench",
        );
        cfg.max_commands = 64;
        // ISBOOT_BENCH_AB=1 adds a column: a second session whose callers leave all driving to
        // the runtime's thread (the handoff the caller-driven default avoids).
        let handoff = if ab {
            let mut c = cfg.clone();
            c.drive_on_wait = false;
            Some(HostDisk::open(c).map_err(|e| e.to_string())?)
        } else {
            None
        };
        let disk = HostDisk::open(cfg).map_err(|e| e.to_string())?;
        let url = t.libiscsi_url();
        for (mode, block, depth) in WORKLOADS {
            let size = if block >= 1 << 20 {
                format!("{} MiB", block >> 20)
            } else {
                format!("{} KiB", block >> 10)
            };
            let label = format!("{} {size} QD{depth}", mode.name());
            if only.as_ref().is_some_and(|o| !label.contains(o.as_str())) {
                continue;
            }
            // Alternate the two initiators so that a change in the machine's load hits both.
            let (mut theirs, mut ours, mut other) = (Vec::new(), Vec::new(), Vec::new());
            let rate = |r: Result| if block >= 1 << 20 { r.mbps() } else { r.iops() };
            for _ in 0..reps {
                theirs.push(rate(peer(peer_path, &url, mode, block, depth, secs)?));
                ours.push(rate(run(&disk, mode, block, depth, secs)?));
                if let Some(h) = &handoff {
                    other.push(rate(run(h, mode, block, depth, secs)?));
                }
            }
            let unit = if block >= 1 << 20 { "MB/s" } else { "IOPS" };
            let (a, b) = (median(&mut theirs), median(&mut ours));
            let extra = if other.is_empty() {
                String::new()
            } else {
                let c = median(&mut other);
                format!(" {c:.0} {unit} | {:.2} |", c / a)
            };
            println!(
                "| {} | {label} | {a:.0} {unit} | {b:.0} {unit} | {:.2} |{extra}",
                kind.name(),
                b / a
            );
        }
        disk.close().map_err(|e| e.to_string())?;
        if let Some(h) = handoff {
            h.close().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("run") if args.len() == 8 => {
            let portal: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
            let lun: u16 = args[3].parse().unwrap_or_else(|_| usage());
            let mode = Mode::parse(&args[4]).unwrap_or_else(|| usage());
            let block: u32 = args[5].parse().unwrap_or_else(|_| usage());
            let depth: usize = args[6].parse().unwrap_or_else(|_| usage());
            let secs: f64 = args[7].parse().unwrap_or_else(|_| usage());
            let mut cfg = DiskConfig::new(portal, &args[2], lun, "iqn.2026-11.org.isboot:bench");
            cfg.max_commands = depth.max(1);
            HostDisk::open(cfg)
                .map_err(|e| e.to_string())
                .and_then(|disk| {
                    let r = run(&disk, mode, block, depth, secs)?;
                    println!("{}", r.line());
                    disk.close().map_err(|e| e.to_string())
                })
        }
        Some("compare") if args.len() >= 2 => {
            let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0);
            let kinds: Vec<Kind> = if args.len() > 3 {
                args[3..]
                    .iter()
                    .map(|k| match k.as_str() {
                        "tgtd" => Kind::Tgtd,
                        "istgt" => Kind::Istgt,
                        _ => usage(),
                    })
                    .collect()
            } else {
                Kind::ALL.to_vec()
            };
            compare(&args[1], secs, &kinds)
        }
        _ => usage(),
    };
    if let Err(e) = res {
        eprintln!("isboot-bench: {e}");
        std::process::exit(1);
    }
}
