// SPDX-License-Identifier: BSD-2-Clause
//! The session task: connect and log in, run the [`Engine`] over a [`Transport`], recover.
//!
//! One future does everything for one session, so nothing is shared between tasks but the
//! [`Shared`] inbox. While connected, one `poll_fn` loop drives, in order: the inbox (only while
//! a slot is free, so a full table leaves requests with the platform), the shutdown doorbell,
//! the receive path, the engine's timers, completions, and the transmit path; the engine's
//! `poll_at` is the one timer. The receive path reads BHS, AHS and header digest into a fixed
//! buffer, asks the engine where the data segment goes, and reads Data-In straight into the
//! request's buffer, computing the data digest on the way.
//!
//! Connection loss (I/O error, a violation, a NOP timeout, a target request) closes the
//! transport, keeps every request in the engine, waits (the target's Time2Wait, or capped backoff
//! with jitter), and logs in again with the same ISID and TSIH 0; the engine then replays what
//! was outstanding. Failed attempts move on to the next target candidate.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::net::{IpAddr, SocketAddr};
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;

use isboot_crc32c::Crc32c;
use isboot_executor::{Channel, Doorbell, Instant, Mutex, RawLock, Timer};

use super::engine::{Disconnect, Engine, Event, LogoutOutcome, Phase, RxSink, SubmitError};
use super::{Handle, Request, SessionConfig, Shared, State, Status, DEFAULT_PORT};
use crate::log;
use crate::login::{Attempt, Established, Login, LoginConfig, LoginError, Step, LOGIN_MAX_DATA};
use crate::pdu::{self, Digests, HeaderInfo, Pdu, BHS_LEN, DIGEST_LEN, MAX_AHS_LEN};
use crate::port::{Connector, Events, IoError, Level, Log, Portal, Random, Transport};
use crate::scsi::{Completion, TransportError};
use crate::text::TargetAddress;

/// BHS, the largest AHS and a header digest.
const HDR_MAX: usize = BHS_LEN + MAX_AHS_LEN + DIGEST_LEN;
/// Bytes gathered before a write is issued: several PDUs per system call, bounded.
const TX_BATCH: usize = 256 * 1024;
/// A connection that lasted this long counts as healthy when it drops.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
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
struct Front<L: RawLock, E, G> {
    engine: Engine,
    shared: Arc<Shared<L>>,
    events: E,
    log: G,
    timer: Timer,
    /// Set by [`Handle::give_up_after`]: past it, the session no longer recovers.
    give_up_at: Option<Instant>,
}

/// Why serving stopped before the awaited future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// [`Handle::shutdown`].
    Shutdown,
    /// The [`Handle::give_up_after`] deadline passed while not connected.
    GiveUp,
}

/// The part that opens connections and logs in.
struct Back<C, R, G> {
    log: G,
    cfg: SessionConfig,
    connector: C,
    rng: R,
    timer: Timer,
    /// Per-target login choices learned from failures (security stage first, MD5 only).
    flags: Vec<Attempt>,
    current: usize,
    logins: u32,
}

/// One iSCSI session (see the module documentation of [`crate::session`]).
pub struct Session<L: RawLock, C, E, R, G> {
    front: Front<L, E, G>,
    back: Back<C, R, G>,
}

impl<L: RawLock, C, E, R, G> core::fmt::Debug for Session<L, C, E, R, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.front.engine.phase())
            .field("target", &self.back.current)
            .finish_non_exhaustive()
    }
}

/// Why one connection attempt failed.
#[derive(Debug)]
enum AttemptError {
    Io(IoError),
    ConnectTimeout,
    LoginTimeout,
    Login(LoginError),
    Pdu(pdu::Error),
    /// Something other than a Login Response during login.
    NotLoginResponse(pdu::Opcode),
    TooManyRedirects,
    BadRedirect(String),
}

impl core::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttemptError::Io(e) => write!(f, "{e}"),
            AttemptError::ConnectTimeout => f.write_str("connect timed out"),
            AttemptError::LoginTimeout => f.write_str("login timed out"),
            AttemptError::Login(e) => write!(f, "{e}"),
            AttemptError::Pdu(e) => write!(f, "bad PDU during login: {e}"),
            AttemptError::NotLoginResponse(op) => write!(f, "{op:?} during login"),
            AttemptError::TooManyRedirects => f.write_str("too many login redirects"),
            AttemptError::BadRedirect(a) => write!(f, "redirect to unusable address {a}"),
        }
    }
}

impl<L, C, E, R, G> Session<L, C, E, R, G>
where
    L: RawLock,
    C: Connector,
    E: Events,
    R: Random,
    G: Log + Clone,
{
    /// A session ready to `run`, and the platform's handle to it.
    pub fn new(
        cfg: SessionConfig,
        connector: C,
        events: E,
        rng: R,
        log: G,
        timer: Timer,
    ) -> (Handle<L>, Self) {
        let shared = Arc::new(Shared {
            inbox: Channel::new(),
            shutdown: Doorbell::new(),
            shutdown_requested: AtomicBool::new(false),
            give_up_after: Mutex::new(None),
            status: Mutex::new(Status::default()),
        });
        let engine = Engine::new(cfg.max_tasks, cfg.timeouts);
        let flags = vec![Attempt::default(); cfg.targets.len()];
        let handle = Handle {
            shared: shared.clone(),
        };
        let session = Session {
            front: Front {
                engine,
                shared,
                events,
                log: log.clone(),
                timer: timer.clone(),
                give_up_at: None,
            },
            back: Back {
                log,
                cfg,
                connector,
                rng,
                timer,
                flags,
                current: 0,
                logins: 0,
            },
        };
        (handle, session)
    }

    /// Runs the session until it is shut down or gives up. Every accepted request has been
    /// completed when this returns.
    pub async fn run(mut self) -> End {
        let front = &mut self.front;
        let back = &mut self.back;
        if back.cfg.targets.is_empty() {
            log!(front.log, Level::Note, "isboot: no target to log in to");
            front.finish();
            return End::GaveUp;
        }
        front.set_state(State::LoggingIn, back.current);
        let mut failures: u32 = 0;
        let mut drops: u32 = 0;
        let mut first = true;
        loop {
            let attempt = front.serve_while(back.establish()).await;
            let (mut transport, est) = match attempt {
                Err(stop) => return front.stop(stop),
                Ok(Ok(up)) => up,
                Ok(Err(e)) => {
                    failures = failures.saturating_add(1);
                    let target = back.target_name();
                    log!(
                        front.log,
                        Level::Note,
                        "isboot: login to {} failed: {}; {}",
                        target,
                        e,
                        if back.cfg.backoff.max_attempts.is_some_and(|m| failures >= m) {
                            "giving up"
                        } else {
                            "retrying"
                        }
                    );
                    if back.cfg.backoff.max_attempts.is_some_and(|m| failures >= m) {
                        front.finish();
                        return End::GaveUp;
                    }
                    back.next_target();
                    let delay = back.cfg.backoff.delay(failures, back.rng.next_u32());
                    log!(
                        front.log,
                        Level::Info,
                        "isboot: next attempt in {} ms",
                        delay
                            .as_secs()
                            .saturating_mul(1000)
                            .saturating_add(u64::from(delay.subsec_millis()))
                    );
                    if let Err(stop) = front.sleep(delay).await {
                        return front.stop(stop);
                    }
                    continue;
                }
            };
            failures = 0;
            let params = est.params;
            log!(
                front.log,
                Level::Note,
                "isboot: {} to {} (TSIH {:#06x})",
                if first { "logged in" } else { "reconnected" },
                back.target_name(),
                est.tsih
            );
            log!(front.log, Level::Info, "isboot: negotiated {}", params);
            first = false;
            let now = front.timer.now();
            front.engine.connected(params, est.sns, now);
            let window = front.engine.window_size();
            front.shared.status.lock(|s| {
                s.logins = s.logins.saturating_add(1);
                s.params = Some(params);
                s.cmd_window = window;
            });
            front.set_state(State::Up, back.current);
            let up_since = front.timer.now();
            let end = front.connection(&mut transport).await;
            transport.close();
            front.engine.disconnected();
            front.deliver();
            let reason = match end {
                None => {
                    match front.engine.logout_outcome() {
                        Some(LogoutOutcome::Refused(code)) => log!(
                            front.log,
                            Level::Note,
                            "isboot: target answered the Logout with {:?}; session closed",
                            code
                        ),
                        Some(LogoutOutcome::TimedOut) => log!(
                            front.log,
                            Level::Note,
                            "isboot: {}; session closed",
                            Disconnect::LogoutTimeout
                        ),
                        Some(LogoutOutcome::Done) | None => {
                            log!(front.log, Level::Note, "isboot: logged out")
                        }
                    }
                    front.finish();
                    return End::LoggedOut;
                }
                // Once shutdown has begun the connection ending is expected (the target's FIN
                // after its Logout Response) or at least no reason to come back: a reconnect
                // would only log out again.
                Some(r) if front.shutting_down() => {
                    log!(
                        front.log,
                        Level::Note,
                        "isboot: {} during logout; session closed",
                        r
                    );
                    front.finish();
                    return End::LoggedOut;
                }
                Some(r) => r,
            };
            front
                .shared
                .status
                .lock(|s| s.disconnects = s.disconnects.saturating_add(1));
            if front.give_up_due() {
                log!(
                    front.log,
                    Level::Note,
                    "isboot: {}; giving up (past the give-up deadline), held requests fail",
                    reason
                );
                front.finish();
                return End::GaveUp;
            }
            log!(front.log, Level::Note, "isboot: {}; reconnecting", reason);
            front.set_state(State::Recovering, back.current);
            // A connection that keeps dying soon after login (a command the target chokes on,
            // a flapping link) backs off like failed logins; one that lived reconnects at once.
            if front.timer.now() >= up_since.saturating_add(STABLE_CONNECTION) {
                drops = 0;
            }
            drops = drops.saturating_add(1);
            let jitter = back.rng.next_u32();
            let backoff = if drops <= 1 {
                back.cfg
                    .backoff
                    .delay(0, jitter)
                    .checked_div(4)
                    .unwrap_or_default()
            } else {
                back.cfg.backoff.delay(drops.saturating_sub(1), jitter)
            };
            // The target's Time2Wait is a minimum: a target that drops every new connection at
            // once with Time2Wait 0 (stuck in a restart loop) still gets the backoff instead of
            // a login storm.
            let delay = match reason.wait() {
                Some(w) if drops <= 1 => w,
                Some(w) => w.max(backoff),
                None => backoff,
            };
            if let Err(stop) = front.sleep(delay).await {
                return front.stop(stop);
            }
        }
    }
}

impl<L: RawLock, E: Events, G: Log> Front<L, E, G> {
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
                Event::Complete(c) => self.events.complete(c),
                Event::ResetDone { tag, result } => self.events.reset_done(tag, result),
                Event::ScsiEvent { lun, sense } => self.events.scsi_event(lun, &sense),
            }
        }
    }

    /// Ends the session: nothing more is accepted, everything still held completes.
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

    fn refuse(&mut self, r: Request) {
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

    /// Moves requests from the inbox into the engine while it has room. Returns whether any
    /// arrived.
    fn take_requests(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut any = false;
        while self.engine.has_room() {
            match self.shared.inbox.poll_recv(cx) {
                Poll::Ready(Some(r)) => {
                    any = true;
                    match r {
                        Request::Scsi(req) => match self.engine.submit(req, now) {
                            Ok(()) => {}
                            Err(SubmitError::Full(req) | SubmitError::Closed(req)) => {
                                self.refuse(Request::Scsi(req));
                            }
                        },
                        Request::Abort(tag) => {
                            self.engine.abort(tag);
                        }
                        Request::ResetLun { lun, tag } => self.engine.reset_lun(lun, tag),
                    }
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        any
    }

    /// Whether the orderly shutdown has begun (the engine is closing or closed, or the platform
    /// asked for it).
    fn shutting_down(&self) -> bool {
        matches!(self.engine.phase(), Phase::Closing | Phase::Closed)
            || self.shared.shutdown_requested.load(Ordering::Acquire)
    }

    /// Whether shutdown was asked for (clears the doorbell, registers the waker otherwise).
    /// Adopts a give-up deadline the platform set since the last look.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> bool {
        let _ = self.shared.shutdown.poll_wait(cx);
        if let Some(d) = self.shared.give_up_after.lock(Option::take) {
            self.give_up_at = Some(self.timer.now().saturating_add(d));
        }
        self.shared.shutdown_requested.load(Ordering::Acquire)
    }

    /// Whether the give-up deadline has passed.
    fn give_up_due(&self) -> bool {
        self.give_up_at.is_some_and(|d| d <= self.timer.now())
    }

    /// Ends the session for `stop`.
    fn stop(&mut self, stop: Stop) -> End {
        match stop {
            Stop::Shutdown => {
                self.finish();
                End::LoggedOut
            }
            Stop::GiveUp => {
                let held = self.engine.outstanding();
                log!(
                    self.log,
                    Level::Note,
                    "isboot: not connected at the give-up deadline; giving up, {} held requests fail",
                    held
                );
                self.finish();
                End::GaveUp
            }
        }
    }

    /// Runs `fut` (connecting, logging in) while requests keep being accepted, command timeouts
    /// keep running and completions keep flowing. Stops first on shutdown or at the give-up
    /// deadline.
    async fn serve_while<F: Future>(&mut self, fut: F) -> Result<F::Output, Stop> {
        let mut fut = pin!(fut);
        let timer = self.timer.clone();
        let mut deadline = Instant::MAX;
        let mut sleep = pin!(timer.sleep_until(deadline));
        poll_fn(|cx| {
            loop {
                if self.poll_shutdown(cx) {
                    return Poll::Ready(Err(Stop::Shutdown));
                }
                if self.give_up_due() {
                    return Poll::Ready(Err(Stop::GiveUp));
                }
                if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Ok(v));
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
                if next != deadline {
                    deadline = next;
                    sleep.set(timer.sleep_until(deadline));
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        })
        .await
    }

    /// Sleeps for `d` while serving, unless stopped first.
    async fn sleep(&mut self, d: Duration) -> Result<(), Stop> {
        let timer = self.timer.clone();
        self.serve_while(timer.sleep(d)).await
    }

    /// Runs one connection in full feature phase. `None`: logged out (orderly shutdown done);
    /// `Some(reason)`: the connection must be dropped and the session recovered.
    async fn connection<T: Transport>(&mut self, t: &mut T) -> Option<Disconnect> {
        let timer = self.timer.clone();
        let mut rx = Rx::new();
        let mut tx: Vec<u8> = Vec::new();
        let mut sent = 0usize;
        let mut deadline = Instant::MAX;
        let mut sleep = pin!(timer.sleep_until(deadline));
        poll_fn(|cx| {
            let trace = self.log.enabled(Level::Trace);
            for _ in 0..ROUNDS_PER_POLL {
                let now = timer.now();
                let mut progress = false;
                if self.poll_shutdown(cx) {
                    self.engine.shutdown(now);
                }
                // Receive: the PDUs the transport already holds, a bounded number per round so
                // that a target streaming Data-In cannot starve the transmit path.
                for _ in 0..RX_PER_ROUND {
                    match rx.poll(cx, t, &mut self.engine, now, trace.then_some(&self.log)) {
                        // The Logout Response closed the session: whatever follows it in the
                        // stream (the target's FIN, even in the same read) is not looked at.
                        Poll::Ready(Ok(())) if self.engine.phase() == Phase::Closed => {
                            return Poll::Ready(None)
                        }
                        Poll::Ready(Ok(())) => progress = true,
                        Poll::Ready(Err(d)) => return Poll::Ready(Some(d)),
                        Poll::Pending => break,
                    }
                }
                if let Err(d) = self.engine.on_timer(now) {
                    return Poll::Ready(Some(d));
                }
                self.deliver();
                if self.engine.phase() == Phase::Closed {
                    return Poll::Ready(None);
                }
                // New requests after the completions, which free the slots they need (a full
                // table leaves the inbox unpolled, so it must be looked at once room appears).
                progress |= self.take_requests(cx, now);
                // Transmit: gather a batch, write until the transport pushes back.
                loop {
                    if sent == tx.len() {
                        tx.clear();
                        sent = 0;
                        loop {
                            let start = tx.len();
                            if start >= TX_BATCH || !self.engine.poll_transmit(now, &mut tx) {
                                break;
                            }
                            if trace {
                                trace_pdu(&self.log, "->", tx.get(start..).unwrap_or(&[]));
                            }
                        }
                        if tx.is_empty() {
                            break;
                        }
                    }
                    let pending = tx.get(sent..).unwrap_or(&[]);
                    match t.poll_write(cx, pending) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Some(Disconnect::Io(IoError::Closed)))
                        }
                        Poll::Ready(Ok(n)) => {
                            sent = sent.saturating_add(n.min(pending.len()));
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Disconnect::Io(e))),
                        Poll::Pending => break,
                    }
                }
                // The keepalive deadline moves with every PDU received; re-arming the timer only
                // when the deadline comes earlier keeps that off the timer queue (a timer that
                // fires early just leads to a round that finds nothing due, then re-arms).
                let next = self.engine.poll_at().unwrap_or(Instant::MAX);
                if next < deadline {
                    deadline = next;
                    sleep.set(timer.sleep_until(deadline));
                }
                if deadline != Instant::MAX && sleep.as_mut().poll(cx).is_ready() {
                    deadline = Instant::MAX;
                    progress = true;
                }
                if !progress {
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

/// Bytes read, or return from the poll: `Pending`, or the error that ends the connection (EOF
/// included).
macro_rules! read_or_return {
    ($p:expr) => {
        match $p {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(Disconnect::Io(IoError::Closed))),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Disconnect::Io(e))),
            Poll::Pending => return Poll::Pending,
        }
    };
}

/// Where the receive path is within the current PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RxStage {
    /// Reading BHS (then AHS and header digest) into `hdr[..need]`.
    Header { need: usize },
    Data {
        sink: RxSink,
        len: usize,
        have: usize,
    },
    /// Padding and data digest.
    Trailer {
        sink: RxSink,
        pad: usize,
        need: usize,
        have: usize,
    },
}

struct Rx {
    ahead: ReadAhead,
    hdr: [u8; HDR_MAX],
    have: usize,
    info: Option<HeaderInfo>,
    stage: RxStage,
    scratch: Vec<u8>,
    crc: Crc32c,
    trailer: [u8; 3 + DIGEST_LEN],
}

/// Bytes read from the transport ahead of need, so that a burst of small PDUs (responses, R2Ts,
/// short Data-In) costs one transport read instead of two or three per PDU. Large data segments
/// bypass it and go straight from the transport into the request buffer.
struct ReadAhead {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

/// Size of the read-ahead buffer.
const READ_AHEAD: usize = 64 * 1024;
/// Reads at least this large go directly into their destination when nothing is buffered.
const DIRECT_READ: usize = 16 * 1024;

impl ReadAhead {
    fn new() -> Self {
        ReadAhead {
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// Fills a prefix of `dst` (never empty): from the buffer if it holds anything, else from
    /// the transport. `Ok(0)` only on end of stream.
    fn read<T: Transport>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        dst: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        if self.pos >= self.end {
            if dst.len() >= DIRECT_READ {
                return t.poll_read(cx, dst);
            }
            if self.buf.is_empty() {
                self.buf.resize(READ_AHEAD, 0);
            }
            self.pos = 0;
            self.end = 0;
            match t.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(n)) => self.end = n.min(self.buf.len()),
                other => return other,
            }
            if self.end == 0 {
                return Poll::Ready(Ok(0));
            }
        }
        let avail = self.buf.get(self.pos..self.end).unwrap_or(&[]);
        let n = avail.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), avail.get(..n)) {
            d.copy_from_slice(s);
        }
        self.pos = self.pos.saturating_add(n);
        Poll::Ready(Ok(n))
    }
}

impl Rx {
    fn new() -> Self {
        Rx {
            ahead: ReadAhead::new(),
            hdr: [0; HDR_MAX],
            have: 0,
            info: None,
            stage: RxStage::Header { need: BHS_LEN },
            scratch: Vec::new(),
            crc: Crc32c::new(),
            trailer: [0; 3 + DIGEST_LEN],
        }
    }

    /// Advances through one PDU: `Ready(Ok)` once a whole PDU went to the engine, `Pending`
    /// when the transport has nothing more now.
    fn poll<T: Transport, G: Log>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        engine: &mut Engine,
        now: Instant,
        trace: Option<&G>,
    ) -> Poll<Result<(), Disconnect>> {
        let digests: Digests = engine.params().digests();
        loop {
            match self.stage.clone() {
                RxStage::Header { need } => {
                    if self.have < need {
                        let buf = self.hdr.get_mut(self.have..need).unwrap_or(&mut []);
                        let n = read_or_return!(self.ahead.read(cx, t, buf));
                        self.have = self.have.saturating_add(n);
                        continue;
                    }
                    let info = match self.info {
                        Some(i) => i,
                        None => {
                            let info = HeaderInfo::parse(&self.hdr)
                                .map_err(|e| Disconnect::Violation(super::Violation::Pdu(e)))?;
                            info.check_data_len(engine.params().max_recv_dsl())
                                .map_err(|e| Disconnect::Violation(super::Violation::Pdu(e)))?;
                            self.info = Some(info);
                            let full = info.header_len().saturating_add(if digests.header {
                                DIGEST_LEN
                            } else {
                                0
                            });
                            if full > need {
                                self.stage = RxStage::Header { need: full };
                                continue;
                            }
                            info
                        }
                    };
                    let hl = info.header_len();
                    let header = self.hdr.get(..hl).unwrap_or(&[]);
                    if digests.header {
                        let d = self
                            .hdr
                            .get(hl..hl.saturating_add(DIGEST_LEN))
                            .unwrap_or(&[]);
                        pdu::check_header_digest(header, d)
                            .map_err(|e| Disconnect::Violation(super::Violation::Pdu(e)))?;
                    }
                    if let Some(log) = trace {
                        trace_pdu(log, "<-", header);
                    }
                    let sink = engine.rx_header(now, header)?;
                    let len = info.data_len as usize;
                    if matches!(sink, RxSink::Scratch) && self.scratch.len() < len {
                        self.scratch.resize(len, 0);
                    }
                    self.crc = Crc32c::new();
                    self.stage = RxStage::Data { sink, len, have: 0 };
                }
                RxStage::Data { sink, len, have } => {
                    if have < len {
                        let buf: &mut [u8] = match &sink {
                            RxSink::Task { slot, range } => {
                                engine.rx_task_buf(*slot, range.clone())
                            }
                            RxSink::Scratch => self.scratch.get_mut(..len).unwrap_or(&mut []),
                        };
                        let Some(dst) = buf.get_mut(have..len).filter(|b| !b.is_empty()) else {
                            return Poll::Ready(Err(Disconnect::Io(IoError::Other(-1))));
                        };
                        let n = read_or_return!(self.ahead.read(cx, t, dst));
                        if digests.data {
                            self.crc = self.crc.update(dst.get(..n).unwrap_or(&[]));
                        }
                        self.stage = RxStage::Data {
                            sink,
                            len,
                            have: have.saturating_add(n),
                        };
                        continue;
                    }
                    let pad = pdu::pad_len(len);
                    let dd = if digests.data && len > 0 {
                        DIGEST_LEN
                    } else {
                        0
                    };
                    self.stage = RxStage::Trailer {
                        sink,
                        pad,
                        need: pad.saturating_add(dd),
                        have: 0,
                    };
                }
                RxStage::Trailer {
                    sink,
                    pad,
                    need,
                    have,
                } => {
                    if have < need {
                        let buf = self.trailer.get_mut(have..need).unwrap_or(&mut []);
                        let n = read_or_return!(self.ahead.read(cx, t, buf));
                        self.stage = RxStage::Trailer {
                            sink,
                            pad,
                            need,
                            have: have.saturating_add(n),
                        };
                        continue;
                    }
                    let info = self.info.take();
                    let len = info.map_or(0, |i| i.data_len as usize);
                    if need > pad {
                        let crc = self
                            .crc
                            .update(self.trailer.get(..pad).unwrap_or(&[]))
                            .finish();
                        let got = self.trailer.get(pad..need).unwrap_or(&[]);
                        let received = match got {
                            &[a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
                            _ => 0,
                        };
                        if received != crc {
                            return Poll::Ready(Err(Disconnect::Violation(super::Violation::Pdu(
                                pdu::Error::DataDigestMismatch {
                                    received,
                                    computed: crc,
                                },
                            ))));
                        }
                    }
                    self.have = 0;
                    self.stage = RxStage::Header { need: BHS_LEN };
                    let data = match sink {
                        RxSink::Scratch => self.scratch.get(..len).unwrap_or(&[]),
                        RxSink::Task { .. } => &[],
                    };
                    return Poll::Ready(engine.rx_finish(now, data));
                }
            }
        }
    }
}

impl<C: Connector, R: Random, G: Log> Back<C, R, G> {
    fn target_name(&self) -> &str {
        self.cfg
            .targets
            .get(self.current)
            .map_or("(none)", |t| t.name.as_str())
    }

    fn next_target(&mut self) {
        let n = self.cfg.targets.len().max(1);
        self.current = self.current.saturating_add(1).checked_rem(n).unwrap_or(0);
    }

    /// Connects and logs in to the current target, following redirects and retrying at once
    /// when the target taught us a login choice (security stage first, MD5 only).
    async fn establish(&mut self) -> Result<(C::Transport, Established), AttemptError> {
        let Some(target) = self.cfg.targets.get(self.current).cloned() else {
            return Err(AttemptError::Io(IoError::Unreachable));
        };
        let mut portal = target.portal;
        let mut redirects: u32 = 0;
        let mut relearned: u32 = 0;
        loop {
            log!(
                self.log,
                Level::Info,
                "isboot: connecting to {} at {}",
                target.name,
                portal
            );
            let deadline = self.timer.now().saturating_add(self.cfg.connect_timeout);
            let timer = self.timer.clone();
            let mut transport = match timer
                .timeout(deadline, self.connector.connect(portal))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(AttemptError::Io(e)),
                Err(_) => return Err(AttemptError::ConnectTimeout),
            };
            let deadline = self.timer.now().saturating_add(self.cfg.login_timeout);
            let login = self.login(&mut transport, &target);
            let result = match timer.timeout(deadline, login).await {
                Ok(r) => r,
                Err(_) => Err(AttemptError::LoginTimeout),
            };
            match result {
                Ok(Step::Done(est)) => {
                    self.logins = self.logins.saturating_add(1);
                    return Ok((transport, est));
                }
                Ok(Step::Redirect { address, permanent }) => {
                    transport.close();
                    redirects = redirects.saturating_add(1);
                    if redirects > self.cfg.max_redirects {
                        return Err(AttemptError::TooManyRedirects);
                    }
                    let new = redirect_portal(&address, portal.nic)?;
                    log!(
                        self.log,
                        Level::Note,
                        "isboot: {} redirects {} to {}",
                        target.name,
                        if permanent {
                            "permanently"
                        } else {
                            "temporarily"
                        },
                        new.addr
                    );
                    if permanent {
                        if let Some(t) = self.cfg.targets.get_mut(self.current) {
                            t.portal = new;
                        }
                    }
                    portal = new;
                }
                Ok(Step::Send(_)) => {
                    transport.close();
                    return Err(AttemptError::Login(LoginError::Unexpected(
                        "login ended early",
                    )));
                }
                Err(AttemptError::Login(
                    e @ (LoginError::ChapListRefused | LoginError::SecurityStageRequired),
                )) if relearned < 2 => {
                    transport.close();
                    relearned = relearned.saturating_add(1);
                    log!(self.log, Level::Note, "isboot: {}", e);
                    if let Some(f) = self.flags.get_mut(self.current) {
                        match e {
                            LoginError::ChapListRefused => f.chap_md5_only = true,
                            _ => f.security_first = true,
                        }
                    }
                }
                Err(e) => {
                    transport.close();
                    return Err(e);
                }
            }
        }
    }

    /// One login exchange on a fresh connection.
    async fn login(
        &mut self,
        t: &mut C::Transport,
        target: &super::TargetConfig,
    ) -> Result<Step, AttemptError> {
        let lc = LoginConfig {
            initiator_name: self.cfg.initiator_name.clone(),
            target_name: target.name.clone(),
            isid: self.cfg.isid.0,
            chap: target.chap.clone(),
            offer: self.cfg.offer.clone(),
        };
        let attempt = Attempt {
            tsih: 0,
            ..self.flags.get(self.current).copied().unwrap_or_default()
        };
        let itt = 0x4000_0000 | (self.logins & 0xffff);
        let mut login = Login::new(&lc, attempt, itt).map_err(AttemptError::Login)?;
        let mut req = login.start().map_err(AttemptError::Login)?;
        let mut out = Vec::new();
        loop {
            out.clear();
            pdu::emit_pdu(&req.header, &req.data, Digests::default(), &mut out)
                .map_err(AttemptError::Pdu)?;
            write_all(t, &out).await.map_err(AttemptError::Io)?;
            let (header, data) = read_pdu(t, LOGIN_MAX_DATA).await?;
            let resp = match Pdu::parse(&header).map_err(AttemptError::Pdu)? {
                Pdu::LoginResponse(r) => r,
                other => return Err(AttemptError::NotLoginResponse(pdu::Header::opcode(&other))),
            };
            let rng = &mut self.rng;
            match login
                .handle(&resp, &data, &mut |b: &mut [u8]| rng.fill(b))
                .map_err(AttemptError::Login)?
            {
                Step::Send(next) => req = next,
                done => return Ok(done),
            }
        }
    }
}

/// One line per PDU at `net.isboot.debug=3`: direction, opcode, ITT, data length.
fn trace_pdu<G: Log>(log: &G, dir: &str, bytes: &[u8]) {
    if let Ok(info) = HeaderInfo::parse(bytes) {
        let itt = pdu::Bhs::new_checked(bytes).map_or(0, |b| b.itt());
        log.log(
            Level::Trace,
            format_args!(
                "isboot: {dir} {:?} ITT {itt:#010x} DSL {}",
                info.opcode, info.data_len
            ),
        );
    }
}

/// The portal a TargetAddress names: an IP literal (no name resolution in the kernel).
fn redirect_portal(a: &TargetAddress, nic: u8) -> Result<Portal, AttemptError> {
    let ip: IpAddr = a
        .host
        .parse()
        .map_err(|_| AttemptError::BadRedirect(a.host.clone()))?;
    Ok(Portal {
        addr: SocketAddr::new(ip, a.port.unwrap_or(DEFAULT_PORT)),
        nic,
    })
}

async fn write_all<T: Transport>(t: &mut T, mut buf: &[u8]) -> Result<(), IoError> {
    poll_fn(|cx| {
        while !buf.is_empty() {
            match t.poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(IoError::Closed)),
                Poll::Ready(Ok(n)) => buf = buf.get(n..).unwrap_or(&[]),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

async fn read_exact<T: Transport>(t: &mut T, buf: &mut [u8]) -> Result<(), IoError> {
    let mut have = 0;
    poll_fn(|cx| {
        while have < buf.len() {
            let dst = buf.get_mut(have..).unwrap_or(&mut []);
            match t.poll_read(cx, dst) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(IoError::Closed)),
                Poll::Ready(Ok(n)) => have = have.saturating_add(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Reads one whole PDU without digests (login phase): BHS+AHS, and the data segment.
async fn read_pdu<T: Transport>(
    t: &mut T,
    max_data: u32,
) -> Result<(Vec<u8>, Vec<u8>), AttemptError> {
    let mut header = vec![0u8; BHS_LEN];
    read_exact(t, &mut header).await.map_err(AttemptError::Io)?;
    let info = HeaderInfo::parse(&header).map_err(AttemptError::Pdu)?;
    info.check_data_len(max_data).map_err(AttemptError::Pdu)?;
    header.resize(info.header_len(), 0);
    if let Some(ahs) = header.get_mut(BHS_LEN..) {
        read_exact(t, ahs).await.map_err(AttemptError::Io)?;
    }
    let mut data = vec![0u8; info.padded_data_len()];
    read_exact(t, &mut data).await.map_err(AttemptError::Io)?;
    data.truncate(info.data_len as usize);
    Ok((header, data))
}
