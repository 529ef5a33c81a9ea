// SPDX-License-Identifier: BSD-2-Clause
//! The platform lock and the one place that turns it into `&mut T`.

use core::cell::UnsafeCell;
use core::fmt;

/// A lock the platform supplies: a spin mutex in the kernel, `host::StdLock` on a host.
///
/// The executor takes it for a handful of instructions at a time (push or pop a run-queue entry, link a
/// timer, push a channel item). It never runs foreign code while holding it: no waker clone, wake or
/// drop, no pender call, no allocation or `free`, no future poll or drop. So the lock may be a spin lock
/// that forbids sleeping and taking sleep mutexes (FreeBSD `MTX_SPIN`).
///
/// Values are moved after [`Default::default`] builds them: an implementation whose lock word must not
/// move (FreeBSD's `struct mtx` after `mtx_init`) keeps it behind a pointer.
///
/// # Safety
///
/// `lock(f)` must run `f` with mutual exclusion against every other `lock` call on the same value, from
/// any thread or context, with the usual acquire/release ordering around it. A nested `lock` on the same
/// value from inside `f` must never run its closure (deadlocking or panicking is acceptable): a re-entrant
/// lock would hand out two `&mut T` to the same data through [`Mutex`].
pub unsafe trait RawLock: Default + Send + Sync {
    /// Runs `f` while holding the lock.
    fn lock<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// Data guarded by a platform [`RawLock`]; access is by closure, so a guard can never escape.
///
/// Keep the closures short and never wake, pend or drop a `Waker` inside them: return what must be woken
/// or dropped and do it after the lock is released.
pub struct Mutex<L, T> {
    raw: L,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through `lock`, which `RawLock` guarantees to be exclusive across
// threads, so sharing the mutex shares at most one `&mut T` at a time; `T: Send` is required because that
// `&mut T` may be used on any thread.
unsafe impl<L: RawLock, T: Send> Sync for Mutex<L, T> {}

impl<L: RawLock, T> Mutex<L, T> {
    /// Wraps `data` with a fresh lock.
    pub fn new(data: T) -> Self {
        Mutex {
            raw: L::default(),
            data: UnsafeCell::new(data),
        }
    }

    /// Runs `f` with exclusive access to the data.
    pub fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.raw.lock(|| {
            // SAFETY: `RawLock`'s contract makes this closure the only one running for `self.raw`, and a
            // nested `lock` on the same mutex cannot reach this line, so this is the only live reference
            // to the data until `f` returns.
            let data = unsafe { &mut *self.data.get() };
            f(data)
        })
    }

    /// Exclusive access without locking, proven by `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<L, T> fmt::Debug for Mutex<L, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mutex { .. }")
    }
}
