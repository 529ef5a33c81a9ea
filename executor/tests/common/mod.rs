// SPDX-License-Identifier: BSD-2-Clause
//! Shared test fixtures: a pender that records, small futures, and a no-op-free waker.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use isboot_executor::host::StdLock;
use isboot_executor::{Config, Executor, Pender};

/// What the platform observed, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Pend,
    /// A `poll` call and what it returned.
    Poll(bool),
}

/// A pender that records every pend; `poll` records through [`Recorder::poll`].
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Pender for Recorder {
    fn pend(&self) {
        self.events.lock().unwrap().push(Event::Pend);
    }
}

impl Recorder {
    /// Takes the events recorded so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

pub type TestExecutor = Executor<StdLock, Arc<Recorder>>;

pub fn executor() -> (TestExecutor, Arc<Recorder>) {
    executor_with_budget(isboot_executor::DEFAULT_BUDGET)
}

pub fn executor_with_budget(budget: usize) -> (TestExecutor, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let ex = Executor::with_config(
        rec.clone(),
        Config {
            budget,
            ..Config::default()
        },
    );
    (ex, rec)
}

/// Polls and records the call and its result.
pub fn poll(ex: &TestExecutor, rec: &Recorder) -> bool {
    let more = ex.poll();
    rec.events.lock().unwrap().push(Event::Poll(more));
    more
}

/// Sets a counter when dropped, to observe when a task's future is gone.
#[derive(Debug)]
pub struct DropFlag(pub Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending on the first poll (after waking itself), ready on the second: one trip through the queue.
#[derive(Debug, Default)]
pub struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A waker that counts its wakes, for polling futures by hand.
#[derive(Debug, Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub fn new() -> (Arc<Self>, Waker) {
        let w = Arc::new(CountingWaker::default());
        (w.clone(), Waker::from(w))
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `fut` once with `waker`.
pub fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// Runs `f` on its own thread and fails the test if it takes longer than a generous bound, so a lost
/// wake-up fails instead of hanging the suite.
pub fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("did not finish within 60 s: a wake-up was lost")
}
