// SPDX-License-Identifier: BSD-2-Clause
//! Randomness, logging and a socket option for the session on a host.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use isboot_core::port::{Level, Log, Random};

/// Random bytes from the kernel (`/dev/urandom`, which never blocks once the pool is seeded).
#[derive(Debug)]
pub struct OsRandom {
    file: Option<File>,
    /// Fallback state if /dev/urandom cannot be read (a very restricted sandbox): a SplitMix64
    /// stream seeded from the clock and address space layout. Good enough for ISIDs and jitter;
    /// CHAP challenges are made from it only in that degenerate case, which is logged once.
    fallback: u64,
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl OsRandom {
    pub fn new() -> OsRandom {
        let file = File::open("/dev/urandom").ok();
        if file.is_none() {
            eprintln!("isboot: cannot open /dev/urandom; using a clock-seeded generator");
        }
        let stack = 0u8;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (&stack as *const u8 as u64).rotate_left(32);
        OsRandom {
            file,
            fallback: seed,
        }
    }

    fn splitmix(&mut self) -> u64 {
        self.fallback = self.fallback.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.fallback;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        if let Some(f) = self.file.as_mut() {
            if f.read_exact(buf).is_ok() {
                return;
            }
            eprintln!("isboot: reading /dev/urandom failed; using a clock-seeded generator");
            self.file = None;
        }
        for chunk in buf.chunks_mut(8) {
            let v = self.splitmix().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Messages to stderr up to a level (0 errors only, 1 notes, 2 info, 3 trace), as
/// `net.isboot.debug` does in the kernel. Each line is written with one call so threads do not interleave.
#[derive(Clone, Copy, Debug)]
pub struct StderrLog {
    level: u8,
}

impl StderrLog {
    pub fn new(level: u8) -> StderrLog {
        StderrLog {
            level: level.min(3),
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// The level from the environment variable `ISBOOT_DEBUG` (0..=3), else `default`.
    pub fn from_env(default: u8) -> StderrLog {
        let level = std::env::var("ISBOOT_DEBUG")
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(default);
        StderrLog::new(level.min(3))
    }
}

impl Log for StderrLog {
    fn enabled(&self, level: Level) -> bool {
        level as u8 <= self.level
    }

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let tag = match level {
            Level::Error => "error",
            Level::Note => "note",
            Level::Info => "info",
            Level::Trace => "trace",
        };
        let _ = std::io::stderr()
            .lock()
            .write_all(log_line(tag, args).as_bytes());
    }
}

/// One line of the log: `[tag] message\n`, the message escaped by the core's choke point so
/// that target or firmware text in it cannot break the line or drive the terminal.
fn log_line(tag: &str, args: fmt::Arguments<'_>) -> String {
    // The core's messages start with "isboot: " already.
    let mut line = format!("[{tag}] ");
    let _ = isboot_core::escape::write_escaped(&mut line, args);
    line.push('\n');
    line
}

/// Sets a TCP socket's receive low-water mark (`SO_RCVLOWAT`, which std does not offer); false
/// if the kernel refused (the socket then keeps its old mark, which only costs wakeups).
#[allow(unsafe_code)]
pub(crate) fn set_rcvlowat(socket: &impl AsRawFd, bytes: usize) -> bool {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `socket` is an open socket borrowed for the call; the option value is a live
    // `c_int` on the stack and its exact size is passed, as setsockopt(2) requires.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// A non-blocking, close-on-exec timer on the monotonic clock (timerfd_create(2)), for the
/// runtime's loop to wake at its next deadline without a timeout on every `epoll_wait`.
#[allow(unsafe_code)]
pub(crate) fn timer_fd() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor that
    // nothing else owns.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created above and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Arms `timer` to expire once, `after` from now (at least 1 ns: a zero value would disarm it).
/// Setting it also clears expirations not read yet, so an expiry is reported once per arming.
#[allow(unsafe_code)]
pub(crate) fn arm_timer(timer: &impl AsRawFd, after: std::time::Duration) -> std::io::Result<()> {
    let after = after.max(std::time::Duration::from_nanos(1));
    let value = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(after.subsec_nanos()),
        },
    };
    // SAFETY: `timer` is an open timerfd borrowed for the call; `value` is a live itimerspec on
    // the stack and the old value is not asked for (null), as timerfd_settime(2) allows.
    let rc = unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &value, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_draws() {
        let mut r = OsRandom::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn a_log_line_is_one_line_whatever_the_message_carries() {
        let forged = "x\nisbootctl: boot disk usable: \u{1b}[1m";
        let line = log_line("note", format_args!("isboot: target chose {forged}"));
        assert_eq!(
            line,
            "[note] isboot: target chose x\\x0aisbootctl: boot disk usable: \\x1b[1m\n"
        );
    }

    #[test]
    fn log_level_gates_messages() {
        let l = StderrLog::new(2);
        assert!(l.enabled(Level::Note) && l.enabled(Level::Info));
        assert!(!l.enabled(Level::Trace));
        assert!(!StderrLog::new(0).enabled(Level::Note));
        assert!(
            StderrLog::new(0).enabled(Level::Error),
            "errors show at the default level"
        );
        assert_eq!(StderrLog::new(9).level(), 3);
    }
}
