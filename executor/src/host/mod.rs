// SPDX-License-Identifier: BSD-2-Clause
//! The `std` platform: a lock, a driver thread that is both pender and timer, and `block_on`.
//!
//! [`Runtime`] owns an [`Executor`] and one driver thread. Pending notifies a condition variable; the
//! thread then calls `on_tick(now)` and `poll()` until nothing is ready, and sleeps on the condition
//! variable until the next pend or [`Executor::next_deadline`], whichever is first. That is exactly the
//! loop a kernel taskqueue handler plus one callout performs, so host tests exercise the same contract.
//!
//! Socket readiness is the platform's business, not the executor's: `isboot-host` (driver/host) runs
//! an epoll reactor whose events ring [`Doorbell`](crate::Doorbell)s, as the kernel's socket upcalls do.

use alloc::sync::Arc;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::{Condvar, Mutex as StdMutex, OnceLock, PoisonError};
use std::task::Wake;
use std::thread::{self, Thread};

pub use crate::raw::std_lock::StdLock;
use crate::{Config, Executor, Instant, JoinHandle, Pender, Timer};

/// The host's monotonic clock: nanoseconds since the first call in this process.
pub fn now() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let nanos = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Instant::from_nanos(nanos)
}

#[derive(Debug, Default)]
struct Signal {
    pended: bool,
    stop: bool,
}

/// Pender of a [`Runtime`]: wakes the driver thread.
#[derive(Debug, Default)]
pub struct ThreadPender {
    state: StdMutex<Signal>,
    cond: Condvar,
}

impl Pender for ThreadPender {
    fn pend(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.pended = true;
        self.cond.notify_one();
    }
}

impl ThreadPender {
    /// Waits until pended, stopped, or the clock reaches `deadline`. Returns false when stopped.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.stop {
                return false;
            }
            if s.pended {
                s.pended = false;
                return true;
            }
            match deadline {
                None => s = self.cond.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(now());
                    if left.is_zero() {
                        return true;
                    }
                    s = self
                        .cond
                        .wait_timeout(s, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
    }

    fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.stop = true;
        self.cond.notify_one();
    }
}

/// The executor type a [`Runtime`] drives.
pub type HostExecutor = Executor<StdLock, Arc<ThreadPender>>;

/// An executor polled by its own driver thread, with timers on the host clock ([`now`]).
///
/// Dropping it stops and joins the thread, then drops the executor; like the executor, it cannot be
/// dropped while a [`JoinHandle`] lives. A task that panics brings the driver thread down with it, and
/// the next `Runtime` drop reports that panic.
#[derive(Debug)]
pub struct Runtime {
    executor: Arc<HostExecutor>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// Starts the driver thread.
    pub fn new() -> Self {
        let pender = Arc::new(ThreadPender::default());
        let executor = Arc::new(Executor::with_config(
            pender,
            Config {
                clock: Some(now),
                ..Config::default()
            },
        ));
        let driver = executor.clone();
        let thread = thread::Builder::new()
            .name("isboot-executor".into())
            .spawn(move || drive(&driver))
            .unwrap_or_else(|e| panic!("cannot start the executor thread: {e}"));
        Runtime {
            executor,
            thread: Some(thread),
        }
    }

    /// Starts `future` on the driver thread.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(future)
    }

    /// A handle to the timer queue.
    pub fn timer(&self) -> Timer {
        self.executor.timer()
    }

    /// The executor, e.g. for `task_count`.
    pub fn executor(&self) -> &HostExecutor {
        &self.executor
    }

    /// Runs `future` on the calling thread until it completes (see [`block_on`]); spawned tasks keep
    /// running on the driver thread meanwhile.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(future)
    }
}

fn drive(executor: &HostExecutor) {
    loop {
        executor.on_tick(now());
        if executor.poll() {
            if executor.pender().stopped() {
                return;
            }
            continue;
        }
        if !executor.pender().wait(executor.next_deadline()) {
            return;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.executor.pender().stop();
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                if !thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
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
/// executor: use it to wait for a [`JoinHandle`] or to drive a future directly.
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
