// SPDX-License-Identifier: BSD-2-Clause
//! The executor's whole `unsafe` core: the closure-scoped [`mutex::Mutex`] over the platform lock,
//! the intrusive timer list, and task memory with its wakers and reference counts
//! ([`task`]). Everything outside this folder is safe code (`#![deny(unsafe_code)]` at the crate
//! root).
#![expect(unsafe_code, reason = "this folder is the executor's unsafe core")]

#[cfg(feature = "test-runtime")]
pub(crate) mod counting;
pub(crate) mod mutex;
#[cfg(feature = "std")]
pub(crate) mod std_lock;
pub(crate) mod task;
pub(crate) mod timer;
