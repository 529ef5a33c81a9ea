// SPDX-License-Identifier: BSD-2-Clause
//! Driving isboot's host disk from tests: a session configuration for a harness target, data
//! that names its own position, and pipelined writes and reads with several commands in flight.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use isboot_core::chap::{ChapConfig, Credentials};
use isboot_core::secret::Secret;
use isboot_host::disk::{DiskConfig, HostDisk, Pending};

use crate::target::{Auth, Target};

/// An initiator name for tests (targets accept any).
pub const INITIATOR: &str = "iqn.2026-11.org.isboot:tests";

fn credentials(name: &str, secret: &str) -> Credentials {
    Credentials {
        name: name.to_string(),
        secret: Secret::new(secret.as_bytes()),
    }
}

/// A session configuration that logs in to `t` with its credentials, offering digests when the
/// target demands them.
pub fn config_for(t: &Target) -> DiskConfig {
    let mut cfg = DiskConfig::new(t.addr(), t.iqn(), t.lun() as u16, INITIATOR);
    cfg.chap = match &t.config().auth {
        Auth::None => None,
        Auth::Chap { user, secret } => Some(ChapConfig::new(credentials(user, secret), None)),
        Auth::Mutual {
            user,
            secret,
            target_user,
            target_secret,
        } => Some(ChapConfig::new(
            credentials(user, secret),
            Some(credentials(target_user, target_secret)),
        )),
    };
    cfg.digests = t.config().digests;
    cfg
}

/// Opens a session to `t` as [`config_for`] does, connecting through `via` when given (a
/// relay), and panics with the target's log when that fails.
pub fn open(t: &Target, via: Option<SocketAddr>, tweak: impl FnOnce(&mut DiskConfig)) -> HostDisk {
    let mut cfg = config_for(t);
    cfg.connect_via = via;
    tweak(&mut cfg);
    match HostDisk::open(cfg) {
        Ok(d) => d,
        Err(e) => panic!(
            "{} login failed: {e}\n--- target log ---\n{}",
            t.kind().name(),
            t.log()
        ),
    }
}

/// Deterministic data for the block at `lba` in generation `gen`: every 8 bytes carry the
/// generation and their own byte position, so a misplaced, stale or torn block is recognised.
pub fn block_data(gen: u32, lba: u64, blocks: u32, block_len: u32) -> Vec<u8> {
    let start = lba * u64::from(block_len);
    let len = u64::from(blocks) * u64::from(block_len);
    let mut v = Vec::with_capacity(len as usize);
    let mut pos = start;
    while pos < start + len {
        let word = (pos << 8) ^ u64::from(gen) ^ 0xa5a5_0000_0000_0000;
        v.extend_from_slice(&word.to_le_bytes());
        pos += 8;
    }
    v.truncate(len as usize);
    v
}

/// Where the first difference between `got` and `want` is, for a readable assertion.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    if got.len() != want.len() {
        return Some(got.len().min(want.len()));
    }
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// Asserts equality of two large buffers without printing megabytes.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if let Some(at) = first_difference(got, want) {
        let end = (at + 16).min(got.len()).min(want.len());
        panic!(
            "{what}: first difference at byte {at} (got {} bytes, want {}): got {:02x?}, want {:02x?}",
            got.len(),
            want.len(),
            &got[at.min(got.len())..end.max(at.min(got.len()))],
            &want[at.min(want.len())..end.max(at.min(want.len()))],
        );
    }
}

/// Writes `blocks` blocks from `lba` in commands of `per_cmd` blocks with up to `depth` in
/// flight, data from [`block_data`] with generation `gen`.
pub fn write_range(
    disk: &HostDisk,
    gen: u32,
    lba: u64,
    blocks: u64,
    per_cmd: u32,
    depth: usize,
) -> Result<(), String> {
    let bl = disk.block_len();
    let mut inflight: VecDeque<(u64, Pending)> = VecDeque::new();
    let mut next = lba;
    while next < lba + blocks || !inflight.is_empty() {
        while inflight.len() < depth && next < lba + blocks {
            let n = per_cmd.min((lba + blocks - next) as u32);
            let p = disk
                .submit_write(next, block_data(gen, next, n, bl))
                .map_err(|e| format!("submitting WRITE at {next}: {e}"))?;
            inflight.push_back((next, p));
            next += u64::from(n);
        }
        if let Some((at, p)) = inflight.pop_front() {
            p.wait().map_err(|e| format!("WRITE at {at}: {e}"))?;
        }
    }
    Ok(())
}

/// Reads `blocks` blocks from `lba` as [`write_range`] wrote them and checks every byte.
pub fn verify_range(
    disk: &HostDisk,
    gen: u32,
    lba: u64,
    blocks: u64,
    per_cmd: u32,
    depth: usize,
) -> Result<(), String> {
    let bl = disk.block_len();
    let mut inflight: VecDeque<(u64, u32, Pending)> = VecDeque::new();
    let mut next = lba;
    while next < lba + blocks || !inflight.is_empty() {
        while inflight.len() < depth && next < lba + blocks {
            let n = per_cmd.min((lba + blocks - next) as u32);
            let p = disk
                .submit_read(next, n)
                .map_err(|e| format!("submitting READ at {next}: {e}"))?;
            inflight.push_back((next, n, p));
            next += u64::from(n);
        }
        if let Some((at, n, p)) = inflight.pop_front() {
            let got = p.wait().map_err(|e| format!("READ at {at}: {e}"))?;
            let want = block_data(gen, at, n, bl);
            if let Some(d) = first_difference(&got, &want) {
                return Err(format!(
                    "READ at LBA {at} ({n} blocks): wrong byte at offset {d} (got {} bytes)",
                    got.len()
                ));
            }
        }
    }
    Ok(())
}

/// Checks the target's backing file directly: what the target stored, independent of our read
/// path.
pub fn verify_backing_file(t: &Target, gen: u32, lba: u64, blocks: u64, block_len: u32) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(t.disk_path()).expect("backing file");
    f.seek(SeekFrom::Start(lba * u64::from(block_len)))
        .expect("seek");
    let mut got = vec![0u8; (blocks * u64::from(block_len)) as usize];
    f.read_exact(&mut got).expect("read backing file");
    let want = block_data(gen, lba, blocks as u32, block_len);
    assert_same(&got, &want, &format!("{} backing file", t.kind().name()));
}

/// A generous bound for one test's I/O on a loaded two-core machine.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);
