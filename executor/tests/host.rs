// SPDX-License-Identifier: BSD-2-Clause
//! The std platform: a driver thread that polls and keeps time, and `block_on`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::within;
use isboot_executor::host::{self, block_on, StdLock, TestRuntime};
use isboot_executor::{Channel, Doorbell, Elapsed};

#[test]
fn block_on_waits_for_a_spawned_task() {
    let rt = TestRuntime::new();
    let handle = rt.spawn(async { 6 * 7 });
    assert_eq!(block_on(handle), 42);
}

#[test]
fn sleep_on_the_host_clock_takes_at_least_its_duration() {
    let rt = TestRuntime::new();
    let timer = rt.timer();
    let start = host::now();
    let handle = rt.spawn(async move {
        timer.sleep(Duration::from_millis(20)).await;
        host::now()
    });
    let woke = block_on(handle);
    assert!(woke.saturating_duration_since(start) >= Duration::from_millis(20));
}

#[test]
fn a_timer_armed_from_block_on_rearms_the_driver() {
    let rt = TestRuntime::new();
    // The driver first sleeps with no deadline at all (nothing armed): only the pend on a new earliest
    // timer can wake it up for this sleep, which runs on the test thread, not on the driver.
    thread::sleep(Duration::from_millis(5));
    let timer = rt.timer();
    let start = host::now();
    within(move || block_on(timer.sleep(Duration::from_millis(10))));
    assert!(host::now().saturating_duration_since(start) >= Duration::from_millis(10));
}

#[test]
fn timeout_on_the_host_clock() {
    let rt = TestRuntime::new();
    let timer = rt.timer();
    let never = Doorbell::new();
    let deadline = timer.now() + Duration::from_millis(10);
    assert_eq!(
        block_on(timer.timeout(deadline, never.wait())),
        Err(Elapsed)
    );
    let rung = Doorbell::new();
    rung.ring();
    let deadline = timer.now() + Duration::from_secs(60);
    assert_eq!(block_on(timer.timeout(deadline, rung.wait())), Ok(()));
}

#[test]
fn a_producer_thread_feeds_a_task_through_a_channel() {
    // The pattern the host TCP transport uses: a blocking thread produces, rings, the task consumes.
    let rt = TestRuntime::new();
    let chan: Arc<Channel<StdLock, u32, 4>> = Arc::new(Channel::new());
    let c = chan.clone();
    let consumer = rt.spawn(async move {
        let mut total = 0;
        while let Some(v) = c.recv().await {
            total += v;
        }
        total
    });
    let producer = thread::spawn(move || {
        for v in 1..=100 {
            let mut item = v;
            while let Err(e) = chan.try_send(item) {
                item = e.into_inner();
                thread::yield_now();
            }
        }
        chan.close();
    });
    assert_eq!(block_on(consumer), 5050);
    producer.join().unwrap();
}

#[test]
fn dropping_the_runtime_drops_cancelled_tasks() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    {
        let rt = TestRuntime::new();
        let flag = Flag(dropped.clone());
        let handle = rt.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        drop(handle);
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}
