// SPDX-License-Identifier: BSD-2-Clause
//! The `std` platform: a lock ([`StdLock`]), the host clock ([`now`]) and [`block_on`]; with
//! feature `test-runtime`, a driver thread that is both pender and timer, for tests
//! (`TestRuntime`).
//!
//! Socket readiness is the platform's business, not the executor's: `isboot-host` (driver/host) runs
//! an epoll reactor whose events ring [`Doorbell`](crate::Doorbell)s, as the kernel's socket upcalls do.

use alloc::sync::Arc;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::OnceLock;
use std::task::Wake;
use std::thread::{self, Thread};

pub use crate::raw::std_lock::StdLock;
use crate::Instant;

#[cfg(feature = "test-runtime")]
mod test_runtime;

/// A counting global allocator for tests, that can also refuse one allocation (as malloc(9)
/// with `M_NOWAIT` does when memory is short). A test binary installs it with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`, then brackets what it checks
/// with [`counting_alloc::start`] and [`counting_alloc::stop`]. Threads that are not under test (a target serving
/// the initiator) leave themselves out with [`counting_alloc::exempt_thread`], or a piece of code with
/// [`counting_alloc::exempt`].
#[cfg(feature = "test-runtime")]
pub mod counting_alloc {
    pub use crate::raw::counting::CountingAlloc;

    /// Starts counting allocations from zero (of every thread not exempt); with `fail_at`,
    /// the allocation with that number (1-based) returns null.
    pub fn start(fail_at: Option<u64>) {
        crate::raw::counting::start(fail_at)
    }

    /// Stops counting; returns how many allocations were counted.
    pub fn stop() -> u64 {
        crate::raw::counting::stop()
    }

    /// Allocations counted so far.
    pub fn count() -> u64 {
        crate::raw::counting::count()
    }

    /// The size of the allocation that was refused, if it was.
    pub fn refused() -> Option<u64> {
        crate::raw::counting::refused()
    }

    /// Runs `f` without counting this thread's allocations.
    pub fn exempt<R>(f: impl FnOnce() -> R) -> R {
        crate::raw::counting::exempt(f)
    }

    /// Stops counting this thread's allocations for good.
    pub fn exempt_thread() {
        crate::raw::counting::exempt_thread()
    }
}
#[cfg(feature = "test-runtime")]
pub use test_runtime::{TestExecutor, TestRuntime, ThreadPender};

/// The host's monotonic clock: nanoseconds since the first call in this process.
pub fn now() -> Instant {
    at(std::time::Instant::now())
}

/// [`now`] as it read at `t`, for a caller that has just read the std clock and need not read
/// it twice.
pub fn at(t: std::time::Instant) -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| t);
    let nanos = u64::try_from(t.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
    Instant::from_nanos(nanos)
}

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Polls `future` on the calling thread, parking between wakes, until it completes. Independent of any
/// executor: use it to wait for a [`JoinHandle`](crate::JoinHandle) or to drive a future directly.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        // `park` may return spuriously; the flag says whether a wake really happened.
        while !state.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
