// SPDX-License-Identifier: BSD-2-Clause
//! Bounded waiting: every loop in the harness has a deadline and a step count.

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, at most until `timeout` has passed. The interval grows from
/// 5 ms to 100 ms, so a fast condition is seen quickly and a slow one costs little CPU.
pub fn until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(100));
    }
}
