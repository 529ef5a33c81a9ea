// SPDX-License-Identifier: BSD-2-Clause
//! The panic handler: a Rust panic in the kernel is a kernel panic, with the message.
//!
//! The core never panics on input, so reaching this is a bug in the driver; unwinding is not
//! available (panic=abort) and continuing would leave the root disk in an unknown state. The
//! message is formatted on the stack: the allocator may be what failed.

use core::fmt::Write;
use core::panic::PanicInfo;

use isboot_kmod_logic::linebuf::LineBuf;

use crate::bindings;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut line = LineBuf::<256>::new();
    // LineBuf's write never fails; a cut message still names the location first.
    let _ = write!(line, "{info}");
    let text = line.as_bytes();
    // SAFETY: `text` is valid for `text.len()` bytes; isboot_panic prints it with "%.*s" and
    // never returns.
    unsafe { bindings::isboot_panic(text.as_ptr().cast(), text.len()) }
}
