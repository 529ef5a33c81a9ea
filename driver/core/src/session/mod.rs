// SPDX-License-Identifier: BSD-2-Clause
//! The iSCSI session: login, full feature phase and recovery, as one task on the executor.
//!
//! # Using it from a platform
//! 1. Build a [`SessionConfig`]: the initiator name, an [`Isid`] drawn once per boot from the
//!    platform's [`Random`], and the ordered target candidates
//!    ([`SessionConfig::from_boot`] takes them from the iBFT's `BootConfig`).
//! 2. `let (handle, session) = Session::new(config, connector, events, random, log, timer)` with
//!    the platform's [`Connector`](crate::port::Connector), [`Events`](crate::port::Events) sink,
//!    [`Random`], [`Log`](crate::port::Log) (`Clone`) and the executor's
//!    [`Timer`](isboot_executor::Timer); spawn `session.run()` on the executor (the future is
//!    `Send`). It logs in (trying the candidates in turn), then serves requests until shut down,
//!    reconnecting by itself, and returns [`End`].
//! 3. Submit work through the [`Handle`] from any context (CAM's action routine, a test thread):
//!    [`Handle::submit`] queues a [`ScsiRequest`] and wakes the session,
//!    or gives the request back when the queue is full (CAM requeues it). [`Handle::abort`] and
//!    [`Handle::reset_lun`] queue task management.
//! 4. Completions arrive through [`Events::complete`](crate::port::Events::complete) on the
//!    polling context, exactly once per accepted request, with the buffer, SCSI status, sense
//!    and residual, or a [`TransportError`](crate::scsi::TransportError). Connection loss is not
//!    an error: requests are kept, the session reconnects and replays them.
//!    [`Events::state`](crate::port::Events::state) reports `Up` after every login (the kernel
//!    rescans then) and `Recovering` while reconnecting.
//! 5. Shut down with [`Handle::shutdown`]: requests not yet sent complete with `SessionClosed`,
//!    outstanding ones may finish, the session logs out, `run()` returns [`End::LoggedOut`].
//!    Await its task. It never reconnects and is bounded with a dead target (at most twice
//!    [`Timeouts::logout_timeout`] while connected, at once while not connected).
//! 6. A system going down that still needs the disk for its final sync bounds recovery with
//!    [`Handle::give_up_after`] (the kernel at `shutdown_pre_sync`), then logs out with
//!    [`Handle::shutdown`] once the sync is done (`shutdown_post_sync`). The session keeps
//!    serving while connected, but once the time has passed it stops reconnecting, fails what
//!    it holds with `SessionClosed` and `run()` returns [`End::GaveUp`]; a later `shutdown()` is
//!    then a no-op.
//!
//! [`Handle::status`] gives the state, counters, and the negotiated parameters of the last
//! login ([`Status::params`]) for sysctls and `isbootctl status`.
//!
//! # Layers
//! [`Engine`] is the full feature phase as a sans-IO state machine (transcript-tested without
//! sockets), [`crate::login::Login`] the login; the `driver` module runs both over the ports:
//! one receive path that reads Data-In straight into request buffers, one transmit path, the
//! engine's deadline as one timer, and recovery with capped backoff and jitter.
//!
//! ```text
//! let isid = Isid::random(&mut rng);                       // once per boot
//! let cfg = SessionConfig::from_boot(&boot_config, isid);
//! let (handle, session) = Session::new(cfg, connector, events, rng, log, executor.timer());
//! let task = executor.spawn(session.run());
//! handle.submit(ScsiRequest::read(tag, lun, cdb, len))?;   // any context; Err = requeue
//! // ... Events::complete(Completion { tag, data, result }) on the polling context ...
//! handle.shutdown();                                       // logout; then await `task`
//! ```
//!
//! # Memory
//! Bounded by configuration and negotiation, and allocated when the session is created
//! ([`Session::new`], fallible) or when a login succeeds (room for the negotiated
//! MaxOutstandingR2T): `max_tasks` request slots, an inbox of [`INBOX_LEN`] requests, a 64 KiB
//! read-ahead buffer, a receive scratch buffer for data segments that are not Data-In (8 KiB,
//! grown fallibly up to our MaxRecvDataSegmentLength if a target sends more), the transmit
//! batch (headers of up to 64 PDUs; data is sent from the requests' buffers), and the engine's
//! queues (see [`Engine`]). Request data lives in the requests' own buffers: Data-In is read
//! straight into them and Data-Out written straight from them. Once a session runs, serving
//! requests allocates nothing; a login allocates what the login exchange needs (fallibly).
#![cfg_attr(not(test), deny(clippy::disallowed_methods, clippy::disallowed_macros))]

mod connect;
mod driver;
mod engine;
mod recovery;
mod report;
pub(crate) mod rx;
mod table;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use isboot_executor::{Channel, Doorbell, Mutex, RawLock, TrySendError};

pub use driver::{End, Session};
pub use engine::{
    Disconnect, Engine, Event, LogoutOutcome, Phase, RxSink, Stats, SubmitError, Timeouts,
    Violation,
};
pub use recovery::Backoff;
pub use report::{Failure, LastError, LAST_ERROR_LEN};
pub use table::MAX_SLOTS;

use crate::chap::{ChapConfig, Credentials};
use crate::ibft::{BootConfig, ChapType};
use crate::lun::Lun;
use crate::port::{Portal, Random};
pub use crate::port::{State, TmfError};
use crate::scsi::ScsiRequest;
use crate::text::{Offer, Params};

/// Requests that can wait in the inbox between the platform and the session task.
pub const INBOX_LEN: usize = 64;
/// The iSCSI well-known port.
pub const DEFAULT_PORT: u16 = 3260;

/// The Initiator Session ID: random per boot (type "Random", RFC 7143 §10.12.5), the same for
/// every connection of the session so that a new login reinstates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isid(pub [u8; 6]);

impl Isid {
    /// T=10b (random), A=0, B and C random, D (qualifier) random.
    pub fn random(rng: &mut dyn Random) -> Isid {
        let mut b = [0u8; 6];
        rng.fill(&mut b);
        b[0] = 0x80;
        Isid(b)
    }
}

/// One target to log in to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    pub portal: Portal,
    pub name: String,
    pub chap: Option<ChapConfig>,
}

/// Everything a session needs to know.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub initiator_name: String,
    pub isid: Isid,
    /// Tried in order; after a failure the next one is tried.
    pub targets: Vec<TargetConfig>,
    pub offer: Offer,
    pub timeouts: Timeouts,
    /// Request slots (the queue depth the platform should announce).
    pub max_tasks: usize,
    pub connect_timeout: Duration,
    /// Bound on one whole login exchange.
    pub login_timeout: Duration,
    pub backoff: Backoff,
    /// Login redirects followed in a row before the attempt counts as failed.
    pub max_redirects: u32,
    /// The longest wait before reconnecting that a target's Time2Wait (Async Message, Logout
    /// Response) gets. RFC 7143 lets a target ask for up to an hour (the PDU field up to 18),
    /// which parks a root disk for that long; reconnecting earlier costs at most a refused
    /// login, after which the backoff paces the attempts. The kernel's tunable is
    /// `net.isboot.time2wait_max` (seconds).
    pub max_time2wait: Duration,
}

/// [`SessionConfig::max_time2wait`]'s default: a minute, the longest a root disk should
/// freeze for a wait the target merely asked for.
pub const DEFAULT_MAX_TIME2WAIT: Duration = Duration::from_secs(60);

impl SessionConfig {
    /// A configuration with our defaults for one target.
    pub fn new(initiator_name: String, isid: Isid, targets: Vec<TargetConfig>) -> Self {
        SessionConfig {
            initiator_name,
            isid,
            targets,
            offer: Offer::default(),
            timeouts: Timeouts::default(),
            max_tasks: 64,
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(15),
            backoff: Backoff::default(),
            max_redirects: 4,
            max_time2wait: DEFAULT_MAX_TIME2WAIT,
        }
    }

    /// The candidates of an iBFT boot configuration, in its order, with their CHAP settings.
    /// Allocates infallibly: built once, where the iBFT is read (module load, which may wait
    /// for memory), never from network input.
    #[expect(
        clippy::disallowed_methods,
        reason = "configuration from firmware, built where allocation may wait"
    )]
    // Not inlined into the module's boot job (its one caller there): 112 bytes less.
    #[inline(never)]
    pub fn from_boot(boot: &BootConfig, isid: Isid) -> Self {
        let targets = boot
            .candidates
            .iter()
            .filter_map(|c| {
                let ip: IpAddr = c.target.ip?;
                let port = if c.target.port == 0 {
                    DEFAULT_PORT
                } else {
                    c.target.port
                };
                if matches!(c.target.chap_type, ChapType::Unknown(_)) {
                    // An authentication type we do not know: refuse rather than guess.
                    return None;
                }
                let chap = match (c.target.chap_type, &c.target.chap_secret) {
                    (ChapType::Chap | ChapType::Mutual, Some(secret)) => {
                        let initiator = Credentials {
                            name: c
                                .target
                                .chap_name
                                .clone()
                                .unwrap_or_else(|| boot.initiator_name.clone()),
                            secret: secret.clone(),
                        };
                        let target = match (c.target.chap_type, &c.target.reverse_chap_secret) {
                            (ChapType::Mutual, Some(rs)) => Some(Credentials {
                                name: c
                                    .target
                                    .reverse_chap_name
                                    .clone()
                                    .or_else(|| c.target.name.clone())
                                    .unwrap_or_default(),
                                secret: rs.clone(),
                            }),
                            _ => None,
                        };
                        Some(ChapConfig::new(initiator, target))
                    }
                    _ => None,
                };
                Some(TargetConfig {
                    portal: Portal {
                        addr: SocketAddr::new(ip, port),
                        nic: c.nic.index,
                    },
                    name: c.target.name.clone()?,
                    chap,
                })
            })
            .collect();
        SessionConfig::new(boot.initiator_name.clone(), isid, targets)
    }
}

/// What travels from the platform to the session task.
pub(crate) enum Request<B> {
    Scsi(ScsiRequest<B>),
    Abort(u64),
    ResetLun { lun: Lun, tag: u64 },
}

/// Counters and state for the platform (sysctls, `isbootctl status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub stats: Stats,
    /// Successful logins (the first one included).
    pub logins: u64,
    /// Connections lost or dropped after a login.
    pub disconnects: u64,
    /// Index into `SessionConfig::targets` of the current (or last) target.
    pub target: usize,
    /// The operational values of the current (or last) login, as the full feature phase obeys
    /// them: MaxRecvDataSegmentLength both ways, MaxBurstLength, FirstBurstLength, InitialR2T,
    /// ImmediateData, MaxOutstandingR2T, digests, DefaultTime2Wait/Retain. `None` before the
    /// first login. Platforms show these (sysctls, `isbootctl status`) instead of parsing the
    /// "negotiated" log line.
    pub params: Option<Params>,
    /// Commands the target's window admits now (MaxCmdSN - ExpCmdSN + 1; 0 when closed), as of
    /// the last time the session ran.
    pub cmd_window: u32,
    /// Why the last attempt failed or the last connection was lost (`None` before the first
    /// failure): the kernel's `net.isboot.session.last_error`.
    pub last_error: Option<LastError>,
}

/// State shared between the platform's [`Handle`]s and the session task.
pub(crate) struct Shared<L: RawLock, B> {
    pub(crate) inbox: Channel<L, Request<B>, INBOX_LEN>,
    pub(crate) shutdown: Doorbell,
    pub(crate) shutdown_requested: AtomicBool,
    /// A [`Handle::give_up_after`] the session has not adopted yet.
    pub(crate) give_up_after: Mutex<L, Option<Duration>>,
    pub(crate) status: Mutex<L, Status>,
}

impl<L: RawLock, B> fmt::Debug for Shared<L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The platform's side of a session: cheap to clone, usable from any context.
pub struct Handle<L: RawLock, B = Vec<u8>> {
    shared: Arc<Shared<L, B>>,
}

impl<L: RawLock, B> Clone for Handle<L, B> {
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl<L: RawLock, B> fmt::Debug for Handle<L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("status", &self.status())
            .finish()
    }
}

impl<L: RawLock, B> Handle<L, B> {
    /// Queues a request and wakes the session; gives it back when the inbox is full or the
    /// session is shutting down.
    pub fn submit(&self, req: ScsiRequest<B>) -> Result<(), ScsiRequest<B>> {
        if self.shared.shutdown_requested.load(Ordering::Acquire) {
            return Err(req);
        }
        match self.shared.inbox.try_send(Request::Scsi(req)) {
            Ok(()) => Ok(()),
            Err(e) => match e.into_inner() {
                Request::Scsi(r) => Err(r),
                // try_send hands back exactly what it was given: a Scsi request. There is no
                // request left to give back here; debug builds (the tests) stop.
                Request::Abort(_) | Request::ResetLun { .. } => {
                    debug_assert!(false, "internal error: try_send changed the request");
                    Ok(())
                }
            },
        }
    }

    /// Asks the session to abort the request submitted with `tag`. False when the request could
    /// not be queued: the inbox is full (try again later) or the session has ended (then every
    /// request has completed or will, and retrying is pointless).
    pub fn abort(&self, tag: u64) -> bool {
        self.send(Request::Abort(tag))
    }

    /// Asks for a LOGICAL UNIT RESET; the outcome comes through
    /// [`Events::reset_done`](crate::port::Events::reset_done) with `tag`. False when the inbox
    /// is full (try again later) or the session has ended (nothing to reset any more).
    pub fn reset_lun(&self, lun: Lun, tag: u64) -> bool {
        self.send(Request::ResetLun { lun, tag })
    }

    fn send(&self, r: Request<B>) -> bool {
        !matches!(
            self.shared.inbox.try_send(r),
            Err(TrySendError::Full(_) | TrySendError::Closed(_))
        )
    }

    /// Bounds recovery from now on, for a system that is going down but still needs its disk
    /// (the kernel calls it at `shutdown_pre_sync`, before the final sync, and
    /// [`Handle::shutdown`] after it). The session goes on serving while connected, so the sync
    /// reaches a live target. Once `d` has passed, it no longer recovers: if it is not in full
    /// feature phase at that instant (reconnecting, or still logging in), or loses its
    /// connection at any later time, every request it holds completes with
    /// [`TransportError::SessionClosed`](crate::scsi::TransportError::SessionClosed), later
    /// submissions are refused, and `run()` returns [`End::GaveUp`]. A connection that died
    /// silently is noticed by the keepalive, at most `nop_interval + nop_timeout` (see
    /// [`Timeouts`]) after the target's last PDU. Calling it again replaces the deadline,
    /// counting from the new call.
    pub fn give_up_after(&self, d: Duration) {
        self.shared.give_up_after.lock(|g| *g = Some(d));
        self.shared.shutdown.ring();
    }

    /// Starts the orderly shutdown; `run()` returns [`End::LoggedOut`] when it is done. It
    /// never reconnects, and needs no live target to finish:
    /// - not connected (reconnecting, logging in, or waiting between attempts): it ends at the
    ///   session's next poll; every held request completes with `SessionClosed`.
    /// - connected: requests not yet sent complete with `SessionClosed` at once; the outstanding
    ///   ones may finish for up to [`Timeouts::logout_timeout`], then the Logout is sent (at once
    ///   when none is outstanding) and its answer awaited for another `logout_timeout`. A
    ///   Logout Response with any code, its timeout, the connection closing or breaking, or a
    ///   keepalive timeout ends the session; whatever is still held completes with
    ///   `SessionClosed`. So with the defaults a dead target holds a shutdown for at most
    ///   2 × `logout_timeout` (20 s).
    ///
    /// Submissions are refused from this call on (`submit` gives the request back).
    pub fn shutdown(&self) {
        self.shared
            .shutdown_requested
            .store(true, Ordering::Release);
        self.shared.shutdown.ring();
    }

    /// State and counters.
    pub fn status(&self) -> Status {
        self.shared.status.lock(|s| *s)
    }
}
