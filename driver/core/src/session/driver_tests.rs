// SPDX-License-Identifier: BSD-2-Clause
//! The session task end to end over an in-memory target (no sockets): login, reads and writes
//! through R2T, connection loss with replay, target pings, shutdown with logout.
//!
//! The fake target answers synchronously inside `poll_write`, keeps a RAM disk shared across
//! connections, and can be told to break the connection after a number of commands (the
//! command that breaks it is lost, as it would be on a real reset).

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

use isboot_executor::host::{Runtime, StdLock};

use super::*;
use crate::lun::Lun;
use crate::pdu::TargetSns;
use crate::pdu::{
    Cdb, DataIn, Digests, Header, LoginResponse, LogoutResponse, LogoutResponseCode, NopIn, Pdu,
    R2t, RawPdu, Residual, ScsiResponse, Stage, RESERVED_TAG,
};
use crate::port::{Connector, Events, IoError, Level, Log, Portal, Random, Transport};
use crate::scsi::{cdb, Completion, ScsiRequest};
use crate::sn::Sn;
use crate::text::TextBuilder;
use crate::text::{DigestOffer, Key};

const BLOCK: usize = 512;
const DISK_BLOCKS: usize = 2048;
const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Disk {
    data: Vec<u8>,
    /// Connections opened so far.
    connections: usize,
    /// Logins seen, with their ISID and TSIH.
    logins: Vec<([u8; 6], u16)>,
    /// Break the connection when this many more SCSI commands have arrived.
    break_after: Option<usize>,
    logouts: usize,
    /// Ping the initiator right after login with this TTT.
    ping_ttt: Option<u32>,
    ping_answered: bool,
    /// Negotiate HeaderDigest and DataDigest CRC32C.
    digests: bool,
    /// Flip one bit of the next Data-In's data digest.
    corrupt_digest_once: bool,
    /// Portals connected to, in order.
    portals: Vec<SocketAddr>,
    /// Connections to these ports are refused.
    refuse_ports: Vec<u16>,
    /// Logins on this port are redirected to the given address (temporary).
    redirect: Option<(u16, &'static str)>,
    /// Commands with this opcode get no answer (until aborted).
    ignore_opcode: Option<u8>,
    aborts: Vec<u32>,
    /// Refuse a login that skips the security stage.
    require_security: bool,
    /// What the target does with a Logout Request.
    on_logout: OnLogout,
    /// Right after this many more logins, ask the initiator to drop the connection with
    /// Time2Wait 0 (a target stuck in a restart loop).
    drop_after_login: usize,
}

/// A target's ways of ending a connection on Logout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum OnLogout {
    /// Answer with this code and keep the connection open.
    #[default]
    Answer,
    /// Answer, then close the connection (FIN after the response, as istgt does).
    AnswerThenFin,
    /// Answer with a failure code, then close.
    RefuseThenFin(LogoutResponseCode),
    /// Close the connection without answering.
    Fin,
    /// Never answer, keep the connection open.
    Ignore,
}

struct Write {
    lba: usize,
    len: usize,
    got: usize,
    lun: Lun,
}

struct Conn {
    disk: Arc<StdMutex<Disk>>,
    port: u16,
    secured: bool,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    reader: Option<Waker>,
    broken: bool,
    /// The target closed its side: reads see end of stream once `out` is drained.
    fin: bool,
    stat_sn: u32,
    exp_cmd_sn: u32,
    writes: Vec<(u32, Write)>,
    next_ttt: u32,
    digests: Digests,
}

fn emit_with(out: &mut VecDeque<u8>, h: &dyn Header, data: &[u8], d: Digests) {
    let mut v = Vec::new();
    crate::pdu::emit_pdu(h, data, d, &mut v).expect("fake target emits");
    out.extend(v);
}

fn lba_and_len(cdb: &[u8]) -> (usize, usize) {
    let (lba, blocks) = cdb::lba_and_blocks(cdb).expect("a READ or WRITE");
    (lba as usize, blocks as usize * BLOCK)
}

impl Conn {
    fn window(&self) -> (Sn, Sn) {
        (Sn(self.exp_cmd_sn), Sn(self.exp_cmd_sn.wrapping_add(15)))
    }

    fn next_stat_sn(&mut self) -> Sn {
        let s = Sn(self.stat_sn);
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    fn respond(&mut self, itt: u32, status: u8) {
        let (exp, max) = self.window();
        let r = ScsiResponse {
            response: 0,
            status,
            itt,
            snack_tag: 0,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: exp,
                max_cmd_sn: max,
            },
            exp_data_sn: Sn(0),
            bidi_residual: Residual::None,
            residual: Residual::None,
        };
        emit_with(&mut self.out, &r, &[], self.digests);
    }

    fn handle(&mut self, pdu: Pdu, data: &[u8]) {
        match pdu {
            Pdu::LoginRequest(l) if l.csg == Stage::Security => {
                let pairs = crate::text::parse_pairs(data).expect("login text");
                assert!(pairs.contains(&("AuthMethod", "None")), "{pairs:?}");
                self.secured = true;
                let mut t = TextBuilder::new(1024);
                t.push("AuthMethod", "None").expect("text");
                let r = LoginResponse {
                    transit: true,
                    continue_bit: false,
                    csg: Stage::Security,
                    nsg: Stage::Operational,
                    version_max: 0,
                    version_active: 0,
                    isid: l.isid,
                    tsih: 0,
                    itt: l.itt,
                    sns: TargetSns {
                        stat_sn: Sn(self.stat_sn),
                        exp_cmd_sn: Sn(l.cmd_sn.get()),
                        max_cmd_sn: Sn(l.cmd_sn.get()),
                    },
                    status_class: 0,
                    status_detail: 0,
                };
                emit_with(&mut self.out, &r, t.as_bytes(), self.digests);
            }
            Pdu::LoginRequest(l) => {
                let mut d = self.disk.lock().expect("disk lock");
                if d.require_security && !self.secured {
                    drop(d);
                    let r = LoginResponse {
                        transit: false,
                        continue_bit: false,
                        csg: Stage::Operational,
                        nsg: Stage::Security,
                        version_max: 0,
                        version_active: 0,
                        isid: l.isid,
                        tsih: 0,
                        itt: l.itt,
                        sns: TargetSns {
                            stat_sn: Sn(0),
                            exp_cmd_sn: Sn(0),
                            max_cmd_sn: Sn(0),
                        },
                        status_class: 2,
                        status_detail: 0,
                    };
                    emit_with(&mut self.out, &r, &[], self.digests);
                    return;
                }
                if let Some((_, to)) = d.redirect.filter(|(p, _)| *p == self.port) {
                    drop(d);
                    let mut t = TextBuilder::new(1024);
                    t.push("TargetAddress", to).expect("text");
                    let r = LoginResponse {
                        transit: false,
                        continue_bit: false,
                        csg: Stage::Operational,
                        nsg: Stage::Security,
                        version_max: 0,
                        version_active: 0,
                        isid: l.isid,
                        tsih: 0,
                        itt: l.itt,
                        sns: TargetSns {
                            stat_sn: Sn(0),
                            exp_cmd_sn: Sn(0),
                            max_cmd_sn: Sn(0),
                        },
                        status_class: 1,
                        status_detail: 1,
                    };
                    emit_with(&mut self.out, &r, t.as_bytes(), self.digests);
                    return;
                }
                d.logins.push((l.isid, l.tsih));
                let ping = d.ping_ttt;
                let d_digests = d.digests;
                let drop_now = d.drop_after_login > 0;
                d.drop_after_login = d.drop_after_login.saturating_sub(1);
                drop(d);
                self.exp_cmd_sn = l.cmd_sn.get();
                let digest = if d_digests { "CRC32C" } else { "None" };
                let mut t = TextBuilder::new(65536);
                for (k, v) in [
                    ("HeaderDigest", digest),
                    ("DataDigest", digest),
                    ("MaxRecvDataSegmentLength", "8192"),
                    ("MaxBurstLength", "16384"),
                    ("FirstBurstLength", "8192"),
                    ("InitialR2T", "Yes"),
                    ("ImmediateData", "No"),
                    ("MaxOutstandingR2T", "1"),
                    ("DataPDUInOrder", "Yes"),
                    ("DataSequenceInOrder", "Yes"),
                    ("DefaultTime2Wait", "2"),
                    ("DefaultTime2Retain", "0"),
                    ("ErrorRecoveryLevel", "0"),
                    ("MaxConnections", "1"),
                ] {
                    t.push(k, v).expect("text");
                }
                let (exp, max) = self.window();
                let r = LoginResponse {
                    transit: true,
                    continue_bit: false,
                    csg: Stage::Operational,
                    nsg: Stage::FullFeature,
                    version_max: 0,
                    version_active: 0,
                    isid: l.isid,
                    tsih: 7,
                    itt: l.itt,
                    sns: TargetSns {
                        stat_sn: self.next_stat_sn(),
                        exp_cmd_sn: exp,
                        max_cmd_sn: max,
                    },
                    status_class: 0,
                    status_detail: 0,
                };
                emit_with(&mut self.out, &r, t.as_bytes(), self.digests);
                // Digests start with the first PDU after the final Login Response.
                self.digests = Digests {
                    header: d_digests,
                    data: d_digests,
                };
                if let Some(ttt) = ping {
                    let (exp, max) = self.window();
                    let p = NopIn {
                        lun: Lun::default(),
                        itt: RESERVED_TAG,
                        ttt,
                        sns: TargetSns {
                            stat_sn: Sn(self.stat_sn),
                            exp_cmd_sn: exp,
                            max_cmd_sn: max,
                        },
                    };
                    emit_with(&mut self.out, &p, b"are you there", self.digests);
                }
                if drop_now {
                    let (exp, max) = self.window();
                    let a = crate::pdu::AsyncMessage {
                        lun: Lun::default(),
                        sns: TargetSns {
                            stat_sn: self.next_stat_sn(),
                            exp_cmd_sn: exp,
                            max_cmd_sn: max,
                        },
                        event: crate::pdu::AsyncEvent::DropConnection,
                        vcode: 0,
                        parameter1: 0,
                        parameter2: 0,
                        parameter3: 0,
                    };
                    emit_with(&mut self.out, &a, &[], self.digests);
                }
            }
            Pdu::ScsiCommand(c) => {
                {
                    let mut d = self.disk.lock().expect("disk lock");
                    if let Some(n) = d.break_after.as_mut() {
                        if *n == 0 {
                            d.break_after = None;
                            drop(d);
                            self.broken = true;
                            return;
                        }
                        *n -= 1;
                    }
                }
                self.exp_cmd_sn = c.cmd_sn.get().wrapping_add(1);
                let cdb = c.cdb.as_slice();
                let ignore = self.disk.lock().expect("disk lock").ignore_opcode;
                if cdb.first().copied() == ignore {
                    return;
                }
                match cdb.first() {
                    Some(0x88) => {
                        let (lba, len) = lba_and_len(cdb);
                        let bytes = {
                            let d = self.disk.lock().expect("disk lock");
                            d.data[lba * BLOCK..lba * BLOCK + len].to_vec()
                        };
                        // Large reads come in odd-sized 20000-byte PDUs: padding, and data
                        // segments big enough to bypass the read-ahead buffer.
                        let piece: usize = if len >= 65536 { 20_000 } else { 4096 };
                        let chunks: Vec<&[u8]> = bytes.chunks(piece).collect();
                        for (i, chunk) in chunks.iter().enumerate() {
                            let last = i + 1 == chunks.len();
                            let (exp, max) = self.window();
                            let d = DataIn {
                                final_bit: last,
                                ack: false,
                                status: last.then_some(0),
                                residual: Residual::None,
                                lun: c.lun,
                                itt: c.itt,
                                ttt: RESERVED_TAG,
                                sns: TargetSns {
                                    stat_sn: if last { self.next_stat_sn() } else { Sn(0) },
                                    exp_cmd_sn: exp,
                                    max_cmd_sn: max,
                                },
                                data_sn: Sn(i as u32),
                                buffer_offset: (i * piece) as u32,
                            };
                            emit_with(&mut self.out, &d, chunk, self.digests);
                            let mut disk = self.disk.lock().expect("disk lock");
                            if self.digests.data && disk.corrupt_digest_once {
                                disk.corrupt_digest_once = false;
                                if let Some(b) = self.out.back_mut() {
                                    *b ^= 0x01;
                                }
                            }
                        }
                    }
                    Some(0x8a) => {
                        let (lba, len) = lba_and_len(cdb);
                        self.writes.push((
                            c.itt,
                            Write {
                                lba,
                                len,
                                got: 0,
                                lun: c.lun,
                            },
                        ));
                        self.r2t(c.itt, 0);
                    }
                    Some(0x12) => {
                        // INQUIRY with an odd allocation length: exercises the padding.
                        let len = c.expected_data_len as usize;
                        let bytes: Vec<u8> = (0..len).map(|i| 0xa0 ^ i as u8).collect();
                        let (exp, max) = self.window();
                        let d = DataIn {
                            final_bit: true,
                            ack: false,
                            status: Some(0),
                            residual: Residual::None,
                            lun: c.lun,
                            itt: c.itt,
                            ttt: RESERVED_TAG,
                            sns: TargetSns {
                                stat_sn: self.next_stat_sn(),
                                exp_cmd_sn: exp,
                                max_cmd_sn: max,
                            },
                            data_sn: Sn(0),
                            buffer_offset: 0,
                        };
                        emit_with(&mut self.out, &d, &bytes, self.digests);
                    }
                    _ => self.respond(c.itt, 0),
                }
            }
            Pdu::DataOut(d) => {
                let Some(i) = self.writes.iter().position(|(itt, _)| *itt == d.itt) else {
                    panic!("Data-Out for unknown ITT {:#x}", d.itt);
                };
                let (itt, w) = &mut self.writes[i];
                let itt = *itt;
                assert_eq!(d.buffer_offset as usize, w.got, "Data-Out offset");
                {
                    let mut disk = self.disk.lock().expect("disk lock");
                    let at = w.lba * BLOCK + w.got;
                    disk.data[at..at + data.len()].copy_from_slice(data);
                }
                w.got += data.len();
                let (got, len) = (w.got, w.len);
                if got == len {
                    self.writes.remove(i);
                    self.respond(itt, 0);
                } else if d.final_bit {
                    self.r2t(itt, got);
                }
            }
            Pdu::NopOut(n) => {
                if n.itt != RESERVED_TAG {
                    let (exp, max) = self.window();
                    let r = NopIn {
                        lun: Lun::default(),
                        itt: n.itt,
                        ttt: RESERVED_TAG,
                        sns: TargetSns {
                            stat_sn: self.next_stat_sn(),
                            exp_cmd_sn: exp,
                            max_cmd_sn: max,
                        },
                    };
                    emit_with(&mut self.out, &r, data, self.digests);
                } else {
                    assert_eq!(data, b"are you there");
                    self.disk.lock().expect("disk lock").ping_answered = true;
                }
            }
            Pdu::TaskMgmtRequest(t) => {
                self.disk
                    .lock()
                    .expect("disk lock")
                    .aborts
                    .push(t.referenced_task_tag);
                let (exp, max) = self.window();
                let r = crate::pdu::TaskMgmtResponse {
                    response: crate::pdu::TmfResponse::Complete,
                    itt: t.itt,
                    sns: TargetSns {
                        stat_sn: self.next_stat_sn(),
                        exp_cmd_sn: exp,
                        max_cmd_sn: max,
                    },
                };
                emit_with(&mut self.out, &r, &[], self.digests);
            }
            Pdu::LogoutRequest(l) => {
                let mut d = self.disk.lock().expect("disk lock");
                d.logouts += 1;
                let how = d.on_logout;
                drop(d);
                let response = match how {
                    OnLogout::Answer | OnLogout::AnswerThenFin => LogoutResponseCode::Success,
                    OnLogout::RefuseThenFin(code) => code,
                    OnLogout::Fin => {
                        self.fin = true;
                        return;
                    }
                    OnLogout::Ignore => return,
                };
                let (exp, max) = self.window();
                let r = LogoutResponse {
                    response,
                    itt: l.itt,
                    sns: TargetSns {
                        stat_sn: self.next_stat_sn(),
                        exp_cmd_sn: exp,
                        max_cmd_sn: max,
                    },
                    ..LogoutResponse::default()
                };
                emit_with(&mut self.out, &r, &[], self.digests);
                self.fin = how != OnLogout::Answer;
            }
            other => panic!("fake target got {other:?}"),
        }
    }

    fn r2t(&mut self, itt: u32, offset: usize) {
        let Some((_, w)) = self.writes.iter().find(|(i, _)| *i == itt) else {
            return;
        };
        let len = (w.len - offset).min(16384);
        let lun = w.lun;
        let r2t_sn = (offset / 16384) as u32;
        let (exp, max) = self.window();
        self.next_ttt += 1;
        let r = R2t {
            lun,
            itt,
            ttt: self.next_ttt,
            sns: TargetSns {
                stat_sn: Sn(self.stat_sn),
                exp_cmd_sn: exp,
                max_cmd_sn: max,
            },
            r2t_sn: Sn(r2t_sn),
            buffer_offset: offset as u32,
            desired_len: len as u32,
        };
        emit_with(&mut self.out, &r, &[], self.digests);
    }
}

struct FakeTransport(Arc<StdMutex<Conn>>);

impl Transport for FakeTransport {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        let mut c = self.0.lock().expect("conn lock");
        if c.broken {
            return Poll::Ready(Err(IoError::Reset));
        }
        if c.out.is_empty() && c.fin {
            return Poll::Ready(Ok(0));
        }
        if c.out.is_empty() {
            c.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(c.out.len());
        for (dst, src) in buf.iter_mut().zip(c.out.drain(..n)) {
            *dst = src;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        let mut c = self.0.lock().expect("conn lock");
        if c.broken {
            return Poll::Ready(Err(IoError::Reset));
        }
        c.inbuf.extend_from_slice(buf);
        loop {
            let split = RawPdu::split(&c.inbuf, c.digests, 1 << 24)
                .ok()
                .map(|(raw, used)| (raw.parse(), raw.data.to_vec(), used));
            let Some((pdu, data, used)) = split else {
                break;
            };
            c.inbuf.drain(..used);
            c.handle(pdu.expect("initiator PDU parses"), &data);
            if c.broken {
                break;
            }
        }
        if let Some(w) = c.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn close(&mut self) {
        let mut c = self.0.lock().expect("conn lock");
        c.broken = true;
        if let Some(w) = c.reader.take() {
            w.wake();
        }
    }
}

struct FakeConnector(Arc<StdMutex<Disk>>);

struct Ready(Option<FakeTransport>);

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
        let mut d = self.0.lock().expect("disk lock");
        d.portals.push(portal.addr);
        if d.refuse_ports.contains(&portal.addr.port()) {
            return Ready(None);
        }
        d.connections += 1;
        drop(d);
        Ready(Some(FakeTransport(Arc::new(StdMutex::new(Conn {
            disk: self.0.clone(),
            port: portal.addr.port(),
            secured: false,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            reader: None,
            broken: false,
            fin: false,
            stat_sn: 1000,
            exp_cmd_sn: 0,
            writes: Vec::new(),
            next_ttt: 0,
            digests: Digests::default(),
        })))))
    }
}

struct Sink(mpsc::Sender<Completion>, Arc<StdMutex<Vec<State>>>);

/// Keeps every line up to Info (and echoes everything to stderr when ISBOOT_TEST_LOG is set).
#[derive(Clone)]
struct Recorder(Arc<StdMutex<Vec<String>>>);

impl Log for Recorder {
    fn enabled(&self, level: Level) -> bool {
        level != Level::Trace || std::env::var_os("ISBOOT_TEST_LOG").is_some()
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        let line = std::format!("{args}");
        if std::env::var_os("ISBOOT_TEST_LOG").is_some() {
            std::eprintln!("[{level:?}] {line}");
        }
        if level != Level::Trace {
            self.0.lock().expect("log lock").push(line);
        }
    }
}

impl Events for Sink {
    fn complete(&mut self, c: Completion) {
        let _ = self.0.send(c);
    }
    fn reset_done(&mut self, _tag: u64, _result: Result<(), TmfError>) {}
    fn state(&mut self, s: State) {
        self.1.lock().expect("states lock").push(s);
    }
}

struct Counter(u32);

impl Random for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (self.0 >> 16) as u8;
        }
    }
}

#[derive(Clone)]
struct Quiet;

/// Silent unless ISBOOT_TEST_LOG is set (then everything goes to stderr).
impl Log for Quiet {
    fn enabled(&self, _level: Level) -> bool {
        std::env::var_os("ISBOOT_TEST_LOG").is_some()
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        std::eprintln!("[{level:?}] {args}");
    }
}

fn lun1() -> Lun {
    Lun::from_number(1).unwrap_or_default()
}

fn read16(tag: u64, lba: u64, blocks: u32) -> ScsiRequest {
    let cdb = cdb::rw16(false, lba, blocks);
    ScsiRequest::read(tag, lun1(), cdb, blocks as usize * BLOCK)
}

fn write16(tag: u64, lba: u64, data: Vec<u8>) -> ScsiRequest {
    let blocks = (data.len() / BLOCK) as u32;
    ScsiRequest::write(tag, lun1(), cdb::rw16(true, lba, blocks), data)
}

struct Rig {
    rt: Runtime,
    disk: Arc<StdMutex<Disk>>,
    done: mpsc::Receiver<Completion>,
    tx: StdMutex<Option<mpsc::Sender<Completion>>>,
    states: Arc<StdMutex<Vec<State>>>,
    lines: Arc<StdMutex<Vec<String>>>,
}

fn rig(setup: impl FnOnce(&mut Disk)) -> Rig {
    let mut d = Disk {
        data: (0..DISK_BLOCKS * BLOCK)
            .map(|i| (i / BLOCK) as u8 ^ (i as u8))
            .collect(),
        ..Disk::default()
    };
    setup(&mut d);
    let (tx, rx) = mpsc::channel();
    Rig {
        rt: Runtime::new(),
        disk: Arc::new(StdMutex::new(d)),
        done: rx,
        tx: StdMutex::new(Some(tx)),
        states: Arc::new(StdMutex::new(Vec::new())),
        lines: Arc::new(StdMutex::new(Vec::new())),
    }
}

impl Rig {
    fn sender(&self) -> mpsc::Sender<Completion> {
        self.tx
            .lock()
            .expect("tx lock")
            .take()
            .expect("one session per rig")
    }

    /// Logged lines that contain `needle`.
    fn logged(&self, needle: &str) -> Vec<String> {
        let lines = self.lines.lock().expect("log lock");
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

fn config() -> SessionConfig {
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

fn start(r: &Rig) -> (Handle<StdLock>, isboot_executor::JoinHandle<'_, End>) {
    start_with(r, config())
}

fn start_with(
    r: &Rig,
    cfg: SessionConfig,
) -> (Handle<StdLock>, isboot_executor::JoinHandle<'_, End>) {
    let tx = r.sender();
    let (handle, session) = Session::new(
        cfg,
        FakeConnector(r.disk.clone()),
        Sink(tx, r.states.clone()),
        Counter(1),
        Recorder(r.lines.clone()),
        r.rt.timer(),
    );
    (handle, r.rt.spawn(session.run()))
}

fn expect_good(c: &Completion) {
    match c.result {
        Ok(ref r) if r.is_good() => {}
        ref other => panic!("request {} failed: {other:?}", c.tag),
    }
}

#[test]
fn reads_and_writes_through_r2t_then_logout() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    let payload: Vec<u8> = (0..40 * BLOCK).map(|i| (i * 7 + 3) as u8).collect();
    h.submit(write16(1, 100, payload.clone()))
        .expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("write completes");
    expect_good(&c);
    h.submit(read16(2, 100, 40)).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("read completes");
    expect_good(&c);
    assert_eq!(c.data, payload, "read back what was written");
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    assert_eq!(d.logouts, 1);
    assert_eq!(d.logins.len(), 1);
    assert_eq!(d.logins[0], ([0x80, 1, 2, 3, 4, 5], 0));
    assert_eq!(
        r.states.lock().expect("states").as_slice(),
        &[State::LoggingIn, State::Up, State::Closed]
    );
}

#[test]
fn connection_loss_is_invisible_to_the_requests() {
    // The third command breaks the connection and is lost with it.
    let r = rig(|d| d.break_after = Some(2));
    let (h, task) = start(&r);
    let mut expected = Vec::new();
    for i in 0..6u64 {
        let data: Vec<u8> = (0..8 * BLOCK).map(|j| (j as u64 * 13 + i) as u8).collect();
        h.submit(write16(i, i * 8, data.clone()))
            .expect("submitted");
        expected.push(data);
    }
    let mut got = 0;
    while got < 6 {
        let c = r.done.recv_timeout(WAIT).expect("every write completes");
        expect_good(&c);
        got += 1;
    }
    for i in 0..6u64 {
        h.submit(read16(100 + i, i * 8, 8)).expect("submitted");
        let c = r.done.recv_timeout(WAIT).expect("read completes");
        expect_good(&c);
        assert_eq!(c.data, expected[i as usize], "block range {i} verified");
    }
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    assert_eq!(d.connections, 2, "one reconnect");
    assert_eq!(d.logins.len(), 2);
    assert!(
        d.logins.iter().all(|l| *l == ([0x80, 1, 2, 3, 4, 5], 0)),
        "same ISID, TSIH 0 on reinstatement: {:?}",
        d.logins
    );
    let states = r.states.lock().expect("states");
    assert!(states.contains(&State::Recovering));
}

#[test]
fn target_ping_is_answered_by_the_running_session() {
    let r = rig(|d| d.ping_ttt = Some(0x55));
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert!(r.disk.lock().expect("disk lock").ping_answered);
}

#[test]
fn requests_after_shutdown_are_refused() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert!(h.submit(read16(1, 0, 1)).is_err());
}

#[test]
fn session_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let r = rig(|_| {});
    let tx = r.sender();
    let (_h, session) = Session::<StdLock, _, _, _, _>::new(
        config(),
        FakeConnector(r.disk.clone()),
        Sink(tx, r.states.clone()),
        Counter(1),
        Quiet,
        r.rt.timer(),
    );
    let fut = session.run();
    assert_send(&fut);
    // CAM's action routine and upcalls use the handle from any thread.
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    assert_send_sync(&_h);
}

#[test]
fn odd_length_data_in_fills_exactly_the_buffer() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    let mut cdb = [0u8; 16];
    cdb[0] = 0x12;
    let req = ScsiRequest::read(9, lun1(), Cdb::new(&cdb).unwrap_or_default(), 37);
    h.submit(req).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("INQUIRY completes");
    expect_good(&c);
    let want: Vec<u8> = (0..37).map(|i| 0xa0 ^ i as u8).collect();
    assert_eq!(c.data, want);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn digests_on_and_a_bad_data_digest_recovers() {
    let r = rig(|d| {
        d.digests = true;
        d.corrupt_digest_once = true;
    });
    let mut cfg = config();
    cfg.offer
        .set_digest(Key::HeaderDigest, DigestOffer::PreferCrc32c)
        .set_digest(Key::DataDigest, DigestOffer::PreferCrc32c);
    let (h, task) = start_with(&r, cfg);
    let payload: Vec<u8> = (0..24 * BLOCK).map(|i| (i * 5 + 1) as u8).collect();
    h.submit(write16(1, 300, payload.clone()))
        .expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    // The first Data-In arrives with a bad digest: the connection drops, the read is replayed.
    h.submit(read16(2, 300, 24)).expect("submitted");
    let c = r
        .done
        .recv_timeout(WAIT)
        .expect("read completes after recovery");
    expect_good(&c);
    assert_eq!(c.data, payload);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    assert!(!d.corrupt_digest_once, "the corruption happened");
    assert_eq!(d.connections, 2, "the bad digest cost one reconnect");
}

fn target(port: u16) -> TargetConfig {
    TargetConfig {
        portal: Portal {
            addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            nic: 0,
        },
        name: String::from("iqn.2026-01.org.example:disk"),
        chap: None,
    }
}

#[test]
fn unreachable_boot_target_fails_over_to_the_alternate() {
    let r = rig(|d| d.refuse_ports = vec![3260]);
    let mut cfg = config();
    cfg.targets = vec![target(3260), target(3261)];
    let (h, task) = start_with(&r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    let ports: Vec<u16> = d.portals.iter().map(|a| a.port()).collect();
    assert_eq!(ports, vec![3260, 3261]);
    assert_eq!(h.status().target, 1);
}

#[test]
fn login_redirect_is_followed() {
    let r = rig(|d| d.redirect = Some((3260, "127.0.0.1:3270,1")));
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    let ports: Vec<u16> = d.portals.iter().map(|a| a.port()).collect();
    assert_eq!(ports, vec![3260, 3270]);
    assert_eq!(d.logins.len(), 1, "logged in at the redirected portal");
}

#[test]
fn bounded_attempts_give_up_and_complete_every_request() {
    let r = rig(|d| d.refuse_ports = vec![3260]);
    let mut cfg = config();
    cfg.backoff.max_attempts = Some(3);
    let (h, task) = start_with(&r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    let c = r.done.recv_timeout(WAIT).expect("the request completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.disk.lock().expect("disk lock").portals.len(), 3);
    assert_eq!(h.status().state, State::Closed);
    // Nothing is accepted once the session has given up.
    assert!(h.submit(read16(2, 0, 1)).is_err());
}

#[test]
fn command_timeout_aborts_it_at_the_target() {
    // TEST UNIT READY never answered.
    let r = rig(|d| d.ignore_opcode = Some(0x00));
    let (h, task) = start(&r);
    let mut tur = ScsiRequest::new(5, lun1(), Cdb::new(&[0u8; 16]).unwrap_or_default());
    tur.timeout = Some(Duration::from_millis(200));
    h.submit(tur).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("the command times out");
    assert_eq!(c.tag, 5);
    assert_eq!(c.result, Err(crate::scsi::TransportError::Timeout));
    // The session goes on.
    h.submit(read16(6, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    assert_eq!(d.aborts.len(), 1, "ABORT TASK sent once");
    assert_eq!(d.connections, 1, "no reconnect needed");
}

#[test]
fn large_reads_in_odd_sized_pdus_land_exactly() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    let payload: Vec<u8> = (0..256 * BLOCK).map(|i| (i * 31 + 7) as u8).collect();
    h.submit(write16(1, 500, payload.clone()))
        .expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    for tag in 2..5 {
        h.submit(read16(tag, 500, 256)).expect("submitted");
    }
    for _ in 2..5 {
        let c = r.done.recv_timeout(WAIT).expect("read completes");
        expect_good(&c);
        assert_eq!(c.data, payload, "request {}", c.tag);
    }
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn more_requests_than_slots_wait_in_the_inbox() {
    let r = rig(|_| {});
    let mut cfg = config();
    cfg.max_tasks = 2;
    let (h, task) = start_with(&r, cfg);
    for tag in 0..20u64 {
        h.submit(read16(tag, tag, 1)).expect("the inbox takes them");
    }
    let mut tags: Vec<u64> = (0..20)
        .map(|_| {
            let c = r.done.recv_timeout(WAIT).expect("every read completes");
            expect_good(&c);
            c.tag
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..20).collect::<Vec<u64>>());
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn target_that_requires_a_security_stage_gets_one() {
    let r = rig(|d| d.require_security = true);
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.disk.lock().expect("disk lock");
    assert_eq!(
        d.connections, 2,
        "one refused operational-first login, then one with security"
    );
    assert_eq!(d.logins.len(), 1);
}

/// The end of an orderly shutdown as the platform sees it: `LoggedOut`, no `Recovering` state
/// after the last `Up`, no disconnect counted for the logout, and no "reconnecting" line after
/// the shutdown began.
fn assert_clean_end(r: &Rig, h: &Handle<StdLock>, end: End, disconnects_before: u64) {
    assert_eq!(end, End::LoggedOut);
    let states = r.states.lock().expect("states").clone();
    let last_up = states
        .iter()
        .rposition(|s| *s == State::Up)
        .expect("was up");
    assert_eq!(
        &states[last_up..],
        &[State::Up, State::Closed],
        "{states:?}"
    );
    assert_eq!(h.status().disconnects, disconnects_before);
    let lines = r.lines.lock().expect("log lock").clone();
    let last_login = lines
        .iter()
        .rposition(|l| l.contains("logged in") || l.contains("reconnected"))
        .expect("a login line");
    assert!(
        lines[last_login..]
            .iter()
            .all(|l| !l.contains("reconnecting")),
        "{lines:#?}"
    );
}

#[test]
fn logout_response_followed_by_fin_in_the_same_read_is_a_clean_logout() {
    let r = rig(|d| d.on_logout = OnLogout::AnswerThenFin);
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("logged out").len(), 1);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 1);
}

#[test]
fn logout_with_fin_after_a_reconnect_is_a_clean_logout() {
    let r = rig(|d| {
        d.break_after = Some(0);
        d.on_logout = OnLogout::AnswerThenFin;
    });
    let (h, task) = start(&r);
    for tag in 0..4u64 {
        h.submit(read16(tag, tag, 1)).expect("submitted");
    }
    for _ in 0..4 {
        expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    }
    assert_eq!(h.status().disconnects, 1, "the break cost one reconnect");
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 1);
    assert_eq!(r.logged("logged out").len(), 1);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 2);
}

#[test]
fn refused_logout_still_ends_the_session_without_reconnecting() {
    let r = rig(|d| d.on_logout = OnLogout::RefuseThenFin(LogoutResponseCode::CleanupFailed));
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("CleanupFailed").len(), 1, "{:?}", r.lines);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 1);
}

#[test]
fn target_closing_instead_of_answering_the_logout_ends_the_session() {
    let r = rig(|d| d.on_logout = OnLogout::Fin);
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("during logout").len(), 1, "{:?}", r.lines);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 1);
}

#[test]
fn unanswered_logout_ends_the_session_at_the_logout_timeout() {
    let r = rig(|d| d.on_logout = OnLogout::Ignore);
    let mut cfg = config();
    cfg.timeouts.logout_timeout = Duration::from_millis(200);
    let (h, task) = start_with(&r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("no Logout Response").len(), 1, "{:?}", r.lines);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 1);
}

#[test]
fn status_reports_the_negotiated_parameters_and_the_command_window() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    let s = h.status();
    let p = s.params.expect("parameters of the login");
    // What the fake target answers (see Conn::handle) combined with our offer.
    assert_eq!(p.max_recv_dsl(), 262_144, "ours");
    assert_eq!(p.max_send_dsl(), 8192, "the target's");
    assert_eq!(p.max_burst(), 16_384);
    assert_eq!(p.first_burst(), 8192);
    assert!(p.initial_r2t());
    assert!(!p.immediate_data());
    assert_eq!(p.max_outstanding_r2t(), 1);
    assert_eq!(p.digests(), Digests::default());
    // The fake target keeps MaxCmdSN = ExpCmdSN + 15.
    assert_eq!(s.cmd_window, 16);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert_eq!(h.status().params, Some(p), "kept after the session ended");
}

#[test]
fn give_up_after_stops_recovery_from_a_dead_target() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    // The target dies: the next command breaks the connection and no reconnect succeeds.
    {
        let mut d = r.disk.lock().expect("disk lock");
        d.break_after = Some(0);
        d.refuse_ports = vec![3260];
    }
    h.submit(read16(2, 0, 1)).expect("submitted");
    // Retrying forever is the default: nothing completes until a bound is set.
    assert!(r.done.recv_timeout(Duration::from_millis(300)).is_err());
    let start = std::time::Instant::now();
    while h.status().state != State::Recovering {
        assert!(start.elapsed() < WAIT, "the session notices the loss");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.give_up_after(Duration::from_millis(100));
    let c = r.done.recv_timeout(WAIT).expect("the held read completes");
    assert_eq!(c.tag, 2);
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    assert_eq!(h.status().state, State::Closed);
    assert!(h.submit(read16(3, 0, 1)).is_err());
    assert_eq!(r.logged("giving up").len(), 1, "{:?}", r.lines);
}

#[test]
fn give_up_after_keeps_a_live_session_serving_until_it_breaks() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    // The deadline passes at once, but the connection is up: the final sync still gets through.
    h.give_up_after(Duration::ZERO);
    for tag in 2..6u64 {
        h.submit(write16(tag, tag, vec![tag as u8; BLOCK]))
            .expect("submitted");
        expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    }
    // A loss after the deadline ends the session instead of reconnecting.
    r.disk.lock().expect("disk lock").break_after = Some(0);
    h.submit(read16(9, 0, 1)).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("the read completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    assert_eq!(
        r.disk.lock().expect("disk lock").connections,
        1,
        "no reconnect"
    );
    assert!(!r
        .states
        .lock()
        .expect("states")
        .contains(&State::Recovering));
}

#[test]
fn shutdown_while_recovering_from_a_dead_target_ends_at_once() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    {
        let mut d = r.disk.lock().expect("disk lock");
        d.break_after = Some(0);
        d.refuse_ports = vec![3260];
    }
    h.submit(read16(2, 0, 1)).expect("submitted");
    assert!(r.done.recv_timeout(Duration::from_millis(300)).is_err());
    h.shutdown();
    let c = r.done.recv_timeout(WAIT).expect("the held read completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn a_target_dropping_every_new_connection_at_once_is_backed_off_despite_time2wait_0() {
    let r = rig(|d| d.drop_after_login = 3);
    let mut cfg = config();
    cfg.backoff.step = Duration::from_millis(200);
    cfg.backoff.max = Duration::from_secs(1);
    let (h, task) = start_with(&r, cfg);
    let t0 = std::time::Instant::now();
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(
        &r.done
            .recv_timeout(WAIT)
            .expect("read completes on the fourth connection"),
    );
    // The first drop reconnects at once (Time2Wait 0); the next ones, each soon after the
    // login before, wait the backoff: at least 200 ms, then 400 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "reconnected without backing off: {:?}",
        t0.elapsed()
    );
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert_eq!(r.disk.lock().expect("disk lock").connections, 4);
    assert_eq!(h.status().disconnects, 3);
}
