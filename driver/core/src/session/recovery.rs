// SPDX-License-Identifier: BSD-2-Clause
//! The recovery policy: how long the session waits before the next connection attempt, as a
//! pure function of what happened (failed logins in a row, connections that died soon after
//! login, the target's Time2Wait) and a random jitter. The session task only sleeps for what
//! it says.
//!
//! - A failed attempt (connect or login) waits [`Backoff::delay`] for the number of failures
//!   in a row, and the session gives up after [`Backoff::max_attempts`] of them.
//! - A connection that lived [`STABLE_CONNECTION`] reconnects quickly: a quarter of the first
//!   backoff step, or the target's Time2Wait when it gave one.
//! - A connection that keeps dying soon after login (a command the target chokes on, a
//!   flapping link) backs off like failed logins, and the target's Time2Wait is then only a
//!   minimum: a target that drops every new connection with Time2Wait 0 (stuck in a restart
//!   loop) still gets the backoff instead of a login storm.

use core::time::Duration;

/// A connection that lasted this long counts as healthy when it drops.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// Reconnect pacing: the delay grows by `step` per failed attempt up to `max`, plus up to a
/// quarter of it as random jitter (so many initiators rebooting together do not hammer a
/// recovering target in lockstep).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub step: Duration,
    pub max: Duration,
    /// Failed attempts in a row before the session gives up; `None` retries forever (the default:
    /// a root disk must come back).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            step: Duration::from_secs(1),
            max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// Delay before attempt `failures + 1`, with `jitter` a random number.
    pub fn delay(&self, failures: u32, jitter: u32) -> Duration {
        let base = self.step.saturating_mul(failures.max(1)).min(self.max);
        // Milliseconds without u128 arithmetic (kernel targets).
        let quarter = base
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(base.subsec_millis()))
            / 4;
        let j = if quarter == 0 {
            0
        } else {
            u64::from(jitter)
                .checked_rem(quarter.saturating_add(1))
                .unwrap_or(0)
        };
        base.saturating_add(Duration::from_millis(j))
    }
}

/// What the policy remembers between attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Failed attempts in a row.
    failures: u32,
    /// Connections in a row that died before [`STABLE_CONNECTION`].
    quick_drops: u32,
}

impl Recovery {
    /// A login succeeded: failed attempts no longer count.
    pub(crate) fn logged_in(&mut self) {
        self.failures = 0;
    }

    /// An attempt failed: the delay before the next one, or `None` to give up.
    pub(crate) fn attempt_failed(&mut self, backoff: &Backoff, jitter: u32) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if backoff.max_attempts.is_some_and(|m| self.failures >= m) {
            return None;
        }
        Some(backoff.delay(self.failures, jitter))
    }

    /// A connection that was up for `lived` ended; `wait` is the Time2Wait the target asked
    /// for, if any. Returns the delay before reconnecting.
    pub(crate) fn connection_lost(
        &mut self,
        backoff: &Backoff,
        lived: Duration,
        wait: Option<Duration>,
        jitter: u32,
    ) -> Duration {
        if lived >= STABLE_CONNECTION {
            self.quick_drops = 0;
        }
        self.quick_drops = self.quick_drops.saturating_add(1);
        let first = self.quick_drops <= 1;
        let paced = if first {
            backoff.delay(0, jitter).checked_div(4).unwrap_or_default()
        } else {
            backoff.delay(self.quick_drops.saturating_sub(1), jitter)
        };
        match wait {
            Some(w) if first => w,
            Some(w) => w.max(paced),
            None => paced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let b = Backoff::default();
        for (failures, base) in [(0u32, 1u64), (1, 1), (2, 2), (5, 5), (10, 10), (1000, 10)] {
            for jitter in [0u32, 1, 777, u32::MAX] {
                let d = b.delay(failures, jitter);
                let base = Duration::from_secs(base);
                assert!(
                    d >= base && d <= base + base / 4,
                    "{failures} {jitter}: {d:?}"
                );
            }
        }
        assert_ne!(
            b.delay(3, 1),
            b.delay(3, 2),
            "jitter spreads initiators apart"
        );
    }

    #[test]
    fn failed_attempts_back_off_and_give_up_at_the_limit() {
        let backoff = Backoff {
            max_attempts: Some(3),
            ..Backoff::default()
        };
        let mut r = Recovery::default();
        assert_eq!(r.attempt_failed(&backoff, 0), Some(S(1)));
        assert_eq!(r.attempt_failed(&backoff, 0), Some(S(2)));
        assert_eq!(
            r.attempt_failed(&backoff, 0),
            None,
            "the third failure gives up"
        );
        let mut r = Recovery::default();
        r.attempt_failed(&backoff, 0);
        r.attempt_failed(&backoff, 0);
        r.logged_in();
        assert_eq!(
            r.attempt_failed(&backoff, 0),
            Some(S(1)),
            "a login resets the count"
        );
        let forever = Backoff::default();
        let mut r = Recovery::default();
        for _ in 0..100 {
            assert!(r.attempt_failed(&forever, 0).is_some());
        }
        assert_eq!(r.failures, 100);
    }

    #[test]
    fn a_healthy_connection_reconnects_at_once_or_after_its_time2wait() {
        let b = Backoff::default();
        let mut r = Recovery::default();
        assert_eq!(
            r.connection_lost(&b, S(3600), None, 0),
            Duration::from_millis(250)
        );
        assert_eq!(r.connection_lost(&b, S(60), Some(S(0)), 0), S(0));
        assert_eq!(r.connection_lost(&b, S(30), Some(S(20)), 0), S(20));
    }

    #[test]
    fn quick_drops_back_off_and_time2wait_becomes_a_minimum() {
        let b = Backoff::default();
        let mut r = Recovery::default();
        // A target in a restart loop: every connection dies at once with Time2Wait 0.
        let delays: alloc::vec::Vec<Duration> = (0..12)
            .map(|_| r.connection_lost(&b, S(1), Some(S(0)), 0))
            .collect();
        assert_eq!(delays[0], S(0), "the first drop honours Time2Wait");
        assert_eq!(&delays[1..4], [S(1), S(2), S(3)]);
        assert_eq!(delays[11], S(10), "capped at Backoff::max");
        // A Time2Wait above the backoff still wins.
        assert_eq!(r.connection_lost(&b, S(1), Some(S(60)), 0), S(60));
        // A connection that lived long enough starts the count again.
        assert_eq!(
            r.connection_lost(&b, S(30), None, 0),
            Duration::from_millis(250)
        );
        assert_eq!(r.connection_lost(&b, S(29), None, 0), S(1));
    }
}
