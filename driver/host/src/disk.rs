// SPDX-License-Identifier: BSD-2-Clause
//! A synchronous block device over one iSCSI session, for tests, benchmarks and `isbootctl`.
//!
//! [`HostDisk::open`] starts the executor's host runtime on an owner thread, spawns the core's
//! session task on it with this crate's ports, and waits until the session is up. Requests are
//! submitted through the session's [`Handle`] from any thread; each returns a [`Pending`] that
//! waits for its completion, so a caller keeps several commands in flight by submitting before
//! waiting. Connection loss is invisible here, as in the kernel: the session reconnects and
//! replays, and a command completes normally.
//!
//! Dropping the disk (or [`HostDisk::close`]) shuts the session down with a logout and joins the
//! owner thread; every wait is bounded by [`DiskConfig::io_timeout`].
//!
//! Buffers belong to the caller: a read lands in the buffer given to
//! [`HostDisk::submit_read_into`] (not cleared first) and a write goes out of the one given to
//! [`HostDisk::submit_write`], straight between the buffer and the socket;
//! [`Pending::wait_buffer`] gives either back for the next command. A caller that reuses its
//! buffers makes the steady state allocate nothing and copy no payload.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use isboot_core::chap::ChapConfig;
use isboot_core::lun::Lun;
use isboot_core::port::{Events, Level, Log, Portal, Random};
use isboot_core::scsi::{
    cdb, status, Cdb, Completion, Direction, Inquiry, ScsiRequest, ScsiResult, Sense,
    TransportError, STANDARD_INQUIRY_LEN,
};
use isboot_core::session::{
    End, Handle, Isid, Session, SessionConfig, State, Stats, TargetConfig, Timeouts, TmfError,
};
use isboot_core::text::{DigestOffer, Key, Offer, Params};
use isboot_executor::host::StdLock;

use crate::net::HostConnector;
use crate::runtime::{Helper, HostRuntime};
use crate::sys::{OsRandom, StderrLog};

/// How to reach and use the disk.
#[derive(Clone, Debug)]
pub struct DiskConfig {
    pub portal: SocketAddr,
    pub target_name: String,
    pub lun: u16,
    pub initiator_name: String,
    /// CHAP (one-way, or mutual with the target's credentials); secrets print redacted.
    pub chap: Option<ChapConfig>,
    /// Offer CRC32C header and data digests (preferred over None).
    pub digests: bool,
    /// Operational values offered at login; `digests` overrides the digest entries.
    pub offer: Offer,
    pub timeouts: Timeouts,
    /// Request slots of the session: the most commands in flight.
    pub max_commands: usize,
    /// Failed login attempts in a row before the session gives up; `None` retries forever (as a
    /// root disk must). Opening fails when the session gives up.
    pub login_attempts: Option<u32>,
    /// Each command is aborted and fails with a timeout after this long, counted from its first
    /// submission: a command sent again after a UNIT ATTENTION only gets what is left. `None`
    /// waits forever (the session still reconnects). At most [`MAX_WAIT`] is honoured.
    pub command_timeout: Option<Duration>,
    /// The longest any call of this API waits (login, a command with its UNIT ATTENTION
    /// retries, shutdown). At most [`MAX_WAIT`] is honoured.
    pub io_timeout: Duration,
    /// Connect here instead of `portal` (a relay in tests); the session still believes it talks
    /// to `portal`.
    pub connect_via: Option<SocketAddr>,
    /// Further portals of the same target (same name and CHAP), tried in turn after a failed
    /// attempt, as the iBFT's second target is.
    pub alternates: Vec<SocketAddr>,
    /// A caller waiting for a completion (or the login) drives the session's executor loop on
    /// its own thread instead of waking the runtime's thread and waiting to be woken back:
    /// fewer thread hops per command. `false` leaves all driving to the runtime's thread.
    pub drive_on_wait: bool,
    /// Messages up to this level go to stderr (0..=3, as `net.isboot.debug`); `ISBOOT_DEBUG` in
    /// the environment overrides it.
    pub log_level: u8,
}

impl DiskConfig {
    /// Defaults: no CHAP, no digests, 64 commands in flight, reconnect forever, 120 s I/O bound.
    pub fn new(portal: SocketAddr, target_name: &str, lun: u16, initiator_name: &str) -> Self {
        DiskConfig {
            portal,
            target_name: target_name.to_string(),
            lun,
            initiator_name: initiator_name.to_string(),
            chap: None,
            digests: false,
            offer: Offer::default(),
            timeouts: Timeouts::default(),
            max_commands: 64,
            login_attempts: None,
            command_timeout: None,
            io_timeout: Duration::from_secs(120),
            connect_via: None,
            alternates: Vec::new(),
            drive_on_wait: true,
            log_level: 1,
        }
    }

    fn session_config(&self, isid: Isid) -> SessionConfig {
        let chap = self.chap.clone();
        let targets = std::iter::once(self.portal)
            .chain(self.alternates.iter().copied())
            .map(|addr| TargetConfig {
                portal: Portal { addr, nic: 0 },
                name: self.target_name.clone(),
                chap: chap.clone(),
            })
            .collect();
        let mut cfg = SessionConfig::new(self.initiator_name.clone(), isid, targets);
        let mut offer = self.offer.clone();
        if self.digests {
            offer
                .set_digest(Key::HeaderDigest, DigestOffer::PreferCrc32c)
                .set_digest(Key::DataDigest, DigestOffer::PreferCrc32c);
        }
        cfg.offer = offer;
        cfg.timeouts = self.timeouts;
        cfg.max_tasks = self.max_commands.max(1);
        cfg.backoff.max_attempts = self.login_attempts;
        // Tests restart targets within a second or two: reconnect promptly.
        cfg.backoff.step = Duration::from_millis(200);
        cfg.backoff.max = Duration::from_secs(2);
        cfg
    }
}

/// The longest wait any duration of this API stands for: longer ones (up to `Duration::MAX`)
/// mean "practically forever" and are clamped, so that no deadline computation can overflow.
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest logical block accepted from READ CAPACITY: a target cannot make a read of a
/// few blocks allocate gigabytes.
pub const MAX_BLOCK_LEN: u32 = 64 * 1024;

/// The largest transfer of one command (reads allocate their buffer when the caller gives
/// none).
pub const MAX_TRANSFER: usize = 16 * 1024 * 1024;

/// `d` from now, at most [`MAX_WAIT`] away.
fn deadline_in(d: Duration) -> Instant {
    deadline_from(Instant::now(), d)
}

/// `d` from `now`, at most [`MAX_WAIT`] away.
fn deadline_from(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_WAIT)).unwrap_or(now)
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The session ended (login failed for good, gave up reconnecting, or was shut down).
    Ended(String),
    /// The target completed the command with a status other than GOOD.
    Scsi { status: u8, sense: Box<Sense> },
    /// The command finished without a SCSI status.
    Transport(TransportError),
    /// Nothing happened within [`DiskConfig::io_timeout`].
    Timeout(&'static str),
    /// The request cannot be expressed (length, LBA range).
    Invalid(String),
    /// The data came back shorter than asked for.
    Short { wanted: usize, got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ended(why) => write!(f, "session ended: {why}"),
            Error::Scsi { status, sense } => match sense.key_asc_ascq() {
                Some((k, a, q)) => write!(
                    f,
                    "SCSI status {status:#04x}, sense key {k:#x} ASC {a:#04x} ASCQ {q:#04x}"
                ),
                None => write!(f, "SCSI status {status:#04x}"),
            },
            Error::Transport(e) => write!(f, "{e}"),
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
            Error::Short { wanted, got } => write!(f, "short transfer: {got} of {wanted} bytes"),
        }
    }
}

impl std::error::Error for Error {}

/// Where a submitted command's completion waits for its caller: a slot per command not waited
/// for yet, named by the command's tag (slot in the low 32 bits, a generation above, so that a
/// late completion never lands in the slot's next life). Slots are reused, so a caller that
/// keeps a steady number of commands in flight makes the board allocate nothing.
#[derive(Default)]
struct Slots {
    slots: Vec<(u32, Option<Completion>)>,
    free: Vec<u32>,
}

impl Slots {
    /// A tag for a new command.
    fn take(&mut self) -> u64 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push((0, None));
                // Slots stay far below 2^32: each is a command a caller holds a Pending for.
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[slot as usize].0;
        u64::from(generation) << 32 | u64::from(slot)
    }

    fn split(tag: u64) -> (usize, u32) {
        ((tag & 0xffff_ffff) as usize, (tag >> 32) as u32)
    }

    /// Files a completion; one for a tag no longer current is dropped.
    fn put(&mut self, c: Completion) {
        let (slot, generation) = Slots::split(c.tag);
        if let Some(s) = self.slots.get_mut(slot) {
            if s.0 == generation {
                s.1 = Some(c);
            }
        }
    }

    /// The completion for `tag`, if it is in.
    fn get(&mut self, tag: u64) -> Option<Completion> {
        let (slot, generation) = Slots::split(tag);
        let s = self.slots.get_mut(slot).filter(|s| s.0 == generation)?;
        s.1.take()
    }

    /// Moves the completion for `tag`, if it is in, into `dst` and frees the command's slot
    /// ([`Slots::get`] then [`Slots::release`], with one look for the slot), as the `spare` if
    /// there is none. Whatever `dst` held is dropped.
    fn take_into(&mut self, tag: u64, dst: &mut Option<Completion>, spare: &AtomicU64) -> bool {
        let (slot, generation) = Slots::split(tag);
        let Some(s) = self.slots.get_mut(slot).filter(|s| s.0 == generation) else {
            *dst = None;
            return false;
        };
        if s.1.is_none() {
            *dst = None;
            return false;
        }
        // Swapped rather than assigned: the completion is large (sense bytes inline), and an
        // assignment went through a copy on the stack. What `dst` held is dropped with the
        // slot's emptying below.
        std::mem::swap(dst, &mut s.1);
        s.0 = s.0.wrapping_add(1);
        s.1 = None;
        // The slot's next life, with its generation moved on, becomes the spare if there is
        // none: the next submission takes it without the board's lock (`Shared::new_tag`).
        // Only this hold of the board sets the spare; a submission only empties it.
        let next = u64::from(s.0) << 32 | slot as u64;
        if spare
            .compare_exchange(NO_SPARE, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            self.free.push(slot as u32);
        }
        true
    }

    /// Commands handed out and not yet finished with; `spare` is [`Shared::spare`] (read under
    /// the board's lock: a submission that empties it meanwhile hands its slot out).
    fn outstanding(&self, spare: &AtomicU64) -> usize {
        let spare = usize::from(spare.load(Ordering::SeqCst) != NO_SPARE);
        self.slots
            .len()
            .saturating_sub(self.free.len())
            .saturating_sub(spare)
    }

    /// The command with `tag` is finished with (waited for, or abandoned): its slot is free.
    fn release(&mut self, tag: u64) {
        let (slot, generation) = Slots::split(tag);
        if let Some(s) = self.slots.get_mut(slot).filter(|s| s.0 == generation) {
            s.0 = s.0.wrapping_add(1);
            s.1 = None;
            self.free.push(slot as u32);
        }
    }
}

/// What the session reported, shared between the session task and callers.
#[derive(Default)]
struct Board {
    done: Slots,
    state: State,
    /// Set when `run()` returned: why the session ended.
    ended: Option<String>,
    ups: u64,
    /// The session's last high-level message (why a login failed, what was violated).
    last_note: Option<String>,
}

struct Shared {
    board: Mutex<Board>,
    cond: Condvar,
    /// Threads asleep on `cond`: a completion nobody sleeps for needs no futex wake (the caller
    /// driving the loop sees it when its poll returns). Changed only under the board's lock,
    /// before a sleep and after it, so whoever files a completion under that lock reads it
    /// right; a caller that stops driving reads it without the lock, and a sleeper it misses
    /// there looks again within its `PATIENCE`.
    sleepers: AtomicUsize,
    /// Counts the board's news a driving caller waits for (a completion filed, the session's
    /// end), raised under the board's lock: while it stands, a look at the board would find
    /// what the last look found, so the caller skips the lock after each executor poll.
    news: AtomicU64,
    /// A free slot's tag (or [`NO_SPARE`]), set aside by the last completion taken: a caller
    /// running one command after another submits the next without locking the board. Free
    /// all the same: not counted in [`Slots::outstanding`].
    spare: AtomicU64,
    /// Set (under the board's lock, before `news` moves) once `Board::ended` is: a submission
    /// that took the spare without the lock reads it after `news`.
    over: AtomicBool,
    /// Set once the runtime runs: waiting callers drive its loop themselves.
    helper: OnceLock<Helper>,
    /// This process may run on two CPUs or more at once (its affinity mask and CPU quota, as
    /// the disk was opened): only then can the runtime's thread receive while a caller works.
    parallel: bool,
}

/// How long a waiting caller waits for another thread's hold on the executor loop (or for its
/// completion while another thread drives) before it looks again.
const PATIENCE: Duration = Duration::from_millis(1);

/// No spare tag: a slot's index stays far below 2^32 - 1, so no tag is all ones.
const NO_SPARE: u64 = u64::MAX;

impl Shared {
    fn new(parallel: bool) -> Shared {
        Shared {
            board: Mutex::new(Board::default()),
            cond: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            news: AtomicU64::new(0),
            spare: AtomicU64::new(NO_SPARE),
            over: AtomicBool::new(false),
            helper: OnceLock::new(),
            parallel,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records why the session ended and wakes every waiter.
    fn end(&self, mut b: MutexGuard<'_, Board>, why: String) {
        b.ended = Some(why);
        self.over.store(true, Ordering::SeqCst);
        self.news.fetch_add(1, Ordering::SeqCst);
        drop(b);
        self.cond.notify_all();
    }

    /// A tag for a new command, and the news count its completion comes after (`None` if the
    /// session has ended: a wait must look at the board at once).
    fn new_tag(&self) -> (u64, Option<u64>) {
        let tag = self.spare.swap(NO_SPARE, Ordering::SeqCst);
        if tag != NO_SPARE {
            // `over` is read after `news`: if it is not set yet, `end` sets it later, so it
            // moves `news` after the count read here and the wait looks. A completion for the
            // tag comes after its submission, after this read too.
            let seen = self.news.load(Ordering::SeqCst);
            return (tag, (!self.over.load(Ordering::SeqCst)).then_some(seen));
        }
        let mut b = self.lock();
        let seen = b.ended.is_none();
        (
            b.done.take(),
            seen.then(|| self.news.load(Ordering::SeqCst)),
        )
    }

    /// Sleeps on the condition variable for at most `d`, counted in `sleepers`.
    fn sleep<'a>(&'a self, b: MutexGuard<'a, Board>, d: Duration) -> MutexGuard<'a, Board> {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let b = self
            .cond
            .wait_timeout(b, d)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        b
    }

    /// Waits until `f` gives a value or `deadline` passes.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        what: &'static str,
        mut f: impl FnMut(&mut Board) -> Option<T>,
    ) -> Result<T, Error> {
        self.wait_driving(deadline, what, true, None, &mut f)
    }

    /// As [`Shared::wait_for`]; `drive` false leaves the loop to the runtime's thread (asked to
    /// take it at once), which then receives in parallel with what this thread does next.
    /// `seen`: the news count when `f` last could not have found its answer (a command's
    /// submission), for an `f` that looks only for news; while the count stands, a driving
    /// caller does not lock the board to run `f`. `None` runs `f` at every look.
    fn wait_driving<T>(
        &self,
        deadline: Instant,
        what: &'static str,
        drive: bool,
        mut seen: Option<u64>,
        mut f: impl FnMut(&mut Board) -> Option<T>,
    ) -> Result<T, Error> {
        // Whether there may be news since `seen` (which then moves up to the count).
        let news = |seen: &mut Option<u64>| match seen {
            None => true,
            Some(at) => {
                let now = self.news.load(Ordering::SeqCst);
                std::mem::replace(at, now) != now
            }
        };
        // The first look needs no clock when this thread drives: it finds its answer in that
        // drive, and `drive_until` stops at the deadline by itself.
        let mut first = true;
        loop {
            let driver = self.helper.get().filter(|_| drive);
            let Some(helper) = driver else {
                let mut b = self.lock();
                if let Some(v) = f(&mut b) {
                    return Ok(v);
                }
                if Instant::now() >= deadline {
                    return Err(Error::Timeout(what));
                }
                if let Some(h) = self.helper.get() {
                    h.hand_off();
                }
                drop(self.sleep(b, deadline.saturating_duration_since(Instant::now())));
                continue;
            };
            if news(&mut seen) {
                if let Some(v) = f(&mut self.lock()) {
                    return Ok(v);
                }
            }
            if !first && Instant::now() >= deadline {
                return Err(Error::Timeout(what));
            }
            first = false;
            // Run the session on this thread until the answer is there: no wake of another
            // thread to send the command, none to hand the completion back.
            let mut got = None;
            let drove = helper.drive_until(deadline, PATIENCE, || {
                if !news(&mut seen) {
                    return false;
                }
                got = f(&mut self.lock());
                got.is_some()
            });
            if drove && self.sleepers.load(Ordering::SeqCst) > 0 {
                // Callers asleep here while this one drove can drive now.
                self.cond.notify_all();
            }
            if let Some(v) = got {
                return Ok(v);
            }
            if drove {
                continue;
            }
            let b = self.lock();
            drop(self.sleep(
                b,
                PATIENCE.min(deadline.saturating_duration_since(Instant::now())),
            ));
        }
    }
}

/// The session's event sink: completions and state changes onto the board.
struct HostEvents {
    shared: Arc<Shared>,
}

impl Events for HostEvents {
    type Buf = Vec<u8>;

    fn complete(&mut self, completion: Completion) {
        let mut b = self.shared.lock();
        b.done.put(completion);
        self.shared.news.fetch_add(1, Ordering::SeqCst);
        let sleepers = self.shared.sleepers.load(Ordering::SeqCst);
        drop(b);
        if sleepers > 0 {
            self.shared.cond.notify_all();
        }
    }

    fn reset_done(&mut self, _tag: u64, _result: Result<(), TmfError>) {}

    fn state(&mut self, state: State) {
        let mut b = self.shared.lock();
        b.state = state;
        if state == State::Up {
            b.ups += 1;
        }
        drop(b);
        self.shared.cond.notify_all();
    }
}

/// The session's log: printed to stderr up to the configured level, and the messages a caller
/// needs (the last note) kept on the board whatever the level.
#[derive(Clone)]
struct HostLog {
    out: StderrLog,
    shared: Arc<Shared>,
}

impl Log for HostLog {
    fn enabled(&self, level: Level) -> bool {
        level <= Level::Note || self.out.enabled(level)
    }

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.out.enabled(level) {
            self.out.log(level, args);
        }
        if level <= Level::Note {
            self.shared.lock().last_note = Some(args.to_string());
        }
    }
}

/// A submitted command; [`Pending::wait`] gives its data (reads) or confirms it (writes).
#[must_use = "a submitted command completes whether or not it is waited for"]
#[derive(Debug)]
pub struct Pending {
    inner: Arc<Inner>,
    tag: u64,
    cdb: Cdb,
    direction: Direction,
    /// Bytes the command transfers.
    len: usize,
    /// When the command times out, counted from its first submission (`command_timeout`).
    expires: Option<Instant>,
    /// How long the caller waits for it at most, from its first submission (`io_timeout`).
    wait_until: Instant,
    /// Set once the command's slot on the board is given back.
    done: bool,
    /// The board's news count when the command got its slot (its completion comes after);
    /// `None` if the session had ended by then, which a look must find at once.
    seen: Option<u64>,
}

/// The largest transfer whose caller drives the session while it waits (see
/// [`Pending::completion`]).
const DRIVE_MAX: usize = 64 * 1024;

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Times a command is sent again after a UNIT ATTENTION (the target reports each event once, so
/// a handful covers a reset followed by a parameter change).
const UNIT_ATTENTION_RETRIES: u32 = 8;
const UNIT_ATTENTION: u8 = 0x06;

impl Pending {
    /// Waits for the completion: the buffer for a read (exactly the length asked for), an empty
    /// vector for a write. A UNIT ATTENTION (the first command after a login on a fresh target
    /// gets one for the power-on reset) is reported by the target instead of executing the
    /// command, so the command is sent again, as every SCSI disk driver does, within the time
    /// the command had from its first submission.
    pub fn wait(self) -> Result<Vec<u8>, Error> {
        let c = self.finish()?;
        let want = if c.1 == Direction::In {
            c.0.data.len()
        } else {
            0
        };
        into_data(c.0, want)
    }

    /// As [`Pending::wait`], but a read may return less than asked for (as INQUIRY and REPORT
    /// LUNS do): the bytes the target sent, at least `min` of them.
    pub fn wait_partial(self, min: usize) -> Result<Vec<u8>, Error> {
        into_data(self.finish()?.0, min)
    }

    /// Waits for the completion and gives back the command's buffer whole, for the next
    /// command: a read's filled with the data (all of it transferred, or [`Error::Short`]), a
    /// write's as it was.
    pub fn wait_buffer(self) -> Result<Vec<u8>, Error> {
        // The completion is read where it lands: a `Completion` (sense bytes inline) is large
        // enough that each move through the layers of the wait costs as much as the checks.
        let mut slot = None;
        let dir = self.finish_into(&mut slot)?;
        let good = match &slot {
            Some(Completion { result: Ok(r), .. }) if r.is_good() => Some(r.transferred as usize),
            _ => None,
        };
        let (Some(got), Some(c)) = (good, slot.as_mut()) else {
            return Err(slot.map_or(Error::Timeout("a command to complete"), |c| {
                failure(c.result)
            }));
        };
        if dir == Direction::In && got < c.data.len() {
            return Err(Error::Short {
                wanted: c.data.len(),
                got,
            });
        }
        Ok(std::mem::take(&mut c.data))
    }

    /// The completion after the UNIT ATTENTION retries, with the command's direction.
    fn finish(self) -> Result<(Completion, Direction), Error> {
        let mut slot = None;
        let dir = self.finish_into(&mut slot)?;
        slot.map(|c| (c, dir))
            .ok_or(Error::Timeout("a command to complete"))
    }

    /// As [`Pending::finish`], the completion left in `slot` (always filled on success).
    fn finish_into(mut self, slot: &mut Option<Completion>) -> Result<Direction, Error> {
        let mut retries = 0;
        loop {
            self.take_completion(slot)?;
            let ua = matches!(slot, Some(Completion { result: Ok(r), .. })
                if r.status == status::CHECK_CONDITION
                && r.sense.key_asc_ascq().is_some_and(|(k, _, _)| k == UNIT_ATTENTION));
            if ua && retries < UNIT_ATTENTION_RETRIES {
                retries += 1;
                let data = slot.take().map(|c| c.data).unwrap_or_default();
                self = self.resubmit(data)?;
                continue;
            }
            return Ok(self.direction);
        }
    }

    /// Sends the command again with its buffer, with what is left of its time.
    fn resubmit(mut self, data: Vec<u8>) -> Result<Pending, Error> {
        let timeout = match self.expires {
            None => None,
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Error::Transport(TransportError::Timeout)),
            },
        };
        let inner = self.inner.clone();
        let cdb = std::mem::take(&mut self.cdb);
        let (dir, wait_until) = (self.direction, self.wait_until);
        self.release();
        inner.submit_request(cdb, dir, data, timeout, (Instant::now(), wait_until))
    }

    /// Waits for the raw completion.
    pub fn completion(&self) -> Result<Completion, Error> {
        let tag = self.tag;
        let mut slot = None;
        self.wait_board(|b| {
            slot = b.done.get(tag);
            slot.is_some()
        })?;
        slot.ok_or(Error::Timeout("a command to complete"))
    }

    /// As [`Pending::completion`], into `slot`, and gives the command's slot on the board back
    /// in the same hold of the board that takes the completion out of it (one lock fewer per
    /// command than a release when the `Pending` is dropped).
    fn take_completion(&mut self, slot: &mut Option<Completion>) -> Result<(), Error> {
        let tag = self.tag;
        let spare = &self.inner.shared.spare;
        self.wait_board(|b| b.done.take_into(tag, slot, spare))?;
        self.done = true;
        Ok(())
    }

    /// Waits until `take` finds the completion on the board (and says so), or the session
    /// ends.
    fn wait_board(&self, mut take: impl FnMut(&mut Board) -> bool) -> Result<(), Error> {
        // Small commands are latency-bound: this thread runs the session itself. Large ones
        // are copy-bound: the runtime's thread receives them while this one goes on (allocating
        // and submitting the next, checking the last), which keeps both cores busy. Alone in
        // flight, a large one has nothing to overlap with: handing it over would only add a
        // wake of each thread (1 MiB reads at QD1: 7 % more CPU per command, 2.4 futex calls).
        // Nor has any when the process may use one CPU only: the threads would take turns on
        // it (1 MiB reads at QD8 pinned to one CPU, tgtd: ~10 % more CPU per command handed
        // over, ~2.3 futex calls and 5.7 context switches per command).
        let shared = &self.inner.shared;
        let drive = self.len <= DRIVE_MAX
            || !shared.parallel
            || shared.lock().done.outstanding(&shared.spare) <= 1;
        shared.wait_driving(
            self.wait_until,
            "a command to complete",
            drive,
            self.seen,
            |b| {
                if take(b) {
                    return Some(Ok(()));
                }
                b.ended.clone().map(|why| Err(Error::Ended(why)))
            },
        )?
    }

    /// Gives the command's slot on the board back (its completion, if it comes later, is
    /// dropped).
    #[inline]
    fn release(&mut self) {
        // A waited-for command gave its slot back already (`take_completion`): every drop
        // after a wait only needs this check, without a call.
        if !std::mem::replace(&mut self.done, true) {
            self.release_slot();
        }
    }

    #[inline(never)]
    fn release_slot(&self) {
        self.inner.shared.lock().done.release(self.tag);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.release();
    }
}

/// The data of a good completion: what was transferred, at least `want` bytes (for a write or a
/// command without data, nothing).
fn into_data(c: Completion, want: usize) -> Result<Vec<u8>, Error> {
    let r = match c.result {
        Ok(r) if r.is_good() => r,
        other => return Err(failure(other)),
    };
    if c.data.is_empty() || r.transferred == 0 && want == 0 {
        return Ok(Vec::new());
    }
    let got = (r.transferred as usize).min(c.data.len());
    if got < want {
        return Err(Error::Short { wanted: want, got });
    }
    let mut data = c.data;
    data.truncate(got);
    Ok(data)
}

/// The error for a completion that did not end GOOD.
#[cold]
fn failure(result: Result<ScsiResult, TransportError>) -> Error {
    match result {
        Ok(r) => Error::Scsi {
            status: r.status,
            sense: Box::new(r.sense),
        },
        Err(e) => Error::Transport(e),
    }
}

/// One iSCSI session used as a block device (see the module documentation).
pub struct HostDisk {
    inner: Arc<Inner>,
    owner: Option<JoinHandle<()>>,
    block_len: u32,
}

/// What submitting needs; shared with [`Pending`] so it can send a command again.
struct Inner {
    handle: Handle<StdLock>,
    shared: Arc<Shared>,
    lun: Lun,
    cfg: DiskConfig,
}

impl Inner {
    /// Submits `cdb` moving `data` the way `direction` says (ignored without a data phase).
    fn submit(
        self: &Arc<Self>,
        cdb: &[u8],
        direction: Direction,
        data: Vec<u8>,
    ) -> Result<Pending, Error> {
        let cdb = Cdb::new(cdb).map_err(|e| Error::Invalid(e.to_string()))?;
        if data.len() > MAX_TRANSFER {
            return Err(Error::Invalid(format!(
                "{} bytes in one command (at most {MAX_TRANSFER})",
                data.len()
            )));
        }
        let timeout = self.cfg.command_timeout.map(|t| t.min(MAX_WAIT));
        // One clock read for both of the command's deadlines.
        let now = Instant::now();
        let wait_until = deadline_from(now, self.cfg.io_timeout);
        self.submit_request(cdb, direction, data, timeout, (now, wait_until))
    }

    /// Hands one request to the session; `timeout` is what is left of the command's time,
    /// counted from `now`, and the caller waits for it until `wait_until`.
    fn submit_request(
        self: &Arc<Self>,
        cdb: Cdb,
        direction: Direction,
        data: Vec<u8>,
        timeout: Option<Duration>,
        (now, wait_until): (Instant, Instant),
    ) -> Result<Pending, Error> {
        let data = if direction == Direction::None {
            Vec::new()
        } else {
            data
        };
        let len = data.len();
        let (tag, seen) = self.shared.new_tag();
        // Kept for a resend after a UNIT ATTENTION; a CDB of up to 16 bytes is copied inline.
        let mut req = ScsiRequest::with_data(tag, self.lun, cdb.clone(), direction, data);
        req.timeout = timeout;
        if let Err(back) = self.handle.submit(req) {
            if let Err(e) = self.submit_when_room(back, wait_until) {
                self.shared.lock().done.release(tag);
                return Err(e);
            }
        }
        // Built in place once the request is in: a request and a Pending moved around a retry
        // loop cost a copy of each per command.
        Ok(Pending {
            inner: self.clone(),
            tag,
            cdb,
            direction,
            len,
            expires: timeout.map(|t| deadline_from(now, t)),
            wait_until,
            done: false,
            seen,
        })
    }

    /// The session's inbox is bounded: while it is full, waits for any completion (which
    /// frees room in the session) and tries again, until the session ends or `wait_until`.
    #[cold]
    fn submit_when_room(&self, mut req: ScsiRequest, wait_until: Instant) -> Result<(), Error> {
        loop {
            let ended = self.shared.lock().ended.clone();
            if let Some(why) = ended {
                return Err(Error::Ended(why));
            }
            if Instant::now() >= wait_until {
                return Err(Error::Timeout("room in the session's inbox"));
            }
            let b = self.shared.lock();
            drop(self.shared.sleep(b, Duration::from_millis(2)));
            match self.handle.submit(req) {
                Ok(()) => return Ok(()),
                Err(back) => req = back,
            }
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("lun", &self.lun)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for HostDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostDisk")
            .field("portal", &self.inner.cfg.portal)
            .field("target", &self.inner.cfg.target_name)
            .field("lun", &self.inner.cfg.lun)
            .field("block_len", &self.block_len)
            .finish_non_exhaustive()
    }
}

impl HostDisk {
    /// Logs in and reads the block size; fails when the session gives up or nothing happens
    /// within `io_timeout`.
    pub fn open(cfg: DiskConfig) -> Result<HostDisk, Error> {
        let lun = Lun::from_number(u64::from(cfg.lun))
            .ok_or_else(|| Error::Invalid(format!("LUN {} cannot be addressed", cfg.lun)))?;
        let shared = Arc::new(Shared::new(
            std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        ));
        let mut random = OsRandom::new();
        let isid = Isid::random(&mut random as &mut dyn Random);
        let session_cfg = cfg.session_config(isid);
        let log = HostLog {
            out: StderrLog::from_env(cfg.log_level),
            shared: shared.clone(),
        };
        let mut connector = HostConnector {
            timeout: session_cfg.connect_timeout,
            redirect: cfg.connect_via,
            reactor: None,
        };
        let drive_on_wait = cfg.drive_on_wait;
        let (tx, rx) = mpsc::channel();
        let events = HostEvents {
            shared: shared.clone(),
        };
        let board = shared.clone();
        // The runtime and the session's join handle live on this thread's stack: the handle
        // borrows the runtime, and the session must be awaited before the runtime goes.
        let owner = std::thread::Builder::new()
            .name("isboot-session".into())
            .spawn(move || {
                let rt = match HostRuntime::new() {
                    Ok(rt) => rt,
                    Err(e) => {
                        board.end(board.lock(), format!("cannot start the executor: {e}"));
                        return;
                    }
                };
                // Connections are watched by the executor's own loop: no thread hop between
                // "data arrived" and "the session reads it".
                connector.reactor = Some(rt.reactor().clone());
                if drive_on_wait {
                    let _ = board.helper.set(rt.helper());
                }
                let (handle, session) =
                    match Session::try_new(session_cfg, connector, events, random, log, rt.timer())
                    {
                        Ok(s) => s,
                        Err(e) => {
                            board.end(board.lock(), format!("cannot start the session: {e}"));
                            return;
                        }
                    };
                let _ = tx.send(handle);
                let task = rt.spawn(session.run());
                let end: End = rt.block_on(task);
                let mut b = board.lock();
                let why = match end {
                    End::LoggedOut => "logged out".to_string(),
                    End::GaveUp => format!(
                        "gave up: {}",
                        b.last_note.as_deref().unwrap_or("no login succeeded")
                    ),
                };
                b.state = State::Closed;
                board.end(b, why);
            })
            .map_err(|e| Error::Ended(format!("cannot start the session thread: {e}")))?;
        let handle = match rx.recv_timeout(cfg.io_timeout) {
            Ok(h) => h,
            Err(_) => {
                let why = shared.lock().ended.clone();
                let _ = owner.join();
                return Err(why.map_or(Error::Timeout("the session to start"), Error::Ended));
            }
        };
        let mut disk = HostDisk {
            inner: Arc::new(Inner {
                handle,
                shared,
                lun,
                cfg,
            }),
            owner: Some(owner),
            block_len: 512,
        };
        let deadline = deadline_in(disk.inner.cfg.io_timeout);
        disk.inner.shared.wait_for(deadline, "the login", |b| {
            if b.ups > 0 {
                Some(Ok(()))
            } else {
                b.ended.clone().map(|why| Err(Error::Ended(why)))
            }
        })??;
        let (_, bl) = disk.read_capacity()?;
        disk.block_len = bl;
        Ok(disk)
    }

    /// Logical block size of the disk.
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// The values negotiated at the last login (MaxRecvDataSegmentLength both ways, bursts,
    /// InitialR2T, ImmediateData, digests); `None` before the first login.
    pub fn negotiated(&self) -> Option<Params> {
        self.inner.handle.status().params
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.inner.handle.status().stats
    }

    /// Connections lost (or dropped by us) after a login so far.
    pub fn reconnects(&self) -> u64 {
        self.inner.handle.status().disconnects
    }

    /// Submits `cdb` with `data` (writes) or a buffer of `read_len` (reads, allocated and
    /// zeroed here); neither for no data.
    pub fn submit(
        &self,
        cdb: &[u8],
        write: Option<Vec<u8>>,
        read_len: usize,
    ) -> Result<Pending, Error> {
        match write {
            Some(data) => self.inner.submit(cdb, Direction::Out, data),
            None if read_len > 0 => {
                if read_len > MAX_TRANSFER {
                    return Err(Error::Invalid(format!(
                        "{read_len} bytes in one command (at most {MAX_TRANSFER})"
                    )));
                }
                self.inner.submit(cdb, Direction::In, vec![0; read_len])
            }
            None => self.inner.submit(cdb, Direction::None, Vec::new()),
        }
    }

    /// Submits `cdb` moving the caller's `buf` the way `direction` says: a read fills it (its
    /// length is the transfer length; it is not cleared first), a write sends it.
    pub fn submit_into(
        &self,
        cdb: &[u8],
        direction: Direction,
        buf: Vec<u8>,
    ) -> Result<Pending, Error> {
        self.inner.submit(cdb, direction, buf)
    }

    /// Runs one command to completion.
    pub fn execute(
        &self,
        cdb: &[u8],
        write: Option<Vec<u8>>,
        read_len: usize,
    ) -> Result<Vec<u8>, Error> {
        self.submit(cdb, write, read_len)?.wait()
    }

    /// Bytes of `blocks` blocks, if one command may carry them.
    fn check_len(&self, blocks: u64) -> Result<usize, Error> {
        blocks
            .checked_mul(u64::from(self.block_len))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= MAX_TRANSFER)
            .ok_or_else(|| Error::Invalid(format!("{blocks} blocks in one command")))
    }

    /// Submits a READ of `blocks` blocks at `lba` into a buffer allocated here.
    pub fn submit_read(&self, lba: u64, blocks: u32) -> Result<Pending, Error> {
        self.submit_read_into(lba, blocks, Vec::new())
    }

    /// Submits a READ of `blocks` blocks at `lba` into `buf`, which is made exactly that long
    /// (growing it zero-fills only what it lacked): a buffer reused from the last read of the
    /// same size is neither allocated nor cleared. Only the bytes the command transferred are
    /// its data: past them (a short read, a failed one) the buffer holds what it held, or
    /// bytes the receive path read into it before their header said they were not this
    /// read's data (a guessed Data-In, see `session::rx`), never another request's data.
    pub fn submit_read_into(
        &self,
        lba: u64,
        blocks: u32,
        mut buf: Vec<u8>,
    ) -> Result<Pending, Error> {
        let len = self.check_len(u64::from(blocks))?;
        buf.resize(len, 0);
        self.submit_into(
            cdb::read_write(false, lba, blocks).as_slice(),
            Direction::In,
            buf,
        )
    }

    /// Submits a WRITE of `data` (whole blocks) at `lba`; [`Pending::wait_buffer`] gives `data`
    /// back.
    pub fn submit_write(&self, lba: u64, data: Vec<u8>) -> Result<Pending, Error> {
        if data.is_empty() || data.len() % self.block_len as usize != 0 {
            return Err(Error::Invalid(format!(
                "{} bytes is not a whole number of {}-byte blocks",
                data.len(),
                self.block_len
            )));
        }
        let blocks = u32::try_from(data.len() / self.block_len as usize)
            .map_err(|_| Error::Invalid("write too large".into()))?;
        self.check_len(u64::from(blocks))?;
        self.submit_into(
            cdb::read_write(true, lba, blocks).as_slice(),
            Direction::Out,
            data,
        )
    }

    /// Reads `blocks` blocks at `lba`.
    pub fn read(&self, lba: u64, blocks: u32) -> Result<Vec<u8>, Error> {
        self.submit_read(lba, blocks)?.wait()
    }

    /// Writes `data` (whole blocks) at `lba`.
    pub fn write(&self, lba: u64, data: &[u8]) -> Result<(), Error> {
        self.submit_write(lba, data.to_vec())?.wait().map(drop)
    }

    /// Standard INQUIRY data as the target returned it (at least the 36 standard bytes).
    pub fn inquiry_data(&self) -> Result<Vec<u8>, Error> {
        self.submit(cdb::inquiry(96).as_slice(), None, 96)?
            .wait_partial(STANDARD_INQUIRY_LEN)
    }

    /// Standard INQUIRY, decoded.
    pub fn inquiry(&self) -> Result<Inquiry, Error> {
        let data = self.inquiry_data()?;
        Inquiry::parse(&data).map_err(|e| Error::Short {
            wanted: STANDARD_INQUIRY_LEN,
            got: e.got,
        })
    }

    /// READ CAPACITY(16): (number of blocks, block length).
    pub fn read_capacity(&self) -> Result<(u64, u32), Error> {
        let d = self.execute(cdb::read_capacity16(32).as_slice(), None, 32)?;
        let (blocks, bl) = cdb::parse_read_capacity16(&d).ok_or(Error::Short {
            wanted: 12,
            got: d.len(),
        })?;
        if !bl.is_power_of_two() || !(512..=MAX_BLOCK_LEN).contains(&bl) {
            return Err(Error::Invalid(format!(
                "target reports a {bl}-byte block (512 to {MAX_BLOCK_LEN}, a power of two, \
                 are usable)"
            )));
        }
        Ok((blocks, bl))
    }

    /// REPORT LUNS: the single-level LUN numbers the target lists.
    pub fn report_luns(&self) -> Result<Vec<u16>, Error> {
        let alloc = 8 + 8 * 256;
        let d = self
            .submit(cdb::report_luns(alloc as u32).as_slice(), None, alloc)?
            .wait_partial(8)?;
        Ok(cdb::parse_report_luns(&d)
            .filter_map(|l| l.number().and_then(|n| u16::try_from(n).ok()))
            .collect())
    }

    /// Logs out and stops the session (also done by drop).
    pub fn close(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let Some(owner) = self.owner.take() else {
            return Ok(());
        };
        self.inner.handle.shutdown();
        let deadline = deadline_in(self.inner.cfg.io_timeout);
        let r = self
            .inner
            .shared
            .wait_for(deadline, "the logout", |b| b.ended.as_ref().map(drop));
        if r.is_ok() {
            let _ = owner.join();
        }
        r
    }
}

impl Drop for HostDisk {
    fn drop(&mut self) {
        // A session that does not end in time keeps its thread; the process exit takes it.
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isboot_core::chap::Credentials;
    use isboot_core::secret::Secret;

    #[test]
    fn chap_debug_hides_secrets() {
        let c = ChapConfig::new(
            Credentials {
                name: "u".into(),
                secret: Secret::new(b"hunter2hunter2"),
            },
            Some(Credentials {
                name: "t".into(),
                secret: Secret::new(b"s3cr3tmutual"),
            }),
        );
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("s3cr3t"), "{d}");
        let mut cfg = DiskConfig::new("127.0.0.1:3260".parse().unwrap(), "iqn.x", 0, "iqn.y");
        cfg.chap = Some(c);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn session_config_carries_digests_and_chap() {
        let mut cfg = DiskConfig::new("127.0.0.1:3260".parse().unwrap(), "iqn.t", 1, "iqn.i");
        cfg.digests = true;
        cfg.login_attempts = Some(3);
        cfg.chap = Some(ChapConfig::new(
            Credentials {
                name: "u".into(),
                secret: Secret::new(b"secretsecret"),
            },
            None,
        ));
        cfg.alternates = vec!["127.0.0.2:3260".parse().unwrap()];
        let s = cfg.session_config(Isid([0x80, 1, 2, 3, 4, 5]));
        assert_eq!(s.offer.digest(Key::HeaderDigest), DigestOffer::PreferCrc32c);
        assert_eq!(s.offer.digest(Key::DataDigest), DigestOffer::PreferCrc32c);
        assert_eq!(s.backoff.max_attempts, Some(3));
        assert_eq!(s.targets.len(), 2);
        assert_eq!(s.targets[1].portal.addr, cfg.alternates[0]);
        assert!(s.targets.iter().all(|t| t.name == "iqn.t"));
        assert!(s.targets[1]
            .chap
            .as_ref()
            .is_some_and(|c| c.target.is_none()));
    }

    #[test]
    fn a_spare_tag_is_free_until_taken_and_sees_the_session_end() {
        let completion = |tag| Completion {
            tag,
            data: vec![1],
            result: Err(TransportError::Timeout),
        };
        let shared = Shared::new(false);
        let (first, seen) = shared.new_tag();
        assert_eq!(
            seen,
            Some(0),
            "a live session: wait for news after the submission"
        );
        shared.lock().done.put(completion(first));
        let mut got = None;
        assert!(shared.lock().done.take_into(first, &mut got, &shared.spare));
        assert_eq!(got.as_ref().map(|c| c.tag), Some(first));
        assert_eq!(
            shared.lock().done.outstanding(&shared.spare),
            0,
            "the spare is free"
        );
        // A late completion of the slot's last life must not land in its next.
        shared.lock().done.put(completion(first));
        let (next, seen) = shared.new_tag();
        assert_ne!(next, first);
        assert_eq!(
            Slots::split(next).0,
            Slots::split(first).0,
            "the slot came back"
        );
        assert_eq!(seen, Some(0));
        assert_eq!(shared.lock().done.outstanding(&shared.spare), 1);
        assert!(!shared.lock().done.take_into(next, &mut got, &shared.spare));
        // Taken again, the slot is the spare again; a submission after the session ended must
        // look at the board at once even though it takes the spare without the lock.
        shared.lock().done.put(completion(next));
        assert!(shared.lock().done.take_into(next, &mut got, &shared.spare));
        shared.end(shared.lock(), "logged out".into());
        let (last, seen) = shared.new_tag();
        assert_eq!(
            Slots::split(last).0,
            Slots::split(first).0,
            "the spare was taken"
        );
        assert_eq!(seen, None, "the session had ended: no news to wait for");
    }

    #[test]
    fn good_completions_give_exactly_the_transferred_data() {
        use isboot_core::scsi::ScsiResult;
        let ok = |transferred| Completion {
            tag: 1,
            data: vec![7u8; 64],
            result: Ok(ScsiResult {
                status: status::GOOD,
                sense: Sense::default(),
                transferred,
                residual: 64 - transferred,
                overflow: 0,
            }),
        };
        assert_eq!(into_data(ok(64), 64).unwrap().len(), 64);
        assert_eq!(into_data(ok(36), 8).unwrap().len(), 36);
        assert_eq!(
            into_data(ok(16), 64),
            Err(Error::Short {
                wanted: 64,
                got: 16
            })
        );
        let failed = Completion {
            tag: 1,
            data: vec![],
            result: Err(TransportError::Timeout),
        };
        assert_eq!(
            into_data(failed, 0),
            Err(Error::Transport(TransportError::Timeout))
        );
    }
}
