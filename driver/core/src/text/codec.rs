// SPDX-License-Identifier: BSD-2-Clause
//! The text codec (RFC 7143 §6.1, §6.2): `key=value` pairs separated by NUL, encoded by
//! [`TextBuilder`], decoded by [`parse_pairs`], joined across PDUs with the C bit by
//! [`Accumulator`] and split for them by [`split_for_pdus`]; numerical, boolean and list values.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Error, DEFAULT_MAX_TEXT_LEN, MAX_KEYS, MAX_KEY_LEN, MAX_VALUE_LEN};

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
/// [`MAX_VALUE_LEN`] bytes. Duplicates are not checked here (see [`Negotiation`](super::Negotiation)).
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
/// [`Negotiation`](super::Negotiation)).
pub fn is_security_key(key: &str) -> bool {
    key == "AuthMethod"
        || ["CHAP_", "SRP_", "KRB_", "SPKM_"]
            .iter()
            .any(|p| key.starts_with(p))
}

/// Parses an RFC 7143 numerical value: decimal or `0x` hex, no sign.
pub fn parse_number(key: &'static str, value: &str) -> Result<u64, Error> {
    number(value).ok_or_else(|| Error::BadNumber {
        key,
        value: value.to_string(),
    })
}

/// [`parse_number`] without the error, for callers that report their own (CHAP's).
pub(crate) fn number(value: &str) -> Option<u64> {
    let (digits, radix) = match value.get(..2) {
        Some("0x") | Some("0X") => (value.get(2..).unwrap_or(""), 16),
        _ => (value, 10),
    };
    digits_value(digits, radix)
}

/// The number `digits` write in `radix`: at least one digit, no sign; `None` past `u64`.
/// A loop of `to_digit`, not `u64::from_str_radix` (its general parser inlined here).
fn digits_value(digits: &str, radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        let d = char::from(b).to_digit(radix)?;
        n = n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(n)
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
        // Joined by hand: `[&str]::join` is a 512-byte generic copy loop in the module, for
        // two error messages.
        let mut list = String::new();
        for (i, v) in offered.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            list.push_str(v);
        }
        Err(Error::AnswerNotOffered {
            key,
            offered: list,
            value: answer.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Error;
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
        assert_eq!(parse_number("K", "18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_number("K", "0xFFFFffffFFFFffff"), Ok(u64::MAX));
        assert_eq!(parse_number("K", "007"), Ok(7));
        for bad in [
            "",
            "-1",
            "+1",
            "0x",
            "1e3",
            " 1",
            "99999999999999999999",
            "18446744073709551616",
            "0x10000000000000000",
            "1a",
            "0xg",
            "0x+1",
            "\u{661}",
        ] {
            assert_eq!(
                parse_number("K", bad),
                Err(Error::BadNumber {
                    key: "K",
                    value: bad.into()
                }),
                "{bad:?}"
            );
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
                offered: "None".into(),
                value: "CRC32C".into()
            })
        );
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
    fn security_keys() {
        for k in ["AuthMethod", "CHAP_A", "CHAP_R", "SRP_U"] {
            assert!(is_security_key(k), "{k}");
        }
        for k in ["MaxBurstLength", "TargetAlias", "CHAP"] {
            assert!(!is_security_key(k), "{k}");
        }
    }
}
