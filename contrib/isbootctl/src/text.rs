// SPDX-License-Identifier: BSD-2-Clause
//! Text that reaches a terminal: strings from firmware tables and targets are escaped, and
//! files given on the command line are read with a bound.

use std::io::Read as _;

/// `s` with every control character (C0, DEL, C1) and the Unicode line separators, direction
/// and zero-width controls written as `\xNN` or `\u{NNNN}`: a firmware string cannot move the
/// cursor, change colours, start a new line or reorder what follows it. A backslash stays as it
/// is, so messages that quote a value with `{:?}` are not escaped twice. The rule is the core's
/// (`isboot_core::escape`), the one the kernel's console and the session's log use too.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let _ = isboot_core::escape::write_escaped(&mut o, format_args!("{s}"));
    o
}

/// Reads at most `cap` bytes of `path`, which must be a regular file: a device such as
/// /dev/zero, a FIFO or a directory is refused before anything is read.
pub fn read_file_capped(path: &str, cap: u64) -> Result<Vec<u8>, String> {
    let f = regular_file(path)?;
    let mut buf = Vec::new();
    f.take(cap)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(buf)
}

/// Opens `path` if it is a regular file.
pub fn regular_file(path: &str) -> Result<std::fs::File, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path}: not a regular file"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_raw() {
        assert_eq!(
            esc("iqn.x:a\nb\tc\u{1b}[31m"),
            "iqn.x:a\\x0ab\\x09c\\x1b[31m"
        );
        assert_eq!(
            esc("del\u{7f} c1\u{9b} bidi\u{202e} ok é"),
            "del\\x7f c1\\x9b bidi\\u{202e} ok é"
        );
        for s in ["\u{0}", "\r", "\u{85}", "\u{2028}", "\u{feff}"] {
            assert!(
                esc(s).chars().all(|c| !c.is_control() && c != '\u{feff}'),
                "{s:?}"
            );
        }
    }

    #[test]
    fn devices_and_directories_are_refused_and_files_are_capped() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            let e = read_file_capped(p, 16).expect_err(p);
            assert!(e.ends_with("not a regular file"), "{e}");
        }
        let dir = std::env::temp_dir().join(format!("isbootctl-text-{}", std::process::id()));
        std::fs::write(&dir, [7u8; 100]).expect("write");
        let got = read_file_capped(dir.to_str().expect("utf8"), 64);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(got.expect("read").len(), 64);
    }
}
