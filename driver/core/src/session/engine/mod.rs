// SPDX-License-Identifier: BSD-2-Clause
//! The full feature phase as a sans-IO state machine (RFC 7143 §4, §11).
//!
//! [`Engine`] is fed received PDUs and `now`, and asked for PDUs to send and for the next
//! deadline ([`Engine::poll_at`]); it never touches a socket or a clock. It outlives
//! connections: requests stay in its table across a connection loss and are replayed by
//! [`Engine::connected`] after the next login.
//!
//! Where each concern lives:
//! - this file: the engine's state, requests in (`submit`, `abort`, `reset_lun`, `shutdown`),
//!   connections coming and going (`connected` replays, `disconnected`), completions out;
//! - `rx.rs`: receiving, one handler per target opcode;
//! - `tx.rs`: sending, in priority order;
//! - `timers.rs`: every deadline ([`Timeouts`]);
//! - `window.rs`: the command window and StatSN ([`CmdWindow`](window::CmdWindow));
//! - `keepalive.rs`: NOP pings ([`Keepalive`](keepalive::Keepalive));
//! - `error.rs`: why a connection must be dropped ([`Disconnect`], [`Violation`]).
//!
//! Receiving is split so that Data-In goes straight into the request's buffer:
//! [`Engine::rx_header`] checks the header and says where its data segment belongs
//! ([`RxSink`]); the reader then reads the data into [`Engine::rx_task_buf`] or its own scratch
//! buffer and calls [`Engine::rx_finish`]. [`Engine::receive`] does all three for a PDU already
//! in memory (tests, the login phase).
//!
//! Every field the target sends is checked before it is used; a violation is a [`Disconnect`] error,
//! after which the connection must be dropped and re-established ("...; reconnecting").
//!
//! # Phases
//! ```text
//!            connected()                     shutdown()
//!   Down ────────────────────► Up ─────────────────────────► Closing
//!    ▲ │◄──── disconnected() ───┘                              │
//!    │ │                                    Logout Response,    │
//!    │ │ shutdown() / close()               its timeout, close()│
//!    │ └───────────────────────────► Closed ◄───────────────────┘
//!    └── (requests wait here for the next login; Closed is final)
//! ```
//! `Down`: no connection, requests queue and may time out locally. `Up`: commands flow within
//! the window. `Closing`: no new commands; the outstanding ones may finish, then Logout.
//! `Closed`: every request has completed; nothing more happens.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use isboot_executor::Instant;

use super::table::{Table, NON_TASK_ITT};
use crate::lun::Lun;
use crate::pdu::{LogoutReason, LogoutResponseCode, Pdu, Residual, TargetSns};
use crate::port::TmfError;
use crate::scsi::{Completion, Direction, ScsiRequest, ScsiResult, Sense, TransportError};
use crate::sn::Sn;
use crate::text::Params;

mod error;
mod keepalive;
mod rx;
mod timers;
mod tx;
mod window;

#[cfg(test)]
mod tests;

pub use error::{Disconnect, Violation};
pub use rx::RxSink;
pub(crate) use rx::TASK_GONE;
pub use timers::Timeouts;

use keepalive::Keepalive;
use window::CmdWindow;

/// Why [`Engine::submit`] did not take a request.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every task slot is in use: try again after a completion.
    Full(ScsiRequest),
    /// The session is shutting down or closed.
    Closed(ScsiRequest),
}

impl core::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "every task slot is in use",
            SubmitError::Closed(_) => "the session is shutting down or closed",
        })
    }
}

impl core::error::Error for SubmitError {}

/// What the engine reports to the platform.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Complete(Completion),
    ResetDone {
        tag: u64,
        result: Result<(), TmfError>,
    },
    /// A SCSI asynchronous event from the target, with its sense data.
    ScsiEvent {
        lun: Lun,
        sense: Sense,
    },
}

/// How the Logout of an orderly shutdown ended. The session is closed in every case: a target
/// that refuses or ignores a logout cannot keep the initiator from leaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The target answered Success.
    Done,
    /// The target answered with this failure code.
    Refused(LogoutResponseCode),
    /// No Logout Response within [`Timeouts::logout_timeout`].
    TimedOut,
}

/// Lifecycle of the engine (not of one connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No connection: requests queue up.
    Down,
    /// Connected in full feature phase.
    Up,
    /// Orderly shutdown: no new commands, logout when the outstanding ones are done.
    Closing,
    /// Logged out or given up: nothing more happens.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    None,
    /// ABORT TASK to be sent, then complete with this error.
    Pending(TransportError),
    /// ABORT TASK sent with this ITT.
    Sent {
        itt: u32,
        error: TransportError,
    },
}

#[derive(Debug)]
struct Task {
    req: ScsiRequest,
    /// Submission order, for replay in the original order.
    seq: u64,
    edtl: u32,
    /// CmdSN once sent on the current connection.
    cmd_sn: Option<Sn>,
    received: u32,
    exp_data_sn: Sn,
    exp_r2t_sn: Sn,
    /// Data-Out sequences for R2Ts not yet fully sent.
    r2t_outstanding: u16,
    deadline: Option<Instant>,
    abort: Abort,
}

/// A Data-Out sequence in progress: unsolicited (`ttt` reserved) or answering an R2T.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Burst {
    slot: u16,
    itt: u32,
    ttt: u32,
    offset: u32,
    end: u32,
    data_sn: Sn,
    solicited: bool,
}

#[derive(Debug)]
enum Ctl {
    Ping {
        itt: u32,
    },
    NopReply {
        ttt: u32,
        lun: Lun,
        data: Vec<u8>,
    },
    /// `task` is the aborted task's ITT when the abort was decided: the slot may hold another
    /// task by the time this is sent.
    AbortTask {
        slot: u16,
        itt: u32,
        task: u32,
    },
    LunReset {
        itt: u32,
        lun: Lun,
    },
    Logout {
        itt: u32,
        reason: LogoutReason,
    },
}

#[derive(Debug)]
struct Reset {
    itt: u32,
    tag: u64,
    lun: Lun,
    deadline: Option<Instant>,
}

/// Target pings answered but not yet sent are bounded: a target flooding pings is ignored
/// beyond this.
const MAX_NOP_REPLIES: usize = 4;
/// LOGICAL UNIT RESETs in flight at once.
const MAX_RESETS: usize = 4;

/// Counters for statistics (sysctls on the kernel side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub replays: u64,
    pub timeouts: u64,
}

/// The full feature phase of one session (see the module documentation).
#[derive(Debug)]
pub struct Engine {
    phase: Phase,
    params: Params,
    timeouts: Timeouts,
    tasks: Table<Task>,
    /// Slots waiting for the command window, in CmdSN order to be.
    cmd_queue: VecDeque<u16>,
    bursts: VecDeque<Burst>,
    ctl: VecDeque<Ctl>,
    events: VecDeque<Event>,
    resets: Vec<Reset>,
    window: CmdWindow,
    next_seq: u64,
    next_itt: u32,
    keepalive: Keepalive,
    logout: Option<(u32, Instant)>,
    closing_deadline: Option<Instant>,
    /// How the shutdown's Logout ended, once it has.
    logout_outcome: Option<LogoutOutcome>,
    /// The header [`Engine::rx_header`] accepted, with its DataSegmentLength.
    rx: Option<(Pdu, u32)>,
    /// ABORT TASK requests in flight and when their answer is due.
    abort_deadlines: Vec<(u32, Instant)>,
    stats: Stats,
}

impl Engine {
    /// An engine with `max_tasks` command slots, not connected yet.
    pub fn new(max_tasks: usize, timeouts: Timeouts) -> Self {
        Engine {
            phase: Phase::Down,
            params: Params::default(),
            timeouts,
            tasks: Table::new(max_tasks),
            cmd_queue: VecDeque::new(),
            bursts: VecDeque::new(),
            ctl: VecDeque::new(),
            events: VecDeque::new(),
            resets: Vec::new(),
            window: CmdWindow::default(),
            next_seq: 0,
            next_itt: NON_TASK_ITT,
            keepalive: Keepalive::new(timeouts.nop_interval, timeouts.nop_timeout),
            logout: None,
            closing_deadline: None,
            logout_outcome: None,
            rx: None,
            abort_deadlines: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How the orderly shutdown's Logout ended (`None` until it has, and when the session
    /// closed otherwise).
    pub fn logout_outcome(&self) -> Option<LogoutOutcome> {
        self.logout_outcome
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Command slots (the most requests in the session at once).
    pub fn capacity(&self) -> usize {
        self.tasks.capacity()
    }

    /// Tasks in the table (queued or outstanding).
    pub fn outstanding(&self) -> usize {
        self.tasks.len()
    }

    /// Whether a new request would find a free slot.
    pub fn has_room(&self) -> bool {
        !self.tasks.is_full()
    }

    /// How many commands the window `[ExpCmdSN, MaxCmdSN]` admits: 0 when MaxCmdSN =
    /// ExpCmdSN - 1 (closed) or when MaxCmdSN lies behind ExpCmdSN in serial arithmetic.
    pub fn window_size(&self) -> u32 {
        self.window.size()
    }

    /// The command window `[ExpCmdSN, MaxCmdSN]` and the next CmdSN.
    pub fn window(&self) -> (Sn, Sn, Sn) {
        self.window.bounds()
    }

    /// The next StatSN we expect (sent as ExpStatSN).
    pub fn exp_stat_sn(&self) -> Sn {
        self.window.exp_stat_sn()
    }

    /// A new connection reached full feature phase: adopt its parameters and sequence numbers,
    /// and replay every task that has not completed, in submission order, with fresh ITTs.
    pub fn connected(&mut self, params: Params, sns: TargetSns, now: Instant) {
        self.params = params;
        self.window = CmdWindow::after_login(sns);
        self.keepalive.start(now);
        self.logout = None;
        self.rx = None;
        self.abort_deadlines.clear();
        self.bursts.clear();
        self.ctl.clear();
        // Resets in flight died with the old connection: report them as not performed.
        for r in core::mem::take(&mut self.resets) {
            self.events.push_back(Event::ResetDone {
                tag: r.tag,
                result: Err(TmfError::ConnectionLost),
            });
        }
        let mut replay: Vec<(u64, u16)> = Vec::new();
        let mut failed: Vec<(u16, TransportError)> = Vec::new();
        for (slot, t) in self.tasks.iter_mut() {
            match t.abort {
                Abort::None => {
                    if t.cmd_sn.is_some() {
                        self.stats.replays = self.stats.replays.saturating_add(1);
                    }
                    t.cmd_sn = None;
                    t.received = 0;
                    t.exp_data_sn = Sn(0);
                    t.exp_r2t_sn = Sn(0);
                    t.r2t_outstanding = 0;
                    replay.push((t.seq, slot));
                }
                // The abort was on its way; the old connection took the task with it.
                Abort::Pending(e) | Abort::Sent { error: e, .. } => failed.push((slot, e)),
            }
        }
        for (slot, e) in failed {
            self.complete_err(slot, e);
        }
        replay.sort_unstable();
        self.cmd_queue.clear();
        for (_, slot) in replay {
            self.tasks.renew(slot);
            self.cmd_queue.push_back(slot);
        }
        if self.phase == Phase::Down {
            self.phase = Phase::Up;
        }
    }

    /// The connection is gone. Tasks stay for replay; nothing is sent until [`Engine::connected`].
    pub fn disconnected(&mut self) {
        if self.phase == Phase::Up {
            self.phase = Phase::Down;
        }
        self.rx = None;
        self.abort_deadlines.clear();
        self.bursts.clear();
        self.ctl.clear();
        self.keepalive.stop();
        self.logout = None;
    }

    /// Takes a request. It is sent when connected and the command window is open.
    #[expect(
        clippy::result_large_err,
        reason = "the refused request goes back to the caller without an allocation"
    )]
    pub fn submit(&mut self, req: ScsiRequest, now: Instant) -> Result<(), SubmitError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(SubmitError::Closed(req));
        }
        if u32::try_from(req.data.len()).is_err() {
            self.events.push_back(Event::Complete(Completion {
                tag: req.tag,
                data: req.data,
                result: Err(TransportError::Invalid),
            }));
            return Ok(());
        }
        let edtl = req.expected_len();
        let deadline = req.timeout.map(|t| now.saturating_add(t));
        let task = Task {
            req,
            seq: self.next_seq,
            edtl,
            cmd_sn: None,
            received: 0,
            exp_data_sn: Sn(0),
            exp_r2t_sn: Sn(0),
            r2t_outstanding: 0,
            deadline,
            abort: Abort::None,
        };
        match self.tasks.insert(task) {
            Ok(slot) => {
                self.next_seq = self.next_seq.saturating_add(1);
                self.cmd_queue.push_back(slot);
                Ok(())
            }
            Err(task) => Err(SubmitError::Full(task.req)),
        }
    }

    /// Aborts the request with the platform tag `tag`: at once if it was not sent yet, else
    /// with ABORT TASK. Returns whether such a request exists.
    pub fn abort(&mut self, tag: u64) -> bool {
        let found = self
            .tasks
            .iter()
            .find(|(_, t)| t.req.tag == tag)
            .map(|(s, _)| s);
        match found {
            Some(slot) => {
                self.start_abort(slot, TransportError::Aborted);
                true
            }
            None => false,
        }
    }

    /// Sends LOGICAL UNIT RESET for `lun`; [`Event::ResetDone`] with `tag` reports the outcome.
    pub fn reset_lun(&mut self, lun: Lun, tag: u64) {
        if self.phase != Phase::Up || self.resets.len() >= MAX_RESETS {
            self.events.push_back(Event::ResetDone {
                tag,
                result: Err(TmfError::NotConnected),
            });
            return;
        }
        let itt = self.alloc_itt();
        self.resets.push(Reset {
            itt,
            tag,
            lun,
            deadline: None,
        });
        self.ctl.push_back(Ctl::LunReset { itt, lun });
    }

    /// Starts an orderly shutdown: requests not yet sent complete with `SessionClosed`, the
    /// outstanding ones may finish, then Logout is sent.
    pub fn shutdown(&mut self, now: Instant) {
        match self.phase {
            Phase::Closing | Phase::Closed => return,
            Phase::Down => {
                self.fail_all(TransportError::SessionClosed);
                self.phase = Phase::Closed;
                return;
            }
            Phase::Up => {}
        }
        self.phase = Phase::Closing;
        self.closing_deadline = Some(now.saturating_add(self.timeouts.logout_timeout));
        let unsent: Vec<u16> = self.cmd_queue.drain(..).collect();
        for slot in unsent {
            self.complete_err(slot, TransportError::SessionClosed);
        }
    }

    /// Gives up: every request completes with `SessionClosed`.
    pub fn close(&mut self) {
        self.fail_all(TransportError::SessionClosed);
        self.phase = Phase::Closed;
        self.bursts.clear();
        self.ctl.clear();
    }

    fn fail_all(&mut self, e: TransportError) {
        let slots: Vec<u16> = self.tasks.iter().map(|(s, _)| s).collect();
        for slot in slots {
            self.complete_err(slot, e);
        }
        self.cmd_queue.clear();
        for r in core::mem::take(&mut self.resets) {
            self.events.push_back(Event::ResetDone {
                tag: r.tag,
                result: Err(TmfError::ConnectionLost),
            });
        }
    }

    /// The next completion or reset result for the platform.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn alloc_itt(&mut self) -> u32 {
        let itt = self.next_itt;
        // Stay inside 0x80000000..=0xfffffffe: never the reserved tag, never a task ITT.
        self.next_itt = if itt >= 0xffff_fffe {
            NON_TASK_ITT
        } else {
            itt.saturating_add(1)
        };
        itt
    }

    fn start_abort(&mut self, slot: u16, error: TransportError) {
        let Some(t) = self.tasks.get_mut(slot) else {
            return;
        };
        if t.abort != Abort::None {
            return;
        }
        // While closing the connection is still in full feature phase and the target still owns
        // what it was sent: completing such a command locally would hand its buffer back while
        // Data-In for it may be landing, and leave its ITT unknown to the rest of the stream.
        if t.cmd_sn.is_none() || !matches!(self.phase, Phase::Up | Phase::Closing) {
            // Never reached the target on this connection: nothing to abort there.
            self.cmd_queue.retain(|&s| s != slot);
            self.complete_err(slot, error);
            return;
        }
        t.abort = Abort::Pending(error);
        let itt = self.alloc_itt();
        if let Some(t) = self.tasks.get_mut(slot) {
            t.abort = Abort::Sent { itt, error };
            t.deadline = None;
        }
        self.bursts.retain(|b| b.slot != slot);
        let task = self.tasks.itt(slot);
        self.ctl.push_back(Ctl::AbortTask { slot, itt, task });
    }

    fn complete_err(&mut self, slot: u16, e: TransportError) {
        if let Some(t) = self.tasks.remove(slot) {
            if e == TransportError::Timeout {
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
            }
            self.events.push_back(Event::Complete(Completion {
                tag: t.req.tag,
                data: t.req.data,
                result: Err(e),
            }));
        }
    }

    fn complete_ok(&mut self, slot: u16, status: u8, sense: &[u8], residual: Residual) {
        let Some(t) = self.tasks.remove(slot) else {
            return;
        };
        self.bursts.retain(|b| b.slot != slot);
        let (transferred, overflow) = match t.req.direction {
            Direction::In => (t.received, residual_overflow(residual)),
            Direction::Out => match residual {
                Residual::Underflow(n) => (t.edtl.saturating_sub(n), 0),
                Residual::Overflow(n) => (t.edtl, n),
                Residual::None => (t.edtl, 0),
            },
            Direction::None => (0, residual_overflow(residual)),
        };
        self.events.push_back(Event::Complete(Completion {
            tag: t.req.tag,
            data: t.req.data,
            result: Ok(ScsiResult {
                status,
                sense: Sense::new(sense),
                transferred,
                residual: t.edtl.saturating_sub(transferred),
                overflow,
            }),
        }));
    }
}

fn residual_overflow(r: Residual) -> u32 {
    match r {
        Residual::Overflow(n) => n,
        _ => 0,
    }
}
