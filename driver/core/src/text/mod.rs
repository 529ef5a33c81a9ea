// SPDX-License-Identifier: BSD-2-Clause
//! Text keys (RFC 7143 §6, §13): `key=value` pairs separated by NUL, and the negotiation of the
//! operational parameters.
//!
//! * `codec.rs`: [`TextBuilder`] encodes pairs, [`parse_pairs`] decodes them, [`Accumulator`]
//!   joins text split over several PDUs with the C bit (bounded), [`split_for_pdus`] does the
//!   reverse; numbers, booleans and lists.
//! * `params.rs`: the one table of operational [`Key`]s (name, result function, range, RFC
//!   default) and the two value sets indexed by it: the [`Offer`] we propose and the
//!   negotiated [`Params`] the full feature phase obeys.
//! * `negotiation.rs`: [`Negotiation`] takes the target's answers (and offers) one pair at a
//!   time, checks every value against the key's range and result function, tells the caller
//!   what to reply, and [`Negotiation::finish`] yields the [`Params`].
//! * `discovery.rs`: [`TargetAddress`] values and SendTargets answers.
//! * Security keys (`AuthMethod`, `CHAP_*`) are not handled here: see `crate::chap`.

use alloc::string::String;
use core::fmt;

mod codec;
mod discovery;
mod negotiation;
mod params;

pub use codec::{
    bool_str, check_list_answer, is_security_key, parse_bool, parse_number, parse_pairs,
    select_from_list, split_for_pdus, Accumulator, TextBuilder,
};
pub use discovery::{parse_send_targets, DiscoveredTarget, TargetAddress};
pub use negotiation::{Negotiation, Reply};
pub use params::{DigestOffer, Key, Offer, Params};

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

impl core::error::Error for Error {}
