// SPDX-License-Identifier: BSD-2-Clause
//! The host's executor thread with socket readiness built in.
//!
//! One thread runs the loop a kernel taskqueue handler plus its callout and socket upcalls
//! would: poll the executor until nothing is ready, then sleep in `epoll_wait` (through `mio`)
//! until a socket is ready, a task is pended from another thread, or the next timer deadline. A
//! readiness event wakes the waiting task right there, on the thread that then polls it, so a
//! completion costs no thread hop between "data arrived" and "the session reads it".
//!
//! The pender writes to an eventfd (`mio::Waker`) only when called from another thread: pends
//! from the loop's own thread are already followed by a poll.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use isboot_executor::host::{block_on, now, StdLock};
use isboot_executor::{Config, Executor, JoinHandle, Pender, Timer};
use mio::{Events, Token};

use crate::net::Wakers;

/// The token of the loop's own eventfd; sockets get tokens above it.
const WAKE: Token = Token(0);

/// Readiness registrations and the loop's doorbell, shared with transports and the pender.
#[derive(Debug)]
pub struct Reactor {
    registry: mio::Registry,
    waker: mio::Waker,
    sockets: Mutex<HashMap<usize, Arc<Wakers>>>,
    next_token: AtomicUsize,
    stop: AtomicBool,
    /// The loop's thread: pends from it need no eventfd write.
    driver: OnceLock<ThreadId>,
}

impl Reactor {
    /// Registers `stream` for read and write readiness; events wake `wakers`. Returns the token
    /// to pass to [`Reactor::deregister`].
    pub(crate) fn register(
        &self,
        stream: &mut mio::net::TcpStream,
        wakers: Arc<Wakers>,
    ) -> io::Result<Token> {
        let token = Token(self.next_token.fetch_add(1, Ordering::Relaxed));
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.0, wakers);
        if let Err(e) = self.registry.register(
            stream,
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        ) {
            self.forget(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Stops events for `stream` and forgets its wakers.
    pub(crate) fn deregister(&self, stream: &mut mio::net::TcpStream, token: Token) {
        let _ = self.registry.deregister(stream);
        self.forget(token);
    }

    fn forget(&self, token: Token) {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&token.0);
    }

    fn dispatch(&self, events: &Events) {
        for ev in events.iter() {
            if ev.token() == WAKE {
                continue;
            }
            let w = self
                .sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&ev.token().0)
                .cloned();
            if let Some(w) = w {
                w.ready(
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                );
            }
        }
    }
}

impl Pender for Reactor {
    fn pend(&self) {
        if self.driver.get() == Some(&thread::current().id()) {
            return;
        }
        // An eventfd write cannot fail short of a broken descriptor; the loop would then also
        // fail in epoll_wait and stop.
        let _ = self.waker.wake();
    }
}

/// The executor type a [`HostRuntime`] drives.
pub type ReactorExecutor = Executor<StdLock, Arc<Reactor>>;

/// An executor and its reactor, polled by one thread (see the module documentation). Dropping it
/// stops and joins the thread; like the executor, it cannot be dropped while a [`JoinHandle`]
/// lives.
#[derive(Debug)]
pub struct HostRuntime {
    executor: Arc<ReactorExecutor>,
    reactor: Arc<Reactor>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HostRuntime {
    /// Starts the loop's thread.
    pub fn new() -> io::Result<HostRuntime> {
        let poll = mio::Poll::new()?;
        let reactor = Arc::new(Reactor {
            registry: poll.registry().try_clone()?,
            waker: mio::Waker::new(poll.registry(), WAKE)?,
            sockets: Mutex::new(HashMap::new()),
            next_token: AtomicUsize::new(1),
            stop: AtomicBool::new(false),
            driver: OnceLock::new(),
        });
        let executor = Arc::new(Executor::with_config(
            reactor.clone(),
            Config {
                clock: Some(now),
                ..Config::default()
            },
        ));
        let (e, r) = (executor.clone(), reactor.clone());
        let thread = thread::Builder::new()
            .name("isboot-executor".into())
            .spawn(move || drive(poll, &e, &r))?;
        Ok(HostRuntime {
            executor,
            reactor,
            thread: Some(thread),
        })
    }

    /// Starts `future` on the loop's thread.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(future)
    }

    /// A handle to the timer queue.
    pub fn timer(&self) -> Timer {
        self.executor.timer()
    }

    /// The reactor, for transports that register with this loop.
    pub fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    /// Runs `future` on the calling thread until it completes, parking between wakes.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(future)
    }
}

fn drive(mut poll: mio::Poll, executor: &ReactorExecutor, reactor: &Reactor) {
    let _ = reactor.driver.set(thread::current().id());
    let mut events = Events::with_capacity(64);
    while !reactor.stop.load(Ordering::Acquire) {
        executor.on_tick(now());
        if executor.poll() {
            continue;
        }
        let timeout = executor
            .next_deadline()
            .map(|d| d.saturating_duration_since(now()));
        if timeout == Some(Duration::ZERO) {
            continue;
        }
        match poll.poll(&mut events, timeout) {
            Ok(()) => reactor.dispatch(&events),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("isboot: the executor's epoll wait failed: {e}; stopping");
                return;
            }
        }
    }
}

impl Drop for HostRuntime {
    fn drop(&mut self) {
        self.reactor.stop.store(true, Ordering::Release);
        let _ = self.reactor.waker.wake();
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                if !thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::HostTransport;
    use isboot_core::port::Transport;
    use std::future::poll_fn;
    use std::io::Write;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    #[test]
    fn timers_fire_and_tasks_spawned_from_other_threads_run() {
        let rt = HostRuntime::new().unwrap();
        let timer = rt.timer();
        let start = std::time::Instant::now();
        let t = rt.spawn(async move {
            timer.sleep(Duration::from_millis(30)).await;
            7
        });
        assert_eq!(rt.block_on(t), 7);
        assert!(start.elapsed() >= Duration::from_millis(30));
        let n = thread::scope(|s| {
            s.spawn(|| rt.block_on(rt.spawn(async { 5 })))
                .join()
                .unwrap()
        });
        assert_eq!(n, 5);
    }

    #[test]
    fn socket_readiness_wakes_a_task_on_the_loop() {
        let rt = HostRuntime::new().unwrap();
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let mut t = HostTransport::with_reactor(c, rt.reactor().clone()).unwrap();
        let task = rt.spawn(async move {
            let mut buf = [0u8; 8];
            let n = poll_fn(|cx| t.poll_read(cx, &mut buf)).await.unwrap();
            t.close();
            buf[..n].to_vec()
        });
        // The task parks on an empty socket first; the write below is what wakes it.
        thread::sleep(Duration::from_millis(30));
        peer.write_all(b"pong").unwrap();
        assert_eq!(rt.block_on(task), b"pong");
        assert!(
            rt.reactor().sockets.lock().unwrap().is_empty(),
            "closed transports deregister"
        );
    }
}
