// SPDX-License-Identifier: BSD-2-Clause
//! Harness for integration tests against real iSCSI targets started by the tests.
//!
//! Everything here is built so that tests can run in parallel on a loaded machine: every target
//! gets a free loopback port (and tgtd its own control port), a private temporary directory, and
//! is torn down by `Drop` also when the test fails. Every wait is bounded in time.

#![forbid(unsafe_code)]

pub mod fake;
pub mod io;
pub mod libiscsi;
pub mod net;
pub mod process;
pub mod relay;
pub mod target;
pub mod tmp;
pub mod wait;
