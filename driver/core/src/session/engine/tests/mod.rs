// SPDX-License-Identifier: BSD-2-Clause
//! Transcript tests of the full feature phase: a scripted target talks to [`Engine`] with no
//! sockets. `send!` delivers a target PDU; `recv!` collects what the engine transmits and
//! compares it with the expected PDUs (header fields and data).

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use isboot_executor::Instant;

use super::*;
use crate::lun::Lun;
use crate::pdu::testutil::emit_with;
use crate::pdu::TargetSns;
use crate::pdu::{
    AsyncEvent, AsyncMessage, Cdb, DataIn, DataOut, Digests, Header, LogoutReason, LogoutRequest,
    NopIn, NopOut, Pdu, R2t, RawPdu, RejectReason, Residual, ScsiCommand, ScsiResponse, TaskAttr,
    TaskMgmtResponse, TmfFunction, TmfResponse, RESERVED_TAG,
};
use crate::port::TmfError;
use crate::scsi::{cdb, Completion, ScsiRequest, TransportError};
use crate::sn::Sn;
pub(super) use crate::testing::pdu::{
    self as builders, async_message, logout_response, nop_in_ping, reject, scsi_response, sns,
    tmf_response, TargetPdu,
};
use crate::text::{Key, Params};

pub(super) const T0: Instant = Instant::from_nanos(1_000_000_000);
pub(super) const ITT0: u32 = 0x0001_0000;
pub(super) const ITT1: u32 = 0x0001_0001;
pub(super) const ITT2: u32 = 0x0001_0002;

pub(super) fn lun1() -> Lun {
    Lun::from_number(1).unwrap_or_default()
}

/// READ(16) and WRITE(16): the BHS always carries 16 CDB bytes, so a shorter CDB would come
/// back zero-padded from the parser.
pub(super) fn read16(blocks: u8) -> Cdb {
    cdb::rw16(false, 0, u32::from(blocks))
}

pub(super) fn write16(blocks: u8) -> Cdb {
    cdb::rw16(true, 0, u32::from(blocks))
}

pub(super) fn read(tag: u64, len: usize) -> ScsiRequest {
    ScsiRequest::read(tag, lun1(), read16(1), vec![0; len])
}

pub(super) fn write(tag: u64, len: usize) -> ScsiRequest {
    let data = (0..len).map(|i| (i % 251) as u8).collect();
    ScsiRequest::write(tag, lun1(), write16(1), data)
}

/// 64 KiB segments both ways, InitialR2T=Yes, ImmediateData=No, the RFC defaults otherwise.
pub(super) fn params() -> Params {
    Params::default()
        .with_max_recv_dsl(65536)
        .with(Key::MaxRecvDataSegmentLength, 65536)
        .with(Key::ImmediateData, 0)
}

/// StatSN 100, CmdSN window [10, 41].
pub(super) const SNS: TargetSns = TargetSns {
    stat_sn: Sn(99),
    exp_cmd_sn: Sn(10),
    max_cmd_sn: Sn(41),
};

pub(super) struct Script {
    pub(super) e: Engine,
    pub(super) now: Instant,
}

pub(super) fn session_in_ffp(params: Params) -> Script {
    let mut e = Engine::try_new(8, Timeouts::default()).unwrap();
    e.connected(params, SNS, T0).unwrap();
    Script { e, now: T0 }
}

impl Script {
    pub(super) fn submit(&mut self, r: ScsiRequest) {
        assert!(self.e.submit(r, self.now).is_ok());
    }

    pub(super) fn deliver(&mut self, h: &dyn Header, data: &[u8]) -> Result<(), Disconnect> {
        let d = self.e.params().digests();
        let wire = emit_with(h, data, d);
        let (raw, _) = RawPdu::split(&wire, d, u32::MAX).expect("test PDU splits");
        self.e.receive(self.now, raw.header, raw.data)
    }

    /// Everything the engine wants to send now, parsed back.
    pub(super) fn transmit(&mut self) -> Vec<(Pdu, Vec<u8>)> {
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

    pub(super) fn completions(&mut self) -> Vec<Completion> {
        let mut v = Vec::new();
        while let Some(ev) = self.e.poll_event() {
            match ev {
                Event::Complete(c) => v.push(c),
                other => panic!("unexpected event {other:?}"),
            }
        }
        v
    }

    pub(super) fn advance(&mut self, d: Duration) -> Result<(), Disconnect> {
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

pub(super) struct Expect((Pdu, Vec<u8>));

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

pub(super) fn cmd(itt: u32, cmd_sn: u32, req: &ScsiRequest) -> ScsiCommand {
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
        cdb: req.cdb.clone(),
        bidi_read_len: None,
    }
}

/// Data-In for `itt` on LUN 1 in the window [11, 42].
pub(super) fn data_in(itt: u32, data_sn: u32, offset: u32) -> DataIn {
    DataIn {
        lun: lun1(),
        ..builders::data_in(itt, data_sn, offset).window(11, 42)
    }
}

pub(super) fn response(itt: u32, stat_sn: u32, status: u8) -> ScsiResponse {
    scsi_response(itt, stat_sn, status).window(11, 42)
}

pub(super) fn r2t(itt: u32, ttt: u32, r2t_sn: u32, offset: u32, len: u32) -> R2t {
    R2t {
        lun: lun1(),
        ..builders::r2t(itt, ttt, r2t_sn, offset, len)
            .stat_sn(100)
            .window(11, 42)
    }
}

pub(super) fn data_out(
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

pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

mod fuzz;
mod lifecycle;
mod rx;
mod timers;
mod tx;

/// The reconnect's replay order: the heap sort orders by key exactly as the library's sort
/// does, for every length up to 70 and keys with and without repeats.
#[test]
fn heap_sort_orders_like_sort_unstable() {
    let mut seed = 0x2545_f491_u32;
    for n in 0..70u16 {
        for modulo in [3u64, 1000] {
            let mut v: Vec<u16> = (0..n)
                .map(|_| {
                    // xorshift32: a fixed, repeatable sequence.
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 500) as u16
                })
                .collect();
            let key = |s: u16| u64::from(s) % modulo;
            let mut want = v.clone();
            want.sort_unstable_by_key(|&s| key(s));
            let mut same_items = v.clone();
            // Half pushed at the front: the deque wraps around its buffer, as the engine's
            // queue does after it ran a while.
            let mut deque = alloc::collections::VecDeque::with_capacity(v.len());
            for (i, &s) in v.iter().enumerate() {
                if i % 2 == 0 {
                    deque.push_back(s);
                } else {
                    deque.push_front(s);
                }
            }
            if n >= 2 {
                let (front, back) = deque.as_slices();
                assert!(!front.is_empty() && !back.is_empty(), "n={n}: not wrapped");
            }
            heap_sort_by_key(&mut deque, key);
            v = deque.into_iter().collect();
            let got_keys: Vec<u64> = v.iter().map(|&s| key(s)).collect();
            let want_keys: Vec<u64> = want.iter().map(|&s| key(s)).collect();
            assert_eq!(got_keys, want_keys, "n={n} modulo={modulo}");
            same_items.sort_unstable();
            let mut sorted_got = v.clone();
            sorted_got.sort_unstable();
            assert_eq!(sorted_got, same_items, "a permutation of the input");
        }
    }
}
