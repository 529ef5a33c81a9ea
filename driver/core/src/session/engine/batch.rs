// SPDX-License-Identifier: BSD-2-Clause
//! The transmit batch: PDUs laid out for one vectored write, without copying their data.
//!
//! A batch is a list of [`Seg`]ments. The engine's own bytes (headers, AHS, header digests,
//! padding, data digests) go into a fixed arena, consecutive ones into one segment; a data
//! segment names the request (by ITT) and the byte range of its buffer, or the NOP echo buffer.
//! The unsent rest is a position (segment, offset); [`TxBatch::advance`] moves it on by what the
//! transport took. Everything is allocated once ([`TxBatch::try_new`]); a PDU that does not fit
//! the room left ends the batch.

use alloc::vec::Vec;

use crate::mem::{self, NoMemory};
use crate::pdu::{BHS_LEN, DIGEST_LEN};

/// PDUs in one batch.
pub(super) const MAX_PDUS: usize = 64;
/// Data bytes gathered into one batch: several PDUs per system call, bounded.
pub(super) const MAX_BYTES: usize = 256 * 1024;
/// The engine's own bytes per batch: every PDU's header with a header digest, padding and a
/// data digest, with room to spare for an AHS (a long CDB).
const OWN_BYTES: usize = MAX_PDUS * (BHS_LEN + 3 * DIGEST_LEN) + 1024;
/// Segments: per PDU its own bytes before the data, the data, and the trailer (which the next
/// PDU's header continues).
const MAX_SEGS: usize = 2 * MAX_PDUS + 1;

/// One piece of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    /// `own[start..end]`.
    Own { start: u32, end: u32 },
    /// `len` bytes of the buffer of the request named by `itt`, from `offset`.
    Data { itt: u32, offset: u32, len: u32 },
    /// The first `len` bytes of the NOP echo buffer.
    Echo { len: u32 },
}

impl Seg {
    pub(super) fn len(&self) -> usize {
        match *self {
            Seg::Own { start, end } => end.saturating_sub(start) as usize,
            Seg::Data { len, .. } | Seg::Echo { len } => len as usize,
        }
    }
}

/// The batch (see the module documentation).
#[derive(Debug)]
pub(super) struct TxBatch {
    own: Vec<u8>,
    segs: Vec<Seg>,
    /// Where each PDU's header starts in `own` (for the trace).
    pdus: Vec<u32>,
    /// Data bytes laid out.
    data_bytes: usize,
    /// The unsent rest begins at `segs[seg]`, `off` bytes in.
    seg: usize,
    off: usize,
}

impl TxBatch {
    pub(super) fn try_new() -> Result<Self, NoMemory> {
        Ok(TxBatch {
            own: mem::try_with_capacity(OWN_BYTES)?,
            segs: mem::try_with_capacity(MAX_SEGS)?,
            pdus: mem::try_with_capacity(MAX_PDUS)?,
            data_bytes: 0,
            seg: 0,
            off: 0,
        })
    }

    /// Whether nothing is left to send.
    pub(super) fn is_empty(&self) -> bool {
        self.seg >= self.segs.len()
    }

    /// Forgets everything (all sent, or the connection is gone).
    pub(super) fn clear(&mut self) {
        self.own.clear();
        self.segs.clear();
        self.pdus.clear();
        self.data_bytes = 0;
        self.seg = 0;
        self.off = 0;
    }

    /// Where the batch ends now, for [`TxBatch::truncate`].
    pub(super) fn mark(&self) -> (usize, usize, usize, usize) {
        (
            self.own.len(),
            self.segs.len(),
            self.pdus.len(),
            self.data_bytes,
        )
    }

    /// Takes back what was laid out after `mark` (a PDU that could not be completed).
    pub(super) fn truncate(&mut self, mark: (usize, usize, usize, usize)) {
        let (own, segs, pdus, data) = mark;
        self.own.truncate(own);
        self.segs.truncate(segs);
        self.pdus.truncate(pdus);
        self.data_bytes = data;
        // A merged own segment may have grown past the mark.
        if let Some(Seg::Own { end, .. }) = self.segs.last_mut() {
            if *end as usize > own {
                *end = own as u32;
            }
        }
    }

    /// Whether another PDU with `own` bytes of header and trailer and `data` bytes may join.
    pub(super) fn has_room(&self, own: usize, data: usize) -> bool {
        self.pdus.len() < MAX_PDUS
            && self.segs.len().saturating_add(3) <= MAX_SEGS
            && self.own.len().saturating_add(own) <= self.own.capacity()
            && (self.pdus.is_empty() || self.data_bytes.saturating_add(data) <= MAX_BYTES)
    }

    /// Starts a PDU: `len` zeroed own bytes for its header, returned for writing. `None` when
    /// they do not fit (callers check [`TxBatch::has_room`] first).
    pub(super) fn header(&mut self, len: usize) -> Option<&mut [u8]> {
        let start = self.own.len();
        let end = start.checked_add(len)?;
        if !mem::set_len_within(&mut self.own, end) {
            return None;
        }
        // Both fit u32: the arena is a few KiB.
        let _ = mem::push(&mut self.pdus, start as u32);
        self.push_own(start, end);
        self.own.get_mut(start..end)
    }

    /// Appends own bytes after what was laid out.
    pub(super) fn own_bytes(&mut self, bytes: &[u8]) -> bool {
        let start = self.own.len();
        let Some(end) = start.checked_add(bytes.len()) else {
            return false;
        };
        if !mem::set_len_within(&mut self.own, end) {
            return false;
        }
        if let Some(dst) = self.own.get_mut(start..end) {
            dst.copy_from_slice(bytes);
        }
        self.push_own(start, end);
        true
    }

    fn push_own(&mut self, start: usize, end: usize) {
        if start == end {
            return;
        }
        // Consecutive own bytes (a trailer and the next header) form one segment.
        if let Some(Seg::Own { end: last, .. }) = self.segs.last_mut() {
            if *last as usize == start {
                *last = end as u32;
                return;
            }
        }
        let _ = mem::push(
            &mut self.segs,
            Seg::Own {
                start: start as u32,
                end: end as u32,
            },
        );
    }

    /// Appends a data segment.
    pub(super) fn data(&mut self, seg: Seg) {
        if seg.len() == 0 {
            return;
        }
        self.data_bytes = self.data_bytes.saturating_add(seg.len());
        let _ = mem::push(&mut self.segs, seg);
    }

    /// The unsent segments, the first one with the offset already sent of it.
    pub(super) fn unsent(&self) -> (usize, &[Seg]) {
        (self.off, self.segs.get(self.seg..).unwrap_or_default())
    }

    /// The engine's own bytes `start..end`.
    pub(super) fn own(&self, start: u32, end: u32) -> &[u8] {
        self.own
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Consumes `n` sent bytes. Returns whether the batch is now all sent.
    pub(super) fn advance(&mut self, mut n: usize) -> bool {
        while let Some(s) = self.segs.get(self.seg) {
            let left = s.len().saturating_sub(self.off);
            if n < left {
                self.off = self.off.saturating_add(n);
                return false;
            }
            n = n.saturating_sub(left);
            self.seg = self.seg.saturating_add(1);
            self.off = 0;
        }
        true
    }

    /// Whether the unsent rest refers to the buffer of the request named by `itt`.
    pub(super) fn refers_to(&self, itt: u32) -> bool {
        self.unsent()
            .1
            .iter()
            .any(|s| matches!(*s, Seg::Data { itt: i, .. } if i == itt))
    }

    /// Whether the unsent rest refers to the echo buffer.
    pub(super) fn refers_to_echo(&self) -> bool {
        self.unsent()
            .1
            .iter()
            .any(|s| matches!(s, Seg::Echo { .. }))
    }

    /// The header bytes of each PDU laid out (each slice starts at a BHS), for the trace.
    pub(super) fn headers(&self) -> impl Iterator<Item = &[u8]> {
        self.pdus
            .iter()
            .map(|&p| self.own.get(p as usize..).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_bytes_merge_and_sending_walks_the_segments() {
        let mut b = TxBatch::try_new().unwrap();
        assert!(b.is_empty());
        assert!(b.has_room(48, 100));
        b.header(48).unwrap().fill(1);
        b.data(Seg::Data {
            itt: 7,
            offset: 0,
            len: 100,
        });
        assert!(b.own_bytes(&[0; 4]), "trailer");
        b.header(48).unwrap().fill(2);
        let (off, segs) = b.unsent();
        assert_eq!(off, 0);
        assert_eq!(
            segs,
            [
                Seg::Own { start: 0, end: 48 },
                Seg::Data {
                    itt: 7,
                    offset: 0,
                    len: 100
                },
                Seg::Own {
                    start: 48,
                    end: 100
                },
            ],
            "a trailer and the next header are one segment"
        );
        assert!(b.refers_to(7));
        assert!(!b.refers_to(8));
        assert!(!b.advance(60));
        assert_eq!(b.unsent().0, 12, "12 bytes into the data");
        assert!(b.refers_to(7));
        assert!(!b.advance(88));
        assert!(!b.refers_to(7), "the data is sent");
        assert!(b.advance(52));
        assert!(b.is_empty());
        assert_eq!(b.headers().count(), 2);
        b.clear();
        assert_eq!(b.headers().count(), 0);
    }

    #[test]
    fn a_batch_is_bounded_in_pdus_and_bytes() {
        let mut b = TxBatch::try_new().unwrap();
        for i in 0..MAX_PDUS {
            assert!(b.has_room(48, 8192), "pdu {i}");
            b.header(48).unwrap();
            b.data(Seg::Data {
                itt: 1,
                offset: 0,
                len: 1,
            });
        }
        assert!(!b.has_room(48, 0), "too many PDUs");
        let mut b = TxBatch::try_new().unwrap();
        assert!(b.has_room(48, MAX_BYTES * 4), "the first PDU always fits");
        b.header(48).unwrap();
        b.data(Seg::Data {
            itt: 1,
            offset: 0,
            len: MAX_BYTES as u32,
        });
        assert!(!b.has_room(48, 1), "then the bytes are bounded");
    }
}
