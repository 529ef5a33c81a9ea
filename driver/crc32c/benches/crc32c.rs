// SPDX-License-Identifier: BSD-2-Clause
//! CRC32C throughput of each path: `cargo bench -p isboot-crc32c`.
//!
//! Compares the SSE4.2 path (three interleaved chains), portable slice-by-8, and the byte-table
//! algorithm isboot and libiscsi use, on buffer sizes typical of iSCSI (a 512-byte sector, an
//! 8 KiB segment, 64 KiB and 1 MiB bursts). Prints GB/s (10^9 bytes per second); the best of
//! several runs, since this machine is shared.

use std::hint::black_box;
use std::time::{Duration, Instant};

use isboot_crc32c::paths;

const SIZES: [usize; 4] = [512, 8 << 10, 64 << 10, 1 << 20];
/// Bytes hashed per timed run, so that each run takes a few milliseconds or more.
const BYTES_PER_RUN: usize = 64 << 20;
const RUNS: usize = 5;

fn measure(f: &dyn Fn(u32, &[u8]) -> u32, buf: &[u8]) -> f64 {
    let iters = (BYTES_PER_RUN / buf.len()).max(1);
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut crc = 0;
        for _ in 0..iters {
            crc = f(black_box(crc), black_box(buf));
        }
        black_box(crc);
        best = best.min(start.elapsed());
    }
    (iters * buf.len()) as f64 / best.as_secs_f64() / 1e9
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("crc32c bench: run with `cargo bench -p isboot-crc32c`");
        return;
    }
    let buf: Vec<u8> = (0..1usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hw = paths::hardware_available();
    println!("CRC32C throughput, GB/s (best of {RUNS}); SSE4.2 available: {hw}");
    println!(
        "{:>8} {:>10} {:>10} {:>10}",
        "size", "sse4.2", "slice-by-8", "byte-table"
    );
    for size in SIZES {
        let data = &buf[..size];
        let hw_rate = if hw {
            let f = |c: u32, d: &[u8]| paths::update_hardware(c, d).unwrap_or(c);
            format!("{:10.2}", measure(&f, data))
        } else {
            format!("{:>10}", "-")
        };
        let slice8 = measure(&paths::update_slice8, data);
        let bytewise = measure(&paths::update_bytewise, data);
        println!("{size:>8} {hw_rate} {slice8:10.2} {bytewise:10.2}");
    }
}
