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
#[cfg(feature = "test-runtime")]
pub use test_runtime::{TestExecutor, TestRuntime, ThreadPender};

/// The host's monotonic clock: nanoseconds since the first call in this process.
pub fn now() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let nanos = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
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
