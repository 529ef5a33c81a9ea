// SPDX-License-Identifier: BSD-2-Clause
//! The host's [`RawLock`]: a `std::sync::Mutex<()>`.

use super::mutex::RawLock;

/// [`RawLock`] over `std::sync::Mutex`, for tests and userland. Poisoning is ignored: the executor's
/// critical sections leave their data consistent even if a closure panicked half-way (they only push,
/// pop and swap).
#[derive(Debug, Default)]
pub struct StdLock(std::sync::Mutex<()>);

// SAFETY: `std::sync::Mutex` gives mutual exclusion across threads with acquire/release ordering, and a
// re-entrant `lock` from the holding thread deadlocks or panics, never returning a second guard.
unsafe impl RawLock for StdLock {
    fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f()
    }
}
