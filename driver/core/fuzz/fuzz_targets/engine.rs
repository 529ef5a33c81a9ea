// SPDX-License-Identifier: BSD-2-Clause
//! The full feature phase (`session::Engine`, sans-IO) against a target that sends arbitrary
//! bytes, interleaved with what a platform does: commands submitted, time passing, aborts, LUN
//! resets, connections lost and logged in again, shutdown.
//!
//! Input: a connection's parameters (first bytes), then a sequence of operations, each one
//! selector byte and its arguments from the bytes that follow. Target PDUs are built from the
//! input with a hint or two (a target opcode, an ITT the engine used, sequence numbers near the
//! window, a DataSegmentLength that matches the data) so that deep paths run, but every other
//! byte is the fuzzer's. Some PDUs go to the engine whole, others (AHS and digests included)
//! as a byte stream through the session's receive path (`testing::Receiver`), from a transport
//! that returns the fuzzer's byte counts per read and may opt in to the guessed Data-In read.
//!
//! Checked after every step:
//! - every non-immediate PDU the engine sends has a CmdSN inside the window `[ExpCmdSN,
//!   MaxCmdSN]` the engine knew, and consecutive CmdSNs; immediate ones do not advance CmdSN;
//! - every PDU sent parses, and one `poll_transmit` adds one PDU no longer than the negotiated
//!   segment allows;
//! - every submitted request completes exactly once (never an unknown or repeated tag), with
//!   its buffer at its submitted length and no more bytes transferred than it holds; every LUN
//!   reset is answered exactly once; after `close` nothing is left;
//! - bounded memory: the task table within its capacity, and the live heap (a counting
//!   allocator) within a fixed bound above the request buffers the fuzzer handed in;
//! - the receive path reads every byte of the stream, and only those.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use isboot_core::lun::Lun;
use isboot_core::pdu::{Pdu, RawPdu, TargetSns, BHS_LEN};
use isboot_core::scsi::{cdb, Direction, ScsiRequest};
use isboot_core::session::{Engine, Event, Phase, Timeouts};
use isboot_core::sn::Sn;
use isboot_core::testing::{Receiver, Wire};
use isboot_core::text::{Key, Params};
use isboot_crc32c::Crc32c;
use isboot_executor::Instant;
use libfuzzer_sys::fuzz_target;

#[path = "../common/input.rs"]
mod input;
use input::Input;

/// Live heap bytes, for the memory bound.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's own arguments; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Request slots of the engine.
const SLOTS: usize = 8;
/// Largest request buffer the fuzzer submits.
const MAX_BUF: usize = 96 * 1024;
/// Heap the engine may hold beyond the buffers it was given: its queues, one PDU being built,
/// the events not yet taken.
const HEAP_SLACK: usize = 4 << 20;
const TARGET_OPCODES: [u8; 10] = [0x20, 0x21, 0x22, 0x23, 0x25, 0x26, 0x31, 0x32, 0x3f, 0x3c];

/// What the harness knows besides the engine.
struct Model {
    e: Engine,
    rx: Receiver,
    wire: Wire,
    /// DataSN and buffer offset the next Data-In of an ITT must carry, as far as the streamed
    /// Data-In accepted so far tell: a hint that gets reads to the guessed Data-In read.
    data_in: HashMap<u32, (u32, u32)>,
    now: Instant,
    /// Submitted and not completed: tag -> buffer length.
    open: HashMap<u64, usize>,
    /// LUN resets not answered.
    resets: HashMap<u64, ()>,
    next_tag: u64,
    /// ITTs the engine used on this connection (task ITTs and TTTs to answer).
    itts: Vec<u32>,
    ttts: Vec<u32>,
    /// The next non-immediate CmdSN the engine must use, once one was seen.
    next_cmd_sn: Option<Sn>,
    /// Bytes of request buffers handed in and not given back.
    buffers: usize,
    baseline: usize,
    /// For FUZZ_TRACE: completions with GOOD status, target PDUs accepted, PDUs sent.
    good: u32,
    accepted: u32,
    pdus: u32,
}

fn params_from(inp: &mut Input<'_>) -> Params {
    let dsl = |b: u8| 512u32 << (b % 8);
    let flags = inp.u8();
    let recv = dsl(inp.u8());
    let send = dsl(inp.u8());
    let burst = dsl(inp.u8()).max(send);
    let first = dsl(inp.u8()).min(burst);
    Params::default()
        .with_max_recv_dsl(recv)
        .with(Key::MaxRecvDataSegmentLength, send)
        .with(Key::MaxBurstLength, burst)
        .with(Key::FirstBurstLength, first)
        .with(Key::InitialR2T, u32::from(flags & 1))
        .with(Key::ImmediateData, u32::from(flags >> 1 & 1))
        .with(Key::MaxOutstandingR2T, u32::from(flags >> 2 & 3) + 1)
        .with(Key::HeaderDigest, u32::from(flags >> 4 & 1))
        .with(Key::DataDigest, u32::from(flags >> 5 & 1))
}

fn sns_from(inp: &mut Input<'_>) -> TargetSns {
    let stat = inp.u32();
    let exp = inp.u32();
    let width = u32::from(inp.u8());
    TargetSns {
        stat_sn: Sn(stat),
        exp_cmd_sn: Sn(exp),
        // Mostly an open window, sometimes closed (width 0 -> MaxCmdSN = ExpCmdSN - 1).
        max_cmd_sn: Sn(exp.wrapping_add(width % 40).wrapping_sub(1)),
    }
}

impl Model {
    fn check_heap(&self) {
        let live = LIVE.load(Ordering::Relaxed).saturating_sub(self.baseline);
        assert!(
            live <= self.buffers + HEAP_SLACK,
            "heap {live} bytes with {} bytes of request buffers",
            self.buffers
        );
        assert!(self.e.outstanding() <= self.e.capacity());
    }

    /// Takes every event: completions exactly once, with their buffers intact.
    fn drain_events(&mut self) {
        while let Some(ev) = self.e.poll_event() {
            match ev {
                Event::Complete(c) => {
                    if c.result.as_ref().is_ok_and(|r| r.status == 0) {
                        self.good += 1;
                    }
                    let len = self.open.remove(&c.tag).unwrap_or_else(|| {
                        panic!("tag {} completed twice or never submitted", c.tag)
                    });
                    assert_eq!(c.data.len(), len, "tag {}: buffer length changed", c.tag);
                    if let Ok(r) = &c.result {
                        assert!(r.transferred as usize <= len, "{r:?} for {len} bytes");
                        assert!(r.residual as usize <= len, "{r:?} for {len} bytes");
                    }
                    self.buffers = self.buffers.saturating_sub(len);
                }
                Event::ResetDone { tag, .. } => {
                    assert!(
                        self.resets.remove(&tag).is_some(),
                        "reset {tag} answered twice"
                    );
                }
                Event::ScsiEvent { .. } => {}
            }
        }
    }

    /// Everything the engine sends now, through the path the session uses (a batch laid out
    /// by fill_tx, written as slices of at most IOV pieces at a time, the headers from the
    /// engine and the data straight from the requests' buffers), each PDU of a batch checked
    /// against the window the engine knew when it laid the batch out.
    fn transmit(&mut self) {
        const IOV: usize = 8;
        let digests = self.e.params().digests();
        let max_pdu = BHS_LEN + 1024 + 8 + self.e.params().max_send_dsl() as usize + 3;
        for _ in 0..10_000 {
            let (exp, max, _) = self.e.window();
            if !self.e.fill_tx(self.now) {
                assert!(
                    !self.e.tx_pending(),
                    "fill_tx says nothing to send but a batch waits"
                );
                break;
            }
            let mut batch = Vec::new();
            for writes in 0.. {
                if !self.e.tx_pending() {
                    break;
                }
                assert!(writes < 1_000_000, "a batch that never drains");
                let len = {
                    let mut iov: [&[u8]; IOV] = [&[]; IOV];
                    let n = self
                        .e
                        .tx_slices(&mut iov)
                        .expect("the batch's buffers are there");
                    assert!(n > 0 && n <= IOV, "{n} slices");
                    for piece in &iov[..n] {
                        assert!(!piece.is_empty(), "an empty slice in the batch");
                        batch.extend_from_slice(piece);
                    }
                    iov[..n].iter().map(|p| p.len()).sum::<usize>()
                };
                self.e.tx_sent(len);
            }
            // The batch is whole PDUs, back to back.
            let mut at = 0;
            while at < batch.len() {
                let rest = &batch[at..];
                let (raw, used) = RawPdu::split(rest, digests, u32::MAX).expect("our PDU splits");
                assert!(used > 0 && used <= rest.len());
                assert!(used <= max_pdu, "{used}-byte PDU");
                let parsed = raw.parse().expect("our PDU parses");
                self.pdus += 1;
                self.sent(&parsed, exp, max);
                at += used;
            }
        }
    }

    fn sent(&mut self, p: &Pdu, exp: Sn, max: Sn) {
        let (immediate, cmd_sn) = match p {
            Pdu::ScsiCommand(c) => {
                self.itts.push(c.itt);
                (c.immediate, c.cmd_sn)
            }
            Pdu::NopOut(n) => {
                self.itts.push(n.itt);
                (n.immediate, n.cmd_sn)
            }
            Pdu::TaskMgmtRequest(t) => {
                self.itts.push(t.itt);
                (t.immediate, t.cmd_sn)
            }
            Pdu::LogoutRequest(l) => {
                self.itts.push(l.itt);
                (l.immediate, l.cmd_sn)
            }
            Pdu::DataOut(d) => {
                self.ttts.push(d.ttt);
                return;
            }
            _ => return,
        };
        if self.itts.len() > 64 {
            self.itts.drain(..32);
        }
        if immediate {
            return;
        }
        assert!(
            cmd_sn.is_within(exp, max),
            "CmdSN {cmd_sn:?} outside the window [{exp:?}, {max:?}]: {p:?}"
        );
        if let Some(want) = self.next_cmd_sn {
            assert_eq!(cmd_sn, want, "CmdSNs not consecutive: {p:?}");
        }
        self.next_cmd_sn = Some(cmd_sn.next());
    }

    fn connect(&mut self, inp: &mut Input<'_>) {
        let params = params_from(inp);
        let sns = sns_from(inp);
        self.e
            .connected(params, sns, self.now)
            .expect("memory for the connection's bursts");
        self.itts.clear();
        self.ttts.clear();
        self.next_cmd_sn = None;
    }

    fn lost(&mut self) {
        self.rx.reset();
        self.wire.clear();
        self.data_in.clear();
        self.e.disconnected();
        self.drain_events();
    }

    /// The connection broke: the session logs in again at once (replaying what is held).
    fn relogin(&mut self, inp: &mut Input<'_>) {
        self.lost();
        if self.e.phase() != Phase::Closed {
            self.connect(inp);
        }
    }

    fn submit(&mut self, inp: &mut Input<'_>, dir: u8) {
        let len = usize::from(inp.u16()) * 2 % MAX_BUF;
        let lun = Lun::from_number(u64::from(inp.u8() % 3)).unwrap_or_default();
        let timeout = match inp.u8() % 4 {
            0 => Some(Duration::from_millis(u64::from(inp.u16()))),
            _ => None,
        };
        let tag = self.next_tag;
        self.next_tag += 1;
        let blocks = u32::try_from(len / 512).unwrap_or(0);
        let mut req = match dir % 3 {
            0 => ScsiRequest::read(tag, lun, cdb::rw16(false, 0, blocks), vec![0u8; len]),
            1 => ScsiRequest::write(tag, lun, cdb::rw16(true, 0, blocks), inp.bytes(len)),
            _ => ScsiRequest::new(tag, lun, cdb::inquiry(36)),
        };
        req.timeout = timeout;
        let len = if req.direction == Direction::None {
            0
        } else {
            req.data.len()
        };
        match self.e.submit(req, self.now) {
            Ok(()) => {
                self.open.insert(tag, len);
                self.buffers += len;
            }
            Err(_) => {}
        }
    }

    /// One target PDU from the input, with hints that make it plausible.
    fn receive(&mut self, inp: &mut Input<'_>) -> bool {
        let hints = inp.u8();
        let mut h = inp.bytes(BHS_LEN);
        if hints & 1 != 0 {
            h[0] = TARGET_OPCODES[usize::from(h[0]) % TARGET_OPCODES.len()];
        }
        // No AHS for the engine directly (the receive path hands it BHS and AHS together).
        h[4] = 0;
        let stream = hints & 32 != 0;
        let ahs = if stream && hints & 64 != 0 {
            let words = inp.u8() % 4;
            h[4] = words;
            inp.bytes(usize::from(words) * 4)
        } else {
            Vec::new()
        };
        if hints & 2 != 0 && !self.itts.is_empty() {
            let itt = self.itts[usize::from(h[17]) % self.itts.len()];
            h[16..20].copy_from_slice(&itt.to_be_bytes());
        }
        if hints & 4 != 0 {
            // StatSN as expected, ExpCmdSN/MaxCmdSN near the window.
            let (exp, _, next) = self.e.window();
            let stat = self.e.exp_stat_sn();
            h[24..28].copy_from_slice(&stat.0.to_be_bytes());
            let e2 = exp.0.wrapping_add(u32::from(h[29] % 4));
            h[28..32].copy_from_slice(&e2.to_be_bytes());
            let m = next.0.wrapping_add(u32::from(h[33] % 32));
            h[32..36].copy_from_slice(&m.to_be_bytes());
        }
        if hints & 8 != 0 && !self.ttts.is_empty() {
            let ttt = self.ttts[usize::from(h[21]) % self.ttts.len()];
            h[20..24].copy_from_slice(&ttt.to_be_bytes());
        }
        let len = if hints & 16 != 0 {
            usize::from(inp.u16()) % (self.e.params().max_recv_dsl() as usize + 64)
        } else {
            (u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize) % 70_000
        };
        h[5..8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        let data = inp.bytes(len);
        if stream {
            let itt = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
            let data_in = h[0] & 0x3f == 0x25;
            let (sn, offset) = self.data_in.get(&itt).copied().unwrap_or((0, 0));
            if data_in && hints & 128 != 0 {
                h[36..40].copy_from_slice(&sn.to_be_bytes());
                h[40..44].copy_from_slice(&offset.to_be_bytes());
            }
            let ok = self.stream(inp, &h, &ahs, &data);
            if ok && data_in {
                let sn = u32::from_be_bytes([h[36], h[37], h[38], h[39]]);
                let offset = u32::from_be_bytes([h[40], h[41], h[42], h[43]]);
                let next = (sn.wrapping_add(1), offset.wrapping_add(len as u32));
                self.data_in.insert(itt, next);
            }
            return ok;
        }
        let ok = self.e.receive(self.now, &h, &data).is_ok();
        self.accepted += u32::from(ok);
        ok
    }

    /// The PDU as bytes on the wire (digests as negotiated) through the receive path, read in
    /// pieces the fuzzer chooses; false when the connection must end.
    fn stream(&mut self, inp: &mut Input<'_>, bhs: &[u8], ahs: &[u8], data: &[u8]) -> bool {
        let d = self.e.params().digests();
        let w = &mut self.wire.bytes;
        w.extend_from_slice(bhs);
        w.extend_from_slice(ahs);
        if d.header {
            let crc = Crc32c::new().update(bhs).update(ahs).finish();
            w.extend_from_slice(&crc.to_le_bytes());
        }
        let pad = [0u8; 3];
        let pad = &pad[..(4 - data.len() % 4) % 4];
        w.extend_from_slice(data);
        w.extend_from_slice(pad);
        if d.data && !data.is_empty() {
            let crc = Crc32c::new().update(data).update(pad).finish();
            // Now and then a wrong one: the receive path must refuse it.
            let crc = if inp.u8() == 0xdd { !crc } else { crc };
            w.extend_from_slice(&crc.to_le_bytes());
        }
        let how = inp.u8();
        self.wire.guess = how & 1 == 0;
        self.wire.pieces.clear();
        if how >> 1 & 3 != 0 {
            for _ in 0..4 {
                let p = match how >> 1 & 3 {
                    1 => 1 + usize::from(inp.u8() % 64),
                    _ => 1 + usize::from(inp.u16()),
                };
                self.wire.pieces.push(p);
            }
        }
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100_000 {
            match self.rx.poll(&mut cx, &mut self.wire, &mut self.e, self.now) {
                Poll::Ready(Ok(())) => self.accepted += 1,
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => {
                    assert!(self.wire.drained(), "pending with bytes left");
                    self.wire.clear();
                    return true;
                }
            }
        }
        panic!("the receive path does not settle")
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        match inp.u8() % 12 {
            0 | 1 => {
                let dir = inp.u8();
                self.submit(inp, dir)
            }
            2..=5 => {
                if matches!(self.e.phase(), Phase::Up | Phase::Closing) && !self.receive(inp) {
                    self.relogin(inp);
                }
            }
            6 => {
                self.now = self.now + Duration::from_millis(u64::from(inp.u16()) * 8);
                if self.e.on_timer(self.now).is_err() {
                    self.relogin(inp);
                }
            }
            7 => {
                let tag = match self.open.keys().next() {
                    Some(t) if inp.u8() % 4 != 0 => *t,
                    _ => u64::from(inp.u8()),
                };
                self.e.abort(tag);
            }
            8 => {
                let tag = 1_000_000 + self.next_tag;
                self.next_tag += 1;
                let lun = Lun::from_number(u64::from(inp.u8() % 3)).unwrap_or_default();
                // Refused at once (not connected, or MAX_RESETS in flight): no event follows.
                if self.e.reset_lun(lun, tag).is_ok() {
                    self.resets.insert(tag, ());
                }
            }
            9 => self.relogin(inp),
            10 => {
                if inp.u8() % 8 == 0 {
                    self.e.shutdown(self.now);
                }
            }
            _ => {}
        }
        self.transmit();
        self.drain_events();
        self.check_heap();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let timeouts = Timeouts {
        nop_interval: Duration::from_millis(500 + u64::from(inp.u8()) * 10),
        nop_timeout: Duration::from_millis(1000 + u64::from(inp.u8()) * 10),
        tmf_timeout: Duration::from_millis(1000),
        logout_timeout: Duration::from_millis(2000),
    };
    let baseline = LIVE.load(Ordering::Relaxed);
    let mut m = Model {
        e: Engine::try_new(SLOTS, timeouts).expect("memory for the engine"),
        rx: Receiver::new(),
        wire: Wire::new(true),
        data_in: HashMap::new(),
        now: Instant::from_nanos(1_000_000_000),
        open: HashMap::new(),
        resets: HashMap::new(),
        next_tag: 1,
        itts: Vec::new(),
        ttts: Vec::new(),
        next_cmd_sn: None,
        buffers: 0,
        baseline,
        good: 0,
        accepted: 0,
        pdus: 0,
    };
    m.connect(&mut inp);
    let mut steps = 0;
    while !inp.is_empty() && steps < 2000 {
        m.step(&mut inp);
        steps += 1;
    }
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!(
            "engine: {steps} steps, {} PDUs sent, {} target PDUs accepted, {} good completions, \
             {} guessed reads, phase {:?}",
            m.pdus,
            m.accepted,
            m.good,
            m.wire.reads3,
            m.e.phase()
        );
    }
    // The end: whatever is left completes once, and nothing more.
    m.e.close();
    m.drain_events();
    assert!(
        m.open.is_empty(),
        "never completed: {:?}",
        m.open.keys().collect::<Vec<_>>()
    );
    assert!(m.resets.is_empty(), "resets never answered: {:?}", m.resets);
    assert_eq!(m.e.outstanding(), 0);
});
