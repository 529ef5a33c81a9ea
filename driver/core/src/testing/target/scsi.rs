// SPDX-License-Identifier: BSD-2-Clause
//! The fake target's SCSI side: commands, Data-In bursts, writes by immediate, unsolicited
//! and solicited data, and the faults that apply to them.

use std::format;
use std::vec::Vec;

use super::{header_bytes, sense, ConnectionEnd, FakeConnection, Fault, WriteTask, BLOCK, POISON};
use crate::pdu::{AsyncEvent, DataIn, DataOut, Header, RejectReason, Residual, ScsiCommand};
use crate::scsi::cdb::{self, op};
use crate::sn::Sn;
use crate::testing::pdu::{async_message, data_in, r2t, reject, scsi_response};

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

/// The target's standard INQUIRY data (36 bytes: a direct access SPC-3 disk, vendor
/// "ISBOOT", product "FAKE TARGET").
pub fn inquiry_data() -> Vec<u8> {
    let mut v = std::vec![0u8; 36];
    v[2] = 0x05; // SPC-3
    v[3] = 0x02;
    v[4] = 31;
    v[7] = 0x02; // CmdQue
    v[8..16].copy_from_slice(b"ISBOOT  ");
    v[16..32].copy_from_slice(b"FAKE TARGET     ");
    v[32..36].copy_from_slice(b"0001");
    v
}

/// INQUIRY: standard data or the VPD pages 0x00 and 0x80, or the sense to return.
fn inquiry(cdb: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    let evpd = cdb.get(1).is_some_and(|b| b & 1 != 0);
    let page = cdb.get(2).copied().unwrap_or(0);
    if !evpd {
        return Ok(inquiry_data());
    }
    match page {
        0x00 => Ok(std::vec![0, 0, 0, 2, 0x00, 0x80]),
        0x80 => {
            let mut v = std::vec![0, 0x80, 0, 8];
            v.extend_from_slice(b"FAKE0001");
            Ok(v)
        }
        _ => Err(sense(0x05, 0x24, 0x00)),
    }
}

impl FakeConnection {
    pub(super) fn command(&mut self, cmd: ScsiCommand, data: &[u8]) {
        let broken = {
            let mut s = self.target.lock();
            match s.break_after.as_mut() {
                Some(0) => {
                    s.break_after = None;
                    true
                }
                Some(n) => {
                    *n -= 1;
                    false
                }
                None => false,
            }
        };
        if broken {
            // The command is lost with the connection, as on a real reset.
            return self.close(ConnectionEnd::Reset);
        }
        self.admit(cmd.cmd_sn, cmd.immediate);
        self.target.lock().stats.commands += 1;
        let cdb = cmd.cdb.as_slice().to_vec();
        if cdb.first().copied() == self.cfg().ignore_opcode {
            return;
        }
        if cdb.first().copied() == self.cfg().unit_attention_opcode {
            return self.check_condition(cmd.itt, &sense(0x06, 0x29, 0x00));
        }
        match cdb::is_write(&cdb) {
            Some(false) if cmd.read => self.read(&cmd, &cdb),
            Some(true) if cmd.write => self.write(cmd, &cdb, data),
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
            op::TEST_UNIT_READY | op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => {
                Ok(Vec::new())
            }
            op::INQUIRY => inquiry(cdb),
            op::READ_CAPACITY_10 => {
                let last = u32::try_from(blocks - 1).unwrap_or(u32::MAX);
                let mut v = last.to_be_bytes().to_vec();
                v.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                Ok(v)
            }
            op::SERVICE_ACTION_IN_16
                if cdb.get(1).map(|b| b & 0x1f) == Some(cdb::READ_CAPACITY_16) =>
            {
                let mut v = std::vec![0u8; 32];
                v[..8].copy_from_slice(&(blocks - 1).to_be_bytes());
                let bl = self.cfg().reported_block_len.unwrap_or(BLOCK as u32);
                v[8..12].copy_from_slice(&bl.to_be_bytes());
                Ok(v)
            }
            op::REPORT_LUNS => {
                let mut v = std::vec![0u8; 16];
                v[3] = 8;
                Ok(v)
            }
            op::MODE_SENSE_6 => Ok(std::vec![3, 0, 0, 0]),
            _ => Err(sense(0x05, 0x20, 0x00)),
        }
    }

    fn check_condition(&mut self, itt: u32, sense: &[u8]) {
        let mut seg = (sense.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(sense);
        let resp = self.status(scsi_response(itt, 0, 0x02));
        self.send(&resp, &seg);
    }

    /// Byte offset of `blocks` blocks at `lba`, if inside the disk.
    fn range(&self, lba: u64, blocks: u32) -> Option<usize> {
        let end = lba.checked_add(u64::from(blocks))?;
        if end > (self.cfg().size / BLOCK) as u64 {
            return None;
        }
        usize::try_from(lba).ok()?.checked_mul(BLOCK)
    }

    fn read(&mut self, cmd: &ScsiCommand, cdb: &[u8]) {
        let Some((lba, blocks)) = cdb::lba_and_blocks(cdb) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x24, 0x00));
        };
        let Some(off) = self.range(lba, blocks) else {
            return self.check_condition(cmd.itt, &sense(0x05, 0x21, 0x00));
        };
        let len = blocks as usize * BLOCK;
        let bytes = self.target.lock().disk[off..off + len].to_vec();
        if self.fire(Fault::SenseTooLong) {
            // SenseLength 1000, but only 18 bytes follow.
            let mut seg = 1000u16.to_be_bytes().to_vec();
            seg.extend_from_slice(&sense(0x03, 0x11, 0x00));
            let resp = self.status(scsi_response(cmd.itt, 0, 0x02));
            return self.send(&resp, &seg);
        }
        if self.fire(Fault::Silence) {
            self.silent = true;
            return;
        }
        if self.fire(Fault::RejectCommand) {
            let rej = self.status(reject(RejectReason::ProtocolError));
            return self.send(&rej, &header_bytes(cmd));
        }
        if self.fire(Fault::AsyncDropConnection) {
            // Time2Wait 0, Time2Retain 0: reconnect at once, nothing is kept.
            let msg = self.status(async_message(AsyncEvent::DropConnection));
            self.send(&msg, &[]);
            return self.close(ConnectionEnd::Fin);
        }
        if self.fire(Fault::AsyncLogoutRequest) {
            let msg = self.status(async_message(AsyncEvent::LogoutRequest).logout_within(5));
            self.send(&msg, &[]);
        }
        self.send_data_in(cmd, &bytes)
    }

    /// Sends `bytes` as Data-In for `cmd` with the status in the last PDU, bursts bounded by
    /// MaxBurstLength, applying any Data-In fault that is due.
    fn send_data_in(&mut self, cmd: &ScsiCommand, bytes: &[u8]) {
        let edtl = cmd.expected_data_len as usize;
        let n = bytes.len().min(edtl);
        let residual = if bytes.len() < edtl {
            Residual::Underflow((edtl - bytes.len()) as u32)
        } else {
            Residual::None
        };
        let cfg = self.cfg();
        let piece = match cfg.large_read_pdu {
            Some(large) if n >= 64 * 1024 => large,
            _ => cfg.data_in_pdu,
        };
        let pdu_max = self.params.send_max.min(piece).max(512) as usize;
        let burst = self.params.max_burst.max(512) as usize;
        let is_read = cdb::is_write(cmd.cdb.as_slice()) == Some(false);
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
            .find(|&f| f == cfg.fault && self.fire(f))
        } else {
            None
        };
        if n == 0 {
            let resp = self.status(scsi_response(cmd.itt, 0, 0));
            let resp = crate::pdu::ScsiResponse { residual, ..resp };
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
                lun: cmd.lun,
                ..self.current(data_in(cmd.itt, data_sn, off as u32))
            };
            if last {
                let stat_sn = self.next_stat_sn();
                din = din.with_status(0, stat_sn, residual);
            }
            let chunk = bytes[off..off + len].to_vec();
            if let Some(f) = fault {
                if self.data_in_fault(f, &din, &chunk, pdus, off, n) {
                    data_sn += 1;
                    off += len;
                    pdus += 1;
                    continue;
                }
                if self.end.is_some() {
                    return;
                }
                if f == Fault::DataInBeyondBuffer && last {
                    // The real last PDU goes without status; then poison past the end, with
                    // status.
                    let body = DataIn {
                        status: None,
                        residual: Residual::None,
                        final_bit: false,
                        ..din.clone()
                    };
                    self.send(&body, &chunk);
                    let beyond = DataIn {
                        data_sn: Sn(data_sn + 1),
                        buffer_offset: n as u32,
                        ..din
                    };
                    return self.send(&beyond, &std::vec![POISON; BLOCK]);
                }
            }
            self.send(&din, &chunk);
            data_sn += 1;
            off += len;
            pdus += 1;
        }
    }

    /// Applies Data-In `fault` to the PDU about to go; true when it replaced that PDU.
    fn data_in_fault(
        &mut self,
        fault: Fault,
        din: &DataIn,
        chunk: &[u8],
        pdus: usize,
        off: usize,
        n: usize,
    ) -> bool {
        let len = chunk.len();
        let unfinished = DataIn {
            status: None,
            final_bit: false,
            ..din.clone()
        };
        match fault {
            Fault::WrongItt if pdus == 0 => {
                let bad = DataIn {
                    itt: din.itt ^ 0x8000_0000,
                    ..unfinished
                };
                self.send(&bad, &std::vec![POISON; len]);
                false
            }
            Fault::DataInOffsetGap if pdus == 1 && n - off > BLOCK => {
                // Skip one block: the initiator must not accept data with a hole before it.
                let bad = DataIn {
                    buffer_offset: (off + BLOCK) as u32,
                    ..unfinished
                };
                self.send(&bad, &std::vec![POISON; len.min(n - off - BLOCK)]);
                false
            }
            Fault::OversizedSegment if pdus == 0 => {
                // Poison at a valid offset, but longer than the initiator said it can take.
                let big = std::vec![POISON; self.params.send_max as usize + 4096];
                self.send(&unfinished, &big);
                false
            }
            Fault::BadDataDigest | Fault::BadHeaderDigest if pdus == 0 => {
                let start = self.output.len();
                self.send(din, chunk);
                let hl = din.header_wire_len(self.params.digests.header);
                if fault == Fault::BadHeaderDigest && self.params.digests.header {
                    self.output[start + crate::pdu::BHS_LEN] ^= 0xff;
                }
                // Poison the data, keeping the digest of the real bytes: if a digest were not
                // checked, the data would show it.
                self.output[start + hl..start + hl + len].fill(POISON);
                true
            }
            Fault::ResetMidTransfer if off >= n / 2 && pdus > 0 => {
                self.close(ConnectionEnd::Reset);
                false
            }
            _ => false,
        }
    }

    fn write(&mut self, cmd: ScsiCommand, cdb: &[u8], imm: &[u8]) {
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
            return self.close(ConnectionEnd::Reset);
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
            data: std::vec![0; edtl as usize],
            received: 0,
            solicited_end: 0,
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
    fn advance_write(&mut self, itt: u32) {
        let Some(task) = self.writes.get(&itt) else {
            return;
        };
        if task.received >= task.edtl {
            let task = self.writes.remove(&itt).expect("present: looked up above");
            self.target.lock().disk[task.offset..task.offset + task.data.len()]
                .copy_from_slice(&task.data);
            let resp = self.status(scsi_response(itt, 0, 0));
            return self.send(&resp, &[]);
        }
        if task.received < task.solicited_end {
            return;
        }
        let burst = self.params.max_burst.min(task.edtl - task.received);
        let (lun, offset, r2t_sn) = (task.lun, task.received, task.r2t_sn);
        let ttt = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
        let mut r = self.current(r2t(itt, ttt, r2t_sn, offset, burst));
        r.lun = lun;
        if let Some(task) = self.writes.get_mut(&itt) {
            task.r2t_sn += 1;
            task.solicited_end = offset + burst;
        }
        if self.fire(Fault::R2tBeyondTransfer) {
            // Ask for more than the command carries; the initiator must not send past its
            // buffer.
            r.desired_len = burst + 8192;
        }
        self.send(&r, &[])
    }

    pub(super) fn data_out(&mut self, d: &DataOut, data: &[u8]) {
        let Some(task) = self.writes.get_mut(&d.itt) else {
            return self.violation(format!("Data-Out for unknown ITT {:#x}", d.itt));
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
            return self.close(ConnectionEnd::Reset);
        }
        let at = d.buffer_offset as usize;
        task.data[at..at + data.len()].copy_from_slice(data);
        task.received += data.len() as u32;
        if d.final_bit || task.received == task.solicited_end {
            self.advance_write(d.itt);
        }
    }
}
