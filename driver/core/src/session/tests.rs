// SPDX-License-Identifier: BSD-2-Clause
//! Transcript tests of the full feature phase: a scripted target talks to [`Engine`] with no
//! sockets. `send!` delivers a target PDU; `recv!` collects what the engine transmits and
//! compares it with the expected PDUs (header fields and data).

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use isboot_executor::Instant;

use super::engine::*;
use crate::lun::Lun;
use crate::pdu::testutil::emit_with;
use crate::pdu::TargetSns;
use crate::pdu::{
    AsyncEvent, AsyncMessage, Cdb, DataIn, DataOut, Digests, Header, LogoutReason, LogoutRequest,
    LogoutResponse, NopIn, NopOut, Pdu, R2t, RawPdu, Reject, RejectReason, Residual, ScsiCommand,
    ScsiResponse, TaskAttr, TaskMgmtResponse, TmfFunction, TmfResponse, RESERVED_TAG,
};
use crate::port::TmfError;
use crate::scsi::{cdb, Completion, ScsiRequest, TransportError};
use crate::sn::Sn;
use crate::text::{Key, Params};

const T0: Instant = Instant::from_nanos(1_000_000_000);
const ITT0: u32 = 0x0001_0000;
const ITT1: u32 = 0x0001_0001;
const ITT2: u32 = 0x0001_0002;

fn lun1() -> Lun {
    Lun::from_number(1).unwrap_or_default()
}

/// READ(16) and WRITE(16): the BHS always carries 16 CDB bytes, so a shorter CDB would come
/// back zero-padded from the parser.
fn read16(blocks: u8) -> Cdb {
    cdb::rw16(false, 0, u32::from(blocks))
}

fn write16(blocks: u8) -> Cdb {
    cdb::rw16(true, 0, u32::from(blocks))
}

fn read(tag: u64, len: usize) -> ScsiRequest {
    ScsiRequest::read(tag, lun1(), read16(1), len)
}

fn write(tag: u64, len: usize) -> ScsiRequest {
    let data = (0..len).map(|i| (i % 251) as u8).collect();
    ScsiRequest::write(tag, lun1(), write16(1), data)
}

/// 64 KiB segments both ways, InitialR2T=Yes, ImmediateData=No, the RFC defaults otherwise.
fn params() -> Params {
    Params::default()
        .with_max_recv_dsl(65536)
        .with(Key::MaxRecvDataSegmentLength, 65536)
        .with(Key::ImmediateData, 0)
}

/// StatSN 100, CmdSN window [10, 41].
const SNS: TargetSns = TargetSns {
    stat_sn: Sn(99),
    exp_cmd_sn: Sn(10),
    max_cmd_sn: Sn(41),
};

struct Script {
    e: Engine,
    now: Instant,
}

fn session_in_ffp(params: Params) -> Script {
    let mut e = Engine::new(8, Timeouts::default());
    e.connected(params, SNS, T0);
    Script { e, now: T0 }
}

impl Script {
    fn submit(&mut self, r: ScsiRequest) {
        assert!(self.e.submit(r, self.now).is_ok());
    }

    fn deliver(&mut self, h: &dyn Header, data: &[u8]) -> Result<(), Disconnect> {
        let d = self.e.params().digests();
        let wire = emit_with(h, data, d);
        let (raw, _) = RawPdu::split(&wire, d, u32::MAX).expect("test PDU splits");
        self.e.receive(self.now, raw.header, raw.data)
    }

    /// Everything the engine wants to send now, parsed back.
    fn transmit(&mut self) -> Vec<(Pdu, Vec<u8>)> {
        let mut out = Vec::new();
        while self.e.poll_transmit(self.now, &mut out) {}
        let d = self.e.params().digests();
        let mut pdus = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let (raw, used) = RawPdu::split(&out[at..], d, u32::MAX).expect("engine PDU splits");
            pdus.push((raw.parse().expect("engine PDU parses"), raw.data.to_vec()));
            at += used;
        }
        pdus
    }

    fn completions(&mut self) -> Vec<Completion> {
        let mut v = Vec::new();
        while let Some(ev) = self.e.poll_event() {
            match ev {
                Event::Complete(c) => v.push(c),
                other => panic!("unexpected event {other:?}"),
            }
        }
        v
    }

    fn advance(&mut self, d: Duration) -> Result<(), Disconnect> {
        self.now = self.now + d;
        self.e.on_timer(self.now)
    }
}

/// Target PDU in: `send!(s, pdu)` or `send!(s, pdu, data)`; expects it to be accepted.
macro_rules! send {
    ($s:expr, $pdu:expr) => {
        send!($s, $pdu, &[])
    };
    ($s:expr, $pdu:expr, $data:expr) => {
        assert_eq!($s.deliver(&$pdu, $data), Ok(()))
    };
}

/// Engine PDUs out: `recv!(s, [pdu_or_(pdu, data), ...])`, compared in order.
macro_rules! recv {
    ($s:expr, [$($p:expr),* $(,)?]) => {{
        let got = $s.transmit();
        let want: Vec<(Pdu, Vec<u8>)> = vec![$(Expect::from($p).0),*];
        assert_eq!(got.len(), want.len(), "PDU count: got {:#?}", got);
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert_eq!(g.0, w.0, "PDU {i} header");
            assert!(g.1 == w.1, "PDU {i} data: got {} bytes, want {}", g.1.len(), w.1.len());
        }
    }};
}

struct Expect((Pdu, Vec<u8>));

impl<P: Into<Pdu>> From<P> for Expect {
    fn from(p: P) -> Self {
        Expect((p.into(), Vec::new()))
    }
}

impl<P: Into<Pdu>> From<(P, Vec<u8>)> for Expect {
    fn from((p, d): (P, Vec<u8>)) -> Self {
        Expect((p.into(), d))
    }
}

fn cmd(itt: u32, cmd_sn: u32, req: &ScsiRequest) -> ScsiCommand {
    ScsiCommand {
        immediate: false,
        final_bit: true,
        read: req.direction == crate::scsi::Direction::In,
        write: req.direction == crate::scsi::Direction::Out,
        attr: TaskAttr::Simple,
        lun: req.lun,
        itt,
        expected_data_len: req.expected_len(),
        cmd_sn: Sn(cmd_sn),
        exp_stat_sn: Sn(100),
        cdb: req.cdb,
        bidi_read_len: None,
    }
}

fn data_in(itt: u32, data_sn: u32, offset: u32) -> DataIn {
    DataIn {
        final_bit: false,
        ack: false,
        status: None,
        residual: Residual::None,
        lun: lun1(),
        itt,
        ttt: RESERVED_TAG,
        sns: TargetSns {
            stat_sn: Sn(0),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        data_sn: Sn(data_sn),
        buffer_offset: offset,
    }
}

fn response(itt: u32, stat_sn: u32, status: u8) -> ScsiResponse {
    ScsiResponse {
        response: 0,
        status,
        itt,
        snack_tag: 0,
        sns: TargetSns {
            stat_sn: Sn(stat_sn),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        exp_data_sn: Sn(0),
        bidi_residual: Residual::None,
        residual: Residual::None,
    }
}

fn r2t(itt: u32, ttt: u32, r2t_sn: u32, offset: u32, len: u32) -> R2t {
    R2t {
        lun: lun1(),
        itt,
        ttt,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        r2t_sn: Sn(r2t_sn),
        buffer_offset: offset,
        desired_len: len,
    }
}

fn data_out(
    req: &ScsiRequest,
    itt: u32,
    ttt: u32,
    sn: u32,
    off: u32,
    len: u32,
    last: bool,
) -> (DataOut, Vec<u8>) {
    (
        DataOut {
            final_bit: last,
            lun: req.lun,
            itt,
            ttt,
            exp_stat_sn: Sn(100),
            data_sn: Sn(sn),
            buffer_offset: off,
        },
        req.data[off as usize..(off + len) as usize].to_vec(),
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn read_with_status_in_the_last_data_in() {
    let mut s = session_in_ffp(params());
    let req = read(7, 8192);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let a = pattern(4096, 1);
    let b = pattern(4096, 2);
    send!(s, data_in(ITT0, 0, 0), &a);
    let last = DataIn {
        final_bit: true,
        status: Some(0),
        sns: TargetSns {
            stat_sn: Sn(100),
            ..data_in(ITT0, 1, 4096).sns
        },
        ..data_in(ITT0, 1, 4096)
    };
    send!(s, last, &b);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].tag, 7);
    assert_eq!(&c[0].data[..4096], &a[..]);
    assert_eq!(&c[0].data[4096..], &b[..]);
    let r = c[0].result.unwrap();
    assert!(r.is_good());
    assert_eq!((r.transferred, r.residual), (8192, 0));
    assert_eq!(s.e.exp_stat_sn(), Sn(101));
    assert_eq!(s.e.window(), (Sn(11), Sn(42), Sn(11)));
}

#[test]
fn check_condition_with_sense_in_the_scsi_response() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let mut seg = vec![
        0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0,
    ];
    seg.truncate(20);
    send!(s, response(ITT0, 100, 2), &seg);
    let c = s.completions();
    let r = c[0].result.unwrap();
    assert_eq!(r.status, 2);
    assert_eq!(r.sense.as_slice(), &seg[2..]);
    assert_eq!(r.sense.key_asc_ascq(), Some((5, 0x24, 0)));
    assert_eq!(r.transferred, 0);
    assert_eq!(r.residual, 512);
}

#[test]
fn underflow_reports_the_residual() {
    let mut s = session_in_ffp(params());
    let req = read(1, 1024);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(512, 0));
    let resp = ScsiResponse {
        residual: Residual::Underflow(512),
        ..response(ITT0, 100, 0)
    };
    send!(s, resp);
    let r = s.completions()[0].result.unwrap();
    assert_eq!((r.transferred, r.residual), (512, 512));
}

#[test]
fn data_in_at_the_wrong_offset_drops_the_connection() {
    let mut s = session_in_ffp(params());
    let req = read(1, 8192);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(1000, 0));
    let got = s.deliver(&data_in(ITT0, 1, 2000), &pattern(1000, 0));
    assert_eq!(
        got,
        Err(Disconnect::Violation(Violation::DataInOffset {
            itt: ITT0,
            offset: 2000,
            expected: 1000
        }))
    );
}

#[test]
fn data_in_past_the_buffer_is_refused_before_any_byte_is_written() {
    let mut s = session_in_ffp(params());
    let req = read(1, 1001);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    // 1004 bytes: what isboot's 4-byte rounding wrote past a 1001-byte buffer.
    let wire = emit_with(&data_in(ITT0, 0, 0), &pattern(1004, 0), Digests::default());
    assert_eq!(
        s.e.rx_header(s.now, &wire[..48]),
        Err(Disconnect::Violation(Violation::DataInOverrun {
            itt: ITT0,
            end: 1004,
            len: 1001
        }))
    );
}

#[test]
fn data_in_with_a_stale_or_unknown_itt_is_a_violation() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let wrong = ITT0 + 0x0001_0000;
    assert!(matches!(
        s.deliver(&data_in(wrong, 0, 0), &pattern(512, 0)),
        Err(Disconnect::Violation(Violation::UnknownItt { itt, .. })) if itt == wrong
    ));
    assert!(matches!(
        s.deliver(&data_in(ITT0, 3, 0), &pattern(512, 0)),
        Err(Disconnect::Violation(Violation::DataSn { .. }))
    ));
}

#[test]
fn oversized_data_segment_is_refused_from_the_header() {
    let mut s = session_in_ffp(params().with_max_recv_dsl(512));
    let req = read(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let wire = emit_with(&data_in(ITT0, 0, 0), &pattern(1024, 0), Digests::default());
    assert!(matches!(
        s.e.rx_header(s.now, &wire[..48]),
        Err(Disconnect::Violation(Violation::Pdu(
            crate::pdu::Error::DataSegmentTooLong {
                len: 1024,
                max: 512
            }
        )))
    ));
}

#[test]
fn sense_length_past_the_segment_is_a_violation() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&response(ITT0, 100, 2), &[0, 200, 0x70, 0]),
        Err(Disconnect::Violation(Violation::Sense(_)))
    ));
}

#[test]
fn a_window_closed_at_login_admits_nothing_until_a_pdu_opens_it() {
    let mut s = session_in_ffp(params());
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(99),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(9),
        },
        T0,
    );
    assert_eq!(s.e.window_size(), 0);
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, []);
    let open = NopIn {
        sns: TargetSns {
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(10),
            ..TargetSns::default()
        },
        ..NopIn::default()
    };
    send!(s, open);
    assert_eq!(s.e.window_size(), 1);
    recv!(s, [cmd(ITT0, 10, &req)]);
}

#[test]
fn commands_wait_while_the_window_is_closed() {
    let mut s = session_in_ffp(params());
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(99),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(11),
        },
        T0,
    );
    let reqs: Vec<ScsiRequest> = (0..3).map(|i| read(i, 512)).collect();
    for r in &reqs {
        s.submit(r.clone());
    }
    assert_eq!(s.e.window_size(), 2);
    recv!(s, [cmd(ITT0, 10, &reqs[0]), cmd(ITT1, 11, &reqs[1])]);
    recv!(s, []);
    // A NOP-In opening the window by one lets the third command go.
    let nop = NopIn {
        sns: TargetSns {
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(12),
            ..TargetSns::default()
        },
        ..NopIn::default()
    };
    send!(s, nop);
    recv!(s, [cmd(ITT2, 12, &reqs[2])]);
    // A MaxCmdSN below ExpCmdSN-1 is ignored; the window does not shrink.
    let bogus = NopIn {
        sns: TargetSns {
            exp_cmd_sn: Sn(20),
            max_cmd_sn: Sn(5),
            ..TargetSns::default()
        },
        ..NopIn::default()
    };
    send!(s, bogus);
    assert_eq!(s.e.window(), (Sn(11), Sn(12), Sn(13)));
    assert_eq!(s.e.window_size(), 2);
}

#[test]
fn r2t_is_split_by_the_targets_max_recv_data_segment_length() {
    let mut s = session_in_ffp(params().with(Key::MaxRecvDataSegmentLength, 8192));
    let req = write(1, 20_000);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, r2t(ITT0, 0x77, 0, 0, 20_000));
    recv!(
        s,
        [
            data_out(&req, ITT0, 0x77, 0, 0, 8192, false),
            data_out(&req, ITT0, 0x77, 1, 8192, 8192, false),
            data_out(&req, ITT0, 0x77, 2, 16384, 3616, true),
        ]
    );
    send!(s, response(ITT0, 100, 0));
    let r = s.completions()[0].result.unwrap();
    assert_eq!((r.transferred, r.residual), (20_000, 0));
}

#[test]
fn immediate_and_unsolicited_data_up_to_first_burst_length() {
    let mut s = session_in_ffp(
        params()
            .with(Key::MaxRecvDataSegmentLength, 4096)
            .with(Key::FirstBurstLength, 10_000)
            .with(Key::ImmediateData, 1)
            .with(Key::InitialR2T, 0)
            .with(Key::MaxOutstandingR2T, 2),
    );
    let req = write(1, 30_000);
    s.submit(req.clone());
    let c = ScsiCommand {
        final_bit: false,
        ..cmd(ITT0, 10, &req)
    };
    recv!(
        s,
        [
            (c, req.data[..4096].to_vec()),
            data_out(&req, ITT0, RESERVED_TAG, 0, 4096, 4096, false),
            data_out(&req, ITT0, RESERVED_TAG, 1, 8192, 1808, true),
        ]
    );
    // The rest comes by two R2Ts outstanding at once.
    send!(s, r2t(ITT0, 1, 0, 10_000, 10_000));
    send!(s, r2t(ITT0, 2, 1, 20_000, 10_000));
    recv!(
        s,
        [
            data_out(&req, ITT0, 1, 0, 10_000, 4096, false),
            data_out(&req, ITT0, 1, 1, 14_096, 4096, false),
            data_out(&req, ITT0, 1, 2, 18_192, 1808, true),
            data_out(&req, ITT0, 2, 0, 20_000, 4096, false),
            data_out(&req, ITT0, 2, 1, 24_096, 4096, false),
            data_out(&req, ITT0, 2, 2, 28_192, 1808, true),
        ]
    );
}

#[test]
fn immediate_data_only_with_initial_r2t() {
    let mut s = session_in_ffp(
        params()
            .with(Key::ImmediateData, 1)
            .with(Key::InitialR2T, 1)
            .with(Key::FirstBurstLength, 1000),
    );
    let req = write(1, 3000);
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data[..1000].to_vec())]);
    send!(s, r2t(ITT0, 5, 0, 1000, 2000));
    recv!(s, [data_out(&req, ITT0, 5, 0, 1000, 2000, true)]);
}

#[test]
fn r2t_checks() {
    let mut s = session_in_ffp(params());
    let req = write(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 0, 4000, 200), &[]),
        Err(Disconnect::Violation(Violation::R2tRange { .. }))
    ));
    let mut s = session_in_ffp(params());
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, r2t(ITT0, 1, 0, 0, 1000));
    assert!(matches!(
        s.deliver(&r2t(ITT0, 2, 1, 1000, 1000), &[]),
        Err(Disconnect::Violation(Violation::TooManyR2t { max: 1, .. }))
    ));
    let mut s = session_in_ffp(params());
    let rd = read(1, 4096);
    s.submit(rd.clone());
    recv!(s, [cmd(ITT0, 10, &rd)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 0, 0, 1000), &[]),
        Err(Disconnect::Violation(Violation::WrongDirection { .. }))
    ));
}

#[test]
fn target_ping_is_answered_with_its_ttt_lun_and_data() {
    let mut s = session_in_ffp(params());
    let ping = NopIn {
        lun: lun1(),
        itt: RESERVED_TAG,
        ttt: 0x1234,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
    };
    send!(s, ping, b"ping!");
    let answer = NopOut {
        immediate: true,
        lun: lun1(),
        itt: RESERVED_TAG,
        ttt: 0x1234,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(100),
    };
    recv!(s, [(answer, b"ping!".to_vec())]);
}

#[test]
fn idle_connection_pings_and_drops_without_an_answer() {
    let mut s = session_in_ffp(params());
    assert_eq!(s.e.poll_at(), Some(T0 + Duration::from_secs(5)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let ping = NopOut {
        immediate: true,
        lun: Lun::default(),
        itt: 0x8000_0000,
        ttt: RESERVED_TAG,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(100),
    };
    recv!(s, [ping]);
    // The answer clears it; the next ping comes after another idle interval.
    let answer = NopIn {
        itt: 0x8000_0000,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        ..NopIn::default()
    };
    send!(s, answer);
    assert_eq!(s.e.poll_at(), Some(s.now + Duration::from_secs(5)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    assert_eq!(s.transmit().len(), 1);
    assert_eq!(s.advance(Duration::from_secs(14)), Ok(()));
    assert_eq!(
        s.advance(Duration::from_secs(1)),
        Err(Disconnect::NopTimeout)
    );
}

#[test]
fn command_timeout_aborts_the_task() {
    let mut s = session_in_ffp(params());
    let mut req = read(9, 512);
    req.timeout = Some(Duration::from_secs(30));
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    // Keep the connection busy so that only the command timer matters.
    for _ in 0..5 {
        assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
        let _ = s.transmit();
        let answer = NopIn {
            itt: RESERVED_TAG,
            sns: TargetSns {
                stat_sn: Sn(100),
                exp_cmd_sn: Sn(11),
                max_cmd_sn: Sn(42),
            },
            ..NopIn::default()
        };
        send!(s, answer);
    }
    assert!(s.completions().is_empty());
    assert_eq!(s.e.poll_at(), Some(T0 + Duration::from_secs(30)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let out = s.transmit();
    let abort = out
        .iter()
        .find_map(|(p, _)| match p {
            Pdu::TaskMgmtRequest(t) => Some(t.clone()),
            _ => None,
        })
        .expect("ABORT TASK sent");
    assert_eq!(abort.function, TmfFunction::AbortTask);
    assert_eq!(abort.referenced_task_tag, ITT0);
    assert_eq!(abort.ref_cmd_sn, Sn(10));
    assert!(abort.immediate);
    let resp = TaskMgmtResponse {
        response: TmfResponse::Complete,
        itt: abort.itt,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
    };
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::Timeout));
    assert_eq!(s.e.outstanding(), 0);
}

#[test]
fn command_timeout_while_closing_aborts_at_the_target_and_keeps_the_buffer_for_data_under_way() {
    let mut s = session_in_ffp(params());
    let mut req = read(9, 4096);
    req.timeout = Some(Duration::from_secs(2));
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    s.e.shutdown(s.now);
    // A Data-In for it has begun arriving when its timeout expires.
    let wire = emit_with(&data_in(ITT0, 0, 0), &[7u8; 1024], Digests::default());
    let (raw, _) = RawPdu::split(&wire, Digests::default(), u32::MAX).expect("splits");
    let sink = s.e.rx_header(s.now, raw.header).expect("accepted");
    let RxSink::Task { slot, range } = sink else {
        panic!("Data-In goes to the task, got {sink:?}");
    };
    assert_eq!(s.advance(Duration::from_secs(2)), Ok(()));
    // The target still owns the command: ABORT TASK, not a local completion.
    assert!(s.completions().is_empty());
    let out = s.transmit();
    let abort = out
        .iter()
        .find_map(|(p, _)| match p {
            Pdu::TaskMgmtRequest(t) => Some(t.clone()),
            _ => None,
        })
        .expect("ABORT TASK sent while closing");
    assert_eq!(abort.referenced_task_tag, ITT0);
    assert!(out.iter().all(|(p, _)| !matches!(p, Pdu::LogoutRequest(_))));
    // The data segment under way still has somewhere to go.
    let buf =
        s.e.rx_task_buf(slot, range)
            .expect("the task keeps its buffer");
    assert_eq!(buf.len(), 1024);
    buf.copy_from_slice(&[7u8; 1024]);
    assert_eq!(s.e.rx_finish(s.now, &[]), Ok(()));
    let resp = TaskMgmtResponse {
        response: TmfResponse::Complete,
        itt: abort.itt,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
    };
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::Timeout));
    // Nothing outstanding: the Logout follows.
    let out = s.transmit();
    assert!(
        matches!(out.first(), Some((Pdu::LogoutRequest(_), _))),
        "{out:?}"
    );
}

#[test]
fn abort_not_yet_sent_is_dropped_when_its_task_completes_and_never_hits_the_slots_next_task() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    // The platform aborts it; before ABORT TASK goes out, the target answers the command.
    assert!(s.e.abort(1));
    // BUSY: a status without data, so the read needs no Data-In.
    send!(s, response(ITT0, 100, 0x08));
    let c = s.completions();
    assert_eq!((c.len(), c[0].tag), (1, 1));
    // A new request takes the freed slot (with a new generation).
    let b = read(2, 512);
    s.submit(b.clone());
    let out = s.transmit();
    assert!(
        out.iter()
            .all(|(p, _)| !matches!(p, Pdu::TaskMgmtRequest(_))),
        "an ABORT TASK for a finished task (or its slot's next one) went out: {out:?}"
    );
    let Some((Pdu::ScsiCommand(sent), _)) = out.first() else {
        panic!("expected the new command, got {out:?}");
    };
    assert_eq!(sent.itt & 0xffff, ITT0 & 0xffff, "same slot, reused");
    // The new command is answered normally, no abort deadline is left to drop the connection.
    send!(s, response(sent.itt, 101, 0x08));
    assert_eq!(s.completions()[0].tag, 2);
    assert_eq!(s.advance(Duration::from_secs(4)), Ok(()));
    let _ = s.transmit();
    send!(
        s,
        NopIn {
            itt: RESERVED_TAG,
            sns: TargetSns {
                stat_sn: Sn(102),
                exp_cmd_sn: Sn(12),
                max_cmd_sn: Sn(43),
            },
            ..NopIn::default()
        }
    );
    assert_eq!(s.advance(Duration::from_secs(20)), Ok(()));
}

#[test]
fn unanswered_abort_drops_the_connection() {
    let mut s = session_in_ffp(params());
    s.submit(read(1, 512));
    let _ = s.transmit();
    assert!(s.e.abort(1));
    let out = s.transmit();
    assert!(matches!(out[0].0, Pdu::TaskMgmtRequest(_)));
    let mut r = Ok(());
    for _ in 0..4 {
        r = s.advance(Duration::from_secs(4));
        let _ = s.transmit();
        if r.is_err() {
            break;
        }
    }
    assert!(matches!(
        r,
        Err(Disconnect::TmfTimeout | Disconnect::NopTimeout)
    ));
}

#[test]
fn connection_loss_replays_in_flight_commands_in_order() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    let b = write(2, 512);
    s.submit(a.clone());
    s.submit(b.clone());
    recv!(s, [cmd(ITT0, 10, &a), cmd(ITT1, 11, &b)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(100, 1));
    s.e.disconnected();
    recv!(s, []);
    // Reinstatement: new StatSN and window; commands go again with new ITTs and CmdSNs.
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(499),
            exp_cmd_sn: Sn(70),
            max_cmd_sn: Sn(80),
        },
        s.now,
    );
    let ca = ScsiCommand {
        exp_stat_sn: Sn(500),
        ..cmd(0x0002_0000, 70, &a)
    };
    let cb = ScsiCommand {
        exp_stat_sn: Sn(500),
        ..cmd(0x0002_0001, 71, &b)
    };
    recv!(s, [ca, cb]);
    // A PDU for the old ITT finds nothing.
    assert!(s.deliver(&data_in(ITT0, 0, 0), &[1]).is_err());
    let full = pattern(512, 3);
    let last = DataIn {
        final_bit: true,
        status: Some(0),
        sns: TargetSns {
            stat_sn: Sn(500),
            ..data_in(0x0002_0000, 0, 0).sns
        },
        ..data_in(0x0002_0000, 0, 0)
    };
    send!(s, last, &full);
    send!(s, response(0x0002_0001, 501, 0));
    let c = s.completions();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].data, full, "replayed read got all of its data again");
    assert!(c.iter().all(|c| c.result.is_ok_and(|r| r.is_good())));
    assert_eq!(s.e.stats().replays, 2);
}

#[test]
fn async_logout_request_logs_out_then_reconnects() {
    let mut s = session_in_ffp(params());
    let msg = AsyncMessage {
        lun: Lun::default(),
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        event: AsyncEvent::LogoutRequest,
        vcode: 0,
        parameter1: 0,
        parameter2: 0,
        parameter3: 5,
    };
    send!(s, msg);
    let logout = LogoutRequest {
        immediate: true,
        reason: LogoutReason::CloseSession,
        itt: 0x8000_0000,
        cid: 0,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(101),
    };
    recv!(s, [logout]);
    // No new commands while logging out.
    s.submit(read(1, 512));
    recv!(s, []);
    let resp = LogoutResponse {
        itt: 0x8000_0000,
        sns: TargetSns {
            stat_sn: Sn(101),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        time2wait: 3,
        ..LogoutResponse::default()
    };
    assert_eq!(
        s.deliver(&resp, &[]),
        Err(Disconnect::LoggedOut {
            wait: Duration::from_secs(3)
        })
    );
    assert_eq!(
        s.e.outstanding(),
        1,
        "the request waits for the next connection"
    );
}

#[test]
fn async_drop_connection_waits_time2wait() {
    let mut s = session_in_ffp(params());
    let msg = AsyncMessage {
        lun: Lun::default(),
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        event: AsyncEvent::DropConnection,
        vcode: 0,
        parameter1: 0,
        parameter2: 4,
        parameter3: 0,
    };
    assert_eq!(
        s.deliver(&msg, &[]),
        Err(Disconnect::TargetRequest {
            event: AsyncEvent::DropConnection,
            wait: Duration::from_secs(4)
        })
    );
}

#[test]
fn async_drop_connection_time2wait_beyond_an_hour_is_capped_and_says_so() {
    let mut s = session_in_ffp(params());
    let msg = AsyncMessage {
        lun: Lun::default(),
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        event: AsyncEvent::DropConnection,
        vcode: 0,
        parameter1: 0,
        parameter2: 65535,
        parameter3: 0,
    };
    let d = s.deliver(&msg, &[]);
    assert_eq!(
        d,
        Err(Disconnect::TargetRequest {
            event: AsyncEvent::DropConnection,
            wait: Duration::from_secs(3600)
        })
    );
    let line = alloc::format!("{}", d.unwrap_err());
    assert!(line.contains("wait 3600s, capped at 3600s"), "{line}");
}

#[test]
fn logout_response_time2wait_beyond_an_hour_is_capped_and_says_so() {
    let mut s = session_in_ffp(params());
    let msg = AsyncMessage {
        lun: Lun::default(),
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        event: AsyncEvent::LogoutRequest,
        vcode: 0,
        parameter1: 0,
        parameter2: 0,
        parameter3: 5,
    };
    send!(s, msg);
    let out = s.transmit();
    let Some(Pdu::LogoutRequest(l)) = out.first().map(|o| &o.0) else {
        panic!("expected Logout, got {out:?}");
    };
    let resp = LogoutResponse {
        itt: l.itt,
        sns: TargetSns {
            stat_sn: Sn(101),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        time2wait: 40_000,
        ..LogoutResponse::default()
    };
    let d = s.deliver(&resp, &[]);
    assert_eq!(
        d,
        Err(Disconnect::LoggedOut {
            wait: Duration::from_secs(3600)
        })
    );
    let line = alloc::format!("{}", d.unwrap_err());
    assert!(line.contains("capped at 3600s"), "{line}");
}

#[test]
fn target_requested_logout_waits_our_logout_timeout_not_the_targets_parameter3() {
    let mut s = session_in_ffp(params());
    let msg = AsyncMessage {
        lun: Lun::default(),
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        event: AsyncEvent::LogoutRequest,
        vcode: 0,
        parameter1: 0,
        parameter2: 0,
        parameter3: 65535,
    };
    send!(s, msg);
    let out = s.transmit();
    assert!(
        matches!(out.first(), Some((Pdu::LogoutRequest(_), _))),
        "{out:?}"
    );
    // No answer: the connection goes after our logout timeout (10 s), not 18 hours.
    assert_eq!(s.advance(Duration::from_secs(9)), Ok(()));
    assert_eq!(
        s.advance(Duration::from_secs(1)),
        Err(Disconnect::LogoutTimeout)
    );
}

#[test]
fn rejected_command_fails_it_and_reconnects() {
    let mut s = session_in_ffp(params());
    let req = read(4, 512);
    s.submit(req.clone());
    let out = s.transmit();
    let wire = emit_with(&out[0].0, &[], Digests::default());
    let rej = Reject {
        reason: RejectReason::InvalidPduField,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        data_sn: Sn(0),
    };
    assert_eq!(
        s.deliver(&rej, &wire[..48]),
        Err(Disconnect::Rejected(RejectReason::InvalidPduField))
    );
    let c = s.completions();
    assert_eq!(c[0].result, Err(TransportError::Rejected(0x09)));
}

#[test]
fn shutdown_waits_for_outstanding_commands_then_logs_out() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    s.e.shutdown(s.now);
    assert!(matches!(
        s.e.submit(read(2, 1), s.now),
        Err(SubmitError::Closed(_))
    ));
    recv!(s, []);
    let last = DataIn {
        final_bit: true,
        status: Some(0),
        sns: TargetSns {
            stat_sn: Sn(100),
            ..data_in(ITT0, 0, 0).sns
        },
        ..data_in(ITT0, 0, 0)
    };
    send!(s, last, &pattern(512, 0));
    assert_eq!(s.completions().len(), 1);
    let out = s.transmit();
    let Pdu::LogoutRequest(l) = &out[0].0 else {
        panic!("expected Logout, got {out:?}");
    };
    assert_eq!(l.reason, LogoutReason::CloseSession);
    let resp = LogoutResponse {
        itt: l.itt,
        sns: TargetSns {
            stat_sn: Sn(101),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        ..LogoutResponse::default()
    };
    send!(s, resp);
    assert_eq!(s.e.phase(), Phase::Closed);
}

#[test]
fn lun_reset_completes_the_tasks_on_that_lun() {
    let mut s = session_in_ffp(params());
    s.submit(read(1, 512));
    s.submit(read(2, 512));
    let _ = s.transmit();
    s.e.reset_lun(lun1(), 77);
    let out = s.transmit();
    let Pdu::TaskMgmtRequest(t) = &out[0].0 else {
        panic!("expected TMF, got {out:?}");
    };
    assert_eq!(t.function, TmfFunction::LogicalUnitReset);
    assert_eq!(t.lun, lun1());
    let resp = TaskMgmtResponse {
        response: TmfResponse::Complete,
        itt: t.itt,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(12),
            max_cmd_sn: Sn(43),
        },
    };
    send!(s, resp);
    let mut aborted = 0;
    let mut reset = None;
    while let Some(ev) = s.e.poll_event() {
        match ev {
            Event::Complete(c) => {
                assert_eq!(c.result, Err(TransportError::Aborted));
                aborted += 1;
            }
            Event::ResetDone { tag, result } => reset = Some((tag, result)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(aborted, 2);
    assert_eq!(reset, Some((77, Ok::<(), TmfError>(()))));
}

#[test]
fn full_table_gives_the_request_back() {
    let mut e = Engine::new(2, Timeouts::default());
    assert!(e.submit(read(1, 1), T0).is_ok());
    assert!(e.submit(read(2, 1), T0).is_ok());
    assert!(matches!(e.submit(read(3, 1), T0), Err(SubmitError::Full(r)) if r.tag == 3));
}

#[test]
fn digests_on_both_sides() {
    let mut s = session_in_ffp(
        params()
            .with(Key::HeaderDigest, 1)
            .with(Key::DataDigest, 1)
            .with(Key::ImmediateData, 1),
    );
    let req = write(1, 1001);
    s.submit(req.clone());
    // `transmit` splits with digests on: a wrong digest would fail there.
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
}

#[test]
fn abort_answered_after_the_command_completed_is_harmless() {
    let mut s = session_in_ffp(params());
    let req = read(3, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(s.e.abort(3));
    let out = s.transmit();
    let Pdu::TaskMgmtRequest(abort) = &out[0].0 else {
        panic!("expected ABORT TASK, got {out:?}");
    };
    // The target had already finished the command when the abort arrived.
    let last = DataIn {
        final_bit: true,
        status: Some(0),
        sns: TargetSns {
            stat_sn: Sn(100),
            ..data_in(ITT0, 0, 0).sns
        },
        ..data_in(ITT0, 0, 0)
    };
    send!(s, last, &pattern(512, 9));
    let resp = TaskMgmtResponse {
        response: TmfResponse::TaskDoesNotExist,
        itt: abort.itt,
        sns: TargetSns {
            stat_sn: Sn(101),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
    };
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert!(c[0].result.is_ok());
    // A TMF response nobody asked for is still a violation.
    assert!(matches!(
        s.deliver(
            &TaskMgmtResponse {
                itt: 0x8000_0042,
                ..resp
            },
            &[]
        ),
        Err(Disconnect::Violation(Violation::UnknownResponse { .. }))
    ));
}

#[test]
fn scsi_async_event_and_unknown_events_change_nothing() {
    let mut s = session_in_ffp(params());
    for event in [
        AsyncEvent::ScsiEvent,
        AsyncEvent::RequestNegotiation,
        AsyncEvent::Unknown(77),
    ] {
        let msg = AsyncMessage {
            lun: lun1(),
            sns: TargetSns {
                stat_sn: Sn(100),
                exp_cmd_sn: Sn(10),
                max_cmd_sn: Sn(41),
            },
            event,
            vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: 0,
        };
        send!(s, msg, &[0, 4, 0x70, 0, 6, 0]);
    }
    recv!(s, []);
    assert_eq!(s.e.phase(), Phase::Up);
    // The SCSI event reaches the platform with its sense; the others are dropped.
    match s.e.poll_event() {
        Some(Event::ScsiEvent { lun, sense }) => {
            assert_eq!(lun, lun1());
            assert_eq!(sense.as_slice(), &[0x70, 0, 6, 0]);
        }
        other => panic!("expected a SCSI event, got {other:?}"),
    }
    assert_eq!(s.e.poll_event(), None);
}

#[test]
fn unsolicited_nop_in_with_data_and_out_of_order_r2t_are_violations() {
    let mut s = session_in_ffp(params());
    assert!(matches!(
        s.deliver(&NopIn::default(), b"junk"),
        Err(Disconnect::Violation(Violation::UnexpectedData { .. }))
    ));
    let mut s = session_in_ffp(params());
    let req = write(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 5, 0, 1000), &[]),
        Err(Disconnect::Violation(Violation::R2tSn { .. }))
    ));
}

#[test]
fn cmd_sn_wraps_at_two_to_the_32() {
    let mut e = Engine::new(4, Timeouts::default());
    e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(u32::MAX),
            exp_cmd_sn: Sn(u32::MAX),
            max_cmd_sn: Sn(2),
        },
        T0,
    );
    let mut s = Script { e, now: T0 };
    let reqs: Vec<ScsiRequest> = (0..3).map(|i| read(i, 16)).collect();
    for r in &reqs {
        s.submit(r.clone());
    }
    let out = s.transmit();
    let sns: Vec<Sn> = out
        .iter()
        .filter_map(|(p, _)| match p {
            Pdu::ScsiCommand(c) => Some(c.cmd_sn),
            _ => None,
        })
        .collect();
    assert_eq!(sns, vec![Sn(u32::MAX), Sn(0), Sn(1)]);
    assert_eq!(s.e.exp_stat_sn(), Sn(0));
}

#[test]
fn shutdown_logs_out_after_the_logout_timeout_when_a_command_hangs() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    s.e.shutdown(s.now);
    let alive = NopIn {
        itt: RESERVED_TAG,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        ..NopIn::default()
    };
    for _ in 0..3 {
        assert_eq!(s.advance(Duration::from_secs(3)), Ok(()));
        assert!(s
            .transmit()
            .iter()
            .all(|(p, _)| !matches!(p, Pdu::LogoutRequest(_))));
        send!(s, alive.clone());
    }
    assert_eq!(s.advance(Duration::from_secs(1)), Ok(()));
    let out = s.transmit();
    let Some(Pdu::LogoutRequest(l)) = out
        .iter()
        .map(|(p, _)| p)
        .find(|p| matches!(p, Pdu::LogoutRequest(_)))
        .cloned()
    else {
        panic!("expected Logout after the timeout, got {out:?}");
    };
    // Once sent, the closing deadline no longer counts: only the logout's own does.
    assert!(s.e.poll_at().is_some_and(|d| d > s.now));
    let resp = LogoutResponse {
        itt: l.itt,
        sns: TargetSns {
            stat_sn: Sn(101),
            exp_cmd_sn: Sn(11),
            max_cmd_sn: Sn(42),
        },
        ..LogoutResponse::default()
    };
    send!(s, resp);
    assert_eq!(s.e.phase(), Phase::Closed);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::SessionClosed));
}

const MUTUAL_IBFT: &[u8] =
    include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin");
const TWO_TARGETS_IBFT: &[u8] =
    include_bytes!("../../../../tests/data/ibft/ibft-ipxe-dhcp-two-targets.bin");

fn boot_config(table: &[u8]) -> crate::ibft::BootConfig {
    crate::ibft::parse(table)
        .expect("fixture parses")
        .ibft
        .boot_config()
        .expect("fixture has a boot target")
}

#[test]
fn config_from_a_real_ibft_with_mutual_chap() {
    use super::{Isid, SessionConfig};
    let boot = boot_config(MUTUAL_IBFT);
    let cfg = SessionConfig::from_boot(&boot, Isid([0x80, 0, 0, 0, 0, 1]));
    assert_eq!(cfg.initiator_name, "iqn.2025-01.test.rig:initiator-ipxe");
    assert_eq!(cfg.targets.len(), 1);
    let t = &cfg.targets[0];
    assert_eq!(t.name, "iqn.2025-01.test.rig:tgt-mutual");
    assert_eq!(t.portal.addr, "10.0.2.2:3260".parse().unwrap());
    let chap = t.chap.as_ref().expect("CHAP configured");
    assert_eq!(chap.initiator.name, "rigin");
    assert_eq!(chap.initiator.secret.expose(), b"rigin-secret-12");
    let target = chap.target.as_ref().expect("mutual");
    assert_eq!(target.name, "rigout");
    assert_eq!(target.secret.expose(), b"rigout-secret-12");
    // Secrets never show in Debug output.
    let dbg = alloc::format!("{cfg:?}");
    assert!(!dbg.contains("rigin-secret-12") && !dbg.contains("rigout-secret-12"));
}

#[test]
fn config_from_a_real_ibft_keeps_the_alternate_target() {
    use super::{Isid, SessionConfig};
    let boot = boot_config(TWO_TARGETS_IBFT);
    let cfg = SessionConfig::from_boot(&boot, Isid([0x80, 0, 0, 0, 0, 1]));
    assert_eq!(cfg.targets.len(), boot.candidates.len());
    assert!(cfg.targets.len() >= 2, "{:?}", cfg.targets);
    assert_ne!(cfg.targets[0], cfg.targets[1]);
}

/// Deterministic pseudo-random bytes for the no-panic sweeps.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

#[test]
fn random_target_pdus_never_panic_the_engine() {
    // Target opcodes with their fields randomised, against a session with reads and writes
    // outstanding; whatever the engine answers, it must not panic and must stay consistent.
    const TARGET_OPS: [u8; 9] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32];
    let mut rng = Lcg(7);
    for round in 0..300 {
        let mut s = session_in_ffp(
            params()
                .with_max_recv_dsl(4096)
                .with(Key::MaxOutstandingR2T, 2),
        );
        s.submit(read(1, 3000));
        s.submit(write(2, 5000));
        s.submit(ScsiRequest::new(3, lun1(), read16(0)));
        let _ = s.transmit();
        for _ in 0..40 {
            let mut h = [0u8; 48];
            for b in h.iter_mut() {
                *b = rng.next() as u8;
            }
            h[0] = TARGET_OPS[rng.next() as usize % TARGET_OPS.len()];
            h[4] = 0;
            // Mostly plausible ITTs, so that deep paths run.
            let itt = match rng.next() % 4 {
                0 => ITT0,
                1 => ITT1,
                2 => ITT2,
                _ => rng.next(),
            };
            h[16..20].copy_from_slice(&itt.to_be_bytes());
            let dsl = (rng.next() % 5000) as usize;
            h[5..8].copy_from_slice(&(dsl as u32).to_be_bytes()[1..]);
            let data: Vec<u8> = (0..dsl).map(|_| rng.next() as u8).collect();
            if s.e.receive(s.now, &h, &data).is_err() {
                s.e.disconnected();
                s.e.connected(params(), SNS, s.now);
            }
            let _ = s.transmit();
            let _ = s.e.on_timer(s.now);
            while s.e.poll_event().is_some() {}
            assert!(s.e.outstanding() <= 3, "round {round}");
        }
    }
}

#[test]
fn random_login_responses_never_panic_the_login() {
    use crate::login::{Attempt, Login, LoginConfig};
    use crate::pdu::LoginResponse;
    let cfg = LoginConfig {
        initiator_name: alloc::string::String::from("iqn.2026-01.org.isboot:host"),
        target_name: alloc::string::String::from("iqn.2026-01.org.example:disk"),
        isid: [0x80, 1, 2, 3, 4, 5],
        chap: Some(crate::chap::ChapConfig::new(
            crate::chap::Credentials {
                name: alloc::string::String::from("u"),
                secret: crate::secret::Secret::new(b"0123456789ab"),
            },
            Some(crate::chap::Credentials {
                name: alloc::string::String::from("t"),
                secret: crate::secret::Secret::new(b"ba9876543210"),
            }),
        )),
        offer: crate::text::Offer::default(),
    };
    let keys = [
        "AuthMethod=CHAP",
        "AuthMethod=None",
        "CHAP_A=5",
        "CHAP_A=7",
        "CHAP_A=Reject",
        "CHAP_I=1",
        "CHAP_C=0x0102",
        "CHAP_C=0bAAEC",
        "CHAP_N=t",
        "CHAP_R=0x00",
        "MaxBurstLength=0",
        "MaxBurstLength=999999999",
        "HeaderDigest=CRC32C",
        "TargetAddress=[::1]:3261",
        "Junk",
        "=x",
    ];
    let mut rng = Lcg(11);
    for _ in 0..3000 {
        let mut l = Login::new(&cfg, Attempt::default(), 1).unwrap();
        let _ = l.start();
        for _ in 0..6 {
            let mut text = Vec::new();
            for _ in 0..(rng.next() % 5) {
                text.extend_from_slice(keys[rng.next() as usize % keys.len()].as_bytes());
                text.push(0);
            }
            let stage = |v: u32| match v % 3 {
                0 => crate::pdu::Stage::Security,
                1 => crate::pdu::Stage::Operational,
                _ => crate::pdu::Stage::FullFeature,
            };
            let r = LoginResponse {
                transit: rng.next() % 2 == 0,
                continue_bit: rng.next() % 5 == 0,
                csg: stage(rng.next()),
                nsg: stage(rng.next()),
                version_max: 0,
                version_active: (rng.next() % 8 == 0) as u8,
                isid: [0x80, 1, 2, 3, 4, 5],
                tsih: rng.next() as u16,
                itt: 1,
                sns: TargetSns {
                    stat_sn: Sn(rng.next()),
                    exp_cmd_sn: Sn(rng.next()),
                    max_cmd_sn: Sn(rng.next()),
                },
                status_class: (rng.next() % 9 == 0) as u8 * (rng.next() % 4) as u8,
                status_detail: rng.next() as u8,
            };
            if l.handle(&r, &text, &mut |b| b.fill(0x42)).is_err() {
                break;
            }
        }
    }
}

#[test]
fn target_failure_and_missing_data_are_named() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let failed = ScsiResponse {
        response: 1,
        ..response(ITT0, 100, 0)
    };
    send!(s, failed);
    assert_eq!(
        s.completions()[0].result,
        Err(TransportError::TargetFailure(1))
    );
    // GOOD status for a read that got no data and claims no underflow.
    s.submit(req.clone());
    // Slot 0 again, in its next generation.
    let again = 0x0003_0000;
    let c = ScsiCommand {
        exp_stat_sn: Sn(101),
        ..cmd(again, 11, &req)
    };
    recv!(s, [c]);
    assert!(matches!(
        s.deliver(&response(again, 101, 0), &[]),
        Err(Disconnect::Violation(Violation::MissingData {
            received: 0,
            expected: 512,
            ..
        }))
    ));
}

#[test]
fn write_underflow_and_data_in_against_a_write() {
    let mut s = session_in_ffp(params().with(Key::ImmediateData, 1));
    let req = write(1, 1024);
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
    assert!(matches!(
        s.deliver(&data_in(ITT0, 0, 0), &[1, 2, 3]),
        Err(Disconnect::Violation(Violation::WrongDirection { .. }))
    ));
    let mut s = session_in_ffp(params().with(Key::ImmediateData, 1));
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
    let short = ScsiResponse {
        residual: Residual::Underflow(24),
        ..response(ITT0, 100, 0)
    };
    send!(s, short);
    let r = s.completions()[0].result.unwrap();
    assert_eq!((r.transferred, r.residual), (1000, 24));
}

#[test]
fn rejected_ping_is_not_a_reason_to_reconnect() {
    let mut s = session_in_ffp(params());
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let out = s.transmit();
    let wire = emit_with(&out[0].0, &[], Digests::default());
    let rej = Reject {
        reason: RejectReason::ImmediateCommandReject,
        sns: TargetSns {
            stat_sn: Sn(100),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(41),
        },
        data_sn: Sn(0),
    };
    send!(s, rej, &wire[..48]);
    assert_eq!(s.e.phase(), Phase::Up);
    // The ping is settled: the next one comes after another idle interval, no timeout.
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    assert_eq!(s.transmit().len(), 1);
}

#[test]
fn unsent_requests_abort_and_time_out_locally() {
    let mut e = Engine::new(4, Timeouts::default());
    let mut r = read(1, 512);
    r.timeout = Some(Duration::from_secs(2));
    assert!(e.submit(r, T0).is_ok());
    assert!(e.submit(read(2, 512), T0).is_ok());
    assert!(e.abort(2));
    assert!(!e.abort(99));
    assert_eq!(e.poll_at(), Some(T0 + Duration::from_secs(2)));
    assert_eq!(e.on_timer(T0 + Duration::from_secs(2)), Ok(()));
    let mut got = Vec::new();
    while let Some(Event::Complete(c)) = e.poll_event() {
        got.push((c.tag, c.result));
    }
    assert_eq!(
        got,
        vec![
            (2, Err(TransportError::Aborted)),
            (1, Err(TransportError::Timeout))
        ]
    );
    assert_eq!(e.outstanding(), 0);
}

#[test]
fn target_ping_flood_is_bounded() {
    let mut s = session_in_ffp(params());
    for ttt in 1..=10 {
        let ping = NopIn {
            ttt,
            sns: TargetSns {
                stat_sn: Sn(100),
                exp_cmd_sn: Sn(10),
                max_cmd_sn: Sn(41),
            },
            ..NopIn::default()
        };
        send!(s, ping);
    }
    assert_eq!(s.transmit().len(), 4, "at most four answers queued");
}
