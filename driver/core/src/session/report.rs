// SPDX-License-Identifier: BSD-2-Clause
//! What the admin and the platform learn when an attempt fails or a connection is lost.
//!
//! Every failure becomes the session's [`LastError`] (in [`Status`](super::Status), and handed
//! to [`Events::error`] for the kernel's `net.isboot.session.last_error`), and one log line.
//! The line is at [`Level::Error`], shown at the default `net.isboot.debug=0`, when it names a
//! cause the admin must act on:
//!
//! - a failed login (the refusal and the likely key, an unreachable portal, ...);
//! - a protocol violation, a rejected PDU or an internal error (a digest mismatch, a DataSN
//!   gap): these used to show only as "command timed out" after silent reconnects;
//! - logins that succeed while every connection dies on its first commands (soon after the
//!   login, [`STABLE_CONNECTION`], with no command completed on it), twice or more in a row:
//!   the target takes the login but not what follows (digests it turned on anyway, a command
//!   it chokes on), so the boot waits forever unless someone is told.
//!
//! To keep a target that fails for ever from flooding the console, the same kind of failure
//! is shown at `Error` the first time and then after 2, 4, 8, ... in a row (each line says how
//! many); the others go to [`Level::Info`]. A connection lost on a healthy session (a target
//! restart, a network blip) is only a note (a milestone: "reconnecting"): the session recovers
//! by itself.

use core::mem::{discriminant, Discriminant};
use core::time::Duration;

use super::connect::AttemptError;
use super::engine::{Disconnect, Violation};
use super::recovery::STABLE_CONNECTION;
use crate::escape::Line;
use crate::log;
use crate::login::LoginError;
use crate::port::{Level, Log};

/// Longest [`LastError::text`], in bytes (a sysctl string).
pub const LAST_ERROR_LEN: usize = 240;

/// What failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A connect or login attempt.
    Login,
    /// An established connection was lost.
    Connection,
    /// Logins succeed, but each connection dies on its first commands (a target that accepts
    /// the login but not what follows it).
    DiesAfterLogin,
}

/// The last failure of a session, as a platform publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastError {
    pub failure: Failure,
    /// The cause in one escaped line, as the log says it (without "isboot: ").
    pub text: Line<LAST_ERROR_LEN>,
    /// Failures of this kind in a row: failed attempts, lost connections, or for
    /// [`Failure::DiesAfterLogin`] the connections that died soon after their login.
    pub repeats: u32,
}

/// The kind of a failure, for counting repeats: a cause that differs only in its numbers (the
/// ITT, the DataSN) is the same cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Attempt(Discriminant<AttemptError>, Option<Discriminant<LoginError>>),
    Connection(Discriminant<Disconnect>, Option<Discriminant<Violation>>),
}

/// Failures of one kind in a row.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    kind: Option<Kind>,
    repeats: u32,
}

impl Run {
    /// Counts one failure of `kind`; whether it is one to show at [`Level::Error`] (the
    /// first, the second, the fourth, ...).
    fn count(&mut self, kind: Kind) -> bool {
        if self.kind == Some(kind) {
            self.repeats = self.repeats.saturating_add(1);
        } else {
            self.kind = Some(kind);
            self.repeats = 1;
        }
        self.repeats.is_power_of_two()
    }
}

/// Counts failures of a kind in a row and decides their log level (see the module
/// documentation). Failed attempts and lost connections are counted apart, so that a target
/// that flaps (a login refused, one that works, its connection lost, ...) still counts each
/// up; only a connection that lived [`STABLE_CONNECTION`] starts the counts again.
#[derive(Debug, Default)]
pub(super) struct Reporter {
    attempts: Run,
    connections: Run,
    /// Connections in a row lost soon after their login with no command completed.
    barren: u32,
}

impl Reporter {
    /// A connect or login attempt to `target` failed with `e`; `giving_up` when no attempt
    /// follows.
    #[inline(never)]
    pub(super) fn attempt_failed(
        &mut self,
        log: &dyn Log,
        target: &str,
        e: &AttemptError,
        giving_up: bool,
    ) -> LastError {
        let login = match e {
            AttemptError::Login(l) => Some(discriminant(l)),
            _ => None,
        };
        let loud = self.attempts.count(Kind::Attempt(discriminant(e), login)) || giving_up;
        let repeats = self.attempts.repeats;
        // The repeats in between are details: at Note they would print at the kernel's
        // default level (where Note is a milestone) and flood the console after all.
        let level = if loud { Level::Error } else { Level::Info };
        let n = InARow(repeats, "failures");
        if giving_up {
            log!(
                log,
                level,
                "isboot: login to {} failed: {}; giving up{}",
                target,
                e,
                n
            );
        } else {
            log!(
                log,
                level,
                "isboot: login to {} failed: {}; retrying{}",
                target,
                e,
                n
            );
        }
        LastError {
            failure: Failure::Login,
            text: Line::new(format_args!("login to {target} failed: {e}")),
            repeats,
        }
    }

    /// The connection to `target` ended after `lived` for `reason`; `progressed` when a
    /// command completed on it. `note` is appended to the log line (a capped Time2Wait).
    #[inline(never)]
    pub(super) fn connection_lost(
        &mut self,
        log: &dyn Log,
        target: &str,
        reason: &Disconnect,
        lived: Duration,
        progressed: bool,
        note: &dyn core::fmt::Display,
    ) -> LastError {
        self.barren = if progressed || lived >= STABLE_CONNECTION {
            0
        } else {
            self.barren.saturating_add(1)
        };
        let barren = self.barren;
        let violation = match reason {
            Disconnect::Violation(v) => Some(discriminant(v)),
            _ => None,
        };
        let serious = matches!(
            reason,
            Disconnect::Violation(_) | Disconnect::Rejected(_) | Disconnect::Internal(_)
        );
        let loud = self
            .connections
            .count(Kind::Connection(discriminant(reason), violation));
        let repeats = self.connections.repeats;
        let dies = barren >= 2;
        // Dying connections are counted by themselves: their causes may vary.
        // A lost connection on a healthy session is a milestone (Note: "reconnecting"); the
        // repeats of a failure already shown at Error are details (Info), as in attempt_failed.
        let level = if (dies && barren.is_power_of_two()) || (!dies && serious && loud) {
            Level::Error
        } else if dies || serious {
            Level::Info
        } else {
            Level::Note
        };
        if dies {
            // Milliseconds without u128 arithmetic (kernel targets).
            let ms = lived
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(lived.subsec_millis()));
            log!(
                log,
                level,
                "isboot: {}: every login succeeds but the connection dies on its first commands \
                 ({} in a row, the last after {} ms): {}; reconnecting{}",
                target,
                barren,
                ms,
                reason,
                note
            );
            LastError {
                failure: Failure::DiesAfterLogin,
                text: Line::new(format_args!(
                    "{target}: every login succeeds but the connection dies on its first \
                     commands ({barren} in a row): {reason}"
                )),
                repeats: barren,
            }
        } else {
            log!(
                log,
                level,
                "isboot: {}; reconnecting{}",
                reason,
                Then(InARow(repeats, "times"), note)
            );
            LastError {
                failure: Failure::Connection,
                text: Line::new(format_args!("{reason}")),
                repeats,
            }
        }
    }

    /// A connection that lived [`STABLE_CONNECTION`] ended: what failed before is history.
    pub(super) fn healthy(&mut self) {
        *self = Reporter::default();
    }
}

/// Two displays, one after the other.
struct Then<A, B>(A, B);

impl<A: core::fmt::Display, B: core::fmt::Display> core::fmt::Display for Then<A, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// `" (N failures in a row)"` from the second on.
struct InARow(u32, &'static str);

impl core::fmt::Display for InARow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 > 1 {
            write!(f, " ({} {} in a row)", self.0, self.1)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu;
    use crate::port::IoError;
    use alloc::string::String;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<(Level, String)>>);

    impl Log for Lines {
        fn enabled(&self, _level: Level) -> bool {
            true
        }
        fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
            self.0
                .lock()
                .expect("lines")
                .push((level, alloc::format!("{args}")));
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;
    const RESET: Disconnect = Disconnect::Io(IoError::Reset);

    fn lost(
        r: &mut Reporter,
        log: &Lines,
        d: &Disconnect,
        lived: u64,
        progressed: bool,
    ) -> LastError {
        r.connection_lost(log, "t", d, S(lived), progressed, &"")
    }

    #[test]
    fn only_connections_that_complete_nothing_count_as_dying_after_login() {
        let (mut r, log) = (Reporter::default(), Lines::default());
        // Resets of connections that moved commands: a flaky network, not a target that
        // refuses what follows the login; only notes.
        for _ in 0..5 {
            let l = lost(&mut r, &log, &RESET, 1, true);
            assert_eq!(l.failure, Failure::Connection);
        }
        assert!(log.0.lock().unwrap().iter().all(|(l, _)| *l == Level::Note));
        // Two in a row with nothing completed: reported, at Error.
        assert_eq!(
            lost(&mut r, &log, &RESET, 1, false).failure,
            Failure::Connection
        );
        let l = lost(&mut r, &log, &RESET, 1, false);
        assert_eq!((l.failure, l.repeats), (Failure::DiesAfterLogin, 2));
        let (level, line) = log.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(level, Level::Error);
        assert!(
            line.starts_with("isboot: t: every login succeeds"),
            "{line}"
        );
        // A long-lived idle connection is not one.
        assert_eq!(
            lost(&mut r, &log, &RESET, 60, false).failure,
            Failure::Connection
        );
        assert_eq!(
            lost(&mut r, &log, &RESET, 1, false).failure,
            Failure::Connection
        );
    }

    /// A target that flaps: a login refused, the next one works, its connection is lost, the
    /// next login refused again, ... The refusals still count up, so the console gets lines 1, 2,
    /// 4, 8 of them, not one per refusal.
    #[test]
    fn a_flapping_target_does_not_flood_the_console() {
        let (mut r, log) = (Reporter::default(), Lines::default());
        let refused = AttemptError::Io(IoError::Reset);
        let mut loud = Vec::new();
        for _ in 0..8 {
            r.attempt_failed(&log, "t", &refused, false);
            loud.push(log.0.lock().unwrap().last().unwrap().0 == Level::Error);
            lost(&mut r, &log, &RESET, 3, true);
        }
        assert_eq!(loud, [true, true, false, true, false, false, false, true]);
        // A connection that lived long enough: the next refusal is news again.
        lost(&mut r, &log, &RESET, 60, true);
        r.healthy();
        let l = r.attempt_failed(&log, "t", &refused, false);
        assert_eq!(l.repeats, 1);
        assert_eq!(log.0.lock().unwrap().last().unwrap().0, Level::Error);
    }

    #[test]
    fn violations_of_one_kind_are_counted_whatever_their_numbers() {
        let (mut r, log) = (Reporter::default(), Lines::default());
        let gap = |got| {
            Disconnect::Violation(Violation::DataSn {
                itt: got,
                got: crate::sn::Sn(got),
                expected: crate::sn::Sn(0),
            })
        };
        for i in 1..=9u32 {
            let l = lost(&mut r, &log, &gap(i), 60, true);
            assert_eq!(l.repeats, i);
        }
        let loud: Vec<bool> = log
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(l, _)| *l == Level::Error)
            .collect();
        assert_eq!(
            loud,
            [true, true, false, true, false, false, false, true, false]
        );
        // Another kind starts again, at Error.
        let d = Disconnect::Violation(Violation::Pdu(pdu::Error::ReservedStage));
        assert_eq!(lost(&mut r, &log, &d, 60, true).repeats, 1);
        assert_eq!(log.0.lock().unwrap().last().unwrap().0, Level::Error);
    }
}
