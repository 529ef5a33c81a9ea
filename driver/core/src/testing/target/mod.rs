// SPDX-License-Identifier: BSD-2-Clause
//! A scripted iSCSI target, sans-IO: a [`FakeConnection`] takes the initiator's bytes and
//! answers with the target's bytes, and says when it wants the connection closed or reset.
//! Wrappers carry those bytes: an in-memory transport for the session's own tests, TCP sockets
//! in the `isboot-tests` harness.
//!
//! It serves a RAM disk (512-byte blocks, [`pattern`] content) well enough for an initiator to
//! log in (no authentication, with or without a security stage) and read and write: READ/WRITE
//! (10) and (16) with Data-In bursts, immediate, unsolicited and R2T-solicited data, INQUIRY,
//! READ CAPACITY, REPORT LUNS, NOP pings both ways, ABORT TASK and LUN RESET, Logout. It keeps
//! MaxCmdSN = ExpCmdSN + [`WINDOW`] - 1.
//!
//! A [`Fault`] makes it break the protocol on the first command it applies to (a READ for
//! Data-In faults, a WRITE for R2T faults), [`FakeConfig::times`] times; afterwards it behaves,
//! so an initiator that reconnects and retries completes the command with the right bytes.
//! Other knobs script the whole session: a redirect, a target that insists on a security
//! stage, a ping after login, a connection broken after N commands, commands never answered,
//! connections dropped right after login, and five ways to answer a Logout. It also checks the
//! initiator: Data-Out outside what was asked for, commands outside the CmdSN window and
//! oversized segments are recorded as [`Stats::violations`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;
use std::{format, vec};

use crate::pdu::{
    AsyncEvent, Digests, Header, HeaderInfo, LoginRequest, LoginResponse, LogoutRequest,
    LogoutResponseCode, NopOut, Pdu, RawPdu, Stage, TaskMgmtRequest, TmfResponse, BHS_LEN,
    RESERVED_TAG,
};
use crate::sn::Sn;
use crate::testing::pdu::{
    async_message, logout_response, nop_in_ping, nop_in_reply, tmf_response, TargetPdu,
};

mod scsi;

pub use scsi::{inquiry_data, pattern};

/// Block size of the RAM disk.
pub const BLOCK: usize = 512;
/// Commands the target admits beyond ExpCmdSN (MaxCmdSN - ExpCmdSN + 1).
pub const WINDOW: u32 = 16;
/// Byte written where a misbehaving target sends data it should not: a read that returns it
/// delivered a wrong byte.
pub const POISON: u8 = 0xee;

/// The data segment limit during login (RFC 7143 §12.12).
const LOGIN_MAX_DSL: u32 = 8192;
/// The data of the target's ping after login ([`FakeConfig::ping_after_login`]).
const PING_DATA: &[u8] = b"are you there";

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

/// A target's ways of answering a Logout Request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnLogout {
    /// Answer Success and keep the connection open (the initiator closes it).
    Answer,
    /// Answer Success, then close the connection (FIN right after the response, as istgt).
    #[default]
    AnswerThenFin,
    /// Answer with this failure code, then close.
    RefuseThenFin(LogoutResponseCode),
    /// Close the connection without answering.
    Fin,
    /// Never answer, keep the connection open.
    Ignore,
}

/// A login redirect (status class 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// Only connections to this port are redirected; `None`: every connection.
    pub on_port: Option<u16>,
    /// Where to; port 0 means the connection's own address (a redirect loop).
    pub to: SocketAddr,
    pub permanent: bool,
    /// How many logins are redirected.
    pub times: u32,
}

/// How the target is set up. [`FakeConfig::new`] gives a well-behaved target.
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
    /// Data-In segment size for reads of 64 KiB and more (odd sizes exercise padding and reads
    /// that bypass the initiator's read-ahead); `None`: [`FakeConfig::data_in_pdu`].
    pub large_read_pdu: Option<u32>,
    pub redirect: Option<Redirect>,
    /// Refuse a login that starts in the operational stage (status 2/0).
    pub require_security: bool,
    /// Ping the initiator right after each login with this TTT and the data "are you there".
    pub ping_after_login: Option<u32>,
    /// Right after each of the next this many logins, ask the initiator to drop the
    /// connection with Time2Wait 0 (a target stuck in a restart loop).
    pub drop_after_login: u32,
    /// The Time2Wait those drops ask for, in seconds.
    pub drop_time2wait: u16,
    /// Commands with this operation code are never answered.
    pub ignore_opcode: Option<u8>,
    /// Commands with this operation code are answered CHECK CONDITION, UNIT ATTENTION (power
    /// on or reset occurred), every time.
    pub unit_attention_opcode: Option<u8>,
    /// READ CAPACITY reports this logical block length (the disk itself keeps 512-byte blocks):
    /// a target that claims blocks an initiator must not trust.
    pub reported_block_len: Option<u32>,
    pub on_logout: OnLogout,
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
            large_read_pdu: None,
            redirect: None,
            require_security: false,
            ping_after_login: None,
            drop_after_login: 0,
            drop_time2wait: 0,
            ignore_opcode: None,
            unit_attention_opcode: None,
            reported_block_len: None,
            on_logout: OnLogout::default(),
        }
    }
}

/// What the target saw, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: u32,
    /// Logins that reached full feature phase.
    pub logins: u32,
    /// The ISID and TSIH of each of their requests (TSIH 0: a new session).
    pub login_ids: Vec<([u8; 6], u16)>,
    /// Logins answered with a redirect.
    pub redirects: u32,
    pub commands: u32,
    pub faults_fired: u32,
    /// Tasks named by ABORT TASK (their ITT).
    pub aborts: Vec<u32>,
    pub logouts: u32,
    /// The initiator answered the ping after login with its data.
    pub ping_answered: bool,
    /// NOP-Outs of the initiator's own (keepalive pings), each answered.
    pub pings: u32,
    /// Protocol violations by the initiator, described.
    pub violations: Vec<String>,
}

/// What every connection of a target shares.
struct Shared {
    cfg: FakeConfig,
    disk: Vec<u8>,
    stats: Stats,
    fired: u32,
    redirected: u32,
    next_tsih: u16,
    /// Break the connection when this many more SCSI commands have arrived (the one that
    /// breaks it is lost, as it would be on a real reset).
    break_after: Option<u32>,
}

/// A scripted target: the disk and the script, shared by its connections.
#[derive(Clone)]
pub struct FakeTarget {
    shared: Arc<Mutex<Shared>>,
}

impl core::fmt::Debug for FakeTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeTarget")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl FakeTarget {
    /// A target with a disk of `cfg.size` bytes of [`pattern`].
    pub fn new(cfg: FakeConfig) -> FakeTarget {
        assert_eq!(
            cfg.size % BLOCK,
            0,
            "disk size is not a multiple of the block size"
        );
        FakeTarget {
            shared: Arc::new(Mutex::new(Shared {
                cfg,
                disk: (0..cfg.size).map(pattern).collect(),
                stats: Stats::default(),
                fired: 0,
                redirected: 0,
                next_tsih: 1,
                break_after: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection to this target at `local` (the portal the initiator connected to).
    pub fn connect(&self, local: SocketAddr) -> FakeConnection {
        self.lock().stats.connections += 1;
        FakeConnection::new(self.clone(), local)
    }

    /// The target name it answers to (any name is accepted).
    pub fn iqn(&self) -> &'static str {
        "iqn.2026-11.org.isboot:fake"
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// A copy of `len` bytes of the disk at `offset`.
    pub fn disk(&self, offset: usize, len: usize) -> Vec<u8> {
        self.lock().disk[offset..offset + len].to_vec()
    }

    /// Breaks the connection that receives the `n`-th next SCSI command (0: the next one).
    pub fn break_after(&self, n: u32) {
        self.lock().break_after = Some(n);
    }

    /// Changes the script of later commands and logins.
    pub fn reconfigure(&self, f: impl FnOnce(&mut FakeConfig)) {
        f(&mut self.lock().cfg);
    }
}

/// How the target wants a connection to end, once its output is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// Close it (FIN).
    Fin,
    /// Reset it (RST).
    Reset,
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

/// A write command waiting for its data.
struct WriteTask {
    lun: crate::lun::Lun,
    offset: usize,
    edtl: u32,
    data: Vec<u8>,
    /// Bytes received so far, in order.
    received: u32,
    /// End of the data currently solicited (by R2T, or the unsolicited first burst).
    solicited_end: u32,
    r2t_sn: u32,
}

/// One connection to a [`FakeTarget`].
pub struct FakeConnection {
    target: FakeTarget,
    local: SocketAddr,
    input: Vec<u8>,
    output: Vec<u8>,
    end: Option<ConnectionEnd>,
    params: Params,
    full_feature: bool,
    /// A security stage took place (for `require_security`).
    secured: bool,
    stat_sn: u32,
    exp_cmd_sn: Sn,
    /// Digests agreed during login; they apply once full feature phase starts.
    negotiated: Digests,
    writes: HashMap<u32, WriteTask>,
    next_ttt: u32,
    silent: bool,
}

impl core::fmt::Debug for FakeConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeConnection")
            .field("local", &self.local)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl FakeConnection {
    fn new(target: FakeTarget, local: SocketAddr) -> FakeConnection {
        let cfg = target.lock().cfg;
        FakeConnection {
            target,
            local,
            input: Vec::new(),
            output: Vec::new(),
            end: None,
            params: Params {
                digests: Digests::default(),
                send_max: LOGIN_MAX_DSL,
                max_burst: cfg.max_burst,
                first_burst: cfg.first_burst,
                immediate_data: cfg.immediate_data,
                initial_r2t: true,
            },
            full_feature: false,
            secured: false,
            stat_sn: 0x1000,
            exp_cmd_sn: Sn(0),
            negotiated: Digests::default(),
            writes: HashMap::new(),
            next_ttt: 1,
            silent: false,
        }
    }

    /// Takes bytes from the initiator and handles every whole PDU among them. Nothing is
    /// looked at once the connection is ending.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        while self.end.is_none() {
            let Some((pdu, data)) = self.next_pdu() else {
                return;
            };
            self.handle(pdu, &data);
        }
    }

    /// What the target has sent since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.output)
    }

    /// Whether the target has output waiting.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// How the target wants the connection to end, after its output (`None`: it goes on).
    pub fn end(&self) -> Option<ConnectionEnd> {
        self.end
    }

    fn cfg(&self) -> FakeConfig {
        self.target.lock().cfg
    }

    fn violation(&self, what: String) {
        std::eprintln!("fake target: initiator violation: {what}");
        self.target.lock().stats.violations.push(what);
    }

    /// Whether `fault` is configured and still has shots left; counts the shot.
    fn fire(&self, fault: Fault) -> bool {
        let mut s = self.target.lock();
        if s.cfg.fault != fault || fault == Fault::None || s.fired >= s.cfg.times {
            return false;
        }
        s.fired += 1;
        s.stats.faults_fired += 1;
        true
    }

    fn close(&mut self, how: ConnectionEnd) {
        self.end = Some(how);
    }

    /// The next whole PDU of the input, if it has arrived; a malformed one is a violation
    /// that resets the connection.
    fn next_pdu(&mut self) -> Option<(Pdu, Vec<u8>)> {
        let info = HeaderInfo::parse(&self.input).ok()?;
        let max = if self.full_feature {
            self.cfg().max_recv_dsl
        } else {
            LOGIN_MAX_DSL
        };
        if let Err(e) = info.check_data_len(max) {
            self.violation(format!("{e}"));
            self.close(ConnectionEnd::Reset);
            return None;
        }
        let digests = self.params.digests;
        if self.input.len() < info.total_len(digests) {
            return None;
        }
        let parsed = RawPdu::split(&self.input, digests, max)
            .and_then(|(raw, used)| Ok((raw.parse()?, raw.data.to_vec(), used)));
        match parsed {
            Ok((pdu, data, used)) => {
                self.input.drain(..used);
                Some((pdu, data))
            }
            Err(e) => {
                self.violation(format!("{e}"));
                self.close(ConnectionEnd::Reset);
                None
            }
        }
    }

    fn handle(&mut self, pdu: Pdu, data: &[u8]) {
        match pdu {
            Pdu::LoginRequest(req) if !self.full_feature => self.login(&req, data),
            _ if !self.full_feature => {
                self.violation("PDU before login completed".into());
                self.close(ConnectionEnd::Reset);
            }
            _ if self.silent => {}
            Pdu::ScsiCommand(cmd) => self.command(cmd, data),
            Pdu::DataOut(d) => self.data_out(&d, data),
            Pdu::NopOut(n) => self.nop_out(&n, data),
            Pdu::TaskMgmtRequest(t) => self.tmf(&t),
            Pdu::LogoutRequest(l) => self.logout(&l),
            other => {
                self.violation(format!("unexpected PDU {:?}", other.opcode()));
                self.close(ConnectionEnd::Reset);
            }
        }
    }

    fn send(&mut self, h: &dyn Header, data: &[u8]) {
        crate::pdu::emit_pdu(h, data, self.params.digests, &mut self.output)
            .expect("the fake target emits valid PDUs");
    }

    fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.0.wrapping_add(WINDOW - 1)
    }

    /// A target PDU with the next StatSN and the current window.
    fn status<P: TargetPdu>(&mut self, p: P) -> P {
        let stat_sn = self.next_stat_sn();
        self.current(p).stat_sn(stat_sn)
    }

    /// A target PDU with the current StatSN (not advanced) and window.
    fn current<P: TargetPdu>(&self, p: P) -> P {
        p.stat_sn(self.stat_sn)
            .window(self.exp_cmd_sn.0, self.max_cmd_sn())
    }

    // ---- login ----

    fn login(&mut self, req: &LoginRequest, data: &[u8]) {
        self.exp_cmd_sn = req.cmd_sn;
        if self.redirect(req) {
            return;
        }
        if req.csg == Stage::Security {
            self.secured = true;
        } else if self.cfg().require_security && !self.secured {
            let resp = self.current(self.login_response(req).status(2, 0));
            self.send(&resp, &[]);
            self.close(ConnectionEnd::Fin);
            return;
        }
        let answer = self.negotiate(req, &parse_text(data));
        let to_ff = req.transit && req.nsg == Stage::FullFeature;
        let mut resp = self.login_response(req);
        if to_ff && resp.tsih == 0 {
            let mut s = self.target.lock();
            resp.tsih = s.next_tsih;
            s.next_tsih = s.next_tsih.wrapping_add(1).max(1);
        }
        let resp = self.status(resp);
        // Digests start after the login phase (`params.digests` is still off here).
        self.send(&resp, &emit_text(&answer));
        if to_ff {
            self.full_feature = true;
            self.params.digests = self.negotiated;
            self.after_login(req);
        }
    }

    fn login_response(&self, req: &LoginRequest) -> LoginResponse {
        LoginResponse {
            transit: req.transit,
            csg: req.csg,
            nsg: if req.transit { req.nsg } else { req.csg },
            isid: req.isid,
            tsih: req.tsih,
            itt: req.itt,
            ..LoginResponse::default()
        }
        .window(req.cmd_sn.0, req.cmd_sn.0.wrapping_add(WINDOW - 1))
    }

    /// Answers the login with a redirect when the script says so.
    fn redirect(&mut self, req: &LoginRequest) -> bool {
        let Some(r) = self.cfg().redirect else {
            return false;
        };
        {
            let mut s = self.target.lock();
            if r.on_port.is_some_and(|p| p != self.local.port()) || s.redirected >= r.times {
                return false;
            }
            s.redirected += 1;
            s.stats.redirects += 1;
        }
        let to = if r.to.port() == 0 { self.local } else { r.to };
        let resp = self
            .login_response(req)
            .status(1, if r.permanent { 2 } else { 1 });
        let resp = self.status(resp);
        let text = emit_text(&[("TargetAddress".into(), format!("{to},1"))]);
        self.send(&resp, &text);
        self.close(ConnectionEnd::Fin);
        true
    }

    /// The answers to the initiator's keys, adopting what was agreed.
    fn negotiate(
        &mut self,
        req: &LoginRequest,
        keys: &[(String, String)],
    ) -> Vec<(String, String)> {
        let cfg = self.cfg();
        let mut answer: Vec<(String, String)> = Vec::new();
        for (k, v) in keys {
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
                // Result function Maximum: anything the initiator offers is the result.
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
        answer
    }

    /// Full feature phase began: count the login, then the scripted ping or drop.
    fn after_login(&mut self, req: &LoginRequest) {
        let cfg = self.cfg();
        let drop_now = {
            let mut s = self.target.lock();
            s.stats.logins += 1;
            s.stats.login_ids.push((req.isid, req.tsih));
            let drop_now = s.cfg.drop_after_login > 0;
            s.cfg.drop_after_login = s.cfg.drop_after_login.saturating_sub(1);
            drop_now
        };
        if let Some(ttt) = cfg.ping_after_login {
            let ping = self.current(nop_in_ping(ttt, crate::lun::Lun::default()));
            self.send(&ping, PING_DATA);
        }
        if drop_now {
            let wait = cfg.drop_time2wait;
            let msg = self.status(async_message(AsyncEvent::DropConnection).time2wait(wait));
            self.send(&msg, &[]);
        }
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
                cmd_sn.0, self.exp_cmd_sn.0, max
            ));
        }
        if cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = Sn(cmd_sn.0.wrapping_add(1));
        }
    }

    fn nop_out(&mut self, n: &NopOut, data: &[u8]) {
        self.admit(n.cmd_sn, n.immediate);
        if n.itt == RESERVED_TAG {
            // The answer to our ping after login, or a one-way NOP.
            if n.ttt != RESERVED_TAG {
                if data == PING_DATA {
                    self.target.lock().stats.ping_answered = true;
                } else {
                    self.violation("ping answered without its data".into());
                }
            }
            return;
        }
        self.target.lock().stats.pings += 1;
        let resp = self.status(nop_in_reply(n.itt, 0));
        let resp = crate::pdu::NopIn { lun: n.lun, ..resp };
        self.send(&resp, data);
    }

    fn tmf(&mut self, t: &TaskMgmtRequest) {
        self.admit(t.cmd_sn, t.immediate);
        self.target.lock().stats.aborts.push(t.referenced_task_tag);
        self.writes.remove(&t.referenced_task_tag);
        let resp = self.status(tmf_response(t.itt, TmfResponse::Complete));
        self.send(&resp, &[]);
    }

    fn logout(&mut self, l: &LogoutRequest) {
        self.admit(l.cmd_sn, l.immediate);
        let how = {
            let mut s = self.target.lock();
            s.stats.logouts += 1;
            s.cfg.on_logout
        };
        let response = match how {
            OnLogout::Answer | OnLogout::AnswerThenFin => LogoutResponseCode::Success,
            OnLogout::RefuseThenFin(code) => code,
            OnLogout::Fin => return self.close(ConnectionEnd::Fin),
            OnLogout::Ignore => return,
        };
        let resp = self.status(logout_response(l.itt, response));
        self.send(&resp, &[]);
        if how != OnLogout::Answer {
            self.close(ConnectionEnd::Fin);
        }
    }
}

/// `key=value` pairs of a text data segment (NUL-separated).
pub(super) fn parse_text(data: &[u8]) -> Vec<(String, String)> {
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

/// The BHS of `h` as the data segment of a Reject.
fn header_bytes(h: &dyn Header) -> Vec<u8> {
    let mut header = vec![0u8; BHS_LEN];
    h.emit(0, false, &mut header)
        .expect("a BHS fits its buffer");
    header
}
