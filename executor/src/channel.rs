// SPDX-License-Identifier: BSD-2-Clause
//! A bounded many-producer, one-consumer queue between any context and one task.

use alloc::collections::{TryReserveError, VecDeque};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::raw::mutex::{Mutex, RawLock};

/// Why [`Channel::try_send`] gave the item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// All `N` slots are taken; the receiver has not caught up.
    Full(T),
    /// [`Channel::close`] was called; nothing more is accepted.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why [`Channel::try_recv`] returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Closed and drained: nothing will ever arrive.
    Closed,
}

struct State<T, const N: usize> {
    /// Never longer than `N`, and never reallocated: its buffer is reserved at construction.
    items: VecDeque<T>,
    receiver: Option<Waker>,
    closed: bool,
}

/// A bounded queue of at most `N` items in one buffer allocated at construction (no allocation
/// after it), guarded by the platform lock `L`. The buffer is on the heap rather than inline so
/// that a channel of large items (a session's inbox of SCSI requests) is never assembled on the
/// stack, whatever the optimiser inlines: kernel stacks are 16 KiB.
///
/// Any context may [`try_send`](Channel::try_send) (CAM's action routine, an upcall, another thread): it
/// never blocks, hands the item back when the queue is full or closed, and wakes the receiver. One task
/// receives with [`recv`](Channel::recv). Wakers are woken and dropped only after the lock is released.
/// Only one task may wait in `recv` at a time: a second waiter displaces the first one's waker (without
/// waking it, which would make two waiters wake each other forever).
pub struct Channel<L, T, const N: usize> {
    state: Mutex<L, State<T, N>>,
}

impl<L, T, const N: usize> fmt::Debug for Channel<L, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

impl<L: RawLock, T, const N: usize> Default for Channel<L, T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: RawLock, T, const N: usize> Channel<L, T, N> {
    /// An empty, open channel. Allocates its buffer; memory being short ends in the allocation
    /// error handler, as for any infallible allocation.
    pub fn new() -> Self {
        match Self::try_new() {
            Ok(c) => c,
            Err(_) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<[T; N]>()),
        }
    }

    /// An empty, open channel, or the error of allocating its buffer.
    pub fn try_new() -> Result<Self, TryReserveError> {
        let mut items = VecDeque::new();
        items.try_reserve_exact(N)?;
        Ok(Channel {
            state: Mutex::new(State {
                items,
                receiver: None,
                closed: false,
            }),
        })
    }

    /// Queues `item` and wakes the receiver, or gives the item back.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let res = self.state.lock(|s| {
            if s.closed {
                return Err(TrySendError::Closed(item));
            }
            if s.items.len() >= N {
                return Err(TrySendError::Full(item));
            }
            // Within the capacity reserved at construction: no allocation.
            s.items.push_back(item);
            Ok(s.receiver.take())
        });
        match res {
            Ok(waker) => {
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the oldest item without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.state.lock(|s| match s.items.pop_front() {
            Some(t) => Ok(t),
            None if s.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        })
    }

    /// Waits for the oldest item; `None` once the channel is closed and drained.
    pub fn recv(&self) -> Recv<'_, L, T, N> {
        Recv { chan: self }
    }

    /// Refuses further sends and wakes the receiver. Items already queued can still be received.
    pub fn close(&self) {
        let waker = self.state.lock(|s| {
            s.closed = true;
            s.receiver.take()
        });
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether [`Channel::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock(|s| s.closed)
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.state.lock(|s| s.items.len())
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fixed capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The poll form of [`Channel::recv`]: the oldest item, `None` once closed and drained, or
    /// `Pending` with `cx`'s waker registered for the next send or close.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Cloned before locking so that no foreign code runs under the (spin) lock.
        let mut fresh = Some(cx.waker().clone());
        let (ready, displaced) = self.state.lock(|s| {
            if let Some(t) = s.items.pop_front() {
                return (Poll::Ready(Some(t)), None);
            }
            if s.closed {
                return (Poll::Ready(None), None);
            }
            let displaced = match (&s.receiver, &fresh) {
                (Some(w), Some(f)) if w.will_wake(f) => None,
                _ => core::mem::replace(&mut s.receiver, fresh.take()),
            };
            (Poll::Pending, displaced)
        });
        drop(fresh);
        // Dropping a waker may free a task: never under the lock.
        drop(displaced);
        ready
    }
}

/// Future returned by [`Channel::recv`].
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'c, L, T, const N: usize> {
    chan: &'c Channel<L, T, N>,
}

impl<L, T, const N: usize> fmt::Debug for Recv<'_, L, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recv { .. }")
    }
}

impl<L: RawLock, T, const N: usize> Future for Recv<'_, L, T, N> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.chan.poll_recv(cx)
    }
}
