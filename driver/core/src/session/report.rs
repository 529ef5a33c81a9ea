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
//! - logins that succeed while every connection dies soon after ([`STABLE_CONNECTION`]): the
//!   target takes the login but not what follows (digests it turned on anyway, a command it
//!   chokes on), so the boot waits forever unless someone is told.
//!
//! To keep a target that fails for ever from flooding the console, the same kind of failure
//! is shown at `Error` the first time and then after 2, 4, 8, ... in a row (each line says how
//! many); the others go to [`Level::Note`]. A connection lost on a healthy session (a target
//! restart, a network blip) is only a note: the session recovers by itself.

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
    /// Logins succeed, but each connection dies soon after (a target that accepts the login
    /// but not what follows it).
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

/// Counts failures of a kind in a row and decides their log level (see the module
/// documentation).
#[derive(Debug, Default)]
pub(super) struct Reporter {
    kind: Option<Kind>,
    repeats: u32,
}

impl Reporter {
    /// Counts one failure of `kind`; whether it is shown at [`Level::Error`].
    fn count(&mut self, kind: Kind) -> bool {
        if self.kind == Some(kind) {
            self.repeats = self.repeats.saturating_add(1);
        } else {
            self.kind = Some(kind);
            self.repeats = 1;
        }
        self.repeats.is_power_of_two()
    }

    /// A connect or login attempt to `target` failed with `e`; `giving_up` when no attempt
    /// follows.
    pub(super) fn attempt_failed<G: Log>(
        &mut self,
        log: &G,
        target: &str,
        e: &AttemptError,
        giving_up: bool,
    ) -> LastError {
        let login = match e {
            AttemptError::Login(l) => Some(discriminant(l)),
            _ => None,
        };
        let loud = self.count(Kind::Attempt(discriminant(e), login)) || giving_up;
        let level = if loud { Level::Error } else { Level::Note };
        let n = InARow(self.repeats, "failures");
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
            repeats: self.repeats,
        }
    }

    /// The connection to `target` ended after `lived` for `reason`, the `quick_drops`-th in a
    /// row that died before [`STABLE_CONNECTION`]. `note` is appended to the log line (a
    /// capped Time2Wait).
    pub(super) fn connection_lost<G: Log>(
        &mut self,
        log: &G,
        target: &str,
        reason: &Disconnect,
        lived: Duration,
        quick_drops: u32,
        note: &dyn core::fmt::Display,
    ) -> LastError {
        let violation = match reason {
            Disconnect::Violation(v) => Some(discriminant(v)),
            _ => None,
        };
        let serious = matches!(
            reason,
            Disconnect::Violation(_) | Disconnect::Rejected(_) | Disconnect::Internal(_)
        );
        let loud = self.count(Kind::Connection(discriminant(reason), violation));
        let dies = quick_drops >= 2 && lived < STABLE_CONNECTION;
        let level = if (serious || dies) && loud {
            Level::Error
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
                "isboot: {}: every login succeeds but the connection dies soon after ({} in a \
                 row, the last after {} ms): {}; reconnecting{}",
                target,
                quick_drops,
                ms,
                reason,
                note
            );
            LastError {
                failure: Failure::DiesAfterLogin,
                text: Line::new(format_args!(
                    "{target}: every login succeeds but the connection dies soon after \
                     ({quick_drops} in a row): {reason}"
                )),
                repeats: quick_drops,
            }
        } else {
            log!(
                log,
                level,
                "isboot: {}; reconnecting{}",
                reason,
                Then(InARow(self.repeats, "times"), note)
            );
            LastError {
                failure: Failure::Connection,
                text: Line::new(format_args!("{reason}")),
                repeats: self.repeats,
            }
        }
    }

    /// A connection that lived [`STABLE_CONNECTION`] ended: what failed before is history.
    pub(super) fn healthy(&mut self) {
        self.kind = None;
        self.repeats = 0;
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
