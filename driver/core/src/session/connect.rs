// SPDX-License-Identifier: BSD-2-Clause
//! Opening a connection and logging in: the current target candidate, redirects, and the
//! login choices learned from a failure (security stage first, MD5 only), each retried at
//! once on the same attempt. The login itself is the sans-IO [`Login`]; this is its I/O.

use alloc::string::String;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::task::Poll;

use isboot_executor::Timer;

use super::{SessionConfig, TargetConfig, DEFAULT_PORT};
use crate::escape::Untrusted;
use crate::log;
use crate::login::{Attempt, Established, Login, LoginConfig, LoginError, Step, LOGIN_MAX_DATA};
use crate::mem::{self, NoMemory};
use crate::pdu::{self, Digests, HeaderInfo, Pdu, BHS_LEN, DIGEST_LEN, MAX_AHS_LEN};
use crate::port::{Connector, IoError, Level, Log, Portal, Random, Transport};
use crate::text::TargetAddress;

/// The part of the session that opens connections and logs in.
pub(super) struct Dialer<C, R, G> {
    log: G,
    cfg: SessionConfig,
    connector: C,
    rng: R,
    timer: Timer,
    /// Per-target login choices learned from failures (security stage first, MD5 only).
    flags: Vec<Attempt>,
    current: usize,
    logins: u32,
    /// The login exchange's PDUs, both ways, kept for every login of the session.
    bufs: LoginBufs,
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
        match self {
            AttemptError::Io(e) => write!(f, "{e}"),
            AttemptError::ConnectTimeout => f.write_str("connect timed out"),
            AttemptError::LoginTimeout => f.write_str("login timed out"),
            AttemptError::Login(e) => write!(f, "{e}"),
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
            cfg,
            connector,
            rng,
            timer,
            flags,
            current: 0,
            logins: 0,
            bufs,
        })
    }

    pub(super) fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Index into the configuration's targets of the current candidate.
    pub(super) fn current(&self) -> usize {
        self.current
    }

    /// Whether the last successful login was the session's first.
    pub(super) fn first_login(&self) -> bool {
        self.logins <= 1
    }

    /// Random jitter for the recovery policy.
    pub(super) fn jitter(&mut self) -> u32 {
        self.rng.next_u32()
    }

    pub(super) fn target_name(&self) -> &str {
        self.cfg
            .targets
            .get(self.current)
            .map_or("(none)", |t| t.name.as_str())
    }

    /// Moves on to the next candidate (after a failed attempt).
    pub(super) fn next_target(&mut self) {
        let n = self.cfg.targets.len().max(1);
        self.current = self.current.saturating_add(1).checked_rem(n).unwrap_or(0);
    }

    /// Connects and logs in to the current target, following redirects and retrying at once
    /// when the target taught us a login choice (security stage first, MD5 only).
    pub(super) async fn establish(&mut self) -> Result<(C::Transport, Established), AttemptError> {
        let (cfg, current) = (&self.cfg, self.current);
        let target = self
            .connector
            .login_step(|| cfg.targets.get(current).cloned());
        let Some(target) = target else {
            return Err(AttemptError::internal("no target at the current index"));
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
                    let nic = portal.nic;
                    let new = self
                        .connector
                        .login_step(|| redirect_portal(&address, nic))?;
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
        target: &TargetConfig,
    ) -> Result<Step, AttemptError> {
        let cfg = &self.cfg;
        let lc = self.connector.login_step(|| LoginConfig {
            initiator_name: cfg.initiator_name.clone(),
            target_name: target.name.clone(),
            isid: cfg.isid.0,
            chap: target.chap.clone(),
            offer: cfg.offer.clone(),
        });
        let attempt = Attempt {
            tsih: 0,
            ..self.flags.get(self.current).copied().unwrap_or_default()
        };
        let itt = 0x4000_0000 | (self.logins & 0xffff);
        let connector = &mut self.connector;
        let mut login = connector
            .login_step(|| Login::new(&lc, attempt, itt))
            .map_err(AttemptError::Login)?;
        let mut req = connector
            .login_step(|| login.start())
            .map_err(AttemptError::Login)?;
        let bufs = &mut self.bufs;
        loop {
            bufs.out.clear();
            // A Login Request holds at most LOGIN_MAX_DATA bytes of text, so it fits the room
            // reserved for it and emitting cannot allocate.
            if req.data.len() > LOGIN_MAX_DATA as usize {
                return Err(AttemptError::internal("login request beyond its room"));
            }
            pdu::emit_pdu(&req.header, &req.data, Digests::default(), &mut bufs.out)
                .map_err(AttemptError::Pdu)?;
            write_all(t, &bufs.out).await?;
            read_pdu(t, LOGIN_MAX_DATA, &mut bufs.header, &mut bufs.data).await?;
            let resp = match Pdu::parse(&bufs.header).map_err(AttemptError::Pdu)? {
                Pdu::LoginResponse(r) => r,
                other => return Err(AttemptError::NotLoginResponse(pdu::Header::opcode(&other))),
            };
            let rng = &mut self.rng;
            let data = &bufs.data;
            let step = connector
                .login_step(|| login.handle(&resp, data, &mut |b: &mut [u8]| rng.fill(b)))
                .map_err(AttemptError::Login)?;
            match step {
                Step::Send(next) => req = next,
                done => return Ok(done),
            }
        }
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

async fn write_all<T: Transport>(t: &mut T, mut buf: &[u8]) -> Result<(), AttemptError> {
    poll_fn(|cx| {
        while !buf.is_empty() {
            match t.poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(AttemptError::Io(IoError::Closed))),
                Poll::Ready(Ok(n)) => match buf.get(n..) {
                    Some(rest) => buf = rest,
                    None => return Poll::Ready(Err(AttemptError::internal(TRANSPORT_OVERRAN))),
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(AttemptError::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

async fn read_exact<T: Transport>(t: &mut T, buf: &mut [u8]) -> Result<(), AttemptError> {
    let mut have = 0;
    poll_fn(|cx| {
        while let Some(dst) = buf.get_mut(have..).filter(|d| !d.is_empty()) {
            match t.poll_read(cx, dst) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(AttemptError::Io(IoError::Closed))),
                Poll::Ready(Ok(n)) if n <= dst.len() => have = have.saturating_add(n),
                Poll::Ready(Ok(_)) => {
                    return Poll::Ready(Err(AttemptError::internal(TRANSPORT_OVERRAN)))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(AttemptError::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Reads one whole PDU without digests (login phase) into `header` (BHS+AHS) and `data` (the
/// data segment), within the room reserved in them for `max_data` bytes of data.
async fn read_pdu<T: Transport>(
    t: &mut T,
    max_data: u32,
    header: &mut Vec<u8>,
    data: &mut Vec<u8>,
) -> Result<(), AttemptError> {
    const ROOM: &str = "login PDU beyond its buffer";
    if !mem::set_len_within(header, BHS_LEN) {
        return Err(AttemptError::internal(ROOM));
    }
    read_exact(t, header).await?;
    let info = HeaderInfo::parse(header).map_err(AttemptError::Pdu)?;
    info.check_data_len(max_data).map_err(AttemptError::Pdu)?;
    if !mem::set_len_within(header, info.header_len()) {
        return Err(AttemptError::internal(ROOM));
    }
    if let Some(ahs) = header.get_mut(BHS_LEN..) {
        read_exact(t, ahs).await?;
    }
    if !mem::set_len_within(data, info.padded_data_len()) {
        return Err(AttemptError::internal(ROOM));
    }
    read_exact(t, data).await?;
    data.truncate(info.data_len as usize);
    Ok(())
}
