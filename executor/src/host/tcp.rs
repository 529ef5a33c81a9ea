// SPDX-License-Identifier: BSD-2-Clause
//! A TCP stream with non-blocking `poll_read` / `poll_write` for tasks, made of blocking std sockets
//! and two helper threads that ring doorbells, the way kernel socket upcalls do.
//!
//! Each direction has a bounded buffer between its thread and the task:
//! - the reader thread blocks in `read` while the receive buffer has room, appends what arrives, and
//!   rings the receive doorbell; it waits while the buffer is full (back-pressure reaches the target
//!   through TCP flow control);
//! - `poll_write` copies into the send buffer and returns at once; the writer thread drains it with
//!   blocking `write_all` and rings the send doorbell as room frees up.
//!
//! So a task never blocks the executor thread in a socket call, and the classic deadlock (we block
//! sending Data-Out while the target blocks sending Data-In we are not reading) cannot happen.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex as StdMutex, MutexGuard, PoisonError};
use std::thread;

use crate::Doorbell;

/// Bytes buffered per direction by [`ThreadedTcp::new`].
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// Largest single `read`/`write` system call the helper threads make.
const CHUNK: usize = 64 * 1024;

/// Re-checks after a doorbell that had rung for data already consumed.
const STALE_RINGS: usize = 4;

/// An error kept for the task: `io::Error` is not `Clone`, its kind and OS code are.
#[derive(Clone, Copy, Debug)]
struct Failure {
    kind: io::ErrorKind,
    os: Option<i32>,
}

impl Failure {
    fn of(e: &io::Error) -> Self {
        Failure {
            kind: e.kind(),
            os: e.raw_os_error(),
        }
    }

    fn error(self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::from(self.kind),
        }
    }
}

#[derive(Debug, Default)]
struct Half {
    buf: VecDeque<u8>,
    /// Receive side: the peer closed. Send side: unused.
    eof: bool,
    failed: Option<Failure>,
    /// `close` was called: the threads stop.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    cap: usize,
    rx: StdMutex<Half>,
    rx_room: Condvar,
    rx_bell: Doorbell,
    tx: StdMutex<Half>,
    tx_data: Condvar,
    tx_bell: Doorbell,
}

fn lock(m: &StdMutex<Half>) -> MutexGuard<'_, Half> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connected TCP stream for tasks; see the module docs. Dropping it closes the stream and joins its
/// threads.
#[derive(Debug)]
pub struct ThreadedTcp {
    stream: TcpStream,
    shared: Arc<Shared>,
    threads: [Option<thread::JoinHandle<()>>; 2],
}

impl ThreadedTcp {
    /// Takes over a connected (blocking) stream with [`DEFAULT_BUFFER`] bytes per direction.
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        Self::with_buffer(stream, DEFAULT_BUFFER)
    }

    /// Takes over a connected (blocking) stream with `cap` (at least 1) bytes buffered per direction.
    /// Sets `TCP_NODELAY`, as iSCSI initiators do: a PDU is written whole and must not wait for the
    /// previous one's ACK (Nagle plus delayed ACK would add tens of milliseconds per command).
    pub fn with_buffer(stream: TcpStream, cap: usize) -> io::Result<Self> {
        let cap = cap.max(1);
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let shared = Arc::new(Shared {
            cap,
            rx: StdMutex::new(Half::default()),
            rx_room: Condvar::new(),
            rx_bell: Doorbell::new(),
            tx: StdMutex::new(Half::default()),
            tx_data: Condvar::new(),
            tx_bell: Doorbell::new(),
        });
        let (r_stream, r_shared) = (stream.try_clone()?, shared.clone());
        let reader = thread::Builder::new()
            .name("isboot-tcp-rx".into())
            .spawn(move || read_loop(r_stream, &r_shared))?;
        let (w_stream, w_shared) = (stream.try_clone()?, shared.clone());
        let writer = match thread::Builder::new()
            .name("isboot-tcp-tx".into())
            .spawn(move || write_loop(w_stream, &w_shared))
        {
            Ok(w) => w,
            Err(e) => {
                let _ = stream.shutdown(Shutdown::Both);
                let _ = reader.join();
                return Err(e);
            }
        };
        Ok(ThreadedTcp {
            stream,
            shared,
            threads: [Some(reader), Some(writer)],
        })
    }

    /// Connects on a helper thread, so the calling task does not block the executor.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Connect {
        let slot: Arc<ConnectSlot> = Arc::default();
        let s = slot.clone();
        let spawned = thread::Builder::new()
            .name("isboot-tcp-connect".into())
            .spawn(move || {
                let res = TcpStream::connect_timeout(&addr, timeout);
                *s.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(res);
                s.bell.ring();
            });
        if let Err(e) = spawned {
            *slot.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(e));
        }
        Connect { slot }
    }

    /// Reads buffered bytes into `buf`: `Ok(0)` at end of stream (or for an empty `buf`), `Pending`
    /// with `cx` registered when nothing is buffered yet.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        for _ in 0..STALE_RINGS {
            {
                let mut rx = lock(&self.shared.rx);
                if rx.closed {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
                }
                if !rx.buf.is_empty() || buf.is_empty() {
                    let n = buf.len().min(rx.buf.len());
                    for (dst, src) in buf.iter_mut().zip(rx.buf.drain(..n)) {
                        *dst = src;
                    }
                    self.shared.rx_room.notify_one();
                    return Poll::Ready(Ok(n));
                }
                if let Some(f) = rx.failed {
                    return Poll::Ready(Err(f.error()));
                }
                if rx.eof {
                    return Poll::Ready(Ok(0));
                }
            }
            if self.shared.rx_bell.poll_wait(cx).is_pending() {
                return Poll::Pending;
            }
        }
        // Rung every time yet empty: let other tasks run, then look again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Queues a prefix of `buf` for sending and returns its length; `Pending` with `cx` registered when
    /// the send buffer is full. An error of an earlier write is reported here.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        for _ in 0..STALE_RINGS {
            {
                let mut tx = lock(&self.shared.tx);
                if tx.closed {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
                }
                if let Some(f) = tx.failed {
                    return Poll::Ready(Err(f.error()));
                }
                let room = self.shared.cap.saturating_sub(tx.buf.len());
                if room > 0 || buf.is_empty() {
                    let n = room.min(buf.len());
                    tx.buf.extend(&buf[..n]);
                    self.shared.tx_data.notify_one();
                    return Poll::Ready(Ok(n));
                }
            }
            if self.shared.tx_bell.poll_wait(cx).is_pending() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Bytes queued for sending that the writer thread has not taken yet.
    pub fn unsent(&self) -> usize {
        lock(&self.shared.tx).buf.len()
    }

    /// Closes the stream at once (unsent bytes are dropped); later polls fail. Idempotent.
    pub fn close(&mut self) {
        for (half, cond) in [
            (&self.shared.rx, &self.shared.rx_room),
            (&self.shared.tx, &self.shared.tx_data),
        ] {
            lock(half).closed = true;
            cond.notify_all();
        }
        // Unblocks the reader's `read` and any `write` in progress.
        let _ = self.stream.shutdown(Shutdown::Both);
        self.shared.rx_bell.ring();
        self.shared.tx_bell.ring();
        for t in self.threads.iter_mut().filter_map(Option::take) {
            let _ = t.join();
        }
    }
}

impl Drop for ThreadedTcp {
    fn drop(&mut self) {
        self.close();
    }
}

fn read_loop(mut stream: TcpStream, shared: &Shared) {
    let mut chunk = vec![0u8; CHUNK.min(shared.cap)];
    loop {
        let room = {
            let mut rx = lock(&shared.rx);
            while !rx.closed && rx.buf.len() >= shared.cap {
                rx = shared
                    .rx_room
                    .wait(rx)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if rx.closed {
                return;
            }
            shared.cap - rx.buf.len()
        };
        let want = room.min(chunk.len());
        let res = stream.read(&mut chunk[..want]);
        let stop = {
            let mut rx = lock(&shared.rx);
            match res {
                Ok(0) => {
                    rx.eof = true;
                    true
                }
                Ok(n) => {
                    rx.buf.extend(&chunk[..n]);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(e) => {
                    rx.failed = Some(Failure::of(&e));
                    true
                }
            }
        };
        shared.rx_bell.ring();
        if stop {
            return;
        }
    }
}

fn write_loop(mut stream: TcpStream, shared: &Shared) {
    let mut chunk = vec![0u8; CHUNK.min(shared.cap)];
    loop {
        let n = {
            let mut tx = lock(&shared.tx);
            while !tx.closed && tx.buf.is_empty() {
                tx = shared
                    .tx_data
                    .wait(tx)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if tx.closed {
                return;
            }
            let n = tx.buf.len().min(chunk.len());
            for (dst, src) in chunk.iter_mut().zip(tx.buf.drain(..n)) {
                *dst = src;
            }
            n
        };
        // Room was freed above: the task may queue more while this write blocks.
        shared.tx_bell.ring();
        if let Err(e) = stream.write_all(&chunk[..n]) {
            lock(&shared.tx).failed = Some(Failure::of(&e));
            shared.tx_bell.ring();
            return;
        }
    }
}

#[derive(Debug, Default)]
struct ConnectSlot {
    result: StdMutex<Option<io::Result<TcpStream>>>,
    bell: Doorbell,
}

/// Future returned by [`ThreadedTcp::connect`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Connect {
    slot: Arc<ConnectSlot>,
}

impl Future for Connect {
    type Output = io::Result<ThreadedTcp>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        for _ in 0..2 {
            let taken = self
                .slot
                .result
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(res) = taken {
                return Poll::Ready(res.and_then(ThreadedTcp::new));
            }
            if self.slot.bell.poll_wait(cx).is_pending() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
