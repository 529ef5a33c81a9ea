// SPDX-License-Identifier: BSD-2-Clause
//! `ThreadedTcp` against loopback peers: back-pressure both ways, EOF, refusal, close.
#![cfg(not(miri))] // Miri has no sockets.

mod common;

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use common::within;
use isboot_executor::host::{block_on, Runtime, ThreadedTcp};

fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[test]
fn a_megabyte_echoes_through_small_buffers_without_deadlock() {
    let (l, addr) = listener();
    let echo = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 1500];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let total = 1 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let expect = data.clone();
    let got = within(move || {
        let rt = Runtime::new();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let task = rt.spawn(async move {
            let conn = ThreadedTcp::with_buffer(stream, 4096)?;
            let (mut sent, mut back) = (0, Vec::with_capacity(total));
            let mut buf = [0u8; 3000];
            // One task interleaves both directions, as the session's reader and writer do.
            poll_fn(|cx| loop {
                let mut progress = false;
                if sent < total {
                    match conn.poll_write(cx, &data[sent..]) {
                        Poll::Ready(Ok(n)) => {
                            sent += n;
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                match conn.poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::UnexpectedEof)))
                    }
                    Poll::Ready(Ok(n)) => {
                        back.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
                if back.len() == total {
                    return Poll::Ready(Ok(()));
                }
                if !progress {
                    return Poll::Pending;
                }
            })
            .await?;
            Ok::<_, io::Error>(back)
        });
        block_on(task)
    })
    .unwrap();
    assert!(got == expect, "echoed bytes differ");
    echo.join().unwrap();
}

#[test]
fn buffered_bytes_are_read_before_end_of_stream() {
    let (l, addr) = listener();
    let peer = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"hello").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // Keep the socket open until the client is done reading.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let out = within(move || {
        let rt = Runtime::new();
        let task = rt.spawn(async move {
            let conn = ThreadedTcp::connect(addr, Duration::from_secs(10)).await?;
            let mut got = Vec::new();
            let mut buf = [0u8; 2];
            loop {
                let n = poll_fn(|cx| conn.poll_read(cx, &mut buf)).await?;
                if n == 0 {
                    return Ok::<_, io::Error>(got);
                }
                got.extend_from_slice(&buf[..n]);
            }
        });
        block_on(task)
    })
    .unwrap();
    assert_eq!(out, b"hello");
    peer.join().unwrap();
}

#[test]
fn connecting_to_a_closed_port_fails() {
    let (l, addr) = listener();
    drop(l);
    let res = within(move || block_on(ThreadedTcp::connect(addr, Duration::from_secs(10))));
    let err = res.expect_err("nothing listens there");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn close_fails_later_polls_and_stops_the_threads() {
    let (l, addr) = listener();
    let peer = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut sink = Vec::new();
        // Returns once the client closes.
        let _ = s.read_to_end(&mut sink);
    });
    let err = within(move || {
        let mut conn = block_on(ThreadedTcp::connect(addr, Duration::from_secs(10))).unwrap();
        conn.close();
        conn.close();
        let mut buf = [0u8; 4];
        block_on(poll_fn(|cx| conn.poll_read(cx, &mut buf))).unwrap_err()
    });
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    peer.join().unwrap();
}

#[test]
fn close_returns_while_the_writer_is_blocked_on_a_peer_that_does_not_read() {
    let (l, addr) = listener();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        // Never reads: the client's socket buffer fills and its writer thread blocks in `write`.
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        drop(s);
    });
    let queued = within(move || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let mut conn = ThreadedTcp::with_buffer(stream, 64 * 1024).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let mut queued = 0usize;
        // Queue until the send buffer stays full: the writer is then stuck in a blocking write.
        loop {
            // One poll: `None` when the send buffer is full.
            let polled = block_on(poll_fn(|cx| match conn.poll_write(cx, &chunk) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            }));
            match polled {
                Some(Ok(n)) => queued += n,
                Some(Err(e)) => panic!("write failed: {e}"),
                None if conn.unsent() > 0 => break,
                None => thread::yield_now(),
            }
            assert!(queued < 1 << 30, "the peer's socket never filled");
        }
        conn.close();
        queued
    });
    release_tx.send(()).unwrap();
    peer.join().unwrap();
    assert!(queued > 0);
}
