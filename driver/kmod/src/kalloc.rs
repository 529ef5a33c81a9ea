// SPDX-License-Identifier: BSD-2-Clause
//! The global allocator: malloc(9) with the module's own malloc type `M_ISBOOT`
//! (`vmstat -m | grep isboot` shows what the driver holds).
//!
//! Every allocation is `M_NOWAIT`: the allocator cannot know whether its caller may sleep (a
//! socket upcall or CAM's action routine may not), so it never does, and returns null when memory
//! is short. Code on the I/O path therefore allocates only through fallible APIs
//! (`Vec::try_reserve`, [`try_box`]) and turns a failure into a requeued CCB or a retried
//! step; an infallible allocation that fails ends in `handle_alloc_error`, i.e. the panic handler.

use alloc::boxed::Box;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use crate::bindings;

/// malloc(9) as a Rust allocator.
#[derive(Debug)]
pub struct KernelAllocator;

// SAFETY: isboot_malloc returns memory of at least `size` bytes aligned to `align` (malloc(9)
// zones are 16-byte aligned, larger alignments go to malloc_aligned) or null, and never returns
// the same block twice before isboot_free; realloc keeps contents and alignment up to 16.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: no preconditions; M_NOWAIT makes it callable from any context that may take a
        // default mutex, which is every context the glue allocates in.
        unsafe { bindings::isboot_malloc(layout.size(), layout.align(), 0) }.cast()
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in alloc; M_ZERO clears the block.
        unsafe { bindings::isboot_malloc(layout.size(), layout.align(), 1) }.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator and is not used again.
        unsafe { bindings::isboot_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= bindings::ISBOOT_MALLOC_ALIGN as usize {
            // SAFETY: `ptr` is a live block of ours (caller's contract); realloc(9) keeps the
            // contents up to the smaller size and malloc(9)'s 16-byte alignment.
            return unsafe { bindings::isboot_realloc(ptr.cast(), new_size) }.cast();
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
