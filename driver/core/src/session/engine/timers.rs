// SPDX-License-Identifier: BSD-2-Clause
//! Every deadline of the full feature phase, in one place: the keepalive, command timeouts
//! (which start ABORT TASK), the answers to task management and Logout requests, and the
//! orderly shutdown's wait for outstanding commands. [`Engine::poll_at`] is the earliest of
//! them, [`Engine::on_timer`] runs what is due.

use core::time::Duration;

use isboot_executor::Instant;

use super::keepalive::Due;
use super::{Ctl, Disconnect, Engine, LogoutOutcome, Phase, Task};
use crate::mem;
use crate::pdu::LogoutReason;
use crate::scsi::{DataBuf, TransportError};

/// Timers of the full feature phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence from the target after which a NOP-Out ping is sent.
    pub nop_interval: Duration,
    /// How long a ping (or any PDU from the target) may take before the connection is dropped.
    pub nop_timeout: Duration,
    /// How long a task management request may take before the connection is dropped.
    pub tmf_timeout: Duration,
    /// How long an orderly logout may take (waiting for outstanding commands, then the Logout
    /// Response).
    pub logout_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            nop_interval: Duration::from_secs(5),
            nop_timeout: Duration::from_secs(15),
            tmf_timeout: Duration::from_secs(15),
            logout_timeout: Duration::from_secs(10),
        }
    }
}

impl<B: DataBuf> Engine<B> {
    /// The earliest instant at which [`Engine::on_timer`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |i: Instant| at = Some(at.map_or(i, |a| a.min(i)));
        match self.phase {
            Phase::Up | Phase::Closing => {
                consider(self.keepalive.deadline());
                if let Some((_, d)) = self.logout {
                    consider(d);
                }
                if let Some(d) = self.closing_deadline {
                    consider(d);
                }
                for r in &self.resets {
                    if let Some(d) = r.deadline {
                        consider(d);
                    }
                }
                for &(_, d) in &self.abort_deadlines {
                    consider(d);
                }
            }
            Phase::Down | Phase::Closed => {}
        }
        if self.phase != Phase::Closed {
            // Stops at the last occupied slot instead of walking the free ones behind it: this
            // runs every round of the session, and in the module (queue depth 16) the walk of
            // the whole table was ~60 instructions per I/O.
            for (_, t) in self.tasks.iter().take(self.tasks.len()) {
                if let Some(d) = t.deadline {
                    consider(d);
                }
            }
        }
        at
    }

    /// Runs whatever is due at `now`: pings, command timeouts (ABORT TASK), and the timeouts
    /// that drop the connection.
    pub fn on_timer(&mut self, now: Instant) -> Result<(), Disconnect> {
        let due = |t: &Task<B>| t.deadline.is_some_and(|d| d <= now);
        // Checked first so that the common case (nothing due) walks the table once.
        if self.tasks.iter().any(|(_, t)| due(t)) {
            for slot in self.slots() {
                if self.tasks.get(slot).is_some_and(due) {
                    self.start_abort(slot, TransportError::Timeout);
                }
            }
        }
        if !matches!(self.phase, Phase::Up | Phase::Closing) {
            return Ok(());
        }
        if self
            .resets
            .iter()
            .any(|r| r.deadline.is_some_and(|d| d <= now))
            || self.abort_deadlines.iter().any(|&(_, d)| d <= now)
        {
            return Err(Disconnect::TmfTimeout);
        }
        if self.logout.is_some_and(|(_, d)| d <= now) {
            if self.phase == Phase::Closing {
                self.logout_outcome = Some(LogoutOutcome::TimedOut);
                self.close();
                return Ok(());
            }
            return Err(Disconnect::LogoutTimeout);
        }
        if self.phase == Phase::Closing && self.closing_deadline.is_some_and(|d| d <= now) {
            // Outstanding commands did not finish in time: log out anyway (once).
            self.closing_deadline = None;
            if self.logout.is_none() {
                self.queue_shutdown_logout(now);
            }
        }
        match self.keepalive.due(now) {
            Due::Timeout => return Err(Disconnect::NopTimeout),
            Due::Ping => {
                let itt = self.alloc_itt();
                self.keepalive.pinged(itt, now);
                // One ping at a time: the queue has a place for it.
                if mem::push_back(&mut self.ctl, Ctl::Ping { itt }).is_err() {
                    debug_assert!(false, "internal error: control queue full");
                }
            }
            Due::Nothing => {}
        }
        Ok(())
    }

    pub(super) fn queue_shutdown_logout(&mut self, now: Instant) {
        let itt = self.alloc_itt();
        self.logout = Some((itt, now.saturating_add(self.timeouts.logout_timeout)));
        let logout = Ctl::Logout {
            itt,
            reason: LogoutReason::CloseSession,
        };
        if mem::push_back(&mut self.ctl, logout).is_err() {
            debug_assert!(false, "internal error: control queue full");
        }
    }
}
