// SPDX-License-Identifier: BSD-2-Clause
//! Views of the 48-byte Basic Header Segment: [`Bhs`] reads and [`BhsMut`] writes the fields
//! every PDU has, at the offsets of [`super::field`]; each PDU family reads and writes its own
//! fields through the same views.

use super::{field, Error, Opcode, BHS_LEN};
use crate::lun::Lun;
use crate::sn::Sn;

const IMMEDIATE_BIT: u8 = 0x40;
pub(super) const FINAL_BIT: u8 = 0x80;

/// The sequence numbers every target PDU carries (RFC 7143 §11.2.1, bytes 24..36): StatSN,
/// ExpCmdSN and MaxCmdSN. The session's command window and StatSN bookkeeping read them once
/// per received PDU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetSns {
    pub stat_sn: Sn,
    pub exp_cmd_sn: Sn,
    pub max_cmd_sn: Sn,
}

/// Read-only view of a 48-byte BHS with named accessors for the common fields.
#[derive(Clone, Copy, Debug)]
pub struct Bhs<'a> {
    raw: &'a [u8; BHS_LEN],
}

impl<'a> Bhs<'a> {
    /// Views the first [`BHS_LEN`] bytes of `buf`.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Error> {
        match buf
            .get(..BHS_LEN)
            .and_then(|s| <&[u8; BHS_LEN]>::try_from(s).ok())
        {
            Some(raw) => Ok(Self { raw }),
            None => Err(Error::Truncated {
                needed: BHS_LEN,
                got: buf.len(),
            }),
        }
    }

    #[inline]
    pub fn new(raw: &'a [u8; BHS_LEN]) -> Self {
        Self { raw }
    }

    #[inline]
    pub fn as_bytes(&self) -> &'a [u8; BHS_LEN] {
        self.raw
    }

    #[inline]
    pub fn opcode(&self) -> Opcode {
        Opcode::from(self.raw[field::OPCODE])
    }

    /// The I bit (immediate delivery) of byte 0.
    #[inline]
    pub fn immediate(&self) -> bool {
        self.raw[field::OPCODE] & IMMEDIATE_BIT != 0
    }

    /// Byte 1: the F bit and opcode-specific flags.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.raw[field::FLAGS]
    }

    /// The F (final) bit, or T (transit) for Login.
    #[inline]
    pub fn final_bit(&self) -> bool {
        self.flags() & FINAL_BIT != 0
    }

    /// TotalAHSLength in bytes (the field counts 4-byte words).
    #[inline]
    pub fn total_ahs_len(&self) -> usize {
        usize::from(self.raw[field::TOTAL_AHS_LEN]) * 4
    }

    /// The 24-bit DataSegmentLength (without padding).
    #[inline]
    pub fn data_segment_len(&self) -> u32 {
        let [a, b, c] = self.array(field::DATA_SEGMENT_LEN);
        u32::from_be_bytes([0, a, b, c])
    }

    /// Bytes 8..16: the LUN, or ISID+TSIH for Login, or opcode-specific.
    #[inline]
    pub fn lun(&self) -> Lun {
        Lun(self.bytes8(field::LUN))
    }

    #[inline]
    pub fn itt(&self) -> u32 {
        self.u32_at(field::ITT)
    }

    /// `N` bytes at `at`. Callers pass field constants inside [`BHS_LEN`]; a wrong one reads
    /// zeros instead of panicking.
    #[inline]
    pub(super) fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = at.checked_add(N).and_then(|end| self.raw.get(at..end)) {
            out.copy_from_slice(src);
        }
        out
    }

    #[inline]
    pub(crate) fn u8_at(&self, at: usize) -> u8 {
        let [v] = self.array(at);
        v
    }

    #[inline]
    pub(crate) fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes(self.array(at))
    }

    #[inline]
    pub(crate) fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.array(at))
    }

    #[inline]
    pub(crate) fn sn_at(&self, at: usize) -> Sn {
        Sn(self.u32_at(at))
    }

    #[inline]
    pub(crate) fn cmd_sn(&self) -> Sn {
        self.sn_at(field::CMD_SN)
    }

    #[inline]
    pub(crate) fn target_sns(&self) -> TargetSns {
        TargetSns {
            stat_sn: self.stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        }
    }

    #[inline]
    pub(crate) fn exp_stat_sn(&self) -> Sn {
        self.sn_at(field::EXP_STAT_SN)
    }

    #[inline]
    pub(crate) fn stat_sn(&self) -> Sn {
        self.sn_at(field::STAT_SN)
    }

    #[inline]
    pub(crate) fn exp_cmd_sn(&self) -> Sn {
        self.sn_at(field::EXP_CMD_SN)
    }

    #[inline]
    pub(crate) fn max_cmd_sn(&self) -> Sn {
        self.sn_at(field::MAX_CMD_SN)
    }

    #[inline]
    pub(crate) fn bytes8(&self, at: usize) -> [u8; 8] {
        self.array(at)
    }

    #[inline]
    pub(crate) fn expect_opcode(&self, expected: Opcode) -> Result<(), Error> {
        let got = self.opcode();
        if got == expected {
            Ok(())
        } else {
            Err(Error::WrongOpcode { expected, got })
        }
    }
}

/// Writable view of a 48-byte BHS; used by the `emit_bhs` of each PDU family.
#[derive(Debug)]
pub struct BhsMut<'a> {
    raw: &'a mut [u8; BHS_LEN],
}

impl<'a> BhsMut<'a> {
    #[inline]
    pub fn new(raw: &'a mut [u8; BHS_LEN]) -> Self {
        Self { raw }
    }

    #[inline]
    pub fn set_opcode(&mut self, op: Opcode, immediate: bool) {
        let i = if immediate { IMMEDIATE_BIT } else { 0 };
        self.raw[field::OPCODE] = u8::from(op) | i;
    }

    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.raw[field::FLAGS] = flags;
    }

    #[inline]
    pub fn set_total_ahs_len(&mut self, bytes: usize) {
        // Callers pass a multiple of 4 no larger than MAX_AHS_LEN; `Header::emit` checks it.
        self.raw[field::TOTAL_AHS_LEN] = u8::try_from(bytes / 4).unwrap_or(u8::MAX);
    }

    #[inline]
    pub fn set_data_segment_len(&mut self, len: u32) {
        let [_, a, b, c] = len.to_be_bytes();
        self.put(field::DATA_SEGMENT_LEN, &[a, b, c]);
    }

    #[inline]
    pub fn set_lun(&mut self, lun: Lun) {
        self.set_bytes8(field::LUN, lun.0);
    }

    #[inline]
    pub fn set_itt(&mut self, itt: u32) {
        self.set_u32(field::ITT, itt);
    }

    /// Writes `bytes` at `at`. Callers pass field constants inside [`BHS_LEN`]; a wrong one
    /// writes nothing instead of panicking (the emit tests' 0xa5 fill shows the missing field).
    #[inline]
    pub(super) fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = at
            .checked_add(bytes.len())
            .and_then(|end| self.raw.get_mut(at..end))
        {
            dst.copy_from_slice(bytes);
        }
    }

    #[inline]
    pub(crate) fn set_u8(&mut self, at: usize, v: u8) {
        self.put(at, &[v]);
    }

    #[inline]
    pub(crate) fn set_u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_be_bytes());
    }

    #[inline]
    pub(crate) fn set_u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_be_bytes());
    }

    #[inline]
    pub(crate) fn set_sn(&mut self, at: usize, v: Sn) {
        self.set_u32(at, v.0);
    }

    #[inline]
    pub(crate) fn set_cmd_sn(&mut self, v: Sn) {
        self.set_sn(field::CMD_SN, v);
    }

    #[inline]
    pub(crate) fn set_target_sns(&mut self, sns: TargetSns) {
        self.set_stat_sn(sns.stat_sn);
        self.set_exp_cmd_sn(sns.exp_cmd_sn);
        self.set_max_cmd_sn(sns.max_cmd_sn);
    }

    #[inline]
    pub(crate) fn set_exp_stat_sn(&mut self, v: Sn) {
        self.set_sn(field::EXP_STAT_SN, v);
    }

    #[inline]
    pub(crate) fn set_stat_sn(&mut self, v: Sn) {
        self.set_sn(field::STAT_SN, v);
    }

    #[inline]
    pub(crate) fn set_exp_cmd_sn(&mut self, v: Sn) {
        self.set_sn(field::EXP_CMD_SN, v);
    }

    #[inline]
    pub(crate) fn set_max_cmd_sn(&mut self, v: Sn) {
        self.set_sn(field::MAX_CMD_SN, v);
    }

    #[inline]
    pub(crate) fn set_bytes8(&mut self, at: usize, v: [u8; 8]) {
        self.put(at, &v);
    }
}
