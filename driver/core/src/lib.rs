// SPDX-License-Identifier: BSD-2-Clause
//! The isboot protocol core: iBFT, iSCSI PDUs, text negotiation, CHAP, login, session and the
//! SCSI request model.
//!
//! `no_std` (with `alloc`), free of `unsafe`, and never panics on bytes that come from firmware or
//! from the network: every parser returns an error naming what was wrong. The same code runs in the
//! FreeBSD kernel module and in userspace on Linux; it does not know which.
//!
//! # No panics
//! The lints below hold for every module outside tests, so that a later edit cannot bring a panic
//! on target or firmware input back unnoticed: no `unwrap`/`expect`, no indexing or slicing that
//! can go out of bounds, no unchecked arithmetic, no `panic!`/`unreachable!`. A module that writes
//! into buffers it sized itself may `expect` an exception with its reason (`ibft::build`).
//!
//! # No infallible allocation on the network path
//! The modules network input reaches in the full feature phase (`session`, `scsi`, `slab`,
//! `port`) deny the collection methods that allocate infallibly (`clippy.toml`): in the kernel
//! a failed allocation there would be a panic. They reserve fallibly when a session starts or
//! logs in ([`mem`]) and fill only that room afterwards; the exceptions say why at the call
//! site. (`pdu` parses without allocating; `login`, `text` and `chap` still build their
//! exchanges with infallible collections.)
#![no_std]
#![forbid(unsafe_code)]
// The kernel module's build (driver/kmod/build-rust.sh, always a nightly-enabled rustc) sets
// `isboot_kernel`: the generic session code it instantiates is compiled in the module's crate,
// at its opt-level 2, so the cold parts of it (login, recovery, shutdown, control PDUs) ask
// for size themselves. Host builds (stable) never see the attribute.
#![cfg_attr(isboot_kernel, feature(optimize_attribute))]
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
// Denied module by module (see above and clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

extern crate alloc;
#[cfg(any(test, feature = "testing"))]
extern crate std;

pub mod bootcfg;
pub mod chap;
pub mod escape;
pub mod ibft;
pub mod ipfmt;
pub mod iscsi_name;
pub mod login;
pub mod lun;
pub mod mem;
pub mod pdu;
pub mod port;
pub mod scsi;
pub mod secret;
pub mod session;
pub mod slab;
pub mod sn;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
