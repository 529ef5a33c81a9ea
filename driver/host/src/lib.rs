// SPDX-License-Identifier: BSD-2-Clause
//! The std platform for isboot's session on Linux: the same session futures as the kernel module,
//! run by the executor's host runtime over std TCP, with a small synchronous block-device API on
//! top. Tests and the userland tool (`isbootctl`) use it.
//!
//! - [`net`]: [`HostTransport`](net::HostTransport) and [`HostConnector`](net::HostConnector),
//!   the session's byte stream and connector;
//! - [`sys`]: [`OsRandom`](sys::OsRandom), [`StderrLog`](sys::StderrLog) and the one socket
//!   option std has no call for (the crate's only `unsafe`);
//! - [`runtime`]: [`HostRuntime`](runtime::HostRuntime), the executor's thread with socket
//!   readiness (epoll) built into its wait;
//! - [`disk`]: [`HostDisk`](disk::HostDisk), the synchronous block-device API.
#![deny(unsafe_code)]

pub mod disk;
pub mod net;
mod readiness;
pub mod runtime;
pub mod sys;
