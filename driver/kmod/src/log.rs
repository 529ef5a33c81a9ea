// SPDX-License-Identifier: BSD-2-Clause
//! Console logging, gated by `net.isboot.debug` (tunable and writable at run time).
//!
//! Levels: 0 always (errors, and what the user must see: no iBFT, boot disk attached), 1
//! high-level (login, reconnect), 2 informational, 3 full trace. A line is formatted on the
//! stack, so logging works when memory is short, from any context that may call printf(9).

use core::fmt;

use isboot_kmod_logic::linebuf::LineBuf;

use crate::bindings;

pub const ALWAYS: i32 = 0;
pub const HIGH: i32 = 1;
pub const INFO: i32 = 2;
pub const TRACE: i32 = 3;

/// Whether a message of `level` is printed now.
pub fn enabled(level: i32) -> bool {
    // SAFETY: reads an int sysctl with an atomic load; no preconditions.
    level <= ALWAYS || level <= unsafe { bindings::isboot_debug_level() }
}

/// Prints one line, "isboot: " first. Use [`klog!`](crate::klog).
///
/// The message goes through the core's escaper (`isboot_core::escape`), the one choke point
/// for text a target or the firmware chose: a control character or a direction override in
/// it is printed as `\xNN` / `\u{NNNN}`, exactly as `isbootctl` and the host log show it.
pub fn write(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<256>::new();
    // LineBuf's write never fails; an over-long line is cut and ends in "...".
    let _ = isboot_core::escape::write_escaped(&mut line, args);
    let text = line.as_bytes();
    // SAFETY: `text` is valid for `text.len()` bytes and printed with "%.*s".
    unsafe { bindings::isboot_log(text.as_ptr().cast(), text.len()) }
}

/// `klog!(level, "format", args…)`: print when `net.isboot.debug >= level` (level 0: always).
#[macro_export]
macro_rules! klog {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write(::core::format_args!($($arg)*));
        }
    };
}
