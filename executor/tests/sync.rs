// SPDX-License-Identifier: BSD-2-Clause
//! Doorbell and Channel: signalling into tasks from other contexts.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use common::{executor, poll, poll_once, CountingWaker, DropFlag, Event};
use isboot_executor::host::StdLock;
use isboot_executor::{Channel, Doorbell, TryRecvError, TrySendError};

type Chan<T, const N: usize> = Channel<StdLock, T, N>;

#[test]
fn a_ring_before_the_wait_completes_it_at_once() {
    let bell = Doorbell::new();
    bell.ring();
    assert!(bell.is_rung());
    let (count, waker) = CountingWaker::new();
    let mut wait = pin!(bell.wait());
    assert!(wait
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready());
    assert!(!bell.is_rung(), "waiting consumes the ring");
    assert_eq!(count.count(), 0);
}

#[test]
fn rings_coalesce_and_wake_the_waiter_once() {
    let bell = Doorbell::new();
    let (count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    {
        let mut wait = pin!(bell.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        bell.ring();
        bell.ring();
        bell.ring();
        assert_eq!(count.count(), 1, "the waker is taken by the first ring");
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
    let mut again = pin!(bell.wait());
    assert!(
        again.as_mut().poll(&mut cx).is_pending(),
        "three rings were one"
    );
    assert!(!bell.take());
}

#[test]
fn try_send_hands_the_item_back_when_full_and_recv_makes_room() {
    let chan: Chan<u32, 2> = Chan::new();
    assert_eq!(chan.capacity(), 2);
    chan.try_send(1).unwrap();
    chan.try_send(2).unwrap();
    match chan.try_send(3) {
        Err(TrySendError::Full(3)) => {}
        other => panic!("expected Full(3), got {other:?}"),
    }
    assert_eq!(chan.len(), 2);
    assert_eq!(chan.try_recv(), Ok(1));
    chan.try_send(3).unwrap();
    assert_eq!(chan.try_recv(), Ok(2));
    assert_eq!(chan.try_recv(), Ok(3));
    assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    assert!(chan.is_empty());
}

#[test]
fn send_wakes_the_waiting_receiver_task() {
    let (ex, rec) = executor();
    let chan: Arc<Chan<&'static str, 4>> = Arc::new(Chan::new());
    let c = chan.clone();
    let mut handle = ex.spawn(async move {
        let mut got = Vec::new();
        while let Some(s) = c.recv().await {
            got.push(s);
        }
        got
    });
    assert!(!poll(&ex, &rec));
    assert_eq!(rec.take(), [Event::Pend, Event::Poll(false)]);
    chan.try_send("a").unwrap();
    // The receiver was woken by the first send; the second joins the queue without another wake.
    chan.try_send("b").unwrap();
    assert_eq!(rec.take(), [Event::Pend]);
    assert!(!poll(&ex, &rec));
    chan.try_send("c").unwrap();
    chan.close();
    assert!(matches!(chan.try_send("d"), Err(TrySendError::Closed("d"))));
    assert!(!poll(&ex, &rec));
    let (_, waker) = CountingWaker::new();
    assert_eq!(
        poll_once(&mut handle, &waker),
        Poll::Ready(vec!["a", "b", "c"])
    );
    assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn senders_on_other_threads_deliver_every_item_once() {
    const SENDERS: usize = 3;
    let per_sender: usize = if cfg!(miri) { 20 } else { 2000 };
    let (ex, rec) = executor();
    let chan: Arc<Chan<usize, 8>> = Arc::new(Chan::new());
    let c = chan.clone();
    let handle = ex.spawn(async move {
        let mut sum = 0usize;
        let mut count = 0usize;
        while let Some(v) = c.recv().await {
            sum += v;
            count += 1;
        }
        (count, sum)
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let chan = chan.clone();
            thread::spawn(move || {
                for i in 0..per_sender {
                    let mut item = s * per_sender + i;
                    // Full: give the receiver a chance, as a CAM action routine would requeue.
                    loop {
                        match chan.try_send(item) {
                            Ok(()) => break,
                            Err(e) => item = e.into_inner(),
                        }
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut spins = 0u64;
    while !senders.iter().all(|s| s.is_finished()) || !chan.is_empty() {
        if !rec.take().is_empty() || ex.poll() {
            continue;
        }
        spins += 1;
        assert!(spins < 50_000_000, "no progress");
        thread::yield_now();
    }
    for s in senders {
        s.join().unwrap();
    }
    chan.close();
    while ex.poll() {}
    let _ = ex.poll();
    let total = SENDERS * per_sender;
    let (_, waker) = CountingWaker::new();
    let mut handle = handle;
    assert_eq!(
        poll_once(&mut handle, &waker),
        Poll::Ready((total, total * (total - 1) / 2))
    );
}

#[test]
fn a_dropped_channel_drops_its_items() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let chan: Chan<DropFlag, 4> = Chan::new();
    chan.try_send(DropFlag(dropped.clone())).unwrap();
    chan.try_send(DropFlag(dropped.clone())).unwrap();
    drop(chan);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn close_wakes_a_waiting_receiver_with_none() {
    let chan: Chan<u8, 1> = Chan::new();
    let (count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut recv = pin!(chan.recv());
    assert!(recv.as_mut().poll(&mut cx).is_pending());
    chan.close();
    assert_eq!(count.count(), 1);
    assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(None));
    assert!(chan.is_closed());
}

#[test]
fn select_reports_the_first_ready_future_and_prefers_the_left_one() {
    use isboot_executor::{select, Either};
    let (ex, _rec) = executor();
    let chan: Arc<Chan<u32, 4>> = Arc::new(Chan::new());
    let bell = Arc::new(Doorbell::new());
    let (c, b, timer) = (chan.clone(), bell.clone(), ex.timer());
    let mut handle = ex.spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let deadline = timer.now() + std::time::Duration::from_millis(10);
            let ev = select(b.wait(), select(c.recv(), timer.sleep_until(deadline))).await;
            seen.push(match ev {
                Either::Left(()) => "bell",
                Either::Right(Either::Left(_)) => "item",
                Either::Right(Either::Right(())) => "timeout",
            });
        }
        seen
    });
    assert!(!ex.poll());
    chan.try_send(1).unwrap();
    assert!(!ex.poll());
    // Both ready at once: the left (bell) wins, the item stays queued for the next round.
    chan.try_send(2).unwrap();
    bell.ring();
    assert!(!ex.poll());
    // The third round took item 2 at once; the fourth waits for its deadline.
    assert_eq!(chan.len(), 0);
    let (_, waker) = CountingWaker::new();
    assert_eq!(poll_once(&mut handle, &waker), Poll::Pending);
    assert_eq!(ex.next_deadline().map(|d| d.as_nanos()), Some(10_000_000));
    ex.on_tick(isboot_executor::Instant::from_nanos(10_000_000));
    assert!(!ex.poll());
    assert_eq!(
        poll_once(&mut handle, &waker),
        Poll::Ready(vec!["item", "bell", "item", "timeout"])
    );
}
