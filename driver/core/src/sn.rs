// SPDX-License-Identifier: BSD-2-Clause
//! RFC 1982 serial-number arithmetic for iSCSI's 32-bit sequence numbers (CmdSN, ExpCmdSN,
//! MaxCmdSN, StatSN, ExpStatSN, DataSN, R2TSN; RFC 7143 §4.2.2.1).
//!
//! Sequence numbers wrap at 2^32, so `<` on the raw value is wrong near the wrap. `Sn` has no
//! `PartialOrd`: every comparison is a named method following RFC 1982 §3.2, where two numbers
//! exactly 2^31 apart are neither before nor after each other. Arithmetic wraps; nothing panics.

use core::fmt;

/// Half the serial-number space: the largest distance RFC 1982 still orders.
const HALF: u32 = 1 << 31;

/// A 32-bit serial number (RFC 1982, SERIAL_BITS = 32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sn(pub u32);

impl Sn {
    /// The raw wire value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `self < other` in serial-number order.
    pub const fn is_before(self, other: Sn) -> bool {
        let d = other.0.wrapping_sub(self.0);
        d != 0 && d < HALF
    }

    /// `self > other` in serial-number order.
    pub const fn is_after(self, other: Sn) -> bool {
        other.is_before(self)
    }

    /// `self <= other` in serial-number order.
    pub const fn is_before_or_eq(self, other: Sn) -> bool {
        self.0 == other.0 || self.is_before(other)
    }

    /// `self >= other` in serial-number order.
    pub const fn is_after_or_eq(self, other: Sn) -> bool {
        self.0 == other.0 || self.is_after(other)
    }

    /// `lo <= self <= hi` in serial-number order, e.g. a CmdSN inside `[ExpCmdSN, MaxCmdSN]`.
    ///
    /// Measured as distances from `lo`, so a window that straddles the wrap works, and an empty
    /// window (`hi == lo - 1`, RFC 7143 §4.2.2.1) contains nothing.
    pub const fn is_within(self, lo: Sn, hi: Sn) -> bool {
        let span = hi.0.wrapping_sub(lo.0);
        let off = self.0.wrapping_sub(lo.0);
        span < HALF && off <= span
    }

    /// The following serial number (wraps from 2^32-1 to 0).
    #[must_use]
    pub const fn next(self) -> Sn {
        Sn(self.0.wrapping_add(1))
    }

    /// `self + n`, wrapping. RFC 1982 defines addition only for `n < 2^31`; larger `n` still
    /// wraps but the result no longer compares as "after" `self`.
    #[must_use]
    pub const fn add(self, n: u32) -> Sn {
        Sn(self.0.wrapping_add(n))
    }

    /// How many steps forward from `self` reach `other` (`other - self` modulo 2^32).
    pub const fn distance(self, other: Sn) -> u32 {
        other.0.wrapping_sub(self.0)
    }

    /// Whichever of the two is later in serial order (`self` when they are unordered or equal).
    #[must_use]
    pub const fn max(self, other: Sn) -> Sn {
        if other.is_after(self) {
            other
        } else {
            self
        }
    }
}

impl From<u32> for Sn {
    fn from(v: u32) -> Self {
        Sn(v)
    }
}

impl From<Sn> for u32 {
    fn from(v: Sn) -> Self {
        v.0
    }
}

impl fmt::Display for Sn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_without_wrap() {
        assert!(Sn(1).is_before(Sn(2)));
        assert!(!Sn(2).is_before(Sn(1)));
        assert!(Sn(2).is_after(Sn(1)));
        assert!(!Sn(5).is_before(Sn(5)));
        assert!(!Sn(5).is_after(Sn(5)));
        assert!(Sn(5).is_before_or_eq(Sn(5)));
        assert!(Sn(5).is_after_or_eq(Sn(5)));
        assert!(!Sn(6).is_before_or_eq(Sn(5)));
        assert!(!Sn(4).is_after_or_eq(Sn(5)));
    }

    #[test]
    fn ordering_across_the_wrap() {
        let top = Sn(u32::MAX);
        assert!(top.is_before(Sn(0)));
        assert!(Sn(0).is_after(top));
        assert!(Sn(0xffff_fff0).is_before(Sn(0x10)));
        assert!(Sn(0x10).is_after(Sn(0xffff_fff0)));
        assert!(!Sn(0x10).is_before(Sn(0xffff_fff0)));
        assert_eq!(top.next(), Sn(0));
        assert_eq!(Sn(0xffff_fffe).add(5), Sn(3));
        assert_eq!(Sn(0xffff_fffe).distance(Sn(3)), 5);
        assert_eq!(Sn(3).distance(Sn(0xffff_fffe)), u32::MAX - 4);
    }

    #[test]
    fn half_space_apart_is_unordered() {
        // RFC 1982 §3.2: i1 and i1 + 2^31 are not comparable.
        let a = Sn(7);
        let b = a.add(1 << 31);
        assert!(!a.is_before(b));
        assert!(!a.is_after(b));
        assert!(!b.is_before(a));
        assert!(!b.is_after(a));
        // One less than half is still ordered.
        assert!(a.is_before(a.add((1 << 31) - 1)));
        assert!(a.add((1 << 31) + 1).is_before(a));
    }

    #[test]
    fn window_membership_straddling_the_wrap() {
        let lo = Sn(0xffff_fffe);
        let hi = Sn(1);
        for v in [0xffff_fffe, 0xffff_ffff, 0, 1] {
            assert!(Sn(v).is_within(lo, hi), "{v:#x}");
        }
        assert!(!Sn(2).is_within(lo, hi));
        assert!(!Sn(0xffff_fffd).is_within(lo, hi));
        // MaxCmdSN = ExpCmdSN - 1: the window is closed.
        let exp = Sn(0);
        assert!(!exp.is_within(exp, Sn(u32::MAX)));
        assert!(!Sn(1).is_within(exp, Sn(u32::MAX)));
        // A one-slot window.
        assert!(Sn(9).is_within(Sn(9), Sn(9)));
        assert!(!Sn(10).is_within(Sn(9), Sn(9)));
    }

    #[test]
    fn max_prefers_the_later_number() {
        assert_eq!(Sn(u32::MAX).max(Sn(2)), Sn(2));
        assert_eq!(Sn(2).max(Sn(u32::MAX)), Sn(2));
        assert_eq!(Sn(4).max(Sn(4)), Sn(4));
    }

    #[test]
    fn conversions_and_display() {
        assert_eq!(u32::from(Sn::from(42)), 42);
        assert_eq!(Sn(42).get(), 42);
        assert_eq!(alloc::format!("{}", Sn(42)), "42");
    }
}
