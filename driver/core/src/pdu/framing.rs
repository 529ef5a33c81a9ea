// SPDX-License-Identifier: BSD-2-Clause
//! Framing on the wire: what follows the BHS (AHS, header digest, data segment, padding, data
//! digest), how long each part is, the CRC32C digests, and whole PDUs in and out of buffers.

use isboot_crc32c::{crc32c, Crc32c};

use super::{Bhs, Error, Header, Opcode, Pdu, BHS_LEN, DIGEST_LEN, MAX_DATA_SEGMENT_LEN};

/// Which digests the connection negotiated (HeaderDigest / DataDigest = CRC32C).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

/// What a reader learns from the 48 BHS bytes: enough to know how much more to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    pub opcode: Opcode,
    pub immediate: bool,
    /// TotalAHSLength in bytes.
    pub ahs_len: usize,
    /// DataSegmentLength in bytes, without padding.
    pub data_len: u32,
}

impl HeaderInfo {
    /// Reads opcode and lengths from the first [`BHS_LEN`] bytes of `bhs`.
    #[inline]
    pub fn parse(bhs: &[u8]) -> Result<Self, Error> {
        let b = Bhs::new_checked(bhs)?;
        Ok(Self {
            opcode: b.opcode(),
            immediate: b.immediate(),
            ahs_len: b.total_ahs_len(),
            data_len: b.data_segment_len(),
        })
    }

    /// Rejects a data segment longer than `max` (our negotiated MaxRecvDataSegmentLength), before
    /// anything is read into a buffer sized from it.
    #[inline]
    pub fn check_data_len(&self, max: u32) -> Result<(), Error> {
        if self.data_len > max {
            Err(Error::DataSegmentTooLong {
                len: self.data_len,
                max,
            })
        } else {
            Ok(())
        }
    }

    /// The data segment length including padding to 4 bytes.
    #[inline]
    pub fn padded_data_len(&self) -> usize {
        padded_len(self.data_len as usize)
    }

    /// Bytes of BHS+AHS, the span the header digest covers.
    #[inline]
    pub fn header_len(&self) -> usize {
        BHS_LEN.saturating_add(self.ahs_len)
    }

    /// Bytes that follow the BHS on the wire: AHS, header digest, padded data, data digest.
    #[inline]
    pub fn remaining(&self, digests: Digests) -> usize {
        let hd = if digests.header { DIGEST_LEN } else { 0 };
        let dd = if digests.data && self.data_len > 0 {
            DIGEST_LEN
        } else {
            0
        };
        self.ahs_len
            .saturating_add(hd)
            .saturating_add(self.padded_data_len())
            .saturating_add(dd)
    }

    /// Bytes of the whole PDU on the wire.
    #[inline]
    pub fn total_len(&self, digests: Digests) -> usize {
        BHS_LEN.saturating_add(self.remaining(digests))
    }
}

/// Length of `len` bytes rounded up to a multiple of 4.
#[inline]
pub const fn padded_len(len: usize) -> usize {
    len.saturating_add(pad_len(len))
}

/// Number of zero bytes that follow a data segment of `len` bytes.
#[inline]
pub const fn pad_len(len: usize) -> usize {
    len.wrapping_neg() & 3
}

#[inline]
fn read_digest(digest: &[u8]) -> Result<u32, Error> {
    match digest.get(..DIGEST_LEN) {
        Some(&[a, b, c, d]) => Ok(u32::from_le_bytes([a, b, c, d])),
        _ => Err(Error::Truncated {
            needed: DIGEST_LEN,
            got: digest.len(),
        }),
    }
}

/// Header digest of BHS+AHS, as a value; on the wire it is little-endian (RFC 7143 §13.1
/// with the CRC's bit order; every implementation writes the u32 least significant byte first).
#[inline]
pub fn header_digest(header: &[u8]) -> u32 {
    crc32c(header)
}

/// Checks the 4 digest bytes that follow BHS+AHS.
#[inline]
pub fn check_header_digest(header: &[u8], digest: &[u8]) -> Result<(), Error> {
    let received = read_digest(digest)?;
    let computed = crc32c(header);
    if received == computed {
        Ok(())
    } else {
        Err(Error::HeaderDigestMismatch { received, computed })
    }
}

/// Data digest of a data segment: the CRC covers the data and its zero padding.
#[inline]
pub fn data_digest(data: &[u8]) -> u32 {
    const ZEROS: [u8; 3] = [0; 3];
    let pad = ZEROS.get(..pad_len(data.len())).unwrap_or(&[]);
    Crc32c::new().update(data).update(pad).finish()
}

/// Checks the data digest. `padded_data` is the data segment as read from the wire, padding
/// included (the padding bytes are covered by the digest whatever their value).
#[inline]
pub fn check_data_digest(padded_data: &[u8], digest: &[u8]) -> Result<(), Error> {
    let received = read_digest(digest)?;
    let computed = crc32c(padded_data);
    if received == computed {
        Ok(())
    } else {
        Err(Error::DataDigestMismatch { received, computed })
    }
}

/// Writes what follows a data segment of `data`: zero padding, then (if `data_digest_on` and the
/// segment is not empty) the data digest. Returns the number of bytes written into `buf`.
#[inline]
pub fn emit_data_trailer(
    data: &[u8],
    data_digest_on: bool,
    buf: &mut [u8],
) -> Result<usize, Error> {
    let pad = pad_len(data.len());
    let dd = if data_digest_on && !data.is_empty() {
        DIGEST_LEN
    } else {
        0
    };
    let needed = pad.saturating_add(dd);
    let got = buf.len();
    let out = buf
        .get_mut(..needed)
        .ok_or(Error::BufferTooSmall { needed, got })?;
    let (pad_bytes, digest) = out.split_at_mut(pad);
    pad_bytes.fill(0);
    if dd != 0 {
        digest.copy_from_slice(&data_digest(data).to_le_bytes());
    }
    Ok(needed)
}

/// Bytes of trailer [`emit_data_trailer`] writes for a data segment of `data_len` bytes.
#[inline]
pub fn data_trailer_len(data_len: usize, data_digest_on: bool) -> usize {
    let dd = if data_digest_on && data_len > 0 {
        DIGEST_LEN
    } else {
        0
    };
    pad_len(data_len).saturating_add(dd)
}

/// Appends a whole PDU to `out`: BHS, AHS, header digest, data, padding and data digest.
/// On error `out` is left as it was.
#[inline]
pub fn emit_pdu(
    h: &dyn Header,
    data: &[u8],
    digests: Digests,
    out: &mut alloc::vec::Vec<u8>,
) -> Result<(), Error> {
    // Refused before `out` grows: `Header::emit` would refuse it too, but only after the
    // buffer had been sized for it.
    if data.len() > MAX_DATA_SEGMENT_LEN as usize {
        return Err(Error::DataSegmentTooLong {
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            max: MAX_DATA_SEGMENT_LEN,
        });
    }
    let start = out.len();
    let hl = h.header_wire_len(digests.header);
    let total = hl
        .saturating_add(data.len())
        .saturating_add(data_trailer_len(data.len(), digests.data));
    out.resize(start.saturating_add(total), 0);
    let result = (|| {
        let buf = out.get_mut(start..).ok_or(Error::BufferTooSmall {
            needed: total,
            got: 0,
        })?;
        let n = h.emit(data.len(), digests.header, buf)?;
        let (seg, trailer) = buf
            .get_mut(n..)
            .ok_or(Error::BufferTooSmall {
                needed: total,
                got: n,
            })?
            .split_at_mut(data.len());
        seg.copy_from_slice(data);
        emit_data_trailer(data, digests.data, trailer)?;
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A whole PDU located inside a received buffer, with both digests checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPdu<'a> {
    pub info: HeaderInfo,
    /// BHS + AHS.
    pub header: &'a [u8],
    /// The data segment without padding.
    pub data: &'a [u8],
}

impl<'a> RawPdu<'a> {
    /// Splits one PDU off the front of `buf` (for tests, fake targets and fuzzing; the session's
    /// reader uses the incremental steps). Checks DataSegmentLength against `max_data_len` and
    /// both digests when enabled. Returns the PDU and the bytes it occupied.
    #[inline]
    pub fn split(
        buf: &'a [u8],
        digests: Digests,
        max_data_len: u32,
    ) -> Result<(RawPdu<'a>, usize), Error> {
        let info = HeaderInfo::parse(buf)?;
        info.check_data_len(max_data_len)?;
        let total = info.total_len(digests);
        if buf.len() < total {
            return Err(Error::Truncated {
                needed: total,
                got: buf.len(),
            });
        }
        let truncated = Error::Truncated {
            needed: total,
            got: buf.len(),
        };
        let hl = info.header_len();
        let header = buf.get(..hl).ok_or(truncated)?;
        // Every offset below is at most `total`, which `buf` holds: the sums cannot saturate.
        let mut at = hl;
        if digests.header {
            check_header_digest(header, buf.get(at..).ok_or(truncated)?)?;
            at = at.saturating_add(DIGEST_LEN);
        }
        let dl = info.data_len as usize;
        let padded = buf
            .get(at..at.saturating_add(info.padded_data_len()))
            .ok_or(truncated)?;
        let data = padded.get(..dl).ok_or(truncated)?;
        at = at.saturating_add(padded.len());
        if digests.data && dl > 0 {
            check_data_digest(padded, buf.get(at..).ok_or(truncated)?)?;
            at = at.saturating_add(DIGEST_LEN);
        }
        Ok((RawPdu { info, header, data }, at))
    }

    #[inline]
    pub fn parse(&self) -> Result<Pdu, Error> {
        Pdu::parse(self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{NopIn, NopOut, RESERVED_TAG};
    use super::*;
    use alloc::vec;

    #[test]
    fn header_info_reads_lengths_for_the_receive_loop() {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x25;
        bhs[4] = 2; // 8 bytes of AHS
        bhs[5..8].copy_from_slice(&[0x01, 0x00, 0x01]); // 65537
        let info = HeaderInfo::parse(&bhs).unwrap();
        assert_eq!(info.opcode, Opcode::DataIn);
        assert_eq!(info.ahs_len, 8);
        assert_eq!(info.data_len, 65537);
        assert_eq!(info.padded_data_len(), 65540);
        assert_eq!(info.remaining(Digests::default()), 8 + 65540);
        let both = Digests {
            header: true,
            data: true,
        };
        assert_eq!(info.remaining(both), 8 + 4 + 65540 + 4);
        assert_eq!(info.total_len(both), 48 + 8 + 4 + 65540 + 4);
        assert_eq!(
            info.check_data_len(65536),
            Err(Error::DataSegmentTooLong {
                len: 65537,
                max: 65536
            })
        );
        assert_eq!(info.check_data_len(65537), Ok(()));
        assert_eq!(
            HeaderInfo::parse(&bhs[..47]),
            Err(Error::Truncated {
                needed: 48,
                got: 47
            })
        );
    }

    #[test]
    fn no_data_digest_on_an_empty_data_segment() {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x20;
        let info = HeaderInfo::parse(&bhs).unwrap();
        let both = Digests {
            header: true,
            data: true,
        };
        assert_eq!(info.remaining(both), 4);
        assert_eq!(data_trailer_len(0, true), 0);
        assert_eq!(data_trailer_len(5, true), 3 + 4);
        assert_eq!(data_trailer_len(8, false), 0);
    }

    #[test]
    fn padding() {
        assert_eq!([0, 1, 2, 3, 4, 5].map(padded_len), [0, 4, 4, 4, 4, 8]);
        assert_eq!([0, 1, 2, 3, 4].map(pad_len), [0, 3, 2, 1, 0]);
    }

    #[test]
    fn data_digest_covers_the_padding() {
        let data = b"abcde";
        let mut padded = data.to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(data_digest(data), crc32c(&padded));
        let mut buf = [0xa5u8; 16];
        let n = emit_data_trailer(data, true, &mut buf).unwrap();
        assert_eq!(n, 7);
        assert_eq!(&buf[..3], &[0, 0, 0]);
        assert_eq!(buf[3..7], crc32c(&padded).to_le_bytes());
        assert_eq!(buf[7], 0xa5);
        assert_eq!(check_data_digest(&padded, &buf[3..7]), Ok(()));
        let mut bad = padded.clone();
        bad[0] ^= 1;
        assert!(matches!(
            check_data_digest(&bad, &buf[3..7]),
            Err(Error::DataDigestMismatch { .. })
        ));
        assert_eq!(
            emit_data_trailer(data, true, &mut [0u8; 6]),
            Err(Error::BufferTooSmall { needed: 7, got: 6 })
        );
    }

    #[test]
    fn crc32c_known_values() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        // On the wire this is least significant byte first.
        assert_eq!(0x8a91_36aau32.to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
    }

    #[test]
    fn header_digest_is_computed_over_the_final_lengths() {
        // A NOP-Out with 5 bytes of ping data: the digest must cover DataSegmentLength = 5.
        let nop = NopOut {
            immediate: true,
            itt: 1,
            ttt: RESERVED_TAG,
            ..NopOut::default()
        };
        let mut buf = [0xa5u8; 52];
        assert_eq!(nop.emit(5, true, &mut buf), Ok(52));
        assert_eq!(&buf[5..8], &[0, 0, 5]);
        assert_eq!(check_header_digest(&buf[..48], &buf[48..52]), Ok(()));
        // Independent vector: Python, bitwise CRC32C (poly 0x82f63b78, reflected, init/xorout
        // 0xffffffff) over bytes.fromhex("40800000000000050000000000000000"
        // "00000001ffffffff") + bytes(24):
        //   def crc32c(b):
        //       c = 0xffffffff
        //       for x in b:
        //           c ^= x
        //           for _ in range(8): c = (c >> 1) ^ (0x82f63b78 & -(c & 1))
        //       return c ^ 0xffffffff
        //   crc32c(h).to_bytes(4, "little").hex()  ->  "f8673db1"
        let expected_header = {
            let mut h = [0u8; 48];
            h[..24].copy_from_slice(&[
                0x40, 0x80, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff,
                0xff,
            ]);
            h
        };
        assert_eq!(&buf[..48], &expected_header);
        assert_eq!(&buf[48..52], &HEADER_DIGEST_VECTOR);
    }

    /// See `header_digest_is_computed_over_the_final_lengths` for how this was computed.
    const HEADER_DIGEST_VECTOR: [u8; 4] = [0xf8, 0x67, 0x3d, 0xb1];

    #[test]
    fn header_digest_mismatch_is_named() {
        let nop = NopIn::default();
        let mut buf = vec![0u8; 52];
        nop.emit(0, true, &mut buf).unwrap();
        buf[20] ^= 0x01;
        assert!(matches!(
            RawPdu::split(
                &buf,
                Digests {
                    header: true,
                    data: false
                },
                8192
            ),
            Err(Error::HeaderDigestMismatch { .. })
        ));
    }

    #[test]
    fn emit_rejects_small_buffers_and_huge_segments() {
        let nop = NopOut::default();
        assert_eq!(
            nop.emit(0, true, &mut [0u8; 51]),
            Err(Error::BufferTooSmall {
                needed: 52,
                got: 51
            })
        );
        assert_eq!(
            nop.emit(1 << 24, false, &mut [0u8; 48]),
            Err(Error::DataSegmentTooLong {
                len: 1 << 24,
                max: MAX_DATA_SEGMENT_LEN
            })
        );
        assert_eq!(nop.emit((1 << 24) - 1, false, &mut [0u8; 48]), Ok(48));
    }

    #[test]
    fn emit_pdu_appends_a_whole_pdu() {
        let mut out = vec![0xee];
        let both = Digests {
            header: true,
            data: true,
        };
        emit_pdu(&NopIn::default(), b"ping!", both, &mut out).unwrap();
        assert_eq!(out.len(), 1 + 48 + 4 + 8 + 4);
        let (raw, used) = RawPdu::split(&out[1..], both, 8192).unwrap();
        assert_eq!(used, out.len() - 1);
        assert_eq!(raw.data, b"ping!");
        let mut out = vec![1, 2];
        let huge = vec![0u8; 1 << 24];
        assert!(emit_pdu(&NopIn::default(), &huge, both, &mut out).is_err());
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn emit_pdu_refuses_an_oversized_segment_before_growing_the_buffer() {
        let mut out = alloc::vec::Vec::new();
        let huge = vec![0u8; 1 << 24];
        assert_eq!(
            emit_pdu(&NopIn::default(), &huge, Digests::default(), &mut out),
            Err(Error::DataSegmentTooLong {
                len: 1 << 24,
                max: MAX_DATA_SEGMENT_LEN
            })
        );
        // A 16 MiB segment the header cannot describe must not cost 16 MiB of kernel memory.
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn padding_of_extreme_lengths_does_not_wrap() {
        assert_eq!(pad_len(usize::MAX), 1);
        assert_eq!(padded_len(usize::MAX - 3), usize::MAX - 3);
        assert_eq!(padded_len(usize::MAX), usize::MAX);
        let info = HeaderInfo {
            opcode: Opcode::DataIn,
            immediate: false,
            ahs_len: usize::MAX,
            data_len: MAX_DATA_SEGMENT_LEN,
        };
        assert_eq!(info.total_len(Digests::default()), usize::MAX);
    }

    #[test]
    fn split_checks_length_limit_and_truncation() {
        let nop = NopIn::default();
        let wire = emit_with(&nop, &[9u8; 100], Digests::default());
        assert_eq!(wire.len(), 148);
        assert_eq!(
            RawPdu::split(&wire, Digests::default(), 99),
            Err(Error::DataSegmentTooLong { len: 100, max: 99 })
        );
        assert_eq!(
            RawPdu::split(&wire[..147], Digests::default(), 8192),
            Err(Error::Truncated {
                needed: 148,
                got: 147
            })
        );
        // AHS length larger than the bytes given to the header parser.
        let mut bhs = [0u8; 52];
        bhs[0] = 0x20;
        bhs[4] = 2;
        assert_eq!(
            Pdu::parse(&bhs),
            Err(Error::Truncated {
                needed: 56,
                got: 52
            })
        );
    }
}
