// SPDX-License-Identifier: BSD-2-Clause
//! The syntax of an iSCSI name (RFC 7143 §4.2.7, RFC 3720 §3.2.6.3): `iqn.YYYY-MM.reversed.domain`
//! optionally followed by `:anything`, `eui.` with 16 hex digits, or `naa.` with 16 or 32 hex
//! digits, at most 223 bytes.
//!
//! One check for every place a person types a name: `isbootctl`'s options and the loader
//! tunables (`net.isboot.initiator_name`, the target name of `net.isboot.root_path`). Names are
//! compared after RFC 3722 normalisation, which lowercases: an uppercase letter is refused here
//! rather than silently changed, so that what the target is configured with and what we send
//! cannot differ by case. Names from firmware (the iBFT) are taken as the firmware wrote them.

use core::fmt;

use crate::escape::QuotedChar;

/// RFC 7143 §4.2.7.1 (via RFC 3722): an iSCSI name is at most 223 bytes.
pub const MAX_LEN: usize = 223;

/// Why a string is not an iSCSI name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    TooLong {
        len: usize,
    },
    /// Starts with none of `iqn.`, `eui.`, `naa.`.
    UnknownType,
    EuiDigits,
    NaaDigits,
    /// `iqn.` not followed by `YYYY-MM.`.
    IqnDate,
    /// `iqn.YYYY-MM.` followed by no (or an empty label of a) naming authority.
    IqnAuthority,
    Uppercase,
    BadChar(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::TooLong { len } => {
                write!(f, "{len} bytes, longer than {MAX_LEN} bytes")
            }
            NameError::UnknownType => f.write_str("expected iqn., eui. or naa."),
            NameError::EuiDigits => f.write_str("eui. takes 16 hex digits"),
            NameError::NaaDigits => f.write_str("naa. takes 16 or 32 hex digits"),
            NameError::IqnDate => {
                f.write_str("iqn. is followed by the year and month, iqn.YYYY-MM.")
            }
            NameError::IqnAuthority => {
                f.write_str("no naming authority (reversed domain name) after the date")
            }
            NameError::Uppercase => f.write_str("iSCSI names are lowercase (RFC 3722)"),
            NameError::BadChar(c) => write!(f, "character {} is not allowed", QuotedChar(*c)),
        }
    }
}

impl core::error::Error for NameError {}

fn hex_digits(h: &str, lens: &[usize]) -> bool {
    lens.contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `s` against the name syntax.
pub fn check(s: &str) -> Result<(), NameError> {
    if s.len() > MAX_LEN {
        return Err(NameError::TooLong { len: s.len() });
    }
    if let Some(h) = s.strip_prefix("eui.") {
        return hex_digits(h, &[16])
            .then_some(())
            .ok_or(NameError::EuiDigits);
    }
    if let Some(h) = s.strip_prefix("naa.") {
        return hex_digits(h, &[16, 32])
            .then_some(())
            .ok_or(NameError::NaaDigits);
    }
    let rest = s.strip_prefix("iqn.").ok_or(NameError::UnknownType)?;
    let date = rest.as_bytes().get(..8).ok_or(NameError::IqnDate)?;
    let month = date
        .get(5..7)
        .and_then(|m| core::str::from_utf8(m).ok())
        .and_then(|m| m.parse::<u8>().ok());
    let date_ok = date.iter().take(4).all(u8::is_ascii_digit)
        && date.get(4) == Some(&b'-')
        && matches!(month, Some(1..=12))
        && date.get(7) == Some(&b'.');
    if !date_ok {
        return Err(NameError::IqnDate);
    }
    let rest = rest.get(8..).ok_or(NameError::IqnDate)?;
    let authority = rest.split_once(':').map_or(rest, |(a, _)| a);
    if authority.is_empty() || authority.split('.').any(str::is_empty) {
        return Err(NameError::IqnAuthority);
    }
    let bad = s.chars().find(|c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
            && (c.is_ascii() || c.is_control())
    });
    match bad {
        Some(c) if c.is_ascii_uppercase() => Err(NameError::Uppercase),
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn names_of_every_type_pass() {
        for ok in [
            "iqn.2026-01.org.example:host1-root",
            "iqn.1992-01.com.example",
            "iqn.2001-04.com.example:storage.disk2.sys1.xyz",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.62004567BA64678D0123456789ABCDEF",
            // Non-ASCII letters are allowed (RFC 3722 maps them; we send them as given).
            "iqn.2026-01.org.example:disque-\u{e9}t\u{e9}",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        let long = format!("iqn.2026-01.org.example:{}", "a".repeat(200));
        for (bad, want) in [
            ("iqn.2026-13.org.example", NameError::IqnDate),
            ("iqn.26-01.org.example", NameError::IqnDate),
            ("iqn.2026-01", NameError::IqnDate),
            ("iqn.2026-01x", NameError::IqnDate),
            ("iqn.2026-01.", NameError::IqnAuthority),
            ("iqn.2026-01.:x", NameError::IqnAuthority),
            ("iqn.2026-01.org..example", NameError::IqnAuthority),
            ("iqn.2026-01.org.Example", NameError::Uppercase),
            ("iqn.2026-01.org.example:a b", NameError::BadChar(' ')),
            (
                "iqn.2026-01.org.example:a\u{1b}",
                NameError::BadChar('\u{1b}'),
            ),
            (
                "iqn.2026-01.org.example:a\u{85}",
                NameError::BadChar('\u{85}'),
            ),
            ("eui.0200456", NameError::EuiDigits),
            ("eui.02004567A425678G", NameError::EuiDigits),
            ("naa.52004567BA64678DAB", NameError::NaaDigits),
            ("target1", NameError::UnknownType),
            ("", NameError::UnknownType),
            (long.as_str(), NameError::TooLong { len: long.len() }),
        ] {
            assert_eq!(check(bad), Err(want), "{bad}");
        }
        assert_eq!(
            NameError::TooLong { len: 224 }.to_string(),
            "224 bytes, longer than 223 bytes"
        );
    }

    #[test]
    fn a_multibyte_character_at_the_date_does_not_panic() {
        assert_eq!(check("iqn.2026-\u{e9}.org"), Err(NameError::IqnDate));
        assert_eq!(
            check("iqn.\u{e9}\u{e9}\u{e9}\u{e9}"),
            Err(NameError::IqnDate)
        );
    }
}
