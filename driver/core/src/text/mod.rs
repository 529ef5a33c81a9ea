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
//!
//! # Strict negotiation (RFC 7143 §6.2, §13)
//! We offer every operational key ([`Offer::pairs`]), so every target answer is an answer to
//! an offer of ours. An answer the RFC does not allow ends the login with one line naming the
//! key, our offer and the answer ([`Error`]'s `Display`, a digest hint included):
//!
//! * a list key (HeaderDigest, DataDigest) answered with a value outside our offer:
//!   [`Error::AnswerNotOffered`] (§6.2.1: "the selection of a value not proposed MUST be handled
//!   as a protocol error");
//! * a number outside the key's range, or a boolean or number the result function cannot
//!   give for our offer (a "min" key answered above our offer, `Yes` for an AND key we offered
//!   as `No`): [`Error::OutOfRange`], [`Error::AnswerViolatesResultFunction`] (§6.2.2, §6.2.3);
//! * the same key twice: [`Error::DuplicateKey`].
//!
//! `Reject`, `Irrelevant` and `NotUnderstood` are answers every key may receive in theory
//! (§6.2: Reject and Irrelevant are legitimate answers; NotUnderstood is for keys the acceptor
//! does not know, and every key of §13 must be known). What the target then uses is not said
//! (its default, its own setting): so for a key both sides must agree on, no value is safe,
//! and for the others we take the one that needs nothing from the target. Each row has a test
//! (`negotiation.rs`, `special_answers_follow_the_documented_table`):
//!
//! | key | Reject / Irrelevant / NotUnderstood | why |
//! |---|---|---|
//! | HeaderDigest, DataDigest | login fails ([`Error::Declined`]) | they frame every PDU; istgt answers Reject to `None` and then turns digests on |
//! | MaxRecvDataSegmentLength | login fails ([`Error::Declined`]) | the target's declaration bounds every PDU we send |
//! | ImmediateData | No | then we send no immediate data, right whatever the target assumed |
//! | InitialR2T | Yes | then we send no unsolicited Data-Out, right whatever the target assumed |
//! | FirstBurstLength | min(offer, 65536), and no unsolicited data at all (ImmediateData No, InitialR2T Yes) | how much the target takes unasked is unknown; Irrelevant is its right answer when InitialR2T=Yes and ImmediateData=No |
//! | MaxBurstLength | min(offer, 262144) | the RFC default; an R2T beyond it is a reported violation |
//! | MaxOutstandingR2T | 1 | the default; more R2Ts at once are a reported violation |
//! | DataPDUInOrder, DataSequenceInOrder | Yes | our offer and the default; out-of-order data is a reported violation |
//! | DefaultTime2Wait, DefaultTime2Retain | the default (2, 20) | recovery pacing only |
//! | ErrorRecoveryLevel | 0 | we implement level 0 only |
//! | MaxConnections | 1 | we open one connection |
//!
//! A key the target never answers gets the result function of our offer and the RFC default
//! (tgtd leaves out MaxRecvDataSegmentLength when it is 8192), except a digest key offered
//! without `None` (the default): [`Error::Unanswered`]. A list the target sends for a digest
//! key is its own offer: we pick our first supported value and answer it
//! ([`Error::NoCommonValue`] when there is none). Declarations (TargetAlias,
//! TargetPortalGroupTag, TargetAddress) are taken as given, repeated only unchanged; RFC 3720's
//! markers are answered `No`/`Irrelevant`; a key only an initiator sends (InitiatorName,
//! InitiatorAlias, SessionType: "Senders: Initiator" in §13) fails the login
//! ([`Error::InitiatorOnlyKey`]): answering it `NotUnderstood` would send our own key back as
//! if we did not know it; other keys get `NotUnderstood`.

use alloc::string::String;
use core::fmt;

use crate::escape::Untrusted;

mod codec;
mod discovery;
mod negotiation;
mod params;

pub(crate) use codec::number;
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
    /// The target sent a key that only an initiator sends (RFC 7143 §13).
    InitiatorOnlyKey(&'static str),
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
    /// The target answered a list key with a value outside our offer `offered`.
    AnswerNotOffered {
        key: &'static str,
        offered: String,
        value: String,
    },
    /// The target offered a list key (`theirs`) without a value we support (`ours`).
    NoCommonValue {
        key: &'static str,
        ours: &'static str,
        theirs: String,
    },
    /// The target answered `Reject`, `Irrelevant` or `NotUnderstood` (`answer`) to our offer
    /// `offered` of a key whose value both sides must agree on (see the module documentation).
    Declined {
        key: &'static str,
        offered: String,
        answer: &'static str,
    },
    /// The target did not answer our offer of a key whose RFC default we did not offer.
    Unanswered { key: &'static str, offered: String },
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
                write!(
                    f,
                    "value of {} is {len} bytes, above {MAX_VALUE_LEN}",
                    Untrusted(key)
                )
            }
            // One message for the value's problems (a table, not a `write!` each).
            Error::BadValue { key } | Error::ValueWithNul { key } => {
                let what = match self {
                    Error::BadValue { .. } => "is not valid UTF-8 text",
                    _ => "contains a NUL byte",
                };
                write!(f, "value of {} {what}", Untrusted(key))
            }
            Error::MissingTerminator => f.write_str("text data does not end with NUL"),
            Error::TooMuchText { limit } => write!(f, "text exceeds {limit} bytes"),
            Error::TooManyKeys => write!(f, "more than {MAX_KEYS} keys"),
            Error::DuplicateKey(k) => write!(f, "key {} sent twice", Untrusted(k)),
            Error::InitiatorOnlyKey(k) => {
                write!(f, "the target sent {k}, a key only an initiator sends")
            }
            Error::BadNumber { key, value } | Error::BadBoolean { key, value } => {
                let what = match self {
                    Error::BadNumber { .. } => "a number",
                    _ => "Yes or No",
                };
                write!(f, "{key}={} is not {what}", Untrusted(value))
            }
            Error::OutOfRange {
                key,
                value,
                min,
                max,
            } => write!(f, "{key}={value} outside {min}..={max}"),
            Error::AnswerNotOffered {
                key,
                offered,
                value,
            } => write!(
                f,
                "{key}: target answered {}, outside our offer {offered}{}",
                Untrusted(value),
                DigestHint(key)
            ),
            Error::NoCommonValue { key, ours, theirs } => write!(
                f,
                "{key}: target offered {}, none of which we accept ({ours}){}",
                Untrusted(theirs),
                DigestHint(key)
            ),
            Error::Declined {
                key,
                offered,
                answer,
            } => write!(
                f,
                "{key}: target answered {answer} to our offer {offered}; both sides must \
                 agree on it{}",
                DigestHint(key)
            ),
            Error::Unanswered { key, offered } => write!(
                f,
                "{key}: target did not answer our offer {offered}, which excludes the \
                 default{}",
                DigestHint(key)
            ),
            Error::AnswerViolatesResultFunction {
                key,
                offered,
                answered,
            } => write!(
                f,
                "{key}: target answered {answered}, impossible for our offer {offered}"
            ),
            Error::FirstBurstAboveMaxBurst { first, max } => {
                write!(f, "FirstBurstLength {first} above MaxBurstLength {max}")
            }
            Error::BadOffer { key } => write!(f, "our offer for {key} is invalid"),
            Error::BadTargetAddress(v) => write!(f, "bad TargetAddress \"{}\"", Untrusted(v)),
            Error::TargetAddressWithoutName(v) => {
                write!(
                    f,
                    "TargetAddress \"{}\" before any TargetName",
                    Untrusted(v)
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// The digest setting's names, for a message about HeaderDigest or DataDigest: where the
/// admin changes what we offer.
pub const DIGEST_SETTING: &str = "the digest setting: net.isboot.digests, isbootctl boot --digests";

/// `" (the digest setting: ...)"` after a message about a digest key, nothing otherwise.
struct DigestHint<'a>(&'a str);

impl fmt::Display for DigestHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            "HeaderDigest" | "DataDigest" => write!(f, " ({DIGEST_SETTING})"),
            _ => Ok(()),
        }
    }
}
