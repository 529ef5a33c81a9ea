// SPDX-License-Identifier: BSD-2-Clause
//! Task memory: one allocation per task holding its header, its schedule function and its
//! future (later its output), with a type-erased [`Runnable`] for the run queue and a typed
//! [`Handle`] for the owner, and wakers that point at the task.
//!
//! Why not `async-task`: its allocation cannot fail (a null from the allocator ends in an abort,
//! which in the kernel is a panic), and futures of 2 KiB or more get a second allocation and a
//! copy through the caller's stack. Here [`try_spawn`] reports a failed allocation by giving the
//! future (or the function that makes it) back, and the future is built in place in the task's
//! memory, so a large future never sits on the spawning thread's stack.
//!
//! # State
//! One atomic word: flags in the low bits, the number of live wakers above [`REF_SHIFT`].
//!
//! ```text
//!   RUNNABLE  a Runnable exists (queued, or inside `run`)
//!   RUNNING   `run` is polling the future
//!   WOKEN     woken while RUNNING: `run` hands its Runnable back to the schedule function
//!   CANCEL    the handle cancelled the task (or was dropped): the future is dropped by the
//!             Runnable at its next run (or when the Runnable is dropped)
//!   GONE      the future has been dropped (completed, cancelled, or never to run again)
//!   OUTPUT    the output is stored and not yet taken by the handle
//!   HANDLE    the Handle exists
//! ```
//!
//! Who may touch the stage (future or output): the owner of the Runnable while RUNNABLE is set
//! and GONE is not (it polls or drops the future, and stores the output); the handle while
//! OUTPUT is set (it takes or drops the output). The memory is freed by whichever party takes
//! the last of HANDLE, RUNNABLE and the waker count to zero; by then the stage is empty.
//!
//! ```text
//!   spawn ─► RUNNABLE|HANDLE ─schedule─► run ─Pending─► (idle) ─wake─► RUNNABLE ─► run ...
//!                                         │ Ready: drop future, store output, GONE|OUTPUT
//!                                         ▼
//!              handle takes the output (OUTPUT cleared) or drops it; last owner frees
//!   handle dropped or cancel(): CANCEL; an idle task gets a Runnable so that the executor's
//!   next poll drops the future (never the dropping context); a Runnable dropped unrun drops it.
//! ```

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::future::Future;
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use atomic_waker::AtomicWaker;

const RUNNABLE: usize = 1 << 0;
const RUNNING: usize = 1 << 1;
const WOKEN: usize = 1 << 2;
const CANCEL: usize = 1 << 3;
const GONE: usize = 1 << 4;
const OUTPUT: usize = 1 << 5;
const HANDLE: usize = 1 << 6;
/// The waker count starts here.
const REF_SHIFT: u32 = 8;
const REF: usize = 1 << REF_SHIFT;

/// Whether nobody owns the task any more (no handle, no Runnable, no waker).
fn unowned(state: usize) -> bool {
    state & (HANDLE | RUNNABLE) == 0 && state >> REF_SHIFT == 0
}

/// What every task starts with; the type-erased pointers point here.
struct Header {
    state: AtomicUsize,
    /// The handle's waker: woken when the output is stored or the future is gone.
    awaiter: AtomicWaker,
    vtable: &'static Vtable,
}

/// The operations that need the task's types.
struct Vtable {
    /// Polls the future (the caller owns the Runnable): whether it completed.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<()>,
    /// Drops the future (the caller owns the Runnable and GONE is not set).
    drop_future: unsafe fn(NonNull<Header>),
    /// Drops the stored output (the caller may touch it: see the module documentation).
    drop_output: unsafe fn(NonNull<Header>),
    /// Moves the stored output into `*out` (a `MaybeUninit<F::Output>`); false if there is none.
    take_output: unsafe fn(NonNull<Header>, *mut ()) -> bool,
    /// Hands a Runnable to the schedule function.
    schedule: unsafe fn(NonNull<Header>, Runnable),
    /// Frees the memory (nobody owns the task; the stage is empty).
    dealloc: unsafe fn(NonNull<Header>),
}

/// The stage of a task: its future, then its output, then nothing.
enum Stage<F: Future> {
    Future(F),
    Output(F::Output),
    Empty,
}

#[repr(C)]
struct RawTask<F: Future, S> {
    header: Header,
    schedule: S,
    stage: UnsafeCell<Stage<F>>,
}

impl<F, S> RawTask<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable) + Send + Sync + 'static,
{
    const VTABLE: Vtable = Vtable {
        poll: Self::poll,
        drop_future: Self::drop_future,
        drop_output: Self::drop_output,
        take_output: Self::take_output,
        schedule: Self::schedule,
        dealloc: Self::dealloc,
    };

    /// # Safety
    /// `h` points to a live `RawTask<F, S>` (its header is its first field).
    unsafe fn task<'a>(h: NonNull<Header>) -> &'a Self {
        // SAFETY: per the contract; `repr(C)` puts the header at offset 0.
        unsafe { h.cast::<Self>().as_ref() }
    }

    /// # Safety
    /// The caller owns the Runnable and the future is not gone (module documentation).
    unsafe fn poll(h: NonNull<Header>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: per the contract, nobody else touches the stage now.
        let task = unsafe { Self::task(h) };
        // SAFETY: as above; the future is never moved out of the task's memory.
        let stage = unsafe { &mut *task.stage.get() };
        let Stage::Future(f) = stage else {
            return Poll::Ready(());
        };
        // SAFETY: the future lives in the task's memory until it is dropped in place.
        let out = match unsafe { Pin::new_unchecked(f) }.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        *stage = Stage::Output(out);
        Poll::Ready(())
    }

    /// # Safety
    /// As [`Vtable::drop_future`].
    unsafe fn drop_future(h: NonNull<Header>) {
        // SAFETY: per the contract, nobody else touches the stage now.
        let stage = unsafe { &mut *Self::task(h).stage.get() };
        if matches!(stage, Stage::Future(_)) {
            *stage = Stage::Empty;
        }
    }

    /// # Safety
    /// As [`Vtable::drop_output`].
    unsafe fn drop_output(h: NonNull<Header>) {
        // SAFETY: per the contract, nobody else touches the stage now.
        let stage = unsafe { &mut *Self::task(h).stage.get() };
        if matches!(stage, Stage::Output(_)) {
            *stage = Stage::Empty;
        }
    }

    /// # Safety
    /// As [`Vtable::take_output`]; `out` points to writable memory for one `F::Output`.
    unsafe fn take_output(h: NonNull<Header>, out: *mut ()) -> bool {
        // SAFETY: per the contract, nobody else touches the stage now.
        let stage = unsafe { &mut *Self::task(h).stage.get() };
        let Stage::Output(o) = stage else {
            return false;
        };
        // The output alone is moved (not the whole stage, which may be a large future's size):
        // read out, then the stage overwritten without dropping what was read.
        // SAFETY: `o` is a valid output, read once; `out` is writable for one (contract); the
        // stage is then overwritten in place, so the moved-out output is not dropped twice.
        unsafe {
            out.cast::<F::Output>().write(ptr::read(o));
            ptr::write(stage, Stage::Empty);
        }
        true
    }

    /// # Safety
    /// `h` is a live task of these types.
    unsafe fn schedule(h: NonNull<Header>, r: Runnable) {
        // SAFETY: per the contract.
        (unsafe { Self::task(h) }.schedule)(r)
    }

    /// # Safety
    /// Nobody owns the task any more and its stage is empty.
    unsafe fn dealloc(h: NonNull<Header>) {
        let p = h.cast::<Self>().as_ptr();
        // SAFETY: the task was allocated with this layout by `try_spawn` and is not used again;
        // dropping it in place drops the schedule function (the stage is empty).
        unsafe {
            ptr::drop_in_place(p);
            alloc::alloc::dealloc(p.cast(), Layout::new::<Self>());
        }
    }
}

/// Makes a task's future, called once the task's memory is there (so the future is written
/// straight into it).
pub(crate) trait Make<F> {
    fn make(self) -> F;
}

/// Allocates a task whose future is made by `make` inside the task's memory, scheduled with
/// `schedule`; gives `make` back, unused, if the allocator has no memory. The task starts with
/// a Runnable (returned; the caller schedules it) and a handle.
pub(crate) fn try_spawn<M, F, S>(make: M, schedule: S) -> Result<(Runnable, Handle<F::Output>), M>
where
    M: Make<F>,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable) + Send + Sync + 'static,
{
    let layout = Layout::new::<RawTask<F, S>>();
    if layout.size() == 0 {
        // A header is never zero-sized; kept for the allocator's precondition.
        return Err(make);
    }
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<RawTask<F, S>>();
    let Some(raw) = NonNull::new(raw) else {
        return Err(make);
    };
    let p = raw.as_ptr();
    // SAFETY: `p` is fresh memory for one RawTask; each field is written once, in place, before
    // the task is shared (the future is made straight into its place).
    unsafe {
        ptr::addr_of_mut!((*p).header).write(Header {
            state: AtomicUsize::new(RUNNABLE | HANDLE),
            awaiter: AtomicWaker::new(),
            vtable: &RawTask::<F, S>::VTABLE,
        });
        ptr::addr_of_mut!((*p).schedule).write(schedule);
        ptr::addr_of_mut!((*p).stage).write(UnsafeCell::new(Stage::Future(make.make())));
    }
    let h = raw.cast::<Header>();
    Ok((
        Runnable { task: h },
        Handle {
            task: h,
            _output: PhantomData,
        },
    ))
}

/// A task that is due to run: the run queue's entry. At most one exists per task.
pub(crate) struct Runnable {
    task: NonNull<Header>,
}

// SAFETY: a Runnable may be moved to and run on any thread: the future and the schedule function
// are `Send` (and the schedule function `Sync`), and the state is atomic.
unsafe impl Send for Runnable {}
// SAFETY: `&Runnable` exposes nothing.
unsafe impl Sync for Runnable {}

impl Runnable {
    fn header(&self) -> &Header {
        // SAFETY: the Runnable keeps its task alive (RUNNABLE).
        unsafe { self.task.as_ref() }
    }

    /// Hands this Runnable to the task's schedule function.
    pub(crate) fn schedule(self) {
        let h = self.task;
        let vt = self.header().vtable;
        // SAFETY: `h` is live (this Runnable owns it).
        unsafe { (vt.schedule)(h, self) }
    }

    /// Polls the task's future once (or drops it if the task was cancelled). Returns whether the
    /// task was woken while it ran (it is then scheduled again).
    pub(crate) fn run(self) -> bool {
        let this = ManuallyDrop::new(self);
        let h = this.task;
        let header = this.header();
        let vt = header.vtable;
        let mut s = header.state.load(Ordering::Acquire);
        loop {
            if s & (CANCEL | GONE) != 0 {
                // Cancelled before it ran: drop the future here, in the executor's context.
                // SAFETY: this Runnable owns the stage.
                unsafe { finish_gone(h, vt) };
                return false;
            }
            match header.state.compare_exchange_weak(
                s,
                (s | RUNNING) & !WOKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let waker = ManuallyDrop::new(
            // SAFETY: the vtable's functions uphold RawWaker's contract; this waker is borrowed
            // (never dropped), so it takes no reference of its own.
            unsafe { Waker::from_raw(RawWaker::new(h.as_ptr().cast_const().cast(), &WAKER)) },
        );
        let mut cx = Context::from_waker(&waker);
        // A future that panics out of `poll` (host tests; the kernel aborts on panic) takes its
        // task down with it: dropped, marked gone, the Runnable given up.
        let unwinding = PanicGuard { h, vt };
        // SAFETY: this Runnable owns the stage and the future is not gone (checked above; only
        // the Runnable drops it).
        let done = unsafe { (vt.poll)(h, &mut cx) };
        core::mem::forget(unwinding);
        if done.is_ready() {
            // The future is dropped (in `poll`) and the output stored. First decide who gets the
            // output and publish GONE (and OUTPUT), still holding the Runnable, so that the task
            // stays alive through the wake below; then give the Runnable up.
            let mut dropped = false;
            let mut s = header.state.load(Ordering::Acquire);
            loop {
                let mut new = (s | GONE) & !(RUNNING | WOKEN);
                if s & HANDLE != 0 {
                    new |= OUTPUT;
                } else if !dropped {
                    // Nobody will take it. SAFETY: this Runnable owns the stage.
                    unsafe { (vt.drop_output)(h) };
                    dropped = true;
                }
                match header.state.compare_exchange_weak(
                    s,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            header.awaiter.wake();
            // SAFETY: this is the Runnable's last use of the task.
            unsafe { release_runnable(h, vt) };
            return false;
        }
        let mut s = header.state.load(Ordering::Acquire);
        loop {
            if s & CANCEL != 0 {
                // Cancelled while it ran.
                // SAFETY: this Runnable still owns the stage.
                unsafe { finish_gone(h, vt) };
                return false;
            }
            let again = s & WOKEN != 0;
            let new = if again {
                s & !(RUNNING | WOKEN)
            } else {
                s & !(RUNNING | RUNNABLE)
            };
            match header
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if again {
                        ManuallyDrop::into_inner(this).schedule();
                    }
                    // Otherwise the task is idle: its handle (a task without one is cancelled,
                    // handled above) or a waker keeps it.
                    debug_assert!(again || !unowned(new), "an idle task nobody owns");
                    return again;
                }
                Err(now) => s = now,
            }
        }
    }
}

/// Ends a task whose future panicked in `poll` (only dropped while unwinding).
struct PanicGuard {
    h: NonNull<Header>,
    vt: &'static Vtable,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        // SAFETY: the Runnable that is running owns the stage; its `run` does not go on.
        unsafe { finish_gone(self.h, self.vt) };
    }
}

impl Drop for Runnable {
    /// A Runnable that never runs (the executor is gone): the future is dropped here.
    fn drop(&mut self) {
        let h = self.task;
        let vt = self.header().vtable;
        // SAFETY: this Runnable owns the stage.
        unsafe { finish_gone(h, vt) };
    }
}

/// The Runnable's last act for a task whose future will not run again: drop the future, mark it
/// gone, wake the handle, give up the Runnable (freeing the task if nobody else owns it).
///
/// # Safety
/// The caller owns the Runnable of `h` and does not use it afterwards.
unsafe fn finish_gone(h: NonNull<Header>, vt: &'static Vtable) {
    // SAFETY: the Runnable owns the stage.
    unsafe { (vt.drop_future)(h) };
    // SAFETY: the Runnable keeps the task alive until `release_runnable`.
    let header = unsafe { h.as_ref() };
    header.state.fetch_or(GONE, Ordering::AcqRel);
    header.state.fetch_and(!(RUNNING | WOKEN), Ordering::AcqRel);
    header.awaiter.wake();
    // SAFETY: this is the Runnable's last use of the task.
    unsafe { release_runnable(h, vt) };
}

/// Gives up the Runnable of `h`, freeing the task if nobody else owns it.
///
/// # Safety
/// The caller owns the Runnable of `h`, the stage needs nothing more from it, and it does not
/// use the task afterwards.
unsafe fn release_runnable(h: NonNull<Header>, vt: &'static Vtable) {
    // SAFETY: the Runnable keeps the task alive until this subtraction.
    let header = unsafe { h.as_ref() };
    let old = header.state.fetch_and(!RUNNABLE, Ordering::AcqRel);
    if unowned(old & !RUNNABLE) {
        // SAFETY: that was the last owner; the future is dropped and the output, if any, too
        // (a stored output is the handle's, and the handle is gone after dropping it).
        unsafe { (vt.dealloc)(h) };
    }
}

/// Wakes the task at `h` (without consuming a reference).
///
/// # Safety
/// `h` is a live task (the caller holds a reference).
unsafe fn wake_task(h: NonNull<Header>) {
    // SAFETY: per the contract.
    let header = unsafe { h.as_ref() };
    let mut s = header.state.load(Ordering::Acquire);
    loop {
        if s & (CANCEL | GONE) != 0 {
            return;
        }
        let new = if s & RUNNING != 0 {
            if s & WOKEN != 0 {
                return;
            }
            s | WOKEN
        } else if s & RUNNABLE != 0 {
            // Already queued: it will run.
            return;
        } else {
            s | RUNNABLE
        };
        match header
            .state
            .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if new & RUNNABLE != 0 && s & RUNNABLE == 0 {
                    // This wake made the Runnable: hand it to the schedule function.
                    // SAFETY: `h` is live; the new Runnable owns what RUNNABLE stands for.
                    unsafe { (header.vtable.schedule)(h, Runnable { task: h }) };
                }
                return;
            }
            Err(now) => s = now,
        }
    }
}

/// Gives up one waker reference.
///
/// # Safety
/// The caller owns a waker reference of `h` and does not use it afterwards.
unsafe fn drop_ref(h: NonNull<Header>) {
    // SAFETY: the reference keeps the task alive until the subtraction.
    let header = unsafe { h.as_ref() };
    let vt = header.vtable;
    let old = header.state.fetch_sub(REF, Ordering::AcqRel);
    if unowned(old.wrapping_sub(REF)) {
        // SAFETY: that was the last owner; a task with no Runnable and no handle has an empty
        // stage (its future was dropped by the Runnable, its output by the handle or `run`).
        unsafe { (vt.dealloc)(h) };
    }
}

static WAKER: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn header_of(p: *const ()) -> NonNull<Header> {
    // Wakers are only ever made from task pointers, which are not null.
    NonNull::new(p.cast_mut().cast::<Header>()).unwrap_or(NonNull::dangling())
}

/// # Safety
/// `p` is a live task (the waker being cloned holds a reference or is the borrowed one of `run`).
unsafe fn waker_clone(p: *const ()) -> RawWaker {
    // SAFETY: per the contract.
    let header = unsafe { header_of(p).as_ref() };
    header.state.fetch_add(REF, Ordering::Relaxed);
    RawWaker::new(p, &WAKER)
}

/// # Safety
/// `p` is a task whose reference this waker owns.
unsafe fn waker_wake(p: *const ()) {
    // SAFETY: per the contract; the reference is given up after the wake.
    unsafe {
        wake_task(header_of(p));
        drop_ref(header_of(p));
    }
}

/// # Safety
/// `p` is a live task.
unsafe fn waker_wake_by_ref(p: *const ()) {
    // SAFETY: per the contract.
    unsafe { wake_task(header_of(p)) }
}

/// # Safety
/// `p` is a task whose reference this waker owns.
unsafe fn waker_drop(p: *const ()) {
    // SAFETY: per the contract.
    unsafe { drop_ref(header_of(p)) }
}

/// The owner's handle: takes the output, or cancels the task.
pub(crate) struct Handle<T> {
    task: NonNull<Header>,
    /// The handle never holds a `T` in place (it moves the output out), so it is `Unpin`.
    _output: PhantomData<fn() -> T>,
}

// SAFETY: the handle only takes the output (`T: Send`) and touches atomics.
unsafe impl<T: Send> Send for Handle<T> {}
// SAFETY: `&Handle` only reads the state.
unsafe impl<T: Send> Sync for Handle<T> {}

impl<T> Handle<T> {
    fn header(&self) -> &Header {
        // SAFETY: the handle keeps its task alive (HANDLE).
        unsafe { self.task.as_ref() }
    }

    /// Whether the future is gone (completed, or cancelled and dropped).
    pub(crate) fn is_finished(&self) -> bool {
        self.header().state.load(Ordering::Acquire) & GONE != 0
    }

    /// Takes the output if it is stored.
    fn take_output(&mut self) -> Option<T> {
        let header = self.header();
        let s = header.state.load(Ordering::Acquire);
        if s & OUTPUT == 0 {
            return None;
        }
        let mut slot = MaybeUninit::<T>::uninit();
        // SAFETY: OUTPUT is set, so the handle alone may touch the stage; the task's output
        // type is T (the handle was made with it), so the slot fits it.
        let taken = unsafe { (header.vtable.take_output)(self.task, slot.as_mut_ptr().cast()) };
        header.state.fetch_and(!OUTPUT, Ordering::AcqRel);
        // SAFETY: `take_output` wrote the output when it says so.
        taken.then(|| unsafe { slot.assume_init() })
    }

    /// Ready with the output once the task completed. A task that was cancelled (or whose
    /// executor went away) never completes.
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(out) = self.take_output() {
            return Poll::Ready(out);
        }
        self.header().awaiter.register(cx.waker());
        match self.take_output() {
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }

    /// Asks for the future to be dropped (by the executor: an idle task is scheduled for it).
    pub(crate) fn cancel(&self) {
        // SAFETY: the handle keeps the task alive.
        unsafe { close(self.task, false) };
    }

    /// After [`Handle::cancel`]: ready once the future is gone, with the output if the task had
    /// completed.
    pub(crate) fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let gone = |h: &Self| h.header().state.load(Ordering::Acquire) & GONE != 0;
        if !gone(self) {
            self.header().awaiter.register(cx.waker());
            if !gone(self) {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take_output())
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        // SAFETY: this is the handle's last use of the task.
        unsafe { close(self.task, true) };
    }
}

/// Cancels the task at `h`; with `release` also gives up the handle (dropping a stored output).
///
/// # Safety
/// The caller holds the handle of `h`; with `release` it does not use it afterwards.
unsafe fn close(h: NonNull<Header>, release: bool) {
    // SAFETY: the handle keeps the task alive until HANDLE is cleared.
    let header = unsafe { h.as_ref() };
    let vt = header.vtable;
    if release && header.state.load(Ordering::Acquire) & OUTPUT != 0 {
        // The output is the handle's (OUTPUT set): drop it while the handle still keeps the
        // task alive.
        // SAFETY: with OUTPUT set only the handle touches the stage.
        unsafe { (vt.drop_output)(h) };
        header.state.fetch_and(!OUTPUT, Ordering::AcqRel);
    }
    let mut s = header.state.load(Ordering::Acquire);
    loop {
        let mut new = s | CANCEL;
        // An idle future (no Runnable) gets one, so that the executor drops it.
        let schedule = s & (GONE | RUNNABLE) == 0;
        if schedule {
            new |= RUNNABLE;
        }
        if release {
            new &= !HANDLE;
        }
        match header
            .state
            .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if schedule {
                    // SAFETY: the new Runnable owns what RUNNABLE stands for and keeps the
                    // task alive.
                    unsafe { (vt.schedule)(h, Runnable { task: h }) };
                } else if release && unowned(new) {
                    // SAFETY: the last owner let go; the future and output are gone.
                    unsafe { (vt.dealloc)(h) };
                }
                return;
            }
            Err(now) => s = now,
        }
    }
}
