// SPDX-License-Identifier: BSD-2-Clause
//! Test support: builders for the PDUs a target sends ([`pdu`]) and one scripted fake iSCSI
//! target ([`FakeTarget`]), sans-IO (bytes in, bytes out), shared by the core's own tests, the
//! in-memory session tests and the socket-level harness of the `isboot-tests` crate.
//!
//! Built for the core's tests and with the `testing` feature; the kernel module never enables
//! it. It uses `std` (a mutex shared between a target's connections) and may panic: it is
//! test code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic,
    reason = "test support, never built into the kernel module: a broken test setup panics"
)]

pub mod pdu;
mod target;

pub use target::{
    inquiry_data, pattern, ConnectionEnd, FakeConfig, FakeConnection, FakeTarget, Fault, OnLogout,
    Redirect, Stats, BLOCK, POISON, WINDOW,
};
