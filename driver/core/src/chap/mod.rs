// SPDX-License-Identifier: BSD-2-Clause
//! CHAP for iSCSI login (RFC 7143 §12.1.3, RFC 1994), one-way and mutual.
//!
//! The initiator offers `CHAP_A=8,7,6,5` (SHA3-256, SHA-256, SHA-1, MD5), answers the target's
//! `CHAP_I`/`CHAP_C` with `CHAP_N` and `CHAP_R = H(id || secret || challenge)`, and for mutual
//! CHAP sends its own `CHAP_I`/`CHAP_C` (from the platform's random source) and checks the
//! target's `CHAP_N` and, in constant time, its `CHAP_R`.
//!
//! Binary values are read in hex (`0x`) or base64 (`0b`) and written in hex. isboot knew only
//! MD5, rejected base64, never checked the target's name and compared responses with `memcmp`.
//!
//! Interoperability: tgtd (at least Debian 12's 1.0.85) answers `CHAP_A=7` but computes SHA-1
//! for it, and knows only "5" and "7", so a login offering `8,7,6,5` fails with an initiator
//! error (checked by hand against that tgtd). [`Chap::retry_algorithms`] gives the offer for a
//! second attempt without the algorithm the target chose (`8,6,5`: tgtd then picks MD5), in the
//! same way as the `CHAP_A=5` retry for targets that reject a list.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

mod hash;

use crate::escape::Untrusted;
use crate::secret::{ct_eq, Secret};

/// Longest challenge we accept or send, in bytes (RFC 7143 §12.1.3).
pub const MAX_CHALLENGE_LEN: usize = 1024;
/// Length of the challenges we send. Longer than every digest, so the challenge is never the
/// weak part.
pub const OUR_CHALLENGE_LEN: usize = 32;

/// CHAP hash algorithms by their IANA number (the `CHAP_A` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha3_256,
}

/// What we offer by default, strongest first (as open-iscsi does).
pub const DEFAULT_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Sha3_256,
    Algorithm::Sha256,
    Algorithm::Sha1,
    Algorithm::Md5,
];

impl Algorithm {
    /// The IANA number sent in `CHAP_A`.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::Md5 => 5,
            Algorithm::Sha1 => 6,
            Algorithm::Sha256 => 7,
            Algorithm::Sha3_256 => 8,
        }
    }

    pub fn from_number(n: u64) -> Option<Algorithm> {
        match n {
            5 => Some(Algorithm::Md5),
            6 => Some(Algorithm::Sha1),
            7 => Some(Algorithm::Sha256),
            8 => Some(Algorithm::Sha3_256),
            _ => None,
        }
    }

    /// Bytes of a response.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 | Algorithm::Sha3_256 => 32,
        }
    }

    /// `H(id || secret || challenge)` (RFC 1994 §4.1).
    pub fn response(self, id: u8, secret: &Secret, challenge: &[u8]) -> Vec<u8> {
        let s = secret.expose();
        match self {
            Algorithm::Md5 => hash::md5(&[&[id], s, challenge]),
            Algorithm::Sha1 => hash::sha1(&[&[id], s, challenge]),
            Algorithm::Sha256 => hash::sha256(&[&[id], s, challenge]),
            Algorithm::Sha3_256 => hash::sha3_256(&[&[id], s, challenge]),
        }
    }
}

/// Everything that can go wrong in a CHAP exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The target's `CHAP_A` is not a number.
    BadAlgorithm(String),
    /// The target chose an algorithm we did not offer.
    AlgorithmNotOffered(u64),
    /// The target's message lacks a key CHAP needs.
    MissingKey(&'static str),
    /// `CHAP_I` not a number in 0..=255.
    BadIdentifier(String),
    /// A binary value without a `0x`/`0b` prefix.
    BadEncoding { key: &'static str },
    /// A `0x` value with a non-hex digit.
    BadHex { key: &'static str },
    /// A `0b` value that is not valid base64.
    BadBase64 { key: &'static str },
    /// An empty binary value.
    EmptyValue { key: &'static str },
    /// A binary value above [`MAX_CHALLENGE_LEN`] bytes.
    ValueTooLong { key: &'static str, len: usize },
    /// The target sent back the challenge we sent it (reflection attack).
    ChallengeReflected,
    /// The target's `CHAP_R` has the wrong length for the algorithm.
    BadResponseLength { expected: usize, got: usize },
    /// Mutual CHAP: the target's `CHAP_N` is not the configured target name.
    TargetNameMismatch { got: String },
    /// Mutual CHAP: the target's `CHAP_R` is wrong: it does not know the secret.
    TargetResponseMismatch,
    /// Mutual CHAP configured with the same secret both ways (RFC 7143 §12.1.3 forbids it).
    SameSecretBothWays,
    /// The configuration offers no algorithm.
    NoAlgorithm,
    /// A step was called out of order (e.g. verifying before answering a challenge).
    OutOfOrder,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadAlgorithm(v) => {
                write!(f, "CHAP_A={} is not an algorithm number", Untrusted(v))
            }
            Error::AlgorithmNotOffered(n) => write!(f, "target chose CHAP_A={n}, not offered"),
            Error::MissingKey(k) => write!(f, "target did not send {k}"),
            Error::BadIdentifier(v) => write!(f, "CHAP_I={} is not in 0..=255", Untrusted(v)),
            // One message for the key's problems (a table, not a `write!` each).
            Error::BadEncoding { key }
            | Error::BadHex { key }
            | Error::BadBase64 { key }
            | Error::EmptyValue { key } => {
                let what = match self {
                    Error::BadEncoding { .. } => "is neither 0x hex nor 0b base64",
                    Error::BadHex { .. } => "has invalid hex",
                    Error::BadBase64 { .. } => "has invalid base64",
                    _ => "is empty",
                };
                write!(f, "{key} {what}")
            }
            Error::ValueTooLong { key, len } => {
                write!(f, "{key} is {len} bytes, above {MAX_CHALLENGE_LEN}")
            }
            Error::ChallengeReflected => f.write_str("target reflected our CHAP challenge"),
            Error::BadResponseLength { expected, got } => {
                write!(f, "CHAP_R of {got} bytes, expected {expected}")
            }
            Error::TargetNameMismatch { got } => {
                write!(
                    f,
                    "target authenticated as \"{}\", not the configured name",
                    Untrusted(got)
                )
            }
            Error::TargetResponseMismatch => f.write_str("target's CHAP_R is wrong"),
            Error::SameSecretBothWays => {
                f.write_str("mutual CHAP secret equals the initiator secret")
            }
            Error::NoAlgorithm => f.write_str("no CHAP algorithm configured"),
            Error::OutOfOrder => f.write_str("CHAP step out of order"),
        }
    }
}

impl core::error::Error for Error {}

/// Decodes a binary value: `0x`/`0X` hex (case-insensitive, an odd digit count implies a
/// leading zero nibble) or `0b`/`0B` base64. At most [`MAX_CHALLENGE_LEN`] bytes.
pub fn decode_binary(key: &'static str, value: &str) -> Result<Vec<u8>, Error> {
    let (prefix, body) = (value.get(..2), value.get(2..).unwrap_or(""));
    // Bound the work before decoding: 2 hex digits or 4/3 base64 characters per byte.
    if body.len() > MAX_CHALLENGE_LEN * 2 + 4 {
        return Err(Error::ValueTooLong {
            key,
            len: body.len() / 2,
        });
    }
    let bytes = match prefix {
        Some("0x") | Some("0X") => decode_hex(key, body)?,
        Some("0b") | Some("0B") => {
            decode_base64(body.as_bytes()).ok_or(Error::BadBase64 { key })?
        }
        _ => return Err(Error::BadEncoding { key }),
    };
    if bytes.is_empty() {
        return Err(Error::EmptyValue { key });
    }
    if bytes.len() > MAX_CHALLENGE_LEN {
        return Err(Error::ValueTooLong {
            key,
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

fn decode_hex(key: &'static str, digits: &str) -> Result<Vec<u8>, Error> {
    fn nibble(c: u8) -> Option<u8> {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let d = digits.as_bytes();
    let mut out = Vec::with_capacity(d.len().div_ceil(2));
    let (head, rest) = d.split_at(d.len() % 2);
    for &c in head {
        out.push(nibble(c).ok_or(Error::BadHex { key })?);
    }
    for pair in rest.chunks_exact(2) {
        let (hi, lo) = match pair {
            &[a, b] => (nibble(a), nibble(b)),
            _ => (None, None),
        };
        match (hi, lo) {
            (Some(h), Some(l)) => out.push((h << 4) | l),
            _ => return Err(Error::BadHex { key }),
        }
    }
    Ok(out)
}

/// Standard base64 (RFC 4648 §4), padded or not: what the `base64` crate's
/// `STANDARD_PAD_INDIFFERENT` engine accepts, decoded the same way (a test compares them), in a
/// fraction of its code. `=` only ends the last group of four, after two symbols at least;
/// the last symbol's bits that make no whole byte must be zero; a group of one symbol is
/// refused.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    let data_len = s
        .len()
        .saturating_sub(s.iter().rev().take_while(|&&b| b == b'=').count());
    let (data, padding) = s.split_at_checked(data_len)?;
    // Where the last group starts: the text's last 1-4 bytes.
    let last_group = match s.len() % 4 {
        0 => s.len().saturating_sub(4),
        rem => s.len().saturating_sub(rem),
    };
    if data_len % 4 == 1 || (!padding.is_empty() && data_len < last_group.saturating_add(2)) {
        return None;
    }
    let mut out = Vec::with_capacity(data_len.saturating_mul(3) / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c.wrapping_sub(b'A'),
            b'a'..=b'z' => c.wrapping_sub(b'a').wrapping_add(26),
            b'0'..=b'9' => c.wrapping_sub(b'0').wrapping_add(52),
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc.wrapping_shl(6) | u32::from(v);
        bits = bits.wrapping_add(6);
        if bits >= 8 {
            bits = bits.wrapping_sub(8);
            out.push(acc.wrapping_shr(bits) as u8);
        }
    }
    // The bits left over (0, 2 or 4) must be zero.
    (acc & 1u32.wrapping_shl(bits).wrapping_sub(1) == 0).then_some(out)
}

/// Encodes bytes as `0x` + lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2).saturating_add(2));
    s.push_str("0x");
    for &b in bytes {
        for n in [b >> 4, b & 0x0f] {
            s.extend(char::from_digit(u32::from(n), 16));
        }
    }
    s
}

/// The `CHAP_A` value offering `algs` in order, e.g. `8,7,6,5`.
pub fn offer_value(algs: &[Algorithm]) -> String {
    let mut s = String::new();
    for (i, a) in algs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&a.number().to_string());
    }
    s
}

/// The target's `CHAP_A` answer: one of the algorithms we `offered`.
pub fn parse_algorithm(value: &str, offered: &[Algorithm]) -> Result<Algorithm, Error> {
    // The number alone: a text error built here would only be dropped for CHAP's own.
    let n = crate::text::number(value).ok_or_else(|| Error::BadAlgorithm(value.to_string()))?;
    Algorithm::from_number(n)
        .filter(|a| offered.contains(a))
        .ok_or(Error::AlgorithmNotOffered(n))
}

/// Parses `CHAP_I`: a number in 0..=255.
pub fn parse_identifier(value: &str) -> Result<u8, Error> {
    crate::text::number(value)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| Error::BadIdentifier(value.to_string()))
}

/// A name and secret pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub secret: Secret,
}

/// CHAP configuration of one login (from the iBFT or the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapConfig {
    /// Our `CHAP_N` and the secret the target checks.
    pub initiator: Credentials,
    /// Mutual CHAP: the name the target must present and the secret it must know.
    pub target: Option<Credentials>,
    /// Algorithms to offer, in order of preference.
    pub algorithms: Vec<Algorithm>,
}

impl ChapConfig {
    pub fn new(initiator: Credentials, target: Option<Credentials>) -> Self {
        ChapConfig {
            initiator,
            target,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.algorithms.is_empty() {
            return Err(Error::NoAlgorithm);
        }
        if let Some(t) = &self.target {
            if t.secret == self.initiator.secret {
                return Err(Error::SameSecretBothWays);
            }
        }
        Ok(())
    }

    pub fn is_mutual(&self) -> bool {
        self.target.is_some()
    }
}

/// Our challenge for mutual CHAP, kept to check the target's answer.
#[derive(Clone, Debug)]
struct SentChallenge {
    algorithm: Algorithm,
    id: u8,
    challenge: Vec<u8>,
}

/// The initiator side of one CHAP exchange.
///
/// 1. Send `CHAP_A` = [`Chap::offer`].
/// 2. With the target's `CHAP_A`, `CHAP_I`, `CHAP_C`: [`Chap::answer`] gives the pairs to
///    send (`CHAP_N`, `CHAP_R`, and for mutual CHAP our `CHAP_I`, `CHAP_C`).
/// 3. Mutual CHAP: [`Chap::verify_target`] with the target's `CHAP_N`, `CHAP_R`.
#[derive(Debug)]
pub struct Chap<'a> {
    config: &'a ChapConfig,
    algorithms: &'a [Algorithm],
    sent: Option<SentChallenge>,
    answered: bool,
    chosen: Option<Algorithm>,
}

impl<'a> Chap<'a> {
    pub fn new(config: &'a ChapConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Chap {
            config,
            algorithms: &config.algorithms,
            sent: None,
            answered: false,
            chosen: None,
        })
    }

    /// Same, but offering only `algorithms` (e.g. `[Algorithm::Md5]` for the retry with old
    /// targets that reject a list).
    pub fn with_algorithms(
        config: &'a ChapConfig,
        algorithms: &'a [Algorithm],
    ) -> Result<Self, Error> {
        if algorithms.is_empty() {
            return Err(Error::NoAlgorithm);
        }
        let mut c = Chap::new(config)?;
        c.algorithms = algorithms;
        Ok(c)
    }

    /// The `CHAP_A` value to send.
    pub fn offer(&self) -> String {
        offer_value(self.algorithms)
    }

    /// Answers the target's challenge. `fill_random` fills our mutual challenge.
    pub fn answer(
        &mut self,
        chap_a: &str,
        chap_i: &str,
        chap_c: &str,
        mut fill_random: impl FnMut(&mut [u8]),
    ) -> Result<Vec<(&'static str, String)>, Error> {
        if self.answered {
            return Err(Error::OutOfOrder);
        }
        let algorithm = parse_algorithm(chap_a, self.algorithms)?;
        self.chosen = Some(algorithm);
        let id = parse_identifier(chap_i)?;
        let challenge = decode_binary("CHAP_C", chap_c)?;
        let response = algorithm.response(id, &self.config.initiator.secret, &challenge);
        let mut out = alloc::vec![
            ("CHAP_N", self.config.initiator.name.clone()),
            ("CHAP_R", encode_hex(&response)),
        ];
        if self.config.target.is_some() {
            let mut ours = alloc::vec![0u8; OUR_CHALLENGE_LEN];
            // A challenge equal to the target's would let it answer with our own response;
            // a working random source practically never repeats, so a few tries suffice.
            for _ in 0..4 {
                fill_random(&mut ours);
                if ours != challenge {
                    break;
                }
            }
            if ours == challenge {
                return Err(Error::ChallengeReflected);
            }
            let mut id_byte = [0u8; 1];
            fill_random(&mut id_byte);
            out.push(("CHAP_I", id_byte[0].to_string()));
            out.push(("CHAP_C", encode_hex(&ours)));
            self.sent = Some(SentChallenge {
                algorithm,
                id: id_byte[0],
                challenge: ours,
            });
        }
        self.answered = true;
        Ok(out)
    }

    /// The algorithm the target chose, once [`Chap::answer`] succeeded.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.chosen
    }

    /// After a failed login: the algorithms to offer in a new attempt, i.e. this offer without
    /// the one the target chose. `None` when nothing would be left, or nothing was chosen.
    pub fn retry_algorithms(&self) -> Option<Vec<Algorithm>> {
        let chosen = self.chosen?;
        let rest: Vec<Algorithm> = self
            .algorithms
            .iter()
            .copied()
            .filter(|&a| a != chosen)
            .collect();
        (!rest.is_empty()).then_some(rest)
    }

    /// True when mutual CHAP is on and the target still has to prove itself.
    pub fn expects_target_response(&self) -> bool {
        self.sent.is_some()
    }

    /// Mutual CHAP: checks the target's `CHAP_N` and `CHAP_R` (constant-time).
    pub fn verify_target(&self, chap_n: &str, chap_r: &str) -> Result<(), Error> {
        let (Some(sent), Some(target)) = (&self.sent, &self.config.target) else {
            return Err(Error::OutOfOrder);
        };
        if chap_n != target.name {
            return Err(Error::TargetNameMismatch {
                got: chap_n.to_string(),
            });
        }
        let got = decode_binary("CHAP_R", chap_r)?;
        let expected = sent
            .algorithm
            .response(sent.id, &target.secret, &sent.challenge);
        if got.len() != expected.len() {
            return Err(Error::BadResponseLength {
                expected: expected.len(),
                got: got.len(),
            });
        }
        if ct_eq(&got, &expected) {
            Ok(())
        } else {
            Err(Error::TargetResponseMismatch)
        }
    }

    /// [`Chap::answer`] from the target's pairs (looks up `CHAP_A`, `CHAP_I`, `CHAP_C`).
    pub fn answer_pairs(
        &mut self,
        pairs: &[(&str, &str)],
        fill_random: impl FnMut(&mut [u8]),
    ) -> Result<Vec<(&'static str, String)>, Error> {
        let a = find(pairs, "CHAP_A")?;
        let i = find(pairs, "CHAP_I")?;
        let c = find(pairs, "CHAP_C")?;
        self.answer(a, i, c, fill_random)
    }

    /// [`Chap::verify_target`] from the target's pairs.
    pub fn verify_target_pairs(&self, pairs: &[(&str, &str)]) -> Result<(), Error> {
        self.verify_target(find(pairs, "CHAP_N")?, find(pairs, "CHAP_R")?)
    }
}

fn find<'p>(pairs: &[(&str, &'p str)], key: &'static str) -> Result<&'p str, Error> {
    pairs
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or(Error::MissingKey(key))
}

#[cfg(test)]
mod tests;
