// SPDX-License-Identifier: BSD-2-Clause
//! A scripted iSCSI target that misbehaves on cue, for fault tests.
//!
//! It serves a RAM disk (LUN 0, 512-byte blocks) well enough for an initiator to log in (no
//! authentication) and read and write, built on the core's PDU module. A [`Fault`] makes it break
//! the protocol on the first command it applies to (a READ for Data-In faults, a WRITE for R2T
//! faults), a given number of times; afterwards it behaves, so an initiator that reconnects and
//! retries completes the command with the right bytes. It also checks the initiator: Data-Out
//! outside what was asked for, and commands outside the CmdSN window, are recorded as violations.
//!
//! Each connection is served by its own thread with blocking I/O; reads time out briefly so that
//! dropping the target stops every thread within a bounded time.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use isboot_core::lun::Lun;
use isboot_core::pdu::{
    self, data_trailer_len, emit_data_trailer, AsyncEvent, AsyncMessage, DataIn, Digests, Header,
    HeaderInfo, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, LogoutResponseCode,
    NopIn, NopOut, Pdu, R2t, RawPdu, Reject, RejectReason, Residual, ScsiCommand, ScsiResponse,
    Stage, TargetSns, TaskMgmtRequest, TaskMgmtResponse, TmfResponse, BHS_LEN, RESERVED_TAG,
};
use isboot_core::scsi::cdb;
use isboot_core::sn::Sn;

/// Block size of the RAM disk.
pub const BLOCK: usize = 512;
/// Commands the target admits beyond ExpCmdSN (MaxCmdSN - ExpCmdSN + 1).
pub const WINDOW: u32 = 16;
/// Byte written where a misbehaving target sends data it should not: a read that returns it
/// delivered a wrong byte.
pub const POISON: u8 = 0xee;

const LOGIN_MAX_DSL: u32 = 8192;

/// How the target breaks the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    None,
    /// READ: the first Data-In carries an ITT the initiator never used (then the command is
    /// served normally).
    WrongItt,
    /// READ: one more Data-In of poison past the Expected Data Transfer Length.
    DataInBeyondBuffer,
    /// READ: the second Data-In skips ahead, leaving a hole in the buffer.
    DataInOffsetGap,
    /// READ: a Data-In whose DataSegmentLength exceeds the initiator's
    /// MaxRecvDataSegmentLength.
    OversizedSegment,
    /// READ: a Data-In whose data is poisoned and whose data digest does not match it (needs
    /// DataDigest=CRC32C).
    BadDataDigest,
    /// READ: a Data-In whose header digest is wrong (needs HeaderDigest=CRC32C).
    BadHeaderDigest,
    /// READ: a CHECK CONDITION SCSI Response whose SenseLength runs past the data segment.
    SenseTooLong,
    /// WRITE: an R2T asking for more than the Expected Data Transfer Length.
    R2tBeyondTransfer,
    /// READ: half the data, then the connection is reset (RST).
    ResetMidTransfer,
    /// READ: nothing at all is answered, and pings are ignored (the initiator's NOP-Out timeout
    /// or command timeout must act).
    Silence,
    /// READ: an Async Message asks the initiator to log out (the READ itself is served).
    AsyncLogoutRequest,
    /// READ: an Async Message announces that the target drops the connection, which it then
    /// does without serving the READ.
    AsyncDropConnection,
    /// READ: the command PDU is rejected (Reject, reason "protocol error").
    RejectCommand,
}

/// How the target is set up.
#[derive(Clone, Copy, Debug)]
pub struct FakeConfig {
    /// RAM disk size in bytes (a multiple of [`BLOCK`]).
    pub size: usize,
    pub fault: Fault,
    /// How many times the fault fires (once per command it applies to) before the target
    /// behaves; `u32::MAX` for always.
    pub times: u32,
    /// Negotiate CRC32C header and data digests when the initiator offers them.
    pub digests: bool,
    /// The target's MaxRecvDataSegmentLength.
    pub max_recv_dsl: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    pub immediate_data: bool,
    /// Largest Data-In segment the target sends (also bounded by the initiator's
    /// MaxRecvDataSegmentLength), so that a read spans several PDUs and a fault can sit between
    /// them.
    pub data_in_pdu: u32,
    /// Answer logins with a redirect to this portal (`true`: permanent), `times` times. Port 0
    /// means this target's own address (a redirect loop).
    pub redirect: Option<(SocketAddr, bool)>,
}

impl FakeConfig {
    pub fn new(size: usize, fault: Fault) -> FakeConfig {
        FakeConfig {
            size,
            fault,
            times: 1,
            digests: matches!(fault, Fault::BadDataDigest | Fault::BadHeaderDigest),
            max_recv_dsl: 65536,
            max_burst: 262_144,
            first_burst: 65536,
            immediate_data: true,
            data_in_pdu: 8192,
            redirect: None,
        }
    }
}

/// What the target saw, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: u32,
    /// Logins that reached full feature phase.
    pub logins: u32,
    /// Logins answered with a redirect.
    pub redirects: u32,
    pub commands: u32,
    pub faults_fired: u32,
    /// Protocol violations by the initiator, described.
    pub violations: Vec<String>,
}

/// A running scripted target.
pub struct FakeTarget {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTarget")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Shared {
    cfg: FakeConfig,
    addr: SocketAddr,
    stop: AtomicBool,
    fired: AtomicU32,
    next_tsih: AtomicU32,
    disk: Mutex<Vec<u8>>,
    stats: Mutex<Stats>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeTarget {
    /// Listens on a free 127.0.0.1 port. The disk starts with a pattern (`pattern(offset)`) so a
    /// read that returns zeros or poison is told from a correct one.
    pub fn start(cfg: FakeConfig) -> io::Result<FakeTarget> {
        if cfg.size % BLOCK != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "disk size is not a multiple of the block size",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let disk = (0..cfg.size).map(pattern).collect();
        let shared = Arc::new(Shared {
            cfg,
            addr,
            stop: AtomicBool::new(false),
            fired: AtomicU32::new(0),
            next_tsih: AtomicU32::new(1),
            disk: Mutex::new(disk),
            stats: Mutex::new(Stats::default()),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fake-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(FakeTarget {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target name it answers to (any name is accepted).
    pub fn iqn(&self) -> &'static str {
        "iqn.2026-11.org.isboot:fake"
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// A copy of `len` bytes of the disk at `offset`.
    pub fn disk(&self, offset: usize, len: usize) -> Vec<u8> {
        lock(&self.shared.disk)[offset..offset + len].to_vec()
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        // Connection threads see the flag within one read timeout.
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in std::mem::take(&mut *lock(&self.shared.threads)) {
            let _ = t.join();
        }
    }
}

/// The disk's initial content: distinct per 4-byte word, so shifted or misplaced data shows.
pub fn pattern(offset: usize) -> u8 {
    let word = (offset / 4) as u32;
    let v = word.wrapping_mul(0x9e37_79b9) ^ 0x5a5a_5a5a;
    let b = v.to_le_bytes()[offset % 4];
    // Never the poison byte, so poison in a buffer is always noticed.
    if b == POISON {
        0x11
    } else {
        b
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                lock(&shared.stats).connections += 1;
                let s = shared.clone();
                let t = std::thread::Builder::new()
                    .name("fake-conn".into())
                    .spawn(move || {
                        let mut conn = Conn::new(stream, s.clone());
                        if let Err(e) = conn.serve() {
                            if !s.stop.load(Ordering::SeqCst)
                                && e.kind() != io::ErrorKind::UnexpectedEof
                            {
                                eprintln!("fake target: connection ended: {e}");
                            }
                        }
                    });
                if let Ok(t) = t {
                    let mut threads = lock(&shared.threads);
                    threads.retain(|h| !h.is_finished());
                    threads.push(t);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A write command waiting for its data.
struct WriteTask {
    lun: Lun,
    offset: usize,
    edtl: u32,
    data: Vec<u8>,
    /// Bytes received so far, in order.
    received: u32,
    /// End of the data currently solicited (by R2T, or the unsolicited first burst).
    solicited_end: u32,
    next_ttt: u32,
    r2t_sn: u32,
}

/// Negotiated values of one connection.
#[derive(Clone, Copy, Debug)]
struct Params {
    digests: Digests,
    /// The initiator's MaxRecvDataSegmentLength: the most we may send in one PDU.
    send_max: u32,
    max_burst: u32,
    first_burst: u32,
    immediate_data: bool,
    initial_r2t: bool,
}

struct Conn {
    stream: TcpStream,
    shared: Arc<Shared>,
    params: Params,
    full_feature: bool,
    stat_sn: u32,
    exp_cmd_sn: Sn,
    /// Digests agreed during login; they apply once full feature phase starts.
    negotiated: Digests,
    writes: HashMap<u32, WriteTask>,
    next_ttt: u32,
    silent: bool,
}

/// Why serving stopped on purpose (the connection is closed afterwards).
fn closed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string())
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Conn {
        let cfg = shared.cfg;
        Conn {
            stream,
            shared,
            params: Params {
                digests: Digests::default(),
                send_max: LOGIN_MAX_DSL,
                max_burst: cfg.max_burst,
                first_burst: cfg.first_burst,
                immediate_data: cfg.immediate_data,
                initial_r2t: true,
            },
            full_feature: false,
            stat_sn: 0x1000,
            exp_cmd_sn: Sn(0),
            negotiated: Digests::default(),
            writes: HashMap::new(),
            next_ttt: 1,
            silent: false,
        }
    }

    fn cfg(&self) -> FakeConfig {
        self.shared.cfg
    }

    fn violation(&self, what: String) {
        eprintln!("fake target: initiator violation: {what}");
        lock(&self.shared.stats).violations.push(what);
    }

    /// Whether `fault` is configured and still has shots left; counts the shot.
    fn fire(&self, fault: Fault) -> bool {
        let cfg = self.cfg();
        if cfg.fault != fault || fault == Fault::None {
            return false;
        }
        let prev = self.shared.fired.fetch_add(1, Ordering::SeqCst);
        if prev >= cfg.times {
            return false;
        }
        lock(&self.shared.stats).faults_fired += 1;
        true
    }

    fn serve(&mut self) -> io::Result<()> {
        self.stream.set_nodelay(true)?;
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        // An initiator that stops reading must not hang this thread (and the target's drop).
        self.stream
            .set_write_timeout(Some(Duration::from_secs(30)))?;
        loop {
            let (pdu, data) = self.read_pdu()?;
            match pdu {
                Pdu::LoginRequest(req) if !self.full_feature => self.login(&req, &data)?,
                _ if !self.full_feature => return Err(closed("PDU before login completed")),
                _ if self.silent => {}
                Pdu::ScsiCommand(cmd) => self.command(cmd, data)?,
                Pdu::DataOut(d) => self.data_out(&d, &data)?,
                Pdu::NopOut(n) => self.nop_out(&n, &data)?,
                Pdu::TaskMgmtRequest(t) => self.tmf(&t)?,
                Pdu::LogoutRequest(l) => return self.logout(&l),
                other => {
                    self.violation(format!("unexpected PDU {:?}", other.opcode()));
                    return Err(closed("unexpected PDU"));
                }
            }
        }
    }

    // ---- I/O ----

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut at = 0;
        // Bounded by the stop flag: each timed-out read looks at it.
        while at < buf.len() {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err(closed("target stopped"));
            }
            match self.stream.read(&mut buf[at..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => at += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_pdu(&mut self) -> io::Result<(Pdu, Vec<u8>)> {
        let mut buf = vec![0u8; BHS_LEN];
        self.read_full(&mut buf)?;
        let info = HeaderInfo::parse(&buf).map_err(invalid)?;
        let max = if self.full_feature {
            self.cfg().max_recv_dsl
        } else {
            LOGIN_MAX_DSL
        };
        if let Err(e) = info.check_data_len(max) {
            self.violation(format!("{e}"));
            return Err(invalid(e));
        }
        let digests = self.params.digests;
        buf.resize(BHS_LEN + info.remaining(digests), 0);
        self.read_full(&mut buf[BHS_LEN..])?;
        let (raw, _) = RawPdu::split(&buf, digests, max).map_err(|e| {
            self.violation(format!("{e}"));
            invalid(e)
        })?;
        let pdu = raw.parse().map_err(invalid)?;
        Ok((pdu, raw.data.to_vec()))
    }

    fn send(&mut self, h: &dyn Header, data: &[u8]) -> io::Result<()> {
        let buf = encode(h, data, self.params.digests)?;
        self.stream.write_all(&buf)
    }

    fn next_stat_sn(&mut self) -> Sn {
        let s = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        Sn(s)
    }

    fn max_cmd_sn(&self) -> Sn {
        Sn(self.exp_cmd_sn.0.wrapping_add(WINDOW - 1))
    }

    // ---- login ----

    fn login(&mut self, req: &LoginRequest, data: &[u8]) -> io::Result<()> {
        self.exp_cmd_sn = req.cmd_sn;
        if let Some((to, permanent)) = self.cfg().redirect {
            let to = if to.port() == 0 { self.shared.addr } else { to };
            let cfg = self.cfg();
            if self.shared.fired.fetch_add(1, Ordering::SeqCst) < cfg.times {
                lock(&self.shared.stats).redirects += 1;
                let resp = LoginResponse {
                    csg: req.csg,
                    nsg: req.csg,
                    isid: req.isid,
                    itt: req.itt,
                    sns: TargetSns {
                        stat_sn: self.next_stat_sn(),
                        exp_cmd_sn: req.cmd_sn,
                        max_cmd_sn: req.cmd_sn,
                    },
                    status_class: 1,
                    status_detail: if permanent { 2 } else { 1 },
                    ..LoginResponse::default()
                };
                let text = emit_text(&[("TargetAddress".into(), format!("{to},1"))]);
                self.send(&resp, &text)?;
                return Err(closed("redirected"));
            }
        }
        let keys = parse_text(data);
        let mut answer: Vec<(String, String)> = Vec::new();
        let cfg = self.cfg();
        for (k, v) in &keys {
            let reply = match k.as_str() {
                "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" => None,
                "AuthMethod" => Some(if v.split(',').any(|m| m == "None") {
                    "None".to_string()
                } else {
                    "Reject".to_string()
                }),
                "HeaderDigest" | "DataDigest" => {
                    let want = if cfg.digests { "CRC32C" } else { "None" };
                    let offered: Vec<&str> = v.split(',').collect();
                    let pick = if offered.contains(&want) {
                        want
                    } else if offered.contains(&"None") {
                        "None"
                    } else {
                        "Reject"
                    };
                    if pick == "CRC32C" {
                        if k == "HeaderDigest" {
                            self.negotiated.header = true;
                        } else {
                            self.negotiated.data = true;
                        }
                    }
                    Some(pick.to_string())
                }
                "MaxRecvDataSegmentLength" => {
                    if let Ok(n) = v.parse::<u32>() {
                        self.params.send_max = n.clamp(512, (1 << 24) - 1);
                    }
                    None
                }
                "MaxBurstLength" => {
                    let n = v.parse::<u32>().unwrap_or(cfg.max_burst).min(cfg.max_burst);
                    self.params.max_burst = n;
                    Some(n.to_string())
                }
                "FirstBurstLength" => {
                    let n = v
                        .parse::<u32>()
                        .unwrap_or(cfg.first_burst)
                        .min(cfg.first_burst);
                    self.params.first_burst = n;
                    Some(n.to_string())
                }
                "InitialR2T" => {
                    // Result function OR; this target always wants Yes.
                    self.params.initial_r2t = true;
                    Some("Yes".into())
                }
                "ImmediateData" => {
                    let yes = v == "Yes" && cfg.immediate_data;
                    self.params.immediate_data = yes;
                    Some(if yes { "Yes" } else { "No" }.into())
                }
                "MaxOutstandingR2T" | "MaxConnections" => Some("1".into()),
                "DataPDUInOrder" | "DataSequenceInOrder" => Some("Yes".into()),
                "ErrorRecoveryLevel" | "DefaultTime2Retain" => Some("0".into()),
                // Result function Maximum: anything the initiator offers is the result; our 0
                // keeps reconnects quick in tests.
                "DefaultTime2Wait" => Some(v.clone()),
                "IFMarker" | "OFMarker" => Some("No".into()),
                _ => Some("NotUnderstood".into()),
            };
            if let Some(r) = reply {
                answer.push((k.clone(), r));
            }
        }
        // The first response of a normal session carries TargetPortalGroupTag; our limit is
        // declared in the operational stage.
        if req.csg == Stage::Security || keys.iter().any(|(k, _)| k == "InitiatorName") {
            answer.push(("TargetPortalGroupTag".into(), "1".into()));
        }
        if req.csg == Stage::Operational {
            answer.push((
                "MaxRecvDataSegmentLength".into(),
                cfg.max_recv_dsl.to_string(),
            ));
        }
        let to_ff = req.transit && req.nsg == Stage::FullFeature;
        let tsih = if to_ff {
            self.shared.next_tsih.fetch_add(1, Ordering::SeqCst) as u16
        } else {
            0
        };
        let resp = LoginResponse {
            transit: req.transit,
            continue_bit: false,
            csg: req.csg,
            nsg: if req.transit { req.nsg } else { req.csg },
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: if req.tsih != 0 { req.tsih } else { tsih },
            itt: req.itt,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: req.cmd_sn,
                max_cmd_sn: Sn(req.cmd_sn.0.wrapping_add(WINDOW - 1)),
            },
            status_class: 0,
            status_detail: 0,
        };
        let text = emit_text(&answer);
        // Digests start after the login phase (`params.digests` is still off here).
        self.send(&resp, &text)?;
        if to_ff {
            self.full_feature = true;
            self.params.digests = self.negotiated;
            lock(&self.shared.stats).logins += 1;
        }
        Ok(())
    }

    // ---- full feature phase ----

    /// Accepts a non-immediate command's CmdSN and advances the window.
    fn admit(&mut self, cmd_sn: Sn, immediate: bool) {
        if immediate {
            return;
        }
        let max = self.max_cmd_sn();
        if cmd_sn.0.wrapping_sub(self.exp_cmd_sn.0) >= WINDOW {
            self.violation(format!(
                "CmdSN {} outside the window {}..={}",
                cmd_sn.0, self.exp_cmd_sn.0, max.0
            ));
        }
        if cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = Sn(cmd_sn.0.wrapping_add(1));
        }
    }

    fn command(&mut self, cmd: ScsiCommand, data: Vec<u8>) -> io::Result<()> {
        self.admit(cmd.cmd_sn, cmd.immediate);
        lock(&self.shared.stats).commands += 1;
        let cdb = cmd.cdb.as_slice().to_vec();
        match cdb.first().copied() {
            Some(0x28 | 0x88) if cmd.read => self.read(&cmd, &cdb),
            Some(0x2a | 0x8a) if cmd.write => self.write(cmd, &cdb, data),
            _ => match self.simple_command(&cdb) {
                Ok(mut bytes) => {
                    bytes.truncate(cmd.expected_data_len as usize);
                    self.send_data_in(&cmd, &bytes)
                }
                Err(sense) => self.check_condition(cmd.itt, &sense),
            },
        }
    }

    /// Commands without a disk transfer: their data-in bytes or the sense to return.
    fn simple_command(&self, cdb: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
        let blocks = (self.cfg().size / BLOCK) as u64;
        match cdb[0] {
            0x00 | 0x35 | 0x91 => Ok(Vec::new()),
            0x12 => inquiry(cdb),
            0x25 => {
                let last = u32::try_from(blocks - 1).unwrap_or(u32::MAX);
                let mut v = last.to_be_bytes().to_vec();
                v.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                Ok(v)
            }
            0x9e if cdb.get(1).map(|b| b & 0x1f) == Some(0x10) => {
                let mut v = vec![0u8; 32];
                v[..8].copy_from_slice(&(blocks - 1).to_be_bytes());
                v[8..12].copy_from_slice(&(BLOCK as u32).to_be_bytes());
                Ok(v)
            }
            0xa0 => {
                let mut v = vec![0u8; 16];
                v[3] = 8;
                Ok(v)
            }
            0x1a => Ok(vec![3, 0, 0, 0]),
            _ => Err(sense(0x05, 0x20, 0x00)),
        }
    }

    fn check_condition(&mut self, itt: u32, sense: &[u8]) -> io::Result<()> {
        let mut seg = (sense.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(sense);
        let resp = ScsiResponse {
            response: 0,
            status: 0x02,
            itt,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
            },
            ..ScsiResponse::default()
        };
        self.send(&resp, &seg)
    }

    fn read(&mut self, cmd: &ScsiCommand, cdb: &[u8]) -> io::Result<()> {
        let Some((lba, blocks)) = cdb::lba_and_blocks(cdb) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x24, 0x00));
        };
        let Some(off) = self.range(lba, blocks) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x21, 0x00));
        };
        let len = blocks as usize * BLOCK;
        let bytes = lock(&self.shared.disk)[off..off + len].to_vec();
        if self.fire(Fault::SenseTooLong) {
            // SenseLength 1000, but only 18 bytes follow.
            let mut seg = 1000u16.to_be_bytes().to_vec();
            seg.extend_from_slice(&sense(0x03, 0x11, 0x00));
            let resp = ScsiResponse {
                status: 0x02,
                itt: cmd.itt,
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                ..ScsiResponse::default()
            };
            return self.send(&resp, &seg);
        }
        if self.fire(Fault::Silence) {
            self.silent = true;
            return Ok(());
        }
        if self.fire(Fault::RejectCommand) {
            let mut header = vec![0u8; BHS_LEN];
            cmd.emit(0, false, &mut header).map_err(invalid)?;
            let rej = Reject {
                reason: RejectReason::ProtocolError,
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                data_sn: Sn(0),
            };
            return self.send(&rej, &header);
        }
        if self.fire(Fault::AsyncDropConnection) {
            let msg = AsyncMessage {
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                event: AsyncEvent::DropConnection,
                // Time2Wait 0, Time2Retain 0: reconnect at once, nothing is kept.
                ..AsyncMessage::default()
            };
            self.send(&msg, &[])?;
            return Err(closed("dropped the connection on cue"));
        }
        if self.fire(Fault::AsyncLogoutRequest) {
            let msg = AsyncMessage {
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                event: AsyncEvent::LogoutRequest,
                parameter3: 5,
                ..AsyncMessage::default()
            };
            self.send(&msg, &[])?;
        }
        self.send_data_in(cmd, &bytes)
    }

    /// Sends `bytes` as Data-In for `cmd` with the status in the last PDU, applying any Data-In
    /// fault that is due.
    fn send_data_in(&mut self, cmd: &ScsiCommand, bytes: &[u8]) -> io::Result<()> {
        let edtl = cmd.expected_data_len as usize;
        let n = bytes.len().min(edtl);
        let residual = if bytes.len() < edtl {
            Residual::Underflow((edtl - bytes.len()) as u32)
        } else {
            Residual::None
        };
        let pdu_max = self.params.send_max.min(self.cfg().data_in_pdu).max(512) as usize;
        let burst = self.params.max_burst.max(512) as usize;
        let is_read = matches!(cmd.cdb.as_slice().first(), Some(0x28 | 0x88));
        let fault = if is_read {
            [
                Fault::WrongItt,
                Fault::DataInBeyondBuffer,
                Fault::DataInOffsetGap,
                Fault::OversizedSegment,
                Fault::BadDataDigest,
                Fault::BadHeaderDigest,
                Fault::ResetMidTransfer,
            ]
            .into_iter()
            .find(|&f| f == self.cfg().fault && self.fire(f))
        } else {
            None
        };
        if n == 0 {
            let resp = ScsiResponse {
                status: 0,
                itt: cmd.itt,
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                residual,
                ..ScsiResponse::default()
            };
            return self.send(&resp, &[]);
        }
        let mut data_sn = 0u32;
        let mut off = 0usize;
        let mut pdus = 0usize;
        while off < n {
            // A PDU never crosses a burst boundary; F marks the end of each burst.
            let burst_end = (off / burst + 1) * burst;
            let len = pdu_max.min(n - off).min(burst_end - off);
            let last = off + len == n;
            let mut din = DataIn {
                final_bit: last || off + len == burst_end,
                status: None,
                residual: Residual::None,
                lun: cmd.lun,
                itt: cmd.itt,
                ttt: RESERVED_TAG,
                sns: TargetSns {
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                    ..TargetSns::default()
                },
                data_sn: Sn(data_sn),
                buffer_offset: off as u32,
                ..DataIn::default()
            };
            if last {
                din.status = Some(0);
                din.residual = residual;
                din.sns.stat_sn = self.next_stat_sn();
            }
            let chunk = &bytes[off..off + len];
            match fault {
                Some(Fault::WrongItt) if pdus == 0 => {
                    let bad = DataIn {
                        itt: cmd.itt ^ 0x8000_0000,
                        status: None,
                        final_bit: false,
                        ..din.clone()
                    };
                    self.send(&bad, &vec![POISON; len])?;
                }
                Some(Fault::DataInOffsetGap) if pdus == 1 && n - off > BLOCK => {
                    // Skip one block: the initiator must not accept data with a hole before it.
                    let bad = DataIn {
                        buffer_offset: (off + BLOCK) as u32,
                        status: None,
                        final_bit: false,
                        ..din.clone()
                    };
                    self.send(&bad, &vec![POISON; len.min(n - off - BLOCK)])?;
                }
                Some(Fault::OversizedSegment) if pdus == 0 => {
                    let bad = DataIn {
                        status: None,
                        final_bit: false,
                        ..din.clone()
                    };
                    // Poison at a valid offset, but longer than the initiator said it can take.
                    let big = vec![POISON; self.params.send_max as usize + 4096];
                    self.send(&bad, &big)?;
                }
                Some(Fault::BadDataDigest) if pdus == 0 => {
                    let mut buf = encode(&din, chunk, self.params.digests)?;
                    let start = din.header_wire_len(self.params.digests.header);
                    buf[start..start + len].fill(POISON);
                    self.stream.write_all(&buf)?;
                    data_sn += 1;
                    off += len;
                    pdus += 1;
                    continue;
                }
                Some(Fault::BadHeaderDigest) if pdus == 0 => {
                    let mut buf = encode(&din, chunk, self.params.digests)?;
                    if self.params.digests.header {
                        buf[BHS_LEN] ^= 0xff;
                    }
                    // Poison too: if the header digest were not checked, the data would show it.
                    let start = din.header_wire_len(self.params.digests.header);
                    buf[start..start + len].fill(POISON);
                    self.stream.write_all(&buf)?;
                    data_sn += 1;
                    off += len;
                    pdus += 1;
                    continue;
                }
                Some(Fault::ResetMidTransfer) if off >= n / 2 && pdus > 0 => {
                    reset(&self.stream);
                    return Err(closed("reset mid-transfer on cue"));
                }
                _ => {}
            }
            if fault == Some(Fault::DataInBeyondBuffer) && last {
                // The real last PDU goes without status; then poison past the end, with status.
                let body = DataIn {
                    status: None,
                    residual: Residual::None,
                    final_bit: false,
                    ..din.clone()
                };
                self.send(&body, chunk)?;
                let beyond = DataIn {
                    data_sn: Sn(data_sn + 1),
                    buffer_offset: n as u32,
                    ..din
                };
                self.send(&beyond, &vec![POISON; BLOCK])?;
                return Ok(());
            }
            self.send(&din, chunk)?;
            data_sn += 1;
            off += len;
            pdus += 1;
        }
        Ok(())
    }

    fn write(&mut self, cmd: ScsiCommand, cdb: &[u8], imm: Vec<u8>) -> io::Result<()> {
        let Some((lba, blocks)) = cdb::lba_and_blocks(cdb) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x24, 0x00));
        };
        let Some(off) = self.range(lba, blocks) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x21, 0x00));
        };
        let len = blocks as usize * BLOCK;
        if len != cmd.expected_data_len as usize {
            self.violation(format!(
                "WRITE of {len} bytes with Expected Data Transfer Length {}",
                cmd.expected_data_len
            ));
            return Err(closed("WRITE length mismatch"));
        }
        let edtl = cmd.expected_data_len;
        if imm.len() > self.params.first_burst as usize || imm.len() > edtl as usize {
            self.violation(format!(
                "{} bytes of immediate data (FirstBurstLength {}, EDTL {edtl})",
                imm.len(),
                self.params.first_burst
            ));
        }
        if !imm.is_empty() && !self.params.immediate_data {
            self.violation("immediate data while ImmediateData=No".into());
        }
        let mut task = WriteTask {
            lun: cmd.lun,
            offset: off,
            edtl,
            data: vec![0; edtl as usize],
            received: 0,
            solicited_end: 0,
            next_ttt: 0,
            r2t_sn: 0,
        };
        let take = imm.len().min(task.data.len());
        task.data[..take].copy_from_slice(&imm[..take]);
        task.received = take as u32;
        task.solicited_end = task.received;
        if !self.params.initial_r2t && !cmd.final_bit {
            // Unsolicited Data-Out may follow up to FirstBurstLength.
            task.solicited_end = self.params.first_burst.min(edtl);
        }
        self.writes.insert(cmd.itt, task);
        self.advance_write(cmd.itt)
    }

    /// Completes the write if all data is in, or asks for the next burst once the current one
    /// has arrived.
    fn advance_write(&mut self, itt: u32) -> io::Result<()> {
        let Some(task) = self.writes.get_mut(&itt) else {
            return Ok(());
        };
        if task.received >= task.edtl {
            let task = self.writes.remove(&itt).expect("present: looked up above");
            lock(&self.shared.disk)[task.offset..task.offset + task.data.len()]
                .copy_from_slice(&task.data);
            let resp = ScsiResponse {
                status: 0,
                itt,
                sns: TargetSns {
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                },
                ..ScsiResponse::default()
            };
            return self.send(&resp, &[]);
        }
        if task.received < task.solicited_end {
            return Ok(());
        }
        let burst = self.params.max_burst.min(task.edtl - task.received);
        let ttt = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
        task.next_ttt = ttt;
        let mut r2t = R2t {
            lun: task.lun,
            itt,
            ttt,
            sns: TargetSns {
                stat_sn: Sn(self.stat_sn),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: Sn(self.exp_cmd_sn.0.wrapping_add(WINDOW - 1)),
            },
            r2t_sn: Sn(task.r2t_sn),
            buffer_offset: task.received,
            desired_len: burst,
        };
        task.r2t_sn += 1;
        task.solicited_end = task.received + burst;
        if self.fire(Fault::R2tBeyondTransfer) {
            // Ask for more than the command carries; the initiator must not send past its buffer.
            r2t.desired_len = burst + 8192;
        }
        self.send(&r2t, &[])
    }

    fn data_out(&mut self, d: &pdu::DataOut, data: &[u8]) -> io::Result<()> {
        let Some(task) = self.writes.get_mut(&d.itt) else {
            self.violation(format!("Data-Out for unknown ITT {:#x}", d.itt));
            return Ok(());
        };
        let end = d.buffer_offset as u64 + data.len() as u64;
        if d.buffer_offset != task.received || end > u64::from(task.solicited_end) {
            let what = format!(
                "Data-Out offset {} len {} but {} received, {} solicited, EDTL {}",
                d.buffer_offset,
                data.len(),
                task.received,
                task.solicited_end,
                task.edtl
            );
            self.violation(what);
            return Err(closed("bad Data-Out"));
        }
        let at = d.buffer_offset as usize;
        task.data[at..at + data.len()].copy_from_slice(data);
        task.received += data.len() as u32;
        if d.final_bit || task.received == task.solicited_end {
            self.advance_write(d.itt)?;
        }
        Ok(())
    }

    fn nop_out(&mut self, n: &NopOut, data: &[u8]) -> io::Result<()> {
        self.admit(n.cmd_sn, n.immediate);
        if n.itt == RESERVED_TAG {
            // The answer to one of our pings (we send none) or a one-way NOP.
            return Ok(());
        }
        let resp = NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: RESERVED_TAG,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
            },
        };
        self.send(&resp, data)
    }

    fn tmf(&mut self, t: &TaskMgmtRequest) -> io::Result<()> {
        self.admit(t.cmd_sn, t.immediate);
        self.writes.remove(&t.referenced_task_tag);
        let resp = TaskMgmtResponse {
            response: TmfResponse::Complete,
            itt: t.itt,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
            },
        };
        self.send(&resp, &[])
    }

    fn logout(&mut self, l: &LogoutRequest) -> io::Result<()> {
        self.admit(l.cmd_sn, l.immediate);
        let resp = LogoutResponse {
            response: LogoutResponseCode::Success,
            itt: l.itt,
            sns: TargetSns {
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
            },
            ..LogoutResponse::default()
        };
        self.send(&resp, &[])?;
        let _ = self.stream.shutdown(Shutdown::Both);
        Ok(())
    }

    /// Byte offset of `blocks` blocks at `lba`, if inside the disk.
    fn range(&self, lba: u64, blocks: u32) -> Option<usize> {
        let end = lba.checked_add(u64::from(blocks))?;
        if end > (self.cfg().size / BLOCK) as u64 {
            return None;
        }
        usize::try_from(lba).ok()?.checked_mul(BLOCK)
    }
}

fn invalid(e: pdu::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A PDU on the wire: header (with digest), data, padding, data digest.
fn encode(h: &dyn Header, data: &[u8], d: Digests) -> io::Result<Vec<u8>> {
    let hl = h.header_wire_len(d.header);
    let mut buf = vec![0u8; hl + data.len() + data_trailer_len(data.len(), d.data)];
    let n = h.emit(data.len(), d.header, &mut buf).map_err(invalid)?;
    buf[n..n + data.len()].copy_from_slice(data);
    emit_data_trailer(data, d.data, &mut buf[n + data.len()..]).map_err(invalid)?;
    Ok(buf)
}

/// Makes the coming close of `s` (its only descriptor) reset the connection: SO_LINGER 0.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// `key=value` pairs of a text data segment (NUL-separated).
pub fn parse_text(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn emit_text(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Fixed-format sense data.
fn sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = key;
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    s
}

fn inquiry(cdb: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    let evpd = cdb.get(1).is_some_and(|b| b & 1 != 0);
    let page = cdb.get(2).copied().unwrap_or(0);
    if !evpd {
        let mut v = vec![0u8; 36];
        v[2] = 0x05; // SPC-3
        v[3] = 0x02;
        v[4] = 31;
        v[7] = 0x02; // CmdQue
        v[8..16].copy_from_slice(b"ISBOOT  ");
        v[16..32].copy_from_slice(b"FAKE TARGET     ");
        v[32..36].copy_from_slice(b"0001");
        return Ok(v);
    }
    match page {
        0x00 => Ok(vec![0, 0, 0, 2, 0x00, 0x80]),
        0x80 => {
            let mut v = vec![0, 0x80, 0, 8];
            v.extend_from_slice(b"FAKE0001");
            Ok(v)
        }
        _ => Err(sense(0x05, 0x24, 0x00)),
    }
}
