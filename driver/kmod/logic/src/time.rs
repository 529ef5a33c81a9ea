// SPDX-License-Identifier: BSD-2-Clause
//! `sbintime_t` arithmetic for the executor's clock and its callout.
//!
//! The kernel's monotonic clock (`getsbinuptime`) counts seconds in 32.32 fixed point. The executor
//! thinks in nanoseconds. Conversions here avoid 128-bit division (no `__udivti3` in a kernel
//! module) and round toward the future when a deadline becomes a callout time, so a timer never
//! fires before the deadline it serves.

/// One second in `sbintime_t` (`SBT_1S`).
pub const SBT_1S: i64 = 1 << 32;
const NS_PER_S: u64 = 1_000_000_000;

/// Nanoseconds since boot from an uptime in `sbintime_t` (negative values count as 0).
pub fn sbt_to_ns(sbt: i64) -> u64 {
    let sbt = u64::try_from(sbt).unwrap_or(0);
    let secs = sbt >> 32;
    let frac = sbt & 0xffff_ffff;
    // frac < 2^32 and NS_PER_S < 2^30, so the product fits in 62 bits.
    secs.saturating_mul(NS_PER_S)
        .saturating_add(frac.saturating_mul(NS_PER_S) >> 32)
}

/// `sbintime_t` for a nanosecond value, rounded up; saturates at `i64::MAX`.
pub fn ns_to_sbt_ceil(ns: u64) -> i64 {
    let secs = ns / NS_PER_S;
    let rem = ns % NS_PER_S;
    // rem < 10^9 < 2^30: rem << 32 fits in 62 bits.
    let frac = (rem << 32).div_ceil(NS_PER_S);
    let whole = if secs >= (1 << 31) {
        u64::MAX
    } else {
        (secs << 32).saturating_add(frac)
    };
    i64::try_from(whole).unwrap_or(i64::MAX)
}

/// The absolute `sbintime_t` to arm the callout with for a deadline in nanoseconds since boot, or
/// `None` when the deadline has already passed (poll now instead of arming a timer).
pub fn callout_time(deadline_ns: u64, now_ns: u64) -> Option<i64> {
    (deadline_ns > now_ns).then(|| ns_to_sbt_ceil(deadline_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_convert_exactly() {
        assert_eq!(sbt_to_ns(SBT_1S), NS_PER_S);
        assert_eq!(ns_to_sbt_ceil(NS_PER_S), SBT_1S);
        assert_eq!(sbt_to_ns(3600 * SBT_1S), 3600 * NS_PER_S);
    }

    #[test]
    fn round_trip_never_moves_a_deadline_earlier() {
        for ns in [
            1u64,
            999,
            1_000_000,
            123_456_789,
            5 * NS_PER_S + 1,
            86_400 * NS_PER_S + 7,
        ] {
            let back = sbt_to_ns(ns_to_sbt_ceil(ns));
            assert!(back >= ns, "{ns} came back as {back}");
            // ...and by less than one sbintime tick (~0.23 ns) plus truncation.
            assert!(back - ns <= 1, "{ns} came back as {back}");
        }
    }

    #[test]
    fn extremes_saturate_instead_of_wrapping() {
        assert_eq!(sbt_to_ns(-5), 0);
        assert_eq!(ns_to_sbt_ceil(u64::MAX), i64::MAX);
        assert!(sbt_to_ns(i64::MAX) > 0);
    }

    #[test]
    fn past_deadlines_poll_now() {
        assert_eq!(callout_time(10, 10), None);
        assert_eq!(callout_time(5, 10), None);
        assert_eq!(callout_time(2 * NS_PER_S, NS_PER_S), Some(2 * SBT_1S));
    }
}
