// SPDX-License-Identifier: BSD-2-Clause
//! The host's executor loop with socket readiness built in, driven by whichever thread waits.
//!
//! The loop does what a kernel taskqueue handler plus its callout and socket upcalls would: poll
//! the executor until nothing is ready, then sleep in `epoll_wait` (through `mio`) until a socket
//! is ready, a task is pended, or the next timer deadline. A readiness event wakes the waiting
//! task right there, on the thread that then polls it.
//!
//! Any thread may drive the loop. A caller that waits for a completion takes the loop and runs
//! it on its own thread until its completion is in ([`Helper::drive_until`]), as libiscsi's
//! caller runs its event loop: submit, send, receive and complete then happen without a single
//! thread hop or cross-thread wake. The runtime's own thread is the fallback driver: it takes the
//! loop over once no caller has held it for [`GRACE`] (looking less often, up to [`LOOK_MAX`]
//! apart, while callers keep using it), so timers, keepalives and commands nobody waits for
//! still progress, and hands it back (one eventfd write) when a caller asks.
//!
//! While a connection owes many answers (16 or more commands at the target), its reads wait on
//! the loop's timer instead: the socket leaves the epoll set and the loop sleeps [`TICK`] at a
//! time, then reports it readable. A target thread that queues data on a socket with no
//! sleeper then wakes nobody, which at QD32 was ~10 % of tgtd's CPU (see
//! `HostTransport::choose_wait` in `net`). A tick that finds nothing sends the read back to
//! readiness.
//!
//! While a long read streams in, a reader waits for a receive low-water mark above what it
//! needs now (see `HostTransport::choose_wait`); the loop bounds that wait: after
//! [`MARK_WAIT`] it wakes the reader, which then reads what is there, so a target that sends
//! less than it owed (an error, a short transfer) delays the reader by that much at most.
//!
//! Pends are merged through two flags: a pend while the driver runs costs nothing (it polls again
//! before sleeping), a pend while it sleeps in `epoll_wait` writes the eventfd, and a pend while
//! nobody drives leaves the work for the next driver (a waiting caller at once, else the
//! runtime's thread within [`GRACE`] to [`LOOK_MAX`]).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use isboot_executor::host::{at, block_on, now, StdLock};
use isboot_executor::{Config, Executor, JoinHandle, Pender, Timer};
use mio::{Events, Token};

use crate::readiness::Wakers;

/// The token of the loop's own eventfd; sockets get tokens above [`TIMER`].
const WAKE: Token = Token(0);
/// The token of the loop's timerfd (see `Reactor::sleep_until`).
const TIMER: Token = Token(1);

/// How long the loop must have been left alone by callers before the runtime's thread takes it
/// over. Short enough for keepalives and unwaited commands, long enough that a caller running
/// one command after another never loses the loop to it in between.
pub const GRACE: Duration = Duration::from_millis(1);

/// The longest the runtime's thread sleeps between looks at a loop callers keep using: how late
/// it may take over once they stop (timers and keepalives are seconds apart).
pub const LOOK_MAX: Duration = Duration::from_millis(16);

/// How long the loop sleeps, instead of waiting for readiness, while a connection reads on a
/// timer (`Reactor::set_timed`), on the timerfd so that it lasts that long and no longer. At
/// QD32 against tgtd's null store an answer comes every 4-15 µs (Xeon and Zen guests): a tick
/// finds several there, and the latency it adds is small beside the ~150-500 µs each of 32
/// commands waits for its answer. On the Xeon guest (4 KiB QD32, medians of 4 alternating 3 s
/// runs) ticks of 20, 30 and 50 µs gave 1.36x, 1.38x and 1.13x libiscsi's IOPS on the null
/// store at 0.69x, 0.62x and 0.62x its CPU per I/O; against tgtd with a file, 30 µs took
/// 0.72x libiscsi's CPU per I/O where the slack-stretched ticks before it took 0.58x, for
/// 9 % more I/O per second.
pub const TICK: Duration = Duration::from_micros(30);

/// The longest a reader waits for a low-water mark above the bytes it needs before the loop
/// wakes it to read what is there (`Reactor::set_ahead`). The bytes are owed, so the bound
/// only matters when a target ends a read early: then the command's answer waits this long.
/// Long beside the ~0.3 ms that 256 KiB take to arrive at loopback rates, short beside any
/// command timeout.
pub const MARK_WAIT: Duration = Duration::from_millis(1);

/// Nobody drives the loop.
const FREE: u8 = 0;
/// A thread drives it and will poll the executor again before it sleeps.
const RUNNING: u8 = 1;
/// The driver sleeps (or is about to) in `epoll_wait`: a pend must write the eventfd.
const SLEEPING: u8 = 2;

/// The epoll instance and its event buffer: what the driving thread owns.
#[derive(Debug)]
struct Loop {
    poll: mio::Poll,
    events: Events,
    /// When the reactor's timerfd expires, if it is armed and has not been seen to expire.
    armed: Option<Instant>,
    /// When the loop was last polled before it was let go (read by the runtime's thread to
    /// reckon its grace).
    released: Instant,
}

/// Readiness registrations and the loop's doorbell, shared with transports and the pender.
#[derive(Debug)]
pub struct Reactor {
    registry: mio::Registry,
    waker: mio::Waker,
    /// The registered sockets' tokens and wakers: a handful per runtime (one per session), so a
    /// scan is cheaper than hashing a token for every readiness event.
    sockets: Mutex<Vec<(Token, Arc<Wakers>)>>,
    next_token: AtomicUsize,
    stop: AtomicBool,
    /// The loop, locked by whoever drives it for as long as it does. Only ever `try_lock`ed,
    /// never waited for: taking the free loop is one compare-and-swap, and giving it back
    /// one swap, with no second lock and no move of the loop in or out of a slot. A thread
    /// that finds it held waits on `freed` under `slot` instead.
    lp: Mutex<Loop>,
    /// Pairs with `freed`: a thread that waits for the loop tries it again under this lock
    /// before each sleep, and a thread that lets the loop go while callers want it takes this
    /// lock before it signals, so the signal cannot fall between a failed try and the sleep.
    slot: Mutex<()>,
    /// Signalled when the loop is let go while callers want it, and at stop.
    freed: Condvar,
    /// FREE, RUNNING or SLEEPING.
    state: AtomicU8,
    /// Set by every pend, cleared by the driver before it polls.
    pending: AtomicBool,
    /// Callers waiting for (or holding) the loop: the runtime's thread yields to them.
    callers: AtomicUsize,
    /// A caller asked the runtime's thread to take the free loop at once (no grace).
    handoff: AtomicBool,
    /// Connections reading on the timer: while any do, the loop sleeps [`TICK`] at a time.
    timed: AtomicUsize,
    /// Ticks slept, for tests.
    ticks: AtomicUsize,
    /// Connections waiting on a mark ahead of their need: while any do, the loop sleeps at
    /// most [`MARK_WAIT`] at a time and wakes those whose bound passed.
    ahead: AtomicUsize,
    /// Readers the loop woke at their bound, for tests.
    bounded: AtomicUsize,
    /// What the bounds (`Wakers::ahead_until`) are reckoned from.
    epoch: Instant,
    /// The loop's deadline: armed at the next timer when it comes earlier than what is armed,
    /// so that the loop sleeps in `epoll_wait` without a timeout (see `Reactor::sleep_until`).
    timer: OwnedFd,
    /// Times the timerfd was armed, for tests.
    armings: AtomicUsize,
}

impl Reactor {
    /// Registers `stream` for read and write readiness; events wake `wakers`. Returns the token
    /// to pass to [`Reactor::deregister`].
    pub(crate) fn register(
        &self,
        stream: &mut mio::net::TcpStream,
        wakers: Arc<Wakers>,
    ) -> io::Result<Token> {
        let token = Token(self.next_token.fetch_add(1, Ordering::Relaxed));
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((token, wakers));
        if let Err(e) = self.resume(stream, token) {
            self.forget(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Stops readiness events for `stream` but keeps its wakers and token, so that the target's
    /// data no longer wakes this loop; [`Reactor::resume`] undoes it. The socket's wait queue
    /// is then empty, and the target thread that queues data on it wakes nobody: Linux's
    /// `sock_def_readable` wakes only the sleepers on that queue, and an epoll registration is
    /// one for as long as it lasts.
    pub(crate) fn pause(&self, stream: &mut mio::net::TcpStream) -> io::Result<()> {
        self.registry.deregister(stream)
    }

    /// Registers `stream` under `token` for read and write readiness, the first time or again
    /// after [`Reactor::pause`]. Data already there is reported at once (epoll looks at the
    /// socket when it is added), so none goes unseen.
    pub(crate) fn resume(&self, stream: &mut mio::net::TcpStream, token: Token) -> io::Result<()> {
        self.registry.register(
            stream,
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
    }

    /// Marks `wakers`' connection as reading on the timer (or no longer): every [`TICK`] the
    /// loop reports it readable, whether or not bytes came, and the reader looks.
    pub(crate) fn set_timed(&self, wakers: &Wakers, on: bool) {
        if wakers.timed.swap(on, Ordering::SeqCst) != on {
            if on {
                self.timed.fetch_add(1, Ordering::SeqCst);
            } else {
                self.timed.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Starts (`on`) or ends the bound on `wakers`' reader waiting for a mark above its need:
    /// [`MARK_WAIT`] from now the loop reports it readable, and its read then takes what is
    /// there. Started again at each such wait.
    pub(crate) fn set_ahead(&self, wakers: &Wakers, on: bool) {
        let until = if on {
            // At least 1: 0 means no bound.
            u64::try_from((self.epoch.elapsed() + MARK_WAIT).as_nanos())
                .unwrap_or(u64::MAX)
                .max(1)
        } else {
            0
        };
        let was = wakers.ahead_until.swap(until, Ordering::SeqCst);
        match (was != 0, on) {
            (false, true) => {
                self.ahead.fetch_add(1, Ordering::SeqCst);
            }
            (true, false) => {
                self.ahead.fetch_sub(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }

    /// Wakes the readers whose bound on a wait ahead passed at `t`.
    fn bound_ahead(&self, t: Instant) {
        let now =
            u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let list = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, w) in list.iter() {
            let until = w.ahead_until.load(Ordering::SeqCst);
            if until != 0
                && until <= now
                && w.ahead_until
                    .compare_exchange(until, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                self.ahead.fetch_sub(1, Ordering::SeqCst);
                self.bounded.fetch_add(1, Ordering::Relaxed);
                w.ready(true, false);
            }
        }
    }

    /// Readers woken at their bound so far.
    #[cfg(test)]
    pub(crate) fn bounded(&self) -> usize {
        self.bounded.load(Ordering::Relaxed)
    }

    /// Ticks slept so far.
    #[cfg(test)]
    pub(crate) fn ticks(&self) -> usize {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Reports every connection that reads on the timer readable.
    fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        let list = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, w) in list.iter() {
            if w.timed.load(Ordering::SeqCst) {
                w.ready(true, false);
            }
        }
    }

    /// Stops events for `stream` and forgets its wakers.
    pub(crate) fn deregister(&self, stream: &mut mio::net::TcpStream, token: Token) {
        let _ = self.registry.deregister(stream);
        self.forget(token);
    }

    fn forget(&self, token: Token) {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(t, _)| *t != token);
    }

    /// Wakes the tasks waiting for the sockets `events` reports, all under one hold of the
    /// socket list (a wake only schedules a task and pends this loop, which takes no lock of
    /// the list), without a reference count taken and dropped per event.
    fn dispatch(&self, events: &Events) {
        let mut sockets = None;
        for ev in events.iter() {
            if ev.token() == WAKE || ev.token() == TIMER {
                continue;
            }
            let list = sockets
                .get_or_insert_with(|| self.sockets.lock().unwrap_or_else(PoisonError::into_inner));
            if let Some((_, w)) = list.iter().find(|(t, _)| *t == ev.token()) {
                w.ready(
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                );
            }
        }
    }

    fn slot(&self) -> MutexGuard<'_, ()> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop, if nobody holds it now.
    fn try_take(&self) -> Option<MutexGuard<'_, Loop>> {
        match self.lp.try_lock() {
            Ok(lp) => Some(lp),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Waits for the loop until `until` or `patience` from now, or the runtime stops.
    #[cold]
    #[inline(never)]
    fn wait_for_loop(&self, until: Instant, patience: Duration) -> Option<MutexGuard<'_, Loop>> {
        let mut s = self.slot();
        let mut give_up = None;
        loop {
            // The caller counted itself in `callers` before this try; `put_back` lets the loop
            // go before it reads `callers`. With a fence on each side, either this try sees
            // the loop free or `put_back` sees the caller and signals under `slot`, which this
            // thread holds until it sleeps: no signal is lost (a store-load pair, as Dekker's).
            fence(Ordering::SeqCst);
            if let Some(lp) = self.try_take() {
                return Some(lp);
            }
            let now = Instant::now();
            let give_up = *give_up.get_or_insert_with(|| until.min(now + patience));
            if now >= give_up || self.stop.load(Ordering::Acquire) {
                return None;
            }
            s = self
                .freed
                .wait_timeout(s, give_up - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Lets the loop go; `at` is when it was last polled (a clock read of its own per release
    /// would be one more per command, for a grace time in milliseconds).
    fn put_back(&self, mut lp: MutexGuard<'_, Loop>, at: Instant) {
        self.state.store(FREE, Ordering::SeqCst);
        lp.released = at;
        drop(lp);
        // Pairs with the fence in `wait_for_loop` (see there). A caller that counts itself
        // after this read finds the loop free on its own try; the runtime's thread is not
        // signalled, it looks on its own schedule.
        fence(Ordering::SeqCst);
        if self.callers.load(Ordering::SeqCst) > 0 || self.stop.load(Ordering::Acquire) {
            drop(self.slot());
            self.freed.notify_all();
        }
    }

    /// Sleeps in `epoll_wait` until an event, or `timeout` from `t` (`None`: no deadline).
    ///
    /// The deadline is left to the timerfd, armed only when it must expire earlier than it is
    /// armed to (or has expired): the next timer is nearly always the same one (a session's
    /// keepalive, seconds away) or later (a caller's wait, from its own submit), so the loop
    /// sleeps with no timeout of epoll's own. An epoll timeout is a kernel timer started before
    /// each sleep and cancelled after it; at queue depth 1 that was one of each per command
    /// (`timer:hrtimer_start`), ~8 % of the CPU per 4 KiB read in a guest, where programming
    /// the timer traps to the hypervisor. A timer armed too early costs one round that finds
    /// nothing due, after which it is armed again.
    fn sleep_until(&self, lp: &mut Loop, t: Instant, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(d) = timeout {
            let at = t + d;
            if lp.armed.is_none_or(|a| a > at || a <= t) {
                crate::sys::arm_timer(&self.timer, d)?;
                self.armings.fetch_add(1, Ordering::Relaxed);
                lp.armed = Some(at);
            }
        }
        lp.poll.poll(&mut lp.events, None)
    }

    /// Times the timerfd was armed so far.
    #[cfg(test)]
    pub(crate) fn armings(&self) -> usize {
        self.armings.load(Ordering::Relaxed)
    }

    /// Runs the loop until `done()` (checked after every executor poll), `until` passes, or the
    /// runtime stops. Returns when the last round began, and epoll's error if it failed.
    fn run(
        &self,
        lp: &mut Loop,
        executor: &ReactorExecutor,
        mut done: impl FnMut() -> bool,
        until: Option<Instant>,
    ) -> (Instant, io::Result<()>) {
        loop {
            self.state.store(RUNNING, Ordering::SeqCst);
            self.pending.store(false, Ordering::SeqCst);
            // One clock read per round: the timeouts below are reckoned from it too, so they
            // come out longer by the poll's own duration, which no timer of the session (all
            // in milliseconds or more) can tell.
            let t = Instant::now();
            if self.ahead.load(Ordering::SeqCst) > 0 {
                self.bound_ahead(t);
            }
            let tick = at(t);
            executor.on_tick(tick);
            let more = executor.poll();
            if done() || self.stop.load(Ordering::Acquire) {
                if more {
                    // Queued tasks go to the next driver: leave the mark it looks for.
                    self.pending.store(true, Ordering::SeqCst);
                }
                return (t, Ok(()));
            }
            if more {
                continue;
            }
            if until.is_some_and(|u| u <= t) {
                return (t, Ok(()));
            }
            let timer = executor
                .next_deadline()
                .map(|d| d.saturating_duration_since(tick));
            // The shorter of the two waits. A session always has a timer armed, nearly always
            // sooner than the caller's `until`: that is settled by comparing instants, and the
            // difference `until - t` (a subtraction of std's that is not inlined, and dearer
            // than the addition) is taken only when it is the wait.
            let mut timeout = match (timer, until) {
                (Some(a), Some(u)) if t.checked_add(a).is_some_and(|end| end <= u) => Some(a),
                (_, Some(u)) => Some(u.saturating_duration_since(t)),
                (a, None) => a,
            };
            let ahead = self.ahead.load(Ordering::SeqCst) > 0;
            if ahead {
                timeout = Some(timeout.map_or(MARK_WAIT, |t| t.min(MARK_WAIT)));
            }
            if timeout == Some(Duration::ZERO) {
                continue;
            }
            self.state.store(SLEEPING, Ordering::SeqCst);
            // A pend between the poll above and the store would otherwise sleep unseen: the
            // pender reads the state after setting the flag, the driver the flag after setting
            // the state, so one of them sees the other.
            if self.pending.load(Ordering::SeqCst) {
                continue;
            }
            let timed = self.timed.load(Ordering::SeqCst) > 0;
            let res = if timed {
                // On the timerfd, whose expiry the thread's timer slack does not stretch (Linux
                // `timerfd_settime` starts its hrtimer with no range; `nanosleep` and epoll's
                // timeout add the slack, 50 µs by default): a 20 µs `thread::sleep` could last
                // 70 µs, and at QD32 tgtd's null store ran out of commands between such ticks
                // (the figures are at TICK). A pend wakes this sleep at once.
                self.sleep_until(lp, t, Some(timeout.map_or(TICK, |t| t.min(TICK))))
            } else if ahead {
                // Bounds of a millisecond come and go with every long read: epoll's own timeout.
                lp.poll.poll(&mut lp.events, timeout)
            } else {
                self.sleep_until(lp, t, timeout)
            };
            match res {
                Ok(()) => {
                    self.state.store(RUNNING, Ordering::SeqCst);
                    self.dispatch(&lp.events);
                    // Only the timer's expiry is the tick. A pend from another thread that ends
                    // the sleep early leaves the timerfd armed for the rest of it: a look at
                    // every such submission would mostly find nothing, and an empty look sends
                    // the read back to readiness.
                    if timed && lp.events.iter().any(|e| e.token() == TIMER) {
                        self.tick();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (t, Err(e)),
            }
        }
    }
}

impl Pender for Reactor {
    fn pend(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) == SLEEPING {
            // An eventfd write cannot fail short of a broken descriptor; the loop would then
            // also fail in epoll_wait and stop.
            let _ = self.waker.wake();
        }
    }
}

/// The executor type a [`HostRuntime`] drives.
pub type ReactorExecutor = Executor<StdLock, Arc<Reactor>>;

/// Lets a waiting caller drive the runtime's loop on its own thread (see the module
/// documentation). Cheap to clone; usable from any thread.
#[derive(Clone, Debug)]
pub struct Helper {
    executor: Arc<ReactorExecutor>,
    reactor: Arc<Reactor>,
}

impl Helper {
    /// Drives the loop on this thread until `done()` returns true or `until` passes. Returns
    /// `false` without driving when another thread holds the loop and does not give it up
    /// before `until`, or within `patience` (the caller then waits its own way, as the other
    /// driver completes its work for it). `done` runs after every executor poll, so it must be
    /// cheap, and must not wait for anything the loop itself has to do.
    pub fn drive_until(
        &self,
        until: Instant,
        patience: Duration,
        mut done: impl FnMut() -> bool,
    ) -> bool {
        let r = &*self.reactor;
        r.callers.fetch_add(1, Ordering::SeqCst);
        // The runtime's thread may sleep in epoll_wait with the loop: ask it to give it back.
        r.pend();
        // The common case is that the loop is free: one try, no clock read, no wait.
        let lp = match r.try_take() {
            Some(lp) => Some(lp),
            None => r.wait_for_loop(until, patience),
        };
        let Some(mut lp) = lp else {
            r.callers.fetch_sub(1, Ordering::SeqCst);
            return false;
        };
        let (last, res) = r.run(&mut lp, &self.executor, &mut done, Some(until));
        r.callers.fetch_sub(1, Ordering::SeqCst);
        r.put_back(lp, last);
        if let Err(e) = res {
            eprintln!("isboot: the executor's epoll wait failed: {e}");
        }
        true
    }

    /// Asks the runtime's thread to drive the loop now if nobody does: for a caller that waits
    /// without driving and wants the work done meanwhile on the other thread.
    pub fn hand_off(&self) {
        let r = &*self.reactor;
        if r.state.load(Ordering::SeqCst) != FREE {
            return;
        }
        r.handoff.store(true, Ordering::SeqCst);
        drop(r.slot());
        r.freed.notify_all();
    }

    /// Whether other callers wait for the loop (a caller that stops driving then wakes them).
    pub fn contended(&self) -> bool {
        self.reactor.callers.load(Ordering::SeqCst) > 0
    }
}

/// An executor and its reactor, driven by waiting callers or by the runtime's own thread (see the
/// module documentation). Dropping it stops and joins the thread; like the executor, it cannot be
/// dropped while a [`JoinHandle`] lives.
#[derive(Debug)]
pub struct HostRuntime {
    executor: Arc<ReactorExecutor>,
    reactor: Arc<Reactor>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HostRuntime {
    /// Starts the runtime's thread.
    pub fn new() -> io::Result<HostRuntime> {
        let poll = mio::Poll::new()?;
        let timer = crate::sys::timer_fd()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&timer.as_raw_fd()),
            TIMER,
            mio::Interest::READABLE,
        )?;
        let reactor = Arc::new(Reactor {
            registry: poll.registry().try_clone()?,
            waker: mio::Waker::new(poll.registry(), WAKE)?,
            sockets: Mutex::new(Vec::new()),
            next_token: AtomicUsize::new(2),
            stop: AtomicBool::new(false),
            lp: Mutex::new(Loop {
                poll,
                events: Events::with_capacity(64),
                armed: None,
                released: Instant::now(),
            }),
            slot: Mutex::new(()),
            freed: Condvar::new(),
            state: AtomicU8::new(FREE),
            pending: AtomicBool::new(false),
            callers: AtomicUsize::new(0),
            handoff: AtomicBool::new(false),
            timed: AtomicUsize::new(0),
            ticks: AtomicUsize::new(0),
            ahead: AtomicUsize::new(0),
            bounded: AtomicUsize::new(0),
            epoch: Instant::now(),
            timer,
            armings: AtomicUsize::new(0),
        });
        let executor = Arc::new(Executor::with_config(
            reactor.clone(),
            Config {
                clock: Some(now),
                ..Config::default()
            },
        ));
        let (e, r) = (executor.clone(), reactor.clone());
        let thread = thread::Builder::new()
            .name("isboot-executor".into())
            .spawn(move || fallback(&e, &r))?;
        Ok(HostRuntime {
            executor,
            reactor,
            thread: Some(thread),
        })
    }

    /// Starts `future` on the loop.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(future)
    }

    /// A handle to the timer queue.
    pub fn timer(&self) -> Timer {
        self.executor.timer()
    }

    /// The reactor, for transports that register with this loop.
    pub fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    /// A handle that lets waiting callers drive the loop themselves.
    pub fn helper(&self) -> Helper {
        Helper {
            executor: self.executor.clone(),
            reactor: self.reactor.clone(),
        }
    }

    /// Runs `future` on the calling thread until it completes, parking between wakes.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(future)
    }
}

/// The runtime's thread: takes the loop whenever callers have left it alone for [`GRACE`], and
/// drives it until a caller asks for it.
fn fallback(executor: &ReactorExecutor, reactor: &Reactor) {
    loop {
        let mut s = reactor.slot();
        // How long to sleep between looks: GRACE after a takeover, doubling (up to LOOK_MAX)
        // while callers keep using the loop, who then drive it themselves. Each look is a wake
        // of this thread: at GRACE apart while a caller runs one large command after another
        // they cost more CPU per command than the command's own bookkeeping.
        let mut look = GRACE;
        // When the loop was let go as of the last look that found it free (the first look
        // finding it free sets it).
        let mut seen = None;
        let mut first = true;
        let mut lp = loop {
            if reactor.stop.load(Ordering::Acquire) {
                return;
            }
            // A look takes the loop if it is free and keeps it only to drive it. A caller that
            // tries it meanwhile finds it held and waits under `slot`, which this thread holds
            // until it sleeps or drives: it then finds the loop free, or held to be driven.
            let idle = reactor.try_take();
            let released = idle.as_ref().map(|lp| lp.released);
            let idle_for = released.map_or(Duration::ZERO, |r| r.elapsed());
            if let Some(lp) = idle {
                if reactor.callers.load(Ordering::SeqCst) == 0
                    && (idle_for >= GRACE || reactor.handoff.load(Ordering::SeqCst))
                {
                    reactor.handoff.store(false, Ordering::SeqCst);
                    break lp;
                }
            }
            if std::mem::take(&mut first) && released.is_some() {
                seen = released;
            }
            if released.is_none() || released != seen {
                look = look.saturating_mul(2).min(LOOK_MAX);
                seen = released.or(seen);
            }
            // Polled rather than signalled: a signal on every release would cost a wake per
            // command, which is what callers driving the loop avoid.
            let wait = if released.is_some() {
                look.saturating_sub(idle_for).max(GRACE / 4)
            } else {
                look
            };
            s = reactor
                .freed
                .wait_timeout(s, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(s);
        let (last, res) = reactor.run(
            &mut lp,
            executor,
            || reactor.callers.load(Ordering::SeqCst) > 0,
            None,
        );
        reactor.put_back(lp, last);
        if let Err(e) = res {
            eprintln!("isboot: the executor's epoll wait failed: {e}; stopping");
            reactor.stop.store(true, Ordering::Release);
            return;
        }
    }
}

impl Drop for HostRuntime {
    fn drop(&mut self) {
        self.reactor.stop.store(true, Ordering::Release);
        let _ = self.reactor.waker.wake();
        drop(self.reactor.slot());
        self.reactor.freed.notify_all();
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                if !thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::HostTransport;
    use isboot_core::port::Transport;
    use std::future::poll_fn;
    use std::io::Write;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    #[test]
    fn timers_fire_and_tasks_spawned_from_other_threads_run() {
        let rt = HostRuntime::new().unwrap();
        let timer = rt.timer();
        let start = std::time::Instant::now();
        let t = rt.spawn(async move {
            timer.sleep(Duration::from_millis(30)).await;
            7
        });
        assert_eq!(rt.block_on(t), 7);
        assert!(start.elapsed() >= Duration::from_millis(30));
        let n = thread::scope(|s| {
            s.spawn(|| rt.block_on(rt.spawn(async { 5 })))
                .join()
                .unwrap()
        });
        assert_eq!(n, 5);
    }

    /// A transport on `rt`'s loop, and the peer end of its connection.
    fn connected(rt: &HostRuntime) -> (HostTransport, TcpStream) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (peer, _) = l.accept().unwrap();
        (
            HostTransport::with_reactor(c, rt.reactor().clone()).unwrap(),
            peer,
        )
    }

    #[test]
    fn a_read_parked_again_by_another_wake_is_still_woken_by_data() {
        // The second park finds the waker of the first still in place (no event came between)
        // and leaves it there: the data must wake the task all the same.
        let rt = HostRuntime::new().unwrap();
        let (mut t, mut peer) = connected(&rt);
        let bell = Arc::new(isboot_executor::Doorbell::new());
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let (b, p) = (bell.clone(), polls.clone());
        let task = rt.spawn(async move {
            for _ in 0..2 {
                let mut buf = [0u8; 8];
                let n = poll_fn(|cx| {
                    p.fetch_add(1, Ordering::SeqCst);
                    let _ = b.poll_wait(cx);
                    t.poll_read(cx, &mut buf)
                })
                .await
                .unwrap();
                let _ = tx.send(buf[..n].to_vec());
            }
            t.close();
        });
        let polled = |n: usize| {
            let until = Instant::now() + Duration::from_secs(5);
            while polls.load(Ordering::SeqCst) < n && Instant::now() < until {
                thread::sleep(Duration::from_millis(2));
            }
            assert!(
                polls.load(Ordering::SeqCst) >= n,
                "task polled fewer than {n} times"
            );
        };
        polled(1);
        bell.ring();
        polled(2);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "parked: no poll without a wake"
        );
        // Writes `msg` and expects the task to have read it.
        let mut delivered = |msg: &[u8], why: &str| {
            peer.write_all(msg).unwrap();
            let got = rx.recv_timeout(Duration::from_secs(5));
            assert_eq!(got.as_deref(), Ok(msg), "{why}");
        };
        delivered(b"pong", "the data woke the parked read");
        // The reactor took that waker: the next park must store it again.
        polled(4);
        delivered(b"ping", "the next data woke the next read");
        rt.block_on(task);
    }

    #[test]
    fn socket_readiness_wakes_a_task_on_the_loop() {
        let rt = HostRuntime::new().unwrap();
        let (mut t, mut peer) = connected(&rt);
        let task = rt.spawn(async move {
            let mut buf = [0u8; 8];
            let n = poll_fn(|cx| t.poll_read(cx, &mut buf)).await.unwrap();
            t.close();
            buf[..n].to_vec()
        });
        // The task parks on an empty socket first; the write below is what wakes it.
        thread::sleep(Duration::from_millis(30));
        peer.write_all(b"pong").unwrap();
        assert_eq!(rt.block_on(task), b"pong");
        assert!(
            rt.reactor().sockets.lock().unwrap().is_empty(),
            "closed transports deregister"
        );
    }

    /// Whether epoll descriptor `ep`'s set holds descriptor `fd` (its `/proc` fdinfo lists one
    /// `tfd:` line per registration).
    fn watched(ep: i32, fd: i32) -> bool {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{ep}")).unwrap();
        info.lines()
            .any(|l| l.split_whitespace().take(2).eq(["tfd:", &fd.to_string()]))
    }

    fn epoll_fd(rt: &HostRuntime) -> i32 {
        use std::os::fd::AsRawFd;
        rt.reactor().registry.as_raw_fd()
    }

    /// A peer that writes one byte every `gap` for `bytes` bytes, on a thread of its own.
    fn trickle(mut peer: TcpStream, bytes: u8, gap: Duration) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            for b in 0..bytes {
                let at = Instant::now();
                peer.write_all(&[b]).unwrap();
                while at.elapsed() < gap {
                    std::hint::spin_loop();
                }
            }
            // Held open until the reader is done, so a read never sees the end of the stream.
            thread::sleep(Duration::from_millis(200));
        })
    }

    /// Reads `bytes` bytes in reads of at most 16 (each drains the socket, so the next waits),
    /// told `owed` answers are due and one read still expects `due` bytes of Data-In; returns
    /// them.
    fn read_owed(
        rt: &HostRuntime,
        t: HostTransport,
        owed: usize,
        due: usize,
        bytes: usize,
    ) -> Vec<u8> {
        rt.block_on(spawn_read_owed(rt, t, owed, due, bytes))
    }

    /// The task [`read_owed`] waits for, left to the caller to drive.
    fn spawn_read_owed(
        rt: &HostRuntime,
        mut t: HostTransport,
        owed: usize,
        due: usize,
        bytes: usize,
    ) -> JoinHandle<'_, Vec<u8>> {
        rt.spawn(async move {
            t.awaiting(owed, &|| due);
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < bytes {
                let n = poll_fn(|cx| t.poll_read(cx, &mut buf)).await.unwrap();
                assert!(n > 0, "the peer closed early");
                got.extend_from_slice(&buf[..n]);
            }
            t.close();
            got
        })
    }

    #[test]
    fn a_read_owed_many_answers_looks_on_the_timer_out_of_the_epoll_set() {
        let rt = HostRuntime::new().unwrap();
        let (t, peer) = connected(&rt);
        let (ep, fd) = (epoll_fd(&rt), t.raw_fd());
        assert!(watched(ep, fd), "registered when connected");
        // A byte every 10 µs for 2.5 ms: ticks find some, so the reader stays on the timer.
        let writer = trickle(peer, 250, Duration::from_micros(10));
        let seen_out = Arc::new(AtomicBool::new(false));
        let out = seen_out.clone();
        let look = thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && !out.load(Ordering::SeqCst) {
                if !watched(ep, fd) {
                    out.store(true, Ordering::SeqCst);
                }
            }
        });
        let got = read_owed(&rt, t, 32, 0, 250);
        assert_eq!(got, (0..250u8).collect::<Vec<_>>(), "every byte, in order");
        look.join().unwrap();
        assert!(
            seen_out.load(Ordering::SeqCst),
            "the socket left the epoll set while the read waited on the timer"
        );
        let (ticks, armings) = (rt.reactor().ticks(), rt.reactor().armings());
        assert!(ticks > 0, "the loop ticked");
        // Every tick is an expiry of the timerfd, and an arming expires once at most: the
        // ticks slept on it, not in a sleep of their own.
        assert!(
            armings >= ticks,
            "{ticks} ticks armed the timer {armings} times"
        );
        assert_eq!(
            rt.reactor().timed.load(Ordering::SeqCst),
            0,
            "closed: no ticks"
        );
        writer.join().unwrap();
    }

    #[test]
    fn a_tick_lasts_what_it_asks_whatever_the_threads_timer_slack() {
        // Threads inherit the timer slack of the thread that starts them, the runtime's own
        // too. A tick slept with `nanosleep` (or an epoll timeout) may end as late as its
        // length plus that slack, 100 ms here; on the timerfd it lasts TICK, so a trickle of
        // 2.5 ms is read tick after tick as it comes. This thread drives the loop, as a
        // waiting caller does (the runtime's thread, whose looks the slack delays, does not).
        let (took, ticks) = thread::spawn(|| {
            crate::sys::set_timer_slack(Duration::from_millis(100));
            let rt = HostRuntime::new().unwrap();
            let (t, peer) = connected(&rt);
            let writer = trickle(peer, 250, Duration::from_micros(10));
            let task = spawn_read_owed(&rt, t, 32, 0, 250);
            let at = Instant::now();
            let until = at + Duration::from_secs(5);
            let helper = rt.helper();
            while !task.is_finished() && Instant::now() < until {
                helper.drive_until(until, Duration::from_secs(1), || task.is_finished());
            }
            let took = at.elapsed();
            assert!(task.is_finished(), "no read within 5 s");
            let got = rt.block_on(task);
            assert_eq!(got, (0..250u8).collect::<Vec<_>>(), "every byte, in order");
            writer.join().unwrap();
            (took, rt.reactor().ticks())
        })
        .join()
        .unwrap();
        assert!(ticks > 0, "the loop ticked");
        assert!(
            took < Duration::from_millis(60),
            "read in {took:?} over {ticks} ticks"
        );
    }

    /// Reads `bytes` bytes trickled at one per `gap`, told `owed` answers are due; checks
    /// them and returns the ticks the loop slept meanwhile.
    fn ticks_reading(bytes: u8, gap: Duration, owed: usize) -> usize {
        let rt = HostRuntime::new().unwrap();
        let (t, peer) = connected(&rt);
        let writer = trickle(peer, bytes, gap);
        let got = read_owed(&rt, t, owed, 0, bytes.into());
        assert_eq!(got, (0..bytes).collect::<Vec<_>>(), "every byte, in order");
        writer.join().unwrap();
        rt.reactor().ticks()
    }

    #[test]
    fn a_read_owed_few_answers_never_ticks() {
        let ticks = ticks_reading(50, Duration::from_micros(5), 15);
        assert_eq!(ticks, 0, "below TICK_AT every wait is for readiness");
    }

    #[test]
    fn an_empty_tick_sends_the_read_back_to_readiness() {
        // A slow target: a byte every 2 ms. Each wait may look once on the timer, then waits
        // for readiness; ticking all along would be ~100 looks per byte.
        let ticks = ticks_reading(20, Duration::from_millis(2), 32);
        assert!(ticks <= 2 * 20 + 4, "{ticks} ticks for 20 waits");
    }

    #[test]
    fn a_read_waiting_ahead_for_bytes_that_never_come_is_woken_at_the_bound() {
        // The session expects 256 KiB more, but the target ends the read early: 100 bytes (its
        // answer) come 20 ms after the reader began to wait, then nothing, the connection
        // held open. Without the loop's bound the reader would wait for its mark until the
        // peer closes (5 s); woken by the bound and finding nothing, it waits for readiness,
        // so it is bounded once, not every MARK_WAIT until the bytes come.
        let rt = HostRuntime::new().unwrap();
        let (t, mut peer) = connected(&rt);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let reactor = rt.reactor().clone();
        let writer = thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(5);
            while reactor.ahead.load(Ordering::SeqCst) == 0
                && reactor.bounded() == 0
                && Instant::now() < until
            {
                thread::sleep(Duration::from_micros(50));
            }
            thread::sleep(Duration::from_millis(20));
            peer.write_all(&[9; 100]).unwrap();
            let _ = rx.recv_timeout(Duration::from_secs(5));
        });
        let at = Instant::now();
        let got = read_owed(&rt, t, 1, 256 * 1024, 100);
        let took = at.elapsed();
        drop(tx);
        writer.join().unwrap();
        assert_eq!(got, [9; 100]);
        assert!(took < Duration::from_secs(2), "read after {took:?}");
        assert_eq!(rt.reactor().bounded(), 1, "one bound, then readiness");
        assert_eq!(
            rt.reactor().ahead.load(Ordering::SeqCst),
            0,
            "closed: no bound left"
        );
    }

    #[test]
    fn a_timer_far_ahead_is_armed_once_for_many_sleeps() {
        // A keepalive-like timer a minute away, and a driver woken 40 times by tasks spawned
        // from another thread: every sleep has the same deadline, armed once.
        let rt = HostRuntime::new().unwrap();
        let timer = rt.timer();
        let _far = rt.spawn(async move { timer.sleep(Duration::from_secs(60)).await });
        let helper = rt.helper();
        let done = Arc::new(AtomicUsize::new(0));
        let spawner = {
            let (ex, done) = (rt.executor.clone(), done.clone());
            thread::spawn(move || {
                // A dropped handle cancels its task: they are kept until every task ran.
                let mut tasks = Vec::new();
                for _ in 0..40 {
                    thread::sleep(Duration::from_millis(2));
                    let d = done.clone();
                    tasks.push(ex.spawn(async move {
                        d.fetch_add(1, Ordering::SeqCst);
                    }));
                }
                let until = Instant::now() + Duration::from_secs(10);
                while done.load(Ordering::SeqCst) < 40 && Instant::now() < until {
                    thread::sleep(Duration::from_millis(1));
                }
                drop(tasks);
            })
        };
        let until = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::SeqCst) < 40 && Instant::now() < until {
            helper.drive_until(until, Duration::from_secs(1), || {
                done.load(Ordering::SeqCst) >= 40
            });
        }
        spawner.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 40);
        let armed = rt.reactor().armings();
        assert!(
            (1..=3).contains(&armed),
            "40 sleeps toward one deadline armed the timer {armed} times"
        );
    }

    #[test]
    fn an_earlier_timer_arms_the_loop_again() {
        let rt = HostRuntime::new().unwrap();
        let (far, near) = (rt.timer(), rt.timer());
        let _far = rt.spawn(async move { far.sleep(Duration::from_secs(30)).await });
        // Let the loop sleep toward the far timer first (the runtime's thread drives it).
        let until = Instant::now() + Duration::from_secs(5);
        while rt.reactor().armings() == 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(rt.reactor().armings() >= 1, "the far timer was never armed");
        let start = Instant::now();
        let t = rt.spawn(async move { near.sleep(Duration::from_millis(20)).await });
        rt.block_on(t);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(20), "woke after {took:?}");
        assert!(took < Duration::from_secs(2), "woke after {took:?}");
    }

    #[test]
    fn a_caller_waiting_for_the_loop_gets_it_when_the_holder_lets_it_go() {
        // Caller A drives until told to stop; caller B asks for the loop meanwhile, with a long
        // patience. When A lets the loop go, B must be signalled and drive at once, not wait
        // out its patience (nor lose the loop to the runtime's thread's grace).
        let rt = HostRuntime::new().unwrap();
        let (a, b) = (rt.helper(), rt.helper());
        let (holding, release) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, rel) = (holding.clone(), release.clone());
        let holder = thread::spawn(move || {
            a.drive_until(
                Instant::now() + Duration::from_secs(20),
                Duration::from_secs(1),
                || {
                    h.store(true, Ordering::SeqCst);
                    rel.load(Ordering::SeqCst)
                },
            )
        });
        let until = Instant::now() + Duration::from_secs(5);
        while !holding.load(Ordering::SeqCst) && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(holding.load(Ordering::SeqCst), "A never drove");
        let waiter = thread::spawn(move || {
            let drove = b.drive_until(
                Instant::now() + Duration::from_secs(20),
                Duration::from_secs(10),
                || true,
            );
            (drove, Instant::now())
        });
        // Let B find the loop held and sleep for it.
        while rt.reactor().callers.load(Ordering::SeqCst) < 2 && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50));
        release.store(true, Ordering::SeqCst);
        let released = Instant::now();
        // A pend makes A poll again and see that it is released.
        rt.reactor().pend();
        assert!(holder.join().unwrap(), "A drove");
        let (drove, at) = waiter.join().unwrap();
        assert!(drove, "B gave up waiting for the loop");
        let took = at.saturating_duration_since(released);
        assert!(
            took < Duration::from_secs(2),
            "B drove {took:?} after A let go"
        );
    }

    #[test]
    fn a_drive_with_nothing_to_do_returns_at_its_limit() {
        let rt = HostRuntime::new().unwrap();
        let start = Instant::now();
        let drove = rt.helper().drive_until(
            start + Duration::from_millis(30),
            Duration::from_secs(1),
            || false,
        );
        let took = start.elapsed();
        assert!(drove);
        assert!(took >= Duration::from_millis(30), "returned after {took:?}");
        assert!(took < Duration::from_secs(2), "returned after {took:?}");
    }
}
