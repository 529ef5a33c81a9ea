// SPDX-License-Identifier: BSD-2-Clause
//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, AHS, padding and digests.
//!
//! One file per PDU family. Each family has a `Repr`-style struct with public fields that
//! `parse`s from a BHS (+AHS) and `emit`s into one, through the [`Bhs`]/[`BhsMut`] views
//! (`bhs.rs`); the start offset of every field is in one module (`field.rs`). The list of PDU
//! kinds is one table (`pdu_kinds!` below) that generates [`Opcode`], the [`Pdu`] enum a
//! receive loop dispatches on, and its parse dispatch. Lengths, padding, digests and whole PDUs
//! in buffers are `framing.rs`.
//!
//! # Receiving
//! A reader reads exactly [`BHS_LEN`] bytes, calls [`HeaderInfo::parse`] to learn the opcode and
//! the AHS and data segment lengths, checks the data segment length against the negotiated
//! MaxRecvDataSegmentLength ([`HeaderInfo::check_data_len`]), reads [`HeaderInfo::remaining`]
//! more bytes, then checks the header digest ([`check_header_digest`]) over BHS+AHS, parses the
//! header ([`Pdu::parse`]) and checks the data digest ([`check_data_digest`]) over the padded data.
//!
//! # Sending
//! [`Header::emit`] writes BHS, AHS and (optionally) the header digest, with the data segment
//! length filled in *before* the digest is computed (isboot computed it first, so every PDU with
//! immediate data failed with HeaderDigest=CRC32C). [`emit_data_trailer`] writes the padding and
//! data digest that follow a data segment.
//!
//! # Panics
//! None on any input: every buffer is length-checked before a fixed-offset access, and those
//! offsets are constants inside [`BHS_LEN`]. Unknown opcodes and enum values are data.
//!
//! # `#[inline]`
//! Every function of the PDU codec (except login and text PDUs) is `#[inline]`: rustc then
//! compiles it in the crate that calls it. The kernel module builds isboot-core for size
//! (driver/kmod/Cargo.toml, most of it runs once per login) but parses and emits PDUs on every
//! I/O: this way those are compiled with the module's own opt-level 2.

use core::fmt;

mod async_msg;
mod bhs;
mod data;
mod field;
mod framing;
mod login;
mod logout;
mod nop;
mod reject;
mod scsi;
mod snack;
mod text;
mod tmf;

pub use async_msg::{AsyncEvent, AsyncMessage};
use bhs::FINAL_BIT;
pub use bhs::{Bhs, BhsMut, TargetSns};
pub use data::{DataIn, DataOut, R2t};
pub use framing::{
    check_data_digest, check_header_digest, data_digest, data_trailer_len, emit_data_trailer,
    emit_pdu, header_digest, pad_len, padded_len, Digests, HeaderInfo, RawPdu,
};
pub use login::{LoginRequest, LoginResponse, Stage, LOGIN_STATUS_SUCCESS};
pub use logout::{LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode};
pub use nop::{NopIn, NopOut};
pub use reject::{Reject, RejectReason};
pub use scsi::{
    parse_response_data, Cdb, Residual, ResponseData, ScsiCommand, ScsiResponse, TaskAttr,
    MAX_CDB_LEN,
};
pub use snack::{SnackRequest, SnackType};
pub use text::{TextRequest, TextResponse};
pub use tmf::{TaskMgmtRequest, TaskMgmtResponse, TmfFunction, TmfResponse};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Length of a header or data digest on the wire.
pub const DIGEST_LEN: usize = 4;
/// The largest DataSegmentLength the 24-bit field can carry.
pub const MAX_DATA_SEGMENT_LEN: u32 = (1 << 24) - 1;
/// The largest AHS: TotalAHSLength is one byte counting 4-byte words.
pub const MAX_AHS_LEN: usize = 255 * 4;
/// The reserved tag value (ITT of unsolicited target PDUs, TTT "no reply wanted").
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Everything that can be wrong with a PDU or with a buffer given to the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the structure needs.
    Truncated { needed: usize, got: usize },
    /// The output buffer cannot hold what is to be written.
    BufferTooSmall { needed: usize, got: usize },
    /// DataSegmentLength is above what we negotiated to receive (or above 2^24-1 when sending).
    DataSegmentTooLong { len: u32, max: u32 },
    /// The header digest on the wire does not match BHS+AHS.
    HeaderDigestMismatch { received: u32, computed: u32 },
    /// The data digest on the wire does not match the padded data segment.
    DataDigestMismatch { received: u32, computed: u32 },
    /// The header is not the opcode the parser was asked for.
    WrongOpcode { expected: Opcode, got: Opcode },
    /// An opcode we cannot parse (not defined in RFC 7143).
    UnknownOpcode(u8),
    /// An AHS whose AHSLength runs past TotalAHSLength.
    AhsOverrun { offset: usize },
    /// An AHS type a SCSI Command may not carry twice, or one we do not know.
    BadAhs { ahs_type: u8 },
    /// A CDB longer than [`MAX_CDB_LEN`] or shorter than 1 byte.
    BadCdbLength(usize),
    /// No memory for a CDB longer than 16 bytes.
    NoMemory,
    /// The Login CSG or NSG field holds the reserved value 2.
    ReservedStage,
    /// SCSI Response / Data-In with both overflow and underflow bits set.
    OverflowAndUnderflow,
    /// Data-In with the S (status) bit but without F (final).
    StatusWithoutFinal,
    /// SenseLength in a SCSI Response data segment runs past the segment.
    SenseLengthTooLong { sense_len: usize, segment: usize },
    /// A SCSI Response data segment of 1 byte: not even the SenseLength fits.
    SenseLengthTruncated,
}

impl fmt::Display for Error {
    // Not `#[inline]`, and one `write!` for each message shape: cold code, smaller so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { needed, got } | Error::BufferTooSmall { needed, got } => {
                let what = match *self {
                    Error::Truncated { .. } => "PDU truncated",
                    _ => "buffer too small",
                };
                write!(f, "{what}: need {needed} bytes, got {got}")
            }
            Error::DataSegmentTooLong { len, max } => {
                write!(f, "DataSegmentLength {len} above the maximum {max}")
            }
            Error::HeaderDigestMismatch { received, computed }
            | Error::DataDigestMismatch { received, computed } => {
                let what = match *self {
                    Error::HeaderDigestMismatch { .. } => "header",
                    _ => "data",
                };
                write!(
                    f,
                    "{what} digest mismatch: received {received:#010x}, computed {computed:#010x}"
                )
            }
            Error::WrongOpcode { expected, got } => {
                write!(f, "expected opcode {expected:?}, got {got:?}")
            }
            Error::UnknownOpcode(op) => write!(f, "unknown opcode {op:#04x}"),
            Error::AhsOverrun { offset } => write!(f, "AHS at offset {offset} overruns its header"),
            Error::BadAhs { ahs_type } => write!(f, "unexpected AHS type {ahs_type}"),
            Error::BadCdbLength(n) => write!(f, "CDB length {n} out of range 1..={MAX_CDB_LEN}"),
            Error::NoMemory => f.write_str("no memory for a CDB longer than 16 bytes"),
            Error::ReservedStage => f.write_str("login stage field holds the reserved value 2"),
            Error::OverflowAndUnderflow => f.write_str("both overflow and underflow flags set"),
            Error::StatusWithoutFinal => f.write_str("Data-In with S bit but without F bit"),
            Error::SenseLengthTooLong { sense_len, segment } => write!(
                f,
                "SenseLength {sense_len} runs past the {segment}-byte data segment"
            ),
            Error::SenseLengthTruncated => {
                f.write_str("1-byte SCSI Response data segment cannot hold SenseLength")
            }
        }
    }
}

impl core::error::Error for Error {}

/// The one list of PDU kinds (RFC 7143 §11.2.1.2): each opcode's value and the family type
/// that parses and emits it. [`Opcode`] and its `u8` conversions, [`Pdu`], the dispatch of
/// [`Pdu::parse`], [`Pdu::target_sns`] and the `From<Family> for Pdu` impls are generated from
/// it. A family marked `ahs` parses its AHS too; one marked `target` is a target PDU and carries
/// a [`TargetSns`] in its `sns` field.
macro_rules! pdu_kinds {
    ($($name:ident = $code:literal $($flag:ident)*,)*) => {
        /// The opcode in BHS byte 0 (6 bits).
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $($name,)*
            /// Any other value (vendor-specific or undefined); the low 6 bits of byte 0.
            Unknown(u8),
        }

        /// What `#[derive(Debug)]` writes, but never inlined: the derived one is small enough
        /// for rustc to compile it again in every crate that formats an opcode, and the
        /// kernel module then carried it twice (once per opt-level), each with its jump table.
        impl fmt::Debug for Opcode {
            #[inline(never)]
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Opcode::$name => f.write_str(stringify!($name)),)*
                    Opcode::Unknown(v) => f.debug_tuple("Unknown").field(v).finish(),
                }
            }
        }

        impl From<u8> for Opcode {
            #[inline]
            fn from(v: u8) -> Self {
                match v & 0x3f {
                    $($code => Opcode::$name,)*
                    other => Opcode::Unknown(other),
                }
            }
        }

        impl From<Opcode> for u8 {
            #[inline]
            fn from(op: Opcode) -> u8 {
                match op {
                    $(Opcode::$name => $code,)*
                    Opcode::Unknown(v) => v & 0x3f,
                }
            }
        }

        /// Any PDU header, parsed. Data segments stay with the caller (see each family for
        /// helpers that interpret them, e.g. [`parse_response_data`]).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Pdu {
            $($name($name),)*
        }

        impl Pdu {
            /// Parses BHS+AHS (`header` holds at least [`BHS_LEN`] + TotalAHSLength bytes; the
            /// header digest, if any, is checked separately). An opcode RFC 7143 does not define
            /// is [`Error::UnknownOpcode`].
            #[inline]
            pub fn parse(header: &[u8]) -> Result<Pdu, Error> {
                let bhs = Bhs::new_checked(header)?;
                let header_len = BHS_LEN.saturating_add(bhs.total_ahs_len());
                let ahs = header.get(BHS_LEN..header_len).ok_or(Error::Truncated {
                    needed: header_len,
                    got: header.len(),
                })?;
                Ok(match bhs.opcode() {
                    $(Opcode::$name => Pdu::$name(pdu_kinds!(@parse $name, bhs, ahs [$($flag)*])),)*
                    Opcode::Unknown(op) => return Err(Error::UnknownOpcode(op)),
                })
            }

            /// StatSN, ExpCmdSN and MaxCmdSN of a target PDU; `None` for initiator PDUs.
            #[inline]
            pub fn target_sns(&self) -> Option<&TargetSns> {
                match self {
                    $(Pdu::$name(_p) => pdu_kinds!(@sns _p, [$($flag)*]),)*
                }
            }

            #[inline]
            fn inner(&self) -> &dyn Header {
                match self {
                    $(Pdu::$name(p) => p,)*
                }
            }
        }

        $(impl From<$name> for Pdu {
            #[inline]
            fn from(p: $name) -> Pdu {
                Pdu::$name(p)
            }
        })*
    };
    (@parse $name:ident, $bhs:ident, $ahs:ident []) => { $name::parse(&$bhs)? };
    (@parse $name:ident, $bhs:ident, $ahs:ident [ahs $($rest:ident)*]) => {
        $name::parse(&$bhs, $ahs)?
    };
    (@parse $name:ident, $bhs:ident, $ahs:ident [$other:ident $($rest:ident)*]) => {
        pdu_kinds!(@parse $name, $bhs, $ahs [$($rest)*])
    };
    (@sns $p:ident, []) => { None };
    (@sns $p:ident, [target $($rest:ident)*]) => { Some(&$p.sns) };
    (@sns $p:ident, [$other:ident $($rest:ident)*]) => { pdu_kinds!(@sns $p, [$($rest)*]) };
}

pdu_kinds! {
    NopOut = 0x00,
    ScsiCommand = 0x01 ahs,
    TaskMgmtRequest = 0x02,
    LoginRequest = 0x03,
    TextRequest = 0x04,
    DataOut = 0x05,
    LogoutRequest = 0x06,
    SnackRequest = 0x10,
    NopIn = 0x20 target,
    ScsiResponse = 0x21 target,
    TaskMgmtResponse = 0x22 target,
    LoginResponse = 0x23 target,
    TextResponse = 0x24 target,
    DataIn = 0x25 target,
    LogoutResponse = 0x26 target,
    R2t = 0x31 target,
    AsyncMessage = 0x32 target,
    Reject = 0x3f target,
}

impl Opcode {
    /// True for opcodes a target sends (0x20..=0x3f).
    #[inline]
    pub fn is_target_opcode(self) -> bool {
        u8::from(self) & 0x20 != 0
    }
}

/// Declares a `u8`-valued enum with an `Unknown(u8)` catch-all, so that values from the wire
/// are data, never a panic.
macro_rules! u8_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value RFC 7143 does not define.
            Unknown(u8),
        }
        impl From<u8> for $name {
            #[inline]
            fn from(v: u8) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            #[inline]
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use u8_enum;

/// A PDU header that can be written: each family implements the opcode-specific part, the
/// provided [`Header::emit`] does lengths and digest in the right order.
pub trait Header {
    fn opcode(&self) -> Opcode;
    /// The I bit.
    #[inline]
    fn immediate(&self) -> bool {
        false
    }
    /// Writes opcode-specific fields into a zeroed BHS (opcode, lengths and digest are written
    /// by [`Header::emit`]).
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>);
    /// Bytes of AHS this header carries (a multiple of 4, at most [`MAX_AHS_LEN`]).
    #[inline]
    fn ahs_len(&self) -> usize {
        0
    }
    /// Writes the AHS into `buf`, which is exactly [`Header::ahs_len`] bytes and zeroed.
    #[inline]
    fn emit_ahs(&self, _buf: &mut [u8]) {}

    /// Bytes [`Header::emit`] writes.
    #[inline]
    fn header_wire_len(&self, header_digest: bool) -> usize {
        let hd = if header_digest { DIGEST_LEN } else { 0 };
        BHS_LEN.saturating_add(self.ahs_len()).saturating_add(hd)
    }

    /// Writes BHS, AHS and the optional header digest for a PDU whose data segment is `data_len`
    /// bytes (unpadded). The digest is computed last, over the final bytes. Returns the number of
    /// bytes written.
    #[inline]
    fn emit(&self, data_len: usize, header_digest: bool, buf: &mut [u8]) -> Result<usize, Error> {
        let ahs_len = self.ahs_len();
        let dsl = u32::try_from(data_len)
            .ok()
            .filter(|&l| l <= MAX_DATA_SEGMENT_LEN)
            .ok_or(Error::DataSegmentTooLong {
                len: u32::try_from(data_len).unwrap_or(u32::MAX),
                max: MAX_DATA_SEGMENT_LEN,
            })?;
        if ahs_len % 4 != 0 || ahs_len > MAX_AHS_LEN {
            return Err(Error::AhsOverrun { offset: ahs_len });
        }
        let header_len = BHS_LEN.saturating_add(ahs_len);
        let needed = self.header_wire_len(header_digest);
        let got = buf.len();
        let out = buf
            .get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed, got })?;
        let (header, digest) = out.split_at_mut(header_len);
        header.fill(0);
        let (bhs_bytes, ahs) = header.split_at_mut(BHS_LEN);
        let raw = <&mut [u8; BHS_LEN]>::try_from(bhs_bytes).map_err(|_| Error::BufferTooSmall {
            needed: BHS_LEN,
            got,
        })?;
        let mut bhs = BhsMut::new(raw);
        self.emit_bhs(&mut bhs);
        bhs.set_opcode(self.opcode(), self.immediate());
        bhs.set_total_ahs_len(ahs_len);
        bhs.set_data_segment_len(dsl);
        self.emit_ahs(ahs);
        if header_digest {
            digest.copy_from_slice(&framing::header_digest(header).to_le_bytes());
        }
        Ok(needed)
    }
}

impl Header for Pdu {
    #[inline]
    fn opcode(&self) -> Opcode {
        self.inner().opcode()
    }
    #[inline]
    fn immediate(&self) -> bool {
        self.inner().immediate()
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        self.inner().emit_bhs(bhs)
    }
    #[inline]
    fn ahs_len(&self) -> usize {
        self.inner().ahs_len()
    }
    #[inline]
    fn emit_ahs(&self, buf: &mut [u8]) {
        self.inner().emit_ahs(buf)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Emits `h` with `data` into a 0xa5-filled buffer, returns exactly the bytes written.
    pub fn emit_with(h: &dyn Header, data: &[u8], digests: Digests) -> Vec<u8> {
        let mut buf = vec![0xa5u8; 2048 + data.len()];
        let n = h.emit(data.len(), digests.header, &mut buf).unwrap();
        buf[n..n + data.len()].copy_from_slice(data);
        let t = emit_data_trailer(data, digests.data, &mut buf[n + data.len()..]).unwrap();
        buf.truncate(n + data.len() + t);
        buf
    }

    /// Emits then parses back through the full receive path.
    pub fn round_trip(p: Pdu) {
        for digests in [
            Digests::default(),
            Digests {
                header: true,
                data: true,
            },
        ] {
            let data = [1u8, 2, 3, 4, 5];
            let wire = emit_with(&p, &data, digests);
            let (raw, used) = RawPdu::split(&wire, digests, 8192).unwrap();
            assert_eq!(used, wire.len());
            assert_eq!(raw.data, &data);
            assert_eq!(raw.parse().unwrap(), p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::sn::Sn;
    use alloc::format;
    use alloc::vec;

    #[test]
    fn every_opcode_value_round_trips() {
        for v in 0u8..0x40 {
            let op = Opcode::from(v);
            assert_eq!(u8::from(op), v);
            if let Opcode::Unknown(_) = op {
                let mut bhs = [0u8; 48];
                bhs[0] = v;
                assert_eq!(Pdu::parse(&bhs), Err(Error::UnknownOpcode(v)));
            }
        }
        assert_eq!(Opcode::from(0x43), Opcode::LoginRequest);
        assert!(Opcode::R2t.is_target_opcode());
        assert!(!Opcode::DataOut.is_target_opcode());
    }

    /// The written-out `Debug` says what the derived one did: log lines and test failures
    /// name opcodes with it.
    #[test]
    fn opcode_debug_is_the_derived_text() {
        assert_eq!(format!("{:?}", Opcode::from(0x43)), "LoginRequest");
        assert_eq!(format!("{:?}", Opcode::from(0x21)), "ScsiResponse");
        assert_eq!(format!("{:?}", Opcode::Reject), "Reject");
        assert_eq!(format!("{:?}", Opcode::from(0x15)), "Unknown(21)");
        assert_eq!(format!("{:#?}", Opcode::Unknown(7)), "Unknown(\n    7,\n)");
        assert_eq!(
            format!("{:?}", Some(Opcode::NopIn)),
            "Some(NopIn)",
            "nested in a derived Debug"
        );
    }

    #[test]
    fn exactly_the_target_pdus_carry_target_sns() {
        let mut checked = 0;
        for v in 0u8..0x40 {
            let mut bhs = [0u8; 48];
            bhs[0] = v;
            bhs[1] = 0x80;
            bhs[28..32].copy_from_slice(&7u32.to_be_bytes());
            if let Ok(p) = Pdu::parse(&bhs) {
                let sns = p.target_sns();
                assert_eq!(
                    sns.is_some(),
                    Opcode::from(v).is_target_opcode(),
                    "{v:#04x}"
                );
                if let Some(s) = sns {
                    assert_eq!(s.exp_cmd_sn, Sn(7), "{v:#04x}");
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 18, "every defined opcode parsed");
    }

    #[test]
    fn a_family_parser_refuses_another_opcode_by_name() {
        let wire = emit_with(&NopIn::default(), &[], Digests::default());
        let bhs = Bhs::new_checked(&wire).unwrap();
        let err = NopOut::parse(&bhs).unwrap_err();
        assert_eq!(
            err,
            Error::WrongOpcode {
                expected: Opcode::NopOut,
                got: Opcode::NopIn
            }
        );
        assert!(alloc::format!("{err}").contains("NopIn"), "{err}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic xorshift sweep over headers with every opcode and random fields; a
        // stand-in for the fuzzer that runs in every test pass.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = vec![0u8; 48 + 1024 + 64];
        for round in 0..20_000u32 {
            for b in buf.iter_mut() {
                *b = next() as u8;
            }
            buf[0] = (round % 64) as u8;
            // Keep AHS short in most rounds so that the opcode parsers are reached.
            if round % 4 != 0 {
                buf[4] %= 8;
            }
            buf[5] = 0;
            buf[6] %= 4;
            let len = 40 + (next() as usize % (buf.len() - 40));
            let b = &buf[..len];
            let _ = HeaderInfo::parse(b);
            let _ = Pdu::parse(b);
            for d in [
                Digests::default(),
                Digests {
                    header: true,
                    data: true,
                },
            ] {
                let _ = RawPdu::split(b, d, 8192);
            }
            let _ = parse_response_data(&b[..len.min(64)]);
        }
    }
}
