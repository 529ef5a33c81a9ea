// SPDX-License-Identifier: BSD-2-Clause
//! A test runtime (feature `test-runtime`): [`TestRuntime`] owns an [`Executor`] and one driver
//! thread. Pending notifies a condition variable; the thread then calls `on_tick(now)` and
//! `poll()` until nothing is ready, and sleeps on the condition variable until the next pend or
//! [`Executor::next_deadline`], whichever is first. That is exactly the loop a kernel taskqueue
//! handler plus one callout performs, so tests of the executor and of the session exercise the
//! same contract. Production code on a host uses `isboot-host`'s `HostRuntime` (an epoll
//! reactor, and waiting callers drive the loop) instead.

use alloc::sync::Arc;
use core::future::Future;
use std::sync::{Condvar, Mutex as StdMutex, PoisonError};
use std::thread;

use super::{block_on, now, StdLock};
use crate::{Config, Executor, Instant, JoinHandle, Pender, Timer};

#[derive(Debug, Default)]
struct Signal {
    pended: bool,
    stop: bool,
}

/// Pender of a [`TestRuntime`]: wakes the driver thread.
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

/// The executor type a [`TestRuntime`] drives.
pub type TestExecutor = Executor<StdLock, Arc<ThreadPender>>;

/// An executor polled by its own driver thread, with timers on the host clock ([`now`]).
///
/// Dropping it stops and joins the thread, then drops the executor; like the executor, it cannot be
/// dropped while a [`JoinHandle`] lives. A task that panics brings the driver thread down with it, and
/// the next `TestRuntime` drop reports that panic.
#[derive(Debug)]
pub struct TestRuntime {
    executor: Arc<TestExecutor>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Default for TestRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRuntime {
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
        TestRuntime {
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
    pub fn executor(&self) -> &TestExecutor {
        &self.executor
    }

    /// Runs `future` on the calling thread until it completes (see [`block_on`]); spawned tasks keep
    /// running on the driver thread meanwhile.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(future)
    }
}

fn drive(executor: &TestExecutor) {
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

impl Drop for TestRuntime {
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
