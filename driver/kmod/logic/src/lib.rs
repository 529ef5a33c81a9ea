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

/// The crates that run in the kernel (`isboot-core`, `isboot-kmod`, this one) each declare the
/// no-panic lints at their root: a lint attribute cannot be shared between crates (and Cargo's
/// `[lints]` cannot exempt tests), so the one list is kept the same by this test instead.
#[cfg(test)]
mod lint_block {
    const CORE: &str = include_str!("../../../core/src/lib.rs");
    const KMOD: &str = include_str!("../../src/lib.rs");
    const LOGIC: &str = include_str!("lib.rs");

    /// The `#![cfg_attr(not(test), deny(...))]` block of a crate root.
    fn block(src: &str) -> Option<&str> {
        let start = src.find("#![cfg_attr(\n    not(test),\n    deny(")?;
        let len = src.get(start..)?.find("\n)]")?;
        src.get(start..start + len)
    }

    #[test]
    fn the_kernel_crates_deny_the_same_lints() {
        let core = block(CORE).expect("isboot-core declares the no-panic lints");
        for lint in [
            "clippy::unwrap_used",
            "clippy::expect_used",
            "clippy::indexing_slicing",
            "clippy::arithmetic_side_effects",
            "clippy::panic",
            "clippy::unreachable",
        ] {
            assert!(core.contains(lint), "isboot-core does not deny {lint}");
        }
        assert_eq!(block(KMOD), Some(core), "isboot-kmod's lint block differs");
        assert_eq!(
            block(LOGIC),
            Some(core),
            "isboot-kmod-logic's lint block differs"
        );
    }
}
