// SPDX-License-Identifier: BSD-2-Clause
//! Run queue, pender and task lifecycle, observed through a recording pender.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use common::{
    executor, executor_with_budget, poll, poll_once, CountingWaker, DropFlag, Event, YieldNow,
};
use isboot_executor::Doorbell;

use Event::{Pend, Poll as Polled};

#[test]
fn pend_fires_only_when_the_queue_goes_from_empty_to_non_empty() {
    let (ex, rec) = executor();
    let bell_a = Arc::new(Doorbell::new());
    let bell_b = Arc::new(Doorbell::new());
    let (a, b) = (bell_a.clone(), bell_b.clone());
    let ta = ex.spawn(async move { a.wait().await });
    let tb = ex.spawn(async move { b.wait().await });
    // Two spawns, one pend: the second found the queue non-empty.
    assert_eq!(rec.take(), [Pend]);

    assert!(!poll(&ex, &rec));
    assert_eq!(rec.take(), [Polled(false)]);

    // Both idle now. The first ring pends, the second joins a non-empty queue.
    bell_a.ring();
    bell_b.ring();
    assert_eq!(rec.take(), [Pend]);
    assert!(!poll(&ex, &rec));
    assert_eq!(rec.take(), [Polled(false)]);
    assert!(ta.is_finished() && tb.is_finished());

    // Nothing left to run: polling again is harmless and pends nothing.
    assert!(!poll(&ex, &rec));
    assert_eq!(rec.take(), [Polled(false)]);
    assert_eq!(ex.task_count(), 0);
}

#[test]
fn poll_runs_a_bounded_batch_and_reports_more_work() {
    let (ex, rec) = executor_with_budget(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let ran = ran.clone();
            ex.spawn(async move {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert_eq!(rec.take(), [Pend]);
    assert!(poll(&ex, &rec));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    assert!(poll(&ex, &rec));
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    assert!(!poll(&ex, &rec));
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(rec.take(), [Polled(true), Polled(true), Polled(false)]);
    assert!(handles.iter().all(|h| h.is_finished()));
}

#[test]
fn tasks_run_in_spawn_order_across_run_queue_growth() {
    // Three run first, so the queue's head has moved on when it grows; the queue then grows
    // several times while it holds tasks, and must keep them in the order they were queued.
    let (ex, rec) = executor_with_budget(3);
    let order = Arc::new(Mutex::new(Vec::new()));
    let spawn = |i: usize| {
        let order = order.clone();
        ex.spawn(async move { order.lock().unwrap().push(i) })
    };
    let mut handles: Vec<_> = (0..5).map(spawn).collect();
    assert!(poll(&ex, &rec));
    handles.extend((5..40).map(spawn));
    let mut polls = 0;
    while poll(&ex, &rec) {
        polls += 1;
        assert!(polls < 40, "the queue never drained");
    }
    assert_eq!(*order.lock().unwrap(), (0..40).collect::<Vec<_>>());
    assert!(handles.iter().all(|h| h.is_finished()));
}

#[test]
fn a_task_that_wakes_itself_runs_once_per_poll_not_forever() {
    let (ex, rec) = executor();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let _h = ex.spawn(async move {
        for _ in 0..3 {
            p.fetch_add(1, Ordering::SeqCst);
            YieldNow::default().await;
        }
    });
    rec.take();
    // Each poll runs the task once; its self-wake lands in the (then empty) queue and pends.
    assert!(poll(&ex, &rec));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(poll(&ex, &rec));
    assert!(poll(&ex, &rec));
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert!(!poll(&ex, &rec));
    assert_eq!(
        rec.take(),
        [
            Pend,
            Polled(true),
            Pend,
            Polled(true),
            Pend,
            Polled(true),
            Polled(false)
        ]
    );
}

/// First poll: registers with the doorbell, lets another thread ring it while this poll is still
/// running, then returns Pending. Second poll: ready.
struct WokenWhileRunning {
    bell: Arc<Doorbell>,
    in_poll: Arc<Barrier>,
    rung: Arc<Barrier>,
    polls: usize,
}

impl Future for WokenWhileRunning {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls > 1 {
            return Poll::Ready(self.polls);
        }
        let mut wait = self.bell.wait();
        assert!(Pin::new(&mut wait).poll(cx).is_pending());
        self.in_poll.wait();
        self.rung.wait();
        Poll::Pending
    }
}

#[test]
fn wake_from_another_thread_while_the_task_runs_reschedules_it() {
    let (ex, rec) = executor();
    let bell = Arc::new(Doorbell::new());
    let in_poll = Arc::new(Barrier::new(2));
    let rung = Arc::new(Barrier::new(2));
    let handle = ex.spawn(WokenWhileRunning {
        bell: bell.clone(),
        in_poll: in_poll.clone(),
        rung: rung.clone(),
        polls: 0,
    });
    rec.take();
    let ringer = thread::spawn(move || {
        in_poll.wait();
        bell.ring();
        rung.wait();
    });
    // The wake arrived while RUNNING: async-task reschedules after the poll, into an empty queue.
    assert!(poll(&ex, &rec));
    ringer.join().unwrap();
    assert!(!poll(&ex, &rec));
    assert_eq!(rec.take(), [Pend, Polled(true), Polled(false)]);
    let (_, waker) = CountingWaker::new();
    let mut handle = handle;
    assert_eq!(poll_once(&mut handle, &waker), Poll::Ready(2));
}

#[test]
fn wakes_from_many_threads_are_not_lost() {
    const THREADS: usize = 4;
    let rounds: usize = if cfg!(miri) { 5 } else { 200 };
    let (ex, rec) = executor();
    let bells: Vec<Arc<Doorbell>> = (0..THREADS).map(|_| Arc::new(Doorbell::new())).collect();
    let acks: Vec<Arc<Doorbell>> = (0..THREADS).map(|_| Arc::new(Doorbell::new())).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (bell, ack) = (bells[i].clone(), acks[i].clone());
            ex.spawn(async move {
                for _ in 0..rounds {
                    bell.wait().await;
                    ack.ring();
                }
                rounds
            })
        })
        .collect();
    let ringers: Vec<_> = (0..THREADS)
        .map(|i| {
            let (bell, ack) = (bells[i].clone(), acks[i].clone());
            thread::spawn(move || {
                for _ in 0..rounds {
                    bell.ring();
                    // Wait for the task to take this ring before the next (rings coalesce).
                    while !ack.take() {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // Poll whenever pended; bounded so a lost wake fails instead of hanging.
    let mut idle_spins = 0u64;
    while !handles.iter().all(|h| h.is_finished()) {
        if !rec.take().is_empty() || ex.poll() {
            idle_spins = 0;
            continue;
        }
        idle_spins += 1;
        assert!(
            idle_spins < 50_000_000,
            "a wake was lost: no pend and nothing ready"
        );
        thread::yield_now();
    }
    for r in ringers {
        r.join().unwrap();
    }
    let (_, waker) = CountingWaker::new();
    for mut h in handles {
        assert_eq!(poll_once(&mut h, &waker), Poll::Ready(rounds));
    }
}

#[test]
fn wake_after_completion_is_ignored() {
    let (ex, rec) = executor();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let s = stash.clone();
    let handle = ex.spawn(async move {
        std::future::poll_fn(|cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(7)
        })
        .await
    });
    assert!(!poll(&ex, &rec));
    assert!(handle.is_finished());
    rec.take();
    let waker = stash.lock().unwrap().take().unwrap();
    waker.wake_by_ref();
    waker.wake();
    assert_eq!(rec.take(), []);
    assert!(!poll(&ex, &rec));
    let (_, w) = CountingWaker::new();
    let mut handle = handle;
    assert_eq!(poll_once(&mut handle, &w), Poll::Ready(7));
}

#[test]
fn join_handle_wakes_its_awaiter_on_completion() {
    let (ex, _rec) = executor();
    let bell = Arc::new(Doorbell::new());
    let b = bell.clone();
    let mut handle = ex.spawn(async move {
        b.wait().await;
        "done"
    });
    let (count, waker) = CountingWaker::new();
    assert!(poll_once(&mut handle, &waker).is_pending());
    assert!(!ex.poll());
    assert_eq!(count.count(), 0);
    bell.ring();
    assert!(!ex.poll());
    assert_eq!(count.count(), 1);
    assert_eq!(poll_once(&mut handle, &waker), Poll::Ready("done"));
}

#[test]
fn dropping_a_handle_cancels_an_idle_task_at_the_next_poll() {
    let (ex, rec) = executor();
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = DropFlag(dropped.clone());
    let bell = Arc::new(Doorbell::new());
    let b = bell.clone();
    let handle = ex.spawn(async move {
        let _flag = flag;
        b.wait().await;
        unreachable!("the bell is never rung");
    });
    assert!(!poll(&ex, &rec));
    assert_eq!(ex.task_count(), 1);
    rec.take();
    drop(handle);
    // Closing an idle task schedules it so that the executor drops the future.
    assert_eq!(rec.take(), [Pend]);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    assert!(!poll(&ex, &rec));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(ex.task_count(), 0);
    // A ring after cancellation reaches nobody.
    bell.ring();
    assert_eq!(rec.take(), [Polled(false)]);
}

#[test]
fn cancel_future_resolves_once_the_task_future_is_dropped() {
    let (ex, _rec) = executor();
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = DropFlag(dropped.clone());
    let handle = ex.spawn(async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    });
    assert!(!ex.poll());
    let mut cancel = Box::pin(handle.cancel());
    let (count, waker) = CountingWaker::new();
    assert!(cancel
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert!(!ex.poll());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(count.count() >= 1);
    assert_eq!(
        cancel.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(None)
    );
}

#[test]
fn cancel_after_completion_returns_the_output() {
    let (ex, _rec) = executor();
    let handle = ex.spawn(async { 41 + 1 });
    assert!(!ex.poll());
    let mut cancel = Box::pin(handle.cancel());
    let (_, waker) = CountingWaker::new();
    assert_eq!(
        cancel.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Some(42))
    );
}

#[test]
fn dropping_the_executor_drops_queued_futures() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let (ex, _rec) = executor();
    for _ in 0..3 {
        let flag = DropFlag(dropped.clone());
        drop(ex.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        }));
    }
    // Never polled: the three futures wait in the queue, closed.
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(ex);
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
}

#[test]
#[cfg_attr(miri, ignore = "leaks the task on purpose (mem::forget of its handle)")]
fn a_leaked_handle_woken_after_executor_drop_drops_its_future_instead_of_queueing() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let bell = Arc::new(Doorbell::new());
    let (ex, rec) = executor();
    let (b, flag) = (bell.clone(), DropFlag(dropped.clone()));
    let handle = ex.spawn(async move {
        let _flag = flag;
        b.wait().await;
    });
    assert!(!ex.poll());
    std::mem::forget(handle);
    drop(ex);
    rec.take();
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    bell.ring();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(rec.take(), [], "a dead executor must not pend");
}

#[test]
fn a_thousand_tasks_each_run_to_completion() {
    let n: usize = if cfg!(miri) { 100 } else { 1000 };
    let (ex, rec) = executor();
    let bells: Vec<Arc<Doorbell>> = (0..n).map(|_| Arc::new(Doorbell::new())).collect();
    let handles: Vec<_> = bells
        .iter()
        .enumerate()
        .map(|(i, bell)| {
            let bell = bell.clone();
            ex.spawn(async move {
                bell.wait().await;
                YieldNow::default().await;
                i * 2
            })
        })
        .collect();
    assert_eq!(ex.task_count(), n);
    let mut polls = 0;
    while poll(&ex, &rec) {
        polls += 1;
    }
    // Every task ran once and is waiting: one batch per budget-full.
    assert_eq!(polls, n.div_ceil(isboot_executor::DEFAULT_BUDGET) - 1);
    let ringer = {
        let bells = bells.clone();
        thread::spawn(move || bells.iter().rev().for_each(|b| b.ring()))
    };
    ringer.join().unwrap();
    let mut guard = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        let _ = ex.poll();
        guard += 1;
        assert!(guard < 10 * n, "tasks did not finish");
    }
    let (_, waker) = CountingWaker::new();
    for (i, mut h) in handles.into_iter().enumerate() {
        assert_eq!(poll_once(&mut h, &waker), Poll::Ready(i * 2));
    }
    assert_eq!(ex.task_count(), 0);
}
