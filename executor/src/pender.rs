// SPDX-License-Identifier: BSD-2-Clause
//! The platform's one hook.

use alloc::sync::Arc;

/// Makes the platform call `Executor::poll` soon.
///
/// `pend` may be called from any context: a socket upcall with the socket-buffer lock held, a callout,
/// CAM's action routine with the SIM lock held, another thread, or the polling thread itself. It must be
/// cheap, must not block, and must never call `poll` (or anything that polls) itself: it only arranges for
/// the platform's polling context to run, where the platform calls `Executor::on_tick(now)`, then
/// `Executor::poll()` (again soon if it returns `true`), then arms its one timer for
/// `Executor::next_deadline()`. Pends are merged freely: the executor pends when its run queue goes from
/// empty to non-empty, and when a newly armed timer becomes the earliest while no `poll` is running. In
/// the kernel this is `taskqueue_enqueue`, which already merges repeated enqueues of a pending task.
pub trait Pender: Send + Sync + 'static {
    /// Arrange for `poll` to run soon.
    fn pend(&self);
}

impl<T: Pender> Pender for Arc<T> {
    fn pend(&self) {
        (**self).pend();
    }
}

impl<T: Pender> Pender for &'static T {
    fn pend(&self) {
        (**self).pend();
    }
}
