// SPDX-License-Identifier: BSD-2-Clause
//! The one choke point for text that a target or firmware chose, on its way to a log, a console
//! or a sysctl.
//!
//! A target picks AuthMethod values, CHAP identifiers, key names and values, redirect addresses;
//! firmware picks iBFT strings; a disk picks its volume names. Printed raw, such a string could
//! carry a newline and forge a line of its own ("isbootctl: boot disk usable: ..."), an escape
//! sequence that recolours or clears the console, or a direction override that reorders what
//! follows it. Two layers keep that out, both built on [`escape_char`]:
//!
//! - [`Untrusted`] wraps each foreign string where a message is formatted (the `Display` of
//!   `login`, `text` and `chap` errors, `isbootctl part`'s volume name): escaped, and cut after
//!   [`UNTRUSTED_MAX`] characters so an 8 KiB value cannot flood a console line.
//! - [`Escaper`] is a [`fmt::Write`] adapter every log sink writes through (the kernel's
//!   `log.rs`, the host's `StderrLog`, `isbootctl`'s output), so a string some message forgot to
//!   wrap still cannot break a line.
//!
//! What is escaped: C0 controls, DEL and C1 controls as `\xNN`; every other Unicode control,
//! the line and paragraph separators, bidirectional overrides and isolates, and zero-width
//! characters as `\u{NNNN}`. A backslash is left alone, so a message that quotes a value with
//! `{:?}` is not escaped twice; everything else printable, including non-ASCII letters, passes.

use core::fmt::{self, Write};

/// Characters of one [`Untrusted`] string shown before it is cut with `...`.
pub const UNTRUSTED_MAX: usize = 64;

/// Whether `c` is written escaped (see the module documentation).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c), 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff)
}

/// Writes `c` to `out`, escaped if [`needs_escape`] says so.
pub fn escape_char(c: char, out: &mut dyn Write) -> fmt::Result {
    let n = u32::from(c);
    if !needs_escape(c) {
        out.write_char(c)
    } else if n < 0x100 {
        write!(out, "\\x{n:02x}")
    } else {
        write!(out, "\\u{{{n:04x}}}")
    }
}

/// A [`fmt::Write`] that escapes everything written through it into `W`.
#[derive(Debug)]
pub struct Escaper<W>(pub W);

impl<W: Write> Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Runs of harmless characters go through in one call.
        let mut rest = s;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            // `split_at` would link core's slice-panic message, and with it `char`'s `Debug`
            // and the Unicode tables behind it; `i` is a boundary, so this never gives "".
            let (clean, tail) = rest.split_at_checked(i).unwrap_or((rest, ""));
            self.0.write_str(clean)?;
            escape_char(c, &mut self.0)?;
            rest = tail.get(c.len_utf8()..).unwrap_or("");
        }
        self.0.write_str(rest)
    }
}

/// Formats `args` escaped into `out`: what a log sink does with a message.
pub fn write_escaped(out: &mut dyn Write, args: fmt::Arguments<'_>) -> fmt::Result {
    Escaper(out).write_fmt(args)
}

/// A string a target or firmware chose, for a message: escaped, and cut after
/// [`UNTRUSTED_MAX`] characters with `...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(UNTRUSTED_MAX) {
            escape_char(c, f)?;
        }
        if chars.next().is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// A string quoted as `{:?}` quotes it, exactly so for ASCII. `Debug` needs Unicode tables
/// (printable, grapheme-extend: ~2 KiB of a kernel module); this escapes beyond ASCII what
/// [`needs_escape`] names and passes the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            quote_char(c, '"', f)?;
        }
        f.write_char('"')
    }
}

/// A character quoted as `{:?}` quotes it (see [`Quoted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedChar(pub char);

impl fmt::Display for QuotedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        quote_char(self.0, '\'', f)?;
        f.write_char('\'')
    }
}

fn quote_char(c: char, quote: char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let esc = match c {
        '\t' => 't',
        '\r' => 'r',
        '\n' => 'n',
        '\0' => '0',
        '\\' => '\\',
        c if c == quote => c,
        c if needs_escape(c) => return write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => return f.write_char(c),
    };
    f.write_char('\\')?;
    f.write_char(esc)
}

/// Bytes a target or firmware chose that need not be UTF-8: invalid sequences are shown as
/// `\xNN`, the rest as [`Untrusted`] text (the same length bound, counted in characters and
/// invalid bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UntrustedBytes<'a>(pub &'a [u8]);

impl fmt::Display for UntrustedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = 0usize;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if shown >= UNTRUSTED_MAX {
                    return f.write_str("...");
                }
                escape_char(c, f)?;
                shown = shown.saturating_add(1);
            }
            for b in chunk.invalid() {
                if shown >= UNTRUSTED_MAX {
                    return f.write_str("...");
                }
                write!(f, "\\x{b:02x}")?;
                shown = shown.saturating_add(1);
            }
        }
        Ok(())
    }
}

/// A line of at most `N` bytes that keeps its own storage (no allocation, `Copy`), filled
/// through the escaper: a session's last error as a platform publishes it (a sysctl, a status
/// line). Cut at a character boundary, ending in `...` when it was cut.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Line {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Line<N> {
    /// `args` formatted and escaped, cut to fit.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut l = Line::default();
        let mut sink = LineSink {
            line: &mut l,
            cut: false,
        };
        // Only a cut ends the formatting early; what fitted stays.
        let _ = write_escaped(&mut sink, args);
        if sink.cut {
            l.mark_cut();
        }
        l
    }

    pub fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replaces the tail with `...`, at a character boundary.
    fn mark_cut(&mut self) {
        let mut end = self.len.min(N.saturating_sub(3));
        while end > 0 && !self.as_str().is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        if let Some(dst) = self.buf.get_mut(end..end.saturating_add(3)) {
            dst.copy_from_slice(b"...");
            self.len = end.saturating_add(3);
        } else {
            self.len = end;
        }
    }
}

impl<const N: usize> fmt::Display for Line<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Line<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

struct LineSink<'a, const N: usize> {
    line: &'a mut Line<N>,
    cut: bool,
}

impl<const N: usize> Write for LineSink<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = self.line.len;
        let room = N.saturating_sub(start);
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take = take.saturating_sub(1);
        }
        let (Some(dst), Some(src)) = (
            self.line.buf.get_mut(start..start.saturating_add(take)),
            s.as_bytes().get(..take),
        ) else {
            self.cut = true;
            return Err(fmt::Error);
        };
        dst.copy_from_slice(src);
        self.line.len = start.saturating_add(take);
        if take < s.len() {
            self.cut = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;

    const FORGED: &str = "None\nisbootctl: boot disk usable: \u{1b}[2J\u{7}\r\u{202e}x\u{85}";

    fn escaped(args: fmt::Arguments<'_>) -> String {
        let mut s = String::new();
        write_escaped(&mut s, args).unwrap();
        s
    }

    #[test]
    fn quoted_is_debug_for_ascii_and_the_escaped_set() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("\u{85}\u{200b}\u{202e}\u{2028}\u{feff}");
        assert_eq!(format!("{}", Quoted(&all)), format!("{all:?}"));
        assert_eq!(format!("{}", Quoted("s\u{e9}rver")), "\"s\u{e9}rver\"");
        for c in all.chars() {
            assert_eq!(format!("{}", QuotedChar(c)), format!("{c:?}"), "{c:?}");
        }
    }

    #[test]
    fn no_control_character_passes_either_layer() {
        let u = format!("{}", Untrusted(FORGED));
        let e = escaped(format_args!("{FORGED}"));
        for s in [&u, &e] {
            assert!(!s.chars().any(needs_escape), "{s:?}");
            assert!(s.contains("\\x0aisbootctl"), "{s}");
            assert!(s.contains("\\x1b[2J\\x07\\x0d\\u{202e}x\\x85"), "{s}");
        }
        assert_eq!(u, e, "the two layers escape alike");
        // Printable text, non-ASCII letters and backslashes pass unchanged.
        assert_eq!(escaped(format_args!("é ü \\x41 ok")), "é ü \\x41 ok");
        // Every escape form the table names.
        for (c, out) in [
            ('\0', "\\x00"),
            ('\t', "\\x09"),
            ('\u{7f}', "\\x7f"),
            ('\u{9b}', "\\x9b"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{feff}', "\\u{feff}"),
        ] {
            let mut s = String::new();
            escape_char(c, &mut s).unwrap();
            assert_eq!(s, out);
        }
    }

    #[test]
    fn untrusted_strings_are_cut() {
        let long = "a".repeat(10_000);
        let s = format!("{}", Untrusted(&long));
        assert_eq!(s.len(), UNTRUSTED_MAX + 3);
        assert!(s.ends_with("..."));
        let exact = "b".repeat(UNTRUSTED_MAX);
        assert_eq!(
            format!("{}", Untrusted(&exact)),
            exact,
            "not cut at the bound"
        );
        assert_eq!(
            format!("{}", UntrustedBytes(b"ok\xff\xfe\nx")),
            "ok\\xff\\xfe\\x0ax"
        );
        let s = format!("{}", UntrustedBytes(&[0xff; 500]));
        assert_eq!(s.len(), UNTRUSTED_MAX * 4 + 3);
    }

    #[test]
    fn a_line_keeps_what_fits_escaped_and_says_when_it_was_cut() {
        let l: Line<32> = Line::new(format_args!("short {}", "\n"));
        assert_eq!(l.as_str(), "short \\x0a");
        let l: Line<16> = Line::new(format_args!("0123456789abcdefXYZ"));
        assert_eq!(l.as_str(), "0123456789abc...");
        // A multi-byte character at the cut is not split.
        let l: Line<8> = Line::new(format_args!("ab€€€€€€"));
        assert_eq!(l.as_str(), "ab€...");
        let l: Line<9> = Line::new(format_args!("ab€€€"));
        assert_eq!(l.as_str(), "ab€...");
        assert!(Line::<8>::default().is_empty());
        let copy = l;
        assert_eq!(copy, l, "a Line is a plain value");
    }
}
