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
