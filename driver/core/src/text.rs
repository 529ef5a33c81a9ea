// SPDX-License-Identifier: BSD-2-Clause
//! Text keys (RFC 7143 §6, §13): `key=value` pairs separated by NUL, and the negotiation of the
//! operational parameters.
//!
//! * [`TextBuilder`] encodes pairs, [`parse_pairs`] decodes them, [`Accumulator`] joins text
//!   split over several PDUs with the C bit (bounded), [`split_for_pdus`] does the reverse.
//! * [`Offer`] is what we propose; [`Negotiation`] takes the target's answers (and offers) one
//!   pair at a time, checks every value against the key's range and result function, tells the
//!   caller what to reply, and [`Negotiation::finish`] yields the [`SessionParams`].
//! * Security keys (`AuthMethod`, `CHAP_*`) are not handled here: see `crate::chap`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Longest key name (RFC 7143 §6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value we accept. RFC 7143 limits most values to 255 bytes but allows longer ones
/// (CHAP_C/CHAP_R carry up to 1024 binary bytes, 2050 characters in hex); this bound only
/// keeps memory use finite.
pub const MAX_VALUE_LEN: usize = 8192;
/// Default bound on the text of one negotiation sequence joined with the C bit. RFC 7143 asks
/// every implementation to accept at least 8192 bytes.
pub const DEFAULT_MAX_TEXT_LEN: usize = 64 * 1024;
/// Most distinct keys one negotiation may carry from the target.
pub const MAX_KEYS: usize = 128;

/// Special values (RFC 7143 §6.2).
pub const REJECT: &str = "Reject";
pub const IRRELEVANT: &str = "Irrelevant";
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// Everything that can be wrong with text data or with a negotiated value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A key of zero length.
    EmptyKey,
    /// A key longer than [`MAX_KEY_LEN`].
    KeyTooLong { len: usize },
    /// A byte outside `[A-Za-z0-9.-+@_]` in a key name.
    BadKeyChar { byte: u8 },
    /// A pair without `=`.
    MissingEquals,
    /// A value longer than [`MAX_VALUE_LEN`].
    ValueTooLong { key: String, len: usize },
    /// A received value that is not UTF-8.
    BadValue { key: String },
    /// A value to send that contains a NUL, which would end it early on the wire.
    ValueWithNul { key: String },
    /// Text data whose last pair is not terminated by NUL.
    MissingTerminator,
    /// Joined text (C bit) or an encoded negotiation beyond its bound.
    TooMuchText { limit: usize },
    /// More than [`MAX_KEYS`] keys in one negotiation.
    TooManyKeys,
    /// The target sent the same key twice in one negotiation.
    DuplicateKey(String),
    /// A numerical value that is not a decimal or `0x` hex number.
    BadNumber { key: &'static str, value: String },
    /// A boolean value other than `Yes`/`No`.
    BadBoolean { key: &'static str, value: String },
    /// A numerical value outside the key's range.
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// The target answered a list key with a value we did not offer.
    AnswerNotOffered { key: &'static str, value: String },
    /// The target's answer breaks the key's result function (e.g. a "min" answer above our
    /// offer, or `Yes` for an AND key we offered as `No`).
    AnswerViolatesResultFunction {
        key: &'static str,
        offered: u64,
        answered: u64,
    },
    /// After negotiation FirstBurstLength > MaxBurstLength (RFC 7143 §13.14).
    FirstBurstAboveMaxBurst { first: u32, max: u32 },
    /// Our own offer is outside a key's range or inconsistent.
    BadOffer { key: &'static str },
    /// A TargetAddress value that is not `host[:port][,tpgt]`.
    BadTargetAddress(String),
    /// A SendTargets answer with a TargetAddress before any TargetName it could belong to.
    TargetAddressWithoutName(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyKey => f.write_str("empty key name"),
            Error::KeyTooLong { len } => {
                write!(f, "key name of {len} bytes exceeds {MAX_KEY_LEN}")
            }
            Error::BadKeyChar { byte } => write!(f, "byte {byte:#04x} not allowed in a key name"),
            Error::MissingEquals => f.write_str("text pair without '='"),
            Error::ValueTooLong { key, len } => {
                write!(f, "value of {key} is {len} bytes, above {MAX_VALUE_LEN}")
            }
            Error::BadValue { key } => write!(f, "value of {key} is not valid UTF-8 text"),
            Error::ValueWithNul { key } => write!(f, "value of {key} contains a NUL byte"),
            Error::MissingTerminator => f.write_str("text data does not end with NUL"),
            Error::TooMuchText { limit } => write!(f, "text exceeds {limit} bytes"),
            Error::TooManyKeys => write!(f, "more than {MAX_KEYS} keys"),
            Error::DuplicateKey(k) => write!(f, "key {k} sent twice"),
            Error::BadNumber { key, value } => write!(f, "{key}={value} is not a number"),
            Error::BadBoolean { key, value } => write!(f, "{key}={value} is not Yes or No"),
            Error::OutOfRange {
                key,
                value,
                min,
                max,
            } => write!(f, "{key}={value} outside {min}..={max}"),
            Error::AnswerNotOffered { key, value } => {
                write!(f, "{key}={value} is not one of the values we offered")
            }
            Error::AnswerViolatesResultFunction {
                key,
                offered,
                answered,
            } => write!(
                f,
                "{key}: answer {answered} impossible for our offer {offered}"
            ),
            Error::FirstBurstAboveMaxBurst { first, max } => {
                write!(f, "FirstBurstLength {first} above MaxBurstLength {max}")
            }
            Error::BadOffer { key } => write!(f, "our offer for {key} is invalid"),
            Error::BadTargetAddress(v) => write!(f, "bad TargetAddress {v:?}"),
            Error::TargetAddressWithoutName(v) => {
                write!(f, "TargetAddress {v:?} before any TargetName")
            }
        }
    }
}

fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLong { len: key.len() });
    }
    match key
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'@' | b'_')))
    {
        Some(&byte) => Err(Error::BadKeyChar { byte }),
        None => Ok(()),
    }
}

/// Parses complete text data (all C-bit continuations joined) into `(key, value)` pairs.
///
/// Every pair must end with NUL. Empty entries (a NUL right after a NUL, as some targets pad)
/// are skipped. Keys are checked against RFC 7143 §6.1; values must be UTF-8 and at most
/// [`MAX_VALUE_LEN`] bytes. Duplicates are not checked here (see [`Negotiation`]).
pub fn parse_pairs(data: &[u8]) -> Result<Vec<(&str, &str)>, Error> {
    let body = match data {
        [] => return Ok(Vec::new()),
        [body @ .., 0] => body,
        _ => return Err(Error::MissingTerminator),
    };
    let mut out = Vec::new();
    for pair in body.split(|&b| b == 0) {
        if pair.is_empty() {
            continue;
        }
        let eq = pair
            .iter()
            .position(|&b| b == b'=')
            .ok_or(Error::MissingEquals)?;
        let (key, value) = pair.split_at(eq);
        let value = value.get(1..).unwrap_or(&[]);
        check_key(key)?;
        // check_key admits only ASCII.
        let key = core::str::from_utf8(key).map_err(|_| Error::BadKeyChar { byte: 0x80 })?;
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLong {
                key: key.to_string(),
                len: value.len(),
            });
        }
        let value = core::str::from_utf8(value).map_err(|_| Error::BadValue {
            key: key.to_string(),
        })?;
        if out.len() >= MAX_KEYS * 2 {
            return Err(Error::TooManyKeys);
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Encodes `key=value\0` pairs, checking each and bounding the total.
#[derive(Clone, Debug)]
pub struct TextBuilder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for TextBuilder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TEXT_LEN)
    }
}

impl TextBuilder {
    pub fn new(limit: usize) -> Self {
        TextBuilder {
            buf: Vec::new(),
            limit,
        }
    }

    pub fn push(&mut self, key: &str, value: &str) -> Result<&mut Self, Error> {
        check_key(key.as_bytes())?;
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLong {
                key: key.to_string(),
                len: value.len(),
            });
        }
        if value.as_bytes().contains(&0) {
            return Err(Error::ValueWithNul {
                key: key.to_string(),
            });
        }
        if self.contains_key(key) {
            return Err(Error::DuplicateKey(key.to_string()));
        }
        // key, '=', value, NUL
        let add = key.len().saturating_add(value.len()).saturating_add(2);
        if self.buf.len().saturating_add(add) > self.limit {
            return Err(Error::TooMuchText { limit: self.limit });
        }
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'=');
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        Ok(self)
    }

    /// True when `key` was already pushed (a key is never sent twice in one text).
    pub fn contains_key(&self, key: &str) -> bool {
        self.buf.split(|&b| b == 0).any(|pair| {
            pair.strip_prefix(key.as_bytes())
                .is_some_and(|r| r.first() == Some(&b'='))
        })
    }

    pub fn push_all<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<&mut Self, Error> {
        for (k, v) in pairs {
            self.push(k, v)?;
        }
        Ok(self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Splits encoded text into data segments of at most `max_segment` bytes (the target's
/// MaxRecvDataSegmentLength), yielding `(chunk, continue_bit)`: C is set on all but the last.
/// A pair may straddle two PDUs; the receiver joins them. Empty text gives one empty chunk.
pub fn split_for_pdus(text: &[u8], max_segment: usize) -> impl Iterator<Item = (&[u8], bool)> {
    let max = max_segment.max(1);
    let n = text.len().div_ceil(max).max(1);
    (0..n).map(move |i| {
        let start = i.saturating_mul(max);
        let end = start.saturating_add(max).min(text.len());
        (text.get(start..end).unwrap_or(&[]), i.saturating_add(1) < n)
    })
}

/// Joins text data received over several PDUs (C bit set on all but the last), bounded.
#[derive(Clone, Debug)]
pub struct Accumulator {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TEXT_LEN)
    }
}

impl Accumulator {
    pub fn new(limit: usize) -> Self {
        Accumulator {
            buf: Vec::new(),
            limit,
        }
    }

    /// Adds one PDU's data segment. Returns `Ok(true)` when `continue_bit` is clear and the
    /// text is complete (read it with [`Accumulator::text`] or [`Accumulator::pairs`], then
    /// [`Accumulator::clear`]).
    pub fn push(&mut self, data: &[u8], continue_bit: bool) -> Result<bool, Error> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(Error::TooMuchText { limit: self.limit });
        }
        self.buf.extend_from_slice(data);
        Ok(!continue_bit)
    }

    pub fn text(&self) -> &[u8] {
        &self.buf
    }

    pub fn pairs(&self) -> Result<Vec<(&str, &str)>, Error> {
        parse_pairs(&self.buf)
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Keys of the security stage (handled by the login and `crate::chap`, not by
/// [`Negotiation`]).
pub fn is_security_key(key: &str) -> bool {
    key == "AuthMethod"
        || ["CHAP_", "SRP_", "KRB_", "SPKM_"]
            .iter()
            .any(|p| key.starts_with(p))
}

/// One target from a SendTargets answer (RFC 7143 Appendix C).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    /// Portals; empty means "the portal this answer came from".
    pub addresses: Vec<TargetAddress>,
}

/// Groups a SendTargets answer: each `TargetName` starts a target, the `TargetAddress` pairs
/// that follow belong to it. A `TargetAddress` before any `TargetName` is an error; other keys
/// are ignored.
pub fn parse_send_targets(pairs: &[(&str, &str)]) -> Result<Vec<DiscoveredTarget>, Error> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for &(k, v) in pairs {
        match k {
            "TargetName" => out.push(DiscoveredTarget {
                name: v.to_string(),
                addresses: Vec::new(),
            }),
            "TargetAddress" => {
                let addr = TargetAddress::parse(v)?;
                out.last_mut()
                    .ok_or_else(|| Error::TargetAddressWithoutName(v.to_string()))?
                    .addresses
                    .push(addr);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Parses an RFC 7143 numerical value: decimal or `0x` hex, no sign.
pub fn parse_number(key: &'static str, value: &str) -> Result<u64, Error> {
    let bad = || Error::BadNumber {
        key,
        value: value.to_string(),
    };
    let (digits, radix) = match value.get(..2) {
        Some("0x") | Some("0X") => (value.get(2..).unwrap_or(""), 16),
        _ => (value, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| bad())
}

/// Parses `Yes`/`No`.
pub fn parse_bool(key: &'static str, value: &str) -> Result<bool, Error> {
    match value {
        "Yes" => Ok(true),
        "No" => Ok(false),
        _ => Err(Error::BadBoolean {
            key,
            value: value.to_string(),
        }),
    }
}

pub fn bool_str(v: bool) -> &'static str {
    if v {
        "Yes"
    } else {
        "No"
    }
}

/// List negotiation from the responder's side: the first value of the offerer's
/// comma-separated `offer` that we `support`.
pub fn select_from_list<'a>(offer: &'a str, support: &[&str]) -> Option<&'a str> {
    offer.split(',').find(|v| support.contains(v))
}

/// List negotiation from the offerer's side: the answer must be one of the values we offered.
pub fn check_list_answer<'a>(
    key: &'static str,
    offered: &[&str],
    answer: &'a str,
) -> Result<&'a str, Error> {
    if offered.contains(&answer) {
        Ok(answer)
    } else {
        Err(Error::AnswerNotOffered {
            key,
            value: answer.to_string(),
        })
    }
}

/// The HeaderDigest/DataDigest values we offer, in order of preference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestOffer {
    /// `None` only.
    #[default]
    None,
    /// `CRC32C` only: the login fails if the target refuses.
    Crc32c,
    /// `CRC32C,None`.
    PreferCrc32c,
    /// `None,CRC32C`.
    PreferNone,
}

impl DigestOffer {
    fn values(self) -> &'static [&'static str] {
        match self {
            DigestOffer::None => &["None"],
            DigestOffer::Crc32c => &["CRC32C"],
            DigestOffer::PreferCrc32c => &["CRC32C", "None"],
            DigestOffer::PreferNone => &["None", "CRC32C"],
        }
    }

    fn value_string(self) -> &'static str {
        match self {
            DigestOffer::None => "None",
            DigestOffer::Crc32c => "CRC32C",
            DigestOffer::PreferCrc32c => "CRC32C,None",
            DigestOffer::PreferNone => "None,CRC32C",
        }
    }
}

/// How a key's result is computed (RFC 7143 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// HeaderDigest/DataDigest: list of CRC32C/None.
    Digest,
    /// Boolean AND (ImmediateData).
    And,
    /// Boolean OR (InitialR2T, DataPDUInOrder, DataSequenceInOrder).
    Or,
    /// Numerical minimum in `lo..=hi`.
    Min(u32, u32),
    /// Numerical maximum in `lo..=hi`.
    Max(u32, u32),
    /// Declarative, `lo..=hi` (MaxRecvDataSegmentLength: each side declares its own).
    Declare(u32, u32),
}

const MAX_24: u32 = (1 << 24) - 1;

/// The operational keys, their result functions and ranges (RFC 7143 §13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    HeaderDigest,
    DataDigest,
    MaxRecvDataSegmentLength,
    MaxBurstLength,
    FirstBurstLength,
    InitialR2T,
    ImmediateData,
    MaxOutstandingR2T,
    DataPduInOrder,
    DataSequenceInOrder,
    DefaultTime2Wait,
    DefaultTime2Retain,
    ErrorRecoveryLevel,
    MaxConnections,
}

const KEYS: [Key; 14] = [
    Key::HeaderDigest,
    Key::DataDigest,
    Key::MaxRecvDataSegmentLength,
    Key::MaxBurstLength,
    Key::FirstBurstLength,
    Key::InitialR2T,
    Key::ImmediateData,
    Key::MaxOutstandingR2T,
    Key::DataPduInOrder,
    Key::DataSequenceInOrder,
    Key::DefaultTime2Wait,
    Key::DefaultTime2Retain,
    Key::ErrorRecoveryLevel,
    Key::MaxConnections,
];

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::HeaderDigest => "HeaderDigest",
            Key::DataDigest => "DataDigest",
            Key::MaxRecvDataSegmentLength => "MaxRecvDataSegmentLength",
            Key::MaxBurstLength => "MaxBurstLength",
            Key::FirstBurstLength => "FirstBurstLength",
            Key::InitialR2T => "InitialR2T",
            Key::ImmediateData => "ImmediateData",
            Key::MaxOutstandingR2T => "MaxOutstandingR2T",
            Key::DataPduInOrder => "DataPDUInOrder",
            Key::DataSequenceInOrder => "DataSequenceInOrder",
            Key::DefaultTime2Wait => "DefaultTime2Wait",
            Key::DefaultTime2Retain => "DefaultTime2Retain",
            Key::ErrorRecoveryLevel => "ErrorRecoveryLevel",
            Key::MaxConnections => "MaxConnections",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Key::HeaderDigest | Key::DataDigest => Kind::Digest,
            Key::MaxRecvDataSegmentLength => Kind::Declare(512, MAX_24),
            Key::MaxBurstLength | Key::FirstBurstLength => Kind::Min(512, MAX_24),
            Key::InitialR2T | Key::DataPduInOrder | Key::DataSequenceInOrder => Kind::Or,
            Key::ImmediateData => Kind::And,
            Key::MaxOutstandingR2T | Key::MaxConnections => Kind::Min(1, 65535),
            Key::DefaultTime2Wait => Kind::Max(0, 3600),
            Key::DefaultTime2Retain => Kind::Min(0, 3600),
            Key::ErrorRecoveryLevel => Kind::Min(0, 2),
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        KEYS.iter().copied().find(|k| k.name() == name)
    }
}

/// The operational parameters of a session (RFC 7143 §13). `Default` holds the RFC defaults,
/// which stand for every key that was not negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    pub header_digest: bool,
    pub data_digest: bool,
    /// What we declared we receive: the bound for every data segment the target sends.
    pub max_recv_data_segment_len: u32,
    /// What the target declared it receives: the bound for every data segment we send.
    pub max_send_data_segment_len: u32,
    pub max_burst_len: u32,
    pub first_burst_len: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub error_recovery_level: u32,
    pub max_connections: u32,
    /// Declared by the target, informational.
    pub target_alias: Option<String>,
    pub target_portal_group_tag: Option<u16>,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_len: 8192,
            max_send_data_segment_len: 8192,
            max_burst_len: 262_144,
            first_burst_len: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            default_time2wait: 2,
            default_time2retain: 20,
            error_recovery_level: 0,
            max_connections: 1,
            target_alias: None,
            target_portal_group_tag: None,
        }
    }
}

impl SessionParams {
    fn get(&self, key: Key) -> u32 {
        match key {
            Key::HeaderDigest => u32::from(self.header_digest),
            Key::DataDigest => u32::from(self.data_digest),
            Key::MaxRecvDataSegmentLength => self.max_send_data_segment_len,
            Key::MaxBurstLength => self.max_burst_len,
            Key::FirstBurstLength => self.first_burst_len,
            Key::InitialR2T => u32::from(self.initial_r2t),
            Key::ImmediateData => u32::from(self.immediate_data),
            Key::MaxOutstandingR2T => self.max_outstanding_r2t,
            Key::DataPduInOrder => u32::from(self.data_pdu_in_order),
            Key::DataSequenceInOrder => u32::from(self.data_sequence_in_order),
            Key::DefaultTime2Wait => self.default_time2wait,
            Key::DefaultTime2Retain => self.default_time2retain,
            Key::ErrorRecoveryLevel => self.error_recovery_level,
            Key::MaxConnections => self.max_connections,
        }
    }

    /// Stores a negotiated value; for MaxRecvDataSegmentLength that is the target's
    /// declaration, i.e. our send limit.
    fn set(&mut self, key: Key, v: u32) {
        match key {
            Key::HeaderDigest => self.header_digest = v != 0,
            Key::DataDigest => self.data_digest = v != 0,
            Key::MaxRecvDataSegmentLength => self.max_send_data_segment_len = v,
            Key::MaxBurstLength => self.max_burst_len = v,
            Key::FirstBurstLength => self.first_burst_len = v,
            Key::InitialR2T => self.initial_r2t = v != 0,
            Key::ImmediateData => self.immediate_data = v != 0,
            Key::MaxOutstandingR2T => self.max_outstanding_r2t = v,
            Key::DataPduInOrder => self.data_pdu_in_order = v != 0,
            Key::DataSequenceInOrder => self.data_sequence_in_order = v != 0,
            Key::DefaultTime2Wait => self.default_time2wait = v,
            Key::DefaultTime2Retain => self.default_time2retain = v,
            Key::ErrorRecoveryLevel => self.error_recovery_level = v,
            Key::MaxConnections => self.max_connections = v,
        }
    }

    /// The digests as the PDU layer wants them.
    pub fn digests(&self) -> crate::pdu::Digests {
        crate::pdu::Digests {
            header: self.header_digest,
            data: self.data_digest,
        }
    }
}

/// The operational keys we propose. `Default` follows open-iscsi's proven choices
/// (REFERENCE.md §4), with ErrorRecoveryLevel 0 and one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub header_digest: DigestOffer,
    pub data_digest: DigestOffer,
    /// Declared: the largest data segment we accept (our receive buffers are sized from it).
    pub max_recv_data_segment_len: u32,
    pub max_burst_len: u32,
    pub first_burst_len: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub error_recovery_level: u32,
    pub max_connections: u32,
}

impl Default for Offer {
    fn default() -> Self {
        Offer {
            header_digest: DigestOffer::None,
            data_digest: DigestOffer::None,
            max_recv_data_segment_len: 256 * 1024,
            max_burst_len: 16_776_192,
            first_burst_len: 256 * 1024,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            default_time2wait: 2,
            default_time2retain: 20,
            error_recovery_level: 0,
            max_connections: 1,
        }
    }
}

impl Offer {
    /// Our value for `key`, as a number (booleans 0/1, digest: our first preference).
    fn get(&self, key: Key) -> u32 {
        match key {
            Key::HeaderDigest => u32::from(self.header_digest.values().first() == Some(&"CRC32C")),
            Key::DataDigest => u32::from(self.data_digest.values().first() == Some(&"CRC32C")),
            Key::MaxRecvDataSegmentLength => self.max_recv_data_segment_len,
            Key::MaxBurstLength => self.max_burst_len,
            Key::FirstBurstLength => self.first_burst_len,
            Key::InitialR2T => u32::from(self.initial_r2t),
            Key::ImmediateData => u32::from(self.immediate_data),
            Key::MaxOutstandingR2T => self.max_outstanding_r2t,
            Key::DataPduInOrder => u32::from(self.data_pdu_in_order),
            Key::DataSequenceInOrder => u32::from(self.data_sequence_in_order),
            Key::DefaultTime2Wait => self.default_time2wait,
            Key::DefaultTime2Retain => self.default_time2retain,
            Key::ErrorRecoveryLevel => self.error_recovery_level,
            Key::MaxConnections => self.max_connections,
        }
    }

    fn digest(&self, key: Key) -> DigestOffer {
        if key == Key::DataDigest {
            self.data_digest
        } else {
            self.header_digest
        }
    }

    /// Checks every value against its key's range, and FirstBurstLength <= MaxBurstLength.
    pub fn validate(&self) -> Result<(), Error> {
        for key in KEYS {
            let v = self.get(key);
            let (lo, hi) = match key.kind() {
                Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declare(lo, hi) => (lo, hi),
                Kind::Digest | Kind::And | Kind::Or => (0, 1),
            };
            if v < lo || v > hi {
                return Err(Error::BadOffer { key: key.name() });
            }
        }
        if self.first_burst_len > self.max_burst_len {
            return Err(Error::BadOffer {
                key: Key::FirstBurstLength.name(),
            });
        }
        Ok(())
    }

    /// The pairs to send in the operational stage, in a fixed order. Every key is sent, since
    /// some targets fail when MaxConnections, ImmediateData or FirstBurstLength are missing.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .map(|&key| {
                let v = match key.kind() {
                    Kind::Digest => self.digest(key).value_string().to_string(),
                    Kind::And | Kind::Or => bool_str(self.get(key) != 0).to_string(),
                    _ => self.get(key).to_string(),
                };
                (key.name(), v)
            })
            .collect()
    }

    /// [`Offer::pairs`] encoded as text data.
    pub fn encode(&self, out: &mut TextBuilder) -> Result<(), Error> {
        for (k, v) in self.pairs() {
            out.push(k, &v)?;
        }
        Ok(())
    }
}

/// Parts of a TargetAddress value: `host[:port][,tpgt]`, IPv6 hosts in brackets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAddress {
    /// Host name or address, brackets removed from IPv6 literals.
    pub host: String,
    pub port: Option<u16>,
    pub portal_group_tag: Option<u16>,
}

impl TargetAddress {
    pub fn parse(value: &str) -> Result<TargetAddress, Error> {
        let bad = || Error::BadTargetAddress(value.to_string());
        let (addr, tpgt) = match value.rsplit_once(',') {
            Some((a, t)) => (a, Some(t.parse::<u16>().map_err(|_| bad())?)),
            None => (value, None),
        };
        let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match addr.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (addr, None),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None => None,
        };
        Ok(TargetAddress {
            host: host.to_string(),
            port,
            portal_group_tag: tpgt,
        })
    }
}

/// What to do with one pair from the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to send back (an answer to our offer, or a declaration).
    None,
    /// Send this pair back (the target offered a key, or one we do not understand).
    Send(&'static str, String),
    /// Send `key=NotUnderstood`.
    NotUnderstood(String),
}

/// One operational negotiation: our [`Offer`] against the target's pairs.
#[derive(Clone, Debug)]
pub struct Negotiation {
    offer: Offer,
    params: SessionParams,
    /// Operational keys the target has sent so far (bit per `KEYS` index).
    answered: u32,
    /// Every key name seen, for duplicate detection across PDUs.
    seen: Vec<String>,
    target_address: Option<TargetAddress>,
    /// The target answered FirstBurstLength with a number (not left out, Irrelevant or Reject).
    first_burst_from_target: bool,
}

impl Negotiation {
    /// Starts a negotiation; fails if the offer itself is out of range.
    pub fn new(offer: Offer) -> Result<Self, Error> {
        offer.validate()?;
        let params = SessionParams {
            max_recv_data_segment_len: offer.max_recv_data_segment_len,
            ..SessionParams::default()
        };
        Ok(Negotiation {
            offer,
            params,
            answered: 0,
            seen: Vec::new(),
            target_address: None,
            first_burst_from_target: false,
        })
    }

    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// A TargetAddress the target sent (redirect, or with SendTargets).
    pub fn target_address(&self) -> Option<&TargetAddress> {
        self.target_address.as_ref()
    }

    /// Handles one pair the target sent. Returns what to send back.
    pub fn handle(&mut self, key: &str, value: &str) -> Result<Reply, Error> {
        // Some targets repeat these declarations in every login response; only a change is
        // suspicious.
        let repeat = match key {
            "TargetAlias" => self.params.target_alias.as_deref() == Some(value),
            "TargetPortalGroupTag" => {
                self.params.target_portal_group_tag.is_some()
                    && number_in("TargetPortalGroupTag", value, 0, 65535).ok()
                        == self.params.target_portal_group_tag.map(u32::from)
            }
            _ => false,
        };
        if repeat {
            return Ok(Reply::None);
        }
        if self.seen.iter().any(|k| k == key) {
            return Err(Error::DuplicateKey(key.to_string()));
        }
        if self.seen.len() >= MAX_KEYS {
            return Err(Error::TooManyKeys);
        }
        self.seen.push(key.to_string());
        match key {
            "TargetAlias" => {
                self.params.target_alias = Some(value.to_string());
                return Ok(Reply::None);
            }
            "TargetPortalGroupTag" => {
                let v = number_in("TargetPortalGroupTag", value, 0, 65535)?;
                self.params.target_portal_group_tag = u16::try_from(v).ok();
                return Ok(Reply::None);
            }
            "TargetAddress" => {
                self.target_address = Some(TargetAddress::parse(value)?);
                return Ok(Reply::None);
            }
            // Markers were dropped by RFC 7143 but RFC 3720 targets still offer them:
            // "No" is the AND result whatever they offered, and intervals are then moot.
            "OFMarker" | "IFMarker" => {
                return Ok(Reply::Send(
                    if key == "OFMarker" {
                        "OFMarker"
                    } else {
                        "IFMarker"
                    },
                    "No".to_string(),
                ))
            }
            "OFMarkInt" | "IFMarkInt" => {
                return Ok(Reply::Send(
                    if key == "OFMarkInt" {
                        "OFMarkInt"
                    } else {
                        "IFMarkInt"
                    },
                    IRRELEVANT.to_string(),
                ))
            }
            _ => {}
        }
        let Some(k) = Key::from_name(key) else {
            return Ok(Reply::NotUnderstood(key.to_string()));
        };
        let idx = KEYS.iter().position(|&x| x == k).unwrap_or(0);
        self.answered |= 1 << idx;
        let kind = k.kind();
        if matches!(value, REJECT | IRRELEVANT | NOT_UNDERSTOOD) {
            // The target declines the key: the RFC default stays, except that our own
            // declaration and offer-determined results still hold.
            let v = self.fallback(k);
            self.params.set(k, v);
            return Ok(Reply::None);
        }
        let ours = self.offer.get(k);
        let v = match kind {
            Kind::Digest => {
                let on = match value {
                    "CRC32C" => 1,
                    "None" => 0,
                    // A list is an offer from the target (not an answer).
                    _ => {
                        let support = self.offer.digest(k).values();
                        let pick = select_from_list(value, support).ok_or_else(|| {
                            Error::AnswerNotOffered {
                                key: k.name(),
                                value: value.to_string(),
                            }
                        })?;
                        self.params.set(k, u32::from(pick == "CRC32C"));
                        return Ok(Reply::Send(k.name(), pick.to_string()));
                    }
                };
                check_list_answer(k.name(), self.offer.digest(k).values(), value)?;
                on
            }
            Kind::And | Kind::Or => {
                let theirs = u32::from(parse_bool(k.name(), value)?);
                let result = if kind == Kind::And {
                    ours & theirs
                } else {
                    ours | theirs
                };
                // The answer is the result of the function, so it cannot differ from what our
                // offer already determined.
                if theirs != result {
                    return Err(Error::AnswerViolatesResultFunction {
                        key: k.name(),
                        offered: u64::from(ours),
                        answered: u64::from(theirs),
                    });
                }
                result
            }
            Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declare(lo, hi) => {
                let v = number_in(k.name(), value, lo, hi)?;
                let ok = match kind {
                    Kind::Min(..) => v <= ours,
                    Kind::Max(..) => v >= ours,
                    _ => true,
                };
                if !ok {
                    return Err(Error::AnswerViolatesResultFunction {
                        key: k.name(),
                        offered: u64::from(ours),
                        answered: u64::from(v),
                    });
                }
                v
            }
        };
        if k == Key::FirstBurstLength {
            self.first_burst_from_target = true;
        }
        self.params.set(k, v);
        Ok(Reply::None)
    }

    /// Value for a key the target declined or never answered: the result function applied to
    /// our offer and the RFC default (as if the target had answered its default).
    fn fallback(&self, k: Key) -> u32 {
        let ours = self.offer.get(k);
        let dflt = SessionParams::default().get(k);
        match k.kind() {
            Kind::And => ours & dflt,
            Kind::Or => ours | dflt,
            Kind::Min(..) => ours.min(dflt),
            Kind::Max(..) => ours.max(dflt),
            Kind::Digest | Kind::Declare(..) => dflt,
        }
    }

    /// Handles every pair of a complete text, collecting the replies to send.
    pub fn handle_all(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<Reply>, Error> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            match self.handle(k, v)? {
                Reply::None => {}
                r => out.push(r),
            }
        }
        Ok(out)
    }

    /// Ends the negotiation: keys the target never answered get the result function of our
    /// offer and the RFC default, then FirstBurstLength <= MaxBurstLength is checked. A
    /// FirstBurstLength the target did not give (it is irrelevant with InitialR2T=Yes and
    /// ImmediateData=No) is lowered to MaxBurstLength instead; one it gave is its error.
    pub fn finish(mut self) -> Result<SessionParams, Error> {
        for (i, &k) in KEYS.iter().enumerate() {
            if self.answered & (1 << i) == 0 {
                let v = self.fallback(k);
                self.params.set(k, v);
            }
        }
        let mut p = self.params;
        if !self.first_burst_from_target {
            p.first_burst_len = p.first_burst_len.min(p.max_burst_len);
        }
        if p.first_burst_len > p.max_burst_len {
            return Err(Error::FirstBurstAboveMaxBurst {
                first: p.first_burst_len,
                max: p.max_burst_len,
            });
        }
        Ok(p)
    }
}

fn number_in(key: &'static str, value: &str, lo: u32, hi: u32) -> Result<u32, Error> {
    let v = parse_number(key, value)?;
    match u32::try_from(v) {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(Error::OutOfRange {
            key,
            value: v,
            min: u64::from(lo),
            max: u64::from(hi),
        }),
    }
}

impl Reply {
    /// Appends this reply (if any) to `out`.
    pub fn encode(&self, out: &mut TextBuilder) -> Result<(), Error> {
        match self {
            Reply::None => Ok(()),
            Reply::Send(k, v) => out.push(k, v).map(|_| ()),
            Reply::NotUnderstood(k) => out.push(k, NOT_UNDERSTOOD).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn encode_and_parse_pairs() {
        let mut b = TextBuilder::default();
        b.push("InitiatorName", "iqn.2026-01.org.example:host")
            .unwrap()
            .push("SessionType", "Normal")
            .unwrap();
        let text = b.into_bytes();
        assert_eq!(
            text,
            b"InitiatorName=iqn.2026-01.org.example:host\0SessionType=Normal\0"
        );
        assert_eq!(
            parse_pairs(&text).unwrap(),
            vec![
                ("InitiatorName", "iqn.2026-01.org.example:host"),
                ("SessionType", "Normal")
            ]
        );
        // A value may contain '=' and may be empty; padding NULs are skipped.
        assert_eq!(
            parse_pairs(b"X-a=b=c\0Y=\0\0\0").unwrap(),
            vec![("X-a", "b=c"), ("Y", "")]
        );
        assert_eq!(parse_pairs(b"").unwrap(), vec![]);
    }

    #[test]
    fn malformed_text_is_named() {
        assert_eq!(parse_pairs(b"A=B"), Err(Error::MissingTerminator));
        assert_eq!(parse_pairs(b"AB\0"), Err(Error::MissingEquals));
        assert_eq!(parse_pairs(b"=B\0"), Err(Error::EmptyKey));
        assert_eq!(
            parse_pairs(b"A B=1\0"),
            Err(Error::BadKeyChar { byte: b' ' })
        );
        let long = [b'K'; 64];
        let mut t = long.to_vec();
        t.extend_from_slice(b"=1\0");
        assert_eq!(parse_pairs(&t), Err(Error::KeyTooLong { len: 64 }));
        assert!(parse_pairs(&t[1..]).is_ok());
        let mut t = b"V=".to_vec();
        t.extend(core::iter::repeat_n(b'x', MAX_VALUE_LEN + 1));
        t.push(0);
        assert_eq!(
            parse_pairs(&t),
            Err(Error::ValueTooLong {
                key: "V".into(),
                len: MAX_VALUE_LEN + 1
            })
        );
        assert_eq!(
            parse_pairs(b"V=\xff\0"),
            Err(Error::BadValue { key: "V".into() })
        );
        let mut b = TextBuilder::new(10);
        let nul = b.push("A", "a\0b").err().unwrap();
        assert_eq!(nul, Error::ValueWithNul { key: "A".into() });
        assert!(nul.to_string().contains("NUL"), "{nul}");
        let utf8 = parse_pairs(b"V=\xff\0").unwrap_err().to_string();
        assert!(utf8.contains("UTF-8") && !utf8.contains("NUL"), "{utf8}");
        b.push("A", "1234567").unwrap();
        assert_eq!(
            b.push("B", "1").err(),
            Some(Error::TooMuchText { limit: 10 })
        );
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn continuation_joins_split_pairs_with_a_bound() {
        let text = b"TargetName=iqn.x:y\0TargetAddress=127.0.0.1:3260,1\0";
        let chunks: Vec<_> = split_for_pdus(text, 16).collect();
        assert_eq!(chunks.len(), 4);
        assert!(chunks[..3].iter().all(|c| c.1));
        assert!(!chunks[3].1);
        let mut acc = Accumulator::new(1024);
        for (c, cont) in &chunks {
            let done = acc.push(c, *cont).unwrap();
            assert_eq!(done, !cont);
        }
        assert_eq!(
            acc.pairs().unwrap(),
            vec![
                ("TargetName", "iqn.x:y"),
                ("TargetAddress", "127.0.0.1:3260,1")
            ]
        );
        acc.clear();
        assert_eq!(acc.text(), b"");
        let mut small = Accumulator::new(20);
        small.push(&text[..16], true).unwrap();
        assert_eq!(
            small.push(&text[16..32], true),
            Err(Error::TooMuchText { limit: 20 })
        );
        assert_eq!(
            split_for_pdus(b"", 8).collect::<Vec<_>>(),
            vec![(&b""[..], false)]
        );
        assert_eq!(split_for_pdus(b"abcd", 4).count(), 1);
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(parse_number("K", "262144"), Ok(262_144));
        assert_eq!(parse_number("K", "0x40000"), Ok(262_144));
        assert_eq!(parse_number("K", "0X1f"), Ok(31));
        for bad in ["", "-1", "+1", "0x", "1e3", " 1", "99999999999999999999"] {
            assert!(parse_number("K", bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_bool("K", "Yes"), Ok(true));
        assert_eq!(parse_bool("K", "No"), Ok(false));
        assert!(parse_bool("K", "yes").is_err());
    }

    #[test]
    fn list_result_functions() {
        assert_eq!(select_from_list("CRC32C,None", &["None"]), Some("None"));
        assert_eq!(
            select_from_list("None,CRC32C", &["CRC32C", "None"]),
            Some("None")
        );
        assert_eq!(select_from_list("8,7,6,5", &["5", "7"]), Some("7"));
        assert_eq!(select_from_list("9", &["5"]), None);
        assert_eq!(
            check_list_answer("K", &["CRC32C", "None"], "None"),
            Ok("None")
        );
        assert_eq!(
            check_list_answer("K", &["None"], "CRC32C"),
            Err(Error::AnswerNotOffered {
                key: "K",
                value: "CRC32C".into()
            })
        );
    }

    #[test]
    fn default_offer_pairs() {
        let o = Offer::default();
        o.validate().unwrap();
        let mut b = TextBuilder::default();
        o.encode(&mut b).unwrap();
        let text = b.into_bytes();
        let pairs = parse_pairs(&text).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "262144"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxOutstandingR2T", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "20"),
                ("ErrorRecoveryLevel", "0"),
                ("MaxConnections", "1"),
            ]
        );
        let o = Offer {
            header_digest: DigestOffer::PreferCrc32c,
            data_digest: DigestOffer::Crc32c,
            ..Offer::default()
        };
        let p = o.pairs();
        assert_eq!(p[0], ("HeaderDigest", "CRC32C,None".to_string()));
        assert_eq!(p[1], ("DataDigest", "CRC32C".to_string()));
    }

    #[test]
    fn bad_offers_are_refused() {
        for o in [
            Offer {
                max_recv_data_segment_len: 511,
                ..Offer::default()
            },
            Offer {
                max_burst_len: 1 << 24,
                ..Offer::default()
            },
            Offer {
                first_burst_len: 1 << 20,
                max_burst_len: 1 << 19,
                ..Offer::default()
            },
            Offer {
                error_recovery_level: 3,
                ..Offer::default()
            },
            Offer {
                max_connections: 0,
                ..Offer::default()
            },
            Offer {
                default_time2wait: 3601,
                ..Offer::default()
            },
        ] {
            assert!(matches!(Negotiation::new(o), Err(Error::BadOffer { .. })));
        }
    }

    /// A tgtd-like answer to our default offer.
    const TGTD_ANSWER: &[u8] = b"HeaderDigest=None\0DataDigest=None\0\
MaxRecvDataSegmentLength=65536\0MaxBurstLength=262144\0FirstBurstLength=65536\0\
InitialR2T=Yes\0ImmediateData=Yes\0MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0\
DataSequenceInOrder=Yes\0DefaultTime2Wait=2\0DefaultTime2Retain=20\0\
ErrorRecoveryLevel=0\0MaxConnections=1\0TargetPortalGroupTag=1\0TargetAlias=disk0\0";

    #[test]
    fn negotiates_a_typical_answer() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        let pairs = parse_pairs(TGTD_ANSWER).unwrap();
        assert_eq!(n.handle_all(&pairs).unwrap(), vec![]);
        let p = n.finish().unwrap();
        assert_eq!(p.max_recv_data_segment_len, 262_144);
        assert_eq!(p.max_send_data_segment_len, 65_536);
        assert_eq!(p.max_burst_len, 262_144);
        assert_eq!(p.first_burst_len, 65_536);
        assert!(p.initial_r2t);
        assert!(p.immediate_data);
        assert_eq!(p.target_portal_group_tag, Some(1));
        assert_eq!(p.target_alias.as_deref(), Some("disk0"));
        assert!(!p.header_digest);
        assert_eq!(p.digests(), crate::pdu::Digests::default());
    }

    #[test]
    fn missing_answers_combine_offer_and_default() {
        // tgtd omits MaxRecvDataSegmentLength when it is 8192; other keys missing too.
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "1048576").unwrap();
        let p = n.finish().unwrap();
        assert_eq!(p.max_send_data_segment_len, 8192);
        assert_eq!(p.max_burst_len, 1_048_576);
        // min(offer 256 KiB, default 64 KiB)
        assert_eq!(p.first_burst_len, 65_536);
        // OR(offer No, default Yes)
        assert!(p.initial_r2t);
        assert!(p.immediate_data);
        assert_eq!(p.default_time2wait, 2);
        assert_eq!(p.error_recovery_level, 0);
    }

    #[test]
    fn answers_breaking_the_result_function_are_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert_eq!(
            n.handle("MaxBurstLength", "16777215"),
            Err(Error::AnswerViolatesResultFunction {
                key: "MaxBurstLength",
                offered: 16_776_192,
                answered: 16_777_215
            })
        );
        let mut n = Negotiation::new(Offer {
            immediate_data: false,
            ..Offer::default()
        })
        .unwrap();
        assert!(matches!(
            n.handle("ImmediateData", "Yes"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        let mut n = Negotiation::new(Offer {
            initial_r2t: true,
            ..Offer::default()
        })
        .unwrap();
        assert!(matches!(
            n.handle("InitialR2T", "No"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert!(matches!(
            n.handle("DefaultTime2Wait", "1"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        assert_eq!(n.handle("DefaultTime2Retain", "0"), Ok(Reply::None));
        assert_eq!(
            n.handle("HeaderDigest", "CRC32C"),
            Err(Error::AnswerNotOffered {
                key: "HeaderDigest",
                value: "CRC32C".into()
            })
        );
    }

    #[test]
    fn range_checks_for_every_key() {
        let cases: &[(&str, &str, u64, u64)] = &[
            ("MaxRecvDataSegmentLength", "511", 512, 16_777_215),
            ("MaxRecvDataSegmentLength", "16777216", 512, 16_777_215),
            ("MaxBurstLength", "511", 512, 16_777_215),
            ("FirstBurstLength", "100", 512, 16_777_215),
            ("MaxOutstandingR2T", "0", 1, 65535),
            ("MaxConnections", "0", 1, 65535),
            ("DefaultTime2Wait", "3601", 0, 3600),
            ("DefaultTime2Retain", "4000", 0, 3600),
            ("ErrorRecoveryLevel", "3", 0, 2),
            ("TargetPortalGroupTag", "65536", 0, 65535),
        ];
        for &(key, value, min, max) in cases {
            let mut n = Negotiation::new(Offer {
                default_time2wait: 0,
                ..Offer::default()
            })
            .unwrap();
            match n.handle(key, value) {
                Err(Error::OutOfRange {
                    min: lo, max: hi, ..
                }) => assert_eq!((lo, hi), (min, max), "{key}"),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert!(matches!(
            n.handle("MaxBurstLength", "lots"),
            Err(Error::BadNumber { .. })
        ));
        assert!(matches!(
            n.handle("ImmediateData", "Maybe"),
            Err(Error::BadBoolean { .. })
        ));
    }

    #[test]
    fn first_burst_above_max_burst_is_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "4096").unwrap();
        n.handle("FirstBurstLength", "8192").unwrap();
        assert_eq!(
            n.finish(),
            Err(Error::FirstBurstAboveMaxBurst {
                first: 8192,
                max: 4096
            })
        );
    }

    #[test]
    fn first_burst_the_target_left_out_is_clamped_to_its_small_max_burst() {
        // FirstBurstLength is irrelevant with InitialR2T=Yes and ImmediateData=No, so a target
        // may leave it out (or answer Irrelevant) while declaring a MaxBurstLength below the
        // RFC default FirstBurstLength of 65536: that must not fail the login.
        for first in [None, Some(IRRELEVANT), Some(REJECT)] {
            let mut n = Negotiation::new(Offer::default()).unwrap();
            n.handle("MaxBurstLength", "16384").unwrap();
            n.handle("InitialR2T", "Yes").unwrap();
            n.handle("ImmediateData", "No").unwrap();
            if let Some(v) = first {
                n.handle("FirstBurstLength", v).unwrap();
            }
            let p = n.finish().unwrap();
            assert_eq!(
                (p.first_burst_len, p.max_burst_len),
                (16384, 16384),
                "{first:?}"
            );
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "4096").unwrap();
        assert_eq!(
            n.handle("MaxBurstLength", "4096"),
            Err(Error::DuplicateKey("MaxBurstLength".into()))
        );
        n.handle("X-vendor", "1").unwrap();
        assert_eq!(
            n.handle("X-vendor", "1"),
            Err(Error::DuplicateKey("X-vendor".into()))
        );
    }

    #[test]
    fn special_values_keep_defaults() {
        let mut n = Negotiation::new(Offer {
            header_digest: DigestOffer::PreferCrc32c,
            ..Offer::default()
        })
        .unwrap();
        n.handle("HeaderDigest", REJECT).unwrap();
        n.handle("FirstBurstLength", IRRELEVANT).unwrap();
        n.handle("MaxBurstLength", NOT_UNDERSTOOD).unwrap();
        let p = n.finish().unwrap();
        assert!(!p.header_digest);
        assert_eq!(p.first_burst_len, 65_536);
        assert_eq!(p.max_burst_len, 262_144);
    }

    #[test]
    fn digest_negotiation() {
        let mut n = Negotiation::new(Offer {
            header_digest: DigestOffer::PreferCrc32c,
            data_digest: DigestOffer::PreferCrc32c,
            ..Offer::default()
        })
        .unwrap();
        n.handle("HeaderDigest", "CRC32C").unwrap();
        n.handle("DataDigest", "None").unwrap();
        let p = n.finish().unwrap();
        assert!(p.header_digest);
        assert!(!p.data_digest);
        // The target offers a list to us: we pick its first that we support.
        let mut n = Negotiation::new(Offer {
            header_digest: DigestOffer::Crc32c,
            ..Offer::default()
        })
        .unwrap();
        assert_eq!(
            n.handle("HeaderDigest", "None,CRC32C"),
            Ok(Reply::Send("HeaderDigest", "CRC32C".into()))
        );
        assert!(n.finish().unwrap().header_digest);
    }

    #[test]
    fn target_offers_and_unknown_keys_get_replies() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        let replies = n
            .handle_all(&[
                ("OFMarker", "Yes"),
                ("IFMarkInt", "2048~8192"),
                ("X-com.example.thing", "1"),
                ("TargetAddress", "[fe80::1]:3261,7"),
            ])
            .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Send("OFMarker", "No".into()),
                Reply::Send("IFMarkInt", IRRELEVANT.into()),
                Reply::NotUnderstood("X-com.example.thing".into()),
            ]
        );
        let mut b = TextBuilder::default();
        for r in &replies {
            r.encode(&mut b).unwrap();
        }
        assert_eq!(
            b.as_bytes(),
            b"OFMarker=No\0IFMarkInt=Irrelevant\0X-com.example.thing=NotUnderstood\0"
        );
        assert_eq!(
            n.target_address(),
            Some(&TargetAddress {
                host: "fe80::1".into(),
                port: Some(3261),
                portal_group_tag: Some(7)
            })
        );
    }

    #[test]
    fn target_address_forms() {
        let t = |s| TargetAddress::parse(s);
        assert_eq!(
            t("10.0.2.2:3260,1").unwrap(),
            TargetAddress {
                host: "10.0.2.2".into(),
                port: Some(3260),
                portal_group_tag: Some(1)
            }
        );
        assert_eq!(
            t("target.example").unwrap(),
            TargetAddress {
                host: "target.example".into(),
                port: None,
                portal_group_tag: None
            }
        );
        assert_eq!(t("[::1]").unwrap().host, "::1");
        for bad in [
            "",
            ":3260",
            "h:port",
            "h:3260,x",
            "[::1",
            "[::1]3260",
            "h:70000",
        ] {
            assert_eq!(t(bad), Err(Error::BadTargetAddress(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn builder_refuses_a_key_twice() {
        let mut b = TextBuilder::default();
        b.push("MaxBurstLength", "1").unwrap();
        b.push("MaxBurst", "1").unwrap();
        assert_eq!(
            b.push("MaxBurstLength", "2").err(),
            Some(Error::DuplicateKey("MaxBurstLength".into()))
        );
        assert!(b.contains_key("MaxBurst"));
        assert!(!b.contains_key("Max"));
    }

    #[test]
    fn repeated_declarations_are_tolerated_changes_are_not() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("TargetPortalGroupTag", "1").unwrap();
        n.handle("TargetPortalGroupTag", "1").unwrap();
        n.handle("TargetAlias", "a").unwrap();
        n.handle("TargetAlias", "a").unwrap();
        assert_eq!(
            n.handle("TargetPortalGroupTag", "2"),
            Err(Error::DuplicateKey("TargetPortalGroupTag".into()))
        );
        assert_eq!(
            n.handle("TargetAlias", "b"),
            Err(Error::DuplicateKey("TargetAlias".into()))
        );
    }

    #[test]
    fn security_keys() {
        for k in ["AuthMethod", "CHAP_A", "CHAP_R", "SRP_U"] {
            assert!(is_security_key(k), "{k}");
        }
        for k in ["MaxBurstLength", "TargetAlias", "CHAP"] {
            assert!(!is_security_key(k), "{k}");
        }
    }

    #[test]
    fn send_targets_answer() {
        let text = b"TargetName=iqn.a:1\0TargetAddress=127.0.0.1:3260,1\0\
TargetAddress=[::1]:3260,1\0TargetName=iqn.a:2\0";
        let pairs = parse_pairs(text).unwrap();
        let t = parse_send_targets(&pairs).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "iqn.a:1");
        assert_eq!(t[0].addresses.len(), 2);
        assert_eq!(t[0].addresses[1].host, "::1");
        assert_eq!(t[1].addresses, vec![]);
    }

    #[test]
    fn send_targets_address_before_any_name_is_refused_as_such() {
        let err = parse_send_targets(&[("TargetAddress", "h:1,1")]).unwrap_err();
        assert_eq!(err, Error::TargetAddressWithoutName("h:1,1".into()));
        assert!(err.to_string().contains("before any TargetName"), "{err}");
    }

    #[test]
    fn too_many_keys() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        for i in 0..MAX_KEYS {
            n.handle(&alloc::format!("X-k{i}"), "1").unwrap();
        }
        assert_eq!(n.handle("X-last", "1"), Err(Error::TooManyKeys));
    }
}
