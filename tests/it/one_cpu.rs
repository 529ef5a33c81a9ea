// SPDX-License-Identifier: BSD-2-Clause
//! Issue 13 on the host path: a process that may run on one CPU only has nothing to gain from
//! handing large commands to the runtime's thread (it receives while the caller works only on
//! a second CPU), so its waiting callers drive the session themselves, as they do for small
//! commands. Handed over, 1 MiB reads at QD8 on one CPU cost ~10 % more CPU per command: ~2.3
//! futex calls and more context switches per command, the two threads taking turns.
//!
//! Pins its test thread (the disk's threads inherit the mask), so a binary of its own.

use std::process::Command;

use isboot_tests::io::{open, verify_range, write_range};
use isboot_tests::target::{Config, Kind, Target};

const MIB: u64 = 1024 * 1024;

/// The first CPU this thread may run on.
fn first_cpu() -> u32 {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a CPU number")
}

/// Pins the calling thread to `cpu` (threads it starts later inherit that).
fn pin_this_thread(cpu: u32) {
    let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = me
        .file_name()
        .and_then(|t| t.to_str())
        .expect("a thread id");
    let ok = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), tid])
        .output()
        .expect("taskset (util-linux)")
        .status
        .success();
    assert!(ok, "taskset could not pin thread {tid}");
}

/// Context switches of the disk runtime's own thread so far.
fn executor_switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "isboot-executor" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

#[test]
fn on_one_cpu_callers_drive_large_commands_themselves() {
    // The target first: it would inherit the mask.
    let t =
        Target::start(Kind::Tgtd, Config::new(32 * MIB)).unwrap_or_else(|e| panic!("tgtd: {e}"));
    pin_this_thread(first_cpu());
    assert_eq!(
        std::thread::available_parallelism().map(|n| n.get()).ok(),
        Some(1),
        "pinned to one CPU"
    );
    let disk = open(&t, None, |_| {});
    let bl = disk.block_len();
    let per_cmd = (MIB / u64::from(bl)) as u32;
    let blocks = 32 * MIB / u64::from(bl);
    write_range(&disk, 7, 0, blocks, per_cmd, 8).unwrap();
    verify_range(&disk, 7, 0, blocks, per_cmd, 8).unwrap();
    // Reads as a program that uses what it reads elsewhere would issue them: into its own
    // buffers, nothing done between a completion and the next submission.
    let before = executor_switches();
    let mut free: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; MIB as usize]).collect();
    let mut inflight = std::collections::VecDeque::new();
    let (mut next, mut commands) = (0u64, 0u64);
    while commands < 256 {
        while let Some(buf) = free.pop() {
            inflight.push_back(disk.submit_read_into(next, per_cmd, buf).unwrap());
            next = (next + u64::from(per_cmd)) % blocks;
        }
        let p = inflight.pop_front().expect("in flight");
        free.push(p.wait_buffer().unwrap());
        commands += 1;
    }
    for p in inflight {
        p.wait_buffer().unwrap();
    }
    let switches = executor_switches() - before;
    // Handed over, the runtime's thread wakes at least once per command to receive it; left
    // to the callers, it only looks now and then (GRACE to LOOK_MAX apart) whether anyone
    // drives.
    eprintln!("{switches} context switches of the runtime's thread for {commands} commands");
    assert!(
        switches < commands / 2,
        "{switches} context switches of the runtime's thread for {commands} 1 MiB reads at QD8"
    );
    disk.close().unwrap();
}
