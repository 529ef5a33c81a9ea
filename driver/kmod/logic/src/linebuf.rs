// SPDX-License-Identifier: BSD-2-Clause
//! A fixed-size, truncating text buffer for kernel console lines and panic messages.
//!
//! Logging and the panic handler must work when the allocator cannot (out of memory, or a panic
//! inside the allocator), so a line is formatted on the stack. Output past the capacity is
//! dropped at a character boundary and the line ends in `...`, so a cut message is visibly cut.
//! Control characters (a newline in a target's reject reason, an escape sequence in a firmware
//! string) are shown as `?`: one log call is one console line.

use core::fmt;

const ELLIPSIS: &[u8] = b"...";

/// A line of at most `N` bytes (`N` >= 4).
#[derive(Debug)]
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far (valid UTF-8: cuts happen at character boundaries).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// The text of any `LineBuf<N>`, so that its writing is compiled once, not once per size.
struct Line<'a> {
    buf: &'a mut [u8],
    len: &'a mut usize,
    truncated: &'a mut bool,
}

impl Line<'_> {
    fn push_char(&mut self, c: char) -> bool {
        let c = if c.is_control() { '?' } else { c };
        let mut utf8 = [0u8; 4];
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        // Room is kept for the ellipsis until the last character is known to fit.
        let limit = self.buf.len().saturating_sub(ELLIPSIS.len());
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(*self.len..end) {
            Some(dst) if end <= limit => {
                dst.copy_from_slice(bytes);
                *self.len = end;
                true
            }
            _ => false,
        }
    }

    fn mark_truncated(&mut self) {
        if *self.truncated {
            return;
        }
        *self.truncated = true;
        let end = self.len.saturating_add(ELLIPSIS.len());
        if let Some(dst) = self.buf.get_mut(*self.len..end) {
            dst.copy_from_slice(ELLIPSIS);
            *self.len = end;
        }
    }

    #[inline(never)]
    fn write(mut self, s: &str) {
        if *self.truncated {
            return;
        }
        for c in s.chars() {
            if !self.push_char(c) {
                self.mark_truncated();
                break;
            }
        }
    }

    // `fmt::Write`'s own `write_char` encodes the character before `write_str`, once per
    // capacity; this is compiled once.
    #[inline(never)]
    fn write_char(mut self, c: char) {
        if !*self.truncated && !self.push_char(c) {
            self.mark_truncated();
        }
    }
}

impl<const N: usize> LineBuf<N> {
    /// The capacity-free view the writers work on.
    fn line(&mut self) -> Line<'_> {
        Line {
            buf: &mut self.buf,
            len: &mut self.len,
            truncated: &mut self.truncated,
        }
    }
}

impl<const N: usize> fmt::Write for LineBuf<N> {
    /// Never fails: a formatting error would abort the rest of a log line or panic message.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.line().write(s);
        Ok(())
    }

    fn write_char(&mut self, c: char) -> fmt::Result {
        self.line().write_char(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn short_text_is_kept_verbatim() {
        let mut b = LineBuf::<32>::new();
        let who = "tgt";
        write!(b, "login to {who} ok").unwrap();
        assert_eq!(b.as_str(), "login to tgt ok");
        assert!(!b.is_truncated());
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_within_capacity() {
        let mut b = LineBuf::<16>::new();
        write!(b, "{}", "x".repeat(40)).unwrap();
        assert_eq!(b.as_str(), "xxxxxxxxxxxxx...");
        assert_eq!(b.len(), 16);
        assert!(b.is_truncated());
        // Later writes do not append after the ellipsis.
        write!(b, "more").unwrap();
        assert_eq!(b.as_str(), "xxxxxxxxxxxxx...");
    }

    #[test]
    fn text_that_fills_the_buffer_exactly_minus_ellipsis_is_not_marked() {
        let mut b = LineBuf::<8>::new();
        write!(b, "abcde").unwrap();
        assert_eq!(b.as_str(), "abcde");
        assert!(!b.is_truncated());
    }

    #[test]
    fn cut_never_splits_a_multibyte_character() {
        let mut b = LineBuf::<9>::new();
        // 'é' is two bytes: "aaaaé" would need 6 of the 6 usable bytes, "aaaaaé" 7.
        write!(b, "aaaaaé tail").unwrap();
        assert_eq!(b.as_str(), "aaaaa...");
        assert!(core::str::from_utf8(b.as_bytes()).is_ok());
    }

    #[test]
    fn control_characters_become_question_marks() {
        let mut b = LineBuf::<32>::new();
        write!(b, "a\nb\x1b[2Jc\0").unwrap();
        assert_eq!(b.as_str(), "a?b?[2Jc?");
    }

    #[test]
    fn characters_written_one_at_a_time_read_as_the_same_text() {
        for text in ["abc", "a\nbé", "aaaaaé tail", "xxxxxxxxxxxxxxxxxxxx"] {
            let mut whole = LineBuf::<9>::new();
            whole.write_str(text).unwrap();
            let mut chars = LineBuf::<9>::new();
            for c in text.chars() {
                chars.write_char(c).unwrap();
            }
            assert_eq!(chars.as_str(), whole.as_str(), "{text:?}");
            assert_eq!(chars.is_truncated(), whole.is_truncated(), "{text:?}");
        }
    }
}
