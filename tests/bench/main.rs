// SPDX-License-Identifier: BSD-2-Clause
//! isboot's initiator against libiscsi on the same target: a benchmark, not a test.
//!
//! ```text
//! isboot-bench run PORTAL IQN LUN read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS
//! isboot-bench compare PEER [SECONDS] [tgtd|tgtd-null|istgt ...]
//! isboot-bench pool LOG...
//! ```
//!
//! `run` drives one workload over a session to a target that is already running and prints the
//! same line as the libiscsi peer (`tests/bench/libiscsi-peer.c`). `compare` starts each target
//! with the test harness, runs every workload with the peer (the program at PEER) and with
//! `isboot-bench run` alternately, each in a process of its own, on the same target, and prints
//! a table: rates and their ratio, CPU time per I/O, and (with the counting library of
//! `tests/bench/count.c`) allocations, bulk copies and zero fills per I/O. Throughput here is
//! CPU-bound (initiator, target and TCP share two cores) and swings from run to run, which is
//! why both initiators run side by side in one invocation, repeatedly, and medians are shown.
//! `pool` reads the run logs of several `compare` invocations (ISBOOT_BENCH_LOG) and pools
//! their per-repetition ratios, by row and by workload, so that evidence gathered in different
//! sittings adds up.
//!
//! Both initiators measure themselves the same way over the same window (from the first
//! completion after a warm-up to the last completion): CPU as the time the process's threads
//! spent on a CPU (`/proc/self/task/*/schedstat`, nanoseconds, user and system together) with
//! the user/system split from `/proc/self/stat`'s clock ticks; allocations and copies from the
//! counting library's shared counters.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
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

/// One run's figures over its measurement window.
#[derive(Clone, Copy, Debug, Default)]
struct Result {
    ops: u64,
    bytes: u64,
    secs: f64,
    cpu_ns: u64,
    utick: u64,
    stick: u64,
    /// From the counting library, when it was loaded.
    counts: Option<Counts>,
}

/// The counting library's counters over a window (see `tests/bench/count.c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    allocs: u64,
    copied: u64,
    copied_bulk: u64,
    zeroed: u64,
}

impl Result {
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn iops(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    /// CPU microseconds per I/O (user and system).
    fn cpu_us(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / self.ops.max(1) as f64
    }
    /// The user-time share of `cpu_us`, from the tick counts.
    fn user_share(&self) -> f64 {
        let t = self.utick + self.stick;
        if t == 0 {
            0.0
        } else {
            self.utick as f64 / t as f64
        }
    }
    fn line(&self) -> String {
        let mut s = format!(
            "ops={} bytes={} secs={:.3} mbps={:.1} iops={:.0} cpu_ns={} utick={} stick={}",
            self.ops,
            self.bytes,
            self.secs,
            self.mbps(),
            self.iops(),
            self.cpu_ns,
            self.utick,
            self.stick
        );
        if let Some(c) = self.counts {
            s.push_str(&format!(
                " allocs={} copied={} copied_bulk={} zeroed={}",
                c.allocs, c.copied, c.copied_bulk, c.zeroed
            ));
        }
        s
    }
    fn parse(line: &str) -> Option<Result> {
        let mut r = Result::default();
        let mut c = Counts::default();
        let mut counted = false;
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "ops" => r.ops = v.parse().ok()?,
                "bytes" => r.bytes = v.parse().ok()?,
                "secs" => r.secs = v.parse().ok()?,
                "cpu_ns" => r.cpu_ns = v.parse().ok()?,
                "utick" => r.utick = v.parse().ok()?,
                "stick" => r.stick = v.parse().ok()?,
                "allocs" => (c.allocs, counted) = (v.parse().ok()?, true),
                "copied" => c.copied = v.parse().ok()?,
                "copied_bulk" => c.copied_bulk = v.parse().ok()?,
                "zeroed" => c.zeroed = v.parse().ok()?,
                _ => {}
            }
        }
        r.counts = counted.then_some(c);
        (r.secs > 0.0 && r.ops > 0).then_some(r)
    }
}

/// Nanoseconds the threads of a process (`/proc/PID`) have spent on a CPU.
fn tasks_ns(proc_dir: &str) -> u64 {
    let mut ns = 0;
    if let Ok(dir) = std::fs::read_dir(format!("{proc_dir}/task")) {
        for e in dir.flatten() {
            let p = e.path().join("schedstat");
            if let Some(v) = std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                ns += v;
            }
        }
    }
    ns
}

/// CPU time of this process: (ns on a CPU over all threads, user ticks, system ticks).
fn cpu() -> (u64, u64, u64) {
    let ns = tasks_ns("/proc/self");
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields 14 and 15 (utime, stime), counted after the command name's closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    (
        ns,
        f.first().copied().unwrap_or(0),
        f.get(1).copied().unwrap_or(0),
    )
}

/// The counting library's counters, read without allocating from the file opened before.
fn counts(f: Option<&File>) -> Option<Counts> {
    let f = f?;
    let mut b = [0u8; 48];
    f.read_exact_at(&mut b, 0).ok()?;
    let field = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    // Order of struct counts: allocs, frees, alloc_bytes, copied, copied_bulk, zeroed.
    Some(Counts {
        allocs: field(0),
        copied: field(3),
        copied_bulk: field(4),
        zeroed: field(5),
    })
}

/// A snapshot at one edge of the measurement window.
struct Edge {
    at: Instant,
    ops: u64,
    cpu: (u64, u64, u64),
    counts: Option<Counts>,
}

/// Opens the window: CPU first and the counters last, so that reading /proc (which allocates)
/// falls outside it; [`close`] reads them in the opposite order.
fn open(ops: u64, f: Option<&File>) -> Edge {
    let cpu = cpu();
    Edge {
        at: Instant::now(),
        ops,
        cpu,
        counts: counts(f),
    }
}

fn close(start: &Edge, ops: u64, block: u32, f: Option<&File>) -> Result {
    let c = counts(f);
    let at = Instant::now();
    let (ns, ut, st) = cpu();
    let ops = ops - start.ops;
    Result {
        ops,
        bytes: ops * u64::from(block),
        secs: at.duration_since(start.at).as_secs_f64(),
        cpu_ns: ns.saturating_sub(start.cpu.0),
        utick: ut.saturating_sub(start.cpu.1),
        stick: st.saturating_sub(start.cpu.2),
        counts: match (start.counts, c) {
            (Some(a), Some(b)) => Some(Counts {
                allocs: b.allocs - a.allocs,
                copied: b.copied - a.copied,
                copied_bulk: b.copied_bulk - a.copied_bulk,
                zeroed: b.zeroed - a.zeroed,
            }),
            _ => None,
        },
    }
}

/// Command slots: each keeps its own buffer, handed to the session with its command and back
/// with the completion ([`Pending::wait_buffer`]), so that no command allocates, clears or
/// copies a buffer of its own: reads land in the slot's buffer, writes leave from it.
struct Slots {
    free: Vec<Vec<u8>>,
}

impl Slots {
    fn new(depth: usize, block: u32) -> Slots {
        let data = (0..block).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();
        Slots {
            free: (0..depth).map(|_| data.clone()).collect(),
        }
    }

    fn put(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }
}

/// Submits one command of `mode` at `lba` with a slot's buffer.
fn submit(
    disk: &HostDisk,
    slots: &mut Slots,
    mode: Mode,
    lba: u64,
    per: u32,
) -> std::result::Result<Pending, String> {
    let buf = slots.free.pop().ok_or("no free slot")?;
    match mode {
        Mode::Write => disk.submit_write(lba, buf),
        Mode::Read | Mode::RandRead => disk.submit_read_into(lba, per, buf),
    }
    .map_err(|e| e.to_string())
}

/// Waits for a command; gives back its buffer for the slot.
fn finish(p: Pending) -> std::result::Result<Vec<u8>, String> {
    p.wait_buffer().map_err(|e| e.to_string())
}

/// Runs `mode` with `block` bytes per command and `depth` commands in flight for `secs`.
fn run(
    disk: &HostDisk,
    mode: Mode,
    block: u32,
    depth: usize,
    secs: f64,
) -> std::result::Result<Result, String> {
    let count_file = std::env::var_os("ISBOOT_COUNT_FILE").and_then(|p| File::open(p).ok());
    let bl = disk.block_len();
    let (lbas, _) = disk.read_capacity().map_err(|e| e.to_string())?;
    let per = u64::from(block / bl);
    if per == 0 || block % bl != 0 || per > lbas {
        return Err(format!("block size {block} does not fit {bl}-byte blocks"));
    }
    let slots_n = lbas / per;
    let mut slots = Slots::new(depth, block);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = 0u64;
    let mut inflight: std::collections::VecDeque<Pending> =
        std::collections::VecDeque::with_capacity(depth);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let warm = start + Duration::from_secs_f64((secs / 5.0).min(0.5));
    let mut window: Option<Edge> = None;
    let mut ops = 0u64;
    loop {
        let now = Instant::now();
        while now < deadline && inflight.len() < depth {
            let lba = match mode {
                Mode::RandRead => {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng % slots_n) * per
                }
                Mode::Read | Mode::Write => {
                    let l = next;
                    next = if next + 2 * per > lbas { 0 } else { next + per };
                    l
                }
            };
            inflight.push_back(submit(disk, &mut slots, mode, lba, per as u32)?);
        }
        let Some(p) = inflight.pop_front() else {
            break;
        };
        slots.put(finish(p)?);
        ops += 1;
        if window.is_none() && Instant::now() >= warm {
            window = Some(open(ops, count_file.as_ref()));
        }
    }
    let w = window.ok_or("no completion after the warm-up")?;
    Ok(close(&w, ops, block, count_file.as_ref()))
}

fn usage() -> ! {
    eprintln!(
        "usage: isboot-bench run PORTAL IQN LUN read|write|randread BLOCK_BYTES QUEUE_DEPTH SECONDS\n       \
         isboot-bench compare PEER [SECONDS] [tgtd|tgtd-null|istgt ...]\n       \
         isboot-bench pool LOG..."
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

/// A target set up for the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Setup {
    kind: Kind,
    null: bool,
    /// The target's MaxRecvDataSegmentLength (tgtd: also its MaxXmitDataSegmentLength).
    pdu: u32,
}

impl Setup {
    fn name(&self) -> String {
        format!(
            "{}{}",
            self.kind.name(),
            if self.null { " null" } else { "" }
        )
    }
}

/// The target's side of one run: its CPU time over the initiator's whole life (login and
/// logout included, which take milliseconds of a run of seconds), in microseconds per I/O at
/// the run's rate, and as a share of the wall time (near 1: the target is what bounds the rate).
#[derive(Clone, Copy, Debug)]
struct TargetCpu {
    us_per_io: f64,
    busy: f64,
}

/// Runs `cmd` as [`spawn`] does, measuring the CPU time of the target process `pid` meanwhile.
fn spawn_measured(
    cmd: Command,
    pid: Option<u32>,
) -> std::result::Result<(Result, Option<TargetCpu>), String> {
    let dir = pid.map(|p| format!("/proc/{p}"));
    let before = (Instant::now(), dir.as_deref().map(tasks_ns));
    let r = spawn(cmd, None)?;
    let secs = before.0.elapsed().as_secs_f64();
    let t = match (dir.as_deref().map(tasks_ns), before.1) {
        (Some(after), Some(b)) if secs > 0.0 && r.iops() > 0.0 => {
            let ns = after.saturating_sub(b) as f64;
            Some(TargetCpu {
                us_per_io: ns / 1e3 / (r.iops() * secs),
                busy: ns / 1e9 / secs,
            })
        }
        _ => None,
    };
    Ok((r, t))
}

/// Runs one initiator program and reads its result line. `count` preloads the counting library
/// (`lib`, `file`).
fn spawn(mut cmd: Command, count: Option<(&str, &str)>) -> std::result::Result<Result, String> {
    if let Some((lib, file)) = count {
        cmd.env("LD_PRELOAD", lib).env("ISBOOT_COUNT_FILE", file);
    } else {
        cmd.env_remove("ISBOOT_COUNT_FILE");
    }
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Result::parse(stdout.trim()).ok_or_else(|| format!("unreadable output {stdout:?}"))
}

/// Where the target and the initiators run. On one shared CPU a wakeup is a context switch;
/// across two it is an interrupt to another CPU, which costs several times more here, and the
/// scheduler picks one or the other from run to run: a run's CPU per I/O could differ by 2x for
/// that alone. Pinning the target to one CPU and the initiator to another (as a target across
/// the network would be) makes every run pay the same and compares like with like.
#[derive(Clone, Copy)]
struct Pinning {
    target: usize,
    initiator: usize,
}

impl Pinning {
    /// The first two CPUs this process may use, unless `ISBOOT_BENCH_PIN=0` or there is one.
    fn choose() -> Option<Pinning> {
        if std::env::var("ISBOOT_BENCH_PIN").is_ok_and(|v| v == "0") {
            return None;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        let mut cpus = cpu_list(list.trim()).into_iter();
        Some(Pinning {
            target: cpus.next()?,
            initiator: cpus.next()?,
        })
    }

    /// Moves every thread of process `pid` to the target's CPU.
    fn pin_target(self, pid: u32) -> std::result::Result<(), String> {
        let cpu = self.target.to_string();
        let st = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu, &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("taskset: {e}"))?;
        st.success()
            .then_some(())
            .ok_or_else(|| format!("taskset could not pin the target (pid {pid})"))
    }

    /// `cmd` run on the initiator's CPU.
    fn initiator(self, cmd: Command) -> Command {
        let mut c = Command::new("taskset");
        c.args(["-c", &self.initiator.to_string()])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        c
    }
}

/// CPU numbers of a kernel CPU list such as `0-3,6`.
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            cpus.extend(lo..=hi.min(lo.saturating_add(1024)));
        }
    }
    cpus
}

fn peer_cmd(peer: &str, url: &str, mode: Mode, block: u32, depth: usize, secs: f64) -> Command {
    let mut c = Command::new(peer);
    c.args([
        url,
        mode.name(),
        &block.to_string(),
        &depth.to_string(),
        &secs.to_string(),
    ]);
    c
}

fn ours_cmd(t: &Target, mode: Mode, block: u32, depth: usize, secs: f64) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "isboot-bench".into());
    let mut c = Command::new(exe);
    c.args([
        "run",
        &t.addr().to_string(),
        t.iqn(),
        &t.lun().to_string(),
        mode.name(),
        &block.to_string(),
        &depth.to_string(),
        &secs.to_string(),
    ]);
    c
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// A distribution-free interval for the median of `v`: the order statistics whose ranks a
/// fair coin's binomial puts 2.5 % beyond each end, so it covers the true median with at least
/// 95 % confidence (for fewer than 6 values it is the whole range, which covers less).
fn median_interval(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    // P(X < k) for X ~ Binomial(n, 1/2), summed until it passes 2.5 %.
    let mut below = 0.0;
    let mut term = 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX));
    let mut k = 0;
    while k < n / 2 && below + term <= 0.025 {
        below += term;
        // C(n, k + 1) = C(n, k) * (n - k) / (k + 1)
        term *= (n - k) as f64 / (k + 1) as f64;
        k += 1;
    }
    // The k-th smallest (1-based) and its mirror; with no rank that far out, the extremes.
    let lo = k.saturating_sub(1);
    (v[lo], v[n - 1 - lo])
}

/// Per-I/O figures of a counted run: (allocations, bulk bytes copied per payload byte, bytes
/// zero-filled per payload byte, all bytes copied per payload byte).
fn per_io(r: &Result) -> Option<(f64, f64, f64, f64)> {
    let c = r.counts?;
    let ops = r.ops.max(1) as f64;
    let bytes = r.bytes.max(1) as f64;
    Some((
        c.allocs as f64 / ops,
        c.copied_bulk as f64 / bytes,
        c.zeroed as f64 / bytes,
        c.copied as f64 / bytes,
    ))
}

fn fmt_counts(r: Option<&Result>) -> (String, String, String) {
    match r.and_then(per_io) {
        Some((a, b, z, all)) => (
            format!("{a:.2}"),
            format!("{b:.2} ({all:.2})"),
            format!("{z:.2}"),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    }
}

fn compare(peer_path: &str, secs: f64, setups: &[Setup]) -> std::result::Result<(), String> {
    // ISBOOT_BENCH_REPS runs each workload that many times per initiator (alternately, the
    // first initiator changing every repetition) and reports medians; ISBOOT_BENCH_ONLY keeps
    // the workloads whose label contains it; ISBOOT_BENCH_COUNT_LIB (set by compare.sh) adds one
    // counted run per initiator; ISBOOT_BENCH_LOG appends every run's line to a file.
    let reps: usize = std::env::var("ISBOOT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let only = std::env::var("ISBOOT_BENCH_ONLY").ok();
    let count_lib = std::env::var("ISBOOT_BENCH_COUNT_LIB").ok();
    let log = std::env::var_os("ISBOOT_BENCH_LOG");
    let count_file = std::env::temp_dir().join(format!("isboot-count-{}", std::process::id()));
    let count_file = count_file.to_string_lossy().into_owned();
    let log_line = |line: String| {
        if let Some(p) = &log {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    };
    let pin = Pinning::choose();
    let placement = match pin {
        Some(p) => format!(
            "target on CPU {}, initiators on CPU {}",
            p.target, p.initiator
        ),
        None => "not pinned".to_string(),
    };
    println!(
        "(median of {reps} alternating runs of {secs} s each; [min-max] of the per-repetition \
         ratios; CPU = user+sys µs per I/O of the initiator process, user share in parentheses; \
         allocs per I/O, bulk copies (>= 512 B; all copies) and zero fills per payload byte from \
         one counted run each; target CPU = the target process's µs per I/O over each run, its \
         busy share of the wall time in parentheses; {placement})"
    );
    let place = |c: Command| match pin {
        Some(p) => p.initiator(c),
        None => c,
    };
    println!(
        "| target | target PDU | workload | libiscsi | isboot | isboot/libiscsi | CPU µs/IO libiscsi | \
         CPU µs/IO isboot | CPU isboot/libiscsi | target CPU µs/IO lib / isb | allocs/IO lib / isb | \
         copied B/B lib / isb | zeroed B/B lib / isb |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // Every repetition's two ratios per workload, over all targets and PDU sizes.
    let mut pooled = Pool::default();
    for s in setups {
        let t = Target::start(
            s.kind,
            Config {
                queue_depth: Some(64),
                max_recv_dsl: Some(s.pdu),
                null_store: s.null,
                ..Config::new(512 << 20)
            },
        )
        .map_err(|e| e.to_string())?;
        if let (Some(p), Some(pid)) = (pin, t.pid()) {
            p.pin_target(pid)?;
        }
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
            let mut theirs: Vec<Result> = Vec::new();
            let mut ours: Vec<Result> = Vec::new();
            let (mut tcpu_t, mut tcpu_o): (Vec<TargetCpu>, Vec<TargetCpu>) = (vec![], vec![]);
            for rep in 0..reps {
                // Alternate the two initiators, and which goes first, so that a change in the
                // machine's load hits both.
                for first in [rep % 2 == 0, rep % 2 != 0] {
                    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
                    let (who, (r, tc)) = if first {
                        let cmd = place(peer_cmd(peer_path, &url, mode, block, depth, secs));
                        let m = spawn_measured(cmd, t.pid())?;
                        theirs.push(m.0);
                        tcpu_t.extend(m.1);
                        ("libiscsi", m)
                    } else {
                        let cmd = place(ours_cmd(&t, mode, block, depth, secs));
                        let m = spawn_measured(cmd, t.pid())?;
                        ours.push(m.0);
                        tcpu_o.extend(m.1);
                        ("isboot", m)
                    };
                    let tc = tc.map_or(String::new(), |c| {
                        format!(
                            " target_us_per_io={:.2} target_busy={:.2}",
                            c.us_per_io, c.busy
                        )
                    });
                    log_line(format!(
                        "target={} pdu={} workload={label:?} initiator={who} rep={rep} load={:?} {}{tc}",
                        s.name().replace(' ', "-"),
                        s.pdu,
                        load.split_whitespace().next().unwrap_or(""),
                        r.line()
                    ));
                }
            }
            let (mut ct, mut co) = (None, None);
            if let Some(lib) = &count_lib {
                let cs = (secs / 2.0).max(1.0);
                let c = Some((lib.as_str(), count_file.as_str()));
                let r = spawn(place(peer_cmd(peer_path, &url, mode, block, depth, cs)), c)?;
                log_line(format!(
                    "counted initiator=libiscsi workload={label:?} {}",
                    r.line()
                ));
                ct = Some(r);
                let r = spawn(place(ours_cmd(&t, mode, block, depth, cs)), c)?;
                log_line(format!(
                    "counted initiator=isboot workload={label:?} {}",
                    r.line()
                ));
                co = Some(r);
            }
            let big = block >= 1 << 20;
            let unit = if big { "MB/s" } else { "IOPS" };
            let rate = |r: &Result| if big { r.mbps() } else { r.iops() };
            let rt: Vec<f64> = theirs.iter().map(rate).collect();
            let ro: Vec<f64> = ours.iter().map(rate).collect();
            let ratios: Vec<f64> = ro.iter().zip(&rt).map(|(o, t)| o / t).collect();
            let (lo, hi) = spread(&ratios);
            let cpu_t: Vec<f64> = theirs.iter().map(Result::cpu_us).collect();
            let cpu_o: Vec<f64> = ours.iter().map(Result::cpu_us).collect();
            let user_t = median(&theirs.iter().map(Result::user_share).collect::<Vec<_>>());
            let user_o = median(&ours.iter().map(Result::user_share).collect::<Vec<_>>());
            let cpu_ratios: Vec<f64> = cpu_o.iter().zip(&cpu_t).map(|(o, t)| o / t).collect();
            let (clo, chi) = spread(&cpu_ratios);
            pooled.add_workload(&label, s.null, &ratios, &cpu_ratios);
            let target_cpu = |v: &[TargetCpu]| {
                if v.is_empty() {
                    return "-".to_string();
                }
                let us = median(&v.iter().map(|c| c.us_per_io).collect::<Vec<_>>());
                let busy = median(&v.iter().map(|c| c.busy).collect::<Vec<_>>());
                format!("{us:.1} ({:.0}%)", busy * 100.0)
            };
            let (tct, tco) = (target_cpu(&tcpu_t), target_cpu(&tcpu_o));
            let (at, bt, zt) = fmt_counts(ct.as_ref());
            let (ao, bo, zo) = fmt_counts(co.as_ref());
            println!(
                "| {} | {} KiB | {label} | {:.0} {unit} | {:.0} {unit} | {:.2} [{lo:.2}-{hi:.2}] | \
                 {:.1} ({:.0}% user) | {:.1} ({:.0}% user) | {:.2} [{clo:.2}-{chi:.2}] | {tct} / {tco} | \
                 {at} / {ao} | {bt} / {bo} | {zt} / {zo} |",
                s.name(),
                s.pdu / 1024,
                median(&rt),
                median(&ro),
                median(&ratios),
                median(&cpu_t),
                user_t * 100.0,
                median(&cpu_o),
                user_o * 100.0,
                median(&cpu_ratios),
            );
        }
    }
    let _ = std::fs::remove_file(&count_file);
    // One run's swing at 4 KiB QD1 (±10-15 % here) is wider than the difference between the
    // initiators, so a row's median alone says little there: all rows' repetitions together,
    // with an interval for their median, say which side of 1 each workload is on.
    println!(
        "\n(each workload over every target and PDU size above, and over the null store's \
         alone: the median of all per-repetition ratios, and an interval covering the true \
         median with at least 95 % confidence when there are 6 ratios or more)"
    );
    pooled.print("workload");
    Ok(())
}

/// Per-repetition ratios (isboot / libiscsi) gathered under labels, in the order the labels
/// first came.
#[derive(Debug, Default)]
struct Pool {
    /// Label, rate ratios, CPU ratios.
    rows: Vec<(String, Vec<f64>, Vec<f64>)>,
}

impl Pool {
    fn add(&mut self, label: &str, rates: &[f64], cpus: &[f64]) {
        match self.rows.iter_mut().find(|(l, _, _)| l == label) {
            Some((_, r, c)) => {
                r.extend(rates);
                c.extend(cpus);
            }
            None => self
                .rows
                .push((label.to_string(), rates.to_vec(), cpus.to_vec())),
        }
    }

    /// Under the workload's label, and when the target had the null store, under that label
    /// again with ", null store": there the target's CPU per command is least, and the rate
    /// most the initiator's doing.
    fn add_workload(&mut self, workload: &str, null: bool, rates: &[f64], cpus: &[f64]) {
        self.add(workload, rates, cpus);
        if null {
            self.add(&format!("{workload}, null store"), rates, cpus);
        }
    }

    /// A Markdown table: each label's count of ratios, and the median of each kind with its
    /// >= 95 % interval.
    fn print(&self, what: &str) {
        println!("| {what} | ratios | isboot/libiscsi rate | CPU isboot/libiscsi |");
        println!("{}|", "|---".repeat(what.matches('|').count() + 4));
        for (label, r, c) in &self.rows {
            let (rlo, rhi) = median_interval(r);
            let (clo, chi) = median_interval(c);
            println!(
                "| {label} | {} | {:.2} [{rlo:.2}-{rhi:.2}] | {:.2} [{clo:.2}-{chi:.2}] |",
                r.len(),
                median(r),
                median(c)
            );
        }
    }
}

/// One run as `compare` logs it (ISBOOT_BENCH_LOG): where, what, whose, which repetition.
#[derive(Debug)]
struct Logged {
    target: String,
    pdu: u32,
    workload: String,
    isboot: bool,
    rep: usize,
    result: Result,
}

impl Logged {
    /// `target=T pdu=N workload="W" initiator=I rep=R load="L" ops=...`; `None` for anything
    /// else (the counted runs' lines among them).
    fn parse(line: &str) -> Option<Logged> {
        let rest = line.strip_prefix("target=")?;
        let (target, rest) = rest.split_once(" pdu=")?;
        let (pdu, rest) = rest.split_once(" workload=\"")?;
        let (workload, rest) = rest.split_once("\" initiator=")?;
        let (who, rest) = rest.split_once(" rep=")?;
        let (rep, rest) = rest.split_once(' ')?;
        let result = Result::parse(&rest[rest.find("ops=")?..])?;
        Some(Logged {
            target: target.to_string(),
            pdu: pdu.parse().ok()?,
            workload: workload.to_string(),
            isboot: match who {
                "isboot" => true,
                "libiscsi" => false,
                _ => return None,
            },
            rep: rep.parse().ok()?,
            result,
        })
    }

    fn same_run(&self, o: &Logged) -> bool {
        (&self.target, self.pdu, &self.workload, self.rep) == (&o.target, o.pdu, &o.workload, o.rep)
    }
}

/// The ratios of the logs `compare` wrote (each file one invocation: a repetition pairs the two
/// initiators' runs of the same file), by target, PDU size and workload, and by workload as
/// `compare`'s last table has them: evidence from several invocations pooled.
fn pool_logs(logs: &[String]) -> (Pool, Pool) {
    let (mut rows, mut workloads) = (Pool::default(), Pool::default());
    for log in logs {
        let runs: Vec<Logged> = log.lines().filter_map(Logged::parse).collect();
        for ours in runs.iter().filter(|l| l.isboot) {
            let Some(theirs) = runs.iter().find(|l| !l.isboot && l.same_run(ours)) else {
                continue;
            };
            let (o, t) = (&ours.result, &theirs.result);
            let rate = if ours.workload.contains("MiB") {
                o.mbps() / t.mbps()
            } else {
                o.iops() / t.iops()
            };
            let cpu = o.cpu_us() / t.cpu_us();
            let w = &ours.workload;
            let row = format!("{} | {} KiB | {w}", ours.target, ours.pdu / 1024);
            rows.add(&row, &[rate], &[cpu]);
            // `compare` logs a setup's name with '-' for ' ': "tgtd null" is "tgtd-null".
            workloads.add_workload(w, ours.target == "tgtd-null", &[rate], &[cpu]);
        }
    }
    (rows, workloads)
}

/// The targets of `compare`: each named kind at each target PDU size of ISBOOT_BENCH_PDU
/// (comma-separated bytes; default 8192 and 262144).
fn setups(names: &[String]) -> Vec<Setup> {
    let pdus: Vec<u32> = std::env::var("ISBOOT_BENCH_PDU")
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .filter(|v: &Vec<u32>| !v.is_empty())
        .unwrap_or_else(|| vec![8192, 262_144]);
    let names: Vec<&str> = if names.is_empty() {
        vec!["tgtd", "tgtd-null", "istgt"]
    } else {
        names.iter().map(String::as_str).collect()
    };
    let mut out = Vec::new();
    for n in names {
        let (kind, null) = match n {
            "tgtd" => (Kind::Tgtd, false),
            "tgtd-null" => (Kind::Tgtd, true),
            "istgt" => (Kind::Istgt, false),
            _ => usage(),
        };
        for &pdu in &pdus {
            out.push(Setup { kind, null, pdu });
        }
    }
    out
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
            compare(&args[1], secs, &setups(args.get(3..).unwrap_or(&[])))
        }
        Some("pool") if args.len() >= 2 => args[1..]
            .iter()
            .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(|logs| {
                let (rows, workloads) = pool_logs(&logs);
                println!(
                    "(per-repetition ratios isboot/libiscsi from {} log(s) of `compare`: median \
                     and an interval covering the true median with at least 95 % confidence \
                     when there are 6 ratios or more)",
                    logs.len()
                );
                rows.print("target | target PDU | workload");
                println!();
                workloads.print("workload");
            }),
        _ => usage(),
    };
    if let Err(e) = res {
        eprintln!("isboot-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_takes_the_binomial_ranks() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        // n = 30: P(X <= 9) = 0.021, P(X <= 10) = 0.049, so ranks 10 and 21.
        assert_eq!(median_interval(&v), (10.0, 21.0));
        let v: Vec<f64> = (1..=6).rev().map(f64::from).collect();
        assert_eq!(
            median_interval(&v),
            (1.0, 6.0),
            "n = 6: the extremes, 96.9 %"
        );
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        // n = 100: the textbook ranks 40 and 61.
        assert_eq!(median_interval(&v), (40.0, 61.0));
        assert_eq!(median_interval(&[0.9, 1.1, 1.0]), (0.9, 1.1));
        assert!(median_interval(&[]).0.is_nan());
    }

    fn logged(target: &str, who: &str, rep: usize, ops: u64, cpu_ms: u64) -> String {
        format!(
            "target={target} pdu=8192 workload=\"randread 4 KiB QD1\" initiator={who} rep={rep} \
             load=\"1.50\" ops={ops} bytes={} secs=2.000 mbps=1.0 iops=1 cpu_ns={}000000 \
             utick=1 stick=9 target_us_per_io=30.00 target_busy=0.45",
            ops * 4096,
            cpu_ms
        )
    }

    #[test]
    fn pooled_logs_pair_each_repetition_within_its_own_log() {
        let a = [
            logged("tgtd-null", "libiscsi", 0, 1000, 100),
            logged("tgtd-null", "isboot", 0, 1100, 99),
            logged("tgtd-null", "isboot", 1, 1200, 120),
            logged("tgtd-null", "libiscsi", 1, 1000, 100),
            // A counted run and a run without its pair count for nothing.
            "counted initiator=isboot workload=\"randread 4 KiB QD1\" ops=5 bytes=5 secs=1.0 \
             cpu_ns=5 utick=0 stick=0 allocs=0 copied=0 copied_bulk=0 zeroed=0"
                .to_string(),
            logged("tgtd-null", "isboot", 2, 900, 90),
        ]
        .join("\n");
        // The same repetition number in another log is another repetition.
        let b = [
            logged("istgt", "isboot", 0, 500, 60),
            logged("istgt", "libiscsi", 0, 1000, 100),
            logged("tgtd-null", "libiscsi", 2, 1000, 100),
        ]
        .join("\n");
        let (rows, workloads) = pool_logs(&[a, b]);
        let close = |v: &[f64], want: &[f64]| {
            v.len() == want.len() && v.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-9)
        };
        let find = |p: &Pool, label: &str| {
            p.rows
                .iter()
                .find(|(l, _, _)| l == label)
                .map(|(_, r, c)| (r.clone(), c.clone()))
                .unwrap_or_else(|| panic!("no row {label:?} in {p:?}"))
        };
        let (r, c) = find(&rows, "tgtd-null | 8 KiB | randread 4 KiB QD1");
        assert!(close(&r, &[1.1, 1.2]), "rates {r:?}");
        // CPU per I/O: 99 ms / 1100 against 100 ms / 1000, 120 / 1200 against 100 / 1000.
        assert!(close(&c, &[0.9, 1.0]), "cpu {c:?}");
        let (r, c) = find(&rows, "istgt | 8 KiB | randread 4 KiB QD1");
        assert!(close(&r, &[0.5]) && close(&c, &[1.2]), "{r:?} {c:?}");
        let (r, _) = find(&workloads, "randread 4 KiB QD1");
        assert!(close(&r, &[1.1, 1.2, 0.5]), "{r:?}");
        let (r, _) = find(&workloads, "randread 4 KiB QD1, null store");
        assert!(close(&r, &[1.1, 1.2]), "{r:?}");
        assert_eq!(rows.rows.len(), 2);
    }
}
