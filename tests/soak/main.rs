// SPDX-License-Identifier: BSD-2-Clause
//! The soak: `isboot-soak MINUTES [tgtd] [istgt] [lio]` (run by `tests/soak.sh`; not in CI).
//!
//! For each target, at the same time: a session (the same core the kernel runs, over
//! isboot-host) through a relay that can reset its connection, doing random writes and verified
//! reads with eight commands in flight over a 256 MiB disk, while a fault schedule resets the
//! connection (through the relay) every few seconds and kills and restarts the target every half
//! minute or so (LIO, a qemu guest that takes seconds to boot, less often). Commands in flight
//! at a fault must complete once the session is back, with the right bytes: the workload never
//! has two commands on one block at a time, remembers which write each block last received,
//! and checks every block it reads against that, and at the end reads back everything and the
//! target's backing file too.
//!
//! Prints progress every minute, the figures per target, the process's resident memory over
//! time (it must stay flat), and ends with
//! `soak: W MiB written, V MiB verified, R resets, K restarts, E errors, C corrupt, peak RSS M MiB`.
//! Exits 1 when any command failed or any byte was wrong.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use isboot_host::disk::{HostDisk, Pending};
use isboot_tests::io::{block_data, open};
use isboot_tests::relay::Relay;
use isboot_tests::target::{Config, Kind, Target};

const MIB: u64 = 1024 * 1024;
const BLOCK: u32 = 512;
/// The disk of each target.
const DISK: u64 = 256 * MIB;
/// Commands in flight per session.
const DEPTH: usize = 8;
/// Largest command, in blocks (256 KiB).
const MAX_BLOCKS: u32 = 512;
/// A block never written reads as zeros; one whose write failed is not checked any more.
const NEVER: u32 = 0;
const UNKNOWN: u32 = u32::MAX;

/// How often each fault hits a target.
struct Schedule {
    reset_every: Duration,
    restart_every: Duration,
}

fn schedule(kind: Kind) -> Schedule {
    match kind {
        // Seconds to boot a guest under TCG: fewer restarts, which are the slow part.
        Kind::Lio => Schedule {
            reset_every: Duration::from_secs(6),
            restart_every: Duration::from_secs(90),
        },
        _ => Schedule {
            reset_every: Duration::from_secs(3),
            restart_every: Duration::from_secs(30),
        },
    }
}

/// What one target's soak did.
#[derive(Default)]
struct Counts {
    written: AtomicU64,
    verified: AtomicU64,
    resets: AtomicU64,
    restarts: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    reconnects: AtomicU64,
}

impl Counts {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// xorshift64*: the workload's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A command in flight.
struct Op {
    write: Option<u32>,
    lba: u64,
    blocks: u32,
    pending: Pending,
}

/// Which write each block last received.
struct Model {
    gens: Vec<u32>,
    next_gen: u32,
}

impl Model {
    /// The bytes `lba..lba+blocks` must hold, and how many of them are known.
    fn expected(&self, lba: u64, blocks: u32) -> (Vec<u8>, Vec<bool>) {
        let mut want = Vec::with_capacity((blocks * BLOCK) as usize);
        let mut known = Vec::with_capacity(blocks as usize);
        let mut b = lba;
        let end = lba + u64::from(blocks);
        while b < end {
            let g = self.gens[b as usize];
            // A run of blocks from the same write is one call.
            let mut run = 1;
            while b + run < end && self.gens[(b + run) as usize] == g {
                run += 1;
            }
            match g {
                NEVER => want.resize(want.len() + (run * u64::from(BLOCK)) as usize, 0),
                UNKNOWN => want.resize(want.len() + (run * u64::from(BLOCK)) as usize, 0),
                g => want.extend_from_slice(&block_data(g, b, run as u32, BLOCK)),
            }
            known.extend(std::iter::repeat_n(g != UNKNOWN, run as usize));
            b += run;
        }
        (want, known)
    }

    /// Compares `got` with what `lba..` must hold: (bytes verified, bytes wrong).
    fn check(&self, lba: u64, blocks: u32, got: &[u8]) -> (u64, u64) {
        let (want, known) = self.expected(lba, blocks);
        if got.len() != want.len() {
            return (0, want.len() as u64);
        }
        let (mut ok, mut bad) = (0u64, 0u64);
        for (i, k) in known.iter().enumerate() {
            if !k {
                continue;
            }
            let r = i * BLOCK as usize..(i + 1) * BLOCK as usize;
            let wrong = got[r.clone()]
                .iter()
                .zip(&want[r])
                .filter(|(a, b)| a != b)
                .count() as u64;
            ok += u64::from(BLOCK);
            bad += wrong;
        }
        (ok, bad)
    }
}

fn overlaps(inflight: &VecDeque<Op>, lba: u64, blocks: u32) -> bool {
    let end = lba + u64::from(blocks);
    inflight
        .iter()
        .any(|o| lba < o.lba + u64::from(o.blocks) && o.lba < end)
}

/// Waits for the oldest command and accounts for it.
fn retire(kind: Kind, op: Op, model: &mut Model, c: &Counts) {
    match (op.pending.wait(), op.write) {
        (Ok(_), Some(g)) => {
            let r = op.lba as usize..(op.lba + u64::from(op.blocks)) as usize;
            model.gens[r].fill(g);
            Counts::add(&c.written, u64::from(op.blocks * BLOCK));
        }
        (Ok(data), None) => {
            let (ok, bad) = model.check(op.lba, op.blocks, &data);
            Counts::add(&c.verified, ok);
            if bad > 0 {
                eprintln!(
                    "soak: {}: READ at LBA {} ({} blocks): {bad} wrong bytes",
                    kind.name(),
                    op.lba,
                    op.blocks
                );
                Counts::add(&c.corrupt, bad);
            }
        }
        (Err(e), w) => {
            eprintln!(
                "soak: {}: {} at LBA {} ({} blocks) failed: {e}",
                kind.name(),
                if w.is_some() { "WRITE" } else { "READ" },
                op.lba,
                op.blocks
            );
            Counts::add(&c.errors, 1);
            if w.is_some() {
                // The write may or may not have reached the disk.
                let r = op.lba as usize..(op.lba + u64::from(op.blocks)) as usize;
                model.gens[r].fill(UNKNOWN);
            }
        }
    }
}

/// Submits a write of generation `write` (or a read) of `lba..lba+blocks`, in flight from now.
fn submit(
    kind: Kind,
    disk: &HostDisk,
    inflight: &mut VecDeque<Op>,
    c: &Counts,
    write: Option<u32>,
    lba: u64,
    blocks: u32,
) {
    let submitted = match write {
        Some(g) => disk.submit_write(lba, block_data(g, lba, blocks, BLOCK)),
        None => disk.submit_read(lba, blocks),
    };
    match submitted {
        Ok(pending) => inflight.push_back(Op {
            write,
            lba,
            blocks,
            pending,
        }),
        Err(e) => {
            eprintln!("soak: {}: submit failed: {e}", kind.name());
            Counts::add(&c.errors, 1);
        }
    }
}

/// Random writes and verified reads until `end`.
fn workload(kind: Kind, disk: &HostDisk, model: &mut Model, end: Instant, c: &Counts) {
    let blocks_total = DISK / u64::from(BLOCK);
    let mut rng =
        Rng(0x9e37_79b9_7f4a_7c15 ^ kind.name().len() as u64 ^ u64::from(std::process::id()));
    let mut inflight: VecDeque<Op> = VecDeque::new();
    while Instant::now() < end {
        if inflight.len() >= DEPTH {
            let op = inflight.pop_front().expect("in flight");
            retire(kind, op, model, c);
            continue;
        }
        // Small and large commands alike; a few tries for a range no command in flight holds.
        let blocks = if rng.below(2) == 0 {
            1 + rng.below(16) as u32
        } else {
            1 + rng.below(u64::from(MAX_BLOCKS)) as u32
        };
        let Some(lba) = (0..8)
            .map(|_| rng.below(blocks_total - u64::from(blocks)))
            .find(|&l| !overlaps(&inflight, l, blocks))
        else {
            let op = inflight.pop_front().expect("in flight");
            retire(kind, op, model, c);
            continue;
        };
        let write = (rng.below(2) == 0).then(|| {
            model.next_gen += 1;
            model.next_gen
        });
        submit(kind, disk, &mut inflight, c, write, lba, blocks);
    }
    while let Some(op) = inflight.pop_front() {
        retire(kind, op, model, c);
    }
}

/// Reads back every block (through the session) and checks it.
fn final_read(kind: Kind, disk: &HostDisk, model: &mut Model, c: &Counts) {
    let blocks_total = DISK / u64::from(BLOCK);
    let mut inflight: VecDeque<Op> = VecDeque::new();
    let mut lba = 0;
    while lba < blocks_total || !inflight.is_empty() {
        if lba < blocks_total && inflight.len() < DEPTH {
            let blocks = MAX_BLOCKS.min((blocks_total - lba) as u32);
            submit(kind, disk, &mut inflight, c, None, lba, blocks);
            lba += u64::from(blocks);
        } else if let Some(op) = inflight.pop_front() {
            retire(kind, op, model, c);
        }
    }
}

/// Compares the target's backing file with the model: what the target stored, independent of
/// our read path. Returns the wrong bytes.
fn check_backing_file(t: &Target, model: &Model) -> u64 {
    let mut f = match std::fs::File::open(t.disk_path()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("soak: {}: backing file: {e}", t.kind().name());
            return DISK;
        }
    };
    let chunk = 2048u32;
    let mut bad = 0;
    let mut buf = vec![0u8; (chunk * BLOCK) as usize];
    let mut lba = 0u64;
    while lba < DISK / u64::from(BLOCK) {
        if f.seek(SeekFrom::Start(lba * u64::from(BLOCK))).is_err()
            || f.read_exact(&mut buf).is_err()
        {
            eprintln!(
                "soak: {}: backing file read at LBA {lba} failed",
                t.kind().name()
            );
            return DISK;
        }
        bad += model.check(lba, chunk, &buf).1;
        lba += u64::from(chunk);
    }
    bad
}

/// The faults for one target until `end` (or until `stop`).
fn faults(
    kind: Kind,
    t: &Mutex<Target>,
    relay: &Relay,
    end: Instant,
    stop: &AtomicBool,
    c: &Counts,
) {
    let s = schedule(kind);
    let start = Instant::now();
    let mut next_reset = start + s.reset_every;
    let mut next_restart = start + s.restart_every;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_restart {
            let mut t = t.lock().expect("target");
            t.kill();
            // Down for a moment with commands queued, then back on the same port and disk.
            std::thread::sleep(Duration::from_millis(500));
            match t.restart() {
                Ok(()) => Counts::add(&c.restarts, 1),
                Err(e) => {
                    eprintln!("soak: {}: restart failed: {e}", kind.name());
                    Counts::add(&c.errors, 1);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            next_restart = Instant::now() + s.restart_every;
            continue;
        }
        if now >= next_reset {
            relay.cut();
            next_reset = now + s.reset_every;
            continue;
        }
        std::thread::sleep(Duration::from_millis(50).min(next_reset.min(next_restart) - now));
    }
    Counts::add(&c.resets, relay.resets());
}

/// One target's soak, from start to the checks at the end.
fn soak(kind: Kind, end: Instant, c: &Counts) {
    let t = match Target::start(kind, Config::new(DISK)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soak: {}: cannot start: {e}", kind.name());
            Counts::add(&c.errors, 1);
            return;
        }
    };
    let relay = Relay::start(t.addr()).expect("relay");
    let disk = open(&t, Some(relay.addr()), |cfg| {
        cfg.timeouts.nop_interval = Duration::from_secs(1);
        cfg.timeouts.nop_timeout = Duration::from_secs(5);
        // Restarts and resets must be waited out, never fail a command.
        cfg.io_timeout = Duration::from_secs(600);
        cfg.command_timeout = None;
        cfg.max_commands = 2 * DEPTH;
        // Errors only: a reset every few seconds would flood the notes.
        cfg.log_level = 0;
    });
    let mut model = Model {
        gens: vec![NEVER; (DISK / u64::from(BLOCK)) as usize],
        next_gen: 0,
    };
    let target = Mutex::new(t);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| faults(kind, &target, &relay, end, &stop, c));
        workload(kind, &disk, &mut model, end, c);
        stop.store(true, Ordering::Relaxed);
    });
    final_read(kind, &disk, &mut model, c);
    Counts::add(&c.reconnects, disk.reconnects());
    if let Err(e) = disk.close() {
        eprintln!("soak: {}: logout: {e}", kind.name());
    }
    let t = target.into_inner().expect("target");
    let bad = check_backing_file(&t, &model);
    if bad > 0 {
        eprintln!("soak: {}: backing file: {bad} wrong bytes", kind.name());
        Counts::add(&c.corrupt, bad);
    }
}

/// Resident memory of this process now and at its peak, in KiB (Linux /proc).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

fn main() {
    let mut args = std::env::args().skip(1);
    let minutes: f64 = match args.next().and_then(|m| m.parse().ok()) {
        Some(m) if m > 0.0 => m,
        _ => {
            eprintln!("usage: isboot-soak MINUTES [tgtd] [istgt] [lio]");
            std::process::exit(2);
        }
    };
    let mut kinds: Vec<Kind> = args.filter_map(|a| Kind::from_name(&a)).collect();
    if kinds.is_empty() {
        kinds = vec![Kind::Tgtd, Kind::Istgt, Kind::Lio];
    }
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(minutes * 60.0);
    let counts: Vec<Counts> = kinds.iter().map(|_| Counts::default()).collect();
    let done = AtomicBool::new(false);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = kinds
            .iter()
            .zip(&counts)
            .map(|(&k, c)| s.spawn(move || soak(k, end, c)))
            .collect();
        // Memory every 10 s, progress every minute, until the runs are done.
        let sampler = s.spawn(|| {
            let mut v = Vec::new();
            let mut minute = 1;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let secs = t0.elapsed().as_secs();
                if v.last().is_none_or(|(t, _)| secs >= t + 10) {
                    v.push((secs, rss_kib().0));
                }
                if secs >= minute * 60 {
                    minute += 1;
                    for (k, c) in kinds.iter().zip(&counts) {
                        eprintln!(
                            "soak: {:>4} s {:>5}: {} MiB written, {} MiB verified, {} restarts, {} errors, {} corrupt",
                            secs,
                            k.name(),
                            mib(Counts::get(&c.written)),
                            mib(Counts::get(&c.verified)),
                            Counts::get(&c.restarts),
                            Counts::get(&c.errors),
                            Counts::get(&c.corrupt)
                        );
                    }
                }
            }
            v
        });
        for r in runs {
            let _ = r.join();
        }
        done.store(true, Ordering::Relaxed);
        samples = sampler.join().unwrap_or_default();
    });
    let total =
        |f: fn(&Counts) -> &AtomicU64| counts.iter().map(|c| Counts::get(f(c))).sum::<u64>();
    for (k, c) in kinds.iter().zip(&counts) {
        println!(
            "soak: {}: {} MiB written, {} MiB verified, {} resets, {} restarts, {} reconnects, {} errors, {} corrupt",
            k.name(),
            mib(Counts::get(&c.written)),
            mib(Counts::get(&c.verified)),
            Counts::get(&c.resets),
            Counts::get(&c.restarts),
            Counts::get(&c.reconnects),
            Counts::get(&c.errors),
            Counts::get(&c.corrupt)
        );
    }
    // Flat memory: the first minute's highest sample against the rest of the run.
    let first: u64 = samples
        .iter()
        .filter(|(t, _)| *t <= 60)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let later: u64 = samples
        .iter()
        .filter(|(t, _)| *t > 60)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let last = samples.last().map_or(0, |s| s.1);
    println!(
        "soak: RSS {} samples: first minute at most {} MiB, after it at most {} MiB, at the end {} MiB",
        samples.len(),
        first / 1024,
        later / 1024,
        last / 1024
    );
    let (errors, corrupt) = (total(|c| &c.errors), total(|c| &c.corrupt));
    println!(
        "soak: {} MiB written, {} MiB verified, {} resets, {} restarts, {} errors, {} corrupt, peak RSS {} MiB",
        mib(total(|c| &c.written)),
        mib(total(|c| &c.verified)),
        total(|c| &c.resets),
        total(|c| &c.restarts),
        errors,
        corrupt,
        rss_kib().1 / 1024
    );
    if errors > 0 || corrupt > 0 {
        std::process::exit(1);
    }
}
