// SPDX-License-Identifier: BSD-2-Clause
//! The run queue, `spawn`, `poll`, and the timer queue's driver.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::mem;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use crate::pender::Pender;
use crate::raw::mutex::{Mutex, RawLock};
use crate::raw::task::{self, Handle, Make, Runnable};
use crate::raw::timer::{Clock, TimerList};
use crate::time::{Instant, Timer};

/// Tasks run by one `poll` call when the caller does not choose.
pub const DEFAULT_BUDGET: usize = 32;

/// Wakers woken per lock hold in `on_tick`: bounds the stack buffer, not the number of timers.
const TICK_BATCH: usize = 8;

struct RunQueue {
    /// One `Runnable` per scheduled task; a task never has two, so with `capacity >= live` a push
    /// never allocates.
    queue: VecDeque<Runnable>,
    /// Tasks whose future has not been dropped yet.
    live: usize,
    /// Set by `Executor::drop`: later schedules drop their `Runnable` at once.
    closed: bool,
}

struct Shared<L, P> {
    run: Mutex<L, RunQueue>,
    timers: Mutex<L, TimerList>,
    /// Copies of the timer list's `now` and `in_poll`, written under its lock, so that
    /// [`Timer::now`] in a poll (a session asks in every round) takes no lock.
    ticked: AtomicU64,
    polling: AtomicUsize,
    clock: Option<fn() -> Instant>,
    pender: P,
}

/// How an [`Executor`] is set up.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Most tasks one `poll` runs (at least 1 is used).
    pub budget: usize,
    /// Reads the platform's monotonic clock, so that [`Timer::now`] and [`Timer::sleep`] are fresh
    /// outside the polling context too. Without it, and inside a `poll`, they use the last
    /// `on_tick` value: a platform that sets a clock calls `on_tick` right before each `poll`.
    /// Timers still expire only through `on_tick`.
    pub clock: Option<fn() -> Instant>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            budget: DEFAULT_BUDGET,
            clock: None,
        }
    }
}

enum Scheduled {
    Pend,
    Queued,
    Closed(Runnable),
    Full(Runnable),
}

impl<L: RawLock, P: Pender> Shared<L, P> {
    /// The schedule function of every task: called when a waker wakes an idle task, from
    /// whatever context the waker runs in.
    fn schedule(&self, mut runnable: Runnable) {
        loop {
            let outcome = self.run.lock(|rq| {
                if rq.closed {
                    return Scheduled::Closed(runnable);
                }
                if rq.queue.len() == rq.queue.capacity() {
                    return Scheduled::Full(runnable);
                }
                let was_empty = rq.queue.is_empty();
                rq.queue.push_back(runnable);
                if was_empty {
                    Scheduled::Pend
                } else {
                    Scheduled::Queued
                }
            });
            match outcome {
                Scheduled::Pend => return self.pender.pend(),
                Scheduled::Queued => return,
                // The executor is gone (its owner leaked a `JoinHandle`): drop the future here, since
                // nothing will poll it again.
                Scheduled::Closed(r) => return drop(r),
                // Unreachable while `capacity >= live` holds; if it ever did not, grow outside the lock
                // rather than allocate under a spin lock (and drop the task if even that fails).
                Scheduled::Full(r) => {
                    if !self.grow(1) {
                        return drop(r);
                    }
                    runnable = r;
                }
            }
        }
    }

    /// Makes room for `extra` more entries than the queue can hold now, allocating outside the lock.
    /// False when the allocator has no memory.
    fn grow(&self, extra: usize) -> bool {
        let want = self.run.lock(|rq| rq.queue.capacity().max(rq.live) + extra);
        let mut fresh: VecDeque<Runnable> = VecDeque::new();
        if fresh
            .try_reserve_exact(want.saturating_mul(2).max(4))
            .is_err()
        {
            return false;
        }
        let old = self.run.lock(move |rq| {
            if rq.queue.capacity() < want {
                // Within the reservation: `fresh` holds at least `want` > the queue's length, so
                // no push grows it. Moved one by one with the queue's own `pop_front` and
                // `push_back` (compiled for `schedule` already), not `extend(drain(..))`, whose
                // drain and extend were ~1 KiB of code in the kernel module for this cold path.
                while let Some(r) = rq.queue.pop_front() {
                    fresh.push_back(r);
                }
                mem::swap(&mut rq.queue, &mut fresh);
            }
            fresh
        });
        // Freed outside the lock.
        drop(old);
        true
    }

    /// Counts a new task, first making sure the queue can hold one more `Runnable` without
    /// allocating. False (nothing counted) when the allocator has no memory.
    fn add_live(&self) -> bool {
        loop {
            let counted = self.run.lock(|rq| {
                if rq.queue.capacity() > rq.live {
                    rq.live += 1;
                    true
                } else {
                    false
                }
            });
            if counted {
                return true;
            }
            if !self.grow(1) {
                return false;
            }
        }
    }
}

impl<L: RawLock + 'static, P: Pender> Clock for Shared<L, P> {
    fn with_list(&self, f: &mut dyn FnMut(&mut TimerList)) {
        self.timers.lock(|list| f(list));
    }

    fn pend(&self) {
        self.pender.pend();
    }

    fn now(&self) -> Instant {
        let ticked = Instant::from_nanos(self.ticked.load(Ordering::Acquire));
        match self.clock {
            // In a poll the tick is as fresh as a clock read would be (see Config::clock), and
            // the session asks for the time in every round: a clock read each was 3 % of its
            // instructions per command on the host.
            Some(read) if self.polling.load(Ordering::Acquire) == 0 => read().max(ticked),
            _ => ticked,
        }
    }
}

/// Marks a `poll` in progress for the timer queue, also if a task panics out of it (host tests).
struct InPoll<'a, L: RawLock, P: Pender>(&'a Shared<L, P>);

impl<'a, L: RawLock, P: Pender> InPoll<'a, L, P> {
    fn enter(shared: &'a Shared<L, P>) -> Self {
        shared.timers.lock(|t| {
            t.in_poll += 1;
            shared.polling.store(t.in_poll, Ordering::Release);
        });
        InPoll(shared)
    }
}

impl<L: RawLock, P: Pender> Drop for InPoll<'_, L, P> {
    fn drop(&mut self) {
        let shared = self.0;
        shared.timers.lock(|t| {
            t.in_poll = t.in_poll.saturating_sub(1);
            shared.polling.store(t.in_poll, Ordering::Release);
        });
    }
}

/// Decrements the live-task count when a task's future is dropped (completed, cancelled, or dropped
/// with the executor).
struct LiveGuard<L: RawLock, P: Pender>(Arc<Shared<L, P>>);

/// A future that is already made.
struct Given<F>(F);

impl<F> Make<F> for Given<F> {
    fn make(self) -> F {
        self.0
    }
}

/// A future made by a function.
struct Closure<G>(G);

impl<G: FnOnce() -> F, F> Make<F> for Closure<G> {
    fn make(self) -> F {
        (self.0)()
    }
}

/// Makes a task's future counted among the live tasks until it is dropped.
struct Counted<L: RawLock, P: Pender, M> {
    guard: LiveGuard<L, P>,
    make: M,
}

impl<L: RawLock, P: Pender, M: Make<F>, F> Make<Guarded<F, L, P>> for Counted<L, P, M> {
    fn make(self) -> Guarded<F, L, P> {
        Guarded {
            future: self.make.make(),
            _guard: self.guard,
        }
    }
}

pin_project_lite::pin_project! {
    /// A task's future with its [`LiveGuard`], dropped after the future.
    struct Guarded<F, L: RawLock, P: Pender> {
        #[pin]
        future: F,
        _guard: LiveGuard<L, P>,
    }
}

impl<F: Future, L: RawLock, P: Pender> Future for Guarded<F, L, P> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<L: RawLock, P: Pender> Drop for LiveGuard<L, P> {
    fn drop(&mut self) {
        self.0.run.lock(|rq| rq.live = rq.live.saturating_sub(1));
    }
}

/// A `no_std` executor for a handful of long-lived tasks, polled by the platform when its
/// [`Pender`] fires, with a timer queue driven by the platform's clock.
///
/// # Task states
///
/// ```text
///                     Executor::spawn
///                            │
///                            ▼
///                   ┌─────────────────┐   Executor::poll pops it and   ┌─────────┐
///   ┌─────────────► │    SCHEDULED    │ ─────────────────────────────► │ RUNNING │
///   │               │ (in run queue)  │   calls Runnable::run          └─────────┘
///   │               └─────────────────┘                                 │  │  │
///   │                  ▲           ▲   Runnable::run, when Waker::wake  │  │  │
///   │                  │           └─────── came while it was running ──┘  │  │
///   │ Waker::wake      │ JoinHandle drop                                   │  │ future
///   │ (schedule: push, │ or cancel:                   future returned      │  │ returned
///   │  pender if the   │ marked closing               Pending, no wake     │  │ Ready
///   │  queue was empty)│                                                   │  ▼
///   │               ┌─────────────────┐                                    │ ┌───────────┐
///   └────────────── │      IDLE       │ ◄──────────────────────────────────┘ │ COMPLETED │
///                   │ (only wakers    │                                      │ (output   │
///                   │  and the handle │                                      │  stored)  │
///                   │  refer to it)   │                                      └───────────┘
///                   └─────────────────┘                                            │
///                                                           JoinHandle::poll takes │
///                                                           the output, or drop    ▼
///   closing task: Executor::poll → Runnable::run drops the future ─────────► ┌──────────┐
///   Executor::drop: drops the future of every task still queued ───────────► │  CLOSED  │
///                                                                            └──────────┘
/// ```
///
/// A task that is SCHEDULED or RUNNING when its handle goes loses its future at the end of that
/// `Runnable::run`. Wakes of a COMPLETED or CLOSED task do nothing. `raw::task` keeps this state in one
/// atomic word per task and allows at most one `Runnable` per task, which is why a run queue with a slot
/// per live task never overflows.
///
/// # Teardown rule
///
/// Every task is owned by its [`JoinHandle`]; there is no detach. A handle borrows the executor, so the
/// borrow checker refuses to drop the executor while any handle lives. Dropping a handle cancels its task
/// (the future is dropped by the next `poll`, or by `Executor::drop`), so when the executor is dropped no
/// task can run again and every future has been dropped. (Leaking a handle with `mem::forget` leaks its
/// task; a later wake of it drops the future in the waker's context instead of queueing it.) To wait for
/// a task's future to be gone while the executor keeps running, await [`JoinHandle::cancel`].
///
/// ```compile_fail,E0505
/// use isboot_executor::{host::StdLock, Executor, Pender};
/// struct Nop;
/// impl Pender for Nop {
///     fn pend(&self) {}
/// }
/// let ex: Executor<StdLock, Nop> = Executor::new(Nop);
/// let handle = ex.spawn(async { 1 });
/// drop(ex); // error: `ex` is still borrowed by `handle`
/// drop(handle);
/// ```
///
/// Everything here is `Send + Sync`: wakers may fire from any context; `poll` should run on one thread
/// at a time (concurrent calls are safe but pointless).
pub struct Executor<L: RawLock + 'static, P: Pender> {
    shared: Arc<Shared<L, P>>,
    budget: usize,
}

impl<L: RawLock + 'static, P: Pender> fmt::Debug for Executor<L, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("budget", &self.budget)
            .field("tasks", &self.task_count())
            .finish_non_exhaustive()
    }
}

impl<L: RawLock + 'static, P: Pender> Executor<L, P> {
    /// An executor with the default [`Config`]: at most [`DEFAULT_BUDGET`] tasks per `poll`, no clock.
    pub fn new(pender: P) -> Self {
        Self::with_config(pender, Config::default())
    }

    /// An executor set up by `config`.
    pub fn with_config(pender: P, config: Config) -> Self {
        Executor {
            shared: Arc::new(Shared {
                run: Mutex::new(RunQueue {
                    queue: VecDeque::new(),
                    live: 0,
                    closed: false,
                }),
                timers: Mutex::new(TimerList::new()),
                ticked: AtomicU64::new(0),
                polling: AtomicUsize::new(0),
                clock: config.clock,
                pender,
            }),
            budget: config.budget.max(1),
        }
    }

    /// Starts `future` as a task. This is where the executor allocates: the task (header, future,
    /// output) in one block and, when the run queue holds fewer slots than tasks, a larger queue.
    /// The task is scheduled at once; the pender fires if the queue was empty. Memory being short
    /// ends in the allocation error handler: where that must not happen, use
    /// [`Executor::try_spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.try_spawn(future) {
            Ok(h) => h,
            Err(_) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<F>()),
        }
    }

    /// As [`Executor::spawn`], with the future made by `make` right in the task's memory (see
    /// [`Executor::try_spawn_with`]).
    pub fn spawn_with<G, F>(&self, make: G) -> JoinHandle<'_, F::Output>
    where
        G: FnOnce() -> F,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.try_spawn_with(make) {
            Ok(h) => h,
            Err(_) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<F>()),
        }
    }

    /// As [`Executor::spawn`], but gives `future` back when memory is short.
    pub fn try_spawn<F>(&self, future: F) -> Result<JoinHandle<'_, F::Output>, F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_made(Given(future)).map_err(|g| g.0)
    }

    /// As [`Executor::try_spawn`], with the future made by `make` right in the task's memory, so
    /// that a large future never sits on this thread's stack (kernel stacks are small). Gives
    /// `make` back, uncalled, when memory is short.
    pub fn try_spawn_with<G, F>(&self, make: G) -> Result<JoinHandle<'_, F::Output>, G>
    where
        G: FnOnce() -> F,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_made(Closure(make)).map_err(|c| c.0)
    }

    fn spawn_made<M, F>(&self, make: M) -> Result<JoinHandle<'_, F::Output>, M>
    where
        M: Make<F>,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if !self.shared.add_live() {
            return Err(make);
        }
        let counted = Counted {
            guard: LiveGuard(self.shared.clone()),
            make,
        };
        let shared = self.shared.clone();
        match task::try_spawn(counted, move |r| shared.schedule(r)) {
            Ok((runnable, task)) => {
                runnable.schedule();
                Ok(JoinHandle {
                    task,
                    _executor: PhantomData,
                })
            }
            // Dropping the guard uncounts the task that was never made.
            Err(counted) => Err(counted.make),
        }
    }

    /// Runs one bounded batch: at most the budget, and at most the tasks that were queued when it began
    /// (tasks woken meanwhile wait for the next call). Returns whether tasks are still queued: if so the
    /// platform must call `poll` again soon (pending itself is the simple way), because wakes into a
    /// non-empty queue do not pend.
    #[must_use = "if true, poll must be called again soon"]
    pub fn poll(&self) -> bool {
        let _in_poll = InPoll::enter(&self.shared);
        let batch = self.shared.run.lock(|rq| rq.queue.len()).min(self.budget);
        for _ in 0..batch {
            match self.shared.run.lock(|rq| rq.queue.pop_front()) {
                Some(runnable) => {
                    runnable.run();
                }
                None => break,
            }
        }
        self.shared.run.lock(|rq| !rq.queue.is_empty())
    }

    /// Advances the clock to `now` (it never goes back) and wakes every timer whose deadline is at or
    /// before it. Callable from any context: it takes the timer lock and wakes wakers, nothing else.
    pub fn on_tick(&self, now: Instant) {
        loop {
            let mut wakers: heapless::Vec<Waker, TICK_BATCH> = heapless::Vec::new();
            let more = self.shared.timers.lock(|t| {
                if now > t.now {
                    t.now = now;
                    self.shared.ticked.store(now.as_nanos(), Ordering::Release);
                }
                t.take_expired(&mut wakers)
            });
            // The host ticks before every poll and almost never finds a timer due: moving the
            // empty batch into an iterator and dropping it was a tenth of the loop's own work
            // per command.
            if wakers.is_empty() {
                return;
            }
            for w in wakers {
                w.wake();
            }
            if !more {
                return;
            }
        }
    }

    /// The earliest armed timer's deadline: when the platform's one timer should fire next (it then
    /// pends, and the polling context calls `on_tick`). `None`: no timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shared.timers.lock(|t| t.earliest())
    }

    /// The platform clock if [`Config::clock`] is set and no `poll` runs, else the clock as of
    /// the last `on_tick`.
    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    /// A handle to the timer queue, for [`Timer::sleep`], [`Timer::sleep_until`] and
    /// [`Timer::timeout`]. It keeps the queue alive on its own, so tasks may own one.
    pub fn timer(&self) -> Timer {
        Timer {
            clock: self.shared.clone(),
        }
    }

    /// Tasks whose future has not been dropped yet.
    pub fn task_count(&self) -> usize {
        self.shared.run.lock(|rq| rq.live)
    }

    /// The platform's pender.
    pub fn pender(&self) -> &P {
        &self.shared.pender
    }
}

impl<L: RawLock + 'static, P: Pender> Drop for Executor<L, P> {
    fn drop(&mut self) {
        // No JoinHandle is alive (they borrow `self`), so every task is closed or queued for closing:
        // dropping the queued runnables drops the remaining futures. Runnables are dropped outside the
        // lock, since a future's drop may wake others (which then find `closed` set).
        let queue = self.shared.run.lock(|rq| {
            rq.closed = true;
            mem::take(&mut rq.queue)
        });
        drop(queue);
    }
}

/// Owns a spawned task: await it for the output, drop it or [`cancel`](JoinHandle::cancel) it to stop
/// the task. It borrows the executor, which therefore outlives every task (see [`Executor`]).
#[must_use = "dropping a JoinHandle cancels its task"]
pub struct JoinHandle<'ex, T> {
    task: Handle<T>,
    _executor: PhantomData<&'ex ()>,
}

impl<T> fmt::Debug for JoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.task.is_finished())
            .finish()
    }
}

impl<T> JoinHandle<'_, T> {
    /// Cancels the task and waits until its future has been dropped (the executor must keep polling for
    /// that). Returns the output if the task had already completed.
    pub async fn cancel(mut self) -> Option<T> {
        self.task.cancel();
        core::future::poll_fn(|cx| self.task.poll_cancelled(cx)).await
    }

    /// Whether the task has completed (or was closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for JoinHandle<'_, T> {
    type Output = T;

    /// Ready with the task's output once it completes. A task can only be closed without completing
    /// through its own handle or `Executor::drop`, neither of which can happen while this handle is
    /// being polled.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.get_mut().task.poll_output(cx)
    }
}
