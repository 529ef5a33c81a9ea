// SPDX-License-Identifier: BSD-2-Clause
//! Receiving: [`Engine::rx_header`] checks a header and says where its data segment goes,
//! [`Engine::rx_finish`] does the window and StatSN bookkeeping and dispatches to one handler
//! per target opcode (as `iscsi_receive_callback` in FreeBSD's iscsi.c). Every field the
//! target sends is checked before it is used.

use core::ops::Range;

use isboot_executor::Instant;

use super::error::time2wait;
use super::{
    Abort, Burst, Ctl, Disconnect, Echo, Engine, Event, LogoutOutcome, Phase, Violation,
    MAX_NOP_REPLIES,
};
use crate::mem;
use crate::pdu::{
    self, parse_response_data, AsyncEvent, AsyncMessage, DataIn, Header, LogoutReason,
    LogoutResponse, LogoutResponseCode, NopIn, Pdu, R2t, Reject, RejectReason, Residual,
    ScsiResponse, TaskMgmtResponse, TmfResponse, RESERVED_TAG,
};
use crate::port::TmfError;
use crate::scsi::{DataBuf, Direction, Sense, TransportError};
use crate::session::table::NON_TASK_ITT;
use crate::sn::Sn;

/// [`Engine::rx_task_buf`] found no buffer (see there).
pub(crate) const TASK_GONE: &str = "the task of a Data-In left the table before its data was read";

/// Where a received PDU's data segment goes. `Copy` (the range as two fields, not a `Range`):
/// the receive path keeps it in its stage and copies the stage out at every step of a PDU,
/// where a derived `Clone` cost ~70 instructions per 4 KiB read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxSink {
    /// Into the reader's scratch buffer (at most our MaxRecvDataSegmentLength).
    Scratch,
    /// Straight into a task's buffer: `slot` and the bytes `start..end` of it
    /// ([`Engine::rx_task_chunk`]).
    Task { slot: u16, start: usize, end: usize },
}

impl<B: DataBuf> Engine<B> {
    /// Checks a received header (BHS + AHS, digest already verified) and says where its data
    /// segment goes. `now` restarts the keepalive clock.
    pub fn rx_header(&mut self, now: Instant, header: &[u8]) -> Result<RxSink, Disconnect> {
        self.keepalive.on_rx(now);
        let info = pdu::HeaderInfo::parse(header).map_err(Violation::Pdu)?;
        info.check_data_len(self.params.max_recv_dsl())
            .map_err(Violation::Pdu)?;
        let pdu = Pdu::parse(header).map_err(Violation::Pdu)?;
        let len = info.data_len;
        let sink = match &pdu {
            Pdu::DataIn(d) => self.check_data_in(d, len)?,
            _ => RxSink::Scratch,
        };
        self.rx = Some((pdu, len));
        Ok(sink)
    }

    /// Where the next bytes of an [`RxSink::Task`] go: the contiguous piece of the task's buffer
    /// from `at` (inside `range`) to the end of that piece or of `range`, whichever comes first.
    /// `None` only if the task left the table between [`Engine::rx_header`] and the end of its
    /// data segment, or its buffer is shorter than it said, neither of which the engine lets
    /// happen: the caller reports that as an internal error.
    pub fn rx_task_chunk(
        &mut self,
        slot: u16,
        range: Range<usize>,
        at: usize,
    ) -> Option<&mut [u8]> {
        if at < range.start || at >= range.end {
            return None;
        }
        let chunk = self.tasks.get_mut(slot)?.req.data.chunk_mut(at);
        let n = chunk.len().min(range.end.saturating_sub(at));
        chunk.get_mut(..n).filter(|c| !c.is_empty())
    }

    /// The read a receive path may guess the next Data-In for: `Some((slot, at, left))` when
    /// the session holds exactly one command and it is a read sent on this connection still
    /// waiting for data, `at` being the offset its next Data-In must start at and `left` the
    /// bytes it still expects. Then any PDU that comes is that command's or a control PDU,
    /// never another request's data. `hint` is the slot to look at first (the last Data-In's).
    pub fn rx_guess(&self, hint: u16) -> Option<(u16, usize, usize)> {
        if self.tasks.len() != 1 || self.reading != 1 {
            return None;
        }
        let slot = match self.tasks.get(hint) {
            Some(t) if t.awaits_data() => hint,
            _ => self.tasks.iter().find(|(_, t)| t.awaits_data())?.0,
        };
        let t = self.tasks.get(slot)?;
        // received < edtl <= the buffer's length, which fits usize.
        Some((
            slot,
            t.received as usize,
            t.edtl.saturating_sub(t.received) as usize,
        ))
    }

    /// Finishes the PDU begun by [`Engine::rx_header`]; `data` is the data segment when it went
    /// to scratch (empty for [`RxSink::Task`]).
    pub fn rx_finish(&mut self, now: Instant, data: &[u8]) -> Result<(), Disconnect> {
        let Some((pdu, len)) = self.rx.take() else {
            return Err(Disconnect::internal("rx_finish without an accepted header"));
        };
        // The window and StatSN bookkeeping of every target PDU, before its own handling.
        self.window.on_target_pdu(&pdu);
        match pdu {
            Pdu::DataIn(d) => self.on_data_in(&d, len),
            Pdu::ScsiResponse(r) => self.on_response(&r, data),
            Pdu::R2t(r) => self.on_r2t(&r, data),
            Pdu::NopIn(n) => self.on_nop_in(&n, data),
            Pdu::TaskMgmtResponse(r) => self.on_tmf_response(&r, data),
            Pdu::AsyncMessage(a) => self.on_async(&a, data, now),
            Pdu::Reject(r) => self.on_reject(&r, data),
            Pdu::LogoutResponse(r) => self.on_logout_response(&r, data),
            other => Err(Violation::UnexpectedOpcode(other.opcode()).into()),
        }
    }

    /// A whole received PDU (header and data segment in memory): [`Engine::rx_header`], the
    /// copy, [`Engine::rx_finish`].
    pub fn receive(&mut self, now: Instant, header: &[u8], data: &[u8]) -> Result<(), Disconnect> {
        match self.rx_header(now, header)? {
            RxSink::Scratch => self.rx_finish(now, data),
            RxSink::Task { slot, start, end } => {
                let Some(t) = self.tasks.get_mut(slot) else {
                    return Err(Disconnect::internal(TASK_GONE));
                };
                let src = data.get(..(start..end).len()).unwrap_or(data);
                crate::scsi::copy_into(&mut t.req.data, start, src);
                self.rx_finish(now, &[])
            }
        }
    }

    fn task_for(&self, opcode: pdu::Opcode, itt: u32) -> Result<u16, Violation> {
        self.tasks
            .lookup(itt)
            .filter(|&s| self.tasks.get(s).is_some_and(|t| t.cmd_sn.is_some()))
            .ok_or(Violation::UnknownItt { opcode, itt })
    }

    fn check_data_in(&mut self, d: &DataIn, len: u32) -> Result<RxSink, Disconnect> {
        let slot = self.task_for(pdu::Opcode::DataIn, d.itt)?;
        let Some(t) = self.tasks.get(slot) else {
            return Err(Violation::UnknownItt {
                opcode: pdu::Opcode::DataIn,
                itt: d.itt,
            }
            .into());
        };
        if t.req.direction != Direction::In && len > 0 {
            return Err(Violation::WrongDirection { itt: d.itt }.into());
        }
        if d.data_sn != t.exp_data_sn {
            return Err(Violation::DataSn {
                itt: d.itt,
                got: d.data_sn,
                expected: t.exp_data_sn,
            }
            .into());
        }
        if d.buffer_offset != t.received {
            return Err(Violation::DataInOffset {
                itt: d.itt,
                offset: d.buffer_offset,
                expected: t.received,
            }
            .into());
        }
        let end = u64::from(d.buffer_offset).saturating_add(u64::from(len));
        if end > u64::from(t.edtl) {
            return Err(Violation::DataInOverrun {
                itt: d.itt,
                end,
                len: t.edtl,
            }
            .into());
        }
        // end <= edtl <= data.len(), which fits usize.
        let start = d.buffer_offset as usize;
        Ok(RxSink::Task {
            slot,
            start,
            end: end as usize,
        })
    }

    fn on_data_in(&mut self, d: &DataIn, len: u32) -> Result<(), Disconnect> {
        // rx_header validated ITT, DataSN, offset and length against the buffer.
        let slot = self.task_for(pdu::Opcode::DataIn, d.itt)?;
        if let Some(t) = self.tasks.get_mut(slot) {
            let was = t.awaits_data();
            t.received = t.received.saturating_add(len);
            t.exp_data_sn = t.exp_data_sn.next();
            if was && !t.awaits_data() {
                self.reading = self.reading.saturating_sub(1);
            }
            self.stats.bytes_in = self.stats.bytes_in.wrapping_add(u64::from(len));
        }
        if let Some(status) = d.status {
            self.complete_ok(slot, status, &[], d.residual);
        }
        Ok(())
    }

    fn on_response(&mut self, r: &ScsiResponse, data: &[u8]) -> Result<(), Disconnect> {
        let slot = self.task_for(pdu::Opcode::ScsiResponse, r.itt)?;
        if r.response != 0 {
            self.complete_err(slot, TransportError::TargetFailure(r.response));
            return Ok(());
        }
        let rd = parse_response_data(data).map_err(Violation::Sense)?;
        if let Some(t) = self.tasks.get(slot) {
            if t.req.direction == Direction::In && r.status == crate::scsi::status::GOOD {
                let missing = t.edtl.saturating_sub(t.received);
                let under = match r.residual {
                    Residual::Underflow(n) => n,
                    _ => 0,
                };
                if missing > 0 && under == 0 {
                    return Err(Violation::MissingData {
                        itt: r.itt,
                        received: t.received,
                        expected: t.edtl,
                    }
                    .into());
                }
            }
        }
        self.complete_ok(slot, r.status, rd.sense, r.residual);
        Ok(())
    }

    fn on_r2t(&mut self, r: &R2t, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::R2t, data)?;
        let slot = self.task_for(pdu::Opcode::R2t, r.itt)?;
        let max_r2t = self.params.max_outstanding_r2t();
        let max_burst = self.params.max_burst();
        let Some(t) = self.tasks.get_mut(slot) else {
            return Err(Violation::UnknownItt {
                opcode: pdu::Opcode::R2t,
                itt: r.itt,
            }
            .into());
        };
        if t.req.direction != Direction::Out {
            return Err(Violation::WrongDirection { itt: r.itt }.into());
        }
        if r.r2t_sn != t.exp_r2t_sn {
            return Err(Violation::R2tSn {
                itt: r.itt,
                got: r.r2t_sn,
                expected: t.exp_r2t_sn,
            }
            .into());
        }
        let end = u64::from(r.buffer_offset).saturating_add(u64::from(r.desired_len));
        if r.desired_len == 0 || end > u64::from(t.edtl) || r.desired_len > max_burst {
            return Err(Violation::R2tRange {
                itt: r.itt,
                offset: r.buffer_offset,
                len: r.desired_len,
                edtl: t.edtl,
            }
            .into());
        }
        if t.r2t_outstanding >= max_r2t {
            return Err(Violation::TooManyR2t {
                itt: r.itt,
                max: max_r2t,
            }
            .into());
        }
        t.exp_r2t_sn = t.exp_r2t_sn.next();
        t.r2t_outstanding = t.r2t_outstanding.saturating_add(1);
        if matches!(t.abort, Abort::None) {
            let burst = Burst {
                slot,
                itt: r.itt,
                ttt: r.ttt,
                offset: r.buffer_offset,
                // end <= edtl, a u32.
                end: end as u32,
                data_sn: Sn(0),
                solicited: true,
            };
            // At most MaxOutstandingR2T answers per task (checked above) and one unsolicited
            // sequence: `connected` made room for that many per slot.
            if mem::push_back(&mut self.bursts, burst).is_err() {
                return Err(Disconnect::internal("bursts beyond their room"));
            }
        }
        Ok(())
    }

    fn on_nop_in(&mut self, n: &NopIn, data: &[u8]) -> Result<(), Disconnect> {
        if n.itt != RESERVED_TAG {
            // Our ping's answer: it must not also be a ping.
            if n.ttt != RESERVED_TAG {
                return Err(Violation::UnexpectedOpcode(pdu::Opcode::NopIn).into());
            }
            if n.itt & NON_TASK_ITT == 0 {
                return Err(Violation::UnknownResponse {
                    opcode: pdu::Opcode::NopIn,
                    itt: n.itt,
                }
                .into());
            }
            self.keepalive.answered(n.itt);
            return Ok(());
        }
        if n.is_ping() {
            let queued = self
                .ctl
                .iter()
                .filter(|c| matches!(c, Ctl::NopReply { .. }))
                .count();
            // A flood of pings is answered only up to the bound; data is echoed from the one echo
            // buffer, so a ping with data while it is busy is not answered either (the target
            // pings again or drops the connection, which recovery handles).
            if queued < MAX_NOP_REPLIES && (data.is_empty() || self.take_echo(data)) {
                let reply = Ctl::NopReply {
                    ttt: n.ttt,
                    lun: n.lun,
                    echo: !data.is_empty(),
                };
                if mem::push_back(&mut self.ctl, reply).is_err() {
                    debug_assert!(false, "internal error: control queue full");
                }
            }
        } else if !data.is_empty() {
            return Err(Violation::UnexpectedData {
                opcode: pdu::Opcode::NopIn,
                len: data.len() as u32,
            }
            .into());
        }
        Ok(())
    }

    fn on_tmf_response(&mut self, r: &TaskMgmtResponse, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::TaskMgmtResponse, data)?;
        if let Some(i) = self.resets.iter().position(|x| x.itt == r.itt) {
            let reset = self.resets.swap_remove(i);
            let result = match r.response {
                TmfResponse::Complete => Ok(()),
                other => Err(TmfError::Refused(u8::from(other))),
            };
            if result.is_ok() {
                // The target terminated every task on the LUN without answering them.
                for slot in self.slots() {
                    let victim = self
                        .tasks
                        .get(slot)
                        .is_some_and(|t| t.req.lun == reset.lun && t.cmd_sn.is_some());
                    if victim {
                        self.complete_err(slot, TransportError::Aborted);
                    }
                }
            }
            self.push_event(Event::ResetDone {
                tag: reset.tag,
                result,
            });
            return Ok(());
        }
        let found = self.tasks.iter().find_map(|(slot, t)| match t.abort {
            Abort::Sent { itt, error } if itt == r.itt => Some((slot, error)),
            _ => None,
        });
        let was_pending = self.abort_deadlines.iter().any(|&(i, _)| i == r.itt);
        self.abort_deadlines.retain(|(i, _)| *i != r.itt);
        let Some((slot, error)) = found else {
            if was_pending {
                // The command completed before the target saw the abort: nothing left to do.
                return Ok(());
            }
            return Err(Violation::UnknownResponse {
                opcode: pdu::Opcode::TaskMgmtResponse,
                itt: r.itt,
            }
            .into());
        };
        match r.response {
            TmfResponse::Complete | TmfResponse::TaskDoesNotExist => {
                self.complete_err(slot, error);
                Ok(())
            }
            // The target would not abort it: only a new session clears it.
            other => {
                self.complete_err(slot, error);
                Err(Disconnect::Rejected(RejectReason::Unknown(u8::from(other))))
            }
        }
    }

    fn on_async(&mut self, a: &AsyncMessage, data: &[u8], now: Instant) -> Result<(), Disconnect> {
        match a.event {
            AsyncEvent::LogoutRequest => {
                if self.logout.is_none() {
                    let itt = self.alloc_itt();
                    // Parameter3 is the time the target gives us to send the Logout, which goes
                    // at once; how long its answer may take is ours to bound (the field allows
                    // 18 hours of waiting on a target that never answers).
                    self.logout = Some((itt, now.saturating_add(self.timeouts.logout_timeout)));
                    let logout = Ctl::Logout {
                        itt,
                        reason: LogoutReason::CloseSession,
                    };
                    if mem::push_back(&mut self.ctl, logout).is_err() {
                        debug_assert!(false, "internal error: control queue full");
                    }
                }
                Ok(())
            }
            AsyncEvent::DropConnection | AsyncEvent::DropAllConnections => {
                Err(Disconnect::TargetRequest {
                    event: a.event,
                    wait: time2wait(a.parameter2),
                })
            }
            AsyncEvent::ScsiEvent => {
                // The data segment is laid out like a SCSI Response's: SenseLength, sense.
                let rd = parse_response_data(data).map_err(Violation::Sense)?;
                // Beyond MAX_SCSI_EVENTS not taken yet, dropped.
                self.push_event(Event::ScsiEvent {
                    lun: a.lun,
                    sense: Sense::new(rd.sense),
                });
                Ok(())
            }
            // Renegotiation requests and vendor events need nothing from us at ERL 0.
            _ => Ok(()),
        }
    }

    fn on_reject(&mut self, r: &Reject, data: &[u8]) -> Result<(), Disconnect> {
        let bhs = Reject::rejected_header(data).map_err(Violation::Pdu)?;
        let itt = bhs.itt();
        match bhs.opcode() {
            pdu::Opcode::NopOut => {
                self.keepalive.answered(itt);
                Ok(())
            }
            pdu::Opcode::ScsiCommand => {
                if let Some(slot) = self.tasks.lookup(itt) {
                    if matches!(
                        r.reason,
                        RejectReason::CommandNotSupported
                            | RejectReason::InvalidPduField
                            | RejectReason::ProtocolError
                    ) {
                        // Replaying it would be rejected again: fail it, and start over on a
                        // new connection since its CmdSN left a hole the target waits on.
                        self.complete_err(slot, TransportError::Rejected(u8::from(r.reason)));
                    }
                }
                Err(Disconnect::Rejected(r.reason))
            }
            _ => Err(Disconnect::Rejected(r.reason)),
        }
    }

    fn on_logout_response(&mut self, r: &LogoutResponse, data: &[u8]) -> Result<(), Disconnect> {
        no_data(pdu::Opcode::LogoutResponse, data)?;
        if self.logout.is_none_or(|(itt, _)| itt != r.itt) {
            return Err(Violation::UnknownResponse {
                opcode: pdu::Opcode::LogoutResponse,
                itt: r.itt,
            }
            .into());
        }
        self.logout = None;
        if self.phase == Phase::Closing {
            self.logout_outcome = Some(match r.response {
                LogoutResponseCode::Success => LogoutOutcome::Done,
                code => LogoutOutcome::Refused(code),
            });
            self.phase = Phase::Closed;
            self.fail_all(TransportError::SessionClosed);
            return Ok(());
        }
        let wait = match r.response {
            LogoutResponseCode::Success => r.time2wait,
            _ => self.params.default_time2wait(),
        };
        Err(Disconnect::LoggedOut {
            wait: time2wait(wait),
        })
    }
}

impl<B: DataBuf> Engine<B> {
    /// Keeps a ping's data for its echo, truncated to what we may send: false when the echo
    /// buffer is busy with an earlier ping or cannot grow (memory is short).
    fn take_echo(&mut self, data: &[u8]) -> bool {
        if self.echo_state != Echo::Free || self.tx.refers_to_echo() {
            return false;
        }
        let max = self.params.max_send_dsl() as usize;
        let data = data.get(..max).unwrap_or(data);
        if mem::try_copy_into(&mut self.echo, data).is_err() {
            return false;
        }
        self.echo_state = Echo::Queued;
        true
    }
}

fn no_data(opcode: pdu::Opcode, data: &[u8]) -> Result<(), Violation> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(Violation::UnexpectedData {
            opcode,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        })
    }
}
