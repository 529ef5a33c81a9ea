// SPDX-License-Identifier: BSD-2-Clause
//! Logic of the FreeBSD kernel glue that needs no kernel: CAM CCB translation and completion
//! mapping, LUN numbering, `sbintime_t` arithmetic, the boot NIC's address plan and the console's
//! limit on repeated lines.
//!
//! The kernel crate (`driver/kmod`) does the `unsafe` reads and writes of kernel structures and
//! calls into this crate for every decision, so the decisions are tested with `cargo test` on the
//! build host.
//!
//! Everything here runs in the kernel, where a panic is a kernel panic: outside tests the same
//! lints as in `isboot-core` forbid `unwrap`/`expect`, unchecked indexing and arithmetic, and
//! `panic!`/`unreachable!`.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic,
        clippy::unreachable
    )
)]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod bridge;
pub mod cam;
pub mod errno;
pub mod linebuf;
pub mod lun;
pub mod netplan;
pub mod ratelimit;
pub mod slots;
pub mod sysfmt;
pub mod time;
