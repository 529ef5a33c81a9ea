// SPDX-License-Identifier: BSD-2-Clause
//! Socket readiness between a reactor (a connection's own thread in `net`, or the runtime's
//! epoll loop in `runtime`) and the task that waits for it: both sides use [`Wakers`], so neither
//! module needs the other's internals.

use core::task::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use isboot_executor::host::StdLock;
use isboot_executor::Mutex;

/// Wakers waiting for readiness, filled by the task and emptied by the reactor, and a count of
/// readiness events per direction. The socket is registered edge-triggered, so after a
/// `WouldBlock` it cannot become ready without an event: while the count has not moved, another
/// attempt would fail too and is skipped (no system call for a read that must fail).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    pub(crate) read: Slot,
    pub(crate) write: Slot,
    pub(crate) read_events: AtomicU64,
    pub(crate) write_events: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// The connection reads on the runtime loop's timer (`Reactor::set_timed`).
    pub(crate) timed: AtomicBool,
    /// When the loop wakes the reader waiting on a mark ahead of its need
    /// (`Reactor::set_ahead`): nanoseconds from the reactor's epoch, 0 for none.
    pub(crate) ahead_until: AtomicU64,
}

/// Where one direction's waiting task leaves its waker. Every readiness event reports both
/// directions, and one of them nearly always has nobody waiting (a reader rarely waits for room
/// to write): `armed` says whether a waker may be in, so the reactor skips the lock of an empty
/// slot. The lock is the executor's (a short spin, no poisoning): the waker is cloned, woken
/// and dropped outside it, as that lock requires.
pub(crate) struct Slot {
    waker: Mutex<StdLock, Option<Waker>>,
    armed: AtomicBool,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            waker: Mutex::new(None),
            armed: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("armed", &self.armed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Leaves `w` to be woken (keeps the waker in place if it wakes the same task). The task
    /// looks at the event count after this; the reactor counts before it looks at `armed`, so
    /// one of them sees the other.
    pub(crate) fn store(&self, w: &Waker) {
        // The reactor took the last waker (it wakes a task once per park), so the slot is
        // nearly always empty here and the clone needed: made before the lock, the one that
        // is left over (the new one, or the one it replaced) dropped after it.
        let mut new = Some(w.clone());
        self.waker.lock(|s| {
            match s {
                Some(old) if old.will_wake(w) => {}
                _ => core::mem::swap(s, &mut new),
            }
            self.armed.store(true, Ordering::SeqCst);
        });
        drop(new);
    }

    /// Whether a waker is in (cleared when the reactor takes it).
    pub(crate) fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Wakes the task parked here, if any.
    pub(crate) fn wake(&self) {
        if !self.armed() {
            return;
        }
        let w = self.waker.lock(|s| {
            self.armed.store(false, Ordering::SeqCst);
            s.take()
        });
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Wakers {
    /// Wakes the task waiting for what became ready.
    pub(crate) fn ready(&self, read: bool, write: bool) {
        if read {
            self.read_events.fetch_add(1, Ordering::SeqCst);
            self.read.wake();
        }
        if write {
            self.write_events.fetch_add(1, Ordering::SeqCst);
            self.write.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_event_wakes_the_stored_waker_once_and_only_its_direction() {
        let w = Wakers::default();
        let (reader, writer) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        // Nobody waits: the events are counted all the same.
        w.ready(true, true);
        assert_eq!(w.read_events.load(Ordering::SeqCst), 1);
        assert_eq!(w.write_events.load(Ordering::SeqCst), 1);
        w.read.store(&Waker::from(reader.clone()));
        w.write.store(&Waker::from(writer.clone()));
        w.ready(true, false);
        assert_eq!(reader.0.load(Ordering::SeqCst), 1);
        assert_eq!(writer.0.load(Ordering::SeqCst), 0);
        // The reader's waker was taken: the next event wakes nobody until it parks again.
        w.ready(true, false);
        assert_eq!(reader.0.load(Ordering::SeqCst), 1);
        w.read.store(&Waker::from(reader.clone()));
        w.ready(true, true);
        assert_eq!(reader.0.load(Ordering::SeqCst), 2);
        assert_eq!(writer.0.load(Ordering::SeqCst), 1);
        assert_eq!(w.read_events.load(Ordering::SeqCst), 4);
    }
}
