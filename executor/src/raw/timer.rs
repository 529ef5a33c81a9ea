// SPDX-License-Identifier: BSD-2-Clause
//! The timer queue: an intrusive list of pinned [`Sleep`] futures sorted by deadline, so arming a timer
//! never allocates, the number of timers has no fixed limit, the earliest deadline is the head, and
//! expiry wakes in deadline order. Arming walks the list (a session arms a handful of timers).
//!
//! # Invariants
//! - A node is in at most one list: the one behind the [`Timer`] its `Sleep` borrows.
//! - A linked node is pinned (it is only linked from `Sleep::poll`) and is unlinked by `Sleep::drop`
//!   before its memory can be reused, so every pointer in the list points to a live node.
//! - A node's `Link` is read or written only while the list's lock is held.

use core::cell::{Cell, UnsafeCell};
use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, Waker};

use crate::time::{Instant, Timer};

/// What the [`Timer`] handle needs from the executor that owns the list.
pub(crate) trait Clock: Send + Sync {
    /// Runs `f` with the list locked.
    fn with_list(&self, f: &mut dyn FnMut(&mut TimerList));
    /// Asks the platform to look at `next_deadline` again.
    fn pend(&self);
    /// The current time: the platform clock if it gave one, else the last tick.
    fn now(&self) -> Instant;
}

/// The list head plus the clock the platform last reported.
#[derive(Debug)]
pub(crate) struct TimerList {
    head: *const Node,
    pub(crate) now: Instant,
    /// Set while `Executor::poll` runs: the platform reads `next_deadline` right after it, so a timer
    /// armed meanwhile needs no pend.
    pub(crate) in_poll: usize,
}

// SAFETY: the raw pointers are only followed with the list's lock held (see the module invariants), so the
// list may move between threads with its mutex.
unsafe impl Send for TimerList {}

impl TimerList {
    pub(crate) const fn new() -> Self {
        TimerList {
            head: ptr::null(),
            now: Instant::ZERO,
            in_poll: 0,
        }
    }

    /// The earliest deadline of all armed timers: the head's, since the list is sorted.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        if self.head.is_null() {
            return None;
        }
        // SAFETY: the head is a live node of this list while we hold its lock (invariants).
        Some(unsafe { (*self.head).deadline })
    }

    /// Unlinks timers whose deadline is at or before `self.now`, earliest first, moving their wakers
    /// into `out` until it is full. Returns whether expired timers are left for another call.
    pub(crate) fn take_expired<const N: usize>(
        &mut self,
        out: &mut heapless::Vec<Waker, N>,
    ) -> bool {
        while !self.head.is_null() {
            // SAFETY: the head is a live node of this list, lock held (invariants).
            let node = unsafe { &*self.head };
            if node.deadline > self.now {
                return false;
            }
            if out.is_full() {
                return true;
            }
            // SAFETY: `node` is linked in this list and we hold its lock.
            if let Some(waker) = unsafe { self.unlink(node) } {
                // Cannot fail: fullness was checked above.
                let _ = out.push(waker);
            }
        }
        false
    }

    /// Links `node` after every node with an earlier or equal deadline, keeping the list sorted (equal
    /// deadlines fire in the order they were armed).
    ///
    /// # Safety
    /// Caller holds the list's lock; `node` is pinned, not linked anywhere, and will be unlinked before
    /// it is moved or dropped.
    unsafe fn link(&mut self, node: &Node, waker: Waker) {
        let mut prev: *const Node = ptr::null();
        let mut next = self.head;
        while !next.is_null() {
            // SAFETY: live node of this list, lock held (invariants).
            let n = unsafe { &*next };
            if n.deadline > node.deadline {
                break;
            }
            prev = next;
            // SAFETY: as above.
            next = unsafe { (*n.link.get()).next };
        }
        // SAFETY: lock held by the caller; `node` is not in the list, so no other pointer reads its link.
        let link = unsafe { &mut *node.link.get() };
        link.next = next;
        link.prev = prev;
        link.waker = Some(waker);
        link.linked = true;
        if prev.is_null() {
            self.head = node;
        } else {
            // SAFETY: `prev` is a live node of this list; lock held.
            unsafe { (*(*prev).link.get()).next = node };
        }
        if !next.is_null() {
            // SAFETY: `next` is a live node of this list; lock held.
            unsafe { (*(*next).link.get()).prev = node };
        }
    }

    /// Unlinks `node` if it is linked and hands back its waker.
    ///
    /// # Safety
    /// Caller holds the list's lock, and `node` is either unlinked or linked in this list.
    unsafe fn unlink(&mut self, node: &Node) -> Option<Waker> {
        // SAFETY: lock held by the caller.
        let link = unsafe { &mut *node.link.get() };
        if !link.linked {
            return None;
        }
        if link.prev.is_null() {
            self.head = link.next;
        } else {
            // SAFETY: neighbours of a linked node are live nodes of the same list; lock held.
            unsafe { (*(*link.prev).link.get()).next = link.next };
        }
        if !link.next.is_null() {
            // SAFETY: as above.
            unsafe { (*(*link.next).link.get()).prev = link.prev };
        }
        link.next = ptr::null();
        link.prev = ptr::null();
        link.linked = false;
        link.waker.take()
    }
}

struct Link {
    next: *const Node,
    prev: *const Node,
    waker: Option<Waker>,
    linked: bool,
}

struct Node {
    deadline: Instant,
    link: UnsafeCell<Link>,
    // Linked nodes are pointed to by their neighbours: they must not move once linked.
    _pin: PhantomPinned,
}

// SAFETY: the only interior mutability is `link`, touched only under the list's lock (invariants), and
// `deadline` is immutable; so a node may be shared with and moved to other threads.
unsafe impl Send for Node {}
// SAFETY: as for `Send`.
unsafe impl Sync for Node {}

/// Future returned by [`Timer::sleep_until`] and [`Timer::sleep`]: ready once the platform's clock, as
/// last given to `Executor::on_tick`, reaches the deadline.
///
/// Arming it (the first `Pending` poll) links it into the timer queue without allocating; dropping it
/// unlinks it.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep<'t> {
    timer: &'t Timer,
    node: Node,
    // Whether a poll may have linked the node, so an unarmed sleep drops without taking the lock.
    armed: Cell<bool>,
}

impl core::fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.node.deadline)
            .finish_non_exhaustive()
    }
}

impl<'t> Sleep<'t> {
    pub(crate) fn new(timer: &'t Timer, deadline: Instant) -> Self {
        Sleep {
            timer,
            node: Node {
                deadline,
                link: UnsafeCell::new(Link {
                    next: ptr::null(),
                    prev: ptr::null(),
                    waker: None,
                    linked: false,
                }),
                _pin: PhantomPinned,
            },
            armed: Cell::new(false),
        }
    }

    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.node.deadline
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Only shared access is needed: the node's mutable part is an `UnsafeCell` behind the lock.
        let this: &Self = self.into_ref().get_ref();
        let node = &this.node;
        let mut ready = false;
        let mut pend = false;
        // Cloned before locking, so that only this module's code runs under the (spin) lock; the
        // clone is dropped after unlocking when it is not needed.
        let mut fresh = Some(cx.waker().clone());
        let mut old: Option<Waker> = None;
        this.timer.clock.with_list(&mut |list| {
            if node.deadline <= list.now {
                // SAFETY: lock held; the node is unlinked or linked in this list (invariants).
                old = unsafe { list.unlink(node) };
                ready = true;
                return;
            }
            // SAFETY: lock held.
            let link = unsafe { &mut *node.link.get() };
            if link.linked {
                let same = match (&link.waker, &fresh) {
                    (Some(w), Some(f)) => w.will_wake(f),
                    _ => false,
                };
                if !same {
                    old = core::mem::replace(&mut link.waker, fresh.take());
                }
            } else if let Some(waker) = fresh.take() {
                let earliest = list.earliest();
                // SAFETY: lock held; `self` was pinned by our caller, so the node stays put until
                // `Sleep::drop` unlinks it; it is in no list (not linked).
                unsafe { list.link(node, waker) };
                pend = list.in_poll == 0 && earliest.is_none_or(|e| node.deadline < e);
            }
        });
        drop(fresh);
        // Dropping a waker may free a task: never under the lock.
        drop(old);
        if ready {
            return Poll::Ready(());
        }
        this.armed.set(true);
        if pend {
            this.timer.clock.pend();
        }
        Poll::Pending
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if !self.armed.get() {
            return;
        }
        let node = &self.node;
        let mut old = None;
        self.timer.clock.with_list(&mut |list| {
            // SAFETY: lock held; the node is unlinked or linked in this list (invariants).
            old = unsafe { list.unlink(node) };
        });
        drop(old);
    }
}
