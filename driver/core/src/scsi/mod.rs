// SPDX-License-Identifier: BSD-2-Clause
//! The portable model of a CAM CCB: a [`ScsiRequest`] goes into the session, a [`Completion`]
//! comes back.
//!
//! The request owns its data buffer, any [`DataBuf`]: a `Vec<u8>` on a host, the CCB's own
//! memory (one virtual buffer or a scatter/gather list) in the kernel. The session moves data
//! straight between the buffer and the transport: Data-In is read into it, Data-Out written from
//! it, never through a copy of its own. For a read (`Direction::In`) the buffer's length is the
//! expected transfer length and Data-In is written into it at the offset the target names, which
//! must equal the bytes received so far and may never run past the buffer; the buffer is not
//! cleared first, so bytes past what the target delivered ([`ScsiResult::transferred`]) are
//! whatever the buffer held. For a write (`Direction::Out`) the buffer holds the bytes to send.
//! The completion hands the buffer back with the SCSI status, bounded sense data and the
//! residual, or says why there is no status ([`TransportError`]).
//!
//! [`cdb`] builds and reads the CDBs isboot sends; [`Inquiry`] decodes standard INQUIRY data.
#![cfg_attr(not(test), deny(clippy::disallowed_methods, clippy::disallowed_macros))]

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

pub mod cdb;
mod inquiry;

pub use crate::pdu::{Cdb, TaskAttr, MAX_CDB_LEN};
pub use inquiry::{Inquiry, ShortInquiry, STANDARD_INQUIRY_LEN};

use crate::lun::Lun;
use crate::mem::SmallBytes;

/// Largest sense data kept (`SSD_FULL_SIZE` in CAM); longer sense is truncated, never copied past.
pub const MAX_SENSE_LEN: usize = 252;

/// A request's data: one or more contiguous pieces (segments) that together hold
/// [`DataBuf::len`] bytes, addressed by offset.
///
/// The session only ever asks for the piece at an offset: [`DataBuf::chunk`] to send from it,
/// [`DataBuf::chunk_mut`] to receive into it, and goes on at the offset after it. A buffer must
/// not change its length or pieces while a request owns it.
pub trait DataBuf: Send {
    /// Total bytes.
    fn len(&self) -> usize;

    /// Whether the buffer holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contiguous bytes from `offset` to the end of the piece holding it (never empty for
    /// `offset < len()`); empty at or past the end.
    fn chunk(&self, offset: usize) -> &[u8];

    /// As [`DataBuf::chunk`], writable.
    fn chunk_mut(&mut self, offset: usize) -> &mut [u8];
}

impl DataBuf for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn chunk(&self, offset: usize) -> &[u8] {
        self.get(offset..).unwrap_or_default()
    }

    fn chunk_mut(&mut self, offset: usize) -> &mut [u8] {
        self.get_mut(offset..).unwrap_or_default()
    }
}

/// Copies `src` into `buf` from `offset` on, piece by piece; returns the bytes copied (short
/// when `buf` ends first).
pub fn copy_into<B: DataBuf + ?Sized>(buf: &mut B, offset: usize, src: &[u8]) -> usize {
    let mut done = 0;
    while let Some(rest) = src.get(done..).filter(|r| !r.is_empty()) {
        let dst = buf.chunk_mut(offset.saturating_add(done));
        let n = dst.len().min(rest.len());
        if n == 0 {
            break;
        }
        if let (Some(d), Some(s)) = (dst.get_mut(..n), rest.get(..n)) {
            d.copy_from_slice(s);
        }
        done = done.saturating_add(n);
    }
    done
}

/// Which way data moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// No data phase (TEST UNIT READY, SYNCHRONIZE CACHE, ...).
    #[default]
    None,
    /// Target to initiator (READ): the buffer is filled.
    In,
    /// Initiator to target (WRITE): the buffer is sent.
    Out,
}

/// A SCSI command as the platform hands it to the session.
#[derive(Clone, PartialEq, Eq)]
pub struct ScsiRequest<B = Vec<u8>> {
    /// The platform's handle for this request (the kernel glue finds its CCB with it); it comes
    /// back unchanged in the [`Completion`] and names the request in [`crate::session::Handle::abort`].
    pub tag: u64,
    pub lun: Lun,
    pub cdb: Cdb,
    pub direction: Direction,
    /// In: the buffer to fill, its length is the expected transfer length. Out: the data to
    /// write. None: ignored (sent as a zero-length transfer).
    pub data: B,
    pub attr: TaskAttr,
    /// Time from submission after which the command is aborted with ABORT TASK and completed
    /// with [`TransportError::Timeout`]; `None` waits forever (recovery still applies).
    pub timeout: Option<Duration>,
}

impl<B: DataBuf + Default> ScsiRequest<B> {
    /// A request with no data phase.
    pub fn new(tag: u64, lun: Lun, cdb: Cdb) -> Self {
        Self::with_data(tag, lun, cdb, Direction::None, B::default())
    }
}

impl<B: DataBuf> ScsiRequest<B> {
    /// A request moving `data` the way `direction` says.
    pub fn with_data(tag: u64, lun: Lun, cdb: Cdb, direction: Direction, data: B) -> Self {
        ScsiRequest {
            tag,
            lun,
            cdb,
            direction,
            data,
            attr: TaskAttr::Simple,
            timeout: None,
        }
    }

    /// A read that fills `buf` (its length is the transfer length; it is not cleared first).
    pub fn read(tag: u64, lun: Lun, cdb: Cdb, buf: B) -> Self {
        Self::with_data(tag, lun, cdb, Direction::In, buf)
    }

    /// A write of `data`.
    pub fn write(tag: u64, lun: Lun, cdb: Cdb, data: B) -> Self {
        Self::with_data(tag, lun, cdb, Direction::Out, data)
    }

    /// The Expected Data Transfer Length sent to the target.
    pub fn expected_len(&self) -> u32 {
        match self.direction {
            Direction::None => 0,
            // A buffer above 4 GiB cannot be described by iSCSI; `Session::submit` refuses it.
            Direction::In | Direction::Out => u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }
}

impl<B: DataBuf> fmt::Debug for ScsiRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScsiRequest")
            .field("tag", &self.tag)
            .field("lun", &self.lun)
            .field("cdb", &self.cdb)
            .field("direction", &self.direction)
            .field("len", &self.data.len())
            .field("attr", &self.attr)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sense data, at most [`MAX_SENSE_LEN`] bytes: up to [`SENSE_INLINE_LEN`] inline (fixed-format
/// sense is 18 bytes), longer on the heap, so that a completion stays small enough to move
/// cheaply.
#[derive(Clone, PartialEq, Eq)]
pub struct Sense {
    bytes: SmallBytes<SENSE_INLINE_LEN>,
}

/// Sense bytes a [`Sense`] holds without allocating.
pub const SENSE_INLINE_LEN: usize = 32;

impl Sense {
    /// Keeps the first [`MAX_SENSE_LEN`] bytes of `sense`. Sense longer than
    /// [`SENSE_INLINE_LEN`] bytes for which no memory is left is cut to that length: its key,
    /// ASC and ASCQ lie in the first 14 bytes (fixed format) or 4 (descriptor format), and a
    /// completion must not fail for want of memory.
    #[inline]
    pub fn new(sense: &[u8]) -> Self {
        let sense = sense.get(..MAX_SENSE_LEN).unwrap_or(sense);
        let bytes = SmallBytes::new(sense).unwrap_or_else(|_| {
            let cut = sense.get(..SENSE_INLINE_LEN).unwrap_or(sense);
            SmallBytes::inline(cut).unwrap_or(SmallBytes::EMPTY)
        });
        Sense { bytes }
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// (sense key, ASC, ASCQ) of fixed (0x70/0x71) or descriptor (0x72/0x73) format sense.
    pub fn key_asc_ascq(&self) -> Option<(u8, u8, u8)> {
        let s = self.as_slice();
        match s.first().map(|b| b & 0x7f) {
            Some(0x70 | 0x71) => Some((*s.get(2)? & 0x0f, *s.get(12)?, *s.get(13)?)),
            Some(0x72 | 0x73) => Some((*s.get(1)? & 0x0f, *s.get(2)?, *s.get(3)?)),
            _ => None,
        }
    }
}

impl Default for Sense {
    fn default() -> Self {
        Sense::new(&[])
    }
}

impl fmt::Debug for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sense({:02x?})", self.as_slice())
    }
}

/// SCSI status byte values (SAM-5).
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const CONDITION_MET: u8 = 0x04;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    pub const ACA_ACTIVE: u8 = 0x30;
    pub const TASK_ABORTED: u8 = 0x40;
}

/// What the target said about a command it completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiResult {
    /// SCSI status byte ([`status`]).
    pub status: u8,
    pub sense: Sense,
    /// Bytes the target moved: Data-In bytes received for a read, the data length minus the
    /// target's underflow residual for a write.
    pub transferred: u32,
    /// Expected length minus `transferred` (CAM's `resid`).
    pub residual: u32,
    /// The target had more data than the buffer could take (it was not transferred).
    pub overflow: u32,
}

impl ScsiResult {
    pub fn is_good(&self) -> bool {
        self.status == status::GOOD
    }
}

/// Why a command finished without a SCSI status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The command's timeout passed; it was aborted at the target (or the connection dropped).
    Timeout,
    /// Aborted at the platform's request ([`crate::session::Handle::abort`]) or by a LOGICAL UNIT
    /// RESET.
    Aborted,
    /// The target answered with an iSCSI service response other than "command completed"
    /// (RFC 7143 §11.4.3); the value is the response code.
    TargetFailure(u8),
    /// The target rejected the command PDU (RFC 7143 §11.17.1 reason code).
    Rejected(u8),
    /// The request cannot be carried: bad CDB/buffer combination or a buffer above 4 GiB.
    Invalid,
    /// The session ended (shut down, or recovery gave up) before the command completed.
    SessionClosed,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransportError::Timeout => f.write_str("command timed out"),
            TransportError::Aborted => f.write_str("command aborted"),
            TransportError::TargetFailure(r) => write!(f, "target failure (response {r:#04x})"),
            TransportError::Rejected(r) => {
                write!(f, "target rejected the command (reason {r:#04x})")
            }
            TransportError::Invalid => f.write_str("request cannot be carried by iSCSI"),
            TransportError::SessionClosed => f.write_str("session closed"),
        }
    }
}

impl core::error::Error for TransportError {}

/// A finished request: the platform's tag, the buffer (filled for reads) and the outcome.
#[derive(Clone, PartialEq, Eq)]
pub struct Completion<B = Vec<u8>> {
    pub tag: u64,
    pub data: B,
    pub result: Result<ScsiResult, TransportError>,
}

impl<B: DataBuf> fmt::Debug for Completion<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("tag", &self.tag)
            .field("len", &self.data.len())
            .field("result", &self.result)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sense_is_bounded_and_decoded() {
        let long = [0x70u8; 300];
        assert_eq!(Sense::new(&long).as_slice().len(), MAX_SENSE_LEN);
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x06;
        fixed[12] = 0x29;
        fixed[13] = 0x01;
        assert_eq!(Sense::new(&fixed).key_asc_ascq(), Some((6, 0x29, 1)));
        assert_eq!(
            Sense::new(&[0x72, 0x05, 0x24, 0x00]).key_asc_ascq(),
            Some((5, 0x24, 0))
        );
        assert_eq!(Sense::new(&[0x70, 0, 6]).key_asc_ascq(), None);
        assert!(Sense::default().is_empty());
    }

    #[test]
    fn copies_cross_pieces_and_stop_at_the_end() {
        // Three pieces of 3, 1 and 4 bytes.
        let mut b = crate::testing::Pieces(vec![vec![0; 3], vec![0; 1], vec![0; 4]]);
        assert_eq!(copy_into(&mut b, 2, &[1, 2, 3, 4]), 4);
        assert_eq!(b.0, [vec![0, 0, 1], vec![2], vec![3, 4, 0, 0]]);
        assert_eq!(copy_into(&mut b, 6, &[9, 9, 9, 9]), 2, "short at the end");
        assert_eq!(b.0[2], [3, 4, 9, 9]);
        assert_eq!(copy_into(&mut b, 8, &[7]), 0);
        assert_eq!(b.chunk(8), &[] as &[u8]);
        assert_eq!(b.len(), 8);
    }

    #[test]
    fn expected_length_follows_direction() {
        let cdb = Cdb::new(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap_or_default();
        let lun = Lun::default();
        assert_eq!(
            ScsiRequest::read(1, lun, cdb.clone(), alloc::vec![0; 512]).expected_len(),
            512
        );
        assert_eq!(
            ScsiRequest::write(1, lun, cdb.clone(), alloc::vec![1; 7]).expected_len(),
            7
        );
        let mut none: ScsiRequest = ScsiRequest::new(1, lun, cdb);
        none.data = alloc::vec![0; 9];
        assert_eq!(none.expected_len(), 0);
    }
}
