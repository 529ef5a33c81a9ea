// SPDX-License-Identifier: BSD-2-Clause
//! The host's [`RawLock`]: a spin lock that yields the CPU while it waits.
//!
//! The executor holds its lock for a handful of instructions (see [`RawLock`]) and never blocks
//! or allocates inside it, which is what the kernel's spin mutex relies on too. A
//! `std::sync::Mutex` costs more per acquisition than such a section needs: the poison check
//! reads the global panic count on lock and on unlock, a dozen times per small command. A panic
//! cannot leave the data torn here (the sections only push, pop and swap), so there is nothing
//! for poisoning to report.

use core::sync::atomic::{AtomicBool, Ordering};

use super::mutex::RawLock;

/// Spins this many times before each yield of the CPU: a holder that runs on another CPU leaves
/// within that; one that was preempted needs this thread to give way.
const SPINS: u32 = 64;

/// [`RawLock`] for tests and userland: one atomic flag, taken by compare-and-swap; a waiter
/// spins briefly, then yields its CPU (`sched_yield`) until the holder lets go, so a holder
/// preempted on a shared CPU gets to run.
#[derive(Debug, Default)]
pub struct StdLock(AtomicBool);

/// Releases the lock when the closure returns or unwinds.
struct Held<'a>(&'a AtomicBool);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl StdLock {
    #[cold]
    fn contended(&self) {
        loop {
            for _ in 0..SPINS {
                core::hint::spin_loop();
                if !self.0.load(Ordering::Relaxed)
                    && self
                        .0
                        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
            }
            std::thread::yield_now();
        }
    }
}

// SAFETY: the flag goes from false to true only by a compare-and-swap (Acquire), so one caller at
// a time holds it, and back only by `Held`'s drop (Release) after `f` returns or unwinds: the
// sections are mutually exclusive and ordered. A nested `lock` from inside `f` finds the flag set
// and spins forever, never running its closure.
unsafe impl RawLock for StdLock {
    fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
        if self
            .0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.contended();
        }
        let _held = Held(&self.0);
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    /// Threads that take the lock in turn never see each other's half-done update, and the
    /// lock is free again after a closure that panicked.
    #[test]
    fn sections_exclude_each_other_and_a_panic_releases_the_lock() {
        let lock = Arc::new(StdLock::default());
        let inside = Arc::new(core::sync::atomic::AtomicUsize::new(0));
        let rounds = if cfg!(miri) { 20 } else { 20_000 };
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        lock.lock(|| {
                            assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                            core::hint::spin_loop();
                            inside.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let l = lock.clone();
        assert!(
            std::thread::spawn(move || l.lock(|| panic!("inside the lock")))
                .join()
                .is_err()
        );
        assert_eq!(lock.lock(|| 7), 7);
    }
}
