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
//! Sending works the other way round: [`Engine::fill_tx`] lays the next PDUs out as a batch
//! whose headers, padding and digests are the engine's own bytes and whose data are references
//! into the requests' buffers; [`Engine::tx_slices`] gives the unsent rest as slices for one
//! vectored write and [`Engine::tx_sent`] consumes what the transport took. A request that
//! completes while its data is in the unsent batch is held back until the batch is out, so that
//! its buffer goes back to the platform only when nothing refers to it any more.
//!
//! Every field the target sends is checked before it is used; a violation is a [`Disconnect`] error,
//! after which the connection must be dropped and re-established ("...; reconnecting").
//!
//! # Memory
//! Everything is allocated by [`Engine::try_new`] (sized by the number of task slots) and by
//! [`Engine::connected`] (bursts, sized by the negotiated MaxOutstandingR2T); both fail with
//! [`NoMemory`] rather than panic. After that nothing allocates: queues only take what fits the
//! room reserved for them, which the bounds below guarantee (a broken bound is an internal
//! error, never a reallocation). The NOP-In echo buffer grows (fallibly) the first time a target
//! pings with data, up to the smaller MaxRecvDataSegmentLength.
//! - requests: a request holds one slot from `submit` until its completion is taken from
//!   [`Engine::poll_event`]; slots in use, held-back completions and completions not taken yet
//!   together never exceed the slots ([`Engine::has_room`]);
//! - bursts: per request at most MaxOutstandingR2T answers plus one unsolicited sequence;
//! - control PDUs: one ping, [`MAX_NOP_REPLIES`] echoes, one ABORT TASK per request,
//!   [`MAX_RESETS`] resets, two Logouts;
//! - events: completions as above, reset results (resets in flight and results not taken
//!   together at most [`MAX_RESETS`]) and at most [`MAX_SCSI_EVENTS`] asynchronous events.
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
use crate::mem::{self, NoMemory};
use crate::pdu::{LogoutReason, LogoutResponseCode, Pdu, Residual, TargetSns};
use crate::port::TmfError;
use crate::scsi::{Completion, DataBuf, Direction, ScsiRequest, ScsiResult, Sense, TransportError};
use crate::sn::Sn;
use crate::text::Params;

mod batch;
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
#[derive(PartialEq, Eq)]
pub enum SubmitError<B = Vec<u8>> {
    /// Every task slot is in use: try again after a completion.
    Full(ScsiRequest<B>),
    /// The session is shutting down or closed.
    Closed(ScsiRequest<B>),
    /// iSCSI cannot carry it (a buffer of 4 GiB or more): complete it with
    /// [`TransportError::Invalid`].
    Invalid(ScsiRequest<B>),
}

impl<B> core::fmt::Display for SubmitError<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "every task slot is in use",
            SubmitError::Closed(_) => "the session is shutting down or closed",
            SubmitError::Invalid(_) => "the request cannot be carried by iSCSI",
        })
    }
}

impl<B: DataBuf> core::fmt::Debug for SubmitError<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (name, req) = match self {
            SubmitError::Full(r) => ("Full", r),
            SubmitError::Closed(r) => ("Closed", r),
            SubmitError::Invalid(r) => ("Invalid", r),
        };
        f.debug_tuple(name).field(req).finish()
    }
}

impl<B: DataBuf> core::error::Error for SubmitError<B> {}

/// What the engine reports to the platform.
#[derive(PartialEq, Eq)]
pub enum Event<B = Vec<u8>> {
    Complete(Completion<B>),
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

impl<B: DataBuf> core::fmt::Debug for Event<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Event::Complete(c) => f.debug_tuple("Complete").field(c).finish(),
            Event::ResetDone { tag, result } => f
                .debug_struct("ResetDone")
                .field("tag", tag)
                .field("result", result)
                .finish(),
            Event::ScsiEvent { lun, sense } => f
                .debug_struct("ScsiEvent")
                .field("lun", lun)
                .field("sense", sense)
                .finish(),
        }
    }
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

struct Task<B> {
    req: ScsiRequest<B>,
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

impl<B> Task<B> {
    /// Sent on this connection, a read, and not all its data in yet: Data-In may come for it.
    fn awaits_data(&self) -> bool {
        self.req.direction == Direction::In && self.cmd_sn.is_some() && self.received < self.edtl
    }
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
    /// `echo`: the ping's data waits in the engine's echo buffer.
    NopReply {
        ttt: u32,
        lun: Lun,
        echo: bool,
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
pub const MAX_NOP_REPLIES: usize = 4;
/// LOGICAL UNIT RESETs in flight (or reported and not taken yet) at once.
pub const MAX_RESETS: usize = 4;
/// SCSI asynchronous events kept until the platform takes them; more are dropped.
pub const MAX_SCSI_EVENTS: usize = 8;

/// Counters for statistics (sysctls on the kernel side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub replays: u64,
    pub timeouts: u64,
}

/// Where the NOP-In echo buffer is in its round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Echo {
    /// Free for the next ping with data.
    Free,
    /// Holds the data of a queued [`Ctl::NopReply`].
    Queued,
    /// Its data is in the transmit batch.
    Sending,
}

/// The full feature phase of one session (see the module documentation).
pub struct Engine<B = Vec<u8>> {
    phase: Phase,
    params: Params,
    timeouts: Timeouts,
    tasks: Table<Task<B>>,
    /// Slots waiting for the command window, in CmdSN order to be.
    cmd_queue: VecDeque<u16>,
    bursts: VecDeque<Burst>,
    ctl: VecDeque<Ctl>,
    events: VecDeque<Event<B>>,
    /// Completions, reset results and SCSI events in `events`.
    queued: Queued,
    /// Tasks for which [`Task::awaits_data`] holds.
    reading: usize,
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
    /// The PDUs laid out for sending (see [`Engine::fill_tx`]).
    tx: batch::TxBatch,
    /// Completions held back while the unsent batch still refers to their buffers, with the
    /// ITT the batch names them by.
    parked: Vec<(u32, Completion<B>)>,
    /// The data of the last target ping, echoed in its NOP-Out.
    echo: Vec<u8>,
    echo_state: Echo,
}

impl<B> core::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("phase", &self.phase)
            .field("tasks", &self.tasks.len())
            .field("window", &self.window)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What `events` holds, by kind.
#[derive(Clone, Copy, Debug, Default)]
struct Queued {
    completions: usize,
    resets: usize,
    scsi: usize,
}

impl<B: DataBuf> Engine<B> {
    /// An engine with `max_tasks` command slots (clamped to 1..=[`MAX_SLOTS`](super::MAX_SLOTS)),
    /// not connected yet. Everything it needs is allocated here; `NoMemory` if that fails.
    pub fn try_new(max_tasks: usize, timeouts: Timeouts) -> Result<Self, NoMemory> {
        let tasks = Table::try_new(max_tasks)?;
        let n = tasks.capacity();
        Ok(Engine {
            phase: Phase::Down,
            params: Params::default(),
            timeouts,
            tasks,
            cmd_queue: mem::try_deque(n)?,
            bursts: mem::try_deque(n.saturating_mul(2))?,
            ctl: mem::try_deque(
                n.saturating_add(MAX_NOP_REPLIES)
                    .saturating_add(MAX_RESETS)
                    .saturating_add(3),
            )?,
            events: mem::try_deque(n.saturating_add(MAX_RESETS).saturating_add(MAX_SCSI_EVENTS))?,
            queued: Queued::default(),
            reading: 0,
            resets: mem::try_with_capacity(MAX_RESETS)?,
            window: CmdWindow::default(),
            next_seq: 0,
            next_itt: NON_TASK_ITT,
            keepalive: Keepalive::new(timeouts.nop_interval, timeouts.nop_timeout),
            logout: None,
            closing_deadline: None,
            logout_outcome: None,
            rx: None,
            abort_deadlines: mem::try_with_capacity(n)?,
            stats: Stats::default(),
            tx: batch::TxBatch::try_new()?,
            parked: mem::try_with_capacity(n)?,
            echo: Vec::new(),
            echo_state: Echo::Free,
        })
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

    /// The most Data-In bytes one read sent on this connection still expects (0 if none
    /// does): what the target owes for it unless it ends the command early. A look at every
    /// command; for [`Transport::awaiting`](crate::port::Transport::awaiting).
    pub fn data_in_due(&self) -> usize {
        if self.reading == 0 {
            return 0;
        }
        self.tasks
            .iter()
            .filter(|(_, t)| t.awaits_data())
            // received < edtl <= the buffer's length, which fits usize.
            .map(|(_, t)| t.edtl.saturating_sub(t.received) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Whether Data-In may arrive now: a read command is out and has not received all its data.
    /// The receive path then reads headers exactly, so that data goes straight into buffers.
    pub fn expects_data_in(&self) -> bool {
        self.reading > 0
    }

    /// Whether a new request would find a free slot: slots in use, completions held back and
    /// completions not taken from [`Engine::poll_event`] yet are fewer than the slots (so that
    /// the events queue always has room for every completion it may owe).
    pub fn has_room(&self) -> bool {
        self.tasks
            .len()
            .saturating_add(self.parked.len())
            .saturating_add(self.queued.completions)
            < self.tasks.capacity()
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
    /// `NoMemory` when the room this connection's parameters need (bursts for
    /// MaxOutstandingR2T) cannot be allocated: nothing changed, the connection must be dropped
    /// and the login retried later.
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    pub fn connected(
        &mut self,
        params: Params,
        sns: TargetSns,
        now: Instant,
    ) -> Result<(), NoMemory> {
        let per_task = usize::from(params.max_outstanding_r2t()).saturating_add(1);
        mem::reserve_total_deque(
            &mut self.bursts,
            self.tasks.capacity().saturating_mul(per_task),
        )?;
        self.params = params;
        self.window = CmdWindow::after_login(sns);
        self.keepalive.start(now);
        self.logout = None;
        self.rx = None;
        self.abort_deadlines.clear();
        self.bursts.clear();
        self.clear_ctl();
        self.tx_discard();
        // Resets in flight died with the old connection: report them as not performed.
        self.fail_resets();
        self.cmd_queue.clear();
        // Every task is sent anew: none waits for data on this connection yet.
        self.reading = 0;
        for slot in self.slots() {
            let Some(t) = self.tasks.get_mut(slot) else {
                continue;
            };
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
                    self.tasks.renew(slot);
                    // One entry per task: the queue has a place for every slot.
                    let _ = mem::push_back(&mut self.cmd_queue, slot);
                }
                // The abort was on its way; the old connection took the task with it.
                Abort::Pending(e) | Abort::Sent { error: e, .. } => self.complete_err(slot, e),
            }
        }
        let tasks = &self.tasks;
        heap_sort_by_key(&mut self.cmd_queue, |s| {
            tasks.get(s).map_or(u64::MAX, |t| t.seq)
        });
        if self.phase == Phase::Down {
            self.phase = Phase::Up;
        }
        Ok(())
    }

    /// Drops every queued control PDU (their connection is gone); the echo buffer is free again.
    fn clear_ctl(&mut self) {
        self.ctl.clear();
        if self.echo_state == Echo::Queued {
            self.echo_state = Echo::Free;
        }
    }

    /// Every slot index of the table, in order (for loops that complete tasks as they go).
    fn slots(&self) -> core::ops::Range<u16> {
        // The table's capacity is at most MAX_SLOTS, which fits a u16.
        0..u16::try_from(self.tasks.capacity()).unwrap_or(u16::MAX)
    }

    /// The connection is gone. Tasks stay for replay; nothing is sent until [`Engine::connected`].
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    pub fn disconnected(&mut self) {
        if self.phase == Phase::Up {
            self.phase = Phase::Down;
        }
        self.rx = None;
        self.abort_deadlines.clear();
        self.bursts.clear();
        self.clear_ctl();
        self.tx_discard();
        self.keepalive.stop();
        self.logout = None;
        self.reading = 0;
    }

    /// Takes a request. It is sent when connected and the command window is open.
    pub fn submit(&mut self, req: ScsiRequest<B>, now: Instant) -> Result<(), SubmitError<B>> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(SubmitError::Closed(req));
        }
        if u32::try_from(req.data.len()).is_err() {
            return Err(SubmitError::Invalid(req));
        }
        if !self.has_room() {
            return Err(SubmitError::Full(req));
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
                // The queue has a place for every slot, and a slot is queued at most once.
                if mem::push_back(&mut self.cmd_queue, slot).is_err() {
                    debug_assert!(false, "internal error: command queue full");
                }
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
    /// `Err(NotConnected)` at once (and no event) when not in full feature phase or when
    /// `MAX_RESETS` (4) are in flight or not taken yet.
    pub fn reset_lun(&mut self, lun: Lun, tag: u64) -> Result<(), TmfError> {
        if self.phase != Phase::Up
            || self.resets.len().saturating_add(self.queued.resets) >= MAX_RESETS
        {
            return Err(TmfError::NotConnected);
        }
        let itt = self.alloc_itt();
        let reset = Reset {
            itt,
            tag,
            lun,
            deadline: None,
        };
        if mem::push(&mut self.resets, reset).is_err()
            || mem::push_back(&mut self.ctl, Ctl::LunReset { itt, lun }).is_err()
        {
            self.resets.retain(|r| r.itt != itt);
            debug_assert!(false, "internal error: reset queues full");
            return Err(TmfError::NotConnected);
        }
        Ok(())
    }

    /// Starts an orderly shutdown: requests not yet sent complete with `SessionClosed`, the
    /// outstanding ones may finish, then Logout is sent.
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
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
        while let Some(slot) = self.cmd_queue.pop_front() {
            self.complete_err(slot, TransportError::SessionClosed);
        }
    }

    /// Gives up: every request completes with `SessionClosed`.
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    pub fn close(&mut self) {
        self.fail_all(TransportError::SessionClosed);
        self.phase = Phase::Closed;
        self.bursts.clear();
        self.clear_ctl();
        self.tx_discard();
    }

    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    fn fail_all(&mut self, e: TransportError) {
        for slot in self.slots() {
            self.complete_err(slot, e);
        }
        self.cmd_queue.clear();
        self.fail_resets();
    }

    /// Every reset in flight is reported as not performed (its connection is gone).
    fn fail_resets(&mut self) {
        while let Some(r) = self.resets.pop() {
            self.push_event(Event::ResetDone {
                tag: r.tag,
                result: Err(TmfError::ConnectionLost),
            });
        }
    }

    /// The next completion or reset result for the platform.
    pub fn poll_event(&mut self) -> Option<Event<B>> {
        let ev = self.events.pop_front()?;
        let q = &mut self.queued;
        match &ev {
            Event::Complete(_) => q.completions = q.completions.saturating_sub(1),
            Event::ResetDone { .. } => q.resets = q.resets.saturating_sub(1),
            Event::ScsiEvent { .. } => q.scsi = q.scsi.saturating_sub(1),
        }
        Some(ev)
    }

    /// Queues an event for the platform. The bounds of the module documentation leave room for
    /// every completion and reset result; a SCSI event beyond [`MAX_SCSI_EVENTS`] is dropped.
    fn push_event(&mut self, ev: Event<B>) {
        let q = &mut self.queued;
        let counter = match &ev {
            Event::Complete(_) => &mut q.completions,
            Event::ResetDone { .. } => &mut q.resets,
            Event::ScsiEvent { .. } => {
                if q.scsi >= MAX_SCSI_EVENTS {
                    return;
                }
                &mut q.scsi
            }
        };
        *counter = counter.saturating_add(1);
        if mem::push_back(&mut self.events, ev).is_err() {
            *counter = counter.saturating_sub(1);
            debug_assert!(false, "internal error: events queue full");
        }
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

    #[cfg_attr(isboot_kernel, optimize(size))]
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
        // One abort per task (`abort` is set once): the queue has a place for each.
        if mem::push_back(&mut self.ctl, Ctl::AbortTask { slot, itt, task }).is_err() {
            debug_assert!(false, "internal error: control queue full");
        }
    }

    fn complete_err(&mut self, slot: u16, e: TransportError) {
        if self.tasks.get(slot).is_none() {
            return;
        }
        if e == TransportError::Timeout {
            self.stats.timeouts = self.stats.timeouts.saturating_add(1);
        }
        self.finish(slot, Err(e));
    }

    /// Takes the task out of `slot` and reports `result` with its buffer: at once, or once the
    /// unsent transmit batch no longer refers to the buffer.
    fn finish(&mut self, slot: u16, result: Result<ScsiResult, TransportError>) {
        let itt = self.tasks.itt(slot);
        let Some(t) = self.tasks.remove(slot) else {
            return;
        };
        if t.awaits_data() {
            self.reading = self.reading.saturating_sub(1);
        }
        self.bursts.retain(|b| b.slot != slot);
        let c = Completion {
            tag: t.req.tag,
            data: t.req.data,
            result,
        };
        if self.tx.refers_to(itt) {
            // Room for every slot; a completion is parked once.
            if let Err((_, c)) = mem::push(&mut self.parked, (itt, c)) {
                debug_assert!(false, "internal error: parked completions full");
                self.push_event(Event::Complete(c));
            }
        } else {
            self.push_event(Event::Complete(c));
        }
    }

    fn complete_ok(&mut self, slot: u16, status: u8, sense: &[u8], residual: Residual) {
        let Some(t) = self.tasks.get(slot) else {
            return;
        };
        let (transferred, overflow) = match t.req.direction {
            Direction::In => (t.received, residual_overflow(residual)),
            Direction::Out => match residual {
                Residual::Underflow(n) => (t.edtl.saturating_sub(n), 0),
                Residual::Overflow(n) => (t.edtl, n),
                Residual::None => (t.edtl, 0),
            },
            Direction::None => (0, residual_overflow(residual)),
        };
        let result = ScsiResult {
            status,
            sense: Sense::new(sense),
            transferred,
            residual: t.edtl.saturating_sub(transferred),
            overflow,
        };
        self.finish(slot, Ok(result));
    }
}

/// Sorts `v` by `key`, unstably, in O(n log n) without allocating: as `sort_unstable_by_key`,
/// in ~300 bytes of code where that one's monomorphised quicksort took 13 KiB of the kernel
/// module for a sort run once per reconnect. It sorts the deque where it lies:
/// `make_contiguous` first would link `ptr_rotate` (~1 KiB of the module) for it.
#[cfg_attr(isboot_kernel, optimize(size))]
fn heap_sort_by_key(v: &mut VecDeque<u16>, key: impl Fn(u16) -> u64) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, &key, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, &key, 0, end);
    }
}

/// Moves v[root] down the max-heap held in v[..end]. A function, not a closure, so that the
/// kernel module builds it for size with the rest of the replay (closures do not take
/// `#[optimize]`).
#[cfg_attr(isboot_kernel, optimize(size))]
fn sift_down(v: &mut VecDeque<u16>, key: &impl Fn(u16) -> u64, mut root: usize, end: usize) {
    let k = |v: &VecDeque<u16>, i: usize| v.get(i).map_or(u64::MAX, |&s| key(s));
    loop {
        let left = root.saturating_mul(2).saturating_add(1);
        if left >= end {
            break;
        }
        let right = left.saturating_add(1);
        let child = if right < end && k(v, right) > k(v, left) {
            right
        } else {
            left
        };
        if k(v, child) <= k(v, root) {
            break;
        }
        v.swap(root, child);
        root = child;
    }
}

fn residual_overflow(r: Residual) -> u32 {
    match r {
        Residual::Overflow(n) => n,
        _ => 0,
    }
}
