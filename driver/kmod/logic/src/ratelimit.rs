// SPDX-License-Identifier: BSD-2-Clause
//! Repeats of a console line, limited: what `net.isboot.debug=0` prints is read at a hung boot,
//! where a session retrying a refused login every few seconds would otherwise push everything
//! else off the screen.
//!
//! A line is known by its text ([`key`]): "login to X failed: Y; retrying" repeats as it was,
//! while a new reason or a new target is a new line and always shows (and so is every line of
//! a listing such as the `hw.ibft.verbose` summary, which differ at least in their numbers).
//! The first time a line is seen it prints; again within [`INTERVAL_NS`] it is counted and not
//! printed; the first repeat after that prints with the count of those left out. A fixed table of [`SLOTS`] lines, the least recently printed one
//! replaced, so memory is bounded and a forgotten line at worst prints again.

/// How long a repeated line stays quiet.
pub const INTERVAL_NS: u64 = 30_000_000_000;
/// How many distinct lines are remembered.
pub const SLOTS: usize = 8;

/// FNV-1a over `text`.
pub fn key(text: &[u8]) -> u64 {
    text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What to do with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; `left_out` repeats were not printed since it last was.
    Print { left_out: u32 },
    /// A repeat within the interval: leave it out (it is counted).
    Quiet,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: u64,
    printed_ns: u64,
    left_out: u32,
}

/// The remembered lines.
#[derive(Debug)]
pub struct Repeats {
    slots: [Slot; SLOTS],
    /// `slots[..used]` hold lines; slots are taken in order and only `clear` frees them. The
    /// searches run over that many, not over a constant 8: the log's writer inlines `check`,
    /// and this crate's opt-level unrolled the constant ones there.
    used: usize,
}

impl Default for Repeats {
    fn default() -> Self {
        Self::new()
    }
}

impl Repeats {
    pub const fn new() -> Self {
        Repeats {
            slots: [Slot {
                key: 0,
                printed_ns: 0,
                left_out: 0,
            }; SLOTS],
            used: 0,
        }
    }

    /// The verdict for a line with `key` at `now_ns` (a monotonic clock).
    pub fn check(&mut self, key: u64, now_ns: u64) -> Verdict {
        let used = self.used;
        if let Some(s) = self.lines().iter_mut().find(|s| s.key == key) {
            if now_ns.saturating_sub(s.printed_ns) < INTERVAL_NS {
                s.left_out = s.left_out.saturating_add(1);
                return Verdict::Quiet;
            }
            let left_out = core::mem::take(&mut s.left_out);
            s.printed_ns = now_ns;
            return Verdict::Print { left_out };
        }
        // A new line: an unused slot, else the one printed longest ago.
        let victim = if used < SLOTS {
            self.used = used.saturating_add(1);
            self.slots.get_mut(used)
        } else {
            self.lines().iter_mut().min_by_key(|s| s.printed_ns)
        };
        if let Some(s) = victim {
            *s = Slot {
                key,
                printed_ns: now_ns,
                left_out: 0,
            };
        }
        Verdict::Print { left_out: 0 }
    }

    fn lines(&mut self) -> &mut [Slot] {
        let used = self.used;
        self.slots.get_mut(..used).unwrap_or_default()
    }

    /// Forgets every line: after the session recovered, its next failure is news again.
    pub fn clear(&mut self) {
        *self = Repeats::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_repeat_is_quiet_for_the_interval_then_prints_with_its_count() {
        let mut r = Repeats::new();
        let k = key(b"login to iqn.x at 192.0.2.1:3260 failed: refused; retrying");
        assert_eq!(r.check(k, 0), Verdict::Print { left_out: 0 });
        for t in 1..=5 {
            assert_eq!(r.check(k, t * S), Verdict::Quiet);
        }
        assert_eq!(r.check(k, 30 * S), Verdict::Print { left_out: 5 });
        assert_eq!(r.check(k, 31 * S), Verdict::Quiet);
        assert_eq!(r.check(k, 61 * S), Verdict::Print { left_out: 1 });
    }

    #[test]
    fn only_the_same_text_is_a_repeat() {
        assert_ne!(
            key(b"pair 0 nic 0: mac 52:54:00:12:34:56"),
            key(b"pair 0 nic 0: mac 52:54:00:12:34:57")
        );
        let mut r = Repeats::new();
        let refused = key(b"login failed: refused");
        let auth = key(b"login failed: authentication failed");
        assert_ne!(refused, auth);
        assert_eq!(r.check(refused, 0), Verdict::Print { left_out: 0 });
        assert_eq!(r.check(auth, S), Verdict::Print { left_out: 0 });
        assert_eq!(r.check(refused, 2 * S), Verdict::Quiet);
    }

    #[test]
    fn the_table_is_bounded_and_replaces_the_oldest_line() {
        let mut r = Repeats::new();
        for i in 0..SLOTS as u64 {
            assert_eq!(r.check(i + 1, i * S), Verdict::Print { left_out: 0 });
        }
        // A ninth line takes the slot of line 1 (printed longest ago) ...
        assert_eq!(r.check(100, 20 * S), Verdict::Print { left_out: 0 });
        // ... which therefore prints again (taking line 2's slot); the ninth is remembered.
        assert_eq!(r.check(1, 21 * S), Verdict::Print { left_out: 0 });
        assert_eq!(r.check(100, 22 * S), Verdict::Quiet);
        assert_eq!(r.check(3, 23 * S), Verdict::Quiet);
        r.clear();
        assert_eq!(r.check(100, 23 * S), Verdict::Print { left_out: 0 });
    }
}
