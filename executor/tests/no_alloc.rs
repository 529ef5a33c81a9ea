// SPDX-License-Identifier: BSD-2-Clause
//! Proves the executor allocates only at spawn: a counting global allocator watches whole
//! poll/wake cycles through every primitive (doorbell, channel, timers, timeout, join handle).
//! The same allocator can refuse allocations, which proves that a spawn that finds no memory
//! gives its future back and leaves the executor as it was.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use common::CountingWaker;
use isboot_executor::host::StdLock;
use isboot_executor::{Channel, Doorbell, Executor, Instant, Pender, TrySendError};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates, so it is safe inside the allocator.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    // While set, every allocation of this thread fails (returns null), as malloc(9) with
    // M_NOWAIT does when memory is short.
    static REFUSE: Cell<bool> = const { Cell::new(false) };
    // This thread's watched allocations (ALLOCS counts every watching thread's).
    static MINE: Cell<usize> = const { Cell::new(0) };
}

/// Counts the allocation; false when it must fail.
fn note() -> bool {
    if WATCHED.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        MINE.with(|m| m.set(m.get() + 1));
    }
    !REFUSE.with(Cell::get)
}

// SAFETY: forwards every call unchanged to the system allocator, or returns null (which the
// contract allows); the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note() {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note() {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note() {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts pends without allocating (the recording pender's event list would grow).
#[derive(Debug, Default)]
struct CountPender(AtomicUsize);

impl Pender for CountPender {
    fn pend(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

#[test]
fn poll_wake_timer_channel_and_doorbell_cycles_do_not_allocate() {
    let cycles: u64 = if cfg!(miri) { 20 } else { 1000 };
    let pends = Arc::new(CountPender::default());
    let ex: Executor<StdLock, _> = Executor::new(pends.clone());
    let bell = Arc::new(Doorbell::new());
    let chan: Arc<Channel<StdLock, u64, 4>> = Arc::new(Channel::new());
    let rang = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let ticks = Arc::new(AtomicUsize::new(0));
    let timeouts = Arc::new(AtomicUsize::new(0));

    let (b, r) = (bell.clone(), rang.clone());
    let doorbell_task = ex.spawn(async move {
        loop {
            b.wait().await;
            r.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (c, r) = (chan.clone(), received.clone());
    let channel_task = ex.spawn(async move {
        while let Some(v) = c.recv().await {
            r.fetch_add(v as usize, Ordering::SeqCst);
        }
    });
    let (timer, t, to) = (ex.timer(), ticks.clone(), timeouts.clone());
    let timer_task = ex.spawn(async move {
        let never = Doorbell::new();
        loop {
            timer.sleep(Duration::from_millis(1)).await;
            t.fetch_add(1, Ordering::SeqCst);
            let deadline = timer.now() + Duration::from_millis(1);
            if timer.timeout(deadline, never.wait()).await.is_err() {
                to.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let short_task = ex.spawn(async { 9u8 });

    let (_, waker) = CountingWaker::new();
    let mut short_task = short_task;
    let run = |now: &mut u64| {
        bell.ring();
        chan.try_send(1).unwrap();
        *now += 1;
        ex.on_tick(ms(*now));
        while ex.poll() {}
        let _ = ex.next_deadline();
    };

    // Warm up: first polls, first timer arming, the recorder's event vector reaching its size.
    let mut now = 0;
    for _ in 0..4 {
        run(&mut now);
    }
    WATCHED.with(|w| w.set(true));
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut joined = false;
    for _ in 0..cycles {
        bell.ring();
        chan.try_send(1).unwrap();
        now += 1;
        ex.on_tick(ms(now));
        while ex.poll() {}
        let _ = ex.next_deadline();
        if !joined {
            joined = Pin::new(&mut short_task)
                .poll(&mut Context::from_waker(&waker))
                .is_ready();
        }
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    WATCHED.with(|w| w.set(false));
    let pended = pends.0.load(Ordering::SeqCst) as u64;

    assert_eq!(
        after - before,
        0,
        "allocations during {cycles} poll/wake cycles"
    );
    // The cycles did real work through every primitive.
    assert!(joined);
    assert!(pended >= cycles, "every cycle pended: {pended}");
    assert_eq!(rang.load(Ordering::SeqCst) as u64, cycles + 4);
    assert_eq!(received.load(Ordering::SeqCst) as u64, cycles + 4);
    assert!(ticks.load(Ordering::SeqCst) as u64 >= cycles / 2);
    assert!(timeouts.load(Ordering::SeqCst) as u64 >= cycles / 2 - 1);

    // The counter itself works: a spawn is seen.
    WATCHED.with(|w| w.set(true));
    let before = ALLOCS.load(Ordering::SeqCst);
    let extra = ex.spawn(async {});
    let spawned = ALLOCS.load(Ordering::SeqCst) - before;
    WATCHED.with(|w| w.set(false));
    assert!(spawned >= 1);

    drop((doorbell_task, channel_task, timer_task, extra));
}

/// Sets a flag when dropped.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_spawn_without_memory_gives_the_future_back_and_changes_nothing() {
    let pends = Arc::new(CountPender::default());
    let ex: Executor<StdLock, _> = Executor::new(pends.clone());
    let dropped = Arc::new(AtomicUsize::new(0));

    // Nothing spawned yet: even the run queue's first slot cannot be had.
    let flag = Dropped(dropped.clone());
    REFUSE.with(|r| r.set(true));
    let refused = ex.try_spawn(async move {
        let _flag = flag;
        5u32
    });
    REFUSE.with(|r| r.set(false));
    let Err(fut) = refused else {
        panic!("a spawn without memory succeeded");
    };
    assert_eq!((ex.task_count(), pends.0.load(Ordering::SeqCst)), (0, 0));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the future came back whole"
    );
    assert_eq!(isboot_executor::host::block_on(fut), 5);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    // With room in the run queue, it is the task's own block that fails; a maker is not called.
    let keep = ex.spawn(std::future::pending::<()>());
    assert!(!ex.poll());
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    REFUSE.with(|r| r.set(true));
    let refused = ex.try_spawn_with(move || {
        m.fetch_add(1, Ordering::SeqCst);
        async { 1u8 }
    });
    REFUSE.with(|r| r.set(false));
    assert!(refused.is_err());
    assert_eq!(made.load(Ordering::SeqCst), 0, "the maker was not called");
    assert_eq!(ex.task_count(), 1, "the refused task is not counted");

    // And once memory is back, the same maker spawns and runs (made in the task's memory).
    let mut task = match refused {
        Err(make) => match ex.try_spawn_with(make) {
            Ok(t) => t,
            Err(_) => panic!("memory is back"),
        },
        Ok(_) => unreachable!(),
    };
    assert!(!ex.poll());
    assert_eq!(made.load(Ordering::SeqCst), 1);
    let (_, waker) = CountingWaker::new();
    assert_eq!(
        Pin::new(&mut task).poll(&mut Context::from_waker(&waker)),
        std::task::Poll::Ready(1)
    );
    drop((keep, task));
    assert!(!ex.poll());
    assert_eq!(ex.task_count(), 0);
}

/// The channel's buffer is one allocation made when the channel is (so that a channel of large
/// items is never assembled on a stack), and filling it to capacity, refusing more and
/// draining it never allocates.
#[test]
fn a_channel_allocates_its_buffer_when_made_and_never_after() {
    type Big = Channel<StdLock, [u8; 512], 4>;
    REFUSE.with(|r| r.set(true));
    let refused = Big::try_new();
    REFUSE.with(|r| r.set(false));
    assert!(refused.is_err(), "made without memory");

    let chan = Big::try_new().expect("memory is back");
    WATCHED.with(|w| w.set(true));
    let before = MINE.with(Cell::get);
    for round in 0..3u8 {
        for i in 0..4u8 {
            assert!(chan.try_send([round ^ i; 512]).is_ok(), "room for 4");
        }
        assert!(matches!(
            chan.try_send([9; 512]),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(chan.len(), 4);
        for i in 0..4u8 {
            assert_eq!(chan.try_recv().map(|b| b[0]), Ok(round ^ i));
        }
    }
    let allocated = MINE.with(Cell::get) - before;
    WATCHED.with(|w| w.set(false));
    assert_eq!(allocated, 0);
}
