// SPDX-License-Identifier: BSD-2-Clause
//! The session task end to end over the scripted fake target (`crate::testing`), in memory:
//! login, reads and writes through R2T, connection loss with replay, target pings, recovery,
//! shutdown with logout.
//!
//! [`FakeTransport`] feeds the initiator's bytes to a [`FakeConnection`] inside `poll_write`
//! and hands back its answers from `poll_read`; the target's disk and script are shared by
//! every connection of a [`Rig`]. Connecting can be refused per port, and the target's
//! violations of the protocol by the initiator fail the test when the rig is dropped.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::net::{Ipv4Addr, SocketAddr};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::mpsc;
use std::sync::Mutex as StdMutex;

use isboot_executor::host::{StdLock, TestRuntime};

use super::*;
use crate::lun::Lun;
use crate::pdu::LogoutResponseCode;
use crate::port::{Connector, Events, IoError, Level, Log, Portal, Random, Transport};
use crate::scsi::{cdb, Completion, ScsiRequest};
use crate::testing::{
    ConnectionEnd, FakeConfig, FakeConnection, FakeTarget, Fault, OnLogout, Redirect, Stats, BLOCK,
};
use crate::text::{DigestOffer, Key};

mod config;
mod io;
mod logout;
mod recovery;
mod rx;

pub(super) const WAIT: Duration = Duration::from_secs(20);

/// The script of a rig: the target's configuration and what the network does.
pub(super) struct Setup {
    pub(super) cfg: FakeConfig,
    /// Connections to these ports are refused.
    pub(super) refuse_ports: Vec<u16>,
    /// Break the connection that receives the n-th SCSI command (0: the first).
    pub(super) break_after: Option<u32>,
}

/// What the network saw and refuses.
#[derive(Default)]
struct Net {
    /// Portals connected to, in order.
    portals: Vec<SocketAddr>,
    refuse_ports: Vec<u16>,
}

/// One connection: the target's side and the bytes it sent that the initiator has not read.
pub(super) struct FakeTransport {
    conn: FakeConnection,
    out: VecDeque<u8>,
    reader: Option<Waker>,
    /// Closed by the initiator.
    closed: bool,
}

impl Transport for FakeTransport {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        if self.closed {
            return Poll::Ready(Err(IoError::Reset));
        }
        self.out.extend(self.conn.take_output());
        if self.out.is_empty() {
            return match self.conn.end() {
                Some(ConnectionEnd::Fin) => Poll::Ready(Ok(0)),
                Some(ConnectionEnd::Reset) => Poll::Ready(Err(IoError::Reset)),
                None => {
                    self.reader = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let n = buf.len().min(self.out.len());
        for (dst, src) in buf.iter_mut().zip(self.out.drain(..n)) {
            *dst = src;
        }
        Poll::Ready(Ok(n))
    }

    /// As readv(2): whatever `first` leaves goes on into `second`, so the session's tests run
    /// the read that takes a segment and the next header together.
    fn poll_read_pair(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        match self.poll_read(cx, first) {
            Poll::Ready(Ok(n)) if n == first.len() && !self.out.is_empty() => {
                let m = second.len().min(self.out.len());
                for (dst, src) in second.iter_mut().zip(self.out.drain(..m)) {
                    *dst = src;
                }
                Poll::Ready(Ok(n + m))
            }
            other => other,
        }
    }

    fn guess_data_in(&self) -> bool {
        true
    }

    /// As readv(2) of three: the session's tests run the guessed Data-In read, too.
    fn poll_read_three(
        &mut self,
        cx: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
        third: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let want = first.len() + second.len();
        match self.poll_read_pair(cx, first, second) {
            Poll::Ready(Ok(n)) if n == want && !self.out.is_empty() => {
                let m = third.len().min(self.out.len());
                for (dst, src) in third.iter_mut().zip(self.out.drain(..m)) {
                    *dst = src;
                }
                Poll::Ready(Ok(n + m))
            }
            other => other,
        }
    }

    fn poll_write(&mut self, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        if self.closed || self.conn.end() == Some(ConnectionEnd::Reset) {
            return Poll::Ready(Err(IoError::Reset));
        }
        self.conn.receive(buf);
        self.out.extend(self.conn.take_output());
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn close(&mut self) {
        self.closed = true;
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

pub(super) struct FakeConnector {
    target: FakeTarget,
    net: Arc<StdMutex<Net>>,
}

pub(super) struct Ready(Option<FakeTransport>);

impl Future for Ready {
    type Output = Result<FakeTransport, IoError>;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(self.0.take().ok_or(IoError::Refused))
    }
}

impl Connector for FakeConnector {
    type Transport = FakeTransport;
    type Connect<'a> = Ready;

    fn connect(&mut self, portal: Portal) -> Ready {
        let mut net = self.net.lock().expect("net lock");
        net.portals.push(portal.addr);
        if net.refuse_ports.contains(&portal.addr.port()) {
            return Ready(None);
        }
        Ready(Some(FakeTransport {
            conn: self.target.connect(portal.addr),
            out: VecDeque::new(),
            reader: None,
            closed: false,
        }))
    }
}

pub(super) struct Rig {
    pub(super) rt: TestRuntime,
    pub(super) target: FakeTarget,
    net: Arc<StdMutex<Net>>,
    pub(super) done: mpsc::Receiver<Completion>,
    tx: StdMutex<Option<mpsc::Sender<Completion>>>,
    pub(super) states: Arc<StdMutex<Vec<State>>>,
    pub(super) lines: Arc<StdMutex<Vec<String>>>,
    /// `Events::error` calls.
    pub(super) reported: Arc<StdMutex<u32>>,
}

/// A 1 MiB disk behind a target that answers as many do: MaxRecvDataSegmentLength 8192,
/// MaxBurstLength 16384, FirstBurstLength 8192, InitialR2T=Yes, ImmediateData=No; Data-In in
/// 4096-byte PDUs (20000 bytes for reads of 64 KiB and more); the Logout answered and the
/// connection left to the initiator. `setup` changes the script.
pub(super) fn rig(setup: impl FnOnce(&mut Setup)) -> Rig {
    let mut s = Setup {
        cfg: FakeConfig {
            max_recv_dsl: 8192,
            max_burst: 16384,
            first_burst: 8192,
            immediate_data: false,
            data_in_pdu: 4096,
            large_read_pdu: Some(20_000),
            on_logout: OnLogout::Answer,
            ..FakeConfig::new(2048 * BLOCK, Fault::None)
        },
        refuse_ports: Vec::new(),
        break_after: None,
    };
    setup(&mut s);
    let target = FakeTarget::new(s.cfg);
    if let Some(n) = s.break_after {
        target.break_after(n);
    }
    let (tx, rx) = mpsc::channel();
    Rig {
        rt: TestRuntime::new(),
        target,
        net: Arc::new(StdMutex::new(Net {
            portals: Vec::new(),
            refuse_ports: s.refuse_ports,
        })),
        done: rx,
        tx: StdMutex::new(Some(tx)),
        states: Arc::new(StdMutex::new(Vec::new())),
        lines: Arc::new(StdMutex::new(Vec::new())),
        reported: Arc::new(StdMutex::new(0)),
    }
}

impl Rig {
    pub(super) fn sender(&self) -> mpsc::Sender<Completion> {
        self.tx
            .lock()
            .expect("tx lock")
            .take()
            .expect("one session per rig")
    }

    pub(super) fn connector(&self) -> FakeConnector {
        FakeConnector {
            target: self.target.clone(),
            net: self.net.clone(),
        }
    }

    /// Portals connected to, in order.
    pub(super) fn portals(&self) -> Vec<SocketAddr> {
        self.net.lock().expect("net lock").portals.clone()
    }

    /// Connections to `port` are refused from now on.
    pub(super) fn refuse(&self, port: u16) {
        self.net.lock().expect("net lock").refuse_ports.push(port);
    }

    /// Logged lines that contain `needle`.
    pub(super) fn logged(&self, needle: &str) -> Vec<String> {
        let lines = self.lines.lock().expect("log lock");
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for Rig {
    /// The target records what the initiator got wrong; any of it fails the test.
    fn drop(&mut self) {
        let Stats { violations, .. } = self.target.stats();
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "initiator violations: {violations:#?}"
            );
        }
    }
}

/// Completions to the rig's channel; states, and the number of `Events::error` calls, to the
/// rig.
pub(super) struct Sink(
    mpsc::Sender<Completion>,
    Arc<StdMutex<Vec<State>>>,
    Arc<StdMutex<u32>>,
);

/// Keeps every line up to Info (and echoes everything to stderr when ISBOOT_TEST_LOG is set).
#[derive(Clone)]
pub(super) struct Recorder(Arc<StdMutex<Vec<String>>>);

impl Log for Recorder {
    fn enabled(&self, level: Level) -> bool {
        level != Level::Trace || std::env::var_os("ISBOOT_TEST_LOG").is_some()
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        let line = std::format!("[{level:?}] {args}");
        if std::env::var_os("ISBOOT_TEST_LOG").is_some() {
            std::eprintln!("{line}");
        }
        if level != Level::Trace {
            self.0.lock().expect("log lock").push(line);
        }
    }
}

impl Events for Sink {
    type Buf = Vec<u8>;

    fn complete(&mut self, c: Completion) {
        let _ = self.0.send(c);
    }
    fn reset_done(&mut self, _tag: u64, _result: Result<(), TmfError>) {}
    fn state(&mut self, s: State) {
        self.1.lock().expect("states lock").push(s);
    }
    fn error(&mut self, _e: &LastError) {
        *self.2.lock().expect("reported lock") += 1;
    }
}

pub(super) struct Counter(u32);

impl Random for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (self.0 >> 16) as u8;
        }
    }
}

#[derive(Clone)]
pub(super) struct Quiet;

/// Silent unless ISBOOT_TEST_LOG is set (then everything goes to stderr).
impl Log for Quiet {
    fn enabled(&self, _level: Level) -> bool {
        std::env::var_os("ISBOOT_TEST_LOG").is_some()
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        std::eprintln!("[{level:?}] {args}");
    }
}

pub(super) fn lun1() -> Lun {
    Lun::from_number(1).unwrap_or_default()
}

pub(super) fn read16(tag: u64, lba: u64, blocks: u32) -> ScsiRequest {
    let cdb = cdb::rw16(false, lba, blocks);
    ScsiRequest::read(tag, lun1(), cdb, vec![0; blocks as usize * BLOCK])
}

pub(super) fn write16(tag: u64, lba: u64, data: Vec<u8>) -> ScsiRequest {
    let blocks = (data.len() / BLOCK) as u32;
    ScsiRequest::write(tag, lun1(), cdb::rw16(true, lba, blocks), data)
}

pub(super) fn config() -> SessionConfig {
    let mut c = SessionConfig::new(
        String::from("iqn.2026-01.org.isboot:test"),
        Isid([0x80, 1, 2, 3, 4, 5]),
        vec![TargetConfig {
            portal: Portal {
                addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 3260),
                nic: 0,
            },
            name: String::from("iqn.2026-01.org.example:disk"),
            chap: None,
        }],
    );
    c.max_tasks = 8;
    c.backoff.step = Duration::from_millis(10);
    c.backoff.max = Duration::from_millis(50);
    c
}

pub(super) fn start(r: &Rig) -> (Handle<StdLock>, isboot_executor::JoinHandle<'_, End>) {
    start_with(r, config())
}

pub(super) fn start_with(
    r: &Rig,
    cfg: SessionConfig,
) -> (Handle<StdLock>, isboot_executor::JoinHandle<'_, End>) {
    let tx = r.sender();
    let (handle, session) = Session::try_new(
        cfg,
        r.connector(),
        Sink(tx, r.states.clone(), r.reported.clone()),
        Counter(1),
        Recorder(r.lines.clone()),
        r.rt.timer(),
    )
    .unwrap();
    (handle, r.rt.spawn(session.run()))
}

pub(super) fn expect_good(c: &Completion) {
    match c.result {
        Ok(ref r) if r.is_good() => {}
        ref other => panic!("request {} failed: {other:?}", c.tag),
    }
}
