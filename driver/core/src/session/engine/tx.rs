// SPDX-License-Identifier: BSD-2-Clause
//! Sending: [`Engine::fill_tx`] lays out the next PDUs, in priority order: control PDUs (pings
//! and their answers, task management, Logout), Data-Out bursts, then new commands as far as the
//! command window admits them. Headers are written into the batch's own arena, data is named by
//! reference (see `batch.rs`) and handed to the transport by [`Engine::tx_slices`].

use isboot_crc32c::Crc32c;
use isboot_executor::Instant;

use super::batch::{Seg, MAX_PDUS};
use super::{Burst, Ctl, Echo, Engine, Event, Phase};
use crate::lun::Lun;
use crate::pdu::{
    self, DataOut, Digests, Header, LogoutRequest, NopOut, ScsiCommand, TaskMgmtRequest,
    TmfFunction, DIGEST_LEN, MAX_DATA_SEGMENT_LEN, RESERVED_TAG,
};
use crate::scsi::{DataBuf, Direction};
use crate::sn::Sn;

/// Commands at the target from which new ones are held back for a batch (see
/// [`Engine::holds_commands`]): above any queue depth whose every command matters to latency.
pub(super) const HOLD_AT: usize = 16;
/// New commands held back at most: sent together, one segment's work for both ends.
pub(super) const HOLD_BATCH: usize = 8;

/// A PDU's data segment, as the batch will refer to it.
enum Payload<'a, B> {
    None,
    /// `len` bytes of `buf` (the request named by `itt`) from `offset`.
    Task {
        itt: u32,
        buf: &'a B,
        offset: u32,
        len: u32,
    },
    /// The first `len` bytes of the echo buffer.
    Echo(&'a [u8]),
}

impl<B: DataBuf> Payload<'_, B> {
    fn len(&self) -> usize {
        match self {
            Payload::None => 0,
            Payload::Task { len, .. } => *len as usize,
            Payload::Echo(d) => d.len(),
        }
    }

    /// The data digest's CRC over the segment (padding not included).
    fn crc(&self) -> Crc32c {
        match *self {
            Payload::None => Crc32c::new(),
            Payload::Echo(d) => Crc32c::new().update(d),
            Payload::Task {
                buf, offset, len, ..
            } => {
                let mut crc = Crc32c::new();
                let mut at = offset as usize;
                let end = at.saturating_add(len as usize);
                while at < end {
                    let c = buf.chunk(at);
                    let n = c.len().min(end.saturating_sub(at));
                    let Some(piece) = c.get(..n).filter(|p| !p.is_empty()) else {
                        break;
                    };
                    crc = crc.update(piece);
                    at = at.saturating_add(n);
                }
                crc
            }
        }
    }
}

/// What became of the control PDU at the front of the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CtlOutcome {
    /// Laid out in the batch.
    Laid,
    /// Dropped: it had nothing left to do (an abort of a task that completed meanwhile).
    Skipped,
    /// Left queued: the batch is full.
    NoRoom,
}

/// Own bytes a PDU with header `h` needs in the batch: header (and header digest), padding and
/// data digest.
fn own_len(h: &dyn Header, d: Digests) -> usize {
    h.header_wire_len(d.header)
        .saturating_add(3)
        .saturating_add(DIGEST_LEN)
}

impl<B: DataBuf> Engine<B> {
    /// Lays out the next PDUs to send once the previous batch is all sent. Returns whether
    /// anything is waiting to be sent: false when not connected, nothing is queued, or the
    /// command window is closed.
    pub fn fill_tx(&mut self, now: Instant) -> bool {
        self.fill(now, MAX_PDUS)
    }

    fn fill(&mut self, now: Instant, max_pdus: usize) -> bool {
        if !self.tx.is_empty() {
            return true;
        }
        self.tx_discard();
        for _ in 0..max_pdus {
            if !self.next_pdu(now) {
                break;
            }
        }
        !self.tx.is_empty()
    }

    /// Pieces of the batch left to send: at least as many slices as
    /// [`Engine::tx_slices`] makes of them (a request's buffer may give more than one).
    pub fn tx_pieces(&self) -> usize {
        self.tx.unsent().1.len()
    }

    /// The unsent rest of the batch as slices for one vectored write, at most `out.len()` of
    /// them; returns how many. `None` if a request whose data the batch names has gone, which
    /// the engine never lets happen (an internal error: drop the connection).
    pub fn tx_slices<'a>(&'a self, out: &mut [&'a [u8]]) -> Option<usize> {
        let (mut off, segs) = self.tx.unsent();
        let mut n = 0;
        for seg in segs {
            if n >= out.len() {
                break;
            }
            match *seg {
                Seg::Own { start, end } => {
                    let s = self.tx.own(start, end).get(off..).unwrap_or_default();
                    *out.get_mut(n)? = s;
                    n = n.saturating_add(1);
                }
                Seg::Echo { len } => {
                    let s = self.echo.get(off..len as usize)?;
                    *out.get_mut(n)? = s;
                    n = n.saturating_add(1);
                }
                Seg::Data { itt, offset, len } => {
                    let buf = self.tx_buffer(itt)?;
                    let mut at = (offset as usize).saturating_add(off);
                    let end = (offset as usize).saturating_add(len as usize);
                    while at < end && n < out.len() {
                        let c = buf.chunk(at);
                        let take = c.len().min(end.saturating_sub(at));
                        let piece = c.get(..take).filter(|p| !p.is_empty())?;
                        *out.get_mut(n)? = piece;
                        n = n.saturating_add(1);
                        at = at.saturating_add(take);
                    }
                }
            }
            off = 0;
        }
        Some(n)
    }

    /// The buffer of the request named by `itt`: in the table, or completed and held back.
    fn tx_buffer(&self, itt: u32) -> Option<&B> {
        match self.tasks.lookup(itt).and_then(|s| self.tasks.get(s)) {
            Some(t) => Some(&t.req.data),
            None => self
                .parked
                .iter()
                .find(|(i, _)| *i == itt)
                .map(|(_, c)| &c.data),
        }
    }

    /// Whether part of the laid-out batch is still to be sent.
    pub fn tx_pending(&self) -> bool {
        !self.tx.is_empty()
    }

    /// The transport took `n` bytes of what [`Engine::tx_slices`] gave.
    pub fn tx_sent(&mut self, n: usize) {
        if self.tx.advance(n) {
            self.tx_discard();
        }
    }

    /// The header of every PDU of the current batch (each slice starts at its BHS), for a
    /// trace of what is sent.
    pub fn tx_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.tx.headers()
    }

    /// Empties the batch (all sent, or the connection is gone): the echo buffer is free again
    /// and the completions held back go to the platform.
    pub(super) fn tx_discard(&mut self) {
        self.tx.clear();
        if self.echo_state == Echo::Sending {
            self.echo_state = Echo::Free;
        }
        while let Some((_, c)) = self.parked.pop() {
            self.push_event(Event::Complete(c));
        }
    }

    /// Appends the next PDU to `out`, copying it whole: for tests, which read what is sent as
    /// a transcript. Returns false when nothing is ready.
    #[cfg(any(test, feature = "testing"))]
    #[cfg_attr(
        not(test),
        expect(
            clippy::disallowed_methods,
            reason = "a test transcript grows as it must"
        )
    )]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut alloc::vec::Vec<u8>) -> bool {
        if !self.fill(now, 1) {
            return false;
        }
        loop {
            let mut slices: [&[u8]; 8] = [&[]; 8];
            let Some(n) = self.tx_slices(&mut slices) else {
                return false;
            };
            let total: usize = slices.iter().take(n).map(|s| s.len()).sum();
            for s in slices.iter().take(n) {
                out.extend_from_slice(s);
            }
            if self.tx.advance(total) {
                self.tx_discard();
                return true;
            }
            if total == 0 {
                return true;
            }
        }
    }

    /// Lays out one more PDU. False when none is ready or the batch has no room for it.
    fn next_pdu(&mut self, now: Instant) -> bool {
        if !matches!(self.phase, Phase::Up | Phase::Closing) {
            return false;
        }
        while !self.ctl.is_empty() {
            match self.emit_ctl(now) {
                CtlOutcome::Laid => return true,
                CtlOutcome::Skipped => {}
                CtlOutcome::NoRoom => return false,
            }
        }
        if self.emit_burst() {
            return true;
        }
        if self.phase == Phase::Closing {
            if self.logout.is_none() && self.tasks.is_empty() {
                self.closing_deadline = None;
                self.queue_shutdown_logout(now);
                if !self.ctl.is_empty() {
                    return self.emit_ctl(now) == CtlOutcome::Laid;
                }
            }
            return false;
        }
        if self.logout.is_some() {
            // No new commands once a logout is under way.
            return false;
        }
        self.emit_command()
    }

    /// Whether new commands wait for more of their kind before a batch of their own: while
    /// [`HOLD_AT`] or more are at the target it has work queued for a while, and
    /// [`HOLD_BATCH`] commands in one segment cost both ends one segment's work instead of
    /// that many (4 KiB reads at queue depth 32 on loopback: one command per segment was a
    /// third of the initiator's CPU). It cannot stall: the answers to the commands at the
    /// target bring the count below [`HOLD_AT`], and the held ones go then, so shallow queues
    /// send at once; anything else laid out in the batch takes them along.
    fn holds_commands(&self) -> bool {
        let queued = self.cmd_queue.len();
        self.tasks.len() >= HOLD_AT.saturating_add(queued) && queued < HOLD_BATCH
    }

    /// Lays out the control PDU at the front of the queue if the batch has room for it.
    #[cfg_attr(isboot_kernel, optimize(size))]
    fn emit_ctl(&mut self, now: Instant) -> CtlOutcome {
        let d = self.params.digests();
        let echo_len = match self.ctl.front() {
            Some(Ctl::NopReply { echo: true, .. }) => self.echo.len(),
            Some(_) => 0,
            None => return CtlOutcome::Skipped,
        };
        // Control headers carry no AHS.
        let own = pdu::BHS_LEN
            .saturating_add(2 * DIGEST_LEN)
            .saturating_add(3);
        if !self.tx.has_room(own, echo_len) {
            return CtlOutcome::NoRoom;
        }
        let Some(c) = self.ctl.pop_front() else {
            return CtlOutcome::Skipped;
        };
        match c {
            Ctl::Ping { itt } => {
                let nop = NopOut {
                    immediate: true,
                    lun: Lun::default(),
                    itt,
                    ttt: RESERVED_TAG,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                };
                self.lay_out(&nop, Payload::None, d);
            }
            Ctl::NopReply { ttt, lun, echo } => {
                let nop = NopOut {
                    immediate: true,
                    lun,
                    itt: RESERVED_TAG,
                    ttt,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                };
                if echo {
                    self.echo_state = Echo::Sending;
                    let data = core::mem::take(&mut self.echo);
                    self.lay_out(&nop, Payload::Echo(&data), d);
                    self.echo = data;
                } else {
                    self.lay_out(&nop, Payload::None, d);
                }
            }
            Ctl::AbortTask { slot, itt, task } => {
                // The task may have completed since the abort was decided (its response crossed
                // the abort), and its slot may already hold the next request: abort nothing then.
                let current = self
                    .tasks
                    .lookup(task)
                    .filter(|&s| s == slot)
                    .and_then(|s| self.tasks.get(s));
                let Some(t) = current else {
                    return CtlOutcome::Skipped;
                };
                let (lun, ref_itt, ref_cmd_sn) =
                    (t.req.lun, task, t.cmd_sn.unwrap_or(self.window.cmd_sn()));
                let tmf = TaskMgmtRequest {
                    immediate: true,
                    function: TmfFunction::AbortTask,
                    lun,
                    itt,
                    referenced_task_tag: ref_itt,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                    ref_cmd_sn,
                    exp_data_sn: Sn(0),
                };
                if let Some(t) = self.tasks.get_mut(slot) {
                    // The abort's own deadline: without an answer the connection goes.
                    t.deadline = None;
                }
                self.abort_deadlines.retain(|(i, _)| *i != itt);
                // A place per slot, but an abort whose command completed across it keeps its
                // entry until the target answers it (or its deadline drops the connection),
                // while the slot serves the next command: with the list full, the target has
                // left more aborts unanswered than the session holds commands. Its oldest
                // deadline falls due now, so the connection goes at the next timer look and
                // the commands are sent again on the next one, rather than this abort going
                // without a deadline (found by the engine fuzz target).
                let due = now.saturating_add(self.timeouts.tmf_timeout);
                if crate::mem::push(&mut self.abort_deadlines, (itt, due)).is_err() {
                    if let Some(oldest) = self.abort_deadlines.first_mut() {
                        oldest.1 = now;
                    }
                }
                self.lay_out(&tmf, Payload::None, d);
            }
            Ctl::LunReset { itt, lun } => {
                if let Some(r) = self.resets.iter_mut().find(|r| r.itt == itt) {
                    r.deadline = Some(now.saturating_add(self.timeouts.tmf_timeout));
                }
                let tmf = TaskMgmtRequest {
                    immediate: true,
                    function: TmfFunction::LogicalUnitReset,
                    lun,
                    itt,
                    referenced_task_tag: RESERVED_TAG,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                    ref_cmd_sn: Sn(0),
                    exp_data_sn: Sn(0),
                };
                self.lay_out(&tmf, Payload::None, d);
            }
            Ctl::Logout { itt, reason } => {
                let req = LogoutRequest {
                    immediate: true,
                    reason,
                    itt,
                    cid: 0,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                };
                self.lay_out(&req, Payload::None, d);
            }
        }
        CtlOutcome::Laid
    }

    fn emit_burst(&mut self) -> bool {
        let d = self.params.digests();
        while let Some(b) = self.bursts.front().copied() {
            let Some(t) = self.tasks.get(b.slot) else {
                self.bursts.pop_front();
                continue;
            };
            if self.tasks.itt(b.slot) != b.itt || b.offset >= b.end {
                self.bursts.pop_front();
                continue;
            }
            let max = self.params.max_send_dsl().max(512);
            let len = b.end.saturating_sub(b.offset).min(max);
            let next = b.offset.saturating_add(len);
            let last = next == b.end;
            let hdr = DataOut {
                final_bit: last,
                lun: t.req.lun,
                itt: b.itt,
                ttt: b.ttt,
                exp_stat_sn: self.window.exp_stat_sn(),
                data_sn: b.data_sn,
                buffer_offset: b.offset,
            };
            if !self.tx.has_room(own_len(&hdr, d), len as usize) {
                return false;
            }
            // offset < next <= end <= edtl, the length of a write's buffer.
            let data = Payload::Task {
                itt: b.itt,
                buf: &t.req.data,
                offset: b.offset,
                len,
            };
            if !lay_out(&mut self.tx, &hdr, data, d) {
                return false;
            }
            self.stats.bytes_out = self.stats.bytes_out.wrapping_add(u64::from(len));
            if last {
                self.bursts.pop_front();
                if b.solicited {
                    if let Some(t) = self.tasks.get_mut(b.slot) {
                        t.r2t_outstanding = t.r2t_outstanding.saturating_sub(1);
                    }
                }
            } else if let Some(f) = self.bursts.front_mut() {
                f.offset = next;
                f.data_sn = f.data_sn.next();
            }
            return true;
        }
        false
    }

    fn emit_command(&mut self) -> bool {
        let Some(&slot) = self.cmd_queue.front() else {
            return false;
        };
        if self.tx.is_empty() && self.holds_commands() {
            return false;
        }
        if !self.window.admits() {
            // Window closed: the command waits for a PDU that opens it.
            return false;
        }
        let itt = self.tasks.itt(slot);
        let p = self.params;
        let cmd_sn = self.window.cmd_sn();
        let exp_stat_sn = self.window.exp_stat_sn();
        let Some(t) = self.tasks.get_mut(slot) else {
            self.cmd_queue.pop_front();
            return false;
        };
        // The CDB is lent to the PDU for the layout and given back below: the task keeps it
        // for a resend after a reconnect, and a copy of a long CDB would allocate.
        let cdb = core::mem::take(&mut t.req.cdb);
        let write = t.req.direction == Direction::Out;
        let (immediate, unsolicited_end) = if write {
            let first = p.first_burst().min(t.edtl);
            let imm = if p.immediate_data() {
                first.min(p.max_send_dsl())
            } else {
                0
            };
            let end = if p.initial_r2t() { imm } else { first };
            (imm, end)
        } else {
            (0, 0)
        };
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: unsolicited_end == immediate,
            read: t.req.direction == Direction::In,
            write,
            attr: t.req.attr,
            lun: t.req.lun,
            itt,
            expected_data_len: t.edtl,
            cmd_sn,
            exp_stat_sn,
            cdb,
            bidi_read_len: None,
        };
        let laid = self
            .tx
            .has_room(own_len(&cmd, p.digests()), immediate as usize)
            && self.tasks.get(slot).is_some_and(|t| {
                // immediate <= FirstBurstLength and <= edtl, the length of a write's buffer.
                let data = Payload::Task {
                    itt,
                    buf: &t.req.data,
                    offset: 0,
                    len: immediate,
                };
                lay_out(&mut self.tx, &cmd, data, p.digests())
            });
        if let Some(t) = self.tasks.get_mut(slot) {
            t.req.cdb = cmd.cdb;
        }
        if !laid {
            return false;
        }
        self.cmd_queue.pop_front();
        if let Some(t) = self.tasks.get_mut(slot) {
            t.cmd_sn = Some(cmd_sn);
            if t.awaits_data() {
                self.reading = self.reading.saturating_add(1);
            }
        }
        self.window.take_cmd_sn();
        self.stats.commands = self.stats.commands.saturating_add(1);
        self.stats.bytes_out = self.stats.bytes_out.wrapping_add(u64::from(immediate));
        if unsolicited_end > immediate {
            // At most one unsolicited sequence per task: the bursts have room for it.
            let burst = Burst {
                slot,
                itt,
                ttt: RESERVED_TAG,
                offset: immediate,
                end: unsolicited_end,
                data_sn: Sn(0),
                solicited: false,
            };
            if crate::mem::push_back(&mut self.bursts, burst).is_err() {
                debug_assert!(false, "internal error: bursts full");
            }
        }
        true
    }

    /// Lays out a PDU without request data (the echo buffer is the engine's own).
    fn lay_out(&mut self, h: &dyn Header, data: Payload<'_, B>, d: Digests) {
        if !lay_out(&mut self.tx, h, data, d) {
            debug_assert!(false, "internal error: a control PDU did not fit its room");
        }
    }
}

/// Lays out one PDU: header and header digest into the arena, the data by reference, padding
/// and data digest into the arena. False (and nothing laid out) if it does not fit.
fn lay_out<B: DataBuf>(
    tx: &mut super::batch::TxBatch,
    h: &dyn Header,
    data: Payload<'_, B>,
    d: Digests,
) -> bool {
    let len = data.len();
    if len > MAX_DATA_SEGMENT_LEN as usize {
        return false;
    }
    let mark = tx.mark();
    let hl = h.header_wire_len(d.header);
    let ok = match tx.header(hl) {
        Some(buf) => h.emit(len, d.header, buf).is_ok(),
        None => false,
    };
    if !ok {
        tx.truncate(mark);
        return false;
    }
    match data {
        Payload::None => {}
        Payload::Task {
            itt, offset, len, ..
        } => tx.data(Seg::Data { itt, offset, len }),
        // The echo buffer holds at most a data segment's length (24 bits).
        Payload::Echo(e) => tx.data(Seg::Echo {
            len: e.len() as u32,
        }),
    }
    let mut trailer = [0u8; 3 + DIGEST_LEN];
    let pad = pdu::pad_len(len);
    let mut n = pad;
    if d.data && len > 0 {
        let zeros = [0u8; 3];
        let crc = data
            .crc()
            .update(zeros.get(..pad).unwrap_or_default())
            .finish();
        if let Some(dst) = trailer.get_mut(pad..pad.saturating_add(DIGEST_LEN)) {
            dst.copy_from_slice(&crc.to_le_bytes());
        }
        n = n.saturating_add(DIGEST_LEN);
    }
    if !tx.own_bytes(trailer.get(..n).unwrap_or_default()) {
        tx.truncate(mark);
        return false;
    }
    true
}
