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
mod wire;

use core::task::{Context, Poll};

use isboot_executor::Instant;

use crate::port::{NoLog, Transport};
use crate::scsi::DataBuf;
use crate::session::{rx::Rx, Disconnect, Engine};

/// A buffer in pieces, as a kernel buffer may come in pages: each `chunk` ends at its piece.
#[derive(Debug, Default)]
pub struct Pieces(pub alloc::vec::Vec<alloc::vec::Vec<u8>>);

impl DataBuf for Pieces {
    fn len(&self) -> usize {
        self.0.iter().map(alloc::vec::Vec::len).sum()
    }
    fn chunk(&self, mut offset: usize) -> &[u8] {
        for p in &self.0 {
            if offset < p.len() {
                return &p[offset..];
            }
            offset -= p.len();
        }
        &[]
    }
    fn chunk_mut(&mut self, mut offset: usize) -> &mut [u8] {
        for p in &mut self.0 {
            if offset < p.len() {
                return &mut p[offset..];
            }
            offset -= p.len();
        }
        &mut []
    }
}

/// The session's receive path on its own, for fuzzing it with a transport of the fuzzer's:
/// reads PDUs from `t` and hands them to `engine` as a running session does.
pub struct Receiver(Rx);

impl Receiver {
    pub fn new() -> Receiver {
        Receiver(Rx::try_new().expect("memory for the receive path"))
    }

    /// Starts over for a new connection.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Reads until a whole PDU went to `engine` (`Ready(Ok)`), the transport has nothing more
    /// (`Pending`) or the connection must end (`Ready(Err)`).
    pub fn poll<T: Transport, B: DataBuf>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        engine: &mut Engine<B>,
        now: Instant,
    ) -> Poll<Result<(), Disconnect>> {
        self.0.poll(cx, t, engine, now, None::<&NoLog>)
    }
}

impl core::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

pub use target::{
    inquiry_data, pattern, ConnectionEnd, FakeConfig, FakeConnection, FakeTarget, Fault, OnLogout,
    Redirect, Stats, BLOCK, POISON, WINDOW,
};
pub use wire::Wire;
