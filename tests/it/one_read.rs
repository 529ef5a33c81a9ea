// SPDX-License-Identifier: BSD-2-Clause
//! Issue 13 on the host path: a 4 KiB read at queue depth 1 costs one read system call, the
//! header of its Data-In read together with the data it carries (`DataGuess` in the core's
//! `session/rx.rs`), instead of the header alone and then its data.
//!
//! Counted with the process's own `syscr` (`/proc/self/io`: read, readv and friends), so this
//! test is a binary of its own: nothing else in the process reads while it counts (the target
//! is another process). Header and data digests on and off, as the guess places the data
//! digest and padding differently.

use isboot_tests::io::{open, verify_range, write_range};
use isboot_tests::target::{Config, Kind, Target};

const MIB: u64 = 1024 * 1024;

/// Read system calls of this process so far.
fn read_calls() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscr in /proc/self/io")
}

#[test]
fn a_4k_read_at_queue_depth_1_is_one_read_system_call() {
    for digests in [false, true] {
        let t = Target::start(
            Kind::Tgtd,
            Config {
                digests,
                ..Config::new(4 * MIB)
            },
        )
        .unwrap_or_else(|e| panic!("tgtd: {e}"));
        let disk = open(&t, None, |_| {});
        let bl = disk.block_len();
        let per_cmd = 4096 / bl;
        let blocks = 2 * MIB / u64::from(bl);
        write_range(&disk, 5, 0, blocks, per_cmd, 4).unwrap();
        // The first Data-In teaches the guess the target's segment length.
        verify_range(&disk, 5, 0, u64::from(per_cmd), per_cmd, 1).unwrap();
        let commands = blocks / u64::from(per_cmd);
        let before = read_calls();
        // Every command's data checked against what was written.
        verify_range(&disk, 5, 0, blocks, per_cmd, 1).unwrap();
        let calls = read_calls() - before;
        // At least one per command: a read the kernel does not count here (recvmsg(2) is not
        // in `syscr`) would make the bound below hold for nothing.
        assert!(
            calls >= commands,
            "digests {digests}: {calls} read calls counted for {commands} reads"
        );
        // Two per command without the guess (header, then data); a few more than one for
        // data that reached the socket in two pieces.
        assert!(
            calls * 4 <= commands * 5,
            "digests {digests}: {calls} read calls for {commands} reads of 4 KiB at QD1"
        );
        eprintln!("digests {digests}: {calls} read calls for {commands} commands");
        disk.close().unwrap();
    }
}
