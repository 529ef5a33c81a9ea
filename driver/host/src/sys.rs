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

/// Sends `bufs` on a connected socket with one sendmsg(2); `MSG_NOSIGNAL`, so that a peer gone
/// is an error (EPIPE) and never a SIGPIPE, whatever the embedding program did with that
/// signal. Not writev(2): a socket's own call does not cross the file layer first
/// (`fdget_pos`, `rw_verify_area`, both in a kernel profile of the send), and it is made
/// through syscall(2), not glibc's wrapper, which makes it a cancellation point nothing here
/// uses (with [`read_slices`], 80 user instructions less per 4 KiB command by callgrind).
#[allow(unsafe_code)]
pub(crate) fn send_slices(
    socket: &impl AsRawFd,
    bufs: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty one (no name, no control data).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (its documented guarantee), and
    // sendmsg(2) only reads through `msg_iov`.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `socket` is an open descriptor borrowed for the call; `msg` lives on the stack
    // and points at `bufs.len()` live iovecs describing borrowed, initialised bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            libc::c_long::from(socket.as_raw_fd()),
            &msg as *const libc::msghdr,
            libc::c_long::from(libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT),
        )
    };
    usize::try_from(rc).map_err(|_| std::io::Error::last_os_error())
}

/// Reads into `bufs`, in order, with one readv(2) made through syscall(2), without glibc's
/// cancellation-point wrapper (see [`send_slices`]). readv, not recvmsg: the kernel counts it
/// among the process's reads (`syscr` in `/proc/self/io`), which `tests/it/one_read.rs` holds
/// to one per 4 KiB read. 0 means the peer closed its side; a non-blocking socket with nothing
/// to read says `WouldBlock`.
#[allow(unsafe_code)]
pub(crate) fn read_slices(
    socket: &impl AsRawFd,
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> std::io::Result<usize> {
    // SAFETY: `socket` is an open descriptor borrowed for the call; `IoSliceMut` is
    // ABI-compatible with `iovec` on Unix (its documented guarantee), and the `bufs.len()`
    // iovecs describe buffers borrowed mutably for the call, which readv(2) writes only within.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_readv,
            libc::c_long::from(socket.as_raw_fd()),
            bufs.as_mut_ptr().cast::<libc::iovec>(),
            bufs.len() as libc::c_long,
        )
    };
    usize::try_from(rc).map_err(|_| std::io::Error::last_os_error())
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

/// Sets the calling thread's timer slack (prctl(2) `PR_SET_TIMERSLACK`), which threads it
/// starts inherit: how late the kernel may end its sleeps to batch wake-ups.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) fn set_timer_slack(slack: std::time::Duration) {
    let ns = libc::c_ulong::try_from(slack.as_nanos()).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes its value by value and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "prctl(PR_SET_TIMERSLACK): {}",
        std::io::Error::last_os_error()
    );
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

    fn socket_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    /// `read_slices` on a non-blocking socket, tried again while it would block, for up to 5 s
    /// (bytes take a moment to cross loopback).
    fn read_soon(
        s: &std::net::TcpStream,
        bufs: &mut [std::io::IoSliceMut<'_>],
    ) -> std::io::Result<usize> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match read_slices(s, bufs) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < until =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                r => return r,
            }
        }
    }

    #[test]
    fn slices_go_out_in_order_and_come_back_into_the_readers_pieces() {
        use std::io::{IoSlice, IoSliceMut};
        let (a, b) = socket_pair();
        b.set_nonblocking(true).unwrap();
        let sent = send_slices(
            &a,
            &[
                IoSlice::new(b"head"),
                IoSlice::new(b""),
                IoSlice::new(b"-tail"),
            ],
        );
        assert_eq!(sent.unwrap(), 9);
        let (mut x, mut y) = ([0u8; 3], [0u8; 16]);
        let got = read_soon(&b, &mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)]).unwrap();
        assert_eq!(got, 9);
        assert_eq!(&x, b"hea");
        assert_eq!(&y[..6], b"d-tail");
    }

    #[test]
    fn an_empty_socket_would_block_and_a_closed_one_reads_zero() {
        use std::io::IoSliceMut;
        let (a, b) = socket_pair();
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        let e = read_slices(&b, &mut [IoSliceMut::new(&mut buf)]).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "never a blocking wait"
        );
        drop(a);
        let end = read_soon(&b, &mut [IoSliceMut::new(&mut buf)]);
        assert_eq!(end.unwrap(), 0);
    }

    #[test]
    fn a_send_to_a_reset_peer_is_an_error() {
        use std::io::IoSlice;
        let (a, b) = socket_pair();
        // Unread data at close makes the kernel answer with a reset.
        send_slices(&a, &[IoSlice::new(b"unread")]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(b);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match send_slices(&a, &[IoSlice::new(b"more")]) {
                Err(e) => break e,
                Ok(_) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Ok(n) => panic!("still sending ({n} bytes) after the peer reset"),
            }
        };
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{err}"
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
