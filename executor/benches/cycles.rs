// SPDX-License-Identifier: BSD-2-Clause
//! Cost of the executor's hot paths on the host (std lock, counting pender): a doorbell wake and
//! poll, a channel send and receive, a timer armed and fired. Run with
//! `cargo bench -p isboot-executor --bench cycles`; prints nanoseconds per cycle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use isboot_executor::host::StdLock;
use isboot_executor::{Channel, Doorbell, Executor, Instant, Pender};

#[derive(Default)]
struct CountPender(AtomicUsize);

impl Pender for CountPender {
    fn pend(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Ex = Executor<StdLock, Arc<CountPender>>;

fn report(name: &str, n: u64, t: Duration) {
    println!(
        "{name:<36} {:>8.1} ns/cycle ({n} cycles)",
        t.as_nanos() as f64 / n as f64
    );
}

fn doorbell(n: u64) {
    let ex: Ex = Executor::new(Arc::default());
    let bell = Arc::new(Doorbell::new());
    let b = bell.clone();
    let _task = ex.spawn(async move {
        loop {
            b.wait().await;
        }
    });
    while ex.poll() {}
    let start = StdInstant::now();
    for _ in 0..n {
        bell.ring();
        let _ = ex.poll();
    }
    report("doorbell ring + poll", n, start.elapsed());
}

fn channel(n: u64) {
    let ex: Ex = Executor::new(Arc::default());
    let chan: Arc<Channel<StdLock, u64, 64>> = Arc::new(Channel::new());
    let c = chan.clone();
    let _task = ex.spawn(async move { while c.recv().await.is_some() {} });
    while ex.poll() {}
    let start = StdInstant::now();
    for i in 0..n {
        let _ = chan.try_send(i);
        let _ = ex.poll();
    }
    report("channel try_send + poll", n, start.elapsed());
}

fn timer(n: u64) {
    let ex: Ex = Executor::new(Arc::default());
    let timer = ex.timer();
    let _task = ex.spawn(async move {
        loop {
            timer.sleep(Duration::from_nanos(1)).await;
        }
    });
    while ex.poll() {}
    let start = StdInstant::now();
    for i in 1..=n {
        ex.on_tick(Instant::from_nanos(i));
        let _ = ex.poll();
        let _ = ex.next_deadline();
    }
    report("timer arm + on_tick + poll", n, start.elapsed());
}

fn spawn(n: u64) {
    let ex: Ex = Executor::new(Arc::default());
    let start = StdInstant::now();
    for _ in 0..n {
        let h = ex.spawn(async {});
        let _ = ex.poll();
        drop(h);
    }
    report("spawn + poll + drop handle", n, start.elapsed());
}

fn main() {
    let n = 1_000_000;
    doorbell(n);
    channel(n);
    timer(n);
    spawn(n / 10);
}
