// SPDX-License-Identifier: BSD-2-Clause
//! The session's byte stream and connector over std TCP.
//!
//! The stream is the executor's [`ThreadedTcp`] (two helper threads per connection ringing
//! doorbells, as kernel socket upcalls do), so nothing here blocks the executor thread and no
//! `unsafe` or reactor is needed. Connecting happens on a helper thread as well; the session
//! bounds the wait and may drop the future, which abandons the attempt (the thread finishes on
//! its own and closes what it got).

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use isboot_core::port::{Connector, IoError, Portal, Transport};
use isboot_executor::host::ThreadedTcp;
use isboot_executor::Doorbell;

/// Bytes buffered per direction and connection: room for a few maximal PDUs so that the helper
/// threads make large system calls.
pub const BUFFER: usize = 1024 * 1024;

/// Maps a std I/O error to the session's transport error.
pub fn io_error(e: &io::Error) -> IoError {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => {
            IoError::Reset
        }
        K::UnexpectedEof => IoError::Closed,
        K::ConnectionRefused => IoError::Refused,
        K::TimedOut | K::WouldBlock => IoError::TimedOut,
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
            IoError::Unreachable
        }
        _ => IoError::Other(e.raw_os_error().unwrap_or(-1)),
    }
}

/// One TCP connection to a target.
#[derive(Debug)]
pub struct HostTransport {
    tcp: ThreadedTcp,
}

impl HostTransport {
    /// Takes over a connected stream.
    pub fn new(stream: TcpStream) -> io::Result<HostTransport> {
        // iSCSI sends small PDUs (commands, R2Ts, NOPs) that must not wait for an ACK.
        stream.set_nodelay(true)?;
        Ok(HostTransport {
            tcp: ThreadedTcp::with_buffer(stream, BUFFER)?,
        })
    }
}

impl Transport for HostTransport {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        self.tcp.poll_read(cx, buf).map_err(|e| io_error(&e))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        self.tcp.poll_write(cx, buf).map_err(|e| io_error(&e))
    }

    fn close(&mut self) {
        self.tcp.close();
    }
}

/// Opens [`HostTransport`]s. The iBFT NIC index of a [`Portal`] is ignored: on a host the
/// routing table picks the interface.
#[derive(Clone, Debug)]
pub struct HostConnector {
    /// Upper bound for one TCP connect, below whatever the session allows.
    pub timeout: Duration,
    /// Connects go here instead of the portal's address when set (tests route a session through a
    /// relay this way without changing what the session believes the portal is).
    pub redirect: Option<SocketAddr>,
}

impl Default for HostConnector {
    fn default() -> Self {
        HostConnector {
            timeout: Duration::from_secs(10),
            redirect: None,
        }
    }
}

impl Connector for HostConnector {
    type Transport = HostTransport;
    type Connect<'a> = HostConnect;

    fn connect(&mut self, portal: Portal) -> HostConnect {
        HostConnect::start(self.redirect.unwrap_or(portal.addr), self.timeout)
    }
}

#[derive(Debug, Default)]
struct Slot {
    result: Mutex<Option<io::Result<HostTransport>>>,
    bell: Doorbell,
}

/// A connect in progress on a helper thread.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct HostConnect {
    slot: Arc<Slot>,
}

impl HostConnect {
    fn start(addr: SocketAddr, timeout: Duration) -> HostConnect {
        let slot: Arc<Slot> = Arc::default();
        let s = slot.clone();
        let spawned = thread::Builder::new()
            .name("isboot-connect".into())
            .spawn(move || {
                let res = TcpStream::connect_timeout(&addr, timeout).and_then(HostTransport::new);
                *s.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(res);
                s.bell.ring();
            });
        if let Err(e) = spawned {
            *slot.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(e));
        }
        HostConnect { slot }
    }
}

impl Future for HostConnect {
    type Output = Result<HostTransport, IoError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The doorbell may have rung before the result was stored in an earlier round; look twice.
        for _ in 0..2 {
            let taken = self
                .slot
                .result
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(res) = taken {
                return Poll::Ready(res.map_err(|e| io_error(&e)));
            }
            if self.slot.bell.poll_wait(cx).is_pending() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
