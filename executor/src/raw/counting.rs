// SPDX-License-Identifier: BSD-2-Clause
//! A global allocator for tests that counts allocations and can refuse one, as malloc(9) with
//! `M_NOWAIT` refuses when memory is short (see [`crate::host::alloc`]).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::alloc::System;

/// Counting is on.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Allocations counted since counting began.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The counted allocation (1-based) that fails; 0: none.
static FAIL_AT: AtomicU64 = AtomicU64::new(0);
/// The size asked for by the allocation that failed (0: none failed).
static FAILED_SIZE: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    // `const` initialisation: reading it never allocates, so it is usable inside the allocator.
    static EXEMPT: Cell<u32> = const { Cell::new(0) };
}

/// Counts (and perhaps refuses) one allocation of `size` bytes; false when it must fail.
fn admit(size: usize) -> bool {
    if !ACTIVE.load(Ordering::Acquire) || EXEMPT.with(Cell::get) > 0 {
        return true;
    }
    let n = COUNT.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    if FAIL_AT.load(Ordering::Acquire) == n {
        FAILED_SIZE.store(size as u64, Ordering::Release);
        return false;
    }
    true
}

/// The system allocator, counting (see [`crate::host::counting_alloc`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator, or answered with null,
// which `GlobalAlloc` allows for `alloc`, `alloc_zeroed` and `realloc` (the block passed to a
// failing `realloc` stays valid and owned by the caller); the counters never touch memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return core::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return core::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return core::ptr::null_mut();
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Starts counting from zero; `fail_at` (1-based) is the counted allocation to refuse.
pub(crate) fn start(fail_at: Option<u64>) {
    FAILED_SIZE.store(0, Ordering::Release);
    COUNT.store(0, Ordering::Release);
    FAIL_AT.store(fail_at.unwrap_or(0), Ordering::Release);
    ACTIVE.store(true, Ordering::Release);
}

/// Stops counting; returns the count.
pub(crate) fn stop() -> u64 {
    ACTIVE.store(false, Ordering::Release);
    FAIL_AT.store(0, Ordering::Release);
    COUNT.load(Ordering::Acquire)
}

/// The count so far.
pub(crate) fn count() -> u64 {
    COUNT.load(Ordering::Acquire)
}

/// The size of the refused allocation, if one was refused.
pub(crate) fn refused() -> Option<u64> {
    match FAILED_SIZE.load(Ordering::Acquire) {
        0 => None,
        n => Some(n),
    }
}

/// Runs `f` with this thread's allocations left out.
pub(crate) fn exempt<R>(f: impl FnOnce() -> R) -> R {
    struct Back;
    impl Drop for Back {
        fn drop(&mut self) {
            EXEMPT.with(|e| e.set(e.get().saturating_sub(1)));
        }
    }
    EXEMPT.with(|e| e.set(e.get().saturating_add(1)));
    let _back = Back;
    f()
}

/// Leaves this thread's allocations out from now on (a helper thread that is not under test).
pub(crate) fn exempt_thread() {
    EXEMPT.with(|e| e.set(e.get().saturating_add(1)));
}
