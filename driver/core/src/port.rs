// SPDX-License-Identifier: BSD-2-Clause
//! What the session asks of a platform: a byte stream to a portal, a way to open one, random
//! bytes, a log, and somewhere to deliver completions.
//!
//! The kernel implements these over a kernel socket with upcalls ringing doorbells, `arc4random`
//! and `printf` gated by `net.isboot.debug`; the host crate over non-blocking TCP; the core's tests
//! over a scripted in-memory target. Time is not a port: it comes from the executor's
//! [`Timer`](isboot_executor::Timer), which the platform drives.
#![cfg_attr(not(test), deny(clippy::disallowed_methods, clippy::disallowed_macros))]

use core::fmt;
use core::future::Future;
use core::net::SocketAddr;
use core::task::{Context, Poll};

use crate::scsi::{Completion, DataBuf};

/// Why a transport operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The peer closed the connection (EOF where more bytes were needed).
    Closed,
    /// The connection was reset or broke (ECONNRESET, EPIPE, ...).
    Reset,
    /// Connecting was refused (ECONNREFUSED).
    Refused,
    /// No route, network down, host unreachable.
    Unreachable,
    /// Connecting took too long.
    TimedOut,
    /// Any other platform error number.
    Other(i32),
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IoError::Closed => f.write_str("connection closed by the target"),
            IoError::Reset => f.write_str("connection reset"),
            IoError::Refused => f.write_str("connection refused"),
            IoError::Unreachable => f.write_str("target unreachable"),
            IoError::TimedOut => f.write_str("connect timed out"),
            IoError::Other(e) => write!(f, "I/O error {e}"),
        }
    }
}

impl core::error::Error for IoError {}

/// Why a LOGICAL UNIT RESET did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmfError {
    /// The session is not in full feature phase (or too many resets are in flight).
    NotConnected,
    /// The connection was lost before the target answered.
    ConnectionLost,
    /// The target answered with this TMF response code (RFC 7143 §11.6.1).
    Refused(u8),
}

impl fmt::Display for TmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TmfError::NotConnected => f.write_str("session not connected"),
            TmfError::ConnectionLost => f.write_str("connection lost before the answer"),
            TmfError::Refused(r) => write!(f, "target refused (response {r})"),
        }
    }
}

impl core::error::Error for TmfError {}

/// What the session is doing, as reported to [`Events::state`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// Connecting and logging in (first time).
    #[default]
    LoggingIn,
    /// In full feature phase; commands flow.
    Up,
    /// The connection was lost; reconnecting (commands are kept).
    Recovering,
    /// Logged out or given up; every request has completed.
    Closed,
}

/// A connected, non-blocking byte stream (one TCP connection).
///
/// `poll_*` never block: when no progress is possible they arrange for `cx`'s waker to be woken
/// once it may be (a socket upcall ringing a doorbell) and return `Pending`. Dropping a transport
/// must close it as [`Transport::close`] does: the session drops one without closing it when a
/// shutdown interrupts a login.
pub trait Transport: Send {
    /// Reads into `buf` (never empty). `Ok(0)` means the peer closed the stream.
    ///
    /// `buf` is what the reader needs next, never more than the peer has to send: a transport
    /// may hold a waiting reader back until that many bytes have arrived (a receive low-water
    /// mark: the module and the host do so for long data segments), so a larger buffer could
    /// wait for bytes that never come. Fewer bytes may still be returned.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>>;
    /// Writes a prefix of `buf` (never empty), returning how much was taken.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>>;
    /// Writes a prefix of the concatenation of `bufs` (at least one byte in all), returning how
    /// much was taken, as `writev(2)` does: the session sends a PDU's header from its own buffer
    /// and the data straight from the request's buffer in one call. Every byte taken must have
    /// been copied (into the socket buffer) before this returns. The default writes the first
    /// non-empty buffer only.
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[&[u8]],
    ) -> Poll<Result<usize, IoError>> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.poll_write(cx, b),
            None => Poll::Ready(Ok(0)),
        }
    }
    /// Reads into `first`, then `second`, in one call as `readv(2)` does (`first` never
    /// empty): the session reads a data segment straight into the request's buffer and, in
    /// the same call, the next PDU's header if it is already there. `first` is what the reader
    /// needs (as `buf` of [`Transport::poll_read`]); `second` takes only what is already there. A read that returns less
    /// than both hold tells the transport the stream is drained. The default reads into
    /// `first` only.
    fn poll_read_pair(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let _ = second;
        self.poll_read(cx, first)
    }
    /// Whether the receive path may read a header together with the Data-In segment it most
    /// likely carries, with [`Transport::poll_read_three`] (the receive path's `DataGuess`):
    /// worth it where every read is a system call (the host's `readv`), as it saves one per
    /// Data-In PDU, and not where a read is a function call (the kernel's `soreceive`), which
    /// would only pay the code. A transport that says so reads all three buffers in one call.
    /// A constant per type (a method only so that the trait stays usable as `dyn`): the
    /// default's `false` compiles the path away.
    #[inline(always)]
    fn guess_data_in(&self) -> bool {
        false
    }
    /// Reads into `first`, then `second`, then `third`, in one call as `readv(2)` does (`first`
    /// never empty). `first` is what the reader needs (as `buf` of [`Transport::poll_read`]);
    /// `second` and `third` take only what is already there. A read that returns less than all
    /// three hold tells the transport the stream is drained. The default reads into `first`
    /// and `second` only.
    fn poll_read_three(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
        third: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let _ = third;
        self.poll_read_pair(cx, first, second)
    }
    /// Told before the session reads a PDU header: `answers` commands are in the session, each
    /// owing an answer, and `data_in()` gives the most Data-In bytes one read sent on this
    /// connection still expects (0 if none does): bytes the target owes, unless it ends that
    /// command early (an error, a short transfer). A transport whose reader wakes cost CPU may
    /// use them: while many answers are owed, look at the stream on a short timer instead of
    /// waiting to be woken (a target thread that wakes a sleeping reader pays for the wake-up);
    /// while a long read streams in, be woken once a good part of its data is there instead of
    /// at every piece, with a bound on the wait for a target that sends less. `data_in` looks
    /// at every command, so it is a function, called only by a transport that wants it. The
    /// default ignores both, and then the call compiles away.
    #[inline(always)]
    fn awaiting(&mut self, answers: usize, data_in: &dyn Fn() -> usize) {
        let _ = (answers, data_in);
    }
    /// Closes the stream at once (no lingering); later polls fail. Idempotent.
    fn close(&mut self);
}

/// Where to connect: the target portal and which iBFT NIC to use for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Portal {
    pub addr: SocketAddr,
    /// iBFT NIC index the connection must leave from (the kernel binds to that interface).
    pub nic: u8,
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (nic {})", crate::ipfmt::Addr(&self.addr), self.nic)
    }
}

/// Opens transports. The session calls it for the first connection, after every connection loss
/// and for login redirects.
pub trait Connector: Send {
    type Transport: Transport;
    type Connect<'a>: Future<Output = Result<Self::Transport, IoError>> + Send
    where
        Self: 'a;

    /// Starts connecting to `portal`. The session bounds the wait with its own timeout and drops
    /// the future when it passes, so dropping must abandon the attempt cleanly.
    fn connect(&mut self, portal: Portal) -> Self::Connect<'_>;

    /// Runs one synchronous step of a login: copying the target's configuration, building the
    /// next Login Request's text, reading a Login Response's (with CHAP). These steps allocate
    /// with infallible collections; everything else a running session needs is reserved when
    /// it is created or logs in. A platform whose allocations fail when memory is short (the
    /// kernel, where the polling context allocates with `M_NOWAIT`) lets them wait for memory
    /// here: the session calls this from its polling context between awaits, holding no lock.
    /// The default runs `f` as it is.
    fn login_step<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// A source of unpredictable bytes (ISID, CHAP challenges, reconnect jitter).
pub trait Random: Send {
    fn fill(&mut self, buf: &mut [u8]);

    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }
}

/// Message levels, matching `net.isboot.debug`: 0 failures the admin must see whatever the
/// setting (the default is 0), 1 high-level events (login, connection loss, errors), 2
/// informational (negotiated values, reconnect attempts), 3 full trace (every PDU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Shown at every setting: why logins fail, protocol violations, connections that die
    /// right after each login. The session rate-limits these (the first time, then after 2,
    /// 4, 8, ... in a row), so a target that fails forever does not flood the console.
    Error = 0,
    Note = 1,
    Info = 2,
    Trace = 3,
}

/// Where the session's messages go. Must never block for long and may be called from the
/// polling context only.
pub trait Log: Send + Sync {
    fn enabled(&self, level: Level) -> bool;
    fn log(&self, level: Level, args: fmt::Arguments<'_>);
}

impl<T: Log + ?Sized> Log for &T {
    fn enabled(&self, level: Level) -> bool {
        (**self).enabled(level)
    }
    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        (**self).log(level, args)
    }
}

/// A log that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLog;

impl Log for NoLog {
    fn enabled(&self, _level: Level) -> bool {
        false
    }
    fn log(&self, _level: Level, _args: fmt::Arguments<'_>) {}
}

/// Where the session reports to the platform. Called from the polling context.
pub trait Events: Send {
    /// The data buffer of the platform's requests (`Vec<u8>` on a host, the CCB's memory in the
    /// kernel).
    type Buf: DataBuf;
    /// A request finished (exactly once per submitted request).
    fn complete(&mut self, completion: Completion<Self::Buf>);
    /// A LOGICAL UNIT RESET asked for with `tag` finished; `Ok` when the target performed it.
    fn reset_done(&mut self, tag: u64, result: Result<(), TmfError>);
    /// The session changed state (the kernel rescans the bus after `Up`, and keeps statistics).
    fn state(&mut self, state: State);
    /// The target reported a SCSI asynchronous event (Async Message event 0) for `lun`, with
    /// its sense data (e.g. REPORTED LUNS DATA HAS CHANGED: rescan). Ignored by default.
    fn scsi_event(&mut self, lun: crate::lun::Lun, sense: &crate::scsi::Sense) {
        let _ = (lun, sense);
    }
    /// A login attempt failed or a connection was lost: `error` says why, as
    /// [`Status::last_error`](crate::session::Status::last_error) does from now on (the
    /// kernel's `net.isboot.session.last_error`). Called once per failure, before the wait
    /// for the next attempt. Ignored by default.
    fn error(&mut self, error: &crate::session::LastError) {
        let _ = error;
    }
}

/// Writes a formatted message if `level` is enabled: `log!(log, Level::Note, "x {}", y)`.
#[macro_export]
macro_rules! log {
    ($log:expr, $level:expr, $($arg:tt)+) => {{
        let l = &$log;
        let lv = $level;
        if $crate::port::Log::enabled(l, lv) {
            $crate::port::Log::log(l, lv, format_args!($($arg)+));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn portal_names_address_and_nic() {
        let portal = Portal {
            addr: "[2001:db8::1]:3260".parse().unwrap(),
            nic: 1,
        };
        assert_eq!(format!("{portal}"), "[2001:db8::1]:3260 (nic 1)");
    }
}
