// SPDX-License-Identifier: BSD-2-Clause
//! isboot.ko: the FreeBSD kernel module that boots from the iSCSI disk the firmware's iBFT names.
//!
//! This crate is the only place with kernel `unsafe`: thin wrappers over the KPIs in
//! [`bindings`], each block justified by a `// SAFETY:` comment. Decisions live in safe code:
//! the protocol in `isboot-core`, the glue's pure logic in `isboot-kmod-logic`.
//!
//! Module core (load/unload, allocator, panic, logging, sysctls, finding the iBFT, the loader's
//! environment): [`module`], [`kalloc`], [`panic`], [`log`], [`sysctl`], [`ibft`], [`kenv`].
//! Runtime glue (NIC, sockets, executor hosting, CAM, boot sequence):
//! [`net`], [`sock`], [`exec`], [`cam`], [`boot`]; the digests' CRC32C, [`crc`].
//!
//! A panic here is a kernel panic: outside tests the same lints as in `isboot-core` forbid
//! `unwrap`/`expect`, unchecked indexing and arithmetic, and `panic!`/`unreachable!`
//! (compile-time `assert!`s in `const` blocks are checked by the compiler, not at run time).
#![no_std]
// `#[optimize(size)]` marks the cold glue (load, unload and shutdown, the iBFT, kenv, sysctls,
// NIC configuration, bring-up and teardown, log lines; in cam.rs, exec.rs and sock.rs the SIM's
// attach/detach, the taskqueue's start/stop, connecting and closing): run once per boot, per
// connection or per event, built for size. Everything else, the I/O path (CAM action and
// completion, socket upcalls, reads and writes, the executor's polling, session instances),
// keeps the release profile's opt-level 2. A cold function called once from I/O-path or
// generic code is `#[inline(never)]` where it would otherwise be inlined there, and built for
// speed with its caller. The module is only ever built
// with build-rust.sh, which runs a nightly-enabled rustc (RUSTC_BOOTSTRAP) for its target JSON
// and core/alloc anyway. Closures and async blocks do not inherit the attribute: they stay at 2.
#![feature(optimize_attribute)]
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

pub(crate) use isboot_bindings as bindings;

pub mod log;

pub mod ibft;
pub mod kalloc;
pub mod kenv;
pub mod module;
pub mod panic;
pub mod sysctl;

pub mod boot;
pub mod cam;
pub mod crc;
pub mod exec;
pub mod net;
pub mod sock;
