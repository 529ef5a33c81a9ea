// SPDX-License-Identifier: BSD-2-Clause
//! A small `no_std` executor for isboot's session futures.
//!
//! **API in one paragraph.** The platform supplies a [`RawLock`] (a spin mutex in the kernel,
//! `host::StdLock` on a host) and a [`Pender`] (`taskqueue_enqueue` in the kernel), and builds an
//! [`Executor`]. [`Executor::spawn`] starts a `Send + 'static` future and returns a [`JoinHandle`] that
//! can be awaited for the output, or dropped / [`cancel`](JoinHandle::cancel)led to stop the task; handles
//! borrow the executor, so it cannot be dropped while a task lives. When the pender fires, the platform's
//! polling context calls [`Executor::on_tick`]`(now)` with its monotonic clock ([`Instant`], u64
//! nanoseconds; spans are `core::time::Duration`), then [`Executor::poll`], which runs one bounded batch
//! and returns whether more is ready (then poll again soon), then arms its one timer (a callout) for
//! [`Executor::next_deadline`]; the timer callback only pends. Tasks get a [`Timer`] from
//! [`Executor::timer`] and await [`Timer::sleep`], [`Timer::sleep_until`] and [`Timer::timeout`]. An
//! upcall signals a task through a [`Doorbell`] (`ring()` from any context, lock- and allocation-free;
//! the task awaits `wait()`), and any context hands items to one receiving task through a bounded
//! [`Channel`] (`try_send` gives the item back when full or closed; the task awaits `recv()`). [`Mutex`]
//! gives closure-scoped access to data shared between tasks and contexts under the platform lock.
//! [`select`] waits for the first of two futures (biased to the first). Hand-written `poll_*` code
//! uses [`Doorbell::poll_wait`] and [`Channel::poll_recv`]. With feature
//! `std`, module `host` adds `block_on`, the host clock and `StdLock`; feature `test-runtime` adds
//! `TestRuntime` (a driver thread that is pender and timer, on the host clock) for tests.
//!
//! # Allocation
//! Only [`Executor::new`] and the spawns allocate (one block per task, and a larger run queue when
//! tasks outnumber its slots; the `try_` forms report a failure instead of ending in the
//! allocation error handler); [`Executor::timer`] bumps a reference count. Polling, waking, timers, doorbells and channels never do: the run queue keeps a slot per live
//! task (grown at spawn, outside the lock), timers are an intrusive list of pinned futures, channels are
//! inline. `tests/no_alloc.rs` checks this
//! with a counting global allocator across poll/wake/timer/channel/doorbell cycles.
//!
//! # Checks
//! `cargo test -p isboot-executor` (unit behaviour, a recording pender checking exact pend/poll
//! sequences, threads, loopback TCP) and `cargo +nightly miri test -p isboot-executor` (the same tests
//! but TCP, scaled down under `cfg(miri)`).
//!
//! # Where it may run
//! `no_std` + `alloc`, no thread-locals, no floating point, only 8-bit and pointer-size atomics
//! (doorbells, task state). Under the platform lock only this crate's own code runs (no
//! waker, pender, allocator or future), so the lock may be a spin mutex. The only `unsafe` is in the
//! private `raw` module; everything else is `#![deny(unsafe_code)]`.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod channel;
mod doorbell;
mod executor;
mod pender;
mod raw;
mod select;
mod time;

#[cfg(feature = "std")]
pub mod host;

pub use channel::{Channel, Recv, TryRecvError, TrySendError};
pub use doorbell::{Doorbell, Wait};
pub use executor::{Config, Executor, JoinHandle, DEFAULT_BUDGET};
pub use pender::Pender;
pub use raw::mutex::{Mutex, RawLock};
pub use select::{select, Either, Select};
pub use time::{Elapsed, Instant, Sleep, Timeout, Timer};
