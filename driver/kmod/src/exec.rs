// SPDX-License-Identifier: BSD-2-Clause
//! Executor hosting: one taskqueue thread polls the executor, one callout brings it back at the
//! executor's next deadline, and the clock is `sbinuptime`.
//!
//! The pender (see the executor's contract) is `taskqueue_enqueue` of the poll task: callable from
//! any context (socket upcalls, the callout, CAM's action routine), it only queues the task; the
//! taskqueue merges repeated enqueues of a pending task into one run. Only the taskqueue thread
//! ever polls futures, and the queue has exactly one thread, so everything the poll function
//! touches is touched by one thread at a time.
//!
//! # Invariants
//! - `HostInner` is boxed and never moves: the taskqueue, the task and the callout keep pointers
//!   into it until [`Host::shutdown`] has drained all three, and every [`Pender`] until the
//!   [`Stopped`] host that keeps the box is dropped (after the executor).
//! - `poll_fn` is written once in `start` before anything can enqueue the poll task, then only
//!   reached from the poll task (taskqueue thread) and from `shutdown` after the
//!   task is drained, never concurrently.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void, CStr};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use isboot_kmod_logic::time;

use crate::bindings as sys;

/// Monotonic time since boot in nanoseconds (`sbinuptime`).
pub fn now_ns() -> u64 {
    // SAFETY: `sbinuptime` reads the timecounter and has no preconditions.
    time::sbt_to_ns(unsafe { sys::isboot_sbinuptime() })
}

/// Sleeps the calling thread for at least `ms` milliseconds. Only for boot-time waits outside the
/// taskqueue (link, root mount): never call it from the poll function.
pub fn pause_ms(ms: u32) {
    // SAFETY: the message is a static C string; `pause_sbt` may sleep, which is allowed in the
    // thread contexts this is called from (module load, shutdown).
    unsafe { sys::isboot_pause_ms(c"isboot".as_ptr(), ms) };
}

/// A `struct mtx` that never moves after `mtx_init`, of the kind its owner (`Mtx` or `SpinMtx`)
/// locks it as: the kind is the type, so no lock site tests it (a test made LLVM copy the locked
/// closure into a path per kind at every site) and none can take a mutex as the wrong kind.
///
/// # Invariants
/// `raw` was initialised by `mtx_init` (spin exactly when owned by a `SpinMtx`) and is destroyed
/// only in `Drop`.
struct RawMtx {
    raw: Box<UnsafeCell<sys::mtx>>,
}

// SAFETY: a kernel mutex is designed to be shared between threads; all access goes through the
// kernel's lock functions.
unsafe impl Send for RawMtx {}
// SAFETY: as above.
unsafe impl Sync for RawMtx {}

impl core::fmt::Debug for RawMtx {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RawMtx")
    }
}

impl RawMtx {
    #[optimize(size)]
    fn new(name: &'static CStr, spin: bool) -> RawMtx {
        // SAFETY: `struct mtx` is plain data for which all-zero is the state `mtx_init` expects.
        let raw = Box::new(UnsafeCell::new(unsafe { core::mem::zeroed::<sys::mtx>() }));
        // SAFETY: `raw` is zeroed, boxed (stable address) and not yet initialised; the name is
        // static as `mtx_init` requires.
        unsafe { sys::isboot_mtx_init(raw.get(), name.as_ptr(), c_int::from(spin)) };
        // INVARIANT: initialised above, of the kind the caller (`Mtx` or `SpinMtx`) locks.
        RawMtx { raw }
    }
}

impl Drop for RawMtx {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: initialised (invariant) and, with `&mut self`, nobody holds or waits for it.
        unsafe { sys::isboot_mtx_destroy(self.raw.get()) };
    }
}

/// A default (`MTX_DEF`) kernel mutex.
#[derive(Debug)]
pub struct Mtx(RawMtx);

impl Mtx {
    #[optimize(size)]
    pub fn new(name: &'static CStr) -> Mtx {
        Mtx(RawMtx::new(name, false))
    }

    /// The `struct mtx *` for KPIs such as `cam_sim_alloc` and `callout_init_mtx`.
    pub fn as_ptr(&self) -> *mut sys::mtx {
        self.0.raw.get()
    }

    /// Runs `f` with the mutex held. `f` must not sleep.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: initialised as a default mutex (`RawMtx`'s invariant, made by `new`); lock and
        // unlock are paired around `f`.
        unsafe { sys::isboot_mtx_lock(self.as_ptr()) };
        let r = f();
        // SAFETY: we hold the lock taken above.
        unsafe { sys::isboot_mtx_unlock(self.as_ptr()) };
        r
    }
}

/// A spin (`MTX_SPIN`) kernel mutex.
#[derive(Debug)]
pub struct SpinMtx(RawMtx);

impl SpinMtx {
    #[optimize(size)]
    pub fn new(name: &'static CStr) -> SpinMtx {
        SpinMtx(RawMtx::new(name, true))
    }

    /// Runs `f` with the mutex held. `f` must not sleep nor take default mutexes.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let m = self.0.raw.get();
        // SAFETY: initialised as a spin mutex (`RawMtx`'s invariant, made by `new`); lock and
        // unlock are paired around `f`.
        unsafe { sys::isboot_mtx_lock_spin(m) };
        let r = f();
        // SAFETY: we hold the lock taken above.
        unsafe { sys::isboot_mtx_unlock_spin(m) };
        r
    }
}

/// The executor's platform lock: a kernel spin mutex, usable from every context the executor is
/// entered from (upcalls, callouts, CAM's action routine, the taskqueue thread).
pub struct KSpin {
    mtx: SpinMtx,
}

impl core::fmt::Debug for KSpin {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KSpin")
    }
}

impl Default for KSpin {
    #[optimize(size)]
    fn default() -> Self {
        KSpin {
            mtx: SpinMtx::new(c"isboot executor"),
        }
    }
}

// SAFETY: `SpinMtx::with` gives mutual exclusion across CPUs with acquire/release
// ordering. The mutex is not initialised with MTX_RECURSE, so a nested lock of the same instance
// never runs its closure: it panics in the INVARIANTS recursion check or spins until the
// kernel's spin-lock timeout panics.
unsafe impl isboot_executor::RawLock for KSpin {
    fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
        self.mtx.with(f)
    }
}

impl isboot_executor::Pender for Pender {
    fn pend(&self) {
        Pender::pend(self);
    }
}

/// What one run of the poll task reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Polled {
    /// Work is still queued: run the poll task again right away.
    pub again: bool,
    /// The executor's next timer deadline (ns since boot), if any.
    pub deadline: Option<u64>,
}

/// What the poll task runs: `Executor::on_tick(now)`, `Executor::poll()`, `next_deadline()`.
pub type PollFn = Box<dyn FnMut(u64) -> Polled + Send>;

struct HostInner {
    /// Storage of the taskqueue pointer; `taskqueue_thread_enqueue` reads it (see helpers).
    tq: UnsafeCell<*mut sys::taskqueue>,
    poll_task: UnsafeCell<sys::task>,
    callout: UnsafeCell<sys::callout>,
    callout_mtx: Mtx,
    stopping: AtomicBool,
    /// Pends in progress: `shutdown` waits for zero after setting `stopping`, so no pend can
    /// reach the queue after it is freed.
    pends: AtomicUsize,
    poll_fn: UnsafeCell<Option<PollFn>>,
    /// One-shot blocking work (NIC bring-up) run on the same thread before the session starts.
    job_task: UnsafeCell<sys::task>,
    job: isboot_executor::Mutex<KSpin, Option<Job>>,
}

/// Work for [`Host::run_job`].
pub type Job = Box<dyn FnOnce() + Send>;

/// The executor's home in the kernel.
pub struct Host {
    inner: Box<HostInner>,
}

// SAFETY: the raw kernel objects inside are designed for cross-thread use (taskqueue, callout
// with its mutex); `poll_fn` is only touched per the module invariants.
unsafe impl Send for Host {}
// SAFETY: as above; the `&self` methods are `pender` (copies a pointer) and `run_job`, which
// touches only the job slot (behind the executor mutex) and `taskqueue_enqueue` (callable from
// any thread); `poll_fn` is never reached through `&Host`.
unsafe impl Sync for Host {}

/// A copyable handle that makes the poll task run soon: the executor's pender.
///
/// # Invariants
/// `inner` points to a `HostInner` that outlives every copy: the executor (which owns the
/// copies) is dropped before the [`Stopped`] host that owns `inner`.
#[derive(Clone, Copy)]
pub struct Pender {
    inner: *const HostInner,
}

// SAFETY: `pend` may be called from any thread or context; it only touches atomics and
// `taskqueue_enqueue`.
unsafe impl Send for Pender {}
// SAFETY: as above.
unsafe impl Sync for Pender {}

impl core::fmt::Debug for Pender {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Pender")
    }
}

impl Pender {
    /// Queues the poll task. Callable from any context that may take a default mutex (the
    /// thread taskqueue's lock is one): socket upcalls, callouts, CAM's action routine. Never
    /// with a spin mutex held.
    /// After `shutdown` began, pends do nothing.
    pub fn pend(&self) {
        // SAFETY: `inner` outlives every pender (type invariant).
        let inner = unsafe { &*self.inner };
        inner.pends.fetch_add(1, Ordering::SeqCst);
        if !inner.stopping.load(Ordering::SeqCst) {
            // SAFETY: `shutdown` sets `stopping` and then waits for `pends` to reach zero
            // before it frees the queue; this pend counted itself before reading `stopping`,
            // so the queue is still alive here.
            unsafe { sys::taskqueue_enqueue(*inner.tq.get(), inner.poll_task.get()) };
        }
        inner.pends.fetch_sub(1, Ordering::SeqCst);
    }
}

impl core::fmt::Debug for Host {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    /// Creates the taskqueue and its thread named `name`; the poll task runs the function `make`
    /// returns, and `make`'s second value is handed back. `make` receives the pender (to build
    /// the executor with) and runs before anything can be pended, so the poll function is in
    /// place before the poll task can first run.
    #[optimize(size)]
    pub fn start<T>(
        name: &'static CStr,
        make: impl FnOnce(Pender) -> (PollFn, T),
    ) -> Result<(Host, T), c_int> {
        let inner = Box::new(HostInner {
            tq: UnsafeCell::new(ptr::null_mut()),
            // SAFETY: `struct task` and `struct callout` are plain data; zero is their pre-init
            // state.
            poll_task: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            callout: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            callout_mtx: Mtx::new(c"isboot callout"),
            stopping: AtomicBool::new(false),
            pends: AtomicUsize::new(0),
            poll_fn: UnsafeCell::new(None),
            // SAFETY: as above.
            job_task: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            job: isboot_executor::Mutex::new(None),
        });
        let ctx = ptr::from_ref::<HostInner>(&inner)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: the task and callout live in the box, which stays put until `shutdown` drains
        // them (invariant); `ctx` points to that box.
        unsafe {
            sys::isboot_task_init(inner.poll_task.get(), Some(poll_task), ctx);
            sys::isboot_task_init(inner.job_task.get(), Some(job_task), ctx);
            sys::isboot_callout_init_mtx(inner.callout.get(), inner.callout_mtx.as_ptr());
        }
        // SAFETY: `inner.tq` is the stable storage `taskqueue_thread_enqueue` needs.
        let err = unsafe { sys::isboot_taskqueue_create(name.as_ptr(), inner.tq.get()) };
        if err != 0 {
            return Err(err);
        }
        // SAFETY: the queue was just created; one thread is started for it.
        let err = unsafe { sys::isboot_taskqueue_start(inner.tq.get(), name.as_ptr()) };
        if err != 0 {
            // SAFETY: no task was queued yet; the queue has no thread to wait for.
            unsafe { sys::taskqueue_free(*inner.tq.get()) };
            return Err(err);
        }
        // INVARIANT: `inner` is boxed; `Stopped` keeps the box until the executor is gone.
        let pender = Pender {
            inner: ptr::from_ref(&*inner),
        };
        let (poll, made) = make(pender);
        // SAFETY: nothing has been enqueued yet (the pender was only handed to `make`, which
        // must not pend), so the poll task cannot run concurrently with this store.
        unsafe { *inner.poll_fn.get() = Some(poll) };
        Ok((Host { inner }, made))
    }

    /// Runs `job` once on the taskqueue thread. It may sleep (boot-time waits), which delays
    /// executor polls meanwhile. A job queued while another is pending replaces nothing: it is
    /// refused and handed back.
    #[optimize(size)]
    pub fn run_job(&self, job: Job) -> Result<(), Job> {
        let job = self.inner.job.lock(|slot| match slot {
            Some(_) => Some(job),
            None => {
                *slot = Some(job);
                None
            }
        });
        if let Some(job) = job {
            return Err(job);
        }
        // SAFETY: the queue and task live until `shutdown`, which drains this task.
        unsafe { sys::taskqueue_enqueue(*self.inner.tq.get(), self.inner.job_task.get()) };
        Ok(())
    }

    pub fn pender(&self) -> Pender {
        // INVARIANT: as in `start`.
        Pender {
            inner: ptr::from_ref(&*self.inner),
        }
    }

    /// Tears the host down: no poll starts after this returns, the callout is drained, the
    /// running poll (if any) has finished and the thread is gone; later pends do nothing.
    /// Returns the poll function, and the [`Stopped`] host that must be dropped only after the
    /// executor (whose pender points into it). Must not be called from the taskqueue thread.
    #[optimize(size)]
    pub fn shutdown(self) -> (Option<PollFn>, Stopped) {
        let inner = self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        // A pend that counted itself before `stopping` was set may still be enqueueing. Its
        // thread may have been preempted right there (an upcall runs in an ordinary thread),
        // possibly on this CPU: spinning could keep it from running (on one CPU, or with it
        // at lower priority) and hang unload or shutdown, so sleep between looks. The wait
        // is a few instructions of a running pend, and this is a sleepable thread context.
        while inner.pends.load(Ordering::SeqCst) != 0 {
            pause_ms(1);
        }
        // SAFETY: the tasks were initialised in `start` and the queue exists. Draining waits for
        // a running instance; with `stopping` set, later instances return at once and the
        // callout no longer enqueues, so once both drains return no task can run or re-arm the
        // callout.
        unsafe {
            sys::taskqueue_drain(*inner.tq.get(), inner.job_task.get());
            sys::taskqueue_drain(*inner.tq.get(), inner.poll_task.get());
        }
        // SAFETY: the callout was initialised in `start`; draining may sleep, which the caller's
        // thread context allows. After it returns the callout is neither pending nor running,
        // and nothing re-arms it (see above).
        unsafe { sys::isboot_callout_drain(inner.callout.get()) };
        // SAFETY: nothing of ours is queued or running any more; this stops the thread.
        unsafe { sys::taskqueue_free(*inner.tq.get()) };
        // A job that never ran is dropped here, on the caller's thread.
        drop(inner.job.lock(Option::take));
        // SAFETY: the task is drained and the thread gone: nothing else can reach `poll_fn`.
        let poll = unsafe { (*inner.poll_fn.get()).take() };
        (poll, Stopped { _inner: inner })
    }
}

/// A host after [`Host::shutdown`]: its queue is gone, pends are ignored; the memory stays until
/// this is dropped, after the executor.
pub struct Stopped {
    _inner: Box<HostInner>,
}

impl core::fmt::Debug for Stopped {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Stopped")
    }
}

/// The job task: runs the queued one-shot job, if any.
///
/// # Safety
/// `ctx` is the `HostInner` given to `TASK_INIT`, alive until `shutdown` drained the task.
#[optimize(size)]
unsafe extern "C" fn job_task(ctx: *mut c_void, _pending: c_int) {
    // SAFETY: per the contract above.
    let inner = unsafe { &*ctx.cast::<HostInner>() };
    if inner.stopping.load(Ordering::Acquire) {
        return;
    }
    if let Some(job) = inner.job.lock(Option::take) {
        job();
    }
}

/// The callout handler: runs with `callout_mtx` held, only queues the poll task.
///
/// # Safety
/// `arg` is the `HostInner` registered in `arm`, alive until `shutdown` drained the callout.
unsafe extern "C" fn callout_fired(arg: *mut c_void) {
    // SAFETY: per the contract above.
    let inner = unsafe { &*arg.cast::<HostInner>() };
    if inner.stopping.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: the queue exists until `shutdown`, which drains this callout first.
    unsafe { sys::taskqueue_enqueue(*inner.tq.get(), inner.poll_task.get()) };
}

/// The poll task: polls the executor, then arms (or stops) the callout for its next deadline.
///
/// # Safety
/// `ctx` is the `HostInner` given to `TASK_INIT`, alive until `shutdown` drained the task.
unsafe extern "C" fn poll_task(ctx: *mut c_void, _pending: c_int) {
    // SAFETY: per the contract above.
    let inner = unsafe { &*ctx.cast::<HostInner>() };
    if inner.stopping.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: only this task (single thread) reaches `poll_fn` while the host runs (invariant).
    let Some(poll) = (unsafe { &mut *inner.poll_fn.get() }).as_mut() else {
        return;
    };
    let now = now_ns();
    let polled = poll(now);
    if polled.again {
        // SAFETY: the queue exists while the host runs; re-queueing our own task from inside it
        // makes it run once more after this instance returns.
        unsafe { sys::taskqueue_enqueue(*inner.tq.get(), inner.poll_task.get()) };
    }
    arm(inner, polled.deadline, now);
}

fn arm(inner: &HostInner, deadline: Option<u64>, now: u64) {
    inner.callout_mtx.with(|| match deadline {
        _ if inner.stopping.load(Ordering::Acquire) => {
            // SAFETY: the callout is initialised and its mutex is held, as callout_stop requires.
            unsafe { sys::isboot_callout_stop(inner.callout.get()) };
        }
        None => {
            // SAFETY: the callout is initialised and its mutex is held, as callout_stop requires.
            unsafe { sys::isboot_callout_stop(inner.callout.get()) };
        }
        Some(d) => {
            // A deadline already past still goes through the callout (soonest possible), so the
            // poll task is never re-run in a tight loop from itself.
            let at = time::callout_time(d, now).unwrap_or_else(|| time::ns_to_sbt_ceil(now));
            let arg = ptr::from_ref(inner).cast_mut().cast::<c_void>();
            // SAFETY: the callout is initialised, its mutex held; `arg` stays valid until
            // `shutdown` drains the callout. 1 ms of slack lets the kernel batch wakeups.
            unsafe {
                sys::callout_reset_sbt_on(
                    inner.callout.get(),
                    at,
                    SBT_1MS,
                    Some(callout_fired),
                    arg,
                    -1,
                    sys::C_ABSOLUTE as c_int,
                )
            };
        }
    });
}

/// `SBT_1MS` (a cast expression bindgen does not evaluate).
const SBT_1MS: i64 = time::SBT_1S / 1000;
