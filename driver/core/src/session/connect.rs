// SPDX-License-Identifier: BSD-2-Clause
//! Opening a connection and logging in: the current target candidate, redirects, and the
//! login choices learned from a failure (security stage first, MD5 only), each retried at
//! once on the same attempt. The login itself is the sans-IO [`Login`]; this is its I/O.

use alloc::string::String;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::task::{Context, Poll};

use isboot_executor::Timer;

use super::{SessionConfig, TargetConfig, DEFAULT_PORT};
use crate::escape::Untrusted;
use crate::log;
use crate::login::{
    Attempt, Established, Login, LoginConfig, LoginError, LoginPdu, Step, LOGIN_MAX_DATA,
};
use crate::mem::{self, NoMemory};
use crate::pdu::{self, Digests, HeaderInfo, LoginResponse, Pdu, BHS_LEN, DIGEST_LEN, MAX_AHS_LEN};
use crate::port::{Connector, IoError, Level, Log, Portal, Random, Transport};
use crate::text::TargetAddress;

/// The part of the session that opens connections and logs in.
pub(super) struct Dialer<C, R, G> {
    log: G,
    connector: C,
    rng: R,
    timer: Timer,
    st: DialState,
}

/// What the dialer keeps that does not depend on the platform's types. The login exchange,
/// redirects and relearned login choices work on it in non-generic functions that take the
/// platform's parts as trait objects: they are compiled once, in this crate (which the kernel
/// module builds for size), instead of inside every session's future, which is generic and so
/// compiled with the platform's I/O path.
struct DialState {
    cfg: SessionConfig,
    /// Per-target login choices learned from failures (security stage first, MD5 only).
    flags: Vec<Attempt>,
    current: usize,
    logins: u32,
    /// The login exchange's PDUs, both ways, kept for every login of the session.
    bufs: LoginBufs,
}

/// [`Connector::login_step`] behind a trait object (it is generic, so not callable on one).
trait StepRunner {
    fn run_step(&mut self, f: &mut dyn FnMut());
}

impl<C: Connector> StepRunner for C {
    fn run_step(&mut self, f: &mut dyn FnMut()) {
        self.login_step(f);
    }
}

/// Runs `f` as a login step; `None` if the platform did not run it.
fn step<T>(steps: &mut (dyn StepRunner + Send), f: impl FnOnce() -> T) -> Option<T> {
    let mut f = Some(f);
    let mut out = None;
    steps.run_step(&mut || out = f.take().map(|f| f()));
    out
}

/// One attempt's progress: where it connects, and how often it was redirected or retried with
/// a relearned login choice.
struct Tries {
    portal: Portal,
    redirects: u32,
    relearned: u32,
}

/// Room for one login PDU each way: BHS, AHS, data up to [`LOGIN_MAX_DATA`] and padding.
struct LoginBufs {
    out: Vec<u8>,
    header: Vec<u8>,
    data: Vec<u8>,
}

/// The most a login PDU occupies on the wire (no digests during login).
const LOGIN_PDU_MAX: usize = BHS_LEN + MAX_AHS_LEN + LOGIN_DATA_MAX + DIGEST_LEN;
/// A login data segment with its padding.
const LOGIN_DATA_MAX: usize = LOGIN_MAX_DATA as usize + 3;

/// Why one connection attempt failed.
#[derive(Debug)]
pub(super) enum AttemptError {
    Io(IoError),
    ConnectTimeout,
    LoginTimeout,
    Login(LoginError),
    Pdu(pdu::Error),
    /// Something other than a Login Response during login.
    NotLoginResponse(pdu::Opcode),
    TooManyRedirects,
    BadRedirect(String),
    /// Memory was short (the attempt is retried later).
    NoMemory,
    /// A bug of ours (or of the platform's transport), not a fault of the target; see
    /// [`AttemptError::internal`].
    Internal(&'static str),
}

impl AttemptError {
    /// An internal error: `what` invariant did not hold. Debug builds stop here.
    #[track_caller]
    fn internal(what: &'static str) -> Self {
        debug_assert!(false, "internal error: {what}");
        AttemptError::Internal(what)
    }
}

/// A transport said it moved more bytes than it was given.
const TRANSPORT_OVERRAN: &str = "the transport reported more bytes than it was given";

impl core::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Nested errors write themselves into `f` (no `Arguments` of their own).
        match self {
            AttemptError::Io(e) => core::fmt::Display::fmt(e, f),
            AttemptError::ConnectTimeout => f.write_str("connect timed out"),
            AttemptError::LoginTimeout => f.write_str("login timed out"),
            AttemptError::Login(e) => core::fmt::Display::fmt(e, f),
            AttemptError::Pdu(e) => write!(f, "bad PDU during login: {e}"),
            AttemptError::NotLoginResponse(op) => write!(f, "{op:?} during login"),
            AttemptError::TooManyRedirects => f.write_str("too many login redirects"),
            AttemptError::BadRedirect(a) => {
                write!(f, "redirect to unusable address {}", Untrusted(a))
            }
            AttemptError::NoMemory => f.write_str("out of memory"),
            AttemptError::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl<C: Connector, R: Random, G: Log> Dialer<C, R, G> {
    #[cfg_attr(isboot_kernel, optimize(size))]
    pub(super) fn try_new(
        cfg: SessionConfig,
        connector: C,
        rng: R,
        log: G,
        timer: Timer,
    ) -> Result<Self, NoMemory> {
        let flags = mem::try_vec(cfg.targets.len(), Attempt::default())?;
        let bufs = LoginBufs {
            out: mem::try_with_capacity(LOGIN_PDU_MAX)?,
            header: mem::try_with_capacity(BHS_LEN + MAX_AHS_LEN)?,
            data: mem::try_with_capacity(LOGIN_DATA_MAX)?,
        };
        Ok(Dialer {
            log,
            connector,
            rng,
            timer,
            st: DialState {
                cfg,
                flags,
                current: 0,
                logins: 0,
                bufs,
            },
        })
    }

    pub(super) fn config(&self) -> &SessionConfig {
        &self.st.cfg
    }

    /// Index into the configuration's targets of the current candidate.
    pub(super) fn current(&self) -> usize {
        self.st.current
    }

    /// Whether the last successful login was the session's first.
    pub(super) fn first_login(&self) -> bool {
        self.st.logins <= 1
    }

    /// Random jitter for the recovery policy.
    pub(super) fn jitter(&mut self) -> u32 {
        self.rng.next_u32()
    }

    pub(super) fn target_name(&self) -> &str {
        self.st.target_name()
    }

    /// Moves on to the next candidate (after a failed attempt).
    pub(super) fn next_target(&mut self) {
        let n = self.st.cfg.targets.len().max(1);
        self.st.current = self
            .st
            .current
            .saturating_add(1)
            .checked_rem(n)
            .unwrap_or(0);
    }

    /// Connects and logs in to the current target, following redirects and retrying at once
    /// when the target taught us a login choice (security stage first, MD5 only). Only the
    /// connect is the platform's own code here; the rest is `DialState`'s.
    pub(super) async fn establish(&mut self) -> Result<(C::Transport, Established), AttemptError> {
        let target = self.st.target(&mut self.connector)?;
        let mut tries = Tries {
            portal: target.portal,
            redirects: 0,
            relearned: 0,
        };
        loop {
            let portal = tries.portal;
            connecting(&self.log, &target, &portal);
            let deadline = self.timer.now().saturating_add(self.st.cfg.connect_timeout);
            let timer = self.timer.clone();
            let mut transport = match timer
                .timeout(deadline, self.connector.connect(portal))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(AttemptError::Io(e)),
                Err(_) => return Err(AttemptError::ConnectTimeout),
            };
            let deadline = self.timer.now().saturating_add(self.st.cfg.login_timeout);
            let lc = self.st.login_config(&mut self.connector, &target);
            let result = match self.st.start_login(&mut self.connector, &lc) {
                Err(e) => Err(e),
                Ok(mut ex) => {
                    let (st, connector, rng) = (&mut self.st, &mut self.connector, &mut self.rng);
                    let t = &mut transport;
                    let codec = &LoginCodec {
                        emit: emit_login,
                        parse: parse_login,
                    };
                    let exchange =
                        poll_fn(|cx| ex.poll(cx, codec, &mut st.bufs, t, connector, rng));
                    match timer.timeout(deadline, exchange).await {
                        Ok(r) => r,
                        Err(_) => Err(AttemptError::LoginTimeout),
                    }
                }
            };
            if let Some(est) = self.st.after_login(
                result,
                &mut transport,
                &mut self.connector,
                &self.log,
                &target,
                &mut tries,
            )? {
                return Ok((transport, est));
            }
        }
    }
}

/// Logs the connect. The functions of `DialState` and `Exchange` that the session's future
/// calls are `#[inline(never)]`: inlined into it, they would be compiled with it, for speed.
#[inline(never)]
fn connecting(log: &dyn Log, target: &TargetConfig, portal: &Portal) {
    log!(
        log,
        Level::Info,
        "isboot: connecting to {} at {}",
        target.name,
        portal
    );
}

impl DialState {
    fn target_name(&self) -> &str {
        self.cfg
            .targets
            .get(self.current)
            .map_or("(none)", |t| t.name.as_str())
    }

    /// The current target candidate (a copy: a permanent redirect changes the original).
    #[inline(never)]
    fn target(&self, steps: &mut (dyn StepRunner + Send)) -> Result<TargetConfig, AttemptError> {
        let (cfg, current) = (&self.cfg, self.current);
        match step(steps, || cfg.targets.get(current).cloned()) {
            Some(Some(target)) => Ok(target),
            _ => Err(AttemptError::internal("no target at the current index")),
        }
    }

    /// What the login on a fresh connection offers (`None` only if the platform did not run
    /// the step; `start_login` then fails).
    #[inline(never)]
    fn login_config(
        &self,
        steps: &mut (dyn StepRunner + Send),
        target: &TargetConfig,
    ) -> Option<LoginConfig> {
        let cfg = &self.cfg;
        step(steps, || LoginConfig {
            initiator_name: cfg.initiator_name.clone(),
            target_name: target.name.clone(),
            isid: cfg.isid.0,
            chap: target.chap.clone(),
            offer: cfg.offer.clone(),
        })
    }

    /// The login's first request, ready to send.
    #[inline(never)]
    fn start_login<'a>(
        &self,
        steps: &mut (dyn StepRunner + Send),
        lc: &'a Option<LoginConfig>,
    ) -> Result<Exchange<'a>, AttemptError> {
        let Some(lc) = lc else {
            return Err(AttemptError::internal(STEP_NOT_RUN));
        };
        let attempt = Attempt {
            tsih: 0,
            ..self.flags.get(self.current).copied().unwrap_or_default()
        };
        let itt = 0x4000_0000 | (self.logins & 0xffff);
        let mut login = step(steps, || Login::new(lc, attempt, itt))
            .ok_or_else(|| AttemptError::internal(STEP_NOT_RUN))?
            .map_err(AttemptError::Login)?;
        let req = step(steps, || login.start())
            .ok_or_else(|| AttemptError::internal(STEP_NOT_RUN))?
            .map_err(AttemptError::Login)?;
        Ok(Exchange {
            login,
            phase: Phase::Emit(req),
            pos: 0,
        })
    }

    /// What a finished login exchange means: `Some` logged in (the transport is the session's
    /// now), `None` try again at once (redirected, or a login choice relearned), or the
    /// attempt's error. The transport is closed unless logged in.
    #[inline(never)]
    fn after_login(
        &mut self,
        result: Result<Step, AttemptError>,
        transport: &mut dyn Transport,
        steps: &mut (dyn StepRunner + Send),
        log: &dyn Log,
        target: &TargetConfig,
        tries: &mut Tries,
    ) -> Result<Option<Established>, AttemptError> {
        // The transport is the session's only after a login; closed here in one place.
        let est = match result {
            Ok(Step::Done(est)) => est,
            other => {
                transport.close();
                return self.retry_or_fail(other, steps, log, target, tries);
            }
        };
        self.logins = self.logins.saturating_add(1);
        Ok(Some(est))
    }

    /// [`DialState::after_login`] for every result but a login: `Ok(None)` to try again at
    /// once (redirected, or a login choice relearned), else the attempt's error.
    fn retry_or_fail(
        &mut self,
        result: Result<Step, AttemptError>,
        steps: &mut (dyn StepRunner + Send),
        log: &dyn Log,
        target: &TargetConfig,
        tries: &mut Tries,
    ) -> Result<Option<Established>, AttemptError> {
        match result {
            Ok(Step::Redirect { address, permanent }) => {
                tries.redirects = tries.redirects.saturating_add(1);
                if tries.redirects > self.cfg.max_redirects {
                    return Err(AttemptError::TooManyRedirects);
                }
                let nic = tries.portal.nic;
                let new = step(steps, || redirect_portal(&address, nic))
                    .unwrap_or_else(|| Err(AttemptError::internal(STEP_NOT_RUN)))?;
                log!(
                    log,
                    Level::Note,
                    "isboot: {} redirects {} to {}",
                    target.name,
                    if permanent {
                        "permanently"
                    } else {
                        "temporarily"
                    },
                    crate::ipfmt::Addr(&new.addr)
                );
                if permanent {
                    if let Some(t) = self.cfg.targets.get_mut(self.current) {
                        t.portal = new;
                    }
                }
                tries.portal = new;
                Ok(None)
            }
            Ok(Step::Send(_) | Step::Done(_)) => Err(AttemptError::Login(LoginError::Unexpected(
                "login ended early",
            ))),
            Err(AttemptError::Login(
                e @ (LoginError::ChapListRefused | LoginError::SecurityStageRequired),
            )) if tries.relearned < 2 => {
                tries.relearned = tries.relearned.saturating_add(1);
                log!(log, Level::Note, "isboot: {}", e);
                if let Some(f) = self.flags.get_mut(self.current) {
                    match e {
                        LoginError::ChapListRefused => f.chap_md5_only = true,
                        _ => f.security_first = true,
                    }
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

const STEP_NOT_RUN: &str = "a login step did not run";
const ROOM: &str = "login PDU beyond its buffer";

/// One login exchange on a fresh connection: requests out, responses in, until the login ends.
/// Polled by hand rather than written as an `async fn`: its `poll` is a function of its own,
/// which the session's (generic) future calls and the optimiser leaves out of line.
struct Exchange<'a> {
    login: Login<'a>,
    phase: Phase,
    /// Bytes written of the request, or read of the part being read.
    pos: usize,
}

/// Where the exchange is. Without digests during login, one PDU each way at a time.
enum Phase {
    /// The next request, to be encoded.
    Emit(LoginPdu),
    Write,
    Bhs,
    Ahs(HeaderInfo),
    Data(HeaderInfo),
    /// The exchange returned its result.
    Over,
}

/// The PDU codec for the login, as functions taken in the session's (generic) future. The
/// codec is `#[inline]` for the I/O path, so each crate that names it compiles its own copy:
/// named from `Exchange::poll` (this crate), the whole `Pdu` codec would be in the module
/// twice (`Pdu::parse` and, through `Header`'s vtables, every header's `emit`).
struct LoginCodec {
    emit: fn(&LoginPdu, &mut Vec<u8>) -> Result<(), pdu::Error>,
    /// `None` for a PDU of another kind (the exchange names it by its header's opcode).
    parse: fn(&[u8]) -> Result<Option<LoginResponse>, pdu::Error>,
}

#[inline]
#[cfg_attr(isboot_kernel, optimize(size))]
fn emit_login(req: &LoginPdu, out: &mut Vec<u8>) -> Result<(), pdu::Error> {
    pdu::emit_pdu(&req.header, &req.data, Digests::default(), out)
}

#[inline]
#[cfg_attr(isboot_kernel, optimize(size))]
fn parse_login(header: &[u8]) -> Result<Option<LoginResponse>, pdu::Error> {
    match Pdu::parse(header)? {
        Pdu::LoginResponse(r) => Ok(Some(r)),
        _ => Ok(None),
    }
}

impl Exchange<'_> {
    /// One place ends the exchange: each of `advance`'s results, written out as
    /// `self.phase = Phase::Over` at every return, was a drop of the old phase of its own.
    #[inline(never)]
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        codec: &LoginCodec,
        bufs: &mut LoginBufs,
        t: &mut dyn Transport,
        steps: &mut (dyn StepRunner + Send),
        rng: &mut dyn Random,
    ) -> Poll<Result<Step, AttemptError>> {
        let r = self.advance(cx, codec, bufs, t, steps, rng);
        if r.is_ready() {
            self.phase = Phase::Over;
        }
        r
    }

    /// Each turn first does the I/O the phase waits for (one call site for every phase,
    /// its error turned into the attempt's in one place), then the phase's own step.
    fn advance(
        &mut self,
        cx: &mut Context<'_>,
        codec: &LoginCodec,
        bufs: &mut LoginBufs,
        t: &mut dyn Transport,
        steps: &mut (dyn StepRunner + Send),
        rng: &mut dyn Random,
    ) -> Poll<Result<Step, AttemptError>> {
        let err = |e| Poll::Ready(Err(e));
        loop {
            let io = match &self.phase {
                Phase::Write => Some((&mut bufs.out, true)),
                Phase::Bhs | Phase::Ahs(_) => Some((&mut bufs.header, false)),
                Phase::Data(_) => Some((&mut bufs.data, false)),
                Phase::Emit(_) | Phase::Over => None,
            };
            if let Some((buf, write)) = io {
                match poll_io(cx, t, buf, write, &mut self.pos) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(Some(e))) => return err(AttemptError::Io(e)),
                    Poll::Ready(Err(None)) => {
                        return err(AttemptError::internal(TRANSPORT_OVERRAN))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            let (next, pos) = match &self.phase {
                Phase::Emit(req) => {
                    bufs.out.clear();
                    // A Login Request holds at most LOGIN_MAX_DATA bytes of text, so it fits
                    // the room reserved for it and emitting cannot allocate.
                    if req.data.len() > LOGIN_MAX_DATA as usize {
                        return err(AttemptError::internal("login request beyond its room"));
                    }
                    if let Err(e) = (codec.emit)(req, &mut bufs.out) {
                        return err(AttemptError::Pdu(e));
                    }
                    (Phase::Write, 0)
                }
                Phase::Write => {
                    if !mem::set_len_within(&mut bufs.header, BHS_LEN) {
                        return err(AttemptError::internal(ROOM));
                    }
                    (Phase::Bhs, 0)
                }
                Phase::Bhs => {
                    let info = match HeaderInfo::parse(&bufs.header)
                        .and_then(|i| i.check_data_len(LOGIN_MAX_DATA).map(|()| i))
                    {
                        Ok(info) => info,
                        Err(e) => return err(AttemptError::Pdu(e)),
                    };
                    if !mem::set_len_within(&mut bufs.header, info.header_len()) {
                        return err(AttemptError::internal(ROOM));
                    }
                    (Phase::Ahs(info), BHS_LEN)
                }
                Phase::Ahs(info) => {
                    if !mem::set_len_within(&mut bufs.data, info.padded_data_len()) {
                        return err(AttemptError::internal(ROOM));
                    }
                    (Phase::Data(*info), 0)
                }
                Phase::Data(info) => {
                    bufs.data.truncate(info.data_len as usize);
                    // Not the parsed PDU's opcode, a match over every kind of PDU (its jump
                    // table in the module for this one message): the header's, the same.
                    let resp = match (codec.parse)(&bufs.header) {
                        Ok(Some(r)) => r,
                        Ok(None) => return err(AttemptError::NotLoginResponse(info.opcode)),
                        Err(e) => return err(AttemptError::Pdu(e)),
                    };
                    let (login, data) = (&mut self.login, &bufs.data);
                    let step = step(steps, || {
                        login.handle(&resp, data, &mut |b: &mut [u8]| rng.fill(b))
                    });
                    match step {
                        Some(Ok(Step::Send(next))) => (Phase::Emit(next), 0),
                        Some(Ok(done)) => return Poll::Ready(Ok(done)),
                        Some(Err(e)) => return err(AttemptError::Login(e)),
                        None => return err(AttemptError::internal(STEP_NOT_RUN)),
                    }
                }
                Phase::Over => return err(AttemptError::internal("login exchange polled again")),
            };
            self.pos = pos;
            self.phase = next;
        }
    }
}

/// The portal a TargetAddress names: an IP literal (no name resolution in the kernel). Not
/// inlined into the closure that runs it: compiled there it was larger.
#[inline(never)]
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

/// Writes `buf` (`write`) or reads into it until it is full, from `*pos` on; `*pos` is how
/// much was written or read. The error is the transport's, or `None` when it reported more
/// bytes than it was given.
fn poll_io(
    cx: &mut Context<'_>,
    t: &mut dyn Transport,
    buf: &mut [u8],
    write: bool,
    pos: &mut usize,
) -> Poll<Result<(), Option<IoError>>> {
    while let Some(rest) = buf.get_mut(*pos..).filter(|r| !r.is_empty()) {
        let r = if write {
            t.poll_write(cx, rest)
        } else {
            t.poll_read(cx, rest)
        };
        match r {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(Some(IoError::Closed))),
            Poll::Ready(Ok(n)) if n <= rest.len() => *pos = pos.saturating_add(n),
            Poll::Ready(Ok(_)) => return Poll::Ready(Err(None)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Some(e))),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::{Attempt, LoginConfig};
    use crate::pdu::NopIn;
    use crate::text::Offer;
    use core::task::Waker;

    /// Takes what the exchange writes; hands it the bytes of `reply` to read.
    struct Scripted {
        reply: Vec<u8>,
        pos: usize,
    }

    impl Transport for Scripted {
        fn poll_read(
            &mut self,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<Result<usize, IoError>> {
            let rest = self.reply.get(self.pos..).unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            &mut self,
            cx: &mut Context<'_>,
            bufs: &[&[u8]],
        ) -> Poll<Result<usize, IoError>> {
            self.poll_write(cx, bufs.first().copied().unwrap_or_default())
        }
        fn close(&mut self) {}
    }

    struct Inline;
    impl StepRunner for Inline {
        fn run_step(&mut self, f: &mut dyn FnMut()) {
            f();
        }
    }

    struct Zeros;
    impl Random for Zeros {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }

    #[test]
    fn another_pdu_during_login_ends_the_attempt_naming_its_opcode() {
        let lc = Some(LoginConfig {
            initiator_name: String::from("iqn.2026-01.org.isboot:host"),
            target_name: String::from("iqn.2026-01.org.example:disk"),
            isid: [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a],
            chap: None,
            offer: Offer::default(),
        });
        let mut login = Login::new(lc.as_ref().unwrap(), Attempt::default(), 1).unwrap();
        let req = login.start().unwrap();
        let mut ex = Exchange {
            login,
            phase: Phase::Emit(req),
            pos: 0,
        };
        let mut reply = Vec::new();
        pdu::emit_pdu(&NopIn::default(), &[], Digests::default(), &mut reply).unwrap();
        let mut t = Scripted { reply, pos: 0 };
        let mut bufs = LoginBufs {
            out: Vec::with_capacity(LOGIN_PDU_MAX),
            header: Vec::with_capacity(BHS_LEN + MAX_AHS_LEN),
            data: Vec::with_capacity(LOGIN_DATA_MAX),
        };
        let codec = LoginCodec {
            emit: emit_login,
            parse: parse_login,
        };
        let mut cx = Context::from_waker(Waker::noop());
        let r = ex.poll(&mut cx, &codec, &mut bufs, &mut t, &mut Inline, &mut Zeros);
        let Poll::Ready(Err(e)) = r else {
            panic!("the exchange goes on after a NOP-In")
        };
        assert_eq!(alloc::format!("{e}"), "NopIn during login");
        assert!(matches!(ex.phase, Phase::Over), "the exchange is over");
    }
}
