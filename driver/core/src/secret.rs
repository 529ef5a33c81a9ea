// SPDX-License-Identifier: BSD-2-Clause
//! A CHAP secret that cannot leak by accident.
//!
//! The iBFT carries CHAP secrets in plaintext and isboot printed them with `boot -v`. `Secret`
//! makes printing impossible (`Debug` and `Display` show `<redacted>`), reading the bytes a visible
//! act (`expose`), comparison constant-time (`ct_eq`, also behind `==`), and wipes its buffer when
//! dropped.

use alloc::vec::Vec;
use core::fmt;

/// Bytes of a CHAP secret (or any credential).
///
/// `Debug`/`Display` never show the content; `==` is constant-time in the content (it still
/// reveals whether the lengths differ, which CHAP secrets do not need to hide).
#[derive(Clone, Default)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// Copies `bytes` into a new secret.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
        }
    }

    /// The secret's bytes, for the one place that must feed them to a hash.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Equality whose running time depends only on the lengths, never on where the first
    /// difference lies.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.bytes, other)
    }
}

/// Constant-time comparison of two byte strings (time depends on the lengths only).
///
/// Used for secrets and for CHAP responses, where an early exit would tell an attacker how many
/// leading bytes of a guess were right.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        // Missing bytes of the shorter side count as a difference without a data-dependent exit.
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= core::hint::black_box(x ^ y);
    }
    core::hint::black_box(diff) == 0
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(&other.bytes)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.bytes.iter_mut() {
            *b = 0;
        }
        // Keeps the compiler from dropping the wipe as a dead store before the free.
        core::hint::black_box(&mut self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let s = Secret::new(b"rigin-secret-12");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert!(!format!("{s:#?}").contains("rigin"));
    }

    #[test]
    fn expose_len_and_is_empty() {
        let s = Secret::new(b"abc");
        assert_eq!(s.expose(), b"abc");
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert!(Secret::new(b"").is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        let s = Secret::new(b"secret-12");
        assert!(s.ct_eq(b"secret-12"));
        assert!(!s.ct_eq(b"secret-13"));
        assert!(!s.ct_eq(b"Secret-12"));
        assert!(!s.ct_eq(b"secret-1"));
        assert!(!s.ct_eq(b"secret-120"));
        assert!(!s.ct_eq(b""));
        assert!(Secret::new(b"").ct_eq(b""));
        // A shorter side padded with zeros must not compare equal to a zero-extended longer one.
        assert!(!ct_eq(b"a", b"a\0"));
        assert_eq!(s, Secret::new(b"secret-12"));
        assert_ne!(s, Secret::new(b"secret-21"));
    }
}
