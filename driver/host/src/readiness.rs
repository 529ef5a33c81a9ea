// SPDX-License-Identifier: BSD-2-Clause
//! Socket readiness between a reactor (a connection's own thread in `net`, or the runtime's
//! epoll loop in `runtime`) and the task that waits for it: both sides use [`Wakers`], so neither
//! module needs the other's internals.

use core::task::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Wakers waiting for readiness, filled by the task and emptied by the reactor, and a count of
/// readiness events per direction. The socket is registered edge-triggered, so after a
/// `WouldBlock` it cannot become ready without an event: while the count has not moved, another
/// attempt would fail too and is skipped (no system call for a read that must fail).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    pub(crate) read: Mutex<Option<Waker>>,
    pub(crate) write: Mutex<Option<Waker>>,
    pub(crate) read_events: AtomicU64,
    pub(crate) write_events: AtomicU64,
    pub(crate) stop: AtomicBool,
}

impl Wakers {
    /// Wakes the task waiting for what became ready.
    pub(crate) fn ready(&self, read: bool, write: bool) {
        if read {
            self.read_events.fetch_add(1, Ordering::SeqCst);
            wake(&self.read);
        }
        if write {
            self.write_events.fetch_add(1, Ordering::SeqCst);
            wake(&self.write);
        }
    }
}

/// Wakes the task parked in `slot`, if any.
pub(crate) fn wake(slot: &Mutex<Option<Waker>>) {
    let w = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(w) = w {
        w.wake();
    }
}
