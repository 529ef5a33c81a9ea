// SPDX-License-Identifier: BSD-2-Clause
//! A TCP relay on loopback that a test can cut: connections through it are closed with a TCP reset
//! (SO_LINGER 0, then close), as a failing middlebox would do mid-transfer.
//!
//! Each connection is served by one thread that owns both sockets (non-blocking, driven by
//! epoll through `mio`), so that the close really is the last close of the socket and sends the
//! RST. A cut
//! is either asked for (`cut`) or armed to happen by itself after a number of bytes has been
//! relayed towards the initiator (`cut_after_down`), which puts it reliably in mid-transfer.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wait;

/// How often a connection thread looks at the cut and stop flags when no data moves.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const BUF: usize = 64 * 1024;

/// Relays connections from its own port to `upstream`.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Bumped by `cut`; a connection that sees a new value resets itself.
    cut_gen: AtomicU64,
    /// Resets done so far.
    resets: AtomicU64,
    /// When non-zero: reset the connection once this many bytes went down in total.
    cut_at_down: AtomicU64,
    down_bytes: AtomicU64,
    up_bytes: AtomicU64,
    accepted: AtomicU64,
    live: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Relay {
    /// Listens on a free 127.0.0.1 port and relays to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Relay> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        // Non-blocking accept, polled, so that Drop can stop the acceptor within a bounded time.
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || accept_loop(listener, upstream, s))?;
        Ok(Relay {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where initiators connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes relayed from the target to initiators so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.down_bytes.load(Ordering::SeqCst)
    }

    /// Bytes relayed from initiators to the target so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up_bytes.load(Ordering::SeqCst)
    }

    /// Connections accepted and relayed so far.
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset so far (by `cut` or by the armed trigger).
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Resets every live connection, towards the initiator and towards the target, and waits
    /// (bounded) until they are gone. New connections are still relayed, so an initiator can
    /// reconnect. Returns false if a connection did not go within the time limit.
    pub fn cut(&self) -> bool {
        self.shared.cut_gen.fetch_add(1, Ordering::SeqCst);
        wait::until(Duration::from_secs(10), || {
            (self.shared.live.load(Ordering::SeqCst) == 0).then_some(())
        })
        .is_some()
    }

    /// Arms a one-shot reset of the connection that carries the target's data once `total` bytes
    /// (counted over the relay's lifetime) have gone towards initiators.
    pub fn cut_after_down(&self, total: u64) {
        self.shared
            .cut_at_down
            .store(total.max(1), Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in std::mem::take(&mut *lock(&self.shared.threads)) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes `s` with a RST instead of a FIN: with SO_LINGER on and a zero timeout, the close drops
/// unsent data and resets the connection. `s` must be the socket's only descriptor.
fn reset<S: AsFd>(s: S) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    // The target is down: the initiator sees its connection fail and retries.
                    reset(client);
                    continue;
                };
                // The generation is taken before the connection counts as live, so a `cut` that
                // sees it live also resets it.
                let gen = shared.cut_gen.load(Ordering::SeqCst);
                shared.live.fetch_add(1, Ordering::SeqCst);
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("relay-conn".into())
                        .spawn(move || {
                            if let Err(e) = relay_conn(client, server, gen, &s) {
                                eprintln!("relay: connection ended: {e}");
                            }
                            s.live.fetch_sub(1, Ordering::SeqCst);
                        });
                match spawned {
                    Ok(h) => {
                        let mut threads = lock(&shared.threads);
                        threads.retain(|h| !h.is_finished());
                        threads.push(h);
                    }
                    Err(e) => {
                        shared.live.fetch_sub(1, Ordering::SeqCst);
                        eprintln!("relay: cannot start a connection thread: {e}");
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One direction of a connection: bytes read from one socket, waiting to be written to the other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source reached end of file; pass it on once the buffer is empty.
    eof: bool,
    /// The end of file has been passed on.
    closed: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            closed: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Reads what is available; the count read.
    fn fill(&mut self, from: &mut impl Read) -> io::Result<usize> {
        if !self.is_empty() || self.eof {
            return Ok(0);
        }
        match from.read(&mut self.buf) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.start = 0;
                self.end = n;
                Ok(n)
            }
            Err(e) if would_block(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes what is buffered; the count written.
    fn flush(&mut self, to: &mut mio::net::TcpStream) -> io::Result<usize> {
        let mut done = 0;
        while !self.is_empty() {
            match to.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.start += n;
                    done += n;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        if self.is_empty() && self.eof && !self.closed {
            let _ = to.shutdown(std::net::Shutdown::Write);
            self.closed = true;
        }
        Ok(done)
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn relay_conn(
    client: TcpStream,
    server: TcpStream,
    my_gen: u64,
    shared: &Shared,
) -> io::Result<()> {
    client.set_nonblocking(true)?;
    server.set_nonblocking(true)?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut client = mio::net::TcpStream::from_std(client);
    let mut server = mio::net::TcpStream::from_std(server);
    let mut poll = mio::Poll::new()?;
    let both = mio::Interest::READABLE | mio::Interest::WRITABLE;
    poll.registry().register(&mut client, mio::Token(0), both)?;
    poll.registry().register(&mut server, mio::Token(1), both)?;
    let mut events = mio::Events::with_capacity(4);
    let mut up = Pipe::new();
    let mut down = Pipe::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) || shared.cut_gen.load(Ordering::SeqCst) != my_gen {
            shared.resets.fetch_add(1, Ordering::SeqCst);
            drop(poll);
            reset(client);
            reset(server);
            return Ok(());
        }
        if up.closed && down.closed {
            return Ok(());
        }
        // Readiness is edge-triggered: move data until no direction makes progress, then wait.
        loop {
            let read_up = up.fill(&mut client)?;
            let wrote_up = up.flush(&mut server)?;
            shared.up_bytes.fetch_add(wrote_up as u64, Ordering::SeqCst);
            let read_down = down.fill(&mut server)?;
            let wrote_down = down.flush(&mut client)?;
            let total = shared
                .down_bytes
                .fetch_add(wrote_down as u64, Ordering::SeqCst)
                + wrote_down as u64;
            let at = shared.cut_at_down.load(Ordering::SeqCst);
            if at != 0
                && total >= at
                && shared
                    .cut_at_down
                    .compare_exchange(at, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                shared.resets.fetch_add(1, Ordering::SeqCst);
                drop(poll);
                reset(client);
                reset(server);
                return Ok(());
            }
            if read_up + wrote_up + read_down + wrote_down == 0 {
                break;
            }
        }
        match poll.poll(&mut events, Some(POLL_INTERVAL)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
