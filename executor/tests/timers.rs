// SPDX-License-Identifier: BSD-2-Clause
//! The timer queue with a fake clock: time moves only when the test calls `on_tick`.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{executor, poll, poll_once, CountingWaker, DropFlag, Event};
use isboot_executor::{Doorbell, Elapsed, Instant};

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

#[test]
fn timers_fire_in_deadline_order_as_the_clock_advances() {
    let (ex, rec) = executor();
    let order: Arc<Mutex<Vec<u32>>> = Arc::default();
    // Armed out of order, with a tie (40 twice: first armed fires first).
    let specs = [(30, 1), (10, 2), (40, 3), (20, 4), (40, 5)];
    let handles: Vec<_> = specs
        .iter()
        .map(|&(ms, id)| {
            let (timer, order) = (ex.timer(), order.clone());
            ex.spawn(async move {
                timer.sleep_until(at(ms)).await;
                order.lock().unwrap().push(id);
            })
        })
        .collect();
    assert!(!ex.poll());
    assert_eq!(ex.next_deadline(), Some(at(10)));

    ex.on_tick(at(9));
    assert!(!ex.poll());
    assert!(order.lock().unwrap().is_empty());

    ex.on_tick(at(10));
    assert!(!ex.poll());
    assert_eq!(*order.lock().unwrap(), [2]);
    assert_eq!(ex.next_deadline(), Some(at(20)));

    // One tick past several deadlines wakes them earliest first, and they run in that order.
    ex.on_tick(at(45));
    assert!(!ex.poll());
    assert_eq!(*order.lock().unwrap(), [2, 4, 1, 3, 5]);
    assert_eq!(ex.next_deadline(), None);
    assert!(handles.iter().all(|h| h.is_finished()));
    // Arming timers inside `poll` pends nothing extra: the platform reads next_deadline afterwards.
    assert_eq!(rec.take(), [Event::Pend, Event::Pend, Event::Pend]);
}

#[test]
fn the_clock_never_goes_back() {
    let (ex, _rec) = executor();
    ex.on_tick(at(50));
    ex.on_tick(at(20));
    assert_eq!(ex.now(), at(50));
    let timer = ex.timer();
    assert_eq!(timer.now(), at(50));
    let (_, waker) = CountingWaker::new();
    // Already due: ready at once, never armed.
    let mut past = pin!(timer.sleep_until(at(30)));
    assert!(past
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready());
    assert_eq!(ex.next_deadline(), None);
}

#[test]
fn sleep_is_relative_to_the_last_tick_without_a_platform_clock() {
    let (ex, _rec) = executor();
    ex.on_tick(at(100));
    let timer = ex.timer();
    let sleep = timer.sleep(Duration::from_millis(5));
    assert_eq!(sleep.deadline(), at(105));
}

#[test]
fn dropping_an_armed_sleep_unlinks_it() {
    let (ex, _rec) = executor();
    let timer = ex.timer();
    let (count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    {
        let mut a = Box::pin(timer.sleep_until(at(10)));
        let mut b = Box::pin(timer.sleep_until(at(20)));
        let mut c = Box::pin(timer.sleep_until(at(30)));
        for s in [&mut a, &mut b, &mut c] {
            assert!(s.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(ex.next_deadline(), Some(at(10)));
        drop(a); // head
        assert_eq!(ex.next_deadline(), Some(at(20)));
        drop(c); // tail
        assert_eq!(ex.next_deadline(), Some(at(20)));
        // Re-polling an armed sleep refreshes its waker without re-linking it.
        assert!(b.as_mut().poll(&mut cx).is_pending());
        ex.on_tick(at(25));
        assert_eq!(count.count(), 1);
        assert!(b.as_mut().poll(&mut cx).is_ready());
    }
    assert_eq!(ex.next_deadline(), None);
    ex.on_tick(at(100));
    assert_eq!(count.count(), 1);
}

/// The intrusive list is shared by every thread that holds a `Timer`: arming, re-polling and
/// dropping sleeps on several threads while another thread expires them must keep it consistent
/// (Miri checks the pointer accesses of this test for races and aliasing violations).
#[test]
fn sleeps_armed_and_dropped_on_other_threads_while_the_clock_ticks() {
    let (ex, _rec) = executor();
    let rounds: u64 = if cfg!(miri) { 30 } else { 3000 };
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let timer = ex.timer();
            std::thread::spawn(move || {
                let waker = std::task::Waker::noop();
                let mut cx = Context::from_waker(waker);
                let mut pending = 0u64;
                for i in 0..rounds {
                    // Deadlines 50..60 lie beyond the last tick: those are always armed.
                    let mut s = pin!(timer.sleep_until(at((i * 7 + t) % 60)));
                    if s.as_mut().poll(&mut cx).is_pending() {
                        pending += 1;
                        // A second poll of an armed sleep keeps it linked once.
                        let _ = s.as_mut().poll(&mut cx);
                    }
                    // Dropped here, armed or not.
                }
                pending
            })
        })
        .collect();
    for k in 0..rounds {
        ex.on_tick(at(k * 50 / rounds));
    }
    let pending: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(pending > 0, "no sleep was ever linked");
    // Every armed sleep unlinked itself when dropped.
    assert_eq!(ex.next_deadline(), None);
}

#[test]
fn cancelling_a_sleeping_task_disarms_its_timer() {
    let (ex, rec) = executor();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (timer, flag) = (ex.timer(), DropFlag(dropped.clone()));
    let handle = ex.spawn(async move {
        let _flag = flag;
        timer.sleep(Duration::from_secs(1)).await;
        unreachable!("cancelled before the deadline");
    });
    assert!(!poll(&ex, &rec));
    assert_eq!(ex.next_deadline(), Some(at(1000)));
    drop(handle);
    assert!(!poll(&ex, &rec));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(ex.next_deadline(), None);
    assert_eq!(ex.task_count(), 0);
    ex.on_tick(at(2000));
    assert!(!poll(&ex, &rec));
}

#[test]
fn timeout_returns_the_result_when_it_comes_first() {
    let (ex, _rec) = executor();
    let bell = Arc::new(Doorbell::new());
    let (timer, b) = (ex.timer(), bell.clone());
    let handle = ex.spawn(async move {
        timer
            .timeout(at(50), async {
                b.wait().await;
                5
            })
            .await
    });
    assert!(!ex.poll());
    ex.on_tick(at(10));
    bell.ring();
    assert!(!ex.poll());
    assert_eq!(
        ex.next_deadline(),
        None,
        "the timeout's timer is gone with it"
    );
    let (_, waker) = CountingWaker::new();
    let mut handle = handle;
    assert_eq!(poll_once(&mut handle, &waker), Poll::Ready(Ok(5)));
}

#[test]
fn timeout_elapses_and_drops_the_inner_future() {
    let (ex, _rec) = executor();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (timer, flag) = (ex.timer(), DropFlag(dropped.clone()));
    let handle = ex.spawn(async move {
        let inner = async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        };
        timer.timeout(at(50), inner).await
    });
    assert!(!ex.poll());
    ex.on_tick(at(49));
    assert!(!ex.poll());
    assert!(!handle.is_finished());
    ex.on_tick(at(50));
    assert!(!ex.poll());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    let (_, waker) = CountingWaker::new();
    let mut handle = handle;
    assert_eq!(poll_once(&mut handle, &waker), Poll::Ready(Err(Elapsed)));
}

#[test]
fn arming_an_earlier_timer_outside_poll_pends_so_the_platform_rearms() {
    let (ex, rec) = executor();
    let timer = ex.timer();
    let (_, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut late = Box::pin(timer.sleep_until(at(100)));
    assert!(late.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        rec.take(),
        [Event::Pend],
        "first timer: the platform must arm its timer"
    );
    let mut later = Box::pin(timer.sleep_until(at(200)));
    assert!(later.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        rec.take(),
        [],
        "not the earliest: the armed timer still fires first"
    );
    let mut early = Box::pin(timer.sleep_until(at(50)));
    assert!(early.as_mut().poll(&mut cx).is_pending());
    assert_eq!(rec.take(), [Event::Pend], "new earliest: re-arm");
}

#[test]
fn many_timers_expiring_in_one_tick_are_all_woken() {
    // More than one on_tick batch (8 wakers per lock hold).
    let n = 50;
    let (ex, _rec) = executor();
    let fired = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (timer, fired) = (ex.timer(), fired.clone());
            ex.spawn(async move {
                timer.sleep_until(at(1 + i % 7)).await;
                fired.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    while ex.poll() {}
    ex.on_tick(at(10));
    while ex.poll() {}
    assert_eq!(fired.load(Ordering::SeqCst), n as usize);
    assert!(handles.iter().all(|h| h.is_finished()));
}

#[test]
fn instant_arithmetic_saturates() {
    assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
    assert_eq!(at(1) + Duration::MAX, Instant::MAX);
    assert_eq!(at(1).saturating_sub(Duration::from_secs(1)), Instant::ZERO);
    assert_eq!(at(3).saturating_duration_since(at(5)), Duration::ZERO);
    assert_eq!(
        at(5).saturating_duration_since(at(3)),
        Duration::from_millis(2)
    );
}

#[test]
fn a_task_panicking_out_of_poll_does_not_leave_the_timer_queue_thinking_poll_runs() {
    let (ex, rec) = executor();
    let handle = ex.spawn(async { panic!("task failure under test") });
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ex.poll()));
    assert!(polled.is_err());
    drop(handle);
    rec.take();
    let timer = ex.timer();
    let (_, waker) = CountingWaker::new();
    let mut sleep = Box::pin(timer.sleep_until(at(5)));
    assert!(sleep
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(
        rec.take(),
        [Event::Pend],
        "outside poll again: a new earliest timer pends"
    );
}
