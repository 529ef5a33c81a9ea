// SPDX-License-Identifier: BSD-2-Clause
//! Socket readiness between a reactor (a connection's own thread in `net`, or the runtime's
//! epoll loop in `runtime`) and the task that waits for it: both sides use [`Wakers`], so neither
//! module needs the other's internals.

use core::task::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

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
}

/// Where one direction's waiting task leaves its waker. Every readiness event reports both
/// directions, and one of them nearly always has nobody waiting (a reader rarely waits for room
/// to write): `armed` says whether a waker may be in, so the reactor skips the lock of an empty
/// slot.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    waker: Mutex<Option<Waker>>,
    armed: AtomicBool,
}

impl Slot {
    /// Leaves `w` to be woken (keeps the waker in place if it wakes the same task). The task
    /// looks at the event count after this; the reactor counts before it looks at `armed`, so
    /// one of them sees the other.
    pub(crate) fn store(&self, w: &Waker) {
        let mut s = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match s.as_ref() {
            Some(old) if old.will_wake(w) => {}
            _ => *s = Some(w.clone()),
        }
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Wakes the task parked here, if any.
    fn wake(&self) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let mut s = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        let w = s.take();
        self.armed.store(false, Ordering::SeqCst);
        drop(s);
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
