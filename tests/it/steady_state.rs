// SPDX-License-Identifier: BSD-2-Clause
//! Issue 15 on the host path: once a session runs, reads and writes allocate nothing. Every
//! allocation of the process but the scripted target's threads is counted (the caller, the
//! session's executor threads, the socket reactor) over 10,000 commands that reuse their
//! buffers, at queue depth 1 and 8; one allocation fails the test.

use isboot_executor::host::counting_alloc::{self, CountingAlloc};
use isboot_host::disk::{DiskConfig, HostDisk, Pending};
use isboot_tests::fake::{FakeConfig, FakeTarget, Fault, BLOCK};
use isboot_tests::io::INITIATOR;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Blocks per command: 4 KiB.
const BLOCKS: u32 = 8;

/// The caller's side: free buffers, and the commands in flight (room made before counting).
struct Caller {
    bufs: Vec<Vec<u8>>,
    inflight: std::collections::VecDeque<Pending>,
}

/// `n` commands, alternately writes and reads of 4 KiB, `depth` in flight, each slot reusing
/// its buffer.
fn run(disk: &HostDisk, c: &mut Caller, depth: usize, n: usize) {
    let Caller { bufs, inflight } = c;
    let slots = 1 << 20 >> 12;
    for i in 0..n {
        if inflight.len() == depth {
            let p = inflight.pop_front().expect("a command in flight");
            bufs.push(p.wait_buffer().expect("command"));
        }
        let buf = bufs.pop().expect("a free buffer");
        let lba = (i % slots) as u64 * u64::from(BLOCKS);
        let p = if i % 2 == 0 {
            disk.submit_write(lba, buf)
        } else {
            disk.submit_read_into(lba, BLOCKS, buf)
        }
        .expect("submit");
        inflight.push_back(p);
    }
    while let Some(p) = inflight.pop_front() {
        bufs.push(p.wait_buffer().expect("command"));
    }
}

// One test: the count is process-wide, so nothing else may run meanwhile.
#[test]
fn ten_thousand_reads_and_writes_allocate_nothing_with_and_without_digests() {
    steady_state(false);
    steady_state(true);
}

fn steady_state(digests: bool) {
    let mut tc = FakeConfig::new(1 << 20, Fault::None);
    tc.digests = digests;
    let t = FakeTarget::start(tc).unwrap();
    let mut cfg = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
    cfg.max_commands = 8;
    cfg.digests = digests;
    let disk = HostDisk::open(cfg).expect("login");
    assert_eq!(disk.negotiated().map(|p| p.digests().data), Some(digests));
    let mut c = Caller {
        bufs: (0..8)
            .map(|i| vec![i as u8; BLOCKS as usize * BLOCK])
            .collect(),
        inflight: std::collections::VecDeque::with_capacity(8),
    };
    // The first commands size what keeps its size afterwards (the completion board's slots).
    run(&disk, &mut c, 8, 64);
    for depth in [1, 8] {
        counting_alloc::start(None);
        run(&disk, &mut c, depth, 5_000);
        let n = counting_alloc::stop();
        assert_eq!(n, 0, "allocations in 5,000 commands at queue depth {depth}");
    }
    // The count is real: a command that makes its own buffer is seen.
    counting_alloc::start(None);
    let data = disk.read(0, 1).expect("read");
    let n = counting_alloc::stop();
    assert_eq!(data.len(), BLOCK);
    assert!(n >= 1, "a read into a new buffer allocates it");
    assert!(t.stats().violations.is_empty());
    assert!(disk.stats().commands >= 10_064);
}
