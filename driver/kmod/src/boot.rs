// SPDX-License-Identifier: BSD-2-Clause
//! The boot sequence and its teardown: from the iBFT's boot pair to a `da` disk CAM can mount
//! root from, and back.
//!
//! # Start ([`start`], module load, thread context)
//! 1. `root_mount_hold("isboot")`: the kernel waits for us before mounting root.
//! 2. The executor's home: a taskqueue thread, its callout and the executor ([`crate::exec`]).
//! 3. A one-shot job on that thread brings the boot NIC up ([`crate::net`]; bounded waits) and
//!    publishes `net.isboot.nic`, then spawns the tasks: the session (login, full feature phase,
//!    recovery, all in the core), the CAM pump (CAM requests into the session) and the root
//!    watcher.
//! 4. When the session first reaches full feature phase, the SIM is attached and CAM scans the
//!    bus ([`crate::cam`]). A reconnect does not rescan, as iscsi(4) does not: a target that
//!    answers REPORT LUNS before its LUN map is back would make CAM's probe drop the boot LUN
//!    (scsi_xpt.c probe_purge_old) under the mounted root, and a target whose LUNs really
//!    changed says so with a REPORTED LUNS DATA HAS CHANGED unit attention, on which CAM
//!    rescans by itself.
//! 5. The root watcher releases the root mount hold once a `da` disk sits on the boot LUN
//!    (published as `net.isboot.device`), or after `net.isboot.root_wait` with a message saying
//!    why root may not be found, or as soon as the session gives up.
//!
//! # Teardown ([`stop`]; the one order every exit path follows)
//! 1. Stop new requests: the SIM answers `CAM_DEV_NOT_THERE` and its request channel closes.
//! 2. Log out: the session is asked to log out and given [`LOGOUT_WAIT`] to finish. Logging out
//!    needs the socket, its upcalls and the executor, so it comes before they go.
//! 3. Clear upcalls and close the socket: every task is cancelled and the executor is polled
//!    until all futures are dropped; dropping the session's transport clears the upcalls under
//!    the sockbuf locks and closes the socket, so no upcall can pend the executor afterwards.
//! 4. Drain the callout, let the running poll finish, drain and free the taskqueue
//!    ([`crate::exec::Host::shutdown`]).
//! 5. Deregister from CAM: CCBs still filed complete with `CAM_DEV_NOT_THERE`, the device is
//!    announced lost, bus and SIM are freed.
//! 6. Free: the executor, the NIC references, and the root mount hold if still held.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use isboot_core::bootcfg::tunables::Timeouts;
use isboot_core::ibft::BootConfig;
use isboot_core::port::{Events, Level, Log, Random};
use isboot_core::scsi::{Completion, ScsiRequest};
use isboot_core::session::{End, Handle, Isid, LastError, Session, SessionConfig, State, TmfError};
use isboot_core::text::DigestOffer;
use isboot_executor::{Executor, JoinHandle, Mutex};
use isboot_kmod_logic::bridge;
use isboot_kmod_logic::cam::{self as logic, status, TmfKind};
use isboot_kmod_logic::lun as cam_lun;

use crate::bindings as sys;
use crate::cam::{fail_request, CamRequest, CcbData, CcbRef, Pending, Sim, SimShared};
use crate::exec::{now_ns, pause_ms, Host, KSpin, Pender, PollFn, Polled};
use crate::net::{self, BootNic};
use crate::sock::KConnector;

/// Longest time a logout may take at unload or shutdown.
pub const LOGOUT_WAIT: Duration = Duration::from_secs(10);
/// How long a session may still recover once the system is going down (from
/// `shutdown_pre_sync`): a reconnect that succeeds within it lets the final sync reach the disk;
/// past it, a session that is not in full feature phase fails what it holds and never
/// reconnects, so a dead target cannot hold the reboot. About half of `bufshutdown`'s own
/// patience with busy buffers (~19 s), so the sync's writes either land or fail before it gives
/// up on them.
pub const SHUTDOWN_RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// Longest time teardown waits for cancelled tasks to drop their futures.
const CANCEL_WAIT_MS: u32 = 5_000;

type Exec = Executor<KSpin, Pender>;
type KSession = Session<KSpin, KConnector, KEvents, KRandom, KLog>;

/// A `root_mount_hold` token, released exactly once.
struct RootHold(NonNull<sys::root_hold_token>);

// SAFETY: the token may be released from any thread.
unsafe impl Send for RootHold {}

impl RootHold {
    #[optimize(size)]
    fn take() -> Option<RootHold> {
        // SAFETY: static identifier. kern/vfs_mountroot.c allocates the token M_WAITOK and
        // never returns NULL (we are in MOD_LOAD, which may sleep); the Option only keeps a
        // NULL from ever reaching root_mount_rel.
        NonNull::new(unsafe { sys::root_mount_hold(c"isboot".as_ptr()) }).map(RootHold)
    }
}

impl Drop for RootHold {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: the token came from `root_mount_hold` and is released once (we are dropped
        // once).
        unsafe { sys::root_mount_rel(self.0.as_ptr()) };
    }
}

/// What the tasks and the teardown share.
struct Ctx {
    exec: &'static Exec,
    cfg: BootConfig,
    /// `net.isboot.*` timeouts, bounded.
    timeouts: Timeouts,
    /// `net.isboot.digests`: what to offer for HeaderDigest and DataDigest.
    digests: DigestOffer,
    /// The session's handle, once the session exists.
    handle: Mutex<KSpin, Option<Handle<KSpin, CcbData>>>,
    sim_shared: Arc<SimShared>,
    /// The attached SIM. Callers clone the `Arc` out and call CAM without the spin lock held.
    sim: Mutex<KSpin, Option<Arc<Sim>>>,
    pending: Mutex<KSpin, Pending>,
    root: Mutex<KSpin, Option<RootHold>>,
    nics: Mutex<KSpin, Vec<BootNic>>,
    tasks: Mutex<KSpin, Vec<JoinHandle<'static, ()>>>,
    /// Set once the session is in full feature phase for the first time.
    up_once: AtomicBool,
    /// Set when the session closed for good.
    closed: AtomicBool,
    /// Set by `stop`/`shutdown`: the session should log out.
    logout: AtomicBool,
    /// Set by [`prepare_shutdown`]: the system is going down, recovery is bounded.
    going_down: AtomicBool,
    /// CAM queue depth: the session's request slots.
    depth: AtomicU32,
}

impl fmt::Debug for Ctx {
    #[optimize(size)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("up_once", &self.up_once.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The running boot session, owned by the module.
pub struct BootHandle {
    host: Option<Host>,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for BootHandle {
    #[optimize(size)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootHandle").finish_non_exhaustive()
    }
}

/// Starts booting from `cfg`'s boot pair with the session's `timeouts` and digest offer.
/// Returns quickly; the work runs on our taskqueue thread. Errors are `errno` values for the
/// module's load status.
///
/// `cfg` is taken, not cloned: MOD_LOAD has no use for it afterwards, and `BootConfig`'s
/// derived `Clone` (candidates, names, secrets) was ~3.2 KiB of module code.
#[optimize(size)]
#[inline(never)]
pub fn start(cfg: BootConfig, timeouts: Timeouts, digests: DigestOffer) -> Result<BootHandle, i32> {
    if cfg.boot().is_none() {
        crate::klog!(0, "no usable boot target in the {}", cfg.source);
        return Err(sys::ENXIO as i32);
    }
    let root = RootHold::take();
    let (host, exec) = Host::start(c"isboot", |pender| {
        let exec: &'static Exec = Box::leak(Box::new(Executor::new(pender)));
        let poll: PollFn = Box::new(move |now| {
            exec.on_tick(isboot_executor::Instant::from_nanos(now));
            let again = exec.poll();
            Polled {
                again,
                deadline: exec.next_deadline().map(|d| d.as_nanos()),
            }
        });
        (poll, exec)
    })
    .inspect_err(|e| crate::klog!(0, "cannot start the isboot taskqueue (error {})", *e))?;
    // SAFETY: reads a kernel variable.
    let maxphys: u64 = unsafe { sys::isboot_maxphys() };
    let ctx = Arc::new(Ctx {
        exec,
        cfg,
        timeouts,
        digests,
        handle: Mutex::new(None),
        sim_shared: SimShared::new(logic::path_inq(maxphys, 0)),
        sim: Mutex::new(None),
        pending: Mutex::new(crate::cam::pending_table()),
        root: Mutex::new(root),
        nics: Mutex::new(Vec::new()),
        tasks: Mutex::new(Vec::new()),
        up_once: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        logout: AtomicBool::new(false),
        going_down: AtomicBool::new(false),
        depth: AtomicU32::new(crate::cam::MAX_TAGS),
    });
    let job_ctx = ctx.clone();
    // The boot job runs on the taskqueue thread, outside the executor and holding no lock: it
    // may sleep, so its allocations (NIC setup, the session's memory, the tasks) wait for
    // memory rather than fail.
    let job = move || crate::kalloc::sleepable(|| bring_up(job_ctx));
    if host.run_job(Box::new(job)).is_err() {
        // Cannot happen on a fresh host; the handle still goes back so `stop` cleans up.
        crate::klog!(0, "the boot job could not be queued");
    }
    Ok(BootHandle {
        host: Some(host),
        ctx,
    })
}

/// The boot job: NIC, then the tasks. Not inlined into the job's closure, which is built for
/// speed (closures do not inherit `#[optimize]`).
#[optimize(size)]
#[inline(never)]
fn bring_up(ctx: Arc<Ctx>) {
    if ctx.logout.load(Ordering::Acquire) {
        return;
    }
    // Every candidate's NIC is brought up (each once) and every candidate's target made
    // reachable, so the session's failover to an alternate pair finds a working path. Only the
    // boot pair's failure is reported loudly; alternates are best effort.
    let mut nics: Vec<BootNic> = Vec::new();
    for (i, cand) in ctx.cfg.candidates.iter().enumerate() {
        let Some(target_ip) = cand.target.ip else {
            continue;
        };
        let level = if i == 0 { 0 } else { 1 };
        let done = match nics.iter_mut().find(|n| n.index() == cand.nic.index) {
            Some(nic) => nic.reach(&cand.nic, target_ip),
            None => net::bring_up(&cand.nic, cand.ifname.as_deref(), target_ip)
                .map(|nic| nics.push(nic)),
        };
        if let Err(e) = done {
            crate::klog!(level, "network setup for target {} failed: {}", i, e);
            if i == 0 {
                crate::sysctl::stats().set_last_error("boot NIC setup failed");
            }
        }
    }
    let Some(first) = nics.first() else {
        give_up(&ctx, "no network to any boot target");
        return;
    };
    crate::sysctl::set_nic(first.name());
    ctx.sim_shared.set_link_speed(first.baudrate());
    crate::klog!(0, "boot NIC {} configured", first.name());
    drop(ctx.nics.lock(|n| core::mem::replace(n, nics)));
    let mut rng = KRandom;
    let isid = Isid::random(&mut rng);
    let mut scfg = SessionConfig::from_boot(&ctx.cfg, isid);
    ctx.timeouts.apply(&mut scfg);
    scfg.offer.set_digests(ctx.digests);
    if scfg.targets.is_empty() {
        give_up(
            &ctx,
            "no boot target the session can use (address, name or CHAP type)",
        );
        return;
    }
    // The SIM's queue depth is the session's request slots; the session itself keeps commands
    // beyond the target's CmdSN window waiting, so CAM never needs to know the window.
    scfg.max_tasks = scfg.max_tasks.min(crate::cam::MAX_TAGS as usize);
    ctx.depth.store(scfg.max_tasks as u32, Ordering::Relaxed);
    let events = KEvents { ctx: ctx.clone() };
    // IPv6 link-local targets need their zone: the index of the interface of their NIC.
    let zones = ctx.nics.lock(|n| {
        let mut z = [(0u8, 0u32); crate::sock::MAX_ZONES];
        for (slot, nic) in z.iter_mut().zip(n.iter()) {
            *slot = (nic.index(), nic.if_index());
        }
        z
    });
    let connector = KConnector::new(zones);
    let handles = start_session(&ctx, scfg, connector, events);
    // Built outside the spin lock (no allocation under it). If `stop` began meanwhile it has
    // already emptied the list: then the handles are refused here and dropped, which cancels
    // the tasks before `stop` drops the executor (it waits for this job first).
    let handles: Vec<JoinHandle<'static, ()>> = handles.into_iter().collect();
    let refused = ctx.tasks.lock(|t| {
        if ctx.logout.load(Ordering::Acquire) {
            Some(handles)
        } else {
            *t = handles;
            None
        }
    });
    drop(refused);
}

/// Creates the session, publishes its handle and spawns the tasks. Not inlined: the session
/// (about 1.6 KiB until its task holds it) stays out of the boot job's frame.
#[optimize(size)]
#[inline(never)]
fn start_session(
    ctx: &Arc<Ctx>,
    scfg: SessionConfig,
    connector: KConnector,
    events: KEvents,
) -> [JoinHandle<'static, ()>; 3] {
    let exec = ctx.exec;
    // The session may fail over to an alternate pair: its LUN counts as the boot disk too.
    let luns: Vec<u64> = ctx
        .cfg
        .candidates
        .iter()
        .map(|c| cam_lun::to_cam(c.target.lun))
        .collect();
    let (handle, session): (Handle<KSpin, CcbData>, KSession) =
        Session::new(scfg, connector, events, KRandom, KLog, exec.timer());
    let bound = handle.clone();
    ctx.handle.lock(|h| *h = Some(handle));
    // Shutdown may have begun while the NIC came up: `prepare_shutdown` then found no handle.
    // It sets `going_down` before reading the handle and we publish the handle before reading
    // `going_down`, each side with a SeqCst fence between its write and its read, so at least
    // one of us sees the other's write and bounds the session.
    fence(Ordering::SeqCst);
    if ctx.going_down.load(Ordering::SeqCst) {
        bound.give_up_after(SHUTDOWN_RECOVERY_WAIT);
    }
    drop(bound);
    [
        // Made in the task's memory: the session's future is too large for a kernel stack.
        exec.spawn_with(|| session_task(ctx.clone(), session)),
        exec.spawn(cam_pump(ctx.clone())),
        exec.spawn(root_watcher(ctx.clone(), luns)),
    ]
}

/// Runs the session until it logs out or gives up.
async fn session_task(ctx: Arc<Ctx>, session: KSession) {
    match session.run().await {
        End::LoggedOut => crate::klog!(1, "session logged out"),
        End::GaveUp => {
            crate::klog!(0, "session gave up reconnecting; the boot disk is gone");
            crate::sysctl::stats().set_last_error("session gave up");
        }
    }
    ctx.closed.store(true, Ordering::Release);
}

fn handle(ctx: &Ctx) -> Option<Handle<KSpin, CcbData>> {
    ctx.handle.lock(|h| h.clone())
}

/// Hands `req` to the session; on refusal (inbox full, shutting down) the request is dropped
/// and its tag returned.
fn session_submit(ctx: &Ctx, req: ScsiRequest<CcbData>) -> Result<(), u64> {
    let tag = req.tag;
    match handle(ctx) {
        Some(h) => h.submit(req).map_err(|_| tag),
        None => Err(tag),
    }
}

fn session_abort(ctx: &Ctx, tag: u64) -> bool {
    handle(ctx).is_some_and(|h| h.abort(tag))
}

// Never inlined into cam_pump: a LUN reset is rare.
#[optimize(size)]
#[inline(never)]
fn session_reset(ctx: &Ctx, lun: isboot_core::lun::Lun, tag: u64) {
    let queued = handle(ctx).is_some_and(|h| h.reset_lun(lun, tag));
    if !queued {
        if let Some(ccb) = ctx.pending.lock(|p| p.take(tag)) {
            ccb.complete_status(status::RESRC_UNAVAIL);
        }
    }
}

#[optimize(size)]
fn session_logout(ctx: &Ctx) {
    match handle(ctx) {
        Some(h) => h.shutdown(),
        // No session yet (the NIC job is still running or failed): nothing to log out of.
        None => ctx.closed.store(true, Ordering::Release),
    }
}

/// Releases the root hold with a message: root mounting goes on without us.
// Never inlined into the session's state reports and the root watcher (built for speed).
#[optimize(size)]
#[inline(never)]
fn give_up(ctx: &Ctx, why: &str) {
    crate::klog!(0, "{}; not holding root mount any longer", why);
    drop(ctx.root.lock(Option::take));
}

/// Waits until the boot disk is attached (on one of `luns`, CAM's LUN ids), the session gave
/// up, or `net.isboot.root_wait` passed.
async fn root_watcher(ctx: Arc<Ctx>, luns: Vec<u64>) {
    let timer = ctx.exec.timer();
    let deadline = timer
        .now()
        .saturating_add(Duration::from_secs(u64::from(ctx.timeouts.root_wait)));
    while !root_settled(&ctx, &luns, deadline) {
        timer.sleep(Duration::from_millis(100)).await;
    }
}

/// One look of the root watcher: whether it is done (the hold released or given up).
/// Not inlined into the watcher's future, which async code builds at opt-level 2.
#[optimize(size)]
#[inline(never)]
fn root_settled(ctx: &Ctx, luns: &[u64], deadline: isboot_executor::Instant) -> bool {
    if ctx.closed.load(Ordering::Acquire) {
        give_up(ctx, "the iSCSI session ended before the boot disk appeared");
        return true;
    }
    let unit = sim_of(ctx).and_then(|s| luns.iter().find_map(|&l| s.disk_unit(l)));
    if let Some(unit) = unit {
        let mut name = isboot_kmod_logic::linebuf::LineBuf::<16>::new();
        // LineBuf's write never fails.
        let _ = core::fmt::Write::write_fmt(&mut name, format_args!("da{unit}"));
        crate::sysctl::set_device(name.as_str());
        crate::klog!(0, "boot disk attached as {}", name.as_str());
        drop(ctx.root.lock(Option::take));
        return true;
    }
    if ctx.exec.now() >= deadline {
        crate::klog!(
            0,
            "no disk on the boot LUN after {} s (check the target's LUN mapping and ACLs); root may not be found",
            ctx.timeouts.root_wait
        );
        drop(ctx.root.lock(Option::take));
        return true;
    }
    false
}

/// Takes CAM's requests and hands them to the session.
async fn cam_pump(ctx: Arc<Ctx>) {
    while let Some(req) = ctx.sim_shared.next().await {
        match req {
            CamRequest::Io(ccb) => submit_io(&ctx, ccb),
            CamRequest::Abort { target } => {
                // The XPT_ABORT CCB was answered in the action routine (an immediate CCB). A
                // target no longer filed here completed already (or never reached the session):
                // nothing to abort.
                let tag = ctx.pending.lock(|p| p.find(|c| c.is(target)));
                if let Some(tag) = tag {
                    if !session_abort(&ctx, tag) {
                        crate::klog!(1, "abort of tag {:#x} not queued: session inbox full", tag);
                    }
                }
            }
            CamRequest::ResetDev(ccb) => {
                let lun = cam_lun::from_cam(ccb.lun());
                match ctx.pending.lock(|p| p.insert(ccb)) {
                    Ok(tag) => session_reset(&ctx, lun, tag),
                    Err(ccb) => ccb.complete_status(status::RESRC_UNAVAIL),
                }
            }
        }
    }
}

/// Hands an `XPT_SCSI_IO` CCB to the session, its own buffer as the request's data: nothing is
/// allocated, cleared or copied for it.
fn submit_io(ctx: &Ctx, ccb: CcbRef) {
    let maxio = ctx.sim_shared.maxio();
    let made = match ccb.command(maxio) {
        Err(refusal) => Err(refusal.cam_status()),
        Ok(cmd) => bridge::request(&cmd, 0, ccb.data(&cmd)).map_err(|r| r.cam_status()),
    };
    let mut req = match made {
        Ok(req) => req,
        Err(st) => {
            ccb.complete_status(st);
            return;
        }
    };
    // INVARIANT (CcbData): from here the CCB waits in the pending table until the session's
    // completion for this request takes it out.
    let tag = match ctx.pending.lock(|p| p.insert(ccb)) {
        Ok(tag) => tag,
        Err(ccb) => {
            // `req` (its view of the buffer) is not used again: the CCB is ours to complete.
            ccb.complete_status(status::REQUEUE_REQ);
            return;
        }
    };
    req.tag = tag;
    if let Some(t) = ctx.timeouts.command_timeout() {
        // net.isboot.command_timeout replaces the timeout CAM set (da: 60 s by default).
        req.timeout = Some(t);
    }
    if let Err(tag) = session_submit(ctx, req) {
        // The request (and its view of the buffer) came back and is gone: the CCB is ours
        // to complete. A full inbox clears soon: CAM retries. A session that is over never
        // comes back, and CAM retries CAM_REQUEUE_REQ without limit, so it must hear that the
        // device is gone (else da's shutdown flush would loop forever).
        let st = if ctx.closed.load(Ordering::Acquire) || ctx.logout.load(Ordering::Acquire) {
            status::DEV_NOT_THERE
        } else {
            status::REQUEUE_REQ
        };
        if let Some(ccb) = ctx.pending.lock(|p| p.take(tag)) {
            ccb.complete_status(st);
        }
    }
}

/// The session's reports, delivered on the taskqueue thread.
#[derive(Debug)]
struct KEvents {
    ctx: Arc<Ctx>,
}

impl Events for KEvents {
    type Buf = CcbData;

    fn complete(&mut self, c: Completion<CcbData>) {
        let Some(ccb) = self.ctx.pending.lock(|p| p.take(c.tag)) else {
            crate::klog!(2, "completion for unknown tag {:#x} ignored", c.tag);
            return;
        };
        let stats = crate::sysctl::stats();
        stats.add_commands(1);
        // Data-In went straight into the CCB's buffer: what arrived is `transferred`.
        if let Ok(r) = &c.result {
            if ccb.is_write() {
                stats.add_bytes_out(u64::from(r.transferred));
            } else {
                stats.add_bytes_in(u64::from(r.transferred));
            }
        }
        ccb.complete_io(&bridge::finish(&c));
    }

    fn reset_done(&mut self, tag: u64, result: Result<(), TmfError>) {
        let Some(ccb) = self.ctx.pending.lock(|p| p.take(tag)) else {
            return;
        };
        let response = match result {
            Ok(()) => Some(0),
            Err(TmfError::Refused(code)) => Some(code),
            Err(TmfError::NotConnected | TmfError::ConnectionLost) => None,
        };
        ccb.complete_status(logic::tmf_status(TmfKind::LunReset, response));
    }

    #[optimize(size)]
    fn error(&mut self, error: &LastError) {
        // Escaped and bounded by the core (a sysctl string); the same line the console got.
        crate::sysctl::stats().set_last_error(error.text.as_str());
    }

    #[optimize(size)]
    fn state(&mut self, state: State) {
        let stats = crate::sysctl::stats();
        match state {
            State::LoggingIn => stats.set_state("logging in"),
            State::Up => {
                stats.set_state("up");
                // A failure after this one is news again, whatever the console limit saw.
                crate::log::forget_repeats();
                if self.ctx.up_once.swap(true, Ordering::AcqRel) {
                    // No bus rescan: see the module documentation, step 4.
                    crate::klog!(0, "session back up");
                } else {
                    attach_sim(&self.ctx);
                }
            }
            State::Recovering => {
                stats.set_state("recovering");
                stats.inc_reconnects();
            }
            State::Closed => {
                stats.set_state("closed");
                self.ctx.closed.store(true, Ordering::Release);
            }
        }
    }
}

/// The attached SIM, if any (cloned out so CAM is never called under the spin lock).
fn sim_of(ctx: &Ctx) -> Option<Arc<Sim>> {
    ctx.sim.lock(|s| s.clone())
}

#[optimize(size)]
fn attach_sim(ctx: &Ctx) {
    let depth = ctx.depth.load(Ordering::Relaxed);
    // One boot session, so one SIM: unit 0.
    match Sim::attach(ctx.sim_shared.clone(), depth, 0) {
        Ok(sim) => {
            crate::klog!(1, "CAM bus {} attached", sim.path_id());
            // Once, at the first login, on the taskqueue thread between polls, holding no lock:
            // this allocation may wait for memory.
            let sim = crate::kalloc::sleepable(|| Arc::new(sim));
            ctx.sim.lock(|s| *s = Some(sim));
        }
        Err(e) => {
            crate::klog!(0, "attaching the CAM SIM failed ({})", e);
            give_up(ctx, "no CAM bus for the boot disk");
        }
    }
}

/// `printf` gated by `net.isboot.debug`, each of the session's levels at the module's level
/// for it (its notes are milestones, printed by default).
#[derive(Clone, Copy, Debug)]
struct KLog;

impl Log for KLog {
    fn enabled(&self, level: Level) -> bool {
        crate::log::enabled(crate::log::session_level(level))
    }

    #[optimize(size)]
    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        // The core's messages name the driver ("isboot: ...") for the host's logs; the
        // console line gets that prefix from isboot_log already.
        let mut line = isboot_kmod_logic::linebuf::LineBuf::<256>::new();
        // LineBuf's write never fails.
        let _ = fmt::Write::write_fmt(&mut line, args);
        let text = line.as_str();
        crate::klog!(
            crate::log::session_level(level),
            "{}",
            text.strip_prefix("isboot: ").unwrap_or(text)
        );
    }
}

/// `arc4random_buf`.
#[derive(Debug)]
struct KRandom;

impl Random for KRandom {
    #[optimize(size)]
    fn fill(&mut self, buf: &mut [u8]) {
        // SAFETY: fills exactly `buf.len()` bytes of a valid buffer.
        unsafe { sys::arc4random_buf(buf.as_mut_ptr().cast::<c_void>(), buf.len()) };
    }
}

/// Whether a disk of ours is held (open or mounted, through GEOM): then unloading would pull
/// it, maybe the root file system, away, and `cam_sim_free` would sleep until it is closed,
/// i.e. forever. A SIM whose disks nobody holds is detached cleanly by [`stop`], also after
/// the session gave up. Sleeps (GEOM topology lock): module events only.
#[optimize(size)]
pub fn busy(h: &BootHandle) -> bool {
    let Some(sim) = sim_of(&h.ctx) else {
        return false;
    };
    h.ctx
        .cfg
        .candidates
        .iter()
        .any(|c| sim.disk_held(cam_lun::to_cam(c.target.lun)))
}

/// The system is going down (`shutdown_pre_sync`, before the file systems are synced): from
/// now on the session recovers for at most [`SHUTDOWN_RECOVERY_WAIT`]. A live session goes on
/// serving, so the sync and da(4)'s cache flush reach the target, and logs out later in
/// [`shutdown`]; one that is reconnecting (or loses its connection later) fails its I/O with
/// `CAM_DEV_NOT_THERE` once the bound has passed instead of reconnecting forever, which would
/// hold the reboot for as long as the target stays dead. The session does the bounding
/// ([`Handle::give_up_after`]); this only hands it the deadline.
#[optimize(size)]
pub fn prepare_shutdown(h: &BootHandle) {
    let ctx = &h.ctx;
    ctx.going_down.store(true, Ordering::SeqCst);
    // Pairs with the fence in `bring_up` (see there).
    fence(Ordering::SeqCst);
    if let Some(session) = handle(ctx) {
        crate::klog!(
            2,
            "system going down: the session recovers for at most {} s",
            SHUTDOWN_RECOVERY_WAIT.as_secs()
        );
        session.give_up_after(SHUTDOWN_RECOVERY_WAIT);
    }
}

/// Logs out after the file systems were synced (shutdown); frees nothing. New requests are
/// refused first with `CAM_DEV_NOT_THERE`, so a peripheral's own shutdown I/O fails at once
/// instead of being requeued forever against a session that is gone.
#[optimize(size)]
pub fn shutdown(h: &BootHandle) {
    h.ctx.sim_shared.close();
    request_logout(&h.ctx);
    wait_closed(&h.ctx, LOGOUT_WAIT);
}

#[optimize(size)]
fn request_logout(ctx: &Ctx) {
    ctx.logout.store(true, Ordering::Release);
    session_logout(ctx);
}

#[optimize(size)]
fn wait_closed(ctx: &Ctx, limit: Duration) {
    let start = now_ns();
    let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    while !ctx.closed.load(Ordering::Acquire) && now_ns().saturating_sub(start) < limit_ns {
        pause_ms(50);
    }
}

/// Tears everything down in the order written in the module documentation.
#[optimize(size)]
pub fn stop(mut h: BootHandle) {
    let ctx = h.ctx.clone();
    // 1. Stop new requests.
    ctx.sim_shared.close();
    // 2. Log out (bounded).
    request_logout(&ctx);
    wait_closed(&ctx, LOGOUT_WAIT);
    // 3. Cancel every task and let the executor drop their futures (closing the socket and
    //    clearing its upcalls), bounded.
    drop(ctx.tasks.lock(core::mem::take));
    if let Some(host) = &h.host {
        host.pender().pend();
    }
    let mut waited = 0;
    while ctx.exec.task_count() > 0 && waited < CANCEL_WAIT_MS {
        pause_ms(20);
        waited = waited.saturating_add(20);
    }
    if ctx.exec.task_count() > 0 {
        crate::klog!(0, "tasks still alive after cancelling; tearing down anyway");
    }
    // 4. Callout, running poll, taskqueue. The stopped host outlives the executor (step 6):
    //    a late wake (a task that outlived the cancel wait) then pends into nothing.
    let stopped = h.host.take().map(|host| {
        let (poll, stopped) = host.shutdown();
        drop(poll);
        stopped
    });
    // 5. CAM.
    while let Some(ccb) = ctx.pending.lock(Pending::take_any) {
        ccb.complete_status(status::DEV_NOT_THERE);
    }
    while let Some(req) = ctx.sim_shared.try_next() {
        fail_request(req, status::DEV_NOT_THERE);
    }
    if let Some(sim) = ctx.sim.lock(Option::take) {
        // Every task (the only other holders) is gone, so this is the last reference.
        match Arc::try_unwrap(sim) {
            Ok(sim) => sim.detach(),
            Err(_) => crate::klog!(0, "CAM SIM still referenced; leaving it attached"),
        }
    }
    // 6. Free.
    drop(ctx.nics.lock(core::mem::take));
    drop(ctx.root.lock(Option::take));
    let exec: *const Exec = ctx.exec;
    drop(ctx);
    drop(h);
    // SAFETY: the executor was leaked in `start`; every JoinHandle borrowing it was dropped in
    // step 3, the poll function referencing it was dropped with the host in step 4, and the
    // `Ctx` holding the last `&'static` was dropped above (no task remains to hold it: the
    // tasks' futures own `Arc<Ctx>` clones, dropped in step 3 or with the executor here).
    unsafe { drop(Box::from_raw(exec.cast_mut())) };
    drop(stopped);
}
