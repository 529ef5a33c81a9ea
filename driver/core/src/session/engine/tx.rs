// SPDX-License-Identifier: BSD-2-Clause
//! Sending: [`Engine::poll_transmit`] appends the next PDU, in priority order: control PDUs
//! (pings and their answers, task management, Logout), Data-Out bursts, then new commands as
//! far as the command window admits them.

use alloc::vec::Vec;

use isboot_executor::Instant;

use super::{Burst, Ctl, Engine, Phase};
use crate::lun::Lun;
use crate::pdu::{
    self, DataOut, Digests, Header, LogoutRequest, NopOut, ScsiCommand, TaskMgmtRequest,
    TmfFunction, RESERVED_TAG,
};
use crate::scsi::Direction;
use crate::sn::Sn;

impl Engine {
    /// Appends the next PDU to send (header, data, padding, digests) to `out`. Returns false when
    /// nothing is ready: not connected, nothing queued, or the command window is closed.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !matches!(self.phase, Phase::Up | Phase::Closing) {
            return false;
        }
        if let Some(c) = self.ctl.pop_front() {
            self.emit_ctl(c, now, out);
            return true;
        }
        if self.emit_burst(out) {
            return true;
        }
        if self.phase == Phase::Closing {
            if self.logout.is_none() && self.tasks.is_empty() {
                self.closing_deadline = None;
                self.queue_shutdown_logout(now);
                if let Some(c) = self.ctl.pop_front() {
                    self.emit_ctl(c, now, out);
                    return true;
                }
            }
            return false;
        }
        if self.logout.is_some() {
            // No new commands once a logout is under way.
            return false;
        }
        self.emit_command(out)
    }

    fn emit_ctl(&mut self, c: Ctl, now: Instant, out: &mut Vec<u8>) {
        let d = self.params.digests();
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
                emit(out, &nop, &[], d);
            }
            Ctl::NopReply { ttt, lun, data } => {
                let nop = NopOut {
                    immediate: true,
                    lun,
                    itt: RESERVED_TAG,
                    ttt,
                    cmd_sn: self.window.cmd_sn(),
                    exp_stat_sn: self.window.exp_stat_sn(),
                };
                let max = self.params.max_send_dsl() as usize;
                emit(out, &nop, data.get(..max).unwrap_or(&data), d);
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
                    return;
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
                self.abort_deadlines
                    .push((itt, now.saturating_add(self.timeouts.tmf_timeout)));
                emit(out, &tmf, &[], d);
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
                emit(out, &tmf, &[], d);
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
                emit(out, &req, &[], d);
            }
        }
    }

    fn emit_burst(&mut self, out: &mut Vec<u8>) -> bool {
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
            let range = b.offset as usize..next as usize;
            // offset < next <= end <= edtl, the length of a write's buffer.
            let data = t.req.data.get(range);
            debug_assert!(data.is_some(), "internal error: burst outside its buffer");
            let data = data.unwrap_or_default();
            emit(out, &hdr, data, self.params.digests());
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

    fn emit_command(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(&slot) = self.cmd_queue.front() else {
            return false;
        };
        if !self.window.admits() {
            // Window closed: the command waits for a PDU that opens it.
            return false;
        }
        self.cmd_queue.pop_front();
        let itt = self.tasks.itt(slot);
        let p = self.params;
        let cmd_sn = self.window.cmd_sn();
        let Some(t) = self.tasks.get_mut(slot) else {
            return false;
        };
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
        t.cmd_sn = Some(cmd_sn);
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
            exp_stat_sn: self.window.exp_stat_sn(),
            cdb: t.req.cdb,
            bidi_read_len: None,
        };
        // immediate <= FirstBurstLength and <= edtl, the length of a write's buffer.
        let data = t.req.data.get(..immediate as usize);
        debug_assert!(
            data.is_some(),
            "internal error: immediate data outside its buffer"
        );
        let data = data.unwrap_or_default();
        emit(out, &cmd, data, p.digests());
        self.window.take_cmd_sn();
        self.stats.commands = self.stats.commands.saturating_add(1);
        self.stats.bytes_out = self.stats.bytes_out.wrapping_add(u64::from(immediate));
        if unsolicited_end > immediate {
            self.bursts.push_back(Burst {
                slot,
                itt,
                ttt: RESERVED_TAG,
                offset: immediate,
                end: unsolicited_end,
                data_sn: Sn(0),
                solicited: false,
            });
        }
        true
    }
}

/// Appends one PDU to `out`. The encoder only fails on a data segment above 2^24-1 bytes, which
/// every caller bounds by the negotiated MaxRecvDataSegmentLength (at most 2^24-1) first.
fn emit(out: &mut Vec<u8>, h: &dyn Header, data: &[u8], d: Digests) {
    let start = out.len();
    let hl = h.header_wire_len(d.header);
    out.resize(start.saturating_add(hl), 0);
    let ok = match out.get_mut(start..) {
        Some(buf) => h.emit(data.len(), d.header, buf).is_ok(),
        None => false,
    };
    if !ok {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(data);
    let at = out.len();
    out.resize(
        at.saturating_add(pdu::data_trailer_len(data.len(), d.data)),
        0,
    );
    if let Some(buf) = out.get_mut(at..) {
        let _ = pdu::emit_data_trailer(data, d.data, buf);
    }
}
