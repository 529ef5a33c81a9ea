// SPDX-License-Identifier: BSD-2-Clause
//! The scripted fake target on TCP: `isboot_core::testing`'s sans-IO [`CoreTarget`] served on a
//! loopback socket, one thread per connection. Fault tests use it; so can a standalone process
//! (the public API below is meant for that):
//!
//! ```no_run
//! use isboot_tests::fake::{FakeConfig, FakeTarget, Fault};
//! let target = FakeTarget::start_at("127.0.0.1:3260".parse().unwrap(),
//!                                   FakeConfig::new(64 << 20, Fault::None)).unwrap();
//! println!("{} at {}", target.iqn(), target.addr());
//! // ... serve until the process is told to stop; dropping the target stops every thread.
//! ```
//!
//! The target itself (login, READ/WRITE with bursts and R2T, the faults, the checks of the
//! initiator) is documented in `isboot_core::testing`. Reads time out briefly so that dropping
//! the target stops every thread within a bounded time.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub use isboot_core::testing::{
    inquiry_data, pattern, FakeConfig, Fault, OnLogout, Redirect, Stats, BLOCK, POISON, WINDOW,
};
use isboot_core::testing::{ConnectionEnd, FakeConnection, FakeTarget as CoreTarget};

/// A running scripted target on a TCP port.
pub struct FakeTarget {
    addr: SocketAddr,
    target: CoreTarget,
    stop: Arc<AtomicBool>,
    wire: Arc<Wire>,
    acceptor: Option<JoinHandle<()>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl fmt::Debug for FakeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTarget")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

/// How the connections put the target's answers on the wire.
#[derive(Debug, Default)]
struct Wire {
    /// Milliseconds every SCSI Response is held before it is sent.
    delay_ms: AtomicU64,
    /// Send every answer in two pieces, the second its last bytes after a pause.
    dribble: AtomicBool,
    /// Answers sent that way.
    dribbled: AtomicU64,
}

/// The tail of a dribbled answer (less than a BHS, so a header ends in it), and the pause
/// before it.
const DRIBBLE_TAIL: usize = 20;
const DRIBBLE_PAUSE: Duration = Duration::from_millis(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeTarget {
    /// Listens on a free 127.0.0.1 port. The disk starts with [`pattern`], so a read that
    /// returns zeros or poison is told from a correct one.
    pub fn start(cfg: FakeConfig) -> io::Result<FakeTarget> {
        FakeTarget::start_at((Ipv4Addr::LOCALHOST, 0).into(), cfg)
    }

    /// Listens on `addr` (port 0: a free one).
    pub fn start_at(addr: SocketAddr, cfg: FakeConfig) -> io::Result<FakeTarget> {
        if cfg.size % BLOCK != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "disk size is not a multiple of the block size",
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let target = CoreTarget::new(cfg);
        let stop = Arc::new(AtomicBool::new(false));
        let wire = Arc::new(Wire::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (t, s, d, th) = (target.clone(), stop.clone(), wire.clone(), threads.clone());
        let acceptor = std::thread::Builder::new()
            .name("fake-accept".into())
            .spawn(move || {
                // The target is not under test when a test counts allocations.
                isboot_executor::host::counting_alloc::exempt_thread();
                accept_loop(listener, t, s, d, th)
            })?;
        Ok(FakeTarget {
            addr,
            target,
            stop,
            wire,
            acceptor: Some(acceptor),
            threads,
        })
    }

    /// Holds every answer that begins with a SCSI Response this long before sending it (a
    /// slow disk behind the target); zero sends at once.
    pub fn set_response_delay(&self, d: Duration) {
        self.wire.delay_ms.store(
            d.as_millis().try_into().unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Sends every answer but its last 20 bytes, then those 5 ms later: the initiator sees the
    /// last header of an answer arrive in two parts (a slow or lossy path does that), and must
    /// be woken for the 20 bytes that complete it, however much more it would like to read.
    pub fn set_dribble(&self, on: bool) {
        self.wire.dribble.store(on, Ordering::SeqCst);
    }

    /// Answers sent in pieces so far.
    pub fn dribbled(&self) -> u64 {
        self.wire.dribbled.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target name it answers to (any name is accepted).
    pub fn iqn(&self) -> &'static str {
        self.target.iqn()
    }

    pub fn stats(&self) -> Stats {
        self.target.stats()
    }

    /// A copy of `len` bytes of the disk at `offset`.
    pub fn disk(&self, offset: usize, len: usize) -> Vec<u8> {
        self.target.disk(offset, len)
    }

    /// The sans-IO target behind the socket (its script can change while it runs).
    pub fn target(&self) -> &CoreTarget {
        &self.target
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        // Connection threads see the flag within one read timeout.
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: CoreTarget,
    stop: Arc<AtomicBool>,
    wire: Arc<Wire>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let local = stream.local_addr().unwrap_or(SocketAddr::from(([0; 4], 0)));
                let conn = target.connect(local);
                let s = stop.clone();
                let d = wire.clone();
                let t = std::thread::Builder::new()
                    .name("fake-conn".into())
                    .spawn(move || {
                        isboot_executor::host::counting_alloc::exempt_thread();
                        if let Err(e) = serve(stream, conn, &s, &d) {
                            if !s.load(Ordering::SeqCst) && e.kind() != io::ErrorKind::UnexpectedEof
                            {
                                eprintln!("fake target: connection ended: {e}");
                            }
                        }
                    });
                if let Ok(t) = t {
                    let mut threads = lock(&threads);
                    threads.retain(|h| !h.is_finished());
                    threads.push(t);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Carries one connection's bytes between the socket and the sans-IO target until one side
/// ends it. Each read waits at most 100 ms, so the stop flag is seen in bounded time.
fn serve(
    mut stream: TcpStream,
    mut conn: FakeConnection,
    stop: &AtomicBool,
    wire: &Wire,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    // An initiator that stops reading must not hang this thread (and the target's drop).
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => conn.receive(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        let out = conn.take_output();
        if !out.is_empty() {
            // Opcode 0x21: SCSI Response.
            let delay = wire.delay_ms.load(Ordering::SeqCst);
            if delay > 0 && out.first().is_some_and(|b| b & 0x3f == 0x21) {
                std::thread::sleep(Duration::from_millis(delay));
            }
            let mut rest = &out[..];
            if wire.dribble.load(Ordering::SeqCst) && out.len() > DRIBBLE_TAIL {
                let (head, tail) = out.split_at(out.len() - DRIBBLE_TAIL);
                stream.write_all(head)?;
                std::thread::sleep(DRIBBLE_PAUSE);
                rest = tail;
                wire.dribbled.fetch_add(1, Ordering::SeqCst);
            }
            stream.write_all(rest)?;
        }
        match conn.end() {
            None => {}
            Some(ConnectionEnd::Fin) => {
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(ConnectionEnd::Reset) => {
                // SO_LINGER 0: closing the only descriptor resets the connection.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return Ok(());
            }
        }
    }
}
