// SPDX-License-Identifier: BSD-2-Clause
//! Time as the platform reports it: a monotonic [`Instant`], the [`Timer`] handle, and the sleep and
//! timeout futures built on the executor's timer queue.
//!
//! Time enters only through `Executor::on_tick(now)`; futures compare against that value and never read
//! a clock themselves, so tests drive time by hand.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use crate::raw::timer::Clock;
pub use crate::raw::timer::Sleep;

/// A point on the platform's monotonic clock: nanoseconds since an arbitrary origin.
///
/// Arithmetic saturates instead of overflowing: 2^64 ns is 584 years, so saturation only ever turns an
/// absurd deadline into "never".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant, used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at [`Instant::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }

    /// Time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating, like [`Instant::saturating_add`].
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Handle to an executor's timer queue, from `Executor::timer`. Cloning it is a reference-count bump;
/// tasks clone it once when they are built, never per sleep.
#[derive(Clone)]
pub struct Timer {
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").field("now", &self.now()).finish()
    }
}

impl Timer {
    /// The platform clock if the executor was given one (`Config::clock`), else the clock as of the
    /// platform's last `on_tick`.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Completes once the clock reaches `deadline` (at once if it already has).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep<'_> {
        Sleep::new(self, deadline)
    }

    /// Completes `dur` after [`Timer::now`].
    pub fn sleep(&self, dur: Duration) -> Sleep<'_> {
        Sleep::new(self, self.now() + dur)
    }

    /// Runs `fut` until it completes or the clock reaches `deadline`, whichever is first. The future is
    /// polled before the deadline is checked, so a result that is ready wins over an expiry.
    pub fn timeout<F: Future>(&self, deadline: Instant, fut: F) -> Timeout<'_, F> {
        Timeout {
            fut,
            sleep: Sleep::new(self, deadline),
        }
    }
}

/// The deadline of a [`Timeout`] passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline passed")
    }
}

pin_project! {
    /// Future returned by [`Timer::timeout`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<'t, F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Sleep<'t>,
    }
}

impl<F: Future> Future for Timeout<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        this.sleep.poll(cx).map(|()| Err(Elapsed))
    }
}
