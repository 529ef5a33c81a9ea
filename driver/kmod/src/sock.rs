// SPDX-License-Identifier: BSD-2-Clause
//! The session's byte stream in the kernel: a TCP socket from `socreate`, non-blocking
//! `soreceive`/`sosend` with `MSG_DONTWAIT`, and upcalls that only ring a doorbell.
//!
//! An upcall runs with a sockbuf lock held, in whatever context the network stack delivers in: it
//! rings the executor's [`Doorbell`] (an atomic flag plus the waiting task's waker, whose wake
//! queues the task and calls the pender, `taskqueue_enqueue`). Futures read or write until the
//! socket would block, then wait on the doorbell; a ring between the two is never lost because
//! the doorbell is level-triggered. The receive upcall rings only once the receive buffer holds
//! the low-water mark (`so_rcv.sb_lowat`), EOF or an error, so a PDU header arriving in pieces
//! costs one wakeup, not one per segment, and a long Data-In segment one per mark's worth.
//!
//! # Invariants
//! - While a [`KSocket`] lives, its upcalls are installed with a pointer to its boxed `Bells`,
//!   which the socket keeps alive; dropping the socket clears the upcalls under the sockbuf locks
//!   the upcalls run under, so none runs afterwards, before it releases that reference and closes
//!   the socket.

use alloc::boxed::Box;
use core::ffi::{c_int, c_void};
use core::future::Future;
use core::mem::MaybeUninit;
use core::net::{IpAddr, SocketAddr};
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use isboot_core::port::{Connector, IoError, Portal, Transport};
use isboot_executor::Doorbell;
use isboot_kmod_logic::errno::{self, SockErr};

use crate::bindings as sys;

/// A kernel error number (`errno.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl Errno {
    pub const WOULDBLOCK: Errno = Errno(sys::EWOULDBLOCK as c_int);
}

impl core::fmt::Display for Errno {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "error {}", self.0)
    }
}

/// One iSCSI Basic Header Segment: the receive low-water mark at a PDU boundary, where a reader
/// never needs fewer bytes (lowered to what a read asks for).
pub const BHS_LEN: usize = 48;

/// A reader needing at least this many bytes (the rest of a long data segment) gets a mark of
/// that many, up to [`LOWAT_MAX`]; below it, at most one BHS, as at a PDU boundary.
const LOWAT_MIN: usize = 16 * 1024;
/// The highest mark asked for: a long Data-In segment wakes the reader once per this many bytes
/// (or half the receive buffer, where the helper caps it) instead of once per arriving segment.
const LOWAT_MAX: usize = 256 * 1024;

/// The receive low-water mark for a reader that needs `need` more bytes. Only bytes the target
/// has to send are asked for, so the doorbell always rings in the end.
fn lowat_for(need: usize) -> usize {
    if need < LOWAT_MIN {
        need.min(BHS_LEN)
    } else {
        need.min(LOWAT_MAX)
    }
}

/// The two doorbells a connection's upcalls ring: data (or EOF, or an error) to read, and send
/// space (or connection completion, or failure).
#[derive(Debug, Default)]
pub struct Bells {
    pub rx: Doorbell,
    pub tx: Doorbell,
}

/// Tries `op` until it stops saying "would block" or the doorbell stays quiet; bounded so that a
/// flapping doorbell cannot spin the taskqueue thread.
fn retry<T>(bell: &Doorbell, cx: &mut Context<'_>, mut op: impl FnMut() -> Option<T>) -> Poll<T> {
    for _ in 0..RETRIES {
        if let Some(v) = op() {
            return Poll::Ready(v);
        }
        if bell.poll_wait(cx).is_pending() {
            return Poll::Pending;
        }
    }
    // Still rung after every retry: yield, and come back through the run queue.
    cx.waker().wake_by_ref();
    Poll::Pending
}

const RETRIES: usize = 4;

/// Receive upcall: rings the doorbell once enough bytes for the low-water mark, EOF or an error
/// are there.
///
/// # Safety
/// `arg` is the `Bells` installed by `KSocket::connect`, kept alive until the upcall is cleared;
/// called by the socket layer with the receive sockbuf lock held.
unsafe extern "C" fn rcv_upcall(so: *mut sys::socket, arg: *mut c_void, _waitflag: c_int) -> c_int {
    // SAFETY: the receive sockbuf lock is held by our caller, as the helper asserts.
    if unsafe { sys::isboot_so_rcv_ready(so) } != 0 {
        // SAFETY: per the contract above.
        let bells = unsafe { &*arg.cast::<Bells>() };
        bells.rx.ring();
    }
    sys::SU_OK as c_int
}

/// Send upcall: space was freed, the connection completed, or it failed.
///
/// # Safety
/// As [`rcv_upcall`], with the send sockbuf lock held.
unsafe extern "C" fn snd_upcall(
    _so: *mut sys::socket,
    arg: *mut c_void,
    _waitflag: c_int,
) -> c_int {
    // SAFETY: per the contract above.
    let bells = unsafe { &*arg.cast::<Bells>() };
    bells.tx.ring();
    sys::SU_OK as c_int
}

/// A connected (or connecting) kernel TCP socket.
pub struct KSocket {
    so: *mut sys::socket,
    bells: Box<Bells>,
    lowat: usize,
    /// The last read came back short: the receive buffer was empty after it, so the next read
    /// waits for the doorbell instead of a `soreceive` that would only say EWOULDBLOCK.
    rx_drained: bool,
}

// SAFETY: a kernel socket may be used from any thread; this one is only used from the taskqueue
// thread and the teardown path after the taskqueue is drained.
unsafe impl Send for KSocket {}

impl core::fmt::Debug for KSocket {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KSocket").field("so", &self.so).finish()
    }
}

/// `struct sockaddr_in` / `sockaddr_in6` for an address.
pub enum SockAddr {
    V4(sys::sockaddr_in),
    V6(sys::sockaddr_in6),
}

impl core::fmt::Debug for SockAddr {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SockAddr::V4(_) => f.write_str("SockAddr::V4"),
            SockAddr::V6(_) => f.write_str("SockAddr::V6"),
        }
    }
}

impl SockAddr {
    /// `scope_id` is the zone (interface index) of an IPv6 link-local address, 0 otherwise.
    #[optimize(size)]
    pub fn new(addr: SocketAddr, scope_id: u32) -> SockAddr {
        match addr.ip() {
            IpAddr::V4(ip) => {
                // SAFETY: plain C struct; all-zero is a valid (unset) sockaddr.
                let mut sin: sys::sockaddr_in = unsafe { core::mem::zeroed() };
                sin.sin_len = core::mem::size_of::<sys::sockaddr_in>() as u8;
                sin.sin_family = sys::AF_INET as u8;
                sin.sin_port = addr.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
                SockAddr::V4(sin)
            }
            IpAddr::V6(ip) => {
                // SAFETY: plain C struct; all-zero is a valid (unset) sockaddr.
                let mut sin6: sys::sockaddr_in6 = unsafe { core::mem::zeroed() };
                sin6.sin6_len = core::mem::size_of::<sys::sockaddr_in6>() as u8;
                sin6.sin6_family = sys::AF_INET6 as u8;
                sin6.sin6_port = addr.port().to_be();
                sin6.sin6_addr.__u6_addr.__u6_addr8 = ip.octets();
                // in6_pcbconnect takes the zone of a link-local destination from here
                // (netinet6/scope6.c sa6_embedscope); without it no route matches the
                // unscoped fe80:: address and the connect fails.
                sin6.sin6_scope_id = scope_id;
                SockAddr::V6(sin6)
            }
        }
    }

    #[optimize(size)]
    pub fn family(&self) -> c_int {
        match self {
            SockAddr::V4(_) => sys::AF_INET as c_int,
            SockAddr::V6(_) => sys::AF_INET6 as c_int,
        }
    }

    #[optimize(size)]
    pub fn as_mut_ptr(&mut self) -> *mut sys::sockaddr {
        match self {
            SockAddr::V4(s) => ptr::from_mut(s).cast(),
            SockAddr::V6(s) => ptr::from_mut(s).cast(),
        }
    }
}

#[optimize(size)]
fn errno(e: c_int) -> Result<(), Errno> {
    if e == 0 {
        Ok(())
    } else {
        Err(Errno(e))
    }
}

impl KSocket {
    /// Creates a TCP socket, installs the upcalls and starts connecting to `dst` (`scope_id`:
    /// see [`SockAddr::new`]). Completion is observed with [`KSocket::poll_connected`].
    #[optimize(size)]
    pub fn connect(dst: SocketAddr, scope_id: u32) -> Result<KSocket, Errno> {
        // Every reconnect comes here, possibly while memory is short (a diskless machine whose
        // root disk is away cannot page out): an infallible allocation would end in a kernel
        // panic, a refused one is a failed attempt the session retries after its backoff.
        let bells =
            crate::kalloc::try_box(Bells::default()).map_err(|_| Errno(sys::ENOMEM as c_int))?;
        let mut sa = SockAddr::new(dst, scope_id);
        let mut so: *mut sys::socket = ptr::null_mut();
        // SAFETY: `so` receives the new socket; the helper passes the current thread's cred.
        errno(unsafe {
            sys::isboot_socreate(
                sa.family(),
                &mut so,
                sys::SOCK_STREAM as c_int,
                sys::IPPROTO_TCP as c_int,
            )
        })?;
        // INVARIANT: the upcalls are installed with `arg` = the doorbell this socket keeps.
        let sock = KSocket {
            so,
            bells,
            lowat: BHS_LEN,
            rx_drained: false,
        };
        let arg = ptr::from_ref::<Bells>(&sock.bells)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: `so` is a fresh socket; options are plain ints; the upcall argument outlives
        // the upcalls (module invariant, enforced by Drop).
        unsafe {
            // Small PDUs (NOP-Out, R2T answers, SCSI commands) must not wait for Nagle.
            sys::isboot_so_setopt_int(so, sys::IPPROTO_TCP as c_int, sys::TCP_NODELAY as c_int, 1);
            sys::isboot_so_setopt_int(so, sys::SOL_SOCKET as c_int, sys::SO_KEEPALIVE as c_int, 1);
            sys::isboot_so_upcalls_set(
                so,
                Some(rcv_upcall),
                Some(snd_upcall),
                arg,
                BHS_LEN as c_int,
            );
        }
        // SAFETY: `so` is ours, `sa` a valid sockaddr of the socket's family; `soconnect` only
        // starts the handshake and does not sleep for it.
        errno(unsafe { sys::soconnect(so, sa.as_mut_ptr(), sys::isboot_curthread()) })?;
        Ok(sock)
    }

    /// Ready when the handshake finished; an error when it failed (refused, unreachable, reset).
    #[optimize(size)]
    pub fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<Result<(), Errno>> {
        let so = self.so;
        retry(&self.bells.tx, cx, || {
            let mut err: c_int = 0;
            // SAFETY: `so` is a live socket owned by `self`.
            match unsafe { sys::isboot_so_conn_state(so, &mut err) } {
                1 => Some(Ok(())),
                0 => None,
                _ => Some(Err(Errno(err))),
            }
        })
    }

    /// Reads what is there into `buf`; `Ok(0)` means the peer closed. Pending (waker stored) when
    /// nothing is available. The receive low-water mark follows `buf.len()` up to one BHS, so a
    /// reader that asks for what it needs next is woken once that much has arrived.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, Errno>> {
        self.poll_read_pair(cx, buf, &mut [])
    }

    /// As [`KSocket::poll_read`], reading on into `second` in the same `soreceive` once `first`
    /// is full. A read that comes back short found the receive buffer empty: the next one waits
    /// for the receive upcall's doorbell first, which saves a `soreceive` per PDU that would
    /// only say EWOULDBLOCK. The doorbell is cleared before each read, so a ring during the
    /// read (data it may not have seen) is kept.
    pub fn poll_read_pair(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, Errno>> {
        if first.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let want = lowat_for(first.len());
        // The mark decides when the doorbell rings: before waiting for it, make it what this
        // read needs. A mark above the need would never ring, so one that is too high comes
        // down before any read that may end in a wait; a higher one is only worth a change
        // when the reader is about to wait. Bytes that came since the drain without reaching
        // an old, higher mark rang nothing: after lowering it, read instead of trusting the
        // doorbell.
        let drained = core::mem::take(&mut self.rx_drained);
        let lowered = (drained || want < self.lowat) && self.set_lowat(want);
        if drained && !lowered {
            if self.bells.rx.poll_wait(cx).is_pending() {
                self.rx_drained = true;
                return Poll::Pending;
            }
        } else {
            self.bells.rx.take();
        }
        let so = self.so;
        let total = first.len().saturating_add(second.len());
        let got = retry(&self.bells.rx, cx, || {
            let mut done = 0usize;
            // SAFETY: `first` and `second` are valid writable kernel buffers of their lengths
            // for the call (an empty `second` is left out of the uio).
            let e = unsafe {
                sys::isboot_so_recv2(
                    so,
                    first.as_mut_ptr().cast(),
                    first.len(),
                    second.as_mut_ptr().cast(),
                    second.len(),
                    &mut done,
                )
            };
            match e {
                _ if done > 0 => Some(Ok(done)),
                0 => Some(Ok(0)),
                e if e == Errno::WOULDBLOCK.0 => None,
                e => Some(Err(Errno(e))),
            }
        });
        if let Poll::Ready(Ok(n)) = got {
            self.rx_drained = n > 0 && n < total;
        }
        got
    }

    /// Sets the receive low-water mark to `want` unless it is that already (the helper caps it
    /// at half the receive buffer); true if it was lowered.
    fn set_lowat(&mut self, want: usize) -> bool {
        if want == self.lowat {
            return false;
        }
        // SAFETY: live socket; the helper takes the sockbuf lock. `want` <= LOWAT_MAX fits
        // c_int.
        unsafe { sys::isboot_so_set_rcv_lowat(self.so, want as c_int) };
        let lowered = want < self.lowat;
        self.lowat = want;
        lowered
    }

    /// Writes as much of `buf` as the send buffer takes. Pending (waker stored) when it takes
    /// nothing.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Errno>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let so = self.so;
        retry(&self.bells.tx, cx, || {
            let mut done = 0usize;
            // SAFETY: `buf` is a valid readable kernel buffer of `buf.len()` bytes for the call;
            // `sosend` copies from it before returning.
            let e = unsafe { sys::isboot_so_send(so, buf.as_ptr().cast(), buf.len(), &mut done) };
            match e {
                _ if done > 0 => Some(Ok(done)),
                e if e == 0 || e == Errno::WOULDBLOCK.0 => None,
                e => Some(Err(Errno(e))),
            }
        })
    }
}

impl KSocket {
    /// Writes as much of the concatenation of `bufs` as the send buffer takes, in one `sosend`
    /// with one iovec per piece (at most [`sys::ISBOOT_IOV_MAX`]; the rest waits for the next
    /// call): a PDU's header and its data, straight from a CCB, with no copy but the socket's.
    /// Pending (waker stored) when it takes nothing.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[&[u8]],
    ) -> Poll<Result<usize, Errno>> {
        const MAX: usize = sys::ISBOOT_IOV_MAX as usize;
        // Left uninitialised past `n`: clearing 512 bytes per send would cost more than the
        // header it carries.
        let mut iov = [const { MaybeUninit::<sys::isboot_iov>::uninit() }; MAX];
        let mut n = 0usize;
        for (slot, b) in iov.iter_mut().zip(bufs.iter().filter(|b| !b.is_empty())) {
            slot.write(sys::isboot_iov {
                base: b.as_ptr().cast(),
                len: b.len(),
            });
            n = n.saturating_add(1);
        }
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let so = self.so;
        retry(&self.bells.tx, cx, || {
            let mut done = 0usize;
            // SAFETY: the first `n` iovecs are initialised (above) and name readable buffers that
            // live for the call (`bufs` borrows them); the helper reads only those `n`; `sosend`
            // copies from them before returning; `n` <= MAX fits c_int.
            let e = unsafe { sys::isboot_so_sendv(so, iov.as_ptr().cast(), n as c_int, &mut done) };
            match e {
                _ if done > 0 => Some(Ok(done)),
                e if e == 0 || e == Errno::WOULDBLOCK.0 => None,
                e => Some(Err(Errno(e))),
            }
        })
    }
}

impl Drop for KSocket {
    // Not inlined: the session's future (built for speed) drops a transport on many paths.
    #[optimize(size)]
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: the helper clears both upcalls under the sockbuf locks the upcalls run under,
        // so after it no upcall can use the `Bells` pointer; then the socket is closed, which
        // frees it (soclose aborts a connection that is still open).
        unsafe {
            sys::isboot_so_upcalls_clear(self.so);
            sys::soclose(self.so);
        }
    }
}

/// The session's view of a socket error. Cold and out of line: inlined, each read and write
/// (and the connect) carried its own jump table for the classification.
#[cold]
#[optimize(size)]
#[inline(never)]
pub fn io_error(e: Errno) -> IoError {
    match errno::classify(e.0) {
        SockErr::Reset => IoError::Reset,
        SockErr::Refused => IoError::Refused,
        SockErr::Unreachable => IoError::Unreachable,
        SockErr::TimedOut => IoError::TimedOut,
        SockErr::Other(n) => IoError::Other(n),
    }
}

/// A connection as the session's [`Transport`]; closing drops the socket.
#[derive(Debug)]
pub struct KTransport {
    sock: Option<KSocket>,
}

impl Transport for KTransport {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        match &mut self.sock {
            Some(s) => s.poll_read(cx, buf).map_err(io_error),
            None => Poll::Ready(Err(IoError::Closed)),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        match &mut self.sock {
            Some(s) => s.poll_write(cx, buf).map_err(io_error),
            None => Poll::Ready(Err(IoError::Closed)),
        }
    }

    fn poll_read_pair(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        match &mut self.sock {
            Some(s) => s.poll_read_pair(cx, first, second).map_err(io_error),
            None => Poll::Ready(Err(IoError::Closed)),
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[&[u8]],
    ) -> Poll<Result<usize, IoError>> {
        match &mut self.sock {
            Some(s) => s.poll_write_vectored(cx, bufs).map_err(io_error),
            None => Poll::Ready(Err(IoError::Closed)),
        }
    }

    #[optimize(size)]
    fn close(&mut self) {
        // Drop clears the upcalls and closes (aborting a still-open connection).
        self.sock = None;
    }
}

/// Most iBFT NICs whose zones a connector knows (the iBFT has two).
pub const MAX_ZONES: usize = 4;

/// Opens kernel TCP connections for the session. Knows the interface index of each configured
/// iBFT NIC: the zone an IPv6 link-local target on that NIC is reached in.
#[derive(Debug, Default)]
pub struct KConnector {
    /// (iBFT NIC index, interface index); interface index 0 marks an unused slot.
    zones: [(u8, u32); MAX_ZONES],
}

impl KConnector {
    #[optimize(size)]
    pub fn new(zones: [(u8, u32); MAX_ZONES]) -> KConnector {
        KConnector { zones }
    }

    #[optimize(size)]
    fn zone(&self, portal: &Portal) -> u32 {
        let IpAddr::V6(ip) = portal.addr.ip() else {
            return 0;
        };
        if !isboot_kmod_logic::netplan::is_link_local6(&ip.octets()) {
            return 0;
        }
        self.zones
            .iter()
            .find(|&&(nic, ifindex)| nic == portal.nic && ifindex != 0)
            .map_or(0, |&(_, ifindex)| ifindex)
    }
}

/// The future of [`KConnector::connect`]: creates the socket on first poll, then waits for the
/// handshake. Dropping it closes the half-open socket.
#[derive(Debug)]
pub struct KConnect {
    portal: SocketAddr,
    scope_id: u32,
    sock: Option<KSocket>,
}

impl Future for KConnect {
    type Output = Result<KTransport, IoError>;

    // Not inlined into the session's future, which is built for speed.
    #[optimize(size)]
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.sock.is_none() {
            let sock = KSocket::connect(self.portal, self.scope_id).map_err(io_error)?;
            self.sock = Some(sock);
        }
        let Some(sock) = &self.sock else {
            return Poll::Ready(Err(IoError::Closed));
        };
        match sock.poll_connected(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                self.sock = None;
                Poll::Ready(Err(io_error(e)))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(KTransport {
                sock: self.sock.take(),
            })),
        }
    }
}

impl Connector for KConnector {
    type Transport = KTransport;
    type Connect<'a> = KConnect;

    #[optimize(size)]
    fn connect(&mut self, portal: Portal) -> KConnect {
        // The route set up for the boot NIC carries the connection; `portal.nic` names that NIC
        // (and so the zone of a link-local target).
        KConnect {
            scope_id: self.zone(&portal),
            portal: portal.addr,
            sock: None,
        }
    }

    /// A login step runs on the taskqueue thread between polls of the session, holding no
    /// lock: its allocations (login text, CHAP) may wait for memory. The rest of the session
    /// allocates with `M_NOWAIT` and handles a failure.
    #[optimize(size)]
    fn login_step<R>(&mut self, f: impl FnOnce() -> R) -> R {
        crate::kalloc::sleepable(f)
    }
}
