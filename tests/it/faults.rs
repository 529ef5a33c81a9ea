// SPDX-License-Identifier: BSD-2-Clause
//! Fault tests: the target killed and restarted in the middle of a write loop, the TCP connection
//! reset mid-transfer, and a scripted target that breaks the protocol. Each must end in a
//! reconnect or a clean error: never a panic, a hang, or a wrong byte.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use isboot_host::disk::{DiskConfig, HostDisk};
use isboot_tests::fake::{pattern, FakeConfig, FakeTarget, Fault, Redirect, BLOCK, POISON};
use isboot_tests::io::{open, verify_backing_file, verify_range, write_range, INITIATOR};
use isboot_tests::relay::Relay;
use isboot_tests::target::{Config, Kind, Target};
use isboot_tests::wait;

const MIB: u64 = 1024 * 1024;

/// Writes `blocks` blocks from LBA 0 in 1 MiB chunks (`per_cmd` blocks a command, four in flight,
/// pattern `seed`) on a writer thread; once `mib_before` MiB are done, runs `interrupt` on this
/// thread, then waits for the writer, which must finish without an error.
fn write_loop_interrupted(
    disk: &HostDisk,
    seed: u32,
    blocks: u64,
    per_cmd: u32,
    mib_before: u64,
    interrupt: impl FnOnce(),
) {
    // Chunks of 1 MiB so progress is visible to the interrupter.
    const STEP: u64 = 2048;
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut lba = 0;
            while lba < blocks {
                write_range(disk, seed, lba, STEP, per_cmd, 4)?;
                lba += STEP;
                done.store(lba, Ordering::SeqCst);
            }
            Ok::<(), String>(())
        });
        wait::until(Duration::from_secs(120), || {
            (done.load(Ordering::SeqCst) >= mib_before * STEP).then_some(())
        })
        .expect("writes made progress before the interruption");
        interrupt();
        writer.join().unwrap().unwrap();
    });
}

/// Sequential writes of 64 KiB commands, four in flight, while the target is killed with SIGKILL
/// and started again: every write completes, and every byte is on the disk afterwards.
fn killed_and_restarted_during_writes(kind: Kind) {
    let mut t = Target::start(kind, Config::new(32 * MIB)).unwrap();
    let disk = open(&t, None, |c| {
        c.timeouts.nop_interval = Duration::from_secs(1);
        c.timeouts.nop_timeout = Duration::from_secs(3);
    });
    let blocks_total = 32 * MIB / 512;
    write_loop_interrupted(&disk, 11, blocks_total, 128, 4, || {
        t.kill();
        // Down for a moment with writes queued, then back on the same port and disk.
        std::thread::sleep(Duration::from_millis(500));
        t.restart().unwrap();
    });
    verify_range(&disk, 11, 0, blocks_total, 2048, 4).unwrap();
    verify_backing_file(&t, 11, 0, blocks_total, 512);
    assert!(disk.stats().replays > 0 || disk.reconnects() > 0);
}

/// Two tgtd portals serve one backing file; the session's portal dies for good in the middle of a
/// write loop, and the session carries on through the alternate portal.
#[test]
fn failover_to_an_alternate_portal_during_a_write_loop() {
    let mut a = Target::start(Kind::Tgtd, Config::new(16 * MIB)).unwrap();
    let b = Target::start_sharing(Kind::Tgtd, Config::new(16 * MIB), &a).unwrap();
    let disk = open(&a, None, |c| {
        c.alternates = vec![b.addr()];
        c.timeouts.nop_interval = Duration::from_secs(1);
        c.timeouts.nop_timeout = Duration::from_secs(3);
    });
    let blocks_total = 16 * MIB / 512;
    write_loop_interrupted(&disk, 31, blocks_total, 128, 2, || a.kill());
    verify_range(&disk, 31, 0, blocks_total, 2048, 4).unwrap();
    verify_backing_file(&b, 31, 0, blocks_total, 512);
    assert!(disk.reconnects() > 0);
}

#[test]
fn tgtd_killed_and_restarted_during_a_write_loop() {
    killed_and_restarted_during_writes(Kind::Tgtd);
}

#[test]
fn istgt_killed_and_restarted_during_a_write_loop() {
    killed_and_restarted_during_writes(Kind::Istgt);
}

/// The whole guest is killed: for about as long as it takes to boot again (seconds), qemu's
/// forwarded port refuses connections, and then accepts them before LIO listens.
#[test]
fn lio_killed_and_restarted_during_a_write_loop() {
    killed_and_restarted_during_writes(Kind::Lio);
}

/// A 24 MiB read through a relay that resets the connection after 8 MiB came down, then a write
/// cut by hand mid-way: both complete with the right data over a new connection.
fn reset_mid_transfer(kind: Kind) {
    let t = Target::start(kind, Config::new(32 * MIB)).unwrap();
    let relay = Relay::start(t.addr()).unwrap();
    let disk = open(&t, Some(relay.addr()), |_| {});
    let blocks = 24 * MIB / 512;
    write_range(&disk, 21, 0, blocks, 2048, 4).unwrap();
    relay.cut_after_down(relay.bytes_down() + 8 * MIB);
    verify_range(&disk, 21, 0, blocks, 2048, 4).unwrap();
    assert_eq!(relay.resets(), 1, "the read was cut");
    assert!(relay.connections() >= 2, "the session reconnected");

    write_loop_interrupted(&disk, 22, blocks, 256, 4, || assert!(relay.cut()));
    verify_range(&disk, 22, 0, blocks, 2048, 4).unwrap();
    verify_backing_file(&t, 22, 0, blocks, 512);
    assert_eq!(relay.resets(), 2);
}

#[test]
fn tgtd_tcp_reset_mid_transfer() {
    reset_mid_transfer(Kind::Tgtd);
}

#[test]
fn istgt_tcp_reset_mid_transfer() {
    reset_mid_transfer(Kind::Istgt);
}

#[test]
fn lio_tcp_reset_mid_transfer() {
    reset_mid_transfer(Kind::Lio);
}

// ---- the scripted misbehaving target ----

const FAKE_SIZE: usize = 4 << 20;

fn fake_config(t: &FakeTarget) -> DiskConfig {
    let mut cfg = DiskConfig::new(t.addr(), t.iqn(), 0, INITIATOR);
    cfg.digests = true;
    cfg.timeouts.nop_interval = Duration::from_secs(1);
    cfg.timeouts.nop_timeout = Duration::from_secs(2);
    cfg.io_timeout = Duration::from_secs(60);
    cfg
}

/// Runs one read (or write) against a target that misbehaves once on it, then checks the outcome:
/// the command either completed with exactly the right bytes (after a reconnect) or failed with
/// an error; no poison byte ever reached a buffer; the initiator broke no rule; and the session
/// still works afterwards.
fn scripted(fault: Fault, write: bool) {
    let t = FakeTarget::start(FakeConfig {
        max_recv_dsl: 8192,
        ..FakeConfig::new(FAKE_SIZE, fault)
    })
    .unwrap();
    let disk = HostDisk::open(fake_config(&t)).expect("login to the scripted target");
    let lba = 64u64;
    let blocks = 64u32; // 32 KiB: several Data-In PDUs at the target's 8 KiB
    let len = blocks as usize * BLOCK;
    let off = lba as usize * BLOCK;
    let outcome = if write {
        let data = vec![0x3c; len];
        disk.write(lba, &data).map(|()| data)
    } else {
        disk.read(lba, blocks)
    };
    let stats = t.stats();
    assert_eq!(
        stats.faults_fired, 1,
        "{fault:?} was not triggered: {stats:?}"
    );
    match &outcome {
        Ok(bytes) if write => {
            assert_eq!(
                &t.disk(off, len),
                bytes,
                "{fault:?}: write stored wrong bytes"
            )
        }
        Ok(bytes) => {
            assert!(
                !bytes.contains(&POISON),
                "{fault:?}: poison reached the buffer"
            );
            let want: Vec<u8> = (off..off + len).map(pattern).collect();
            assert!(bytes == &want, "{fault:?}: read returned wrong bytes");
        }
        Err(e) => eprintln!("{fault:?}: clean error: {e}"),
    }
    // Whatever happened, the session is usable: a fresh read of other blocks is right.
    let again = disk.read(512, 8).expect("session usable after the fault");
    let want: Vec<u8> = (512 * BLOCK..520 * BLOCK).map(pattern).collect();
    assert_eq!(again, want, "{fault:?}: read after the fault");
    let stats = t.stats();
    if outcome.is_ok() && fault != Fault::WrongItt {
        assert!(
            stats.logins >= 2,
            "{fault:?} should have cost a reconnect: {stats:?}"
        );
    }
    // The orderly end breaks no rule either.
    disk.close().expect("logout");
    let stats = t.stats();
    assert!(
        stats.violations.is_empty(),
        "{fault:?}: {:?}",
        stats.violations
    );
}

/// Every answer's last 20 bytes come 5 ms after the rest, so the last header of most answers
/// arrives in two parts: reads and writes still complete with the right bytes and without a
/// reconnect (a reader that waited for more than the missing bytes, or took a short read for
/// "nothing more is coming", would stall until the keepalive gave up on the connection).
#[test]
fn headers_that_arrive_in_two_parts() {
    let t = FakeTarget::start(FakeConfig {
        max_recv_dsl: 8192,
        ..FakeConfig::new(FAKE_SIZE, Fault::None)
    })
    .unwrap();
    t.set_dribble(true);
    let disk = HostDisk::open(fake_config(&t)).expect("login to the scripted target");
    for i in 0..16u64 {
        let lba = 64 + i * 16;
        let data = vec![i as u8 ^ 0x5a; 16 * BLOCK];
        disk.write(lba, &data).expect("write");
        assert_eq!(disk.read(lba, 16).expect("read"), data, "round {i}");
        assert_eq!(disk.read(lba + 1024, 1).expect("read").len(), BLOCK);
    }
    let stats = t.stats();
    assert!(
        t.dribbled() >= 48,
        "only {} answers were split",
        t.dribbled()
    );
    assert_eq!(stats.logins, 1, "a reconnect: {stats:?}");
    disk.close().expect("logout");
    assert!(
        t.stats().violations.is_empty(),
        "{:?}",
        t.stats().violations
    );
}

#[test]
fn scripted_wrong_itt() {
    scripted(Fault::WrongItt, false);
}

#[test]
fn scripted_data_in_beyond_the_buffer() {
    scripted(Fault::DataInBeyondBuffer, false);
}

#[test]
fn scripted_data_in_with_an_offset_gap() {
    scripted(Fault::DataInOffsetGap, false);
}

#[test]
fn scripted_oversized_data_segment() {
    scripted(Fault::OversizedSegment, false);
}

#[test]
fn scripted_bad_data_digest() {
    scripted(Fault::BadDataDigest, false);
}

#[test]
fn scripted_bad_header_digest() {
    scripted(Fault::BadHeaderDigest, false);
}

#[test]
fn scripted_sense_length_too_large() {
    scripted(Fault::SenseTooLong, false);
}

#[test]
fn scripted_r2t_beyond_the_transfer() {
    scripted(Fault::R2tBeyondTransfer, true);
}

#[test]
fn scripted_reset_mid_transfer() {
    scripted(Fault::ResetMidTransfer, false);
}

#[test]
fn scripted_silent_target_is_dropped_by_the_nop_timeout() {
    scripted(Fault::Silence, false);
}

#[test]
fn scripted_target_that_keeps_misbehaving_gives_an_error_not_a_hang() {
    let t = FakeTarget::start(FakeConfig {
        times: u32::MAX,
        ..FakeConfig::new(FAKE_SIZE, Fault::DataInBeyondBuffer)
    })
    .unwrap();
    let mut cfg = fake_config(&t);
    cfg.command_timeout = Some(Duration::from_secs(10));
    cfg.io_timeout = Duration::from_secs(90);
    let disk = HostDisk::open(cfg).expect("login");
    let r = disk.read(0, 16);
    match r {
        Ok(b) => panic!(
            "a read that can never be served completed with {} bytes",
            b.len()
        ),
        Err(e) => eprintln!("persistent fault: clean error: {e}"),
    }
    assert!(t.stats().violations.is_empty());
}

#[test]
fn scripted_async_logout_request_is_honoured_and_io_goes_on() {
    scripted(Fault::AsyncLogoutRequest, false);
}

#[test]
fn scripted_async_drop_connection_replays_the_read() {
    scripted(Fault::AsyncDropConnection, false);
}

#[test]
fn scripted_rejected_command() {
    scripted(Fault::RejectCommand, false);
}

// ---- login redirects ----

fn redirected(permanent: bool) {
    let real = FakeTarget::start(FakeConfig::new(FAKE_SIZE, Fault::None)).unwrap();
    let front = FakeTarget::start(FakeConfig {
        redirect: Some(Redirect {
            on_port: None,
            to: real.addr(),
            permanent,
            times: 1,
        }),
        ..FakeConfig::new(FAKE_SIZE, Fault::None)
    })
    .unwrap();
    let disk = HostDisk::open(fake_config(&front)).expect("login through the redirect");
    let want: Vec<u8> = (0..16 * BLOCK).map(pattern).collect();
    assert_eq!(disk.read(0, 16).unwrap(), want);
    let (f, r) = (front.stats(), real.stats());
    assert_eq!((f.redirects, f.logins), (1, 0), "{f:?}");
    assert_eq!(r.logins, 1, "{r:?}");
}

#[test]
fn temporary_login_redirect_is_followed() {
    redirected(false);
}

#[test]
fn permanent_login_redirect_is_followed() {
    redirected(true);
}

#[test]
fn endless_redirects_end_in_a_clean_login_error() {
    // A target that redirects to itself forever: every attempt fails after the redirect limit.
    let t = FakeTarget::start(FakeConfig {
        redirect: Some(Redirect {
            on_port: None,
            to: "127.0.0.1:0".parse().unwrap(),
            permanent: false,
            times: u32::MAX,
        }),
        ..FakeConfig::new(FAKE_SIZE, Fault::None)
    })
    .unwrap();
    let mut cfg = fake_config(&t);
    cfg.login_attempts = Some(2);
    match HostDisk::open(cfg) {
        Ok(_) => panic!("a login that is only ever redirected succeeded"),
        Err(e) => eprintln!("endless redirect: clean error: {e}"),
    }
    assert!(t.stats().redirects >= 1);
}
