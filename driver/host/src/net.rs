// SPDX-License-Identifier: BSD-2-Clause
//! The session's byte stream and connector over std TCP.
//!
//! The stream is non-blocking and read and written by the session on the executor thread,
//! straight into and out of request buffers. When the socket would block, the task's waker is
//! stored and a small reactor thread per connection (epoll through `mio`) wakes it on readiness,
//! as a kernel socket upcall rings a doorbell. One helper thread per connection, and
//! no thread hop when data is already there.
//!
//! Connecting happens on a helper thread; the session bounds the wait and may drop the future,
//! which abandons the attempt (the thread finishes on its own and closes what it got).

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use isboot_core::port::{Connector, IoError, Portal, Transport};
use isboot_executor::Doorbell;
use mio::{Events, Interest, Token};

use crate::readiness::{Slot as WakerSlot, Wakers};
use crate::runtime::Reactor;

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

const SOCKET: Token = Token(0);
const STOP: Token = Token(1);

/// Who watches the socket's readiness.
#[derive(Debug)]
enum Watch {
    /// A reactor thread of this connection's own.
    Own {
        stop: Arc<mio::Waker>,
        thread: Option<thread::JoinHandle<()>>,
    },
    /// The executor loop of a [`HostRuntime`](crate::runtime::HostRuntime).
    Shared { reactor: Arc<Reactor>, token: Token },
}

/// What `Waker::will_wake` compares (data and vtable addresses): two wakers with the same
/// identity wake the same task. Addresses only, never followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WakerId(usize, usize);

impl WakerId {
    fn of(w: &Waker) -> WakerId {
        WakerId(w.data() as usize, w.vtable() as *const _ as usize)
    }
}

/// One TCP connection to a target.
#[derive(Debug)]
pub struct HostTransport {
    stream: mio::net::TcpStream,
    wakers: Arc<Wakers>,
    watch: Watch,
    closed: bool,
    /// The event count at the last `WouldBlock` of a read and of a write.
    read_idle: Option<u64>,
    write_idle: Option<u64>,
    /// The event count and the waker (its identity) of the last read and write that parked: a
    /// poll with the same waker while the count stays and the slot is still armed finds it in
    /// place without locking the slot. The count alone does not say so: a reactor thread of its
    /// own may count an event, then take the waker stored after it (and wake the task, which
    /// then parks again with the same count and an empty slot).
    read_parked: Option<(u64, WakerId)>,
    write_parked: Option<(u64, WakerId)>,
    /// The socket's receive low-water mark as last set (1, the default, at first).
    lowat: usize,
    /// Commands owing an answer, as the session last said ([`Transport::awaiting`]).
    awaiting: usize,
    /// The socket is out of the runtime loop's epoll set ([`Reactor::pause`]), and its reads
    /// wait on the loop's timer instead of readiness.
    paused: bool,
    /// A read after a tick found nothing: the next wait is for readiness.
    tick_missed: bool,
    /// Data-In bytes one read still expects, as the session last said
    /// ([`Transport::awaiting`]), less the bytes read since: the target still owes at least
    /// this many (unless it ends that read early). 0 when the wait should not look ahead.
    due: usize,
    /// The wait set is for a mark above the bytes the reader needs, which the runtime loop
    /// bounds ([`Reactor::set_ahead`]).
    ahead: bool,
    /// A read woken by that bound found nothing: waits are for the bytes the reader needs
    /// until a read finds some.
    ahead_missed: bool,
}

fn prepare(stream: TcpStream) -> io::Result<mio::net::TcpStream> {
    // iSCSI sends small PDUs (commands, R2Ts, NOPs) that must not wait for an ACK.
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(stream))
}

impl HostTransport {
    /// Takes over a connected stream, with a reactor thread of its own.
    pub fn new(stream: TcpStream) -> io::Result<HostTransport> {
        let mut stream = prepare(stream)?;
        let poll = mio::Poll::new()?;
        poll.registry()
            .register(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
        let stop = Arc::new(mio::Waker::new(poll.registry(), STOP)?);
        let wakers = Arc::new(Wakers::default());
        let w = wakers.clone();
        let thread = thread::Builder::new()
            .name("isboot-reactor".into())
            .spawn(move || react(poll, &w))?;
        Ok(HostTransport {
            stream,
            wakers,
            watch: Watch::Own {
                stop,
                thread: Some(thread),
            },
            closed: false,
            read_idle: None,
            write_idle: None,
            read_parked: None,
            write_parked: None,
            lowat: 1,
            awaiting: 0,
            paused: false,
            tick_missed: false,
            due: 0,
            ahead: false,
            ahead_missed: false,
        })
    }

    /// Takes over a connected stream, watched by the executor loop that owns `reactor`.
    pub fn with_reactor(stream: TcpStream, reactor: Arc<Reactor>) -> io::Result<HostTransport> {
        let mut stream = prepare(stream)?;
        let wakers = Arc::new(Wakers::default());
        let token = reactor.register(&mut stream, wakers.clone())?;
        Ok(HostTransport {
            stream,
            wakers,
            watch: Watch::Shared { reactor, token },
            closed: false,
            read_idle: None,
            write_idle: None,
            read_parked: None,
            write_parked: None,
            lowat: 1,
            awaiting: 0,
            paused: false,
            tick_missed: false,
            due: 0,
            ahead: false,
            ahead_missed: false,
        })
    }

    /// One sendmsg(2) of the non-empty slices of `bufs`, at most `N` of them.
    fn write_with<const N: usize>(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[&[u8]],
    ) -> Poll<Result<usize, IoError>> {
        let mut iov = [IoSlice::new(&[]); N];
        let mut n = 0;
        let mut want = 0usize;
        for (slot, b) in iov.iter_mut().zip(bufs.iter().filter(|b| !b.is_empty())) {
            *slot = IoSlice::new(b);
            n += 1;
            want += b.len();
        }
        let iov = &iov[..n];
        self.poll_io(cx, false, want, 0, |s| crate::sys::send_slices(s, iov))
    }

    /// Runs `op` on the socket unless it is known to block (no readiness event since its last
    /// `WouldBlock`). On `WouldBlock` stores the waker and tries again only if an event came
    /// meanwhile: the reactor counts an event before it looks for a waker, and the task stores
    /// its waker before it looks at the count, so one of them sees the other.
    ///
    /// An operation that moves less than `want` bytes found the socket drained (or full): the
    /// next one waits for a readiness event instead of trying, which saves the system call
    /// that would only say `WouldBlock`. Before a read waits, the receive low-water mark is set
    /// for the `need` bytes the reader cannot do without (see [`lowat_for`]).
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
        want: usize,
        need: usize,
        mut op: impl FnMut(&mut mio::net::TcpStream) -> io::Result<usize>,
    ) -> Poll<Result<usize, IoError>> {
        if self.closed {
            return Poll::Ready(Err(IoError::Reset));
        }
        let mut wait = if read {
            self.read_idle.take()
        } else {
            self.write_idle.take()
        };
        loop {
            let woken = wait.is_some();
            if let Some(at) = wait {
                let mark = self.choose_wait(read, need);
                // Bytes that came below an old, higher mark rang nothing: after lowering it,
                // read instead of waiting.
                let lowered = read && set_lowat(&self.stream, &mut self.lowat, mark);
                let (slot, events, idle, parked) = self.side(read);
                // An event since `at` (the reactor then took the waker, too): try the socket
                // without storing a waker first.
                if !lowered && events.load(Ordering::SeqCst) == at {
                    let me = WakerId::of(cx.waker());
                    if *parked != Some((at, me)) || !slot.armed() {
                        slot.store(cx.waker());
                    }
                    if events.load(Ordering::SeqCst) == at {
                        *idle = Some(at);
                        *parked = Some((at, me));
                        return Poll::Pending;
                    }
                }
            }
            let (_, events, _, _) = self.side(read);
            let seen = events.load(Ordering::SeqCst);
            match op(&mut self.stream) {
                Ok(n) => {
                    if read {
                        self.tick_missed = false;
                        self.ahead_missed = false;
                        self.due = self.due.saturating_sub(n);
                        if self.ahead {
                            self.set_ahead(false);
                        }
                    }
                    // Edge-triggered readiness: data or room that comes after `seen` raises
                    // the count, so waiting for a change cannot miss it.
                    *self.side(read).2 = (n > 0 && n < want).then_some(seen);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => wait = None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if read && woken && self.paused {
                        self.tick_missed = true;
                    }
                    if read && woken && self.ahead {
                        // Woken by the bound, not by the mark: the owed bytes are not coming
                        // (yet). Wait for what the reader needs.
                        self.ahead_missed = true;
                    }
                    wait = Some(seen);
                }
                Err(e) => return Poll::Ready(Err(io_error(&e))),
            }
        }
    }

    /// The socket's descriptor, for tests that look at the epoll set.
    #[cfg(test)]
    pub(crate) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.stream.as_raw_fd()
    }

    /// One direction's waker slot, event count, idle mark and parked record.
    fn side(&mut self, read: bool) -> Side<'_> {
        if read {
            (
                &self.wakers.read,
                &self.wakers.read_events,
                &mut self.read_idle,
                &mut self.read_parked,
            )
        } else {
            (
                &self.wakers.write,
                &self.wakers.write_events,
                &mut self.write_idle,
                &mut self.write_parked,
            )
        }
    }

    /// Before a wait: the receive low-water mark a read waits for, and whether it waits on the
    /// runtime loop's timer (out of its epoll set) or for readiness.
    ///
    /// The mark: the `need` bytes the reader cannot do without ([`lowat_for`]), or, while a
    /// long read streams in (the session said one read still expects [`LOWAT_MIN`] or more),
    /// that read's bytes up to [`LOWAT_MAX`], however few the reader needs now (a header,
    /// the end of a segment). A reader that keeps up with the target otherwise drains the
    /// socket and sleeps every few segments; 1 MiB reads against istgt's 8 KiB segments at QD8
    /// slept ~10 times per MiB, libiscsi (slower per byte, so it found more waiting) ~6. The
    /// target owes those bytes, so the wait ends when it sends them; one that ends the read
    /// early (an error, a short transfer) leaves the reader to the loop's bound
    /// ([`crate::runtime::MARK_WAIT`]), after which it reads what is there and waits for what it
    /// needs. Only on the runtime loop, which keeps that bound; small reads (a 4 KiB command)
    /// never look ahead, and answers owed at [`TICK_AT`] or more go to the timer instead.
    ///
    /// The timer: when the session owes [`TICK_AT`] answers or more, the mark is 1 (a header:
    /// long segments keep theirs), no write waits (that one needs readiness), and the last
    /// tick found bytes: against a slow target the read waits for readiness after one empty
    /// tick, so a tick costs at most one look per wait.
    ///
    /// Why: a target thread that queues data on a socket whose reader sleeps pays for waking
    /// it. At QD32 against tgtd's null store, tgtd is the bottleneck (99 % of a CPU with
    /// either initiator, the same system calls per I/O), and waking this process's epoll wait
    /// (`sock_def_readable`, from its own `send`) took ~10 % of its CPU. Reading on the timer,
    /// that fell to ~0.3 % and tgtd served ~25 % more I/O per second; our CPU per I/O fell too,
    /// as a tick's read takes several answers at once.
    #[inline]
    fn choose_wait(&mut self, read: bool, need: usize) -> usize {
        // The common case (small commands, few in flight): the mark is 1 and nothing changes.
        // Decided here without a call, as every wait and every woken read asks (three times
        // per 4 KiB command at QD1). It holds because below LOWAT_MIN `lowat_for` gives 1 for
        // both the need and what is due (so no look ahead), below TICK_AT nothing ticks, and
        // with no bound and no pause running there is none to end.
        if need < LOWAT_MIN
            && self.due < LOWAT_MIN
            && self.awaiting < TICK_AT
            && !self.ahead
            && !self.paused
        {
            return 1;
        }
        self.choose_wait_slow(read, need)
    }

    /// [`HostTransport::choose_wait`] when a mark, a bound or the timer may be involved.
    #[inline(never)]
    fn choose_wait_slow(&mut self, read: bool, need: usize) -> usize {
        let mut mark = lowat_for(need);
        // Only a read's wait touches its bound: a write may wait while the read waits too.
        // `due` is 0 on a connection with a reactor of its own (no loop to bound the wait).
        if read {
            let due = lowat_for(self.due);
            let ahead = !self.ahead_missed && due > mark;
            if ahead {
                mark = due;
            }
            // Set again at every such wait: the bound runs from the wait's start.
            if ahead || self.ahead {
                self.set_ahead(ahead);
            }
        }
        let tick = read
            && self.write_idle.is_none()
            && !self.tick_missed
            && self.awaiting >= TICK_AT
            && mark == 1;
        let Watch::Shared { reactor, token } = &self.watch else {
            return mark;
        };
        if tick != self.paused {
            let res = if tick {
                reactor.pause(&mut self.stream)
            } else {
                reactor.resume(&mut self.stream, *token)
            };
            // A failed resume leaves the socket on the timer, which still finds its bytes.
            if res.is_ok() {
                self.paused = tick;
                reactor.set_timed(&self.wakers, tick);
            }
        }
        mark
    }

    /// Starts (or ends) the loop's bound on a wait for a mark above the reader's need.
    fn set_ahead(&mut self, on: bool) {
        if let Watch::Shared { reactor, .. } = &self.watch {
            reactor.set_ahead(&self.wakers, on);
            self.ahead = on;
        }
    }
}

/// What [`HostTransport::side`] returns.
type Side<'a> = (
    &'a WakerSlot,
    &'a AtomicU64,
    &'a mut Option<u64>,
    &'a mut Option<(u64, WakerId)>,
);

/// Reads wait on the runtime loop's timer while the session owes at least this many answers
/// (see [`HostTransport::choose_wait`]): a load where the next answer is due well within a
/// [`crate::runtime::TICK`]. Below it (QD1, 1 MiB at QD8) every wait is for readiness.
const TICK_AT: usize = 16;

/// Reads that need fewer bytes than this wait for the first byte, as a socket does by default;
/// small commands gain nothing from a mark and would pay a system call for each change. 8 KiB
/// Data-In segments (a target's common MaxRecvDataSegmentLength) get a mark: istgt's reach a
/// reader of 1 MiB at QD1 in pieces, and waking once per segment instead of once per piece took
/// epoll_wait per MiB from ~43 to ~40 and CPU per MiB from ~715 to ~655 µs (medians of 5,
/// alternating; tgtd's 8 KiB segments unchanged at ~225 µs; a 4 KiB read never waits with one).
const LOWAT_MIN: usize = 8 * 1024;
/// The highest mark asked for: the reader is woken at most once per this many bytes of a long
/// data segment, and the wait for one mark's worth stays short beside its copy.
const LOWAT_MAX: usize = 256 * 1024;

/// The receive low-water mark for a reader that needs `need` more bytes: readiness is then
/// reported once that much is there (Linux `tcp_poll`, `tcp_data_ready`), so a long Data-In
/// segment that arrives in pieces wakes the reader once per [`LOWAT_MAX`] bytes instead of
/// once per piece. Only bytes the target has to send are asked for, so the wait always ends.
fn lowat_for(need: usize) -> usize {
    if need < LOWAT_MIN {
        1
    } else {
        need.min(LOWAT_MAX)
    }
}

/// Sets the receive low-water mark to `to` unless it is that already; true if it was lowered.
fn set_lowat(stream: &mio::net::TcpStream, lowat: &mut usize, to: usize) -> bool {
    if *lowat == to || !crate::sys::set_rcvlowat(stream, to) {
        return false;
    }
    let lowered = to < *lowat;
    *lowat = to;
    lowered
}

/// The reactor: waits for readiness and wakes whichever task waits for it.
fn react(mut poll: mio::Poll, wakers: &Wakers) {
    let mut events = Events::with_capacity(8);
    while !wakers.stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Without readiness nobody would ever be woken: wake both so the task sees the error
            // on its next read or write.
            // Counted, so that the woken task tries the socket instead of waiting again.
            wakers.ready(true, true);
            return;
        }
        for ev in events.iter() {
            if ev.token() != SOCKET {
                continue;
            }
            wakers.ready(
                ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                ev.is_writable() || ev.is_write_closed() || ev.is_error(),
            );
        }
    }
}

impl Transport for HostTransport {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        let want = buf.len();
        self.poll_io(cx, true, want, want, |s| s.read(buf))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        self.poll_io(cx, false, buf.len(), 0, |s| s.write(buf))
    }

    fn awaiting(&mut self, answers: usize, data_in: &dyn Fn() -> usize) {
        self.awaiting = answers;
        // At TICK_AT or more the timer looks at the stream anyway; a connection of its own
        // has no loop to bound a wait on a mark ahead.
        self.due = if answers < TICK_AT && matches!(self.watch, Watch::Shared { .. }) {
            data_in()
        } else {
            0
        };
    }

    fn poll_read_pair(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let need = first.len();
        let want = need.saturating_add(second.len());
        let mut iov = [IoSliceMut::new(first), IoSliceMut::new(second)];
        self.poll_io(cx, true, want, need, |s| {
            crate::sys::read_slices(s, &mut iov)
        })
    }

    /// Every read is a system call here: reading a header with the data it likely carries
    /// saves one per Data-In PDU.
    fn guess_data_in(&self) -> bool {
        true
    }

    fn poll_read_three(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
        third: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let need = first.len();
        let want = need
            .saturating_add(second.len())
            .saturating_add(third.len());
        let mut iov = [
            IoSliceMut::new(first),
            IoSliceMut::new(second),
            IoSliceMut::new(third),
        ];
        self.poll_io(cx, true, want, need, |s| {
            crate::sys::read_slices(s, &mut iov)
        })
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[&[u8]],
    ) -> Poll<Result<usize, IoError>> {
        // One sendmsg(2) of at most IOV_MAX_HERE slices; the session gives no more than that.
        // A small batch gets a small array: clearing all 64 for a command's one or two
        // slices cost more than the copying.
        const IOV_MAX_HERE: usize = 64;
        const IOV_SMALL: usize = 8;
        if bufs.len() <= IOV_SMALL {
            self.write_with::<IOV_SMALL>(cx, bufs)
        } else {
            self.write_with::<IOV_MAX_HERE>(cx, bufs)
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        match &mut self.watch {
            Watch::Own { stop, thread } => {
                self.wakers.stop.store(true, Ordering::Release);
                let _ = stop.wake();
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Watch::Shared { reactor, token } => {
                // The loop sleeps in ticks while any connection reads on them, and bounds
                // sleeps while any waits on a mark ahead.
                reactor.set_timed(&self.wakers, false);
                reactor.set_ahead(&self.wakers, false);
                reactor.deregister(&mut self.stream, *token);
            }
        }
    }
}

impl Drop for HostTransport {
    fn drop(&mut self) {
        self.close();
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
    /// The executor loop that watches the connections' readiness; `None` gives each connection
    /// a reactor thread of its own.
    pub reactor: Option<Arc<Reactor>>,
}

impl Default for HostConnector {
    fn default() -> Self {
        HostConnector {
            timeout: Duration::from_secs(10),
            redirect: None,
            reactor: None,
        }
    }
}

impl Connector for HostConnector {
    type Transport = HostTransport;
    type Connect<'a> = HostConnect;

    fn connect(&mut self, portal: Portal) -> HostConnect {
        HostConnect::start(
            self.redirect.unwrap_or(portal.addr),
            self.timeout,
            self.reactor.clone(),
        )
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
    fn start(addr: SocketAddr, timeout: Duration, reactor: Option<Arc<Reactor>>) -> HostConnect {
        let slot: Arc<Slot> = Arc::default();
        let s = slot.clone();
        let spawned = thread::Builder::new()
            .name("isboot-connect".into())
            .spawn(move || {
                let res = TcpStream::connect_timeout(&addr, timeout).and_then(|s| match reactor {
                    Some(r) => HostTransport::with_reactor(s, r),
                    None => HostTransport::new(s),
                });
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

#[cfg(test)]
mod tests {
    use super::*;
    use isboot_executor::host::block_on;
    use std::future::poll_fn;
    use std::net::{Ipv4Addr, TcpListener};

    fn pair() -> (HostTransport, TcpStream) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (HostTransport::new(c).unwrap(), s)
    }

    #[test]
    fn a_long_read_due_raises_the_mark_and_bytes_read_lower_it() {
        let rt = crate::runtime::HostRuntime::new().unwrap();
        let (c, mut peer) = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            (c, l.accept().unwrap().0)
        };
        let mut t = HostTransport::with_reactor(c, rt.reactor().clone()).unwrap();
        // A 4 KiB command's answer wakes the reader at its first byte.
        t.awaiting(1, &|| 4096);
        assert_eq!(t.choose_wait(true, 48), 1);
        assert!(!t.ahead);
        // A long read streaming in: its bytes, up to LOWAT_MAX, however few the reader needs.
        t.awaiting(1, &|| 100_000);
        assert_eq!(t.choose_wait(true, 48), 100_000);
        assert!(t.ahead, "bounded by the loop");
        t.awaiting(2, &|| 4 << 20);
        assert_eq!(t.choose_wait(true, 48), LOWAT_MAX);
        // A write that waits meanwhile leaves the read's mark and bound alone.
        assert_eq!(t.choose_wait(false, 0), 1);
        assert!(t.ahead, "the read's bound stays");
        // Bytes read since the header count against what is due: the mark never asks for
        // more than the target still owes.
        t.awaiting(1, &|| 100_000);
        peer.write_all(&[7; 40_000]).unwrap();
        let mut buf = vec![0u8; 40_000];
        let mut got = 0;
        while got < buf.len() {
            got += block_on(poll_fn(|cx| t.poll_read(cx, &mut buf[got..]))).unwrap();
        }
        assert_eq!(t.choose_wait(true, 48), 60_000);
        // At TICK_AT answers or more the loop's timer looks instead.
        t.awaiting(TICK_AT, &|| 4 << 20);
        assert_eq!(t.choose_wait(true, 48), 1);
        assert!(!t.ahead);
        t.close();
        // A connection with a reactor thread of its own has no loop to bound the wait.
        let (mut own, _peer) = pair();
        own.awaiting(1, &|| 4 << 20);
        assert_eq!(own.choose_wait(true, 48), 1);
    }

    #[test]
    fn a_read_waits_for_data_that_arrives_later_and_eof_reads_zero() {
        let (mut t, mut peer) = pair();
        let writer = thread::spawn(move || {
            // Arrives after the task has found the socket empty and parked.
            thread::sleep(Duration::from_millis(50));
            peer.write_all(b"ping").unwrap();
            peer
        });
        let mut buf = [0u8; 16];
        let n = block_on(poll_fn(|cx| t.poll_read(cx, &mut buf))).unwrap();
        assert_eq!(&buf[..n], b"ping");
        drop(writer.join().unwrap());
        let n = block_on(poll_fn(|cx| t.poll_read(cx, &mut buf))).unwrap();
        assert_eq!(n, 0, "the peer closed");
    }

    /// Polls `read` on this thread until it is ready; after its first poll (which must find
    /// nothing) tells the peer to go on. Returns the result and the number of polls.
    fn read_then_release(
        release: &std::sync::mpsc::Sender<()>,
        mut read: impl FnMut(&mut Context<'_>) -> Poll<Result<usize, IoError>>,
    ) -> (usize, usize) {
        let mut polls = 0;
        let n = block_on(poll_fn(|cx| {
            polls += 1;
            let r = read(cx);
            if polls == 1 {
                assert!(r.is_pending(), "nothing was sent yet");
                release.send(()).unwrap();
            }
            r
        }))
        .unwrap();
        (n, polls)
    }

    #[test]
    fn a_long_segment_arriving_in_pieces_wakes_its_reader_once_and_a_short_read_follows() {
        let (mut t, mut peer) = pair();
        const SEGMENT: usize = 4 * LOWAT_MIN;
        const PIECE: usize = LOWAT_MIN / 2;
        let (release, go) = std::sync::mpsc::channel();
        let writer = thread::spawn(move || {
            go.recv().unwrap();
            // Each piece arrives after the reader could have taken the one before.
            for i in 0..SEGMENT / PIECE {
                thread::sleep(Duration::from_millis(10));
                peer.write_all(&[i as u8; PIECE]).unwrap();
            }
            go.recv().unwrap();
            peer.write_all(b"next").unwrap();
            peer
        });
        let mut seg = vec![0u8; SEGMENT];
        let (n, polls) = read_then_release(&release, |cx| t.poll_read_pair(cx, &mut seg, &mut []));
        // The mark holds the reader back until the segment is there: one wake, one read of
        // all of it, instead of a wake and a read per piece.
        assert_eq!((n, polls), (SEGMENT, 2));
        assert!(seg
            .chunks(PIECE)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        assert_eq!(t.lowat, SEGMENT);
        // The next need is small: the mark comes down before the reader waits, so four bytes
        // end the wait.
        let mut small = [0u8; 4];
        let (n, _) = read_then_release(&release, |cx| t.poll_read_pair(cx, &mut small, &mut []));
        assert_eq!(&small[..n], b"next");
        assert_eq!(t.lowat, 1);
        drop(writer.join().unwrap());
    }

    /// The reactor thread counts an event, then takes the waker the task stored after that
    /// count (waking it); the task, polled by that wake, parks again with the same count. Its
    /// slot is empty now, so it must store its waker again, or the next data wakes nobody.
    #[test]
    fn a_read_reparked_after_the_reactor_took_its_waker_is_woken_by_the_next_data() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (mut t, mut peer) = pair();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 4];
        // The reactor's count of an event whose bytes are gone by the time the task reads.
        t.wakers.read_events.fetch_add(1, Ordering::SeqCst);
        assert!(t.poll_read(&mut cx, &mut buf).is_pending());
        // The reactor goes on: it takes the waker stored after its count and wakes it.
        t.wakers.read.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(t.poll_read(&mut cx, &mut buf).is_pending());
        peer.write_all(b"data").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while count.0.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "the data woke the reader"
        );
        assert_eq!(t.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(4)));
    }

    #[test]
    fn writes_larger_than_the_socket_buffers_complete_once_the_peer_reads() {
        let (mut t, mut peer) = pair();
        let data: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let want = data.clone();
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let mut got = vec![0u8; want.len()];
            peer.read_exact(&mut got).unwrap();
            assert!(got == want);
        });
        let mut at = 0;
        while at < data.len() {
            at += block_on(poll_fn(|cx| t.poll_write(cx, &data[at..]))).unwrap();
        }
        reader.join().unwrap();
    }

    #[test]
    fn closed_transport_fails_and_a_reset_peer_maps_to_reset() {
        let (mut t, peer) = pair();
        drop(peer);
        let mut buf = [0u8; 4];
        // The peer's close is an EOF; writing into it then fails with a reset or broken pipe.
        assert_eq!(block_on(poll_fn(|cx| t.poll_read(cx, &mut buf))), Ok(0));
        let r = (0..100)
            .map(|_| block_on(poll_fn(|cx| t.poll_write(cx, &[0u8; 65536]))))
            .find(Result::is_err);
        assert_eq!(r, Some(Err(IoError::Reset)));
        t.close();
        t.close();
        assert_eq!(
            block_on(poll_fn(|cx| t.poll_read(cx, &mut buf))),
            Err(IoError::Reset)
        );
    }

    #[test]
    fn connecting_to_a_closed_port_is_refused_and_redirect_is_followed() {
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let portal = Portal {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            nic: 0,
        };
        let mut c = HostConnector::default();
        assert_eq!(block_on(c.connect(portal)).err(), Some(IoError::Refused));
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        c.redirect = Some(l.local_addr().unwrap());
        assert!(block_on(c.connect(portal)).is_ok());
    }
}
