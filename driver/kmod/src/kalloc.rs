// SPDX-License-Identifier: BSD-2-Clause
//! The global allocator: malloc(9) with the module's own malloc type `M_ISBOOT`
//! (`vmstat -m | grep isboot` shows what the driver holds), told by its callers whether it may
//! sleep.
//!
//! # Allocation contexts (see README.md, "Allocation")
//! By default every allocation is `M_NOWAIT`: socket upcalls, callouts and CAM's action routine
//! must not sleep, and the session's own polling is kept fallible so that a reconnect of the
//! disk the system pages to never waits for memory in a loop (it fails, and retries with
//! backoff). Code that may sleep and holds no lock says so by running inside [`sleepable`]:
//! MOD_LOAD and unload, the boot job on the taskqueue thread, and each synchronous step of a
//! login (building and reading login text and CHAP, which the session runs through its
//! connector). There the allocator uses `M_WAITOK`, which cannot fail. The decision is the
//! caller's, made at the call site; the allocator never guesses it from the thread.
//!
//! Outside [`sleepable`], an allocation that fails returns null: fallible APIs
//! (`Vec::try_reserve`, [`try_box`], the executor's `try_spawn`) turn that into an error, an
//! infallible one into `handle_alloc_error`, i.e. the panic handler. The kmodsim `failmalloc`
//! scenario fails every `M_NOWAIT` allocation the module makes, one per run, and requires no
//! panic.

use alloc::boxed::Box;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::bindings;

/// A thread inside [`sleepable`] and how deeply.
struct Sleeper {
    td: AtomicPtr<c_void>,
    depth: AtomicU32,
}

/// Threads that may sleep now: the loader's or unloader's and the taskqueue thread; four
/// slots leave room. A slot is taken and given back by its own thread only.
static SLEEPERS: [Sleeper; 4] = [const {
    Sleeper {
        td: AtomicPtr::new(ptr::null_mut()),
        depth: AtomicU32::new(0),
    }
}; 4];

fn curthread() -> *mut c_void {
    // SAFETY: reads curthread (%gs:0); no preconditions.
    unsafe { bindings::isboot_curthread() }.cast()
}

/// Runs `f` with this thread's allocations allowed to sleep (`M_WAITOK`): only where the code
/// may sleep and holds no lock (no mutex, not in an upcall, callout, SIM action or epoch). If
/// all slots are taken (not expected), `f` runs with `M_NOWAIT` allocations, as everywhere.
pub fn sleepable<R>(f: impl FnOnce() -> R) -> R {
    let _leave = enter();
    f()
}

/// Leaves [`sleepable`]'s scope when dropped, also if `f` unwinds (host tests of the glue).
struct Leave(&'static Sleeper);

impl Drop for Leave {
    fn drop(&mut self) {
        if self.0.depth.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.td.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

/// Enters [`sleepable`]'s scope: this thread's slot (taken if it has none yet), or `None` when
/// every slot is taken. Once, not inlined into each `sleepable` instance, where `f` was also
/// compiled twice (with a slot and without).
#[optimize(size)]
#[inline(never)]
fn enter() -> Option<Leave> {
    let td = curthread();
    let slot = SLEEPERS
        .iter()
        .find(|s| s.td.load(Ordering::Acquire) == td)
        .or_else(|| {
            SLEEPERS.iter().find(|s| {
                s.td.compare_exchange(ptr::null_mut(), td, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
        })?;
    slot.depth.fetch_add(1, Ordering::AcqRel);
    Some(Leave(slot))
}

/// Whether the calling thread is inside [`sleepable`].
fn may_sleep() -> bool {
    let td = curthread();
    SLEEPERS.iter().any(|s| s.td.load(Ordering::Acquire) == td)
}

/// malloc(9) as a Rust allocator.
#[derive(Debug)]
pub struct KernelAllocator;

// SAFETY: isboot_malloc returns memory of at least `size` bytes aligned to `align` (malloc(9)
// zones are 16-byte aligned, larger alignments go to malloc_aligned) or null, and never returns
// the same block twice before isboot_free; realloc keeps contents and alignment up to 16.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        kmalloc(layout.size(), layout.align(), 0)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // M_ZERO clears the block.
        kmalloc(layout.size(), layout.align(), 1)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator and is not used again.
        unsafe { bindings::isboot_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= bindings::ISBOOT_MALLOC_ALIGN as usize {
            // SAFETY: `ptr` is a live block of ours (caller's contract); realloc(9) keeps the
            // contents up to the smaller size and malloc(9)'s 16-byte alignment; the wait flag
            // as in alloc.
            return unsafe { bindings::isboot_realloc(ptr.cast(), new_size, c_int(may_sleep())) }
                .cast();
        }
        // Over-aligned blocks: malloc_aligned has no realloc counterpart.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: new_layout is valid (checked above) and non-zero-sized blocks are not required.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct; the copy stays within the smaller one.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// malloc(9) with the wait flag `sleepable` allows. One function, not inlined: inlined, the
/// thread check was repeated at each of the 41 allocation sites (about 60 bytes each); the call
/// it saves is small beside malloc(9)'s own.
#[optimize(size)]
#[inline(never)]
fn kmalloc(size: usize, align: usize, zero: core::ffi::c_int) -> *mut u8 {
    // SAFETY: no preconditions; M_NOWAIT is callable from any context that may take a default
    // mutex, M_WAITOK only inside `sleepable`, whose callers may sleep.
    unsafe { bindings::isboot_malloc(size, align, zero, c_int(may_sleep())) }.cast()
}

fn c_int(b: bool) -> core::ffi::c_int {
    core::ffi::c_int::from(b)
}

#[global_allocator]
static GLOBAL: KernelAllocator = KernelAllocator;

/// `Box::new` that reports allocation failure instead of ending in the panic handler.
pub fn try_box<T>(value: T) -> Result<Box<T>, T> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(Box::new(value));
    }
    // SAFETY: layout has a non-zero size.
    let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    let Some(raw) = NonNull::new(raw) else {
        return Err(value);
    };
    // SAFETY: `raw` is a fresh, properly aligned allocation for one T from the global allocator,
    // which is what Box::from_raw requires; writing initialises it first.
    unsafe {
        raw.as_ptr().write(value);
        Ok(Box::from_raw(raw.as_ptr()))
    }
}
