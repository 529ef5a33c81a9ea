// SPDX-License-Identifier: BSD-2-Clause
//! The full feature phase as a sans-IO state machine (RFC 7143 §4, §11).
//!
//! [`Engine`] is fed received PDUs and `now`, and asked for PDUs to send and for the next
//! deadline ([`Engine::poll_at`]); it never touches a socket or a clock. It outlives
//! connections: requests stay in its table across a connection loss and are replayed by
//! [`Engine::connected`] after the next login.
//!
//! Receiving is split so that Data-In goes straight into the request's buffer:
//! [`Engine::rx_header`] checks the header and says where its data segment belongs
//! ([`RxSink`]); the reader then reads the data into [`Engine::rx_task_buf`] or its own scratch
//! buffer and calls [`Engine::rx_finish`]. [`Engine::receive`] does all three for a PDU already
//! in memory (tests, the login phase).
//!
//! Every field the target sends is checked before it is used; a violation is a [`Disconnect`] error,
//! after which the connection must be dropped and re-established ("...; reconnecting").

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;

use isboot_executor::Instant;

use super::table::{Table, NON_TASK_ITT};
use crate::lun::Lun;
use crate::pdu::{
    self, parse_response_data, AsyncEvent, AsyncMessage, DataIn, DataOut, Digests, Header,
    LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode, NopIn, NopOut, Pdu, R2t,
    Reject, RejectReason, Residual, ScsiCommand, ScsiResponse, TargetSns, TaskMgmtRequest,
    TaskMgmtResponse, TmfFunction, TmfResponse, RESERVED_TAG,
};
use crate::port::TmfError;
use crate::scsi::{Completion, Direction, ScsiRequest, ScsiResult, Sense, TransportError};
use crate::sn::Sn;
use crate::text::Params;

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

/// The longest Time2Wait (Async Message, Logout Response) honoured, in seconds: the largest
/// DefaultTime2Wait RFC 7143 allows (§13.15). The PDU fields reach 65535 s (18 hours), which
/// would keep a root disk away far beyond any sensible target restart.
pub const MAX_TIME2WAIT: u16 = 3600;

/// A target's Time2Wait, capped at [`MAX_TIME2WAIT`].
fn time2wait(secs: u16) -> Duration {
    Duration::from_secs(u64::from(secs.min(MAX_TIME2WAIT)))
}

/// ", at most N s honoured" when a wait is at the cap (the target may have asked for more).
struct CapNote(Duration);

impl fmt::Display for CapNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.as_secs() >= u64::from(MAX_TIME2WAIT) {
            write!(f, ", capped at {MAX_TIME2WAIT}s")
        } else {
            Ok(())
        }
    }
}

/// Why the connection must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The target sent something that breaks the protocol or our negotiated limits.
    Violation(Violation),
    /// No PDU from the target within the NOP timeout.
    NopTimeout,
    /// A task management request got no answer in time.
    TmfTimeout,
    /// A Logout the target asked for got no answer in time.
    LogoutTimeout,
    /// The target asked for it (Async Message), to be retried after `wait`.
    TargetRequest { event: AsyncEvent, wait: Duration },
    /// A Logout (target-requested or a recovery logout) completed; reconnect after `wait`.
    LoggedOut { wait: Duration },
    /// The target rejected a PDU in a way only a new connection can repair (ERL 0).
    Rejected(RejectReason),
    /// The transport failed (reported by the driver, not the engine).
    Io(crate::port::IoError),
}

impl Disconnect {
    /// How long to wait before reconnecting, when the target said so.
    pub fn wait(&self) -> Option<Duration> {
        match *self {
            Disconnect::TargetRequest { wait, .. } | Disconnect::LoggedOut { wait } => Some(wait),
            _ => None,
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Violation(v) => write!(f, "{v}"),
            Disconnect::NopTimeout => {
                f.write_str("no PDU from the target within the NOP-In timeout")
            }
            Disconnect::TmfTimeout => f.write_str("no task management response in time"),
            Disconnect::LogoutTimeout => f.write_str("no Logout Response in time"),
            Disconnect::TargetRequest { event, wait } => {
                write!(
                    f,
                    "target asked to drop the connection ({event:?}, wait {}s{})",
                    wait.as_secs(),
                    CapNote(*wait)
                )
            }
            Disconnect::LoggedOut { wait } => write!(
                f,
                "logged out at the target's request (wait {}s{})",
                wait.as_secs(),
                CapNote(*wait)
            ),
            Disconnect::Rejected(r) => write!(f, "target rejected a PDU ({r:?})"),
            Disconnect::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A target PDU that breaks the rules, named precisely for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The PDU could not be parsed (or a digest/length check failed).
    Pdu(pdu::Error),
    /// An initiator opcode, a login/text PDU in full feature phase, or one we never asked for.
    UnexpectedOpcode(pdu::Opcode),
    /// The ITT names no outstanding task.
    UnknownItt { opcode: pdu::Opcode, itt: u32 },
    /// Data-In for a command that reads nothing, or an R2T for one that writes nothing.
    WrongDirection { itt: u32 },
    /// Data-In at an offset other than the bytes received so far.
    DataInOffset {
        itt: u32,
        offset: u32,
        expected: u32,
    },
    /// Data-In running past the command's buffer.
    DataInOverrun { itt: u32, end: u64, len: u32 },
    /// DataSN out of sequence.
    DataSn { itt: u32, got: Sn, expected: Sn },
    /// R2TSN out of sequence.
    R2tSn { itt: u32, got: Sn, expected: Sn },
    /// R2T for bytes outside the transfer, or longer than MaxBurstLength, or empty.
    R2tRange {
        itt: u32,
        offset: u32,
        len: u32,
        edtl: u32,
    },
    /// More R2Ts outstanding than MaxOutstandingR2T.
    TooManyR2t { itt: u32, max: u16 },
    /// Data on a PDU that may not carry any (or more than the PDU allows).
    UnexpectedData { opcode: pdu::Opcode, len: u32 },
    /// SenseLength past the segment in a SCSI Response.
    Sense(pdu::Error),
    /// A response for a task management request or logout we did not send.
    UnknownResponse { opcode: pdu::Opcode, itt: u32 },
    /// A SCSI Response while Data-In for the command is still missing.
    MissingData {
        itt: u32,
        received: u32,
        expected: u32,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::Pdu(e) => write!(f, "bad PDU: {e}"),
            Violation::UnexpectedOpcode(op) => write!(f, "unexpected opcode {op:?}"),
            Violation::UnknownItt { opcode, itt } => {
                write!(f, "{opcode:?} for unknown ITT {itt:#010x}")
            }
            Violation::WrongDirection { itt } => {
                write!(f, "data transfer against the direction of ITT {itt:#010x}")
            }
            Violation::DataInOffset {
                itt,
                offset,
                expected,
            } => write!(
                f,
                "Data-In for ITT {itt:#010x} at offset {offset}, expected {expected}"
            ),
            Violation::DataInOverrun { itt, end, len } => write!(
                f,
                "Data-In for ITT {itt:#010x} ends at {end}, past the {len}-byte buffer"
            ),
            Violation::DataSn { itt, got, expected } => {
                write!(f, "DataSN {got} for ITT {itt:#010x}, expected {expected}")
            }
            Violation::R2tSn { itt, got, expected } => {
                write!(f, "R2TSN {got} for ITT {itt:#010x}, expected {expected}")
            }
            Violation::R2tRange {
                itt,
                offset,
                len,
                edtl,
            } => write!(
                f,
                "R2T for ITT {itt:#010x} asks for {len} bytes at {offset} of a {edtl}-byte transfer"
            ),
            Violation::TooManyR2t { itt, max } => {
                write!(
                    f,
                    "more than MaxOutstandingR2T={max} R2Ts for ITT {itt:#010x}"
                )
            }
            Violation::UnexpectedData { opcode, len } => {
                write!(f, "{opcode:?} with an unexpected {len}-byte data segment")
            }
            Violation::Sense(e) => write!(f, "bad SCSI Response data: {e}"),
            Violation::UnknownResponse { opcode, itt } => {
                write!(f, "{opcode:?} for ITT {itt:#010x} that we never sent")
            }
            Violation::MissingData {
                itt,
                received,
                expected,
            } => write!(
                f,
                "SCSI Response for ITT {itt:#010x} after {received} of {expected} Data-In bytes \
                 without an underflow"
            ),
        }
    }
}

impl From<Violation> for Disconnect {
    fn from(v: Violation) -> Self {
        Disconnect::Violation(v)
    }
}

/// Where a received PDU's data segment goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RxSink {
    /// Into the reader's scratch buffer (at most our MaxRecvDataSegmentLength).
    Scratch,
    /// Straight into a task's buffer: `slot` and the byte range ([`Engine::rx_task_buf`]).
    Task { slot: u16, range: Range<usize> },
}

/// Why [`Engine::submit`] did not take a request.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every task slot is in use: try again after a completion.
    Full(ScsiRequest),
    /// The session is shutting down or closed.
    Closed(ScsiRequest),
}

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
    cmd_sn: Sn,
    exp_cmd_sn: Sn,
    max_cmd_sn: Sn,
    exp_stat_sn: Sn,
    next_seq: u64,
    next_itt: u32,
    last_rx: Instant,
    /// Ping ITT and the time by which the target must have sent something.
    ping: Option<(u32, Instant)>,
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
            cmd_sn: Sn(0),
            exp_cmd_sn: Sn(0),
            max_cmd_sn: Sn(0),
            exp_stat_sn: Sn(0),
            next_seq: 0,
            next_itt: NON_TASK_ITT,
            last_rx: Instant::ZERO,
            ping: None,
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
        let n = self
            .max_cmd_sn
            .0
            .wrapping_sub(self.exp_cmd_sn.0)
            .wrapping_add(1);
        if n > 1 << 31 {
            0
        } else {
            n
        }
    }

    /// The command window `[ExpCmdSN, MaxCmdSN]` and the next CmdSN.
    pub fn window(&self) -> (Sn, Sn, Sn) {
        (self.exp_cmd_sn, self.max_cmd_sn, self.cmd_sn)
    }

    /// The next StatSN we expect (sent as ExpStatSN).
    pub fn exp_stat_sn(&self) -> Sn {
        self.exp_stat_sn
    }

    /// A new connection reached full feature phase: adopt its parameters and sequence numbers,
    /// and replay every task that has not completed, in submission order, with fresh ITTs.
    pub fn connected(&mut self, params: Params, sns: TargetSns, now: Instant) {
        self.params = params;
        self.cmd_sn = sns.exp_cmd_sn;
        self.exp_cmd_sn = sns.exp_cmd_sn;
        self.max_cmd_sn = sns.max_cmd_sn;
        self.exp_stat_sn = sns.stat_sn.next();
        self.last_rx = now;
        self.ping = None;
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
        self.ping = None;
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

    // ---------------------------------------------------------------- receiving

    /// Checks a received header (BHS + AHS, digest already verified) and says where its data
    /// segment goes. `now` restarts the keepalive clock.
    pub fn rx_header(&mut self, now: Instant, header: &[u8]) -> Result<RxSink, Disconnect> {
        self.last_rx = now;
        if let Some((itt, _)) = self.ping {
            // Any PDU shows the connection is alive; the ping's own answer is still accepted.
            self.ping = Some((itt, now.saturating_add(self.timeouts.nop_timeout)));
        }
        let info = pdu::HeaderInfo::parse(header).map_err(Violation::Pdu)?;
        info.check_data_len(self.params.max_recv_dsl())
            .map_err(Violation::Pdu)?;
        let pdu = Pdu::parse(header).map_err(Violation::Pdu)?;
        let len = info.data_len;
        let sink = match &pdu {
            Pdu::DataIn(d) => self.check_data_in(d, len)?,
            _ => RxSink::Scratch,
        };
        self.rx = Some((pdu, len));
        Ok(sink)
    }

    /// The task buffer range an [`RxSink::Task`] names. Empty if the slot went away.
    pub fn rx_task_buf(&mut self, slot: u16, range: Range<usize>) -> &mut [u8] {
        match self.tasks.get_mut(slot) {
            Some(t) => t.req.data.get_mut(range).unwrap_or(&mut []),
            None => &mut [],
        }
    }

    /// Finishes the PDU begun by [`Engine::rx_header`]; `data` is the data segment when it went
    /// to scratch (empty for [`RxSink::Task`]).
    pub fn rx_finish(&mut self, now: Instant, data: &[u8]) -> Result<(), Disconnect> {
        let Some((pdu, len)) = self.rx.take() else {
            return Ok(());
        };
        // The window and StatSN bookkeeping of every target PDU, before its own handling
        // (RFC 7143 §4.2.2.1, §4.2.2.2).
        if let Some(sns) = pdu.target_sns() {
            self.update_window(sns.exp_cmd_sn, sns.max_cmd_sn);
        }
        if let Some(stat_sn) = acknowledged_stat_sn(&pdu) {
            self.update_stat_sn(stat_sn);
        }
        match pdu {
            Pdu::DataIn(d) => self.on_data_in(&d, len),
            Pdu::ScsiResponse(r) => self.on_response(&r, data),
            Pdu::R2t(r) => self.on_r2t(&r, data),
            Pdu::NopIn(n) => self.on_nop_in(&n, data),
            Pdu::TaskMgmtResponse(r) => self.on_tmf_response(&r, data),
            Pdu::AsyncMessage(a) => self.on_async(&a, data, now),
            Pdu::Reject(r) => self.on_reject(&r, data),
            Pdu::LogoutResponse(r) => self.on_logout_response(&r, data),
            other => Err(Violation::UnexpectedOpcode(other.opcode()).into()),
        }
    }

    /// A whole received PDU (header and data segment in memory): [`Engine::rx_header`], the
    /// copy, [`Engine::rx_finish`].
    pub fn receive(&mut self, now: Instant, header: &[u8], data: &[u8]) -> Result<(), Disconnect> {
        match self.rx_header(now, header)? {
            RxSink::Scratch => self.rx_finish(now, data),
            RxSink::Task { slot, range } => {
                let dst = self.rx_task_buf(slot, range);
                let n = dst.len().min(data.len());
                if let (Some(d), Some(s)) = (dst.get_mut(..n), data.get(..n)) {
                    d.copy_from_slice(s);
                }
                self.rx_finish(now, &[])
            }
        }
    }

    /// ExpCmdSN/MaxCmdSN from any target PDU that carries them (RFC 7143 §4.2.2.1).
    fn update_window(&mut self, exp: Sn, max: Sn) {
        // MaxCmdSN < ExpCmdSN - 1: both ignored.
        if max.next().is_before(exp) {
            return;
        }
        if exp.is_after(self.exp_cmd_sn) {
            // A target cannot expect a command we have not sent; clamp so the next CmdSN is
            // not taken for a duplicate.
            self.exp_cmd_sn = if exp.is_after(self.cmd_sn) {
                self.cmd_sn
            } else {
                exp
            };
        }
        if max.is_after(self.max_cmd_sn) {
            self.max_cmd_sn = max;
        }
    }

    /// StatSN of a status-bearing PDU.
    fn update_stat_sn(&mut self, stat_sn: Sn) {
        if stat_sn.is_after_or_eq(self.exp_stat_sn) {
            self.exp_stat_sn = stat_sn.next();
        }
    }

    fn task_for(&self, opcode: pdu::Opcode, itt: u32) -> Result<u16, Violation> {
        self.tasks
            .lookup(itt)
            .filter(|&s| self.tasks.get(s).is_some_and(|t| t.cmd_sn.is_some()))
            .ok_or(Violation::UnknownItt { opcode, itt })
    }

    fn check_data_in(&mut self, d: &DataIn, len: u32) -> Result<RxSink, Disconnect> {
        let slot = self.task_for(pdu::Opcode::DataIn, d.itt)?;
        let Some(t) = self.tasks.get(slot) else {
            return Err(Violation::UnknownItt {
                opcode: pdu::Opcode::DataIn,
                itt: d.itt,
            }
            .into());
        };
        if t.req.direction != Direction::In && len > 0 {
            return Err(Violation::WrongDirection { itt: d.itt }.into());
        }
        if d.data_sn != t.exp_data_sn {
            return Err(Violation::DataSn {
                itt: d.itt,
                got: d.data_sn,
                expected: t.exp_data_sn,
            }
            .into());
        }
        if d.buffer_offset != t.received {
            return Err(Violation::DataInOffset {
                itt: d.itt,
                offset: d.buffer_offset,
                expected: t.received,
            }
            .into());
        }
        let end = u64::from(d.buffer_offset).saturating_add(u64::from(len));
        if end > u64::from(t.edtl) {
            return Err(Violation::DataInOverrun {
                itt: d.itt,
                end,
                len: t.edtl,
            }
            .into());
        }
        // end <= edtl <= data.len(), which fits usize.
        let start = d.buffer_offset as usize;
        Ok(RxSink::Task {
            slot,
            range: start..end as usize,
        })
    }

    fn on_data_in(&mut self, d: &DataIn, len: u32) -> Result<(), Disconnect> {
        // rx_header validated ITT, DataSN, offset and length against the buffer.
        let slot = self.task_for(pdu::Opcode::DataIn, d.itt)?;
        if let Some(t) = self.tasks.get_mut(slot) {
            t.received = t.received.saturating_add(len);
            t.exp_data_sn = t.exp_data_sn.next();
            self.stats.bytes_in = self.stats.bytes_in.wrapping_add(u64::from(len));
        }
        if let Some(status) = d.status {
            self.complete_ok(slot, status, &[], d.residual);
        }
        Ok(())
    }

    fn on_response(&mut self, r: &ScsiResponse, data: &[u8]) -> Result<(), Disconnect> {
        let slot = self.task_for(pdu::Opcode::ScsiResponse, r.itt)?;
        if r.response != 0 {
            self.complete_err(slot, TransportError::TargetFailure(r.response));
            return Ok(());
        }
        let rd = parse_response_data(data).map_err(Violation::Sense)?;
        if let Some(t) = self.tasks.get(slot) {
            if t.req.direction == Direction::In && r.status == crate::scsi::status::GOOD {
                let missing = t.edtl.saturating_sub(t.received);
                let under = match r.residual {
                    Residual::Underflow(n) => n,
                    _ => 0,
                };
                if missing > 0 && under == 0 {
                    return Err(Violation::MissingData {
                        itt: r.itt,
                        received: t.received,
                        expected: t.edtl,
                    }
                    .into());
                }
            }
        }
        self.complete_ok(slot, r.status, rd.sense, r.residual);
        Ok(())
    }

    fn on_r2t(&mut self, r: &R2t, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::R2t, data)?;
        let slot = self.task_for(pdu::Opcode::R2t, r.itt)?;
        let max_r2t = self.params.max_outstanding_r2t();
        let max_burst = self.params.max_burst();
        let Some(t) = self.tasks.get_mut(slot) else {
            return Err(Violation::UnknownItt {
                opcode: pdu::Opcode::R2t,
                itt: r.itt,
            }
            .into());
        };
        if t.req.direction != Direction::Out {
            return Err(Violation::WrongDirection { itt: r.itt }.into());
        }
        if r.r2t_sn != t.exp_r2t_sn {
            return Err(Violation::R2tSn {
                itt: r.itt,
                got: r.r2t_sn,
                expected: t.exp_r2t_sn,
            }
            .into());
        }
        let end = u64::from(r.buffer_offset).saturating_add(u64::from(r.desired_len));
        if r.desired_len == 0 || end > u64::from(t.edtl) || r.desired_len > max_burst {
            return Err(Violation::R2tRange {
                itt: r.itt,
                offset: r.buffer_offset,
                len: r.desired_len,
                edtl: t.edtl,
            }
            .into());
        }
        if t.r2t_outstanding >= max_r2t {
            return Err(Violation::TooManyR2t {
                itt: r.itt,
                max: max_r2t,
            }
            .into());
        }
        t.exp_r2t_sn = t.exp_r2t_sn.next();
        t.r2t_outstanding = t.r2t_outstanding.saturating_add(1);
        if matches!(t.abort, Abort::None) {
            self.bursts.push_back(Burst {
                slot,
                itt: r.itt,
                ttt: r.ttt,
                offset: r.buffer_offset,
                // end <= edtl, a u32.
                end: end as u32,
                data_sn: Sn(0),
                solicited: true,
            });
        }
        Ok(())
    }

    fn on_nop_in(&mut self, n: &NopIn, data: &[u8]) -> Result<(), Disconnect> {
        if n.itt != RESERVED_TAG {
            // Our ping's answer: it must not also be a ping.
            if n.ttt != RESERVED_TAG {
                return Err(Violation::UnexpectedOpcode(pdu::Opcode::NopIn).into());
            }
            if n.itt & NON_TASK_ITT == 0 {
                return Err(Violation::UnknownResponse {
                    opcode: pdu::Opcode::NopIn,
                    itt: n.itt,
                }
                .into());
            }
            if self.ping.is_some_and(|(itt, _)| itt == n.itt) {
                self.ping = None;
            }
            return Ok(());
        }
        if n.is_ping() {
            if self
                .ctl
                .iter()
                .filter(|c| matches!(c, Ctl::NopReply { .. }))
                .count()
                < MAX_NOP_REPLIES
            {
                self.ctl.push_back(Ctl::NopReply {
                    ttt: n.ttt,
                    lun: n.lun,
                    data: data.to_vec(),
                });
            }
        } else if !data.is_empty() {
            return Err(Violation::UnexpectedData {
                opcode: pdu::Opcode::NopIn,
                len: data.len() as u32,
            }
            .into());
        }
        Ok(())
    }

    fn on_tmf_response(&mut self, r: &TaskMgmtResponse, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::TaskMgmtResponse, data)?;
        if let Some(i) = self.resets.iter().position(|x| x.itt == r.itt) {
            let reset = self.resets.swap_remove(i);
            let result = match r.response {
                TmfResponse::Complete => Ok(()),
                other => Err(TmfError::Refused(u8::from(other))),
            };
            if result.is_ok() {
                // The target terminated every task on the LUN without answering them.
                let victims: Vec<u16> = self
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.req.lun == reset.lun && t.cmd_sn.is_some())
                    .map(|(s, _)| s)
                    .collect();
                for slot in victims {
                    self.complete_err(slot, TransportError::Aborted);
                }
            }
            self.events.push_back(Event::ResetDone {
                tag: reset.tag,
                result,
            });
            return Ok(());
        }
        let found = self.tasks.iter().find_map(|(slot, t)| match t.abort {
            Abort::Sent { itt, error } if itt == r.itt => Some((slot, error)),
            _ => None,
        });
        let was_pending = self.abort_deadlines.iter().any(|&(i, _)| i == r.itt);
        self.abort_deadlines.retain(|(i, _)| *i != r.itt);
        let Some((slot, error)) = found else {
            if was_pending {
                // The command completed before the target saw the abort: nothing left to do.
                return Ok(());
            }
            return Err(Violation::UnknownResponse {
                opcode: pdu::Opcode::TaskMgmtResponse,
                itt: r.itt,
            }
            .into());
        };
        match r.response {
            TmfResponse::Complete | TmfResponse::TaskDoesNotExist => {
                self.complete_err(slot, error);
                Ok(())
            }
            // The target would not abort it: only a new session clears it.
            other => {
                self.complete_err(slot, error);
                Err(Disconnect::Rejected(RejectReason::Unknown(u8::from(other))))
            }
        }
    }

    fn on_async(&mut self, a: &AsyncMessage, data: &[u8], now: Instant) -> Result<(), Disconnect> {
        match a.event {
            AsyncEvent::LogoutRequest => {
                if self.logout.is_none() {
                    let itt = self.alloc_itt();
                    // Parameter3 is the time the target gives us to send the Logout, which goes
                    // at once; how long its answer may take is ours to bound (the field allows
                    // 18 hours of waiting on a target that never answers).
                    self.logout = Some((itt, now.saturating_add(self.timeouts.logout_timeout)));
                    self.ctl.push_back(Ctl::Logout {
                        itt,
                        reason: LogoutReason::CloseSession,
                    });
                }
                Ok(())
            }
            AsyncEvent::DropConnection | AsyncEvent::DropAllConnections => {
                Err(Disconnect::TargetRequest {
                    event: a.event,
                    wait: time2wait(a.parameter2),
                })
            }
            AsyncEvent::ScsiEvent => {
                // The data segment is laid out like a SCSI Response's: SenseLength, sense.
                let rd = parse_response_data(data).map_err(Violation::Sense)?;
                if self.events.len() < self.tasks.capacity().saturating_add(MAX_RESETS) {
                    self.events.push_back(Event::ScsiEvent {
                        lun: a.lun,
                        sense: Sense::new(rd.sense),
                    });
                }
                Ok(())
            }
            // Renegotiation requests and vendor events need nothing from us at ERL 0.
            _ => Ok(()),
        }
    }

    fn on_reject(&mut self, r: &Reject, data: &[u8]) -> Result<(), Disconnect> {
        let bhs = Reject::rejected_header(data).map_err(Violation::Pdu)?;
        let itt = bhs.itt();
        match bhs.opcode() {
            pdu::Opcode::NopOut => {
                if self.ping.is_some_and(|(p, _)| p == itt) {
                    self.ping = None;
                }
                Ok(())
            }
            pdu::Opcode::ScsiCommand => {
                if let Some(slot) = self.tasks.lookup(itt) {
                    if matches!(
                        r.reason,
                        RejectReason::CommandNotSupported
                            | RejectReason::InvalidPduField
                            | RejectReason::ProtocolError
                    ) {
                        // Replaying it would be rejected again: fail it, and start over on a
                        // new connection since its CmdSN left a hole the target waits on.
                        self.complete_err(slot, TransportError::Rejected(u8::from(r.reason)));
                    }
                }
                Err(Disconnect::Rejected(r.reason))
            }
            _ => Err(Disconnect::Rejected(r.reason)),
        }
    }

    fn on_logout_response(&mut self, r: &LogoutResponse, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::LogoutResponse, data)?;
        if self.logout.is_none_or(|(itt, _)| itt != r.itt) {
            return Err(Violation::UnknownResponse {
                opcode: pdu::Opcode::LogoutResponse,
                itt: r.itt,
            }
            .into());
        }
        self.logout = None;
        if self.phase == Phase::Closing {
            self.logout_outcome = Some(match r.response {
                LogoutResponseCode::Success => LogoutOutcome::Done,
                code => LogoutOutcome::Refused(code),
            });
            self.phase = Phase::Closed;
            self.fail_all(TransportError::SessionClosed);
            return Ok(());
        }
        let wait = match r.response {
            LogoutResponseCode::Success => r.time2wait,
            _ => self.params.default_time2wait(),
        };
        Err(Disconnect::LoggedOut {
            wait: time2wait(wait),
        })
    }

    // ---------------------------------------------------------------- timers

    /// The earliest instant at which [`Engine::on_timer`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |i: Instant| at = Some(at.map_or(i, |a| a.min(i)));
        match self.phase {
            Phase::Up | Phase::Closing => {
                match self.ping {
                    Some((_, deadline)) => consider(deadline),
                    None => consider(self.last_rx.saturating_add(self.timeouts.nop_interval)),
                }
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
            for (_, t) in self.tasks.iter() {
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
        let due = |t: &Task| t.deadline.is_some_and(|d| d <= now);
        // Checked first so that the common case (nothing due) allocates nothing.
        if self.tasks.iter().any(|(_, t)| due(t)) {
            let expired: Vec<u16> = self
                .tasks
                .iter()
                .filter(|(_, t)| due(t))
                .map(|(s, _)| s)
                .collect();
            for slot in expired {
                self.start_abort(slot, TransportError::Timeout);
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
        match self.ping {
            Some((_, deadline)) if deadline <= now => return Err(Disconnect::NopTimeout),
            Some(_) => {}
            None => {
                if now >= self.last_rx.saturating_add(self.timeouts.nop_interval) {
                    let itt = self.alloc_itt();
                    self.ping = Some((itt, now.saturating_add(self.timeouts.nop_timeout)));
                    self.ctl.push_back(Ctl::Ping { itt });
                }
            }
        }
        Ok(())
    }

    fn queue_shutdown_logout(&mut self, now: Instant) {
        let itt = self.alloc_itt();
        self.logout = Some((itt, now.saturating_add(self.timeouts.logout_timeout)));
        self.ctl.push_back(Ctl::Logout {
            itt,
            reason: LogoutReason::CloseSession,
        });
    }

    // ---------------------------------------------------------------- sending

    /// Appends the next PDU to send (header, data, padding, digests) to `out`. Returns false when
    /// nothing is ready: not connected, nothing queued, or the command window is closed.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !matches!(self.phase, Phase::Up | Phase::Closing) {
            return false;
        }
        if let Some(c) = self.ctl.pop_front() {
            self.emit_ctl(c, now, out);
            return true;
        }
        if self.emit_burst(out) {
            return true;
        }
        if self.phase == Phase::Closing {
            if self.logout.is_none() && self.tasks.is_empty() {
                self.closing_deadline = None;
                self.queue_shutdown_logout(now);
                if let Some(c) = self.ctl.pop_front() {
                    self.emit_ctl(c, now, out);
                    return true;
                }
            }
            return false;
        }
        if self.logout.is_some() {
            // No new commands once a logout is under way.
            return false;
        }
        self.emit_command(out)
    }

    fn emit_ctl(&mut self, c: Ctl, now: Instant, out: &mut Vec<u8>) {
        let d = self.params.digests();
        match c {
            Ctl::Ping { itt } => {
                let nop = NopOut {
                    immediate: true,
                    lun: Lun::default(),
                    itt,
                    ttt: RESERVED_TAG,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                };
                emit(out, &nop, &[], d);
            }
            Ctl::NopReply { ttt, lun, data } => {
                let nop = NopOut {
                    immediate: true,
                    lun,
                    itt: RESERVED_TAG,
                    ttt,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                };
                let max = self.params.max_send_dsl() as usize;
                emit(out, &nop, data.get(..max).unwrap_or(&data), d);
            }
            Ctl::AbortTask { slot, itt, task } => {
                // The task may have completed since the abort was decided (its response crossed
                // the abort), and its slot may already hold the next request: abort nothing then.
                let current = self
                    .tasks
                    .lookup(task)
                    .filter(|&s| s == slot)
                    .and_then(|s| self.tasks.get(s));
                let Some(t) = current else {
                    return;
                };
                let (lun, ref_itt, ref_cmd_sn) = (t.req.lun, task, t.cmd_sn.unwrap_or(self.cmd_sn));
                let tmf = TaskMgmtRequest {
                    immediate: true,
                    function: TmfFunction::AbortTask,
                    lun,
                    itt,
                    referenced_task_tag: ref_itt,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                    ref_cmd_sn,
                    exp_data_sn: Sn(0),
                };
                if let Some(t) = self.tasks.get_mut(slot) {
                    // The abort's own deadline: without an answer the connection goes.
                    t.deadline = None;
                }
                self.abort_deadlines.retain(|(i, _)| *i != itt);
                self.abort_deadlines
                    .push((itt, now.saturating_add(self.timeouts.tmf_timeout)));
                emit(out, &tmf, &[], d);
            }
            Ctl::LunReset { itt, lun } => {
                if let Some(r) = self.resets.iter_mut().find(|r| r.itt == itt) {
                    r.deadline = Some(now.saturating_add(self.timeouts.tmf_timeout));
                }
                let tmf = TaskMgmtRequest {
                    immediate: true,
                    function: TmfFunction::LogicalUnitReset,
                    lun,
                    itt,
                    referenced_task_tag: RESERVED_TAG,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                    ref_cmd_sn: Sn(0),
                    exp_data_sn: Sn(0),
                };
                emit(out, &tmf, &[], d);
            }
            Ctl::Logout { itt, reason } => {
                let req = LogoutRequest {
                    immediate: true,
                    reason,
                    itt,
                    cid: 0,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                };
                emit(out, &req, &[], d);
            }
        }
    }

    fn emit_burst(&mut self, out: &mut Vec<u8>) -> bool {
        while let Some(b) = self.bursts.front().copied() {
            let Some(t) = self.tasks.get(b.slot) else {
                self.bursts.pop_front();
                continue;
            };
            if self.tasks.itt(b.slot) != b.itt || b.offset >= b.end {
                self.bursts.pop_front();
                continue;
            }
            let max = self.params.max_send_dsl().max(512);
            let len = b.end.saturating_sub(b.offset).min(max);
            let next = b.offset.saturating_add(len);
            let last = next == b.end;
            let hdr = DataOut {
                final_bit: last,
                lun: t.req.lun,
                itt: b.itt,
                ttt: b.ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn: b.data_sn,
                buffer_offset: b.offset,
            };
            let range = b.offset as usize..next as usize;
            let data = t.req.data.get(range).unwrap_or(&[]);
            emit(out, &hdr, data, self.params.digests());
            self.stats.bytes_out = self.stats.bytes_out.wrapping_add(u64::from(len));
            if last {
                self.bursts.pop_front();
                if b.solicited {
                    if let Some(t) = self.tasks.get_mut(b.slot) {
                        t.r2t_outstanding = t.r2t_outstanding.saturating_sub(1);
                    }
                }
            } else if let Some(f) = self.bursts.front_mut() {
                f.offset = next;
                f.data_sn = f.data_sn.next();
            }
            return true;
        }
        false
    }

    fn emit_command(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(&slot) = self.cmd_queue.front() else {
            return false;
        };
        if !self.cmd_sn.is_within(self.exp_cmd_sn, self.max_cmd_sn) {
            // Window closed: the command waits for a PDU that opens it.
            return false;
        }
        self.cmd_queue.pop_front();
        let itt = self.tasks.itt(slot);
        let p = self.params;
        let cmd_sn = self.cmd_sn;
        let Some(t) = self.tasks.get_mut(slot) else {
            return false;
        };
        let write = t.req.direction == Direction::Out;
        let (immediate, unsolicited_end) = if write {
            let first = p.first_burst().min(t.edtl);
            let imm = if p.immediate_data() {
                first.min(p.max_send_dsl())
            } else {
                0
            };
            let end = if p.initial_r2t() { imm } else { first };
            (imm, end)
        } else {
            (0, 0)
        };
        t.cmd_sn = Some(cmd_sn);
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: unsolicited_end == immediate,
            read: t.req.direction == Direction::In,
            write,
            attr: t.req.attr,
            lun: t.req.lun,
            itt,
            expected_data_len: t.edtl,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: t.req.cdb,
            bidi_read_len: None,
        };
        let data = t.req.data.get(..immediate as usize).unwrap_or(&[]);
        emit(out, &cmd, data, p.digests());
        self.cmd_sn = cmd_sn.next();
        self.stats.commands = self.stats.commands.saturating_add(1);
        self.stats.bytes_out = self.stats.bytes_out.wrapping_add(u64::from(immediate));
        if unsolicited_end > immediate {
            self.bursts.push_back(Burst {
                slot,
                itt,
                ttt: RESERVED_TAG,
                offset: immediate,
                end: unsolicited_end,
                data_sn: Sn(0),
                solicited: false,
            });
        }
        true
    }
}

/// The StatSN a target PDU acknowledges, if it carries a status: Data-In only with the S bit,
/// NOP-In only as the answer to our ping (an unsolicited one repeats the current StatSN
/// without advancing it), R2T never (RFC 7143 §11.7.4, §11.8.3, §11.19.3).
fn acknowledged_stat_sn(pdu: &Pdu) -> Option<Sn> {
    let sns = pdu.target_sns()?;
    let counted = match pdu {
        Pdu::DataIn(d) => d.status.is_some(),
        Pdu::NopIn(n) => n.itt != RESERVED_TAG,
        Pdu::R2t(_) => false,
        _ => true,
    };
    counted.then_some(sns.stat_sn)
}

fn residual_overflow(r: Residual) -> u32 {
    match r {
        Residual::Overflow(n) => n,
        _ => 0,
    }
}

fn no_data(opcode: pdu::Opcode, data: &[u8]) -> Result<(), Violation> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(Violation::UnexpectedData {
            opcode,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        })
    }
}

/// Appends one PDU to `out`. The encoder only fails on a data segment above 2^24-1 bytes, which
/// every caller bounds by the negotiated MaxRecvDataSegmentLength (at most 2^24-1) first.
fn emit(out: &mut Vec<u8>, h: &dyn Header, data: &[u8], d: Digests) {
    let start = out.len();
    let hl = h.header_wire_len(d.header);
    out.resize(start.saturating_add(hl), 0);
    let ok = match out.get_mut(start..) {
        Some(buf) => h.emit(data.len(), d.header, buf).is_ok(),
        None => false,
    };
    if !ok {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(data);
    let at = out.len();
    out.resize(
        at.saturating_add(pdu::data_trailer_len(data.len(), d.data)),
        0,
    );
    if let Some(buf) = out.get_mut(at..) {
        let _ = pdu::emit_data_trailer(data, d.data, buf);
    }
}
