// SPDX-License-Identifier: BSD-2-Clause
//! The host block API's own behaviour, against the scripted target when it behaves: SCSI errors
//! come back as errors with their sense, more commands than the session has room for are queued
//! and all complete, and nothing is left running after close.

use isboot_host::disk::{DiskConfig, Error, HostDisk};
use isboot_tests::fake::{pattern, FakeConfig, FakeTarget, Fault, BLOCK};
use isboot_tests::io::INITIATOR;

fn open(t: &FakeTarget, max_commands: usize) -> HostDisk {
    let mut cfg = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
    cfg.max_commands = max_commands;
    HostDisk::open(cfg).expect("login to the scripted target")
}

#[test]
fn a_read_past_the_end_is_a_scsi_error_with_sense_and_the_session_goes_on() {
    let t = FakeTarget::start(FakeConfig::new(1 << 20, Fault::None)).unwrap();
    let disk = open(&t, 8);
    let (blocks, bl) = disk.read_capacity().unwrap();
    assert_eq!((blocks, bl), (2048, 512));
    match disk.read(blocks - 1, 2) {
        Err(Error::Scsi { status, sense }) => {
            assert_eq!(status, 0x02);
            assert_eq!(sense.key_asc_ascq(), Some((0x05, 0x21, 0x00)));
        }
        other => panic!("expected CHECK CONDITION, got {other:?}"),
    }
    let want: Vec<u8> = ((blocks as usize - 1) * BLOCK..blocks as usize * BLOCK)
        .map(pattern)
        .collect();
    assert_eq!(disk.read(blocks - 1, 1).unwrap(), want);
    let inq = disk.inquiry().unwrap();
    assert_eq!(inq.vendor, "ISBOOT");
    assert_eq!(disk.report_luns().unwrap(), vec![0]);
    disk.close().unwrap();
    assert!(t.stats().violations.is_empty());
}

#[test]
fn more_commands_than_the_session_holds_are_queued_and_all_complete() {
    let t = FakeTarget::start(FakeConfig::new(1 << 20, Fault::None)).unwrap();
    // Four slots, and 300 commands submitted before the first wait: the inbox fills and
    // submission waits for room instead of failing.
    let disk = open(&t, 4);
    let pending: Vec<_> = (0..300u64)
        .map(|i| (i, disk.submit_read(i % 2048, 1).unwrap()))
        .collect();
    for (i, p) in pending {
        let lba = (i % 2048) as usize;
        let want: Vec<u8> = (lba * BLOCK..(lba + 1) * BLOCK).map(pattern).collect();
        assert_eq!(p.wait().unwrap(), want, "command {i}");
    }
    assert!(t.stats().violations.is_empty(), "{:?}", t.stats());
}

#[test]
fn writes_reach_the_disk_and_close_logs_out() {
    let t = FakeTarget::start(FakeConfig::new(1 << 20, Fault::None)).unwrap();
    let disk = open(&t, 8);
    let data: Vec<u8> = (0..64 * BLOCK).map(|i| (i * 13 % 256) as u8).collect();
    disk.write(100, &data).unwrap();
    assert_eq!(t.disk(100 * BLOCK, data.len()), data);
    assert_eq!(disk.read(100, 64).unwrap(), data);
    assert!(matches!(disk.write(0, &[1, 2, 3]), Err(Error::Invalid(_))));
    disk.close().unwrap();
    let s = t.stats();
    assert_eq!((s.logins, s.violations.len()), (1, 0), "{s:?}");
}

/// Issue 12 item 2: a target cannot choose how much the host path allocates. Before the bound,
/// a 1 GiB block was cached and the next one-block read allocated 1 GiB.
#[test]
fn a_block_size_the_target_cannot_mean_is_refused_at_open() {
    for bl in [1 << 30, 3 * 512, 128 * 1024, 256] {
        let mut cfg = FakeConfig::new(1 << 20, Fault::None);
        cfg.reported_block_len = Some(bl);
        let t = FakeTarget::start(cfg).unwrap();
        let mut c = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
        c.io_timeout = std::time::Duration::from_secs(20);
        match HostDisk::open(c) {
            Err(Error::Invalid(why)) => assert!(why.contains(&format!("{bl}-byte")), "{why}"),
            other => panic!("a {bl}-byte block was accepted: {other:?}"),
        }
    }
    // Powers of two up to 64 KiB are real disks.
    let mut cfg = FakeConfig::new(1 << 20, Fault::None);
    cfg.reported_block_len = Some(4096);
    let t = FakeTarget::start(cfg).unwrap();
    let disk = open(&t, 4);
    assert_eq!(disk.block_len(), 4096);
}

/// Issue 12 item 2, the transfer side: one command may not ask for more than the bound, and
/// is refused before any buffer is made.
#[test]
fn a_transfer_beyond_the_bound_is_refused_before_allocating() {
    let t = FakeTarget::start(FakeConfig::new(1 << 20, Fault::None)).unwrap();
    let disk = open(&t, 4);
    let blocks = (isboot_host::disk::MAX_TRANSFER / BLOCK) as u32 + 1;
    assert!(matches!(disk.read(0, blocks), Err(Error::Invalid(_))));
    assert!(matches!(
        disk.submit(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], None, usize::MAX),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        t.stats().commands,
        1,
        "only READ CAPACITY reached the target"
    );
}

/// Issue 12 item 4: durations meaning "forever" are clamped; before, `Instant + Duration`
/// overflowed and panicked in open (and again in Drop).
#[test]
fn the_longest_durations_do_not_panic() {
    let t = FakeTarget::start(FakeConfig::new(1 << 20, Fault::None)).unwrap();
    let mut cfg = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
    cfg.io_timeout = std::time::Duration::MAX;
    cfg.command_timeout = Some(std::time::Duration::MAX);
    cfg.timeouts.nop_interval = std::time::Duration::MAX;
    cfg.timeouts.tmf_timeout = std::time::Duration::MAX;
    let disk = HostDisk::open(cfg).expect("open");
    assert_eq!(disk.read(0, 1).unwrap().len(), BLOCK);
    drop(disk);
}

/// Issue 12 item 5: a command sent again after UNIT ATTENTION keeps the deadline of its first
/// submission. The target answers every READ with UNIT ATTENTION after 300 ms; with a 1 s
/// command timeout the read must fail with a timeout by then, where each retry used to start
/// a fresh second (9 attempts, 2.7 s, ending in the UNIT ATTENTION itself).
#[test]
fn unit_attention_retries_stay_within_the_command_timeout() {
    use std::time::{Duration, Instant};
    let mut cfg = FakeConfig::new(1 << 20, Fault::None);
    cfg.unit_attention_opcode = Some(0x28);
    let t = FakeTarget::start(cfg).unwrap();
    let mut c = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
    c.command_timeout = Some(Duration::from_secs(1));
    c.io_timeout = Duration::from_secs(30);
    let disk = HostDisk::open(c).expect("open");
    t.set_response_delay(Duration::from_millis(300));
    let start = Instant::now();
    let r = disk.read(0, 1);
    let took = start.elapsed();
    t.set_response_delay(Duration::ZERO);
    assert_eq!(
        r,
        Err(Error::Transport(isboot_core::scsi::TransportError::Timeout))
    );
    assert!(
        took < Duration::from_millis(2200),
        "the 1 s bound held for {took:?}"
    );
}

#[test]
fn a_long_read_refused_behind_another_completes_at_once() {
    // A 1 MiB read in range, then one 1 MiB past the end, sent together. While the first
    // streams in, the session expects the second's 1 MiB too, so once the first is read the
    // host's reader may wait for a mark of 256 KiB (a long read's bytes); the target answers
    // the second with CHECK CONDITION and no data, 48 bytes and the sense. The runtime loop's
    // bound (MARK_WAIT, 1 ms) then wakes the reader to read them: without it the command
    // would wait for its I/O timeout (120 s).
    let t = FakeTarget::start(FakeConfig::new(4 << 20, Fault::None)).unwrap();
    let disk = open(&t, 8);
    let (blocks, _) = disk.read_capacity().unwrap();
    let want: Vec<u8> = (0..2048 * BLOCK).map(pattern).collect();
    for round in 0..10 {
        let at = std::time::Instant::now();
        let good = disk.submit_read(0, 2048).unwrap();
        let refused = disk.submit_read(blocks - 1, 2048).unwrap();
        assert_eq!(good.wait().unwrap(), want, "round {round}");
        match refused.wait() {
            Err(Error::Scsi { status, .. }) => assert_eq!(status, 0x02),
            other => panic!("round {round}: expected CHECK CONDITION, got {other:?}"),
        }
        let took = at.elapsed();
        assert!(
            took < std::time::Duration::from_secs(2),
            "round {round}: both done after {took:?}"
        );
    }
    disk.close().unwrap();
    assert!(t.stats().violations.is_empty());
}
