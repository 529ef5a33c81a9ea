// SPDX-License-Identifier: BSD-2-Clause
//! Console logging, gated by `net.isboot.debug` (tunable and writable at run time).
//!
//! Levels: 0 always: failures and the milestones an admin at a hung boot needs (the boot
//! configuration found, the NIC configured, each login and its failure, reconnecting and
//! reconnected, the disk attached as `daN`, giving up); 1 high-level; 2 informational; 3 full
//! trace. The session's own messages come in at the core's levels ([`session_level`]): its
//! errors (rate-limited by the session: the first, then after 2, 4, 8, ... in a row) and its
//! notes (milestones) print at level 0, the repeats in between at level 2.
//!
//! At the default `net.isboot.debug=0` a level-0 line that repeats within 30 s is left out and
//! counted (`isboot_kmod_logic::ratelimit`), so that a login refused every few seconds does not
//! push the rest off the console; from level 1 up every line prints.
//!
//! A line is formatted on the stack, so logging works when memory is short, from any context
//! that may call printf(9).

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use isboot_core::port::Level;
use isboot_kmod_logic::linebuf::LineBuf;
use isboot_kmod_logic::ratelimit::{self, Repeats, Verdict};

use crate::bindings;

pub const ALWAYS: i32 = 0;
pub const HIGH: i32 = 1;
pub const INFO: i32 = 2;
pub const TRACE: i32 = 3;

/// The module's level for each level of the session's messages.
pub const fn session_level(level: Level) -> i32 {
    match level {
        Level::Error | Level::Note => ALWAYS,
        Level::Info => INFO,
        Level::Trace => TRACE,
    }
}

fn debug_level() -> i32 {
    // SAFETY: reads an int sysctl with an atomic load; no preconditions.
    unsafe { bindings::isboot_debug_level() }
}

/// Whether a message of `level` is printed now.
pub fn enabled(level: i32) -> bool {
    level <= ALWAYS || level <= debug_level()
}

/// The lines printed lately, for the limit on repeats. A try-lock: a line logged while another
/// CPU holds it prints unlimited rather than wait (logging must not block, nor take a lock
/// other code might hold).
struct Limiter {
    busy: AtomicBool,
    repeats: UnsafeCell<Repeats>,
}

// SAFETY: `repeats` is only reached by the holder of `busy` (see `with`).
unsafe impl Sync for Limiter {}

static LIMITER: Limiter = Limiter {
    busy: AtomicBool::new(false),
    repeats: UnsafeCell::new(Repeats::new()),
};

impl Limiter {
    fn with<R>(&self, f: impl FnOnce(&mut Repeats) -> R) -> Option<R> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: `busy` was false and is ours now: no other reference to `repeats` exists
        // until it is released below.
        let r = f(unsafe { &mut *self.repeats.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

/// Forgets the lines printed: after the session recovered, its next failure is news.
#[optimize(size)]
pub fn forget_repeats() {
    let _ = LIMITER.with(Repeats::clear);
}

#[optimize(size)]
fn emit(text: &[u8]) {
    // SAFETY: `text` is valid for `text.len()` bytes and printed with "%.*s".
    unsafe { bindings::isboot_log(text.as_ptr().cast(), text.len()) }
}

/// Prints one line of `level`, "isboot: " first. Use [`klog!`](crate::klog).
///
/// The message goes through the core's escaper (`isboot_core::escape`), the one choke point
/// for text a target or the firmware chose: a control character or a direction override in
/// it is printed as `\xNN` / `\u{NNNN}`, exactly as `isbootctl` and the host log show it.
// Never inlined: klog! calls it from the I/O path's error branches, which should not carry it.
#[optimize(size)]
#[inline(never)]
pub fn write(level: i32, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<256>::new();
    // LineBuf's write never fails; an over-long line is cut and ends in "...".
    let _ = isboot_core::escape::write_escaped(&mut line, args);
    if level > ALWAYS || debug_level() > ALWAYS {
        emit(line.as_bytes());
        return;
    }
    let key = ratelimit::key(line.as_bytes());
    let now = crate::exec::now_ns();
    match LIMITER.with(|r| r.check(key, now)) {
        Some(Verdict::Quiet) => {}
        Some(Verdict::Print { left_out }) if left_out > 0 => {
            let _ = write!(line, " ({left_out} repeats not shown)");
            emit(line.as_bytes());
        }
        Some(Verdict::Print { .. }) | None => emit(line.as_bytes()),
    }
}

/// `klog!(level, "format", args…)`: print when `net.isboot.debug >= level` (level 0: always,
/// repeats limited while `net.isboot.debug` is 0).
#[macro_export]
macro_rules! klog {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, ::core::format_args!($($arg)*));
        }
    };
}
