// SPDX-License-Identifier: BSD-2-Clause
//! The session task: connect and log in, run the [`Engine`] over a [`Transport`], recover.
//!
//! One future does everything for one session, so nothing is shared between tasks but the
//! [`Shared`] inbox. While connected, one `poll_fn` loop drives, in order: the shutdown
//! doorbell, the receive path (a bounded number of PDUs), the engine's timers, completions,
//! then new requests from the inbox (only while a slot is free, so a full table leaves
//! requests with the platform; completions free the slots first), and the transmit path; the
//! engine's `poll_at` is the one timer. The receive path (`rx.rs`) reads BHS, AHS and header
//! digest into a fixed buffer, asks the engine where the data segment goes, and reads Data-In
//! straight into the request's buffer, computing the data digest on the way.
//!
//! Connection loss (I/O error, a violation, a NOP timeout, a target request) closes the
//! transport, keeps every request in the engine, waits as the recovery policy says
//! (`recovery.rs`: capped backoff with jitter, the target's Time2Wait as a minimum), and logs
//! in again (`connect.rs`) with the same ISID and TSIH 0; the engine then replays what was
//! outstanding. Failed attempts move on to the next target candidate.
//!
//! ```text
//!   new ─► LoggingIn ──login──► Up ──connection lost──► Recovering ──login──► Up ...
//!             │  ▲                │                        │   ▲
//!             │  └─ attempt failed, backoff                └───┘ attempt failed, backoff
//!             │                   │ shutdown: logout
//!             └─ give up ─────────┴──────────────────────────────────► Closed (run returns)
//! ```

use alloc::sync::Arc;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use isboot_executor::{Channel, Doorbell, Instant, Mutex, RawLock, Sleep, Timer};

use super::connect::{AttemptError, Dialer};
use super::engine::{Disconnect, Engine, Event, LogoutOutcome, Phase, SubmitError};
use super::recovery::{Recovery, STABLE_CONNECTION};
use super::report::{LastError, Reporter};
use super::rx::{trace_pdu, Rx};
use super::{Handle, Request, SessionConfig, Shared, State, Status};
use crate::log;
use crate::login::Established;
use crate::mem::NoMemory;
use crate::port::{Connector, Events, IoError, Level, Log, Random, Transport};
use crate::scsi::{Completion, TransportError};

/// Slices handed to one vectored write.
const IOV: usize = 64;
/// Slices a write is first laid out into (see `flush`).
const FEW: usize = 8;
/// PDUs received per round of the connection loop.
const RX_PER_ROUND: usize = 32;
/// Rounds of the connection loop per poll before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 64;

/// How `run` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly shutdown after [`Handle::shutdown`](super::Handle::shutdown): logged out, never
    /// connected, or the connection ended during the logout (the target refused or ignored the
    /// Logout, or closed first); every request completed. No reconnect follows a shutdown.
    LoggedOut,
    /// [`Backoff::max_attempts`](super::Backoff::max_attempts) failed attempts in a row, or not
    /// connected past the [`Handle::give_up_after`](super::Handle::give_up_after) deadline;
    /// every request completed with `SessionClosed`.
    GaveUp,
}

/// The part of the session that serves the platform whatever the connection does.
struct Serving<L: RawLock, E: Events, G> {
    engine: Engine<E::Buf>,
    shared: Arc<Shared<L, E::Buf>>,
    events: E,
    log: G,
    timer: Timer,
    /// Set by [`Handle::give_up_after`]: past it, the session no longer recovers.
    give_up_at: Option<Instant>,
    /// The receive path's buffers, kept across connections.
    rx: Rx,
    /// Failures in a row and their log level (`report.rs`).
    report: Reporter,
    /// Requests completed with a SCSI status, in all and when the connection came up: a
    /// connection lost before any completed is one that dies on its first commands.
    completed: u64,
    completed_at_up: u64,
}

/// Why serving stopped before the awaited future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// [`Handle::shutdown`].
    Shutdown,
    /// The [`Handle::give_up_after`] deadline passed while not connected.
    GiveUp,
}

/// One iSCSI session (see the module documentation of [`crate::session`]).
pub struct Session<L: RawLock, C, E: Events, R, G> {
    serving: Serving<L, E, G>,
    dialer: Dialer<C, R, G>,
}

impl<L: RawLock, C, E: Events, R, G> core::fmt::Debug for Session<L, C, E, R, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.serving.engine.phase())
            .finish_non_exhaustive()
    }
}

/// What the session does next after an attempt or a connection ended.
enum Next {
    /// Sleep this long (serving meanwhile), then try again.
    Retry(Duration),
    /// `run` returns this.
    End(End),
}

impl<L, C, E, R, G> Session<L, C, E, R, G>
where
    L: RawLock,
    C: Connector,
    E: Events,
    R: Random,
    G: Log + Clone,
{
    /// A session ready to `run`, and the platform's handle to it. Everything the session needs
    /// from now on is allocated here, fallibly (`NoMemory`), except the small state shared with
    /// the handles: that one `Arc` has no fallible constructor in stable Rust, so call this where
    /// an allocation may wait for memory (the kernel does, at module load).
    #[cfg_attr(isboot_kernel, optimize(size))]
    pub fn try_new(
        cfg: SessionConfig,
        connector: C,
        events: E,
        rng: R,
        log: G,
        timer: Timer,
    ) -> Result<(Handle<L, E::Buf>, Self), NoMemory> {
        let engine = Engine::try_new(cfg.max_tasks, cfg.timeouts)?;
        let rx = Rx::try_new()?;
        let dialer = Dialer::try_new(cfg, connector, rng, log.clone(), timer.clone())?;
        // The inbox's 64 requests live in a buffer of their own: `Shared` stays small enough to
        // be built on the (kernel) stack whatever the optimiser inlines.
        let inbox = Channel::try_new().map_err(|_| NoMemory)?;
        #[expect(
            clippy::disallowed_methods,
            reason = "no fallible Arc in stable Rust; documented: call where allocation may wait"
        )]
        let shared = Arc::new(Shared {
            inbox,
            shutdown: Doorbell::new(),
            shutdown_requested: AtomicBool::new(false),
            give_up_after: Mutex::new(None),
            status: Mutex::new(Status::default()),
        });
        let handle = Handle {
            shared: shared.clone(),
        };
        let session = Session {
            serving: Serving {
                engine,
                shared,
                events,
                log,
                timer,
                give_up_at: None,
                rx,
                report: Reporter::default(),
                completed: 0,
                completed_at_up: 0,
            },
            dialer,
        };
        Ok((handle, session))
    }

    /// As [`Session::try_new`]; memory being short ends in the allocation error handler, as for
    /// any infallible allocation. For contexts where an allocation may wait for memory.
    pub fn new(
        cfg: SessionConfig,
        connector: C,
        events: E,
        rng: R,
        log: G,
        timer: Timer,
    ) -> (Handle<L, E::Buf>, Self) {
        match Self::try_new(cfg, connector, events, rng, log, timer) {
            Ok(s) => s,
            Err(NoMemory) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<Self>()),
        }
    }

    /// Runs the session until it is shut down or gives up. Every accepted request has been
    /// completed when this returns.
    pub async fn run(mut self) -> End {
        let serving = &mut self.serving;
        let dialer = &mut self.dialer;
        if dialer.config().targets.is_empty() {
            log!(serving.log, Level::Note, "isboot: no target to log in to");
            serving.finish();
            return End::GaveUp;
        }
        serving.set_state(State::LoggingIn, dialer.current());
        let mut recovery = Recovery::default();
        loop {
            // Pinned here and served by reference: the attempt's (large) future lives once in
            // this future's state, not also as an argument inside `serve_while`'s.
            let outcome = {
                let attempt = pin!(dialer.establish());
                serving.serve_while(attempt).await
            };
            let next = match outcome {
                Err(stop) => return serving.stop(stop),
                Ok(Err(e)) => on_attempt_failure(serving, dialer, &mut recovery, &e),
                Ok(Ok((mut transport, est))) => match serving.up(dialer, &est) {
                    Err(NoMemory) => {
                        transport.close();
                        on_attempt_failure(serving, dialer, &mut recovery, &AttemptError::NoMemory)
                    }
                    Ok(up_since) => {
                        recovery.logged_in();
                        let end = serving.connection(&mut transport).await;
                        transport.close();
                        serving.engine.disconnected();
                        serving.deliver();
                        let lived = serving.timer.now().saturating_duration_since(up_since);
                        serving.on_connection_end(end, dialer, &mut recovery, lived)
                    }
                },
            };
            match next {
                Next::End(end) => return end,
                Next::Retry(delay) => {
                    if let Err(stop) = serving.sleep(delay).await {
                        return serving.stop(stop);
                    }
                }
            }
        }
    }
}

/// A connect or login attempt failed: give up, or wait and try the next candidate.
#[cfg_attr(isboot_kernel, optimize(size))]
fn on_attempt_failure<L: RawLock, C: Connector, E: Events, R: Random, G: Log>(
    serving: &mut Serving<L, E, G>,
    dialer: &mut Dialer<C, R, G>,
    recovery: &mut Recovery,
    e: &AttemptError,
) -> Next {
    let jitter = dialer.jitter();
    let (delay, last) = attempt_failed(
        &mut serving.report,
        recovery,
        &serving.log,
        dialer.config(),
        dialer.target_name(),
        e,
        jitter,
    );
    serving.publish_error(&last);
    let Some(delay) = delay else {
        serving.finish();
        return Next::End(End::GaveUp);
    };
    dialer.next_target();
    log_next_attempt(&serving.log, delay);
    Next::Retry(delay)
}

// The recovery decisions and log lines below are not generic, so they are compiled once, in
// this crate (the kernel module builds it for size); `#[inline(never)]` keeps them out of the
// session's future, which is generic and compiled with the platform's I/O path.

/// How long to wait after a failed attempt (`None`: give up), and the failure to publish.
#[inline(never)]
fn attempt_failed(
    report: &mut Reporter,
    recovery: &mut Recovery,
    log: &dyn Log,
    cfg: &SessionConfig,
    target: &str,
    e: &AttemptError,
    jitter: u32,
) -> (Option<Duration>, LastError) {
    let delay = recovery.attempt_failed(&cfg.backoff, jitter);
    let last = report.attempt_failed(log, target, e, delay.is_none());
    (delay, last)
}

#[inline(never)]
fn log_next_attempt(log: &dyn Log, delay: Duration) {
    log!(
        log,
        Level::Info,
        "isboot: next attempt in {} ms",
        delay
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(delay.subsec_millis()))
    );
}

#[inline(never)]
fn log_up(log: &dyn Log, first: bool, target: &str, est: &Established) {
    log!(
        log,
        Level::Note,
        "isboot: {} to {} (TSIH {:#06x})",
        if first { "logged in" } else { "reconnected" },
        target,
        est.tsih
    );
    log!(log, Level::Info, "isboot: negotiated {}", est.params);
}

/// The connection ended after a logout (`outcome`), or during one (`during`).
#[inline(never)]
fn log_logged_out(log: &dyn Log, outcome: Option<LogoutOutcome>, during: Option<&Disconnect>) {
    if let Some(r) = during {
        log!(
            log,
            Level::Note,
            "isboot: {} during logout; session closed",
            r
        );
        return;
    }
    match outcome {
        Some(LogoutOutcome::Refused(code)) => log!(
            log,
            Level::Note,
            "isboot: target answered the Logout with {:?}; session closed",
            code
        ),
        Some(LogoutOutcome::TimedOut) => log!(
            log,
            Level::Note,
            "isboot: {}; session closed",
            Disconnect::LogoutTimeout
        ),
        Some(LogoutOutcome::Done) | None => log!(log, Level::Note, "isboot: logged out"),
    }
}

#[inline(never)]
fn log_deadline_passed(log: &dyn Log, held: usize) {
    log!(
        log,
        Level::Note,
        "isboot: not connected at the give-up deadline; giving up, {} held requests fail",
        held
    );
}

#[inline(never)]
fn log_give_up(log: &dyn Log, reason: &Disconnect) {
    log!(
        log,
        Level::Note,
        "isboot: {}; giving up (past the give-up deadline), held requests fail",
        reason
    );
}

/// How long to wait before logging in again after the connection was lost for `reason`, and
/// the failure to publish.
#[inline(never)]
#[expect(clippy::too_many_arguments, reason = "the session's parts, lent apart")]
fn connection_lost(
    report: &mut Reporter,
    recovery: &mut Recovery,
    log: &dyn Log,
    cfg: &SessionConfig,
    target: &str,
    reason: &Disconnect,
    lived: Duration,
    progressed: bool,
    jitter: u32,
) -> (Duration, LastError) {
    let asked = reason.wait();
    let cap = cfg.max_time2wait;
    let wait = asked.map(|w| w.min(cap));
    let delay = recovery.connection_lost(&cfg.backoff, lived, wait, jitter);
    if lived >= STABLE_CONNECTION {
        report.healthy();
    }
    let capped = CappedWait(asked.filter(|w| *w > cap).map(|w| (w, cap)));
    let last = report.connection_lost(log, target, reason, lived, progressed, &capped);
    (delay, last)
}

impl<L: RawLock, E: Events, G: Log> Serving<L, E, G> {
    /// A login succeeded: the engine adopts the connection, the platform hears `Up`. Returns
    /// when the connection came up; `NoMemory` when the engine cannot make the room this
    /// connection's parameters need (the attempt then counts as failed).
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    fn up<C: Connector, R: Random>(
        &mut self,
        dialer: &Dialer<C, R, G>,
        est: &Established,
    ) -> Result<Instant, NoMemory> {
        let params = est.params;
        let now = self.timer.now();
        self.engine.connected(params, est.sns, now)?;
        log_up(&self.log, dialer.first_login(), dialer.target_name(), est);
        self.completed_at_up = self.completed;
        let window = self.engine.window_size();
        self.shared.status.lock(|s| {
            s.logins = s.logins.saturating_add(1);
            s.params = Some(params);
            s.cmd_window = window;
        });
        self.set_state(State::Up, dialer.current());
        Ok(self.timer.now())
    }

    /// A connection in full feature phase ended: `None` after the logout of an orderly
    /// shutdown, else why it was dropped. Decides between ending the session and recovering.
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    fn on_connection_end<C: Connector, R: Random>(
        &mut self,
        end: Option<Disconnect>,
        dialer: &mut Dialer<C, R, G>,
        recovery: &mut Recovery,
        lived: Duration,
    ) -> Next {
        let reason = match end {
            None => {
                log_logged_out(&self.log, self.engine.logout_outcome(), None);
                self.finish();
                return Next::End(End::LoggedOut);
            }
            // Once shutdown has begun the connection ending is expected (the target's FIN
            // after its Logout Response) or at least no reason to come back: a reconnect
            // would only log out again.
            Some(r) if self.shutting_down() => {
                log_logged_out(&self.log, None, Some(&r));
                self.finish();
                return Next::End(End::LoggedOut);
            }
            Some(r) => r,
        };
        self.shared
            .status
            .lock(|s| s.disconnects = s.disconnects.saturating_add(1));
        if self.give_up_due() {
            log_give_up(&self.log, &reason);
            self.finish();
            return Next::End(End::GaveUp);
        }
        let jitter = dialer.jitter();
        let (delay, last) = connection_lost(
            &mut self.report,
            recovery,
            &self.log,
            dialer.config(),
            dialer.target_name(),
            &reason,
            lived,
            self.completed != self.completed_at_up,
            jitter,
        );
        self.publish_error(&last);
        self.set_state(State::Recovering, dialer.current());
        Next::Retry(delay)
    }

    /// Hands a failure to the platform: in the status, and through [`Events::error`].
    #[cfg_attr(isboot_kernel, optimize(size))]
    fn publish_error(&mut self, last: &LastError) {
        self.shared.status.lock(|s| s.last_error = Some(*last));
        self.events.error(last);
    }

    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    fn set_state(&mut self, state: State, target: usize) {
        let stats = self.engine.stats();
        self.shared.status.lock(|s| {
            s.state = state;
            s.stats = stats;
            s.target = target;
        });
        self.events.state(state);
    }

    fn publish_stats(&self) {
        let stats = self.engine.stats();
        let window = self.engine.window_size();
        self.shared.status.lock(|s| {
            s.stats = stats;
            s.cmd_window = window;
        });
    }

    /// Hands every engine event to the platform.
    fn deliver(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Complete(c) => {
                    self.completed = self.completed.wrapping_add(u64::from(c.result.is_ok()));
                    self.events.complete(c)
                }
                Event::ResetDone { tag, result } => self.events.reset_done(tag, result),
                Event::ScsiEvent { lun, sense } => self.events.scsi_event(lun, &sense),
            }
        }
    }

    /// Ends the session: nothing more is accepted, everything still held completes.
    #[cfg_attr(isboot_kernel, optimize(size))]
    fn finish(&mut self) {
        self.shared
            .shutdown_requested
            .store(true, Ordering::Release);
        self.shared.inbox.close();
        while let Ok(r) = self.shared.inbox.try_recv() {
            self.refuse(r);
        }
        self.engine.close();
        self.deliver();
        self.set_state(State::Closed, self.shared.status.lock(|s| s.target));
    }

    fn refuse(&mut self, r: Request<E::Buf>) {
        match r {
            Request::Scsi(req) => self.events.complete(Completion {
                tag: req.tag,
                data: req.data,
                result: Err(TransportError::SessionClosed),
            }),
            Request::ResetLun { tag, .. } => self
                .events
                .reset_done(tag, Err(crate::port::TmfError::NotConnected)),
            Request::Abort(_) => {}
        }
    }

    /// Moves requests from the inbox into the engine while it has room (the inbox's waker is
    /// registered unless the table is full).
    fn take_requests(&mut self, cx: &mut Context<'_>, now: Instant) {
        while self.engine.has_room() {
            match self.shared.inbox.poll_recv(cx) {
                Poll::Ready(Some(r)) => match r {
                    Request::Scsi(req) => match self.engine.submit(req, now) {
                        Ok(()) => {}
                        Err(SubmitError::Full(req) | SubmitError::Closed(req)) => {
                            self.refuse(Request::Scsi(req));
                        }
                        Err(SubmitError::Invalid(req)) => self.events.complete(Completion {
                            tag: req.tag,
                            data: req.data,
                            result: Err(TransportError::Invalid),
                        }),
                    },
                    Request::Abort(tag) => {
                        self.engine.abort(tag);
                    }
                    Request::ResetLun { lun, tag } => {
                        if let Err(e) = self.engine.reset_lun(lun, tag) {
                            self.events.reset_done(tag, Err(e));
                        }
                    }
                },
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
    }

    /// Whether the orderly shutdown has begun (the engine is closing or closed, or the platform
    /// asked for it).
    fn shutting_down(&self) -> bool {
        matches!(self.engine.phase(), Phase::Closing | Phase::Closed)
            || self.shared.shutdown_requested.load(Ordering::Acquire)
    }

    /// Whether shutdown was asked for (clears the doorbell, registers the waker otherwise), and
    /// whether the doorbell now holds `cx`'s waker (it said Pending). Adopts a give-up deadline
    /// the platform set since the last look.
    #[inline(never)]
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> (bool, bool) {
        let registered = self.shared.shutdown.poll_wait(cx).is_pending();
        if let Some(d) = self.shared.give_up_after.lock(Option::take) {
            self.give_up_at = Some(self.timer.now().saturating_add(d));
        }
        (
            self.shared.shutdown_requested.load(Ordering::Acquire),
            registered,
        )
    }

    /// Whether the give-up deadline has passed.
    fn give_up_due(&self) -> bool {
        self.give_up_at.is_some_and(|d| d <= self.timer.now())
    }

    /// Ends the session for `stop`.
    #[cfg_attr(isboot_kernel, optimize(size))]
    #[inline(never)]
    fn stop(&mut self, stop: Stop) -> End {
        match stop {
            Stop::Shutdown => {
                self.finish();
                End::LoggedOut
            }
            Stop::GiveUp => {
                log_deadline_passed(&self.log, self.engine.outstanding());
                self.finish();
                End::GaveUp
            }
        }
    }

    /// Runs `fut` (connecting, logging in) while requests keep being accepted, command timeouts
    /// keep running and completions keep flowing. Stops first on shutdown or at the give-up
    /// deadline.
    async fn serve_while<F: Future>(&mut self, mut fut: Pin<&mut F>) -> Result<F::Output, Stop> {
        let timer = self.timer.clone();
        let mut deadline = Instant::MAX;
        let mut sleep = pin!(timer.sleep_until(deadline));
        let mut out = None;
        let mut poll_fut = |cx: &mut Context<'_>| poll_into(fut.as_mut(), &mut out, cx);
        poll_fn(|cx| self.poll_serving(cx, &mut poll_fut, &timer, &mut deadline, sleep.as_mut()))
            .await?;
        // `poll_serving` returns Ok only once `poll_fut` stored the output.
        out.ok_or(Stop::GiveUp)
    }

    /// One poll of [`Serving::serve_while`], the same code for every future it serves (one
    /// instance instead of one per future; serving while down is not the I/O path).
    #[inline(never)]
    #[cfg_attr(isboot_kernel, optimize(size))]
    fn poll_serving<'t>(
        &mut self,
        cx: &mut Context<'_>,
        fut: &mut dyn FnMut(&mut Context<'_>) -> Poll<()>,
        timer: &'t Timer,
        deadline: &mut Instant,
        mut sleep: Pin<&mut Sleep<'t>>,
    ) -> Poll<Result<(), Stop>> {
        loop {
            if self.poll_shutdown(cx).0 {
                return Poll::Ready(Err(Stop::Shutdown));
            }
            if self.give_up_due() {
                return Poll::Ready(Err(Stop::GiveUp));
            }
            if fut(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let now = timer.now();
            // While down the engine only times out requests; it never asks to disconnect.
            let _ = self.engine.on_timer(now);
            self.deliver();
            self.take_requests(cx, now);
            let next = self
                .engine
                .poll_at()
                .unwrap_or(Instant::MAX)
                .min(self.give_up_at.unwrap_or(Instant::MAX));
            if next != *deadline {
                *deadline = next;
                sleep.set(timer.sleep_until(next));
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Sleeps for `d` while serving, unless stopped first.
    async fn sleep(&mut self, d: Duration) -> Result<(), Stop> {
        let timer = self.timer.clone();
        let sleep = pin!(timer.sleep(d));
        self.serve_while(sleep).await
    }

    /// Runs one connection in full feature phase. `None`: logged out (orderly shutdown done);
    /// `Some(reason)`: the connection must be dropped and the session recovered.
    async fn connection<T: Transport>(&mut self, t: &mut T) -> Option<Disconnect> {
        let timer = self.timer.clone();
        self.rx.reset();
        let mut deadline = Instant::MAX;
        let mut sleep = pin!(timer.sleep_until(deadline));
        // The waker the sleep was last polled with (it keeps a clone).
        let mut sleep_waker: Option<Waker> = None;
        // The waker the shutdown doorbell holds, once it said Pending: until it rings (or the
        // task's waker changes) there is nothing to look at there.
        let mut bell_waker: Option<Waker> = None;
        // The engine's earliest deadline as of the end of the last round: nothing changes the
        // engine between rounds, and what a round changes before the timers are looked at
        // only sets deadlines after `now` (a zero timeout's is caught by the sleep, below).
        let mut timers_due = Instant::ZERO;
        poll_fn(|cx| {
            let trace = self.log.enabled(Level::Trace);
            for _ in 0..ROUNDS_PER_POLL {
                let now = timer.now();
                // Another round is needed only when a source was left without our waker: the
                // receive budget ran out before the transport said Pending, or the timer fired.
                // Everything a round changes is looked at later in the same round (completions
                // free slots before new requests are taken, and whatever rx, the timer and new
                // requests queue is flushed at the end), so a round that made progress but left
                // every source registered needs no second round to find nothing: that round
                // was half the session's work per command at queue depth 1.
                let mut again = false;
                // Looked at only when the doorbell rang or does not hold the task's waker: a
                // look every round was 3 % of the session's instructions per command.
                let holds = bell_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                if !holds || self.shared.shutdown.is_rung() {
                    let (asked, registered) = self.poll_shutdown(cx);
                    bell_waker = registered.then(|| cx.waker().clone());
                    if asked {
                        self.engine.shutdown(now);
                    }
                }
                // Receive: the PDUs the transport already holds, a bounded number per round so
                // that a target streaming Data-In cannot starve the transmit path.
                let mut rx_waiting = false;
                for _ in 0..RX_PER_ROUND {
                    match self
                        .rx
                        .poll(cx, t, &mut self.engine, now, trace.then_some(&self.log))
                    {
                        // The Logout Response closed the session: whatever follows it in the
                        // stream (the target's FIN, even in the same read) is not looked at.
                        Poll::Ready(Ok(())) if self.engine.phase() == Phase::Closed => {
                            return Poll::Ready(None)
                        }
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(d)) => return Poll::Ready(Some(d)),
                        Poll::Pending => {
                            rx_waiting = true;
                            break;
                        }
                    }
                }
                again |= !rx_waiting;
                if now >= timers_due {
                    if let Err(d) = self.engine.on_timer(now) {
                        return Poll::Ready(Some(d));
                    }
                }
                self.deliver();
                if self.engine.phase() == Phase::Closed {
                    return Poll::Ready(None);
                }
                // New requests after the completions, which free the slots they need (a full
                // table leaves the inbox unpolled: the completions that make room come from
                // the receive path, which is looked at before this in every round).
                self.take_requests(cx, now);
                // Transmit: lay out a batch, write until the transport pushes back or nothing
                // is left to send.
                if let Err(d) = flush(cx, t, &mut self.engine, now, trace.then_some(&self.log)) {
                    return Poll::Ready(Some(d));
                }
                // The keepalive deadline moves with every PDU received; re-arming the timer only
                // when the deadline comes earlier keeps that off the timer queue (a timer that
                // fires early just leads to a round that finds nothing due, then re-arms).
                let next = self.engine.poll_at().unwrap_or(Instant::MAX);
                timers_due = next;
                if next < deadline {
                    deadline = next;
                    sleep.set(timer.sleep_until(deadline));
                    sleep_waker = None;
                }
                // Polled again only when it may be due or holds another waker than `cx`'s: it
                // has our waker otherwise, and a poll per round that only finds that out was 3 %
                // of the session's instructions per command.
                let armed = sleep_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()));
                if deadline != Instant::MAX && (now >= deadline || !armed) {
                    if sleep.as_mut().poll(cx).is_ready() {
                        deadline = Instant::MAX;
                        sleep_waker = None;
                        again = true;
                    } else if !armed {
                        sleep_waker = Some(cx.waker().clone());
                    }
                }
                if !again {
                    self.publish_stats();
                    return Poll::Pending;
                }
            }
            self.publish_stats();
            // Busy: let other tasks run, then come back.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }
}

/// Polls the future [`Serving::serve_while`] serves, keeping its output. Not a closure: the
/// attempt's future (connect and login), which LLVM inlines here, is then built for size in the
/// kernel module, where closures and async bodies would not take `#[optimize]`.
#[cfg_attr(isboot_kernel, optimize(size))]
#[inline(never)]
fn poll_into<F: Future>(
    fut: Pin<&mut F>,
    out: &mut Option<F::Output>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    match fut.poll(cx) {
        Poll::Ready(v) => {
            *out = Some(v);
            Poll::Ready(())
        }
        Poll::Pending => Poll::Pending,
    }
}

/// `"; waiting 60 s of the 600 s the target asked for"` when the target's Time2Wait was above
/// [`SessionConfig::max_time2wait`](super::SessionConfig::max_time2wait).
struct CappedWait(Option<(Duration, Duration)>);

impl core::fmt::Display for CappedWait {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some((asked, cap)) => write!(
                f,
                "; waiting {} s of the {} s the target asked for (the Time2Wait cap)",
                cap.as_secs(),
                asked.as_secs()
            ),
            None => Ok(()),
        }
    }
}

/// Writes what the engine has to send: batches laid out by [`Engine::fill_tx`], each handed to
/// the transport as slices (headers from the engine, data straight from the requests'
/// buffers), until nothing is left or the transport pushes back (its waker registered).
pub(super) fn flush<T: Transport, G: Log, B: crate::scsi::DataBuf>(
    cx: &mut Context<'_>,
    t: &mut T,
    engine: &mut Engine<B>,
    now: Instant,
    trace: Option<&G>,
) -> Result<(), Disconnect> {
    loop {
        if !engine.tx_pending() {
            if !engine.fill_tx(now) {
                return Ok(());
            }
            if let Some(log) = trace {
                for h in engine.tx_headers() {
                    trace_pdu(log, "->", h);
                }
            }
        }
        // Most writes are a few slices (a command, or a header and its data): laid out into a
        // small array, as clearing the full one for every write was 2 % of the user
        // instructions per command at queue depth 1. A batch of more pieces goes into the full
        // one at once (laying it out twice cost the module 4 % of its session work at queue
        // depth 16), and so does one whose buffers turn out to be in more pieces than it has.
        let gone = || Disconnect::internal("a buffer in the transmit batch is gone");
        let mut few: [&[u8]; FEW] = [&[]; FEW];
        let mut iov: [&[u8]; IOV];
        let in_few = if engine.tx_pieces() < FEW {
            Some(engine.tx_slices(&mut few).ok_or_else(gone)?).filter(|&n| n < FEW)
        } else {
            None
        };
        let slices = match in_few {
            Some(n) => few.get(..n).unwrap_or_default(),
            None => {
                iov = [&[]; IOV];
                let n = engine.tx_slices(&mut iov).ok_or_else(gone)?;
                iov.get(..n).unwrap_or_default()
            }
        };
        let len = slices.iter().fold(0usize, |a, s| a.saturating_add(s.len()));
        if len == 0 {
            return Err(Disconnect::internal("an empty transmit batch"));
        }
        match t.poll_write_vectored(cx, slices) {
            Poll::Ready(Ok(0)) => return Err(Disconnect::Io(IoError::Closed)),
            Poll::Ready(Ok(w)) => {
                engine.tx_sent(w.min(len));
            }
            Poll::Ready(Err(e)) => return Err(Disconnect::Io(e)),
            Poll::Pending => return Ok(()),
        }
    }
}
