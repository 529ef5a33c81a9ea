// SPDX-License-Identifier: BSD-2-Clause
//! A doorbell: an upcall rings it, one task waits for it.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// A level-triggered signal that any context can set without locks or allocation, waking the one task
/// that waits on it.
///
/// Rings coalesce: several rings before the task looks count as one, so the waiting side treats a ring as
/// "something may have changed, look again" (read the socket until it would block, then wait again). It
/// uses two atomics (a flag and an [`AtomicWaker`]); ringing wakes the waiter through its waker, which in
/// turn schedules the task and pends the executor.
///
/// Only one task should wait at a time: a second waiter replaces the first one's waker.
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: AtomicBool,
    waker: AtomicWaker,
}

impl Doorbell {
    /// A doorbell that has not been rung.
    pub const fn new() -> Self {
        Doorbell {
            rung: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Sets the doorbell and wakes the waiting task, if any. Safe in any context: no lock, no allocation;
    /// the only call out is the waiter's `Waker::wake` (which may free a finished task's memory, so the
    /// context must allow `free(9)`: sleep mutexes held are fine, spin mutexes are not).
    pub fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Clears the doorbell, returning whether it was rung.
    pub fn take(&self) -> bool {
        self.rung.swap(false, Ordering::AcqRel)
    }

    /// Whether the doorbell is rung, without clearing it.
    pub fn is_rung(&self) -> bool {
        self.rung.load(Ordering::Acquire)
    }

    /// Waits until the doorbell is rung, then clears it. Completes at once if it was rung before.
    pub fn wait(&self) -> Wait<'_> {
        Wait { bell: self }
    }

    /// The poll form of [`Doorbell::wait`], for hand-written `poll_*` functions (a transport's
    /// `poll_read`): `Ready` and cleared if rung, else `cx`'s waker is registered for the next ring.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A ring between the first check and the registration woke nobody: look again.
        if self.take() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Future returned by [`Doorbell::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    bell: &'a Doorbell,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.bell.poll_wait(cx)
    }
}
